"""A JSON Schema (draft 2020-12) of the YAML spec, for editors: ``graft schema``.

The schema is made from the attrs classes of ``graft.spec`` and of the installed
plugins' params, by introspection, so it cannot drift from what ``graft validate``
accepts: field types give JSON types, fields without a default are required,
unknown keys are refused (``additionalProperties: false``), and the validators of
``graft.validators`` that can be read (``between``, ``one_of``, ``positive``, ...)
give ``minimum``, ``maximum``, ``enum`` and the like. A plugin's params are chosen
by the plugin's name with ``if``/``then``. Where a type or a check cannot be said
in JSON Schema the schema is permissive: it may miss a mistake that ``graft
validate`` catches, but it must never refuse a spec ``graft validate`` accepts.

No TensorFlow is imported (the registry loads plugins as ``graft validate`` does).
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import attrs

from graft import augment, optimizers, spec, validators
from graft.registry import PluginError, Registry
from graft.specfile import PLUGIN_REFERENCES
from graft.typewords import is_union

DIALECT = "https://json-schema.org/draft/2020-12/schema"

JSON = dict[str, Any]
Fragment = JSON | None


# -- validators we can read -------------------------------------------------------------


def _pattern_of_name() -> JSON:
    return {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}


# plain validator functions -> the JSON Schema keywords that say the same (or less)
FUNCTIONS: dict[Callable, JSON] = {
    validators.positive: {"exclusiveMinimum": 0},
    validators.non_negative: {"minimum": 0},
    validators.fraction: {"minimum": 0, "exclusiveMaximum": 1},
    validators.non_empty: {"minItems": 1, "minProperties": 1, "minLength": 1},  # each keyword applies to its type
    validators.identifier: _pattern_of_name(),
}
# private validators of the spec, if they are still there (a rename only loses the constraint)
if callable(getattr(spec, "stage_name", None)):
    FUNCTIONS[spec.stage_name] = {**_pattern_of_name(), "maxLength": spec.MAX_STAGE_NAME}
if callable(getattr(spec, "_shrink_factor", None)):
    FUNCTIONS[spec._shrink_factor] = {"exclusiveMinimum": 0, "exclusiveMaximum": 1}

COMPARISON_KEYWORDS = {">=": "minimum", ">": "exclusiveMinimum", "<=": "maximum", "<": "exclusiveMaximum"}


def _closure(function: Any, module: str, qualname: str) -> dict[str, Any] | None:
    """The variables a validator made by ``module.qualname`` closes over, or None if it is another function."""
    if getattr(function, "__module__", None) != module or getattr(function, "__qualname__", None) != qualname:
        return None
    try:
        return dict(inspect.getclosurevars(function).nonlocals)
    except (TypeError, ValueError):
        return None


def _jsonable_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validator_fragments(validator: Any) -> list[JSON]:
    """The JSON Schema keywords a validator implies: a list of fragments (none if it is not understood)."""
    if validator is None:
        return []
    inner = getattr(validator, "_validators", None)  # attrs.validators.and_ / a list of validators
    if inner is not None:
        return [fragment for each in inner for fragment in validator_fragments(each)]
    if type(validator).__name__ == "_OptionalValidator":  # attrs.validators.optional(...)
        found = validator_fragments(validator.validator)
        return [_allow_null(fragment) for fragment in found]
    try:
        known = FUNCTIONS.get(validator)
    except TypeError:  # an unhashable validator
        known = None
    if known is not None:
        return [dict(known)]
    found = _closure(validator, "graft.validators", "between.<locals>.check")
    if found is not None and _jsonable_number(found.get("low")) and _jsonable_number(found.get("high")):
        return [{"minimum": found["low"], "maximum": found["high"]}]
    found = _closure(validator, "graft.validators", "one_of.<locals>.check")
    choices = found.get("choices", [None]) if found is not None else [None]
    if found is not None and all(isinstance(choice, (str, int, float, bool)) for choice in choices):
        return [{"enum": list(found["choices"])}]
    found = _closure(validator, "graft.validators", "each.<locals>.run")
    if found is not None:
        items = _merged(validator_fragments(found.get("check")))
        return [{"items": items}] if items else []
    found = _closure(validator, "graft.augment", "_bounded.<locals>.check")
    if found is not None and _jsonable_number(found.get("low")):
        fragment: JSON = {"exclusiveMinimum": found["low"]}
        if _jsonable_number(found.get("high")):
            fragment["maximum" if found.get("high_inclusive") else "exclusiveMaximum"] = found["high"]
        return [fragment]
    return _attrs_validator_fragments(validator)


def _attrs_validator_fragments(validator: Any) -> list[JSON]:
    """attrs' own validators: comparisons, lengths, in_, deep_iterable."""
    name = type(validator).__name__
    if name == "_NumberValidator" and validator.compare_op in COMPARISON_KEYWORDS and _jsonable_number(validator.bound):
        return [{COMPARISON_KEYWORDS[validator.compare_op]: validator.bound}]
    if name == "_MinLengthValidator":
        return [{"minLength": validator.min_length, "minItems": validator.min_length}]
    if name == "_MaxLengthValidator":
        return [{"maxLength": validator.max_length, "maxItems": validator.max_length}]
    if name == "_InValidator":
        options = getattr(validator, "options", None)
        if isinstance(options, (list, tuple, set, frozenset)) and all(
            isinstance(option, (str, int, float, bool)) for option in options
        ):
            return [{"enum": list(options)}]
        return []
    if name == "_DeepIterable":
        items = _merged(validator_fragments(validator.member_validator))
        return [{"items": items}, *validator_fragments(validator.iterable_validator)] if items else []
    return []


