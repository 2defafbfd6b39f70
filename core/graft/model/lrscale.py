"""Discriminative learning rates: a trained layer learns at the stage's rate times its ``lr_scale``.

The learning rate is scaled, never the gradient.  For SGD the two are the same,
but Adam, AdamW, RMSprop, Nadam and Adagrad divide by a running size of the
gradient, so a scaled gradient changes their step hardly at all; a scaled rate
scales the step.  Decoupled weight decay (``weight_decay``, always on in AdamW)
moves a weight by ``learning_rate * weight_decay * weight``, so it is scaled too:
a layer at scale 0 does not move at all.

The optimizer stays the Keras class the spec names, with its own saved config:
``scale_learning_rates`` wraps two methods of that one optimizer object, its
per-variable ``update_step`` and its weight decay.  Keras 3 passes the learning
rate to ``update_step``; Keras 2 reads ``optimizer.learning_rate`` inside it, so
there the rate is swapped for the scaled one while the layer's update is traced.
Variables are told apart by the optimizer's own ``_var_key``, which
``tf.distribute`` replicas of a variable share.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from graft.plugins.layers import LayerDecision, LayerInfo


def layer_scales(decisions: Mapping[str, LayerDecision]) -> dict[str, float]:
    """The trained (or adapted) layers whose learning rate is scaled, and their scales (an adapted layer's
    scale applies to its adapter, the only part of it that trains)."""
    return {name: decision.lr_scale for name, decision in decisions.items()
            if decision.learns and decision.lr_scale != 1.0}


def scale_learning_rates(optimizer: Any, layers: Iterable[LayerInfo], scales: Mapping[str, float]) -> None:
    """Make ``optimizer`` update each layer named in ``scales`` at its learning rate times the scale.

    Call it before the optimizer's first step (after ``model.compile`` is fine:
    Keras builds the optimizer at the first step).  Layers not in ``scales`` keep
    the optimizer's own rate.
    """
    if not scales:
        return
    if _is_schedule(optimizer):
        _check_schedule_scales(optimizer)
    by_variable = {
        optimizer._var_key(variable): scales[info.name]
        for info in layers
        if info.name in scales
        for variable in info.layer.trainable_weights
    }

    def scale_of(variable: Any) -> float:
        return by_variable.get(optimizer._var_key(variable), 1.0)

    update_step = optimizer.update_step  # the bound method of the optimizer's class
    passes_rate = "learning_rate" in inspect.signature(update_step).parameters  # Keras 3

    def scaled_update_step(gradient: Any, variable: Any, *rate: Any) -> Any:
        scale = scale_of(variable)
        if scale == 1.0:
            return update_step(gradient, variable, *rate)
        if scale == 0.0:
            return None  # the layer does not move (its optimizer slots stay as they were)
        if passes_rate:
            return update_step(gradient, variable, rate[0] * scale)
        with _learning_rate_times(optimizer, scale):
            return update_step(gradient, variable)

    apply_weight_decay = optimizer._apply_weight_decay

    def scaled_weight_decay(variables: Any) -> Any:
        if getattr(optimizer, "weight_decay", None) is None:
            return apply_weight_decay(variables)
        groups: dict[float, list[Any]] = {}
        for variable in variables:
            groups.setdefault(scale_of(variable), []).append(variable)
        for scale, group in groups.items():
            if scale == 1.0:
                apply_weight_decay(group)
            elif scale != 0.0:
                with _learning_rate_times(optimizer, scale):
                    apply_weight_decay(group)
        return None

    # instance attributes, set past Keras's attribute tracking: the class and its saved config stay Keras's
    optimizer.__dict__["update_step"] = scaled_update_step
    optimizer.__dict__["_apply_weight_decay"] = scaled_weight_decay


def _is_schedule(optimizer: Any) -> bool:
    return callable(optimizer.__dict__.get("_learning_rate"))


def _check_schedule_scales(optimizer: Any) -> None:
    """A schedule with per-layer scales works where Keras 3 passes the scheduled rate to each update, and without
    weight decay (which reads the rate itself)."""
    from graft.base.problems import GraftError

    if "learning_rate" not in inspect.signature(optimizer.update_step).parameters:
        raise GraftError("optimizer.schedule with per-layer learning-rate scales (lr_scale, layer_decay) needs "
                         "Keras 3 (TensorFlow 2.16 or later); remove one of them")
    if getattr(optimizer, "weight_decay", None):
        raise GraftError("optimizer.schedule with per-layer learning-rate scales (lr_scale, layer_decay) cannot "
                         "scale weight decay; set options: {weight_decay: null} or remove one of them")


@contextlib.contextmanager
def _learning_rate_times(optimizer: Any, scale: float) -> Iterator[None]:
    """While inside, ``optimizer.learning_rate`` reads as the rate variable times ``scale``.

    Used while TensorFlow traces an update: the traced step multiplies the rate
    variable's value at every step, so callbacks that change the rate still act.
    """
    rate = optimizer.__dict__["_learning_rate"]
    optimizer.__dict__["_learning_rate"] = rate * scale
    try:
        yield
    finally:
        optimizer.__dict__["_learning_rate"] = rate
