"""The one strict cattrs converter, and its errors as YAML paths in words.

attrs classes are structured field by field so that every problem is reported
at once: wrong types, missing and unknown keys, and every failing validator
(see ``structure_attrs``).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
import cattrs

from graft.base.problems import Path, Problems, SpecProblem, did_you_mean, kind_of, listing
from graft.spec.typewords import describe, is_union, noun
from graft.spec.validators import failure_message, relative_to_field
from graft.spec.yamlfile import MAX_VALUES, YamlDocument, load_yaml  # noqa: F401 - the YAML half, re-exported

INT64 = (-(2**63), 2**63 - 1)


def _strict(expected: str, check):
    def structure(value, _type):
        if not check(value):
            raise SpecProblem((), f"expected {expected}, got {kind_of(value)}")
        return value

    return structure


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _structure_int(value, _type) -> int:
    """An int, or a float with nothing after the point (``3.0``), which JSON Schema counts an integer too:
    ``graft schema`` and ``graft validate`` must agree.  ``3.5``, ``true`` and ``"3"`` are refused."""
    if isinstance(value, float) and value.is_integer():
        if not INT64[0] <= value <= INT64[1]:
            raise SpecProblem((), f"expected an integer that fits in 64 bits (at most {INT64[1]:,} in size), "
                                  f"got {kind_of(value)}")
        return int(value)
    return _strict("an integer", _is_int)(value, _type)


def _structure_float(value, _type) -> float:
    _strict("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))(value, _type)
    try:
        return float(value)
    except OverflowError:
        raise SpecProblem((), f"expected a number, got an integer too large for one ({kind_of(value)})") from None


def make_converter() -> cattrs.Converter:
    """The strict converter: no coercion between types (but ``3.0`` is the integer 3), unknown keys rejected,
    every problem reported."""
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(int, _structure_int)  # 64-bit range: _check_int_range
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(str, _strict("a string", lambda v: isinstance(v, str)))
    converter.register_structure_hook(bool, _strict("true or false", lambda v: isinstance(v, bool)))
    # by predicate: Python 3.10's functools.singledispatch refuses typing.Any as a class to register
    converter.register_structure_hook_func(lambda t: t is Any, lambda v, _: v)
    # lists and mappings only from YAML sequences and mappings: cattrs would iterate a string
    # ("freeze: gru_1" -> ['g', 'r', ...]) or fail with a bare TypeError on a number
    converter.register_structure_hook_func(_origin_is(list), _strict_list(converter))
    converter.register_structure_hook_func(_origin_is(tuple), _strict_tuple(converter))
    converter.register_structure_hook_func(_origin_is(dict), _strict_dict(converter))
    converter.register_structure_hook_func(is_union, _union(converter))
    converter.register_structure_hook_func(lambda t: typing.get_origin(t) is Literal, _literal)
    converter.register_structure_hook_factory(
        attrs.has, lambda cls: lambda data, _: structure_attrs(converter, data, cls)
    )
    converter.register_structure_hook_func(_structures_itself, _self_structured(converter))
    return converter


def _structures_itself(type_) -> bool:
    """A class that defines ``__graft_structure__(data, structure_record)``
    (such as ``graft.spec.augment.Augmentation``)."""
    return isinstance(type_, type) and "__graft_structure__" in vars(type_)


def _self_structured(converter: cattrs.Converter):
    """Structured by the class's own ``__graft_structure__``, which gets ``structure_attrs`` for its records."""
    return lambda data, type_: type_.__graft_structure__(data, lambda raw, cls: structure_attrs(converter, raw, cls))


def _origin_is(origin: type):
    return lambda type_: type_ is origin or typing.get_origin(type_) is origin


# -- containers -------------------------------------------------------------------------


def _structure_item(converter: cattrs.Converter, value: Any, type_) -> Any:
    """``converter.structure``; any failure raises ``SpecProblem`` in words."""
    try:
        return converter.structure(value, type_)
    except SpecProblem:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes a problem in words
        raise SpecProblem.of(problems_of(exc, (), type_, value)) from None


def _strict_list(converter: cattrs.Converter):
    def structure_list(value, type_):
        if not isinstance(value, list):
            raise SpecProblem((), f"expected {describe(type_)}, got {kind_of(value)}")
        (item_type,) = typing.get_args(type_) or (Any,)
        return _structure_each(converter, [(item, item_type) for item in value])

    return structure_list


