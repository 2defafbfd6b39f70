"""What each hook must return, checked before keras-graft uses the answer.

Each check returns the answer as keras-graft uses it, or raises ``WrongAnswer``
with what was wrong; the registry adds which plugin gave it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from graft.base.problems import listing
from graft.plugins.datasets import Data, Dataset, Stream
from graft.plugins.layers import ADAPTABLE, DeclaredLayer, LayerDecision, LayerInfo
from graft.plugins.rounds import Round, Rounds


class WrongAnswer(Exception):
    """A hook returned something it must not."""


def shown(value: Any) -> str:
    """A short description of a returned value: ``None``, ``a list``, ``int 3``."""
    if value is None:
        return "None"
    if isinstance(value, (bool, int, float, str)):
        return f"{type(value).__name__} {value!r:.60}"
    return f"a {type(value).__name__}"


def extractor_model(keras, answer: Any) -> Any:
    """A ``keras.Model``."""
    if not isinstance(answer, keras.Model):
        raise WrongAnswer(f"returned {shown(answer)}, not a keras.Model")
    return answer


def head_output(answer: Any, head: str) -> Any:
    """One symbolic tensor made by a layer named ``head``."""
    history = getattr(answer, "_keras_history", None)  # Keras 2 and 3: (layer, node index, tensor index)
    if history is None:
        raise WrongAnswer(f"returned {shown(answer)}, not one symbolic tensor made by a Keras layer on the features")
    layer_name = getattr(history[0], "name", None)
    if layer_name != head:
        raise WrongAnswer(
            f"returned the output of layer '{layer_name}': the output layer of head '{head}' must be named '{head}'"
        )
    return answer


def declared_layers(answer: Any, part: str) -> tuple[LayerInfo, ...] | None:
    """None, or a sequence of ``graft.DeclaredLayer`` with distinct names, as the ``LayerInfo`` of ``part``."""
    if answer is None:
        return None
    if isinstance(answer, (str, bytes, Mapping)) or not isinstance(answer, Sequence):
        raise WrongAnswer(f"returned {shown(answer)}, not a list of graft.DeclaredLayer (or None)")
    wrong = [shown(item) for item in answer if not isinstance(item, DeclaredLayer)]
    if wrong:
        raise WrongAnswer(f"returned a list holding {wrong[0]}, not only graft.DeclaredLayer")
    names = [item.name for item in answer]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise WrongAnswer(f"declared layer names twice: {listing(twice)}")
    if part != "extractor" and answer and answer[-1].name != part:
        raise WrongAnswer(
            f"declared '{answer[-1].name}' last: the output layer of head '{part}' must be named '{part}'"
        )
    return tuple(item.info(part) for item in answer)


def policy_rounds(answer: Any, layers: Sequence[LayerInfo]) -> Rounds:
    """A decision for every layer, as ``Rounds`` (a single mapping is one round)."""
    if isinstance(answer, Rounds):
        if not answer.steps:
            raise WrongAnswer("returned a graft.Rounds without rounds")
        for number, step in enumerate(answer.steps):
            if not isinstance(step, Round):
                raise WrongAnswer(f"returned a graft.Rounds whose round {number} is {shown(step)}, not a graft.Round")
            _check_decisions(step.decisions, layers, f"round {number} ('{step.label}'): ")
        return answer
    if not isinstance(answer, Mapping):
        raise WrongAnswer(
            f"returned {shown(answer)}; it must return a dict {{layer name: graft.LayerDecision}} or a graft.Rounds"
        )
    _check_decisions(answer, layers, "")
    return Rounds([Round("all", dict(answer))])


def _check_decisions(decisions: Any, layers: Sequence[LayerInfo], where: str) -> None:
    if not isinstance(decisions, Mapping):
        raise WrongAnswer(f"{where}decisions are {shown(decisions)}, not a dict {{layer name: graft.LayerDecision}}")
    names = [info.name for info in layers]
    unknown = [str(name) for name in decisions if name not in names]
    if unknown:
        raise WrongAnswer(
            f"{where}decided for {', '.join(repr(name) for name in unknown)}, which the model does not have; "
            f"layers: {listing(names)}"
        )
    missing = [name for name in names if name not in decisions]
    if missing:
        raise WrongAnswer(f"{where}decided nothing for {listing(missing)}; a policy decides for every layer")
    wrong = [f"'{name}' is {shown(value)}" for name, value in decisions.items() if not isinstance(value, LayerDecision)]
    if wrong:
        raise WrongAnswer(f"{where}decisions must be graft.LayerDecision: {'; '.join(wrong[:3])}")
    scaled = [f"'{name}' ({value.lr_scale:g})" for name, value in decisions.items()
              if not value.learns and value.lr_scale != 1.0]
    if scaled:
        raise WrongAnswer(
            f"{where}gave a learning-rate scale to frozen layers: {', '.join(scaled[:3])}; "
            "lr_scale applies to trained or adapted layers (leave it 1.0 for a frozen one)"
        )
    kinds = {info.name: info.class_name for info in layers}
    unfit = [f"'{name}' ({kinds[name]})" for name, value in decisions.items()
             if value.adapt is not None and kinds[name] not in ADAPTABLE]
    if unfit:
        raise WrongAnswer(
            f"{where}adapted layers of a kind that cannot be adapted: {', '.join(unfit[:3])}; "
            f"adaptable kinds: {', '.join(ADAPTABLE)}"
        )


def dataset(answer: Any) -> Data:
    """A ``graft.Dataset`` or a ``graft.Stream``."""
    if not isinstance(answer, (Dataset, Stream)):
        raise WrongAnswer(f"returned {shown(answer)}, not a graft.Dataset or graft.Stream")
    if isinstance(answer, Stream):
        for field in ("train", "validation"):
            value = getattr(answer, field)
            if (value is not None or field == "train") and not hasattr(value, "element_spec"):
                raise WrongAnswer(f"returned a graft.Stream whose {field} is {shown(value)}, not a tf.data.Dataset")
        if answer.read is not None and not callable(answer.read):
            raise WrongAnswer(f"returned a graft.Stream whose read is {shown(answer.read)}, not a function")
    return answer
