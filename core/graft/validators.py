"""attrs validators that report their problem at the field's YAML path.

Plugin authors use them on params classes::

    units: int = attrs.field(validator=graft.validators.positive)
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from graft.problems import SpecProblem, did_you_mean, listing


def positive(_instance, attribute, value) -> None:
    """The number must be greater than zero."""
    if value <= 0:
        raise SpecProblem((attribute.name,), f"must be greater than 0, got {value}")


def non_negative(_instance, attribute, value) -> None:
    """The number must be zero or more."""
    if value < 0:
        raise SpecProblem((attribute.name,), f"must be 0 or more, got {value}")


def fraction(_instance, attribute, value) -> None:
    """The number must lie in [0, 1)."""
    if not 0 <= value < 1:
        raise SpecProblem((attribute.name,), f"must be at least 0 and below 1, got {value}")


def non_empty(_instance, attribute, value) -> None:
    """The list or mapping must have at least one entry."""
    if len(value) == 0:
        raise SpecProblem((attribute.name,), "must not be empty")


def one_of(choices: Iterable[str]):
    """The value must be one of ``choices``; suggests the closest."""
    choices = list(choices)

    def check(_instance, attribute, value) -> None:
        if value not in choices:
            raise SpecProblem(
                (attribute.name,),
                f"'{value}' is not one of: {listing(choices, 20)}{did_you_mean(str(value), choices)}",
            )

    return check


NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def identifier(_instance, attribute, value) -> None:
    """Letters, digits and underscores, not starting with a digit (a Keras layer name)."""
    if not NAME.match(value):
        raise SpecProblem((attribute.name,), f"'{value}' is not a valid name: use letters, digits and _")


def each(check):
    """Apply ``check`` to every item of a list, reporting at the item's index."""

    def run(instance, attribute, values) -> None:
        problems = []
        for index, value in enumerate(values):
            try:
                check(instance, attribute, value)
            except SpecProblem as problem:
                problems.append(SpecProblem((attribute.name, index), problem.items[0][1]))
        problem = SpecProblem.combine(problems)
        if problem:
            raise problem

    return run
