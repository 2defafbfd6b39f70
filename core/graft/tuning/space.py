"""A sweep's search space: a YAML file of ``--set`` paths, each with a range or a list of choices.

    stage: transfer                  # the stage swept (or graft sweep --stage)
    trials: 20
    metric: val_loss                 # a value Keras logs for the stage, every epoch
    direction: minimize
    pruner: median                   # median | halving | none
    params:
      stages.transfer.optimizer.learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
      stages.transfer.policy.params.top: {int: [1, 6]}
      stages.transfer.heads.trend.params.activation: {choice: [relu, gelu]}

Reading it checks its own shape; ``graft.tuning.vetting`` then checks it against the spec.
"""

from __future__ import annotations

import json
import math
from typing import Any

import attrs
import yaml

from graft.base.problems import GraftError, Path, SpecError, kind_of
from graft.spec.overrides import Override, OverrideError, parse_override
from graft.spec.specfile import read_spec_text, render
from graft.spec.yamlfile import YamlDocument, YamlProblem, load_yaml

KINDS = ("uniform", "loguniform", "int", "logint", "choice")
PRUNERS = ("median", "halving", "none")
DIRECTIONS = ("minimize", "maximize")
KEYS = ("stage", "trials", "metric", "direction", "pruner", "seed", "params")
MAX_TRIALS = 100_000


class SweepError(GraftError):
    """A sweep that cannot start or go on: a search space, a sweep folder or a study that cannot be used."""


