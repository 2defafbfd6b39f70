"""Which Keras can train under ``tf.distribute``, and the repairs Keras 3's ``fit`` needs there.

Keras 2 (TensorFlow 2.15) runs ``fit`` under any strategy as it is.  Keras 3's
TensorFlow trainer has three problems under a strategy; the first two are
keras-team/keras#20585:

1. ``TensorFlowTrainer._maybe_symbolic_build`` reduces a whole batch of
   ``PerReplica`` values across workers only to learn their shapes: with
   several workers it raises ``Attempt to convert a value (PerReplica...)``.
2. ``reduce_per_replica`` averages scalar losses and metrics with ``axis=0``:
   ``Invalid reduction dimension 0 for input with 0 dimensions``.  A scalar is
   averaged with ``axis=None``.
3. To learn those shapes it reads a batch, which starts an extra pass over the
   data: a dataset reshuffled every pass (``graft.data.pipeline``) then trains on
   the orders a single process uses one epoch later.  The shapes are in the
   dataset's ``element_spec``: nothing needs to be read.

``repair_fit`` replaces those two private functions, once per process, when a
run is distributed.  It was tested on Keras 3.5 to 3.15; the runner compares
every worker's weights after each stage, so a Keras where the repair is wrong
stops with an error instead of publishing diverged weights.  Keras 3.0 to 3.4
are refused for multi_worker: there workers silently end with different weights.
"""

from __future__ import annotations

from graft.base.problems import GraftError

TESTED = ((3, 5), (3, 15))  # Keras 3 minor versions the repair was tested on, inclusive


class KerasUnsupported(GraftError):
    """This Keras cannot train across workers."""


def keras_version(keras) -> tuple[int, int]:
    major, minor = keras.__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def check_keras(keras) -> str | None:
    """Refuse a Keras that cannot train across workers; a note if this one is newer than tested."""
    version = keras_version(keras)
    if version[0] == 2:
        return None
    if version < TESTED[0]:
        raise KerasUnsupported(
            f"multi_worker needs Keras 2.15 or Keras 3.5 or later; this is Keras {keras.__version__}, where workers "
            "end training with different weights without an error. Upgrade keras (pip install 'keras>=3.5')"
        )
    if version > TESTED[1]:
        return (f"note: multi_worker was tested on Keras 3.5 to 3.15, this is {keras.__version__}; "
                "the workers' weights are compared after every stage")
    return None


def repair_fit(keras, multi_worker: bool) -> None:
    """Make Keras 3's ``fit``/``evaluate`` train under a strategy as one process would (no-op on Keras 2)."""
    if keras_version(keras)[0] == 2:
        return
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_graft_repaired", False):
        return
    if not hasattr(trainer.TensorFlowTrainer, "_maybe_symbolic_build") or not hasattr(trainer, "reduce_per_replica"):
        if not multi_worker:
            return  # a Keras before these functions: nothing to repair in one process
        raise KerasUnsupported(
            f"Keras {keras.__version__} changed the trainer functions keras-graft repairs for multi_worker; "
            "use Keras 3.5 to 3.15, or train in one process (distribute: {strategy: mirrored})"
        )
    original_reduce = trainer.reduce_per_replica
    is_multi_worker = trainer._collective_all_reduce_multi_worker

    def one_replica(strategy, value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        strategy = self.distribute_strategy
        if iterator is not None and hasattr(iterator, "data_adapter"):
            data_batch = iterator.data_adapter.get_tf_dataset().element_spec  # shapes and dtypes, nothing read
        elif iterator is not None:
            epoch = iterator.enumerate_epoch() if hasattr(iterator, "enumerate_epoch") else iterator
            for item in epoch:  # (step, iterator) up to Keras 3.11, (begin, end, iterator) from 3.12
                batch = next(item[-1])
                break
            data_batch = batch
        if data_batch is not None:
            data_batch = tree.map_structure(lambda value: one_replica(strategy, value), data_batch)
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not is_multi_worker(strategy):
            return original_reduce(values, strategy, reduction)

        def mean(value):
            if isinstance(value, tf.distribute.DistributedValues):
                rank = value.values[0].shape.rank
            elif tf.is_tensor(value):
                rank = value.shape.rank
            else:
                return value
            return strategy.reduce("MEAN", value, axis=None if rank == 0 else 0)

        return tree.map_structure(mean, values)

    trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    trainer._graft_repaired = True