def _allow_null(fragment: JSON) -> JSON:
    """A fragment of an ``optional`` validator: None passes it (only ``enum`` refuses other types)."""
    fragment = dict(fragment)
    if "enum" in fragment and None not in fragment["enum"]:
        fragment["enum"] = [*fragment["enum"], None]
    return fragment


KEYWORDS_OF_TYPE = {
    "array": {"minItems", "maxItems", "items", "prefixItems"},
    "object": {"minProperties", "maxProperties"},
    "string": {"minLength", "maxLength", "pattern"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
}
KEYWORDS_OF_TYPE["integer"] = KEYWORDS_OF_TYPE["number"]


def _types_of(schema: JSON) -> set[str] | None:
    """The JSON types a schema allows, if it says so plainly (``type``, or ``anyOf`` of such); else None."""
    if "anyOf" in schema and "type" not in schema:
        found = [_types_of(member) for member in schema["anyOf"]]
        return None if any(each is None for each in found) else set().union(*found)
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return set(kind)
    return {"null"} if schema.get("enum") == [None] else None


def _pruned(fragment: JSON, base: JSON) -> JSON:
    """``fragment`` without the keywords of JSON types ``base`` does not allow (non_empty says all three)."""
    allowed = _types_of(base)
    if allowed is None:
        return fragment
    foreign = set().union(*(words for kind, words in KEYWORDS_OF_TYPE.items() if kind not in allowed))
    foreign -= set().union(*(KEYWORDS_OF_TYPE.get(kind, set()) for kind in allowed))
    return {key: value for key, value in fragment.items() if key not in foreign}


def _merged(fragments: list[JSON], base: JSON | None = None) -> JSON:
    """``base`` with every fragment's keywords; a fragment whose keywords clash goes into ``allOf``."""
    result = dict(base or {})
    if base:
        fragments = [_pruned(fragment, base) for fragment in fragments]
    for fragment in fragments:
        if not fragment:
            continue
        fragment = dict(fragment)
        items = fragment.get("items")
        if isinstance(items, dict) and isinstance(result.get("items"), dict) and "prefixItems" not in result:
            result["items"] = _merged([fragment.pop("items")], result["items"])  # each(...) on list[X]: into X
        if set(fragment) & set(result):
            result.setdefault("allOf", []).append(fragment)
        elif fragment:
            result.update(fragment)
    return result


# -- types ------------------------------------------------------------------------------------


class SchemaBuilder:
    """JSON Schemas of types and attrs classes; every attrs class once, in ``$defs``."""

    def __init__(self) -> None:
        self.defs: dict[str, JSON] = {}
        self.names: dict[type, str] = {}
        # self-structured types (``__graft_structure__``) -> the attrs records an entry may be
        self.record_choices: dict[type, Callable[[], list[type]]] = {
            augment.Augmentation: lambda: list(augment.AUGMENTATIONS.values())
        }

    def type_schema(self, type_: Any) -> JSON:
        """The schema of values of ``type_``; ``{}`` (anything) for a type it cannot express."""
        if type_ is Any or isinstance(type_, (str, typing.ForwardRef)):
            return {}
        if type_ is bool:
            return {"type": "boolean"}
        if type_ is int:
            return {"type": "integer"}
        if type_ is float:
            return {"type": "number"}  # an integer is a number too: the spec accepts 1 for 1.0
        if type_ is str:
            return {"type": "string"}
        if type_ is type(None) or type_ is None:
            return {"type": "null"}
        origin, args = typing.get_origin(type_), typing.get_args(type_)
        if is_union(type_):
            return {"anyOf": [self.type_schema(arg) for arg in args]}
        if origin is Literal:
            return {"enum": list(args)}
        if type_ is list or origin is list:
            return {"type": "array", "items": self.type_schema(args[0])} if args else {"type": "array"}
        if type_ is tuple or origin is tuple:
            if not args:
                return {"type": "array"}
            if args[-1] is Ellipsis:
                return {"type": "array", "items": self.type_schema(args[0])}
            return {
                "type": "array",
                "prefixItems": [self.type_schema(arg) for arg in args],
                "items": False,
                "minItems": len(args),
            }
        if type_ is dict or origin is dict:
            key_type, value_type = args or (Any, Any)
            schema: JSON = {"type": "object"}
            if value_type is not Any:
                schema["additionalProperties"] = self.type_schema(value_type)
            if key_type is not str:
                pass  # YAML keys of other types have no JSON form: say nothing about them
            return schema
        if isinstance(type_, type) and type_ in self.record_choices:
            return {"oneOf": [self.class_schema(record) for record in self.record_choices[type_]()]}
        if isinstance(type_, type) and any("__graft_structure__" in vars(base) for base in type_.__mro__):
            return {}  # structured by its own code (graft.convert): its YAML form is not its fields
        if isinstance(type_, type) and attrs.has(type_):
            return self.class_schema(type_)
        return {}

    def class_schema(self, cls: type) -> JSON:
        """A ``$ref`` to the schema of the attrs class ``cls`` (made once)."""
        if cls not in self.names:
            name = self._name_for(cls)
            self.names[cls] = name
            self.defs[name] = {}  # a placeholder while the class's fields are made (a class may refer to itself)
            self.defs[name] = self.object_schema(cls)
        return {"$ref": f"#/$defs/{self.names[cls]}"}

    def _name_for(self, cls: type) -> str:
        name = cls.__qualname__ if cls.__module__ == "graft.spec" else f"{cls.__module__}.{cls.__qualname__}"
        name = name.replace("<", "").replace(">", "")
        taken = set(self.defs)
        unique, number = name, 2
        while unique in taken:
            unique, number = f"{name}_{number}", number + 1
        return unique

    def object_schema(self, cls: type, overrides: dict[str, JSON] | None = None) -> JSON:
        """The schema of a mapping structured as the attrs class ``cls``: its fields, the required ones, no others."""
        try:
            attrs.resolve_types(cls)
        except Exception:  # noqa: BLE001 - an annotation that does not resolve: that field is left open
            pass
        fields = [field for field in attrs.fields(cls) if field.init]
        properties: JSON = {}
        for field in fields:
            if overrides and field.name in overrides:
                properties[field.name] = overrides[field.name]
                continue
            properties[field.name] = self.field_schema(field)
        schema: JSON = {"type": "object"}
        description = _docstring(cls)
        if description:
            schema["description"] = description
        schema["properties"] = properties
        required = [field.name for field in fields if field.default is attrs.NOTHING]
        if required:
            schema["required"] = required
        schema["additionalProperties"] = False
        return schema

    def field_schema(self, field: attrs.Attribute) -> JSON:
        schema = _merged(validator_fragments(field.validator), self.type_schema(field.type))
        default = _default_of(field)
        if default is not attrs.NOTHING:
            schema["default"] = default
        description = field.metadata.get("description") if field.metadata else None
        if isinstance(description, str):
            schema["description"] = description
        return schema


def _docstring(item: Any) -> str | None:
    """The first paragraph of an object's own docstring (attrs classes without one have none)."""
    doc = item.__dict__.get("__doc__") if hasattr(item, "__dict__") else None
    if not isinstance(doc, str) or not doc.strip():
        return None
    return inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ")


def _default_of(field: attrs.Attribute) -> Any:
    """A field's default if it is plain JSON (a factory of ``list`` or ``dict`` included), else NOTHING."""
    default = field.default
    if isinstance(default, attrs.Factory):
        if default.takes_self or default.factory not in (list, dict, tuple):
            return attrs.NOTHING
        default = default.factory()
    if default is attrs.NOTHING or not _is_json(default):
        return attrs.NOTHING
    return list(default) if isinstance(default, tuple) else default


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_json(item) for key, item in value.items())
    return False


