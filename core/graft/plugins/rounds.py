"""Training a stage in rounds: a policy may answer with several sets of decisions.

Most policies decide once per stage. A progressive policy answers with
``Rounds``: the stage trains round after round, each with its own trainable
layers, continuing from the previous round's weights, and stops when the
validation loss stops improving; the weights of the best round are kept.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from graft.plugins.layers import LayerDecision


@attrs.frozen
class Round:
    """One round: a label for reports, the layers it unfreezes, and every layer's decision."""

    label: str
    decisions: dict[str, LayerDecision]
    unfrozen: tuple[str, ...] = ()


def _steps(value: Iterable[Round]) -> tuple[Round, ...]:
    return tuple(value)


@attrs.frozen
class Rounds:
    """A policy's answer for round-by-round training.

    Where each layer's weights start comes from the first round's decisions.
    Training stops after ``patience`` rounds without the validation loss
    improving on the best by more than ``min_delta``, or after the last round.
    """

    steps: tuple[Round, ...] = attrs.field(converter=_steps)
    min_delta: float = 0.0
    patience: int = 1

    @property
    def first(self) -> dict[str, LayerDecision]:
        return self.steps[0].decisions


def as_rounds(answer: dict[str, LayerDecision] | Rounds) -> Rounds:
    """A single set of decisions is one round."""
    return answer if isinstance(answer, Rounds) else Rounds([Round("all", answer)])


@attrs.define
class Plateau:
    """Tracks the best loss over rounds and says when to stop.

    >>> plateau = Plateau(min_delta=0.01, patience=2)
    >>> [plateau.update(loss) for loss in (1.0, 0.8, 0.795, 0.799)]
    [False, False, False, True]
    >>> plateau.best_index
    1
    """

    min_delta: float
    patience: int
    best_loss: float = float("inf")
    best_index: int = -1
    seen: int = 0

    def update(self, loss: float) -> bool:
        """Record the next round's loss; True when training should stop."""
        if loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_index = loss, self.seen
        self.seen += 1
        return self.seen - 1 - self.best_index >= self.patience
