"""Which multi-worker cluster this process belongs to: from ``--workers``/``--worker-index`` or ``TF_CONFIG``.

No TensorFlow here: the cluster is checked before anything starts, and
``--local-workers`` needs nothing more than free loopback ports.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping

import attrs

from graft.base.problems import GraftError

TF_CONFIG = "TF_CONFIG"
_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


class ClusterError(GraftError):
    """The cluster given on the command line or in TF_CONFIG cannot be used."""


@attrs.frozen
class Cluster:
    """The workers of a multi-worker run (``host:port`` each) and which of them this process is.

    The chief is the ``chief`` task if TF_CONFIG names one, else worker 0: it alone
    writes the run directory.
    """

    workers: tuple[str, ...]
    task_type: str = "worker"  # or "chief"
    index: int = 0
    chief: str | None = None

    @property
    def is_chief(self) -> bool:
        return self.task_type == "chief" or (self.chief is None and self.index == 0)

    @property
    def size(self) -> int:
        return len(self.workers) + (self.chief is not None)

    @property
    def me(self) -> str:
        """This process, for messages: ``worker 1 of 2`` or ``chief``."""
        return "chief" if self.task_type == "chief" else f"worker {self.index} of {self.size}"

    def tf_config(self) -> str:
        """This process's ``TF_CONFIG``, as TensorFlow reads it."""
        cluster = {"worker": list(self.workers)}
        if self.chief is not None:
            cluster["chief"] = [self.chief]
        return json.dumps({"cluster": cluster, "task": {"type": self.task_type, "index": self.index}})


def from_arguments(workers: str, index: int | None) -> Cluster:
    """``--workers host:port,host:port --worker-index N``."""
    addresses = tuple(part.strip() for part in workers.split(","))
    for address in addresses:
        _check_address(address, "--workers")
    if len(set(addresses)) != len(addresses):
        raise ClusterError(f"--workers names an address twice: {workers}; every worker needs its own host:port")
    if index is None:
        raise ClusterError("--workers needs --worker-index N: which of the workers this process is (0 is the chief)")
    if not 0 <= index < len(addresses):
        raise ClusterError(
            f"--worker-index {index} is not one of the {len(addresses)} workers (0 to {len(addresses) - 1})"
        )
    return Cluster(addresses, "worker", index)


def from_environment(environ: Mapping[str, str]) -> Cluster | None:
    """The cluster ``TF_CONFIG`` describes (as Kubernetes operators and Slurm scripts set it), or None."""
    text = environ.get(TF_CONFIG, "").strip()
    if not text:
        return None
    where = f"{TF_CONFIG} (an environment variable)"
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClusterError(f"{where} is not JSON: {exc.msg} at character {exc.pos}; fix it, or unset "
                           f"{TF_CONFIG} to train in one process") from None
    if (
        not isinstance(config, dict)
        or not isinstance(config.get("cluster"), dict)
        or not isinstance(config.get("task"), dict)
    ):
        raise ClusterError(f'{where} needs "cluster" and "task" objects, e.g. '
                           '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
                           '"task": {"type": "worker", "index": 0}}')
    cluster, task = config["cluster"], config["task"]
    unsupported = sorted(set(cluster) - {"worker", "chief"})
    if unsupported:
        raise ClusterError(f"{where} has {', '.join(unsupported)} tasks; keras-graft trains with workers "
                           "(and an optional chief) only: MultiWorkerMirroredStrategy has no parameter servers")
    workers, chiefs = cluster.get("worker", []), cluster.get("chief", [])
    if not isinstance(workers, list) or not isinstance(chiefs, list) or len(chiefs) > 1 or not workers + chiefs:
        raise ClusterError(f'{where}: "cluster" needs a list of "worker" addresses and at most one "chief"')
    for address in [*workers, *chiefs]:
        _check_address(address, where)
    if len(set(workers + chiefs)) != len(workers + chiefs):
        raise ClusterError(f"{where} names an address twice; every task needs its own host:port")
    task_type, index = task.get("type"), task.get("index", 0)
    tasks = {"worker": workers, "chief": chiefs}
    if (not isinstance(task_type, str) or task_type not in tasks or type(index) is not int
            or not 0 <= index < len(tasks[task_type])):
        raise ClusterError(f'{where}: "task" {json.dumps(task)} is not one of the cluster\'s tasks')
    return Cluster(tuple(workers), task_type, index, chiefs[0] if chiefs else None)


def _check_address(address: object, where: str) -> None:
    match = _ADDRESS.match(address) if isinstance(address, str) else None
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise ClusterError(f"{where}: {address!r} is not a host:port address (e.g. 10.0.0.2:2222)")


def free_loopback_ports(count: int) -> list[int]:
    """``count`` TCP ports free on 127.0.0.1 right now (held together, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