def _structure_each(converter: cattrs.Converter, typed_items: list[tuple[Any, Any]]) -> list:
    """Structure every ``(item, type)`` in order; every item's problems are kept at its index."""
    result, problems = [], Problems()
    for index, (item, item_type) in enumerate(typed_items):
        with problems.collect((index,)):
            result.append(_structure_item(converter, item, item_type))
    problems.raise_all()
    return result


def _strict_tuple(converter: cattrs.Converter):
    def structure_tuple(value, type_):
        args = typing.get_args(type_)
        if not isinstance(value, list):
            raise SpecProblem((), f"expected {describe(type_)}, got {kind_of(value)}")
        if args and args[-1] is not Ellipsis and len(value) != len(args):
            raise SpecProblem((), f"expected a list of {len(args)} items, got {len(value)}")
        item_types = [
            args[0] if args and args[-1] is Ellipsis else (args[i] if args else Any) for i in range(len(value))
        ]
        return tuple(_structure_each(converter, list(zip(value, item_types, strict=True))))

    return structure_tuple


def _strict_dict(converter: cattrs.Converter):
    def structure_dict(value, type_):
        if not isinstance(value, Mapping):
            raise SpecProblem((), f"expected {describe(type_)}, got {kind_of(value)}")
        key_type, value_type = typing.get_args(type_) or (Any, Any)
        result, problems = {}, Problems()
        for key, item in value.items():
            with problems.collect((key,)):
                try:
                    structured_key = _structure_item(converter, key, key_type)
                except SpecProblem:
                    raise SpecProblem((), f"a key here must be {describe(key_type)}, got {kind_of(key)}") from None
                result[structured_key] = _structure_item(converter, item, value_type)
        problems.raise_all()
        return result

    return structure_dict


def _union(converter: cattrs.Converter):
    def structure_union(value, type_):
        members: Sequence[Any] = typing.get_args(type_)
        if value is None and type(None) in members:
            return None
        members = [member for member in members if member is not type(None)]
        failures = []
        for member in members:
            try:
                return _structure_item(converter, value, member)
            except SpecProblem as problem:
                failures.append(problem)
        if len(failures) == 1:
            raise failures[0]
        # the one member of the value's own kind (a mapping for a dict; a string for string choices beside
        # containers only) says it best; beside a number, "expected an integer or one of ..." says more
        alike = [failure for member, failure in zip(members, failures, strict=True) if _same_kind(value, member)]
        scalars = [member for member in members if member in (int, float, str, bool)]
        if len(alike) == 1 and (isinstance(value, Mapping) or not scalars):
            raise alike[0]
        raise SpecProblem((), f"expected {describe(type_)}, got {kind_of(value)}")

    return structure_union


def _same_kind(value: Any, member: Any) -> bool:
    """True if ``value`` is of the kind ``member`` wants: a mapping for a dict, a string for string choices."""
    origin = typing.get_origin(member) or member
    if origin is dict:
        return isinstance(value, Mapping)
    if origin is Literal:
        return isinstance(value, str) and all(isinstance(choice, str) for choice in typing.get_args(member))
    return False


def _literal(value, type_):
    choices = typing.get_args(type_)
    if value not in choices:
        raise SpecProblem((), f"'{value}' is not one of: {listing(choices)}{did_you_mean(value, choices)}")
    return value


# -- attrs classes, field by field ------------------------------------------------------------


def structure_attrs(converter: cattrs.Converter, data: Any, cls: type) -> Any:
    """``data`` as an instance of the attrs class ``cls``, or one ``SpecProblem`` with every problem.

    Each field is structured on its own; unknown and missing keys are listed; the
    instance is built with validators disabled, then every validator of every
    field runs and each failure is reported at its field (a validator's path is
    relative to its field). If a field could not be structured, the validators of
    the others still run, on a stand-in instance.
    """
    if not isinstance(data, Mapping):
        raise SpecProblem((), f"expected {describe(cls)}, got {kind_of(data)}")
    attrs.resolve_types(cls)  # string annotations (from __future__ import annotations) to types
    fields = [field for field in attrs.fields(cls) if field.init]
    problems, values, failed = Problems(), {}, False
    for field in fields:
        if field.name in data:
            with problems.collect((field.name,)):
                values[field.name] = _structure_item(converter, data[field.name], field.type)
            failed = failed or field.name not in values
        elif field.default is attrs.NOTHING:
            problems.add((field.name,), "required key missing")
            failed = True
    names = [field.name for field in fields]
    for key in data:
        if key not in names:
            problems.add((key,), f"unknown key '{key}'; expected one of: {listing(names)}{did_you_mean(key, names)}")
    instance, after_init, init_error = None, Problems(), None
    if not failed:
        try:
            with attrs.validators.disabled():
                instance = cls(**{field.alias: values[field.name] for field in fields if field.name in values})
        except SpecProblem as problem:  # from __attrs_post_init__
            after_init.extend(problem)
        except Exception as exc:  # noqa: BLE001 - reported below unless the values had problems anyway
            init_error = exc
    strict = instance is not None
    _run_validators(instance if strict else _stand_in(cls, fields, values), fields, problems, strict)
    problems.items += after_init.items
    _check_int_range(fields, values, problems)
    if init_error is not None and not problems:
        problems.add((), f"{noun(cls)} does not accept these values: {type(init_error).__name__}: {init_error}")
    problems.raise_all()
    return instance


