"""A frozen extractor is a constant function: compute its features once, train the heads on them.

When every extractor layer is frozen and none behaves differently in training
(no dropout or noise, BatchNormalization frozen and so in inference mode), the
features of each sample are the same in every epoch.  Training the heads on
features computed once gives the same result as training the whole model, at the
cost of the heads alone.  The heads' layers are shared, so the composed model
ends up with the trained heads.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from graft.builder import BuiltModel
from graft.data import Dataset
from graft.layers import LayerDecision

# Layers whose output in training differs from inference even when frozen.
STOCHASTIC_LAYERS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                     "GaussianNoise", "GaussianDropout", "AlphaDropout")


def extractor_is_constant(built: BuiltModel, decisions: dict[str, LayerDecision]) -> bool:
    """True if, with these decisions, the extractor computes the same features in every epoch."""
    for info in built.layers:
        if not info.in_extractor:
            continue
        if decisions[info.name].trainable or _is_stochastic(info.class_name, info.layer):
            return False
    return True


def _is_stochastic(class_name: str, layer: Any) -> bool:
    if class_name in STOCHASTIC_LAYERS or class_name.startswith("Random"):
        return True
    config = layer.get_config()
    return bool(config.get("dropout") or config.get("recurrent_dropout"))


@attrs.frozen
class CachedFeatures:
    """The heads as a model of their own, and the extractor's features of the stage's data."""

    heads: Any
    data: Dataset


def cache_features(keras, built: BuiltModel, dataset: Dataset, batch_size: int) -> CachedFeatures:
    """Run the extractor once over the training (and validation) inputs."""
    heads = keras.Model(built.features, built.model.outputs, name="graft_heads")

    def features(x: np.ndarray) -> np.ndarray:
        return np.asarray(built.extractor.predict(x, batch_size=batch_size, verbose=0))

    data = attrs.evolve(
        dataset,
        x=features(dataset.x),
        x_val=features(dataset.x_val) if dataset.has_validation else None,
    )
    return CachedFeatures(heads, data)
