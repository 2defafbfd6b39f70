"""What the spec's validators say, as JSON Schema keywords (for ``graft.spec.schema``).

A validator of ``graft.spec.validators`` (or attrs' own) that can be read becomes
``enum``, ``minimum``, ``pattern`` and the like; one that cannot says nothing, so
the schema stays permissive where it cannot be exact.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Callable
from typing import Any

from graft.spec import callbacks, validators
from graft.spec import records as spec

JSON = dict[str, Any]
Fragment = JSON | None


# -- validators we can read -------------------------------------------------------------


def _pattern_of_name() -> JSON:
    # ``$`` alone would also match before a final newline in Python's ``re`` (which jsonschema uses), where
    # ``graft validate`` (``re.fullmatch``) refuses "pretrain\n"; ``(?!\n)`` makes both dialects end there
    return {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$(?!\n)"}


LARGEST_FLOAT = sys.float_info.max
# "a finite number", as JSON Schema can say it of the YAML values .inf, -.inf and .nan: infinities lie beyond
# the largest float; NaN fails no comparison, so it is the one number both below 0 and above 0 lets through
FINITE: JSON = {
    "minimum": -LARGEST_FLOAT,
    "maximum": LARGEST_FLOAT,
    "not": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0},
}


def _finite_and(fragment: JSON) -> list[JSON]:
    return [FINITE, fragment] if fragment else [FINITE]


# plain validator functions -> the JSON Schema keywords that say the same (or less); a list: fragments to merge
FUNCTIONS: dict[Callable, list[JSON]] = {
    validators.finite: _finite_and({}),
    validators.positive: _finite_and({"exclusiveMinimum": 0}),
    validators.non_negative: _finite_and({"minimum": 0}),
    validators.fraction: _finite_and({"minimum": 0, "exclusiveMaximum": 1}),
    validators.non_empty: [{"minItems": 1, "minProperties": 1, "minLength": 1}],  # each keyword applies to its type
    validators.identifier: [_pattern_of_name()],
}
# private validators of the spec, if they are still there (a rename only loses the constraint)
if callable(getattr(spec, "stage_name", None)):
    FUNCTIONS[spec.stage_name] = [{**_pattern_of_name(), "maxLength": spec.MAX_STAGE_NAME}]
if callable(getattr(callbacks, "_shrink_factor", None)):
    FUNCTIONS[callbacks._shrink_factor] = _finite_and({"exclusiveMinimum": 0, "exclusiveMaximum": 1})

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
        fragments = validator_fragments(validator.validator)
        return [_allow_null(fragment) for fragment in fragments]
    try:
        known = FUNCTIONS.get(validator)
    except TypeError:  # an unhashable validator
        known = None
    if known is not None:
        return [dict(fragment) for fragment in known]
    found = _closure(validator, "graft.spec.validators", "between.<locals>.check")
    if found is not None and _jsonable_number(found.get("low")) and _jsonable_number(found.get("high")):
        return _finite_and({"minimum": found["low"], "maximum": found["high"]})
    found = _closure(validator, "graft.spec.validators", "one_of.<locals>.check")
    choices = found.get("choices", [None]) if found is not None else [None]
    if found is not None and all(isinstance(choice, (str, int, float, bool)) for choice in choices):
        return [{"enum": list(found["choices"])}]
    found = _closure(validator, "graft.spec.validators", "unless.<locals>.check_unless")
    if found is not None and all(isinstance(word, str) for word in found.get("words", [None])):
        return [_allow_words(fragment, found["words"]) for fragment in validator_fragments(found.get("check"))]
    found = _closure(validator, "graft.spec.validators", "each.<locals>.run")
    if found is not None:
        items = merged(validator_fragments(found.get("check")))
        return [{"items": items}] if items else []
    found = _closure(validator, "graft.spec.augment", "_bounded.<locals>.check")
    if found is not None and _jsonable_number(found.get("low")):
        fragment: JSON = {"exclusiveMinimum": found["low"]}
        if _jsonable_number(found.get("high")):
            fragment["maximum" if found.get("high_inclusive") else "exclusiveMaximum"] = found["high"]
        return _finite_and(fragment)
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
        items = merged(validator_fragments(validator.member_validator))
        return [{"items": items}, *validator_fragments(validator.iterable_validator)] if items else []
    return []


def _allow_words(fragment: JSON, words: list[str]) -> JSON:
    """A fragment of ``unless(words, check)``: the words pass it (string keywords would judge them: dropped)."""
    fragment = {key: value for key, value in fragment.items() if key not in KEYWORDS_OF_TYPE["string"]}
    if "enum" in fragment:
        fragment["enum"] = [*fragment["enum"], *(word for word in words if word not in fragment["enum"])]
    return fragment


def _allow_null(fragment: JSON) -> JSON:
    """A fragment of an ``optional`` validator: None passes it (only ``enum`` refuses other types)."""
    fragment = dict(fragment)
    if "enum" in fragment and None not in fragment["enum"]:
        fragment["enum"] = [*fragment["enum"], None]
    return fragment


BOUNDS = {"minimum": max, "exclusiveMinimum": max, "maximum": min, "exclusiveMaximum": min}
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
        known = [each for each in found if each is not None]
        return None if len(known) < len(found) else set().union(*known)
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


def merged(fragments: list[JSON], base: JSON | None = None) -> JSON:
    """``base`` with every fragment's keywords; a fragment whose keywords clash goes into ``allOf``."""
    result = dict(base or {})
    if base:
        fragments = [_pruned(fragment, base) for fragment in fragments]
        if not (_types_of(base) or {"number"}) & {"number"}:  # an integer is finite already
            fragments = [fragment for fragment in fragments if fragment != FINITE]
    for fragment in fragments:
        if not fragment:
            continue
        fragment = dict(fragment)
        items = fragment.get("items")
        if isinstance(items, dict) and isinstance(result.get("items"), dict) and "prefixItems" not in result:
            result["items"] = merged([fragment.pop("items")], result["items"])  # each(...) on list[X]: into X
        for key in set(fragment) & set(result) & BOUNDS.keys():  # two bounds of one kind: the tighter one
            if _jsonable_number(fragment[key]) and _jsonable_number(result[key]):
                result[key] = BOUNDS[key](result[key], fragment.pop(key))
        if set(fragment) & set(result):
            result.setdefault("allOf", []).append(fragment)
        elif fragment:
            result.update(fragment)
    for inclusive, exclusive, tighter in (("minimum", "exclusiveMinimum", max), ("maximum", "exclusiveMaximum", min)):
        if _jsonable_number(result.get(inclusive)) and _jsonable_number(result.get(exclusive)):
            # the looser of two bounds on one side says nothing more
            del result[inclusive if tighter(result[inclusive], result[exclusive]) == result[exclusive] else exclusive]
    return result


# -- types ------------------------------------------------------------------------------------
