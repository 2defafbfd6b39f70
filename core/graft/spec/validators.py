"""attrs validators that report their problem at the field's YAML path.

Plugin authors use them on params classes::

    units: int = attrs.field(validator=graft.validators.positive)

A validator reports a problem by raising ``graft.SpecProblem(path, message)``
where ``path`` is relative to the field it validates: ``()`` is the field
itself, ``(2,)`` its third item, ``("a",)`` its key ``a``. (A path that starts
with the field's own name, as older validators wrote, is taken as the same
thing and not doubled.) keras-graft runs every validator of every field and
reports all their problems at once; plain ``attrs.validators`` work too.

Files named in params are checked when the spec is loaded with
``existing_file``, which resolves the path against ``spec_folder()``, the folder
of the spec being loaded (relative paths in a spec are relative to it)::

    path: str = attrs.field(validator=graft.validators.existing_file)

and the hook resolves it the same way at run time with its ``base_dir`` argument.
"""

from __future__ import annotations

import contextvars
import math
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs

from graft.base.files import not_a_file
from graft.base.paths import as_written
from graft.base.problems import Path, Problems, SpecProblem, did_you_mean, kind_of, listing, printable
from graft.spec.typewords import describe


def _finite(value) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecProblem((), f"must be a finite number, got {value}")


def finite(_instance, _attribute, value) -> None:
    """The number must not be NaN or infinite."""
    _finite(value)


def positive(_instance, _attribute, value) -> None:
    """The number must be finite and greater than zero."""
    _finite(value)
    if value <= 0:
        raise SpecProblem((), f"must be greater than 0, got {value}")


def non_negative(_instance, _attribute, value) -> None:
    """The number must be finite and zero or more."""
    _finite(value)
    if value < 0:
        raise SpecProblem((), f"must be 0 or more, got {value}")


def fraction(_instance, _attribute, value) -> None:
    """The number must lie in [0, 1)."""
    _finite(value)
    if not 0 <= value < 1:
        raise SpecProblem((), f"must be at least 0 and below 1, got {value}")


def between(low, high):
    """The number must be finite and lie in [low, high]."""

    def check(_instance, _attribute, value) -> None:
        _finite(value)
        if not low <= value <= high:
            raise SpecProblem((), f"must be from {low:,} to {high:,}, got {value:,}")

    return check


def non_empty(_instance, _attribute, value) -> None:
    """The list or mapping must have at least one entry."""
    if len(value) == 0:
        raise SpecProblem((), "must not be empty")


def one_of(choices: Iterable[str]):
    """The value must be one of ``choices``; suggests the closest."""
    choices = list(choices)

    def check(_instance, _attribute, value) -> None:
        if value not in choices:
            raise SpecProblem((), f"'{value}' is not one of: {listing(choices, 20)}{did_you_mean(value, choices)}")

    return check


def unless(words: Iterable[str], check):
    """One of ``words`` passes as it is; any other value must pass ``check``.

        layers: int | Literal["all"] = attrs.field(validator=graft.validators.unless(["all"], positive))
    """
    words = list(words)

    def check_unless(instance, attribute, value) -> None:
        if isinstance(value, str) and value in words:
            return
        check(instance, attribute, value)

    return check_unless


NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_name(value: object) -> bool:
    """Letters, digits and underscores, not starting with a digit; no trailing newline."""
    return isinstance(value, str) and NAME.fullmatch(value) is not None


def identifier(_instance, _attribute, value) -> None:
    """Letters, digits and underscores, not starting with a digit (a Keras layer name)."""
    if not is_name(value):
        raise SpecProblem((), f"{value!r} is not a valid name: use letters, digits and _")


def relative_to_field(path: Path, field_name: str) -> Path:
    """A validator's problem path relative to its field (an older path naming the field is not doubled)."""
    path = tuple(path)
    return path[1:] if path[:1] == (field_name,) else path


def each(check):
    """Apply ``check`` to every item of a list, reporting every problem at the item's index."""

    def run(instance, attribute, values) -> None:
        problems = Problems()
        for index, value in enumerate(values):
            try:
                check(instance, attribute, value)
            except SpecProblem as problem:  # its path is relative to the item (or names the field, as before)
                for path, message in problem.items:
                    problems.add((index, *relative_to_field(path, attribute.name)), message)
        problems.raise_all()

    return run


COMPARISONS = {"<": "less than", "<=": "at most", ">=": "at least", ">": "greater than"}


def failure_message(validator, exc: Exception, value: Any, strict: bool = True) -> str | None:
    """What an ``attrs.validators`` validator that raised ``exc`` found wrong, in words.

    Another exception gives its message if ``strict``, else None (it may be a crash, not a finding).
    """
    validator = getattr(validator, "validator", validator)  # attrs.validators.optional(...)
    unit = "characters" if isinstance(value, str) else "items"
    if getattr(validator, "compare_op", None) in COMPARISONS:
        return f"must be {COMPARISONS[validator.compare_op]} {validator.bound}, got {value}"
    if hasattr(validator, "min_length"):
        return f"must have at least {validator.min_length} {unit}, got {len(value)}"
    if hasattr(validator, "max_length"):
        return f"must have at most {validator.max_length} {unit}, got {len(value)}"
    args = exc.args
    if len(args) == 4 and isinstance(args[1], attrs.Attribute):  # instance_of, in_, matches_re
        if isinstance(exc, TypeError):
            return f"expected {describe(args[2])}, got {kind_of(value)}"
        if isinstance(args[2], re.Pattern):
            return f"'{value}' does not match the pattern {args[2].pattern}"
        choices = list(args[2])
        return f"'{value}' is not one of: {listing(choices, 20)}{did_you_mean(value, choices)}"
    if not strict:
        return None
    if args and isinstance(args[0], str):
        return args[0]
    return f"is not accepted ({type(exc).__name__})"