def _stand_in(cls: type, fields: list, values: dict) -> Any:
    """An instance of ``cls`` holding ``values`` and the defaults of absent fields, without ``__init__``."""
    stand_in: Any = object.__new__(cls)
    for field in fields:
        if field.name in values:
            object.__setattr__(stand_in, field.name, values[field.name])
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]  # a class, stubbed as a function
            try:
                default = field.default.factory(stand_in) if field.default.takes_self else field.default.factory()
            except Exception:  # noqa: BLE001 - a default that needs a failed field: leave it unset
                continue
            object.__setattr__(stand_in, field.name, default)
        elif field.default is not attrs.NOTHING:
            object.__setattr__(stand_in, field.name, field.default)
    return stand_in


def _validators_of(validator) -> list:
    """The validators a field runs (an ``and_`` list is split, so every failure is reported)."""
    return list(getattr(validator, "_validators", None) or [validator])


def _run_validators(instance: Any, fields: list, problems: Problems, strict: bool) -> None:
    for field in fields:
        if field.validator is None or not hasattr(instance, field.name):
            continue
        value = getattr(instance, field.name)
        for validator in _validators_of(field.validator):
            try:
                validator(instance, field, value)
            except SpecProblem as problem:
                for path, message in problem.items:
                    problems.add((field.name, *relative_to_field(path, field.name)), message)
            except Exception as exc:  # noqa: BLE001 - attrs validators raise TypeError/ValueError
                said = failure_message(validator, exc, value, strict)
                if said is not None:
                    problems.add((field.name,), said)


def _check_int_range(fields: list, values: dict, problems: Problems) -> None:
    """Integers must fit in 64 bits; checked after the validators, whose bounds say more where a field has one."""
    for field in fields:
        if field.name not in values or not _mentions_int(field.type):
            continue
        if any(path[:1] == (field.name,) for path, _ in problems.items):
            continue
        for path, value in _ints_in(values[field.name], (field.name,)):
            if not INT64[0] <= value <= INT64[1]:
                problems.add(
                    path,
                    f"expected an integer that fits in 64 bits (at most {INT64[1]:,} in size), got {kind_of(value)}",
                )


def _mentions_int(type_) -> bool:
    return type_ is int or any(_mentions_int(arg) for arg in typing.get_args(type_))


def _ints_in(value: Any, path: Path):
    """``(path, value)`` of every int in lists and mappings (attrs instances checked themselves)."""
    if _is_int(value):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _ints_in(item, (*path, index))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _ints_in(key, (*path, key))
            yield from _ints_in(item, (*path, key))


def problems_of(exc: BaseException, path: Path = (), type_: Any = Any, value: Any = None) -> list[tuple[Path, str]]:
    """A failure to structure ``value`` as ``type_``, as ``(path, message)`` pairs in words."""
    if isinstance(exc, SpecProblem):
        return exc.prefixed(path)
    if isinstance(exc, cattrs.errors.StructureHandlerNotFoundError):
        return [(path, f"keras-graft cannot read {describe(type_)} (a type the plugin's params use); tell its author")]
    inner = getattr(exc, "exceptions", None)  # cattrs groups several failures
    if inner:
        return [item for error in inner for item in problems_of(error, path, type_, value)]
    return [(path, f"expected {describe(type_)}, got {kind_of(value)}")]


def structure(converter: cattrs.Converter, data: Any, cls: type, path: Path = ()) -> Any:
    """Structure ``data`` into ``cls``; any failure raises one ``SpecProblem`` with every problem."""
    try:
        return converter.structure(data, cls)
    except SpecProblem as problem:
        raise SpecProblem.of(problem.prefixed(path)) from None
    except Exception as exc:  # noqa: BLE001 - every failure becomes a rendered problem
        raise SpecProblem.of(problems_of(exc, path, cls, data)) from exc