@attrs.frozen
class Param:
    """One swept value: its ``--set`` path, how it is drawn (``kind``), its range or choices, its line."""

    path: str
    keys: tuple[str | int, ...]
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[Any, ...] = ()
    line: int | None = None

    def override(self, value: Any) -> Override:
        """The ``--set`` that gives this parameter ``value``."""
        return Override(f"{self.path}={shown_value(value)}", self.keys, value)

    def ends(self) -> list[Any]:
        """The values that prove the range: both ends, or every choice."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]


@attrs.frozen
class SearchSpace:
    """A vetted search-space file: what is swept, how many trials, what is optimised."""

    path: str
    params: tuple[Param, ...]
    stage: str | None = None
    trials: int = 20
    metric: str = "val_loss"
    direction: str = "minimize"
    pruner: str = "median"
    seed: int = 0
    document: YamlDocument = attrs.field(factory=lambda: YamlDocument({}, {}), repr=False, eq=False)

    def error(self, path: Path, message: str) -> SpecError:
        """``SpecError`` naming ``path`` of this file and its line."""
        return render(self.path, self.document, [(path, message)])


def read_space(path: str) -> SearchSpace:
    """The search space in the YAML file at ``path``; ``SpecError`` listing every problem at its line."""
    text = read_spec_text(path)
    try:
        document = load_yaml(text, path)
    except YamlProblem as problem:
        raise render(path, YamlDocument(None, problem.lines), problem.items) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise SpecError(path, [f"{where}not valid YAML: {getattr(exc, 'problem', None) or exc}"]) from None
    if document.duplicates or document.unreadable:
        raise render(path, document, document.duplicates + document.unreadable)
    return parse_space(document, path)


def parse_space(document: YamlDocument, path: str) -> SearchSpace:
    """The search space in a parsed YAML ``document``; ``SpecError`` listing every problem."""
    data = document.data
    problems: list[tuple[Path, str]] = []
    if not isinstance(data, dict):
        raise render(path, document, [((), f"a search space is a mapping with {', '.join(KEYS)}; got {kind_of(data)}")])
    for key in data:
        if key not in KEYS:
            problems.append(((key,), f"unknown key; a search space has {', '.join(KEYS)}"))
    fields: dict[str, Any] = {}
    stage = data.get("stage")
    if stage is not None and not isinstance(stage, str):
        problems.append((("stage",), f"the name of the stage swept, got {kind_of(stage)}"))
    fields["stage"] = stage
    trials = data.get("trials", 20)
    if not _is_int(trials) or not 1 <= trials <= MAX_TRIALS:
        problems.append((("trials",), f"a number of trials from 1 to {MAX_TRIALS:,}, got {kind_of(trials)}"))
    fields["trials"] = trials
    for key, allowed in (("direction", DIRECTIONS), ("pruner", PRUNERS)):
        value = data.get(key, attrs.fields_dict(SearchSpace)[key].default)
        if value not in allowed:
            problems.append(((key,), f"one of {', '.join(allowed)}, got {kind_of(value)}"))
        fields[key] = value
    metric = data.get("metric", "val_loss")
    if not isinstance(metric, str) or not metric:
        problems.append((("metric",), f"the name of a value Keras logs every epoch (val_loss), got {kind_of(metric)}"))
    fields["metric"] = metric
    seed = data.get("seed", 0)
    if not _is_int(seed) or seed < 0:
        problems.append((("seed",), f"the sampler's seed, a whole number from 0, got {kind_of(seed)}"))
    fields["seed"] = seed
    raw = data.get("params")
    params: list[Param] = []
    if not isinstance(raw, dict) or not raw:
        problems.append((("params",), "a mapping of --set paths to ranges, such as "
                                      "stages.transfer.optimizer.learning_rate: {loguniform: [1.0e-4, 1.0e-2]}"))
    else:
        for name, drawn in raw.items():
            try:
                params.append(_param(str(name), drawn, document.line_of(("params", name))))
            except _Bad as bad:
                problems.append((("params", name, *bad.under), bad.message))
    if problems:
        raise render(path, document, problems)
    return SearchSpace(path=path, params=tuple(params), document=document, **fields)


class _Bad(Exception):
    def __init__(self, message: str, under: Path = ()) -> None:
        super().__init__(message)
        self.message, self.under = message, under


def _param(name: str, drawn: Any, line: int | None) -> Param:
    try:
        keys = parse_override(f"{name}=0").keys
    except OverrideError as exc:
        raise _Bad(exc.why) from None
    if "*" in keys:
        raise _Bad("a swept path names one value: write the list entry ('stages.transfer'), not '*'")
    example = "{loguniform: [1.0e-4, 1.0e-2]}, {int: [1, 6]} or {choice: [relu, gelu]}"
    if not isinstance(drawn, dict) or len(drawn) != 1:
        raise _Bad(f"one of {', '.join(KINDS)} with its range, such as {example}; got {kind_of(drawn)}")
    ((kind, value),) = drawn.items()
    if kind not in KINDS:
        raise _Bad(f"'{kind}' is not a kind of range; use one of {', '.join(KINDS)}, such as {example}", (kind,))
    if kind == "choice":
        if not isinstance(value, list) or not value:
            raise _Bad(f"a list of the values to try, got {kind_of(value)}", (kind,))
        for choice in value:
            if not isinstance(choice, (str, int, float, bool)) and choice is not None:
                raise _Bad(f"a choice is a plain value (a name, a number, true/false, null), got {kind_of(choice)}; "
                           "Optuna records choices as such", (kind,))
        return Param(name, keys, kind, choices=tuple(value), line=line)
    if not isinstance(value, list) or len(value) != 2:
        raise _Bad(f"[low, high], got {kind_of(value)}", (kind,))
    low, high = value
    integral = kind in ("int", "logint")
    number = _is_int if integral else _is_number
    for end in (low, high):
        if not number(end):
            raise _Bad(f"[low, high] of {'whole numbers' if integral else 'numbers'}, got {kind_of(end)}", (kind,))
    if not low < high:
        raise _Bad(f"low must be below high, got [{low}, {high}]", (kind,))
    if kind.startswith("log") and low <= 0:
        raise _Bad(f"a log range starts above 0, got [{low}, {high}]", (kind,))
    return Param(name, keys, kind, low=low if integral else float(low), high=high if integral else float(high),
                 line=line)


def shown_value(value: Any) -> str:
    """``value`` as YAML on a ``--set`` line: names bare, anything else as JSON (which YAML reads back)."""
    if isinstance(value, str) and value.isidentifier() and value.lower() not in ("true", "false", "null", "yes", "no",
                                                                                  "on", "off", "y", "n"):
        return value
    return json.dumps(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
