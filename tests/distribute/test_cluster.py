"""Multi-worker runs, everything decided before TensorFlow: the cluster (``--workers``/
``--worker-index``, ``TF_CONFIG``), which specs it fits (``check_cluster``), which Keras
can train across workers (``check_keras``), and ``graft run``'s errors for each.

No TensorFlow and no training here: every ``graft run`` below stops with an error
before anything starts. One subprocess proves such a stop never imports TensorFlow
(inside this pytest session other tests import it, so ``sys.modules`` says nothing).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
import types

import pytest

from graft.commands.cli import main
from graft.distribute import cluster
from graft.distribute.cluster import TF_CONFIG, Cluster, ClusterError
from graft.distribute.keras_fit import KerasUnsupported, check_keras
from graft.distribute.strategy import check_cluster
from graft.plugins.registry import DEBUG_VARIABLE
from graft.spec.records import Distribute

ROOT = pathlib.Path(__file__).resolve().parents[2]
MULTI_WORKER = ROOT / "configs" / "gru_multiworker.yaml"
DISTRIBUTE_LINE = "distribute: {strategy: multi_worker}\n"


def tf_config(value: object) -> dict[str, str]:
    return {TF_CONFIG: json.dumps(value)}


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch, tmp_path):
    """No TF_CONFIG or GRAFT_DEBUG from the caller's shell; ``runs/`` (the default --out) under tmp_path."""
    monkeypatch.delenv(TF_CONFIG, raising=False)
    monkeypatch.delenv(DEBUG_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def no_strategy(monkeypatch):
    """Fail at once if a run gets as far as making a tf.distribute strategy: every run here must stop first
    (a multi_worker strategy would wait for its peers for ever)."""

    def start(distribute, cluster, log):
        check_cluster(distribute, cluster.size if cluster is not None else None)  # what start does first
        raise AssertionError("graft run went on to start a tf.distribute strategy")

    monkeypatch.setattr("graft.distribute.strategy.start", start)  # graft.runs.stages imports it when a stage trains


@pytest.fixture
def specs(tmp_path) -> types.SimpleNamespace:
    """configs/gru_multiworker.yaml copied to tmp_path, and variants without ``distribute`` and with ``mirrored``."""
    text = MULTI_WORKER.read_text()
    assert text.count(DISTRIBUTE_LINE) == 1
    paths = {}
    for name, line in [("multi", DISTRIBUTE_LINE), ("plain", ""), ("mirrored", "distribute: {strategy: mirrored}\n")]:
        path = tmp_path / f"{name}.yaml"
        path.write_text(text.replace(DISTRIBUTE_LINE, line))
        paths[name] = str(path)
    return types.SimpleNamespace(**paths)


@pytest.fixture
def nothing_launched(monkeypatch):
    """Fail the test if ``graft run`` starts local workers."""

    def launch(*args, **kwargs):
        raise AssertionError(f"run_local_workers was called: {args} {kwargs}")

    monkeypatch.setattr("graft.distribute.launcher.run_local_workers", launch)


def run_error(argv: list[str], capsys) -> str:
    """``graft <argv>`` in-process: exit code 1, nothing on stdout, one ``error: ...`` on stderr; that message."""
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 1, captured
    assert captured.out == ""
    assert "Traceback" not in captured.err
    assert captured.err.startswith("error: ") and captured.err.endswith("\n")
    return captured.err[len("error: "):-1]


# -- from_arguments -------------------------------------------------------------------


def test_from_arguments_reads_the_workers_and_this_process():
    found = cluster.from_arguments("10.0.0.1:2222, node-2.example.org:2223,node_3:65535", 1)

    assert found == Cluster(("10.0.0.1:2222", "node-2.example.org:2223", "node_3:65535"), "worker", 1)
    assert (found.size, found.is_chief, found.me) == (3, False, "worker 1 of 3")
    assert cluster.from_arguments("a:1,b:2", 0).is_chief


def test_from_arguments_accepts_ipv6_in_brackets():
    found = cluster.from_arguments("[::1]:2222,[fe80::1]:2223", 0)

    assert found.workers == ("[::1]:2222", "[fe80::1]:2223")
    assert json.loads(found.tf_config())["cluster"]["worker"] == ["[::1]:2222", "[fe80::1]:2223"]


def test_from_arguments_refuses_an_address_given_twice():
    with pytest.raises(ClusterError) as caught:
        cluster.from_arguments("a:1,b:2,a:1", 0)

    assert str(caught.value) == (
        "--workers names an address twice: a:1,b:2,a:1; every worker needs its own host:port"
    )


@pytest.mark.parametrize(
    "address", ["host", "host:0", "host:99999", "a b:1", "host:", ":2222", "host:port", "::1:2222"]
)
def test_from_arguments_refuses_what_is_not_host_port(address):
    with pytest.raises(ClusterError) as caught:
        cluster.from_arguments(f"ok:1,{address}", 0)

    assert str(caught.value) == f"--workers: {address!r} is not a host:port address (e.g. 10.0.0.2:2222)"


def test_from_arguments_refuses_an_empty_entry():
    with pytest.raises(ClusterError, match=r"^--workers: '' is not a host:port address \(e\.g\. 10\.0\.0\.2:2222\)$"):
        cluster.from_arguments("a:1,,b:2", 0)


def test_from_arguments_needs_the_worker_index():
    with pytest.raises(ClusterError) as caught:
        cluster.from_arguments("a:1,b:2", None)

    assert str(caught.value) == (
        "--workers needs --worker-index N: which of the workers this process is (0 is the chief)"
    )


@pytest.mark.parametrize("index", [2, 3, -1])
def test_from_arguments_refuses_an_index_out_of_range(index):
    with pytest.raises(ClusterError) as caught:
        cluster.from_arguments("a:1,b:2", index)

    assert str(caught.value) == f"--worker-index {index} is not one of the 2 workers (0 to 1)"


# -- from_environment -----------------------------------------------------------------


@pytest.mark.parametrize("environ", [{}, {TF_CONFIG: ""}, {TF_CONFIG: "  \n"}, {"OTHER": "x"}])
def test_from_environment_without_tf_config_is_a_single_process(environ):
    assert cluster.from_environment(environ) is None


@pytest.mark.parametrize("text", ["{", "cluster: {}", "{'cluster': {}}"])
def test_from_environment_refuses_what_is_not_json(text):
    with pytest.raises(ClusterError) as caught:
        cluster.from_environment({TF_CONFIG: text})

    message = str(caught.value)
    assert message.startswith("TF_CONFIG (an environment variable) is not JSON: ")
    assert " at character " in message


@pytest.mark.parametrize(
    "config",
    [
        {"task": {"type": "worker", "index": 0}},
        {"cluster": {"worker": ["a:1"]}},
        {"cluster": ["a:1"], "task": {"type": "worker", "index": 0}},
        {"cluster": {"worker": ["a:1"]}, "task": "worker"},
        ["a:1"],
    ],
    ids=["no cluster", "no task", "cluster a list", "task a string", "a list"],
)
def test_from_environment_needs_cluster_and_task_objects(config):
    with pytest.raises(ClusterError) as caught:
        cluster.from_environment(tf_config(config))

    message = str(caught.value)
    assert message.startswith('TF_CONFIG (an environment variable) needs "cluster" and "task" objects, e.g. ')
    example = json.loads(message.split(", e.g. ", 1)[1])  # the example shows the shape, as JSON
    assert example == {"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}


@pytest.mark.parametrize("extra", [{"ps": ["p:1"]}, {"ps": ["p:1"], "evaluator": ["e:1"]}])
def test_from_environment_refuses_parameter_servers(extra):
    config = {"cluster": {"worker": ["a:1", "b:1"], **extra}, "task": {"type": "worker", "index": 0}}

    with pytest.raises(ClusterError) as caught:
        cluster.from_environment(tf_config(config))

    names = ", ".join(sorted(extra))
    assert str(caught.value) == (
        f"TF_CONFIG (an environment variable) has {names} tasks; keras-graft trains with workers "
        "(and an optional chief) only: MultiWorkerMirroredStrategy has no parameter servers"
    )


def test_from_environment_reads_a_chief_and_workers():
    workers = ["w0.example:2222", "w1.example:2222"]
    base = {"cluster": {"chief": ["c.example:2222"], "worker": workers}}

    chief = cluster.from_environment(tf_config({**base, "task": {"type": "chief", "index": 0}}))
    worker = cluster.from_environment(tf_config({**base, "task": {"type": "worker", "index": 0}}))
    last = cluster.from_environment(tf_config({**base, "task": {"type": "worker", "index": 1}}))

    assert chief == Cluster(tuple(workers), "chief", 0, "c.example:2222")
    assert (chief.is_chief, chief.size, chief.me) == (True, 3, "chief")
    # with a chief task, worker 0 is not the chief: only one process may write the run directory
    assert (worker.is_chief, worker.size, worker.me) == (False, 3, "worker 0 of 3")
    assert (last.is_chief, last.me) == (False, "worker 1 of 3")
    for found in (chief, worker, last):
        assert json.loads(found.tf_config()) == {**base, "task": {"type": found.task_type, "index": found.index}}


def test_from_environment_without_a_chief_makes_worker_0_the_chief():
    base = {"cluster": {"worker": ["a:1", "b:1"]}}

    first = cluster.from_environment(tf_config({**base, "task": {"type": "worker", "index": 0}}))
    second = cluster.from_environment(tf_config({**base, "task": {"type": "worker", "index": 1}}))
    unindexed = cluster.from_environment(tf_config({**base, "task": {"type": "worker"}}))

    assert (first.is_chief, first.size, first.me, first.chief) == (True, 2, "worker 0 of 2", None)
    assert (second.is_chief, second.me) == (False, "worker 1 of 2")
    assert unindexed == first


@pytest.mark.parametrize(
    "cluster_value",
    [{"worker": "a:1"}, {"worker": ["a:1"], "chief": ["c:1", "d:1"]}, {"worker": []}, {}],
    ids=["workers a string", "two chiefs", "no workers", "empty"],
)
def test_from_environment_refuses_a_cluster_without_a_worker_list(cluster_value):
    config = {"cluster": cluster_value, "task": {"type": "worker", "index": 0}}

    with pytest.raises(ClusterError) as caught:
        cluster.from_environment(tf_config(config))

    assert str(caught.value) == (
        'TF_CONFIG (an environment variable): "cluster" needs a list of "worker" addresses and at most one "chief"'
    )


def test_from_environment_checks_every_address():
    config = {"cluster": {"worker": ["a:1", "b:70000"]}, "task": {"type": "worker", "index": 0}}

    with pytest.raises(ClusterError) as caught:
        cluster.from_environment(tf_config(config))

    assert str(caught.value) == (
        "TF_CONFIG (an environment variable): 'b:70000' is not a host:port address (e.g. 10.0.0.2:2222)"
    )


@pytest.mark.parametrize(
    "task",
    [
        {"type": "worker", "index": 2},
        {"type": "worker", "index": -1},
        {"type": "worker", "index": "1"},
        {"type": "chief", "index": 0},  # no chief in this cluster
        {"type": "evaluator", "index": 0},
        {"index": 0},
    ],
)
def test_from_environment_refuses_a_task_not_in_the_cluster(task):
    config = {"cluster": {"worker": ["a:1", "b:1"]}, "task": task}

    with pytest.raises(ClusterError) as caught:
        cluster.from_environment(tf_config(config))

    assert str(caught.value) == (
        f"TF_CONFIG (an environment variable): \"task\" {json.dumps(task)} is not one of the cluster's tasks"
    )


@pytest.mark.parametrize("task_type", [["worker"], {"name": "worker"}])
def test_from_environment_refuses_a_task_type_that_is_not_a_string(task_type):
    config = {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": task_type, "index": 0}}

    with pytest.raises(ClusterError, match="is not one of the cluster's tasks"):
        cluster.from_environment(tf_config(config))


def test_from_environment_refuses_a_boolean_index():
    config = {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": True}}

    with pytest.raises(ClusterError, match="is not one of the cluster's tasks"):
        cluster.from_environment(tf_config(config))


@pytest.mark.parametrize(
    "cluster_value",
    [{"worker": ["a:1", "a:1"]}, {"worker": ["a:1", "b:1"], "chief": ["a:1"]}],
    ids=["two workers", "chief and worker"],
)
def test_from_environment_refuses_an_address_given_twice(cluster_value):
    config = {"cluster": cluster_value, "task": {"type": "worker", "index": 0}}

    with pytest.raises(ClusterError, match="twice"):
        cluster.from_environment(tf_config(config))


# -- Cluster.tf_config ------------------------------------------------------------------


@pytest.mark.parametrize(
    "original",
    [
        Cluster(("a:1", "b:2", "c:3"), "worker", 2),
        Cluster(("a:1",), "worker", 0),
        Cluster(("a:1", "b:2"), "chief", 0, "chief.host:9"),
        Cluster(("a:1", "b:2"), "worker", 1, "chief.host:9"),
        Cluster(("[::1]:2222", "[::1]:2223"), "worker", 1),
    ],
)
def test_tf_config_is_json_that_reads_back_to_the_same_cluster(original):
    text = original.tf_config()

    config = json.loads(text)
    assert config["task"] == {"type": original.task_type, "index": original.index}
    assert config["cluster"]["worker"] == list(original.workers)
    assert config["cluster"].get("chief") == ([original.chief] if original.chief else None)
    assert cluster.from_environment({TF_CONFIG: text}) == original


# -- free_loopback_ports ------------------------------------------------------------------


def test_free_loopback_ports_are_distinct_and_valid():
    ports = cluster.free_loopback_ports(3)

    assert len(ports) == 3 == len(set(ports))
    assert all(type(port) is int and 1 <= port <= 65535 for port in ports)
    addresses = ",".join(f"127.0.0.1:{port}" for port in ports)
    assert cluster.from_arguments(addresses, 2).size == 3  # what --local-workers hands each worker


# -- check_cluster ---------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", [None, "mirrored", "multi_worker"])
@pytest.mark.parametrize("workers", [None, 2])
def test_check_cluster_every_combination(strategy, workers):
    distribute = Distribute(strategy) if strategy else None
    fits = (strategy == "multi_worker") == (workers is not None)

    if fits:
        assert check_cluster(distribute, workers) is None
        return
    with pytest.raises(ClusterError) as caught:
        check_cluster(distribute, workers)

    message = str(caught.value)
    if workers is None:  # multi_worker without a cluster: every way to give one
        assert message == (
            "the spec says distribute: {strategy: multi_worker} but no cluster is given: use "
            "graft run --local-workers 2 (workers on this machine), --workers host:port,... --worker-index N "
            "(one per machine), or set TF_CONFIG"
        )
    else:
        said = "says distribute: {strategy: mirrored}" if strategy else "has no distribute key"
        assert message == (
            f"this run is a cluster of 2 workers but the spec {said}; "
            "add distribute: {strategy: multi_worker} to it, or run it as one process "
            "(without --local-workers, --workers or TF_CONFIG)"
        )


def test_check_cluster_of_one_worker_says_worker():
    with pytest.raises(ClusterError, match=r"^this run is a cluster of 1 worker but the spec has no distribute key; "):
        check_cluster(None, 1)
    assert check_cluster(Distribute("multi_worker"), 1) is None


# -- check_keras --------------------------------------------------------------------------------


def keras(version: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(__version__=version)  # check_keras reads only the version string


@pytest.mark.parametrize("version", ["2.15.0", "3.5.0", "3.10.0", "3.15.1"])
def test_check_keras_accepts_the_tested_versions(version):
    assert check_keras(keras(version)) is None


@pytest.mark.parametrize("version", ["3.4.1", "3.0.0", "3.3.3"])
def test_check_keras_refuses_keras_3_before_3_5(version):
    with pytest.raises(KerasUnsupported) as caught:
        check_keras(keras(version))

    message = str(caught.value)
    assert message == (
        f"multi_worker needs Keras 2.15 or Keras 3.5 or later; this is Keras {version}, where workers "
        "end training with different weights without an error. Upgrade keras (pip install 'keras>=3.5')"
    )


@pytest.mark.parametrize("version", ["3.16.0", "4.0.0"])
def test_check_keras_notes_a_keras_newer_than_tested(version):
    note = check_keras(keras(version))

    assert note == (
        f"note: multi_worker was tested on Keras 3.5 to 3.15, this is {version}; "
        "the workers' weights are compared after every stage"
    )


# -- graft run: the cluster on the command line -------------------------------------------------


def test_run_worker_index_without_workers(specs, capsys, nothing_launched, tmp_path):
    message = run_error(["run", specs.multi, "--worker-index", "1"], capsys)

    assert message == "--worker-index needs --workers host:port,...: every worker's address"
    assert not (tmp_path / "runs").exists()


def test_run_local_workers_with_workers(specs, capsys, nothing_launched, tmp_path):
    message = run_error(["run", specs.multi, "--local-workers", "2", "--workers", "127.0.0.1:1,127.0.0.1:2"], capsys)

    assert message == "--local-workers starts its own workers: leave out --workers and --worker-index"
    assert not (tmp_path / "runs").exists()


def test_run_local_workers_with_worker_index(specs, capsys, nothing_launched):
    message = run_error(["run", specs.multi, "--local-workers", "2", "--worker-index", "0"], capsys)

    assert message == "--local-workers starts its own workers: leave out --workers and --worker-index"


@pytest.mark.parametrize("count", ["0", "65", "two"])
def test_run_local_workers_out_of_range_is_a_usage_error(specs, capsys, nothing_launched, count):
    with pytest.raises(SystemExit) as caught:
        main(["run", specs.multi, "--local-workers", count])

    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --local-workers: expected a number of workers from 1 to 64, got {count!r}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("workers", "index", "expected"),
    [
        ("127.0.0.1:1,127.0.0.1:2", "2", "--worker-index 2 is not one of the 2 workers (0 to 1)"),
        ("127.0.0.1:1,127.0.0.1:1", "0", "--workers names an address twice: 127.0.0.1:1,127.0.0.1:1; "
                                         "every worker needs its own host:port"),
        ("127.0.0.1", "0", "--workers: '127.0.0.1' is not a host:port address (e.g. 10.0.0.2:2222)"),
    ],
)
def test_run_refuses_a_bad_workers_list(specs, capsys, tmp_path, workers, index, expected):
    message = run_error(["run", specs.multi, "--workers", workers, "--worker-index", index], capsys)

    assert message == expected
    assert not (tmp_path / "runs").exists()


def test_run_workers_without_worker_index(specs, capsys):
    message = run_error(["run", specs.multi, "--workers", "127.0.0.1:1,127.0.0.1:2"], capsys)

    assert message == "--workers needs --worker-index N: which of the workers this process is (0 is the chief)"


def test_run_local_workers_of_a_spec_without_distribute_starts_nothing(specs, capsys, nothing_launched, tmp_path):
    out = tmp_path / "out"

    message = run_error(["run", specs.plain, "--local-workers", "2", "--out", str(out)], capsys)

    assert message.startswith("this run is a cluster of 2 workers but the spec has no distribute key; ")
    assert "add distribute: {strategy: multi_worker} to it" in message
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_run_local_workers_of_a_spec_without_distribute_names_local_workers(specs, capsys, nothing_launched):
    message = run_error(["run", specs.mirrored, "--local-workers", "2"], capsys)

    assert message.startswith("this run is a cluster of 2 workers but the spec says distribute: {strategy: mirrored}; ")
    assert "--local-workers" in message


def test_run_multi_worker_spec_without_a_cluster(specs, capsys, tmp_path):
    out = tmp_path / "out"

    message = run_error(["run", specs.multi, "--out", str(out)], capsys)

    assert message.startswith("the spec says distribute: {strategy: multi_worker} but no cluster is given: ")
    assert "--local-workers 2" in message and "--workers host:port,... --worker-index N" in message
    assert "TF_CONFIG" in message
    assert not out.exists()


# -- graft run: the cluster in TF_CONFIG ------------------------------------------------------------


def test_run_with_tf_config_not_json(specs, capsys, monkeypatch, tmp_path):
    text = '{"cluster": {"worker": ["a:1"]},'  # cut off after its first key
    monkeypatch.setenv(TF_CONFIG, text)

    message = run_error(["run", specs.multi], capsys)

    assert message.startswith("TF_CONFIG (an environment variable) is not JSON: ")
    assert f" at character {len(text)}; fix it, or unset TF_CONFIG to train in one process" in message
    assert not (tmp_path / "runs").exists()


def test_run_with_tf_config_of_a_spec_without_distribute(specs, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv(
        TF_CONFIG, json.dumps({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}})
    )

    message = run_error(["run", specs.plain], capsys)

    assert message == (
        "this run is a cluster of 2 workers but the spec has no distribute key; "
        "add distribute: {strategy: multi_worker} to it, or run it as one process "
            "(without --local-workers, --workers or TF_CONFIG)"
    )
    assert not (tmp_path / "runs").exists()


def test_run_local_workers_ignores_tf_config(specs, capsys, monkeypatch, nothing_launched):
    """--local-workers makes its own cluster: a broken TF_CONFIG in the shell is not read (the launcher drops it)."""
    monkeypatch.setenv(TF_CONFIG, "{")

    message = run_error(["run", specs.plain, "--local-workers", "2"], capsys)

    assert message.startswith("this run is a cluster of 2 workers but the spec has no distribute key; ")


# -- in a fresh interpreter: no TensorFlow before the error ----------------------------------------------


def fresh_python(args: list[str], cwd: pathlib.Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {key: value for key, value in os.environ.items() if key not in (TF_CONFIG, DEBUG_VARIABLE)}
    started = time.monotonic()
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=120, cwd=cwd)
    return result, time.monotonic() - started


def test_a_cluster_error_stops_before_tensorflow(specs, tmp_path):
    """The case that gets furthest (into run_spec) before its error: a multi_worker spec, no cluster."""
    code = (
        "import sys; from graft.commands.cli import main; "
        f"rc = main(['run', {specs.multi!r}]); "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules); sys.exit(rc)"
    )

    result, _ = fresh_python(["-c", code], tmp_path)

    assert result.returncode == 1, result.stderr
    assert result.stdout == "False False\n"
    assert result.stderr.startswith(
        "error: the spec says distribute: {strategy: multi_worker} but no cluster is given: "
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_python_m_graft_run_exits_1_with_the_error(specs, tmp_path):
    result, seconds = fresh_python(["-m", "graft", "run", specs.multi, "--worker-index", "1"], tmp_path)

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == "error: --worker-index needs --workers host:port,...: every worker's address\n"
    assert seconds < 30, f"{seconds:.1f} s for an error found before TensorFlow"
