"""A frozen extractor is a constant function: compute its features once, train the heads on them.

When every extractor layer is frozen and none behaves differently in training
(no dropout or noise, BatchNormalization frozen and so in inference mode), the
features of each sample are the same in every epoch.  Training the heads on
features computed once gives the same result as training the whole model, at the
cost of the heads alone.  The heads' layers are shared, so the composed model
ends up with the trained heads.

The features are written to disk batch by batch (``graft.features.store``) and
read back a batch at a time, so data larger than memory trains on them too, and
a later run of the same extractor on the same data (another head, learning rate
or number of epochs) reuses them.  What is read back is proven against the chunk
digests recorded when it was written (``graft.features.digests``): a reused entry
whole before the heads train (a damaged one is removed and computed again), and
every chunk again as it is read if its file changed since; damage found while the
heads train stops the stage (``CachedFeatures.stop_if_damaged``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from graft.data.pipeline import batches_in_order, sample_spec
from graft.features.digests import FeatureCacheDamaged
from graft.model.builder import BuiltModel
from graft.plugins.datasets import Data, Dataset
from graft.plugins.layers import LayerDecision

# Layers whose output in training differs from inference even when frozen.
STOCHASTIC_LAYERS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                     "GaussianNoise", "GaussianDropout", "AlphaDropout")


def extractor_is_constant(built: BuiltModel, decisions: dict[str, LayerDecision]) -> bool:
    """True if, with these decisions, the extractor computes the same features in every epoch."""
    for info in built.layers:
        if not info.in_extractor:
            continue
        if decisions[info.name].learns or _is_stochastic(info.class_name, info.layer):
            return False
    return True


def feature_plan(
    built: BuiltModel, decisions: dict[str, LayerDecision], augmented: bool, multi_worker: bool = False
) -> str:
    """What happens to the extractor's features in a stage with these decisions, for the plan."""
    if any(decisions[info.name].learns for info in built.layers if info.in_extractor):
        return ""
    stochastic = [
        info.name for info in built.layers if info.in_extractor and _is_stochastic(info.class_name, info.layer)
    ]
    if stochastic:
        return f"not cached: {stochastic[0]} is random in training, so the features differ every epoch"
    if augmented:
        return "not cached: augment changes the extractor's inputs every epoch"
    if multi_worker:
        return "not cached: under multi_worker every worker trains the whole model on its share of each batch"
    return "the extractor is frozen: computed once, stored on disk, reused by later runs on the same data"


def _is_stochastic(class_name: str, layer: Any) -> bool:
    if class_name in STOCHASTIC_LAYERS or class_name.startswith("Random"):
        return True
    config = layer.get_config()
    return bool(config.get("dropout") or config.get("recurrent_dropout"))


@attrs.frozen
class FeatureCache:
    """Where a stage's frozen-extractor features are kept: the store, and what identifies the stage's data."""

    store: Any  # graft.features.store.FeatureStore
    data_identity: str


@attrs.frozen
class CachedFeatures:
    """The heads as a model of their own, and the extractor's features of the stage's data (on disk)."""

    heads: Any
    data: Dataset
    reused: bool
    stored: Any  # graft.features.store.StoredFeatures: held (and so kept from `graft cache clear`) until closed
    store: Any  # graft.features.store.FeatureStore: where it is kept

    def close(self) -> None:
        self.stored.close()

    def stop_if_damaged(self, stage: str) -> None:
        """If a read while the heads trained found a chunk that does not match its digest: remove the entry
        and raise ``FeatureCacheDamaged`` saying so (the stage stops; the next run computes the features)."""
        damage = self.stored.damage
        if damage is None:
            return
        path = self.stored.path
        self.store.discard_damaged(self.stored)
        raise FeatureCacheDamaged(
            f"stage '{stage}' stopped: the cached features {path} changed on disk while the heads trained on them "
            f"({damage}); the entry is removed and nothing of this stage was written (finished stages are kept): "
            "run again and the features are computed again"
        )


def _weighed_heads(data: Data) -> str:
    """What the key adds for data that carries sample weights (stored with the features): the heads weighed.
    Nothing for data without them, so the entries of runs before sample weights existed stay found."""
    if isinstance(data, Dataset):
        heads = sorted({*(data.sample_weight or {}), *(data.sample_weight_val or {})})
        return f"\0sample weights: {','.join(heads)}" if heads else ""
    return "\0a stream whose samples carry weights" if len(sample_spec(data, data.train)) == 3 else ""


def cached_features(
    keras, built: BuiltModel, data: Data, batch_size: int, cache: FeatureCache, log: Callable[[str], None]
) -> CachedFeatures:
    """The extractor's features of ``data`` from the store, computed batch by batch and stored if missing.

    The store's key covers the extractor's weights, the data's identity and the
    Keras and TensorFlow versions: a head variant of the same stage reuses them.
    """
    import numpy as np
    import tensorflow as tf

    from graft.features.store import features_key

    heads = keras.Model(built.features, built.model.outputs, name="graft_heads")
    versions = {"keras": keras.__version__, "tensorflow": tf.__version__}
    key = features_key(built.extractor.get_weights(), cache.data_identity + _weighed_heads(data), versions)
    stored = cache.store.get(key)
    reused = stored is not None
    if stored is None:
        log("   the extractor is frozen: its features are computed once, stored on disk, and the heads train on them")

        extract = _extract_function(tf, built.extractor)

        def features(validation: bool):
            for x, y, weights in batches_in_order(data, batch_size, validation):
                yield np.asarray(extract(x)), y, weights

        stored = cache.store.put(
            key, features(False), features(True) if data.has_validation else None, data.description
        )
    else:
        log("   the extractor is frozen and its features of this data are stored: the heads train on them")
    log(f"   features: {stored.path}")
    return CachedFeatures(heads, stored.dataset(f"features of {data.description}"), reused, stored, cache.store)


def _extract_function(tf, extractor) -> Callable[[Any], Any]:
    """The extractor's inference on a batch, traced once for every batch size.

    ``predict_on_batch`` traces its function again for a batch of another size (the
    last, partial one of the training data), and tracing a model like MobileNetV2
    costs about as much CPU as predicting a thousand images; a signature with any
    batch size traces once.  The same computation (``extractor(x, training=False)``,
    what ``predict_on_batch`` runs), so the same features.  Under a ``tf.distribute``
    strategy, and for inputs that are not one array, ``predict_on_batch`` as before.
    """
    if tf.distribute.has_strategy():
        return extractor.predict_on_batch
    return _Extract(tf, extractor)


class _Extract:
    """``extractor(x, training=False)`` through one ``tf.function`` per sample shape and dtype, any batch size."""

    def __init__(self, tf, extractor) -> None:
        self.tf, self.extractor = tf, extractor
        self.functions: dict[tuple, Any] = {}  # (sample shape, dtype) -> its tf.function

    def __call__(self, x):
        shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
        if shape is None or dtype is None or not len(shape):
            return self.extractor.predict_on_batch(x)
        key = (tuple(shape[1:]), str(dtype))
        if key not in self.functions:
            signature = [self.tf.TensorSpec((None, *shape[1:]), self.tf.as_dtype(dtype))]
            self.functions[key] = self.tf.function(lambda batch: self.extractor(batch, training=False),
                                                   input_signature=signature)
        return self.functions[key](x)
