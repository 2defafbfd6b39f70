"""Training on ``tf.distribute``: the strategy a spec asks for, and what its workers agree on.

``mirrored`` is one process over every local GPU (or the CPU).  ``multi_worker``
is one process per worker (``graft.distribute.cluster``); every worker runs the same stages
in the same order, so every collective operation (``fit``'s gradient sums, the
reads of BatchNormalization's statistics on Keras 2, the checks here) is met by
every worker.  The chief alone writes the run directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs

from graft.distribute.cluster import TF_CONFIG, Cluster, ClusterError
from graft.records.rundir import RunError
from graft.spec.records import Distribute

if TYPE_CHECKING:
    import numpy as np

LOST_PEER = ("collective", "peer", "unavailable", "coordination", "heartbeat", "socket", "connect", "aborted")


class WorkersDiverged(RunError):
    """The workers ended a stage with different weights."""


class WorkerLost(RunError):
    """Another worker stopped or cannot be reached."""


@attrs.frozen
class Distribution:
    """The strategy a run trains under, and which worker this process is."""

    strategy: Any  # tf.distribute.Strategy
    kind: str  # "mirrored" | "multi_worker"
    cluster: Cluster | None = None
    _functions: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)  # traced once, reused

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    @property
    def is_chief(self) -> bool:
        return self.cluster is None or self.cluster.is_chief

    @property
    def multi_worker(self) -> bool:
        return self.kind == "multi_worker"

    def describe(self, batch_size: int, samples: int | None = None) -> str:
        """``multi_worker: 2 workers, 2 replicas, 16 samples per replica (global batch 32)``, and what is left out."""
        workers = f"{self.cluster.size} workers, " if self.cluster is not None else ""
        text = (f"{self.kind}: {workers}{self.replicas} replica{'s' if self.replicas > 1 else ''}, "
                f"{batch_size // self.replicas} samples per replica (global batch {batch_size})")
        if samples is not None and samples % batch_size:
            text += (f"; each epoch leaves out its last {samples % batch_size} of {samples:,} training samples "
                     "(a partial batch; different ones every epoch)")
        return text

    def scope(self):
        return self.strategy.scope()


def check_cluster(distribute: Distribute | None, workers: int | None) -> None:
    """A cluster (of ``workers`` processes) needs a spec that says ``multi_worker``, and ``multi_worker`` a cluster."""
    wants = distribute.strategy if distribute is not None else None
    if workers is not None and wants != "multi_worker":
        said = f"says distribute: {{strategy: {wants}}}" if wants else "has no distribute key"
        raise ClusterError(
            f"this run is a cluster of {workers} worker{'s' if workers > 1 else ''} but the spec {said}; "
            "add distribute: {strategy: multi_worker} to it, or run it as one process "
            "(without --local-workers, --workers or TF_CONFIG)"
        )
    if wants == "multi_worker" and workers is None:
        raise ClusterError(
            "the spec says distribute: {strategy: multi_worker} but no cluster is given: use "
            "graft run --local-workers 2 (workers on this machine), --workers host:port,... --worker-index N "
            "(one per machine), or set TF_CONFIG"
        )


def start(distribute: Distribute | None, cluster: Cluster | None, log) -> Distribution | None:
    """The run's strategy, made before any model is built (TensorFlow needs collectives set up first).

    The cluster is checked against the spec first, before TensorFlow is imported.
    """
    check_cluster(distribute, cluster.size if cluster is not None else None)
    if distribute is None:
        return None
    from graft.base.backend import import_keras

    keras = import_keras()
    import tensorflow as tf

    from graft.distribute.keras_fit import check_keras, repair_fit

    if distribute.strategy == "mirrored":
        repair_fit(keras, multi_worker=False)
        return Distribution(tf.distribute.MirroredStrategy(), "mirrored")
    note = check_keras(keras)
    if note:
        log(note)
    repair_fit(keras, multi_worker=True)
    assert cluster is not None  # check_cluster: multi_worker has a cluster
    os.environ[TF_CONFIG] = cluster.tf_config()
    log(f"{cluster.me}: waiting for the other workers ({', '.join(cluster.workers)})")
    return Distribution(tf.distribute.MultiWorkerMirroredStrategy(), "multi_worker", cluster)


def average_moving_statistics(distribution: Distribution | None, keras, model: Any) -> None:
    """Average BatchNormalization's moving statistics over the replicas.

    A layer that trains normalizes with each replica's share of the batch, as Keras does under
    tf.distribute, and updates its moving averages from that share.  Keras 2 averages them
    over the replicas whenever they are read; Keras 3 keeps each worker's apart, so the workers'
    weights would differ.  Called after every ``fit`` on every worker: values equal on every
    replica (a frozen layer's) are kept bit for bit.
    """
    import numpy as np

    if distribution is None or not distribution.multi_worker or keras.__version__.startswith("2."):
        return
    variables = [variable for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)
                 for variable in (layer.moving_mean, layer.moving_variance)]
    if not variables:
        return
    local = [np.asarray(variable.numpy()) for variable in variables]
    rows = gather(distribution, np.concatenate([value.ravel() for value in local]))
    same = (rows == rows[0]).all(axis=0)
    averaged = np.where(same, rows[0], rows.astype(np.float64).mean(axis=0).astype(rows.dtype))
    start = 0
    for variable, value in zip(variables, local, strict=True):
        variable.assign(averaged[start : start + value.size].reshape(value.shape))
        start += value.size


def _all_layers(model: Any) -> Iterator[Any]:
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from _all_layers(layer)


def check_batches(distribution: Distribution, spec_file, samples: list[int | None]) -> None:
    """Every stage's global batch splits evenly over the replicas and fits its training samples at least once.

    Keras averages each replica's loss over its own share, then the replicas' averages:
    a share of another size would weigh its samples differently than one process does.
    """
    replicas, problems = distribution.replicas, []
    for index, (stage, count) in enumerate(zip(spec_file.spec.stages, samples, strict=True)):
        at = ("stages", index, "batch_size")
        if stage.batch_size % replicas:
            lower, upper = stage.batch_size // replicas * replicas, -(-stage.batch_size // replicas) * replicas
            problems.append((at, f"{stage.batch_size} does not split evenly over the {replicas} replicas of "
                                 f"{distribution.kind}; use a multiple of {replicas}"
                                 + (f", e.g. {lower} or {upper}" if lower else f", e.g. {upper}")))
        elif count is not None and count < stage.batch_size:
            problems.append((at, f"the stage has {count} training samples, fewer than one global batch of "
                                 f"{stage.batch_size}; a distributed run trains on whole batches: "
                                 "use a smaller batch_size"))
    if problems:
        raise spec_file.error(problems)


def gather(distribution: Distribution, values: list[int] | np.ndarray) -> np.ndarray:
    """Every replica's ``values`` (a list of ints: int64), one row per replica; the chief's replica is row 0."""
    import tensorflow as tf

    strategy = distribution.strategy
    if "gather" not in distribution._functions:

        def one_replica(tensor):
            return tf.distribute.get_replica_context().all_gather(tensor[None], axis=0)

        @tf.function(reduce_retracing=True)
        def all_gather(tensor):
            return strategy.experimental_local_results(strategy.run(one_replica, args=(tensor,)))[0]

        distribution._functions["gather"] = all_gather
    tensor = tf.constant(values, dtype=tf.int64) if isinstance(values, list) else tf.constant(values)
    return distribution._functions["gather"](tensor).numpy()


def chief_says(distribution: Distribution | None, value: int) -> int:
    """The chief's ``value``, on every worker (also a barrier: every worker must get here)."""
    if distribution is None or not distribution.multi_worker:
        return value
    return int(gather(distribution, [value])[0, 0])


def weights_digest(weights: dict[str, list[np.ndarray]]) -> str:
    """SHA-256 over every layer's weights (layers by name, weights in order): equal digests, equal bits."""
    import numpy as np

    digest = hashlib.sha256()
    for name in sorted(weights):
        for value in weights[name]:
            digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def check_identical(distribution: Distribution | None, weights: dict[str, list[np.ndarray]], stage: str) -> list[str]:
    """Every replica's weights digest after ``stage`` (none in one process); stop if they differ in any bit."""
    if distribution is None or not distribution.multi_worker:
        return []
    digest = bytes.fromhex(weights_digest(weights))
    words = [int.from_bytes(digest[i : i + 8], "little", signed=True) for i in range(0, 32, 8)]
    rows = gather(distribution, words)
    digests = [b"".join(int(word).to_bytes(8, "little", signed=True) for word in row).hex() for row in rows]
    if len(set(digests)) > 1:
        raise WorkersDiverged(
            f"stage '{stage}': the workers ended with different weights, so nothing of it was published. "
            "This Keras/TensorFlow does not keep workers in step; train in one process or report it"
        )
    return digests


def lost_peer(exc: BaseException) -> bool:
    """True if a TensorFlow error says another worker stopped or cannot be reached."""
    import tensorflow as tf

    from graft.base.backend import tf_error_text

    if isinstance(exc, tf.errors.UnavailableError):
        return True
    kinds = (tf.errors.CancelledError, tf.errors.AbortedError, tf.errors.DeadlineExceededError,
             tf.errors.InternalError, tf.errors.UnknownError)
    return isinstance(exc, kinds) and any(word in tf_error_text(exc).lower() for word in LOST_PEER)


@contextlib.contextmanager
def peers_watched(distribution: Distribution | None, during: str) -> Iterator[None]:
    """A collective that fails because another worker stopped is a ``WorkerLost`` saying ``during`` what."""
    if distribution is None or not distribution.multi_worker:
        yield
        return
    import tensorflow as tf

    from graft.base.backend import tf_error_text

    try:
        yield
    except tf.errors.OpError as exc:
        if not lost_peer(exc):
            raise
        assert distribution.cluster is not None  # multi_worker has a cluster
        raise WorkerLost(
            f"{distribution.cluster.me}: another worker stopped or cannot be reached during {during} "
            f"({tf_error_text(exc)}); nothing unfinished was published, finished stages are kept. "
            "See the other workers' output, then start every worker again: the run goes on from there"
        ) from exc