# -- plugins ----------------------------------------------------------------------------------


def _plugin_info(registry: Registry, kind: str, name: str) -> str:
    info = registry.get(kind, name)
    doc = _docstring(info.plugin) if info.plugin is not None else None
    if doc is None and isinstance(info.plugin, types.ModuleType):
        doc = _docstring(info.plugin)
    origin = f"{info.distribution} {info.version}".strip()
    return f"{doc} ({origin})" if doc else f"{kind} plugin '{name}' ({origin})"


def _reference_schema(builder: SchemaBuilder, registry: Registry, cls: type, kind: str, key: str) -> JSON:
    """A plugin reference (``ExtractorRef``, ``HeadSpec``, ...): the plugin's name is one of the installed
    plugins of its kind, and ``params`` are that plugin's params class, chosen with ``if``/``then``."""
    names = registry.names(kind)
    key_field = attrs.fields_dict(cls)[key]
    key_schema = _merged(validator_fragments(key_field.validator), {"type": "string", "enum": names})
    if _default_of(key_field) is not attrs.NOTHING:
        key_schema["default"] = _default_of(key_field)
    key_schema["description"] = f"the {kind} plugin: one of the installed plugins (graft plugins lists them)"
    params = {"description": f"the {kind} plugin's params"}
    schema = builder.object_schema(cls, overrides={key: key_schema, "params": params})
    default_name = key_field.default if isinstance(key_field.default, str) else None
    choices = []
    for name in names:
        condition: JSON = {"properties": {key: {"const": name}}}
        if name != default_name:  # an absent name is the default plugin, not every plugin
            condition["required"] = [key]
        choices.append({"if": condition, "then": _params_branch(builder, registry, kind, name)})
    if choices:
        schema["allOf"] = choices
    return schema


