"""A JSON Schema (draft 2020-12) of the YAML spec, for editors: ``graft schema``.

The schema is made from the attrs classes of ``graft.spec.records`` and of the installed
plugins' params, by introspection, so it cannot drift from what ``graft validate``
accepts: field types give JSON types, fields without a default are required,
unknown keys are refused (``additionalProperties: false``), and the validators of
``graft.spec.validators`` that can be read (``between``, ``one_of``, ``positive``, ...)
give ``minimum``, ``maximum``, ``enum`` and the like. A plugin's params are chosen
by the plugin's name with ``if``/``then``. Where a type or a check cannot be said
in JSON Schema the schema is permissive: it may miss a mistake that ``graft
validate`` catches, but it must never refuse a spec ``graft validate`` accepts.

No TensorFlow is imported (the registry loads plugins as ``graft validate`` does).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import attrs

from graft.plugins.layers import INPUT_NAME
from graft.plugins.registry import PluginError, Registry
from graft.spec import augment, optimizers
from graft.spec import records as spec
from graft.spec.convert import INT64
from graft.spec.initspec import EXTENSIONS
from graft.spec.schema_keywords import FUNCTIONS, JSON, merged, validator_fragments
from graft.spec.specfile import PLUGIN_REFERENCES
from graft.spec.typewords import is_union
from graft.spec.validators import identifier

DIALECT = "https://json-schema.org/draft/2020-12/schema"



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
        if type_ is int:  # graft.spec.convert refuses integers beyond 64 bits
            return {"type": "integer", "minimum": INT64[0], "maximum": INT64[1]}
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
            if key_type is str:  # in JSON every key is a string; checked against YAML data, a `true:` key is not
                schema["propertyNames"] = {"type": "string"}
            return schema
        if isinstance(type_, type) and type_ in self.record_choices:
            return {"oneOf": [self.class_schema(record) for record in self.record_choices[type_]()]}
        if isinstance(type_, type) and any("__graft_structure__" in vars(base) for base in type_.__mro__):
            return {}  # structured by its own code (graft.spec.convert): its YAML form is not its fields
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
        name = cls.__qualname__ if cls.__module__ == "graft.spec.records" else f"{cls.__module__}.{cls.__qualname__}"
        name = name.replace("<", "").replace(">", "")
        taken = set(self.defs)
        unique, number = name, 2
        while unique in taken:
            unique, number = f"{name}_{number}", number + 1
        return unique

    def object_schema(self, cls: type, overrides: dict[str, JSON] | None = None) -> JSON:
        """The schema of a mapping structured as the attrs class ``cls``: its fields, the required ones, no others."""
        with contextlib.suppress(Exception):  # an annotation that does not resolve: that field is left open
            attrs.resolve_types(cls)
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
        schema = merged(validator_fragments(field.validator), self.type_schema(field.type))
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
    default: Any = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]  # a class, stubbed as a function
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
    key_schema = merged(validator_fragments(key_field.validator), {"type": "string", "enum": names})
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


def _one_init_source() -> list[JSON]:
    """``init``: exactly one of ``stage`` (then no ``rename``), ``weights`` or ``model`` (a Keras file by its name),
    as ``graft.spec.initspec.check_init`` says; whether the stage is an earlier one or the file exists, it cannot."""
    keras_file = "|".join("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in extension)
                          for extension in EXTENSIONS)
    branches = {
        "stage": {"stage": {"type": "string"}, "rename": {"maxProperties": 0}},
        "weights": {"weights": {"type": "string"}},
        "model": {"model": {"type": "string", "pattern": f"(?:{keras_file})$(?!\\n)"}},
    }
    return [
        {"required": [key], "properties": properties,
         "not": {"anyOf": [{"required": [other]} for other in branches if other != key]}}
        for key, properties in branches.items()
    ]


def _head_names() -> JSON:
    """What a head's name may be: a name (as ``graft.spec.validators.identifier``), not the input layer's."""
    return {"type": "string", **FUNCTIONS[identifier][0], "not": {"const": INPUT_NAME}}


def _optimizer_options() -> JSON:
    """``optimizer.options`` per optimizer, from the options table of ``graft.model.optimizers``."""
    kinds = {"number": "number", "integer": "integer", "flag": "boolean"}
    default_name = attrs.fields_dict(spec.Optimizer)["name"].default
    choices = []
    for name, kind in optimizers.OPTIMIZERS.items():
        properties = {}
        for option, described in kind.options.items():
            schema = merged(validator_fragments(described.check), {"type": kinds.get(described.kind, "number")})
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
    builder.defs[optimizer_name] = merged([_optimizer_options()], builder.defs[optimizer_name])
    root = builder.object_schema(spec.Spec)
    for cls in (spec.ModelSpec, spec.Stage):  # head names name Keras layers (graft.spec.specfile checks them)
        builder.defs[builder.names[cls]]["properties"]["heads"]["propertyNames"] = _head_names()
    builder.defs[builder.names[spec.Init]]["oneOf"] = _one_init_source()
    return {
        "$schema": DIALECT,
        "title": "keras-graft spec",
        "description": "A keras-graft YAML spec (graft validate checks it in full; this schema is for editors).",
        **{key: value for key, value in root.items() if key != "description"},
        "$defs": dict(sorted(builder.defs.items())),
    }