# -- files next to the spec ----------------------------------------------------------

_SPEC_FOLDER: contextvars.ContextVar[str | None] = contextvars.ContextVar("graft_spec_folder", default=None)


def spec_folder() -> str:
    """The folder of the spec being loaded; the current directory outside a load."""
    return _SPEC_FOLDER.get() or os.getcwd()


@contextmanager
def loading_spec_in(folder: str) -> Iterator[None]:
    """Within the block, ``spec_folder()`` is ``folder`` (keras-graft sets it while structuring a spec)."""
    token = _SPEC_FOLDER.set(os.path.abspath(folder))
    try:
        yield
    finally:
        _SPEC_FOLDER.reset(token)


# -- the model's input, for params that depend on it ---------------------------------------

_INPUT_SHAPE: contextvars.ContextVar[tuple[int, ...] | None] = contextvars.ContextVar("graft_input_shape", default=None)


def model_input_shape() -> tuple[int, ...] | None:
    """``model.input_shape`` of the spec being loaded, for a params check that depends on it (an
    extractor's smallest input), so that ``graft validate`` reports it; None outside a load, or when
    ``model.input_shape`` is not a list of positive integers (that is reported at ``model.input_shape``)."""
    return _INPUT_SHAPE.get()


@contextmanager
def loading_model_input(shape: Any) -> Iterator[None]:
    """Within the block, ``model_input_shape()`` is ``shape`` as a tuple, or None if it is not a list of
    positive integers (keras-graft sets it to the raw ``model.input_shape`` while structuring a spec)."""
    valid = isinstance(shape, (list, tuple)) and bool(shape) and all(
        ((isinstance(size, int) and not isinstance(size, bool)) or (isinstance(size, float) and size.is_integer()))
        and 0 < size < 2**63 for size in shape
    )  # 8.0 is the integer 8, as the spec reads it (graft.spec.convert)
    token = _INPUT_SHAPE.set(tuple(int(size) for size in shape) if valid else None)
    try:
        yield
    finally:
        _INPUT_SHAPE.reset(token)


def existing_file(_instance, _attribute, value) -> None:
    """The value is a path to an existing regular file, relative to the spec's folder (``~`` expanded); a
    folder, a FIFO or a device is reported as what it is."""
    path = os.path.normpath(os.path.join(spec_folder(), os.path.expanduser(value)))
    problem = file_problem(path, shown_as=as_written(value, path))
    if problem is not None:
        raise SpecProblem((), problem)


def file_problem(path: str, what: str = "file", shown_as: str | None = None) -> str | None:
    """Why ``path`` is not an existing regular file (``what`` names it: ``weights file``), or None; the message
    names it ``shown_as`` (as the user wrote it, ``graft.base.paths.as_written``).  Only ``stat``: a FIFO is
    never opened."""
    name = shown_as if shown_as is not None else path
    if "\0" in path:
        return f"{printable(name)} holds a NUL byte, which no file name can; give the path of a {what}"
    kind = not_a_file(path)
    if kind == "a folder":
        return f"{name} is a folder; give the path of a {what}"
    if kind is not None:
        return f"{name} is {kind}, not a {what}; give the path of a regular {what}"
    if not os.path.isfile(path):
        return f"{what} not found: {name}"
    return None


def existing_folder(_instance, _attribute, value) -> None:
    """The value is a path to an existing folder, relative to the spec's folder (``~`` expanded)."""
    path = os.path.normpath(os.path.join(spec_folder(), os.path.expanduser(value)))
    name = as_written(value, path)
    if "\0" in path:
        raise SpecProblem((), f"{printable(name)} holds a NUL byte, which no folder name can")
    kind = not_a_file(path)
    if kind is None and os.path.isfile(path):
        raise SpecProblem((), f"{name} is a file; give the path of a folder")
    if kind is not None and kind != "a folder":
        raise SpecProblem((), f"{name} is {kind}; give the path of a folder")
    if not os.path.isdir(path):
        raise SpecProblem((), f"folder not found: {name}")


FOLDER_INPUT = "graft.folder_input"  # attrs metadata key: the field names a folder the stage reads


def folder_input(optional: bool = False, **kwargs: Any) -> Any:
    """An ``attrs.field`` naming a folder of data, relative to the spec's folder::

        directory: str = graft.validators.folder_input()
        validation_directory: str | None = graft.validators.folder_input(optional=True, default=None)

    It is checked to exist when the spec is loaded, and the names, sizes and
    modification times of the files in it go into the stage's fingerprint, so
    a finished stage is not resumed over once a file in the folder changed.
    """
    validators = kwargs.pop("validator", [])
    validators = list(validators) if isinstance(validators, (list, tuple)) else [validators]
    metadata = {**kwargs.pop("metadata", {}), FOLDER_INPUT: True}
    check = attrs.validators.optional(existing_folder) if optional else existing_folder
    return attrs.field(validator=[check, *validators], metadata=metadata, **kwargs)