def _params_branch(builder: SchemaBuilder, registry: Registry, kind: str, name: str) -> JSON:
    """What ``params`` must be for plugin ``name``: its params class (null or absent if nothing is required)."""
    try:
        params_class = registry.params_class(kind, name)
        description = _plugin_info(registry, kind, name)
    except PluginError:
        return {}  # the plugin's annotation does not resolve: graft validate says so; the schema stays open
    if params_class is None:  # takes no params: absent, null or empty
        return {
            "description": description,
            "properties": {"params": {"anyOf": [{"type": "null"}, {"type": "object", "maxProperties": 0},
                                                {"type": "array", "maxItems": 0}]}},
        }
    params = builder.type_schema(params_class)
    needs_some = attrs.has(params_class) and any(
        field.init and field.default is attrs.NOTHING for field in attrs.fields(params_class)
    )
    branch: JSON = {"description": description}
    if needs_some:
        branch["properties"] = {"params": params}
        branch["required"] = ["params"]
    else:  # an absent or null params is structured as {}
        branch["properties"] = {"params": {"anyOf": [{"type": "null"}, params]}}
    return branch


# -- the schema --------------------------------------------------------------------------------


def _optimizer_options() -> JSON:
    """``optimizer.options`` per optimizer, from the options table of ``graft.optimizers``."""
    kinds = {"number": "number", "integer": "integer", "flag": "boolean"}
    default_name = attrs.fields_dict(spec.Optimizer)["name"].default
    choices = []
    for name, kind in optimizers.OPTIMIZERS.items():
        properties = {}
        for option, described in kind.options.items():
            schema = _merged(validator_fragments(described.check), {"type": kinds.get(described.kind, "number")})
            if described.nullable:
                schema["type"] = [schema["type"], "null"]
            properties[option] = schema
        condition: JSON = {"properties": {"name": {"const": name}}}
        if name != default_name:
            condition["required"] = ["name"]
        choices.append({
            "if": condition,
            "then": {"properties": {"options": {
                "description": f"keyword arguments of keras.optimizers.{kind.keras_class}",
                "properties": properties,
                "additionalProperties": False,
            }}},
        })
    return {"allOf": choices}


def spec_schema(registry: Registry) -> JSON:
    """The JSON Schema of a spec, with the params of every working plugin in ``registry``."""
    builder = SchemaBuilder()
    for cls, (kind, key) in PLUGIN_REFERENCES.items():
        name = builder._name_for(cls)
        builder.names[cls] = name
        builder.defs[name] = {}
        builder.defs[name] = _reference_schema(builder, registry, cls, kind, key)
    builder.class_schema(spec.Optimizer)
    optimizer_name = builder.names[spec.Optimizer]
    builder.defs[optimizer_name] = _merged([_optimizer_options()], builder.defs[optimizer_name])
    root = builder.object_schema(spec.Spec)
    return {
        "$schema": DIALECT,
        "title": "keras-graft spec",
        "description": "A keras-graft YAML spec (graft validate checks it in full; this schema is for editors).",
        **{key: value for key, value in root.items() if key != "description"},
        "$defs": dict(sorted(builder.defs.items())),
    }
