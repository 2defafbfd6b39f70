"""The optimizers a spec can name: YAML names, their Keras classes, and the options each accepts.

Options are checked when the spec is loaded (no TensorFlow), so a wrong option
fails ``graft validate``, not ``model.fit`` of a later stage. Only options that
Keras 2.15 and Keras 3 both accept are listed.  ``graft.model.optimizers`` builds them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from graft.base.problems import Path, SpecProblem, did_you_mean, kind_of, listing
from graft.spec.validators import between, fraction, non_negative, one_of, positive


@attrs.frozen
class Option:
    """One keyword argument of a Keras optimizer: its YAML type, bound and whether null is allowed."""

    kind: str  # "number", "integer" or "flag"
    check: Callable | None = None  # a graft.spec.validators check of the value
    nullable: bool = False


@attrs.frozen
class OptimizerKind:
    keras_class: str
    options: dict[str, Option]


VALUE_KINDS = {
    "number": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "integer": ("an integer", lambda v: (isinstance(v, int) and not isinstance(v, bool))
                or (isinstance(v, float) and v.is_integer())),  # 3.0 is an integer, as in JSON Schema
    "flag": ("true or false", lambda v: isinstance(v, bool)),
}

# Keras raises if more than one of these is set
CLIPPING = ("clipnorm", "clipvalue", "global_clipnorm")

COMMON = {
    "clipnorm": Option("number", positive, nullable=True),
    "clipvalue": Option("number", positive, nullable=True),
    "global_clipnorm": Option("number", positive, nullable=True),
    "weight_decay": Option("number", non_negative, nullable=True),
    "use_ema": Option("flag"),
    "ema_momentum": Option("number", fraction),
    "ema_overwrite_frequency": Option("integer", between(1, 2**31 - 1), nullable=True),
}
MOMENTS = {
    "beta_1": Option("number", fraction),
    "beta_2": Option("number", fraction),
    "epsilon": Option("number", positive),
}

OPTIMIZERS: dict[str, OptimizerKind] = {
    "adam": OptimizerKind("Adam", {**COMMON, **MOMENTS, "amsgrad": Option("flag")}),
    "adamw": OptimizerKind("AdamW", {**COMMON, **MOMENTS, "amsgrad": Option("flag")}),
    "sgd": OptimizerKind("SGD", {**COMMON, "momentum": Option("number", fraction), "nesterov": Option("flag")}),
    "rmsprop": OptimizerKind(
        "RMSprop",
        {
            **COMMON,
            "rho": Option("number", fraction),
            "momentum": Option("number", fraction),
            "epsilon": Option("number", positive),
            "centered": Option("flag"),
        },
    ),
    "nadam": OptimizerKind("Nadam", {**COMMON, **MOMENTS}),
    "adagrad": OptimizerKind(
        "Adagrad",
        {**COMMON, "initial_accumulator_value": Option("number", non_negative), "epsilon": Option("number", positive)},
    ),
}
NAMES = tuple(OPTIMIZERS)
SCHEDULES = ("one_cycle",)


def _above_zero_fraction(_instance, attribute, value) -> None:
    between(0, 1)(_instance, attribute, value)
    if value <= 0:
        raise SpecProblem((), f"must be above 0 and at most 1, got {value}")


@attrs.frozen
class Schedule:
    """``optimizer.schedule``: how the rate changes over a stage's steps.  ``one_cycle`` (fastai's
    ``fit_one_cycle``): from ``start`` × ``learning_rate`` up to ``learning_rate`` over the first ``warmup`` of
    the steps, then down on a cosine to ``end`` × ``learning_rate``.  Each round of a stage is one cycle."""

    name: str = attrs.field(validator=one_of(SCHEDULES))
    warmup: float = attrs.field(default=0.25, validator=fraction)
    start: float = attrs.field(default=0.04, validator=_above_zero_fraction)
    end: float = attrs.field(default=0.0, validator=fraction)
INTEGER_OPTIONS = frozenset(key for kind in OPTIMIZERS.values() for key, option in kind.options.items()
                            if option.kind == "integer")


def integral_options(options: Any) -> Any:
    """``options`` with every integer option written as a float (``3.0``) made the int it is."""
    if not isinstance(options, dict):
        return options
    return {key: int(value) if key in INTEGER_OPTIONS and isinstance(value, float) and value.is_integer()
            and abs(value) < 2**63 else value for key, value in options.items()}


def option_problems(name: str, options: Mapping[Any, Any]) -> list[tuple[Path, str]]:
    """Every problem of ``options`` for optimizer ``name``, at paths ``(key,)``; none for an unknown name."""
    kind = OPTIMIZERS.get(name)
    if kind is None:
        return []
    found: list[tuple[Path, str]] = []
    allowed = list(kind.options)
    for key, value in options.items():
        option = kind.options.get(key) if isinstance(key, str) else None
        if option is None:
            found.append(
                (
                    (key,),
                    f"{name} has no option '{key}'; its options: {listing(allowed, 20)}{did_you_mean(key, allowed)}",
                )
            )
        elif value is None and option.nullable:
            continue
        else:
            found += [((key,), message) for message in _value_problems(option, value)]
    clipping = [key for key in CLIPPING if options.get(key) is not None]
    if len(clipping) > 1:
        found.append(((clipping[1],), f"set only one of {', '.join(CLIPPING)}; {clipping[0]} is set too"))
    return found


def _value_problems(option: Option, value: Any) -> list[str]:
    expected, matches = VALUE_KINDS[option.kind]
    if not matches(value):
        return [f"expected {expected}{' or null' if option.nullable else ''}, got {kind_of(value)}"]
    if option.check is None:
        return []
    try:
        option.check(None, None, value)
    except SpecProblem as problem:
        return [message for _path, message in problem.items]
    return []
