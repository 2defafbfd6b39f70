"""Fuzzing the spec loader: no mutated spec may crash ``graft validate`` or ``graft plan``.

The mutation engine and the oracle are in ``tests/fuzzing.py`` (also used by
``benchmarks/fuzz_specs.py``, which runs tens of thousands of cases on demand).
Here: a derandomised hypothesis budget of validate cases (each also checked against
``graft schema``: no spec accepted by one and refused by the other, but for what a
schema cannot know, ``fuzzing.SCHEMA_CANNOT_KNOW``), a small budget of plan cases on
the shrunk GRU/Conv1D specs, and one regression test per finding. Time limits count
CPU time, so a busy machine does not fail a case.

A finding that is not fixed yet is listed in ``KNOWN_OPEN`` (command, signature
and a piece of its output): its regression test is ``xfail(strict=False)``, and
the property tests let exactly that failure pass (the regression test keeps it
under the full oracle). Every other failure fails the property tests.
"""

from __future__ import annotations

import os
import random
import sys

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

# --import-mode=importlib: tests/ (where fuzzing.py lives) is not on sys.path
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fuzzing  # noqa: E402  (tests/fuzzing.py, shared with benchmarks/fuzz_specs.py)

# regression id -> (command, signature as in fuzzing.Outcome.signature, a piece of its output): the findings
# not fixed yet. Their regression tests are xfail(strict=False); the property tests let exactly these pass.
KNOWN_OPEN: dict[str, tuple[str, tuple, str]] = {}  # none open as of this commit
def known_open(command: str, outcome: fuzzing.Outcome) -> bool:
    return any(
        command == known_command and outcome.signature == signature and piece in outcome.output
        for known_command, signature, piece in KNOWN_OPEN.values()
    )


# id -> minimal spec text (str; raw bytes as surrogate escapes), from the fuzzer's findings
REGRESSIONS = {
    "latin1-byte": "seed: 1  # caf\udce9\n",
    "none-value": "seed: ~\n",
    "control-character": "seed: 1\x1b\n",
    "none-stage": "model: {}\nstages:\n  - null\n",
    "newline-in-name": 'model: {}\nstages:\n  - {name: "pre\\ntrain"}\n',
    "newline-in-key": "stages:\n- name: pretrain\n  data:\n    ? 'a\n\n      b'\n",
    "newline-in-init-stage": fuzzing.edited("gru_transfer", "stages[1].init.stage", "pretrain\n"),
    "newline-in-pattern": fuzzing.edited("gru_transfer", "stages[1].policy.params.freeze[0]", "gru_1\n"),
    "newline-in-monitor": fuzzing.edited("gru_transfer", "stages[1].callbacks.early_stopping.monitor", "val_loss\n"),
    "null-batch-norm": fuzzing.edited("conv1d_transfer", "model.extractor.params.batch_norm", None),
    "null-class": fuzzing.edited("mobilenet_digits", "stages[0].data.params.classes[0]", None),
    "null-policy": fuzzing.edited("gru_transfer", "stages[1].policy", None),
    "scalar-extractor": fuzzing.edited("gru_progressive", "model.extractor", "average"),
    "scalar-for-class": (
        "model:\n  input_shape: [4, 2]\n  extractor: average\n  heads: {a: {plugin: dense, loss: mse}}\n"
        "stages:\n  - {name: s, data: {source: synthetic}, epochs: 1}\n"
    ),
    "scalar-layer": "model:\n  extractor: {plugin: gru, params: {layers: ['*']}}\n",
    "deep-nesting": "model: " + "[" * 1200 + "]" * 1200 + "\n",
    "deep-omap": "model: " + "!!omap [" * 600 + "]" * 600 + "\n",
    "list-as-key": "model: {}\nstages:\n  - {? [a, b] : 1}\n",
    "mapping-as-key": "model: {? {a: 1} : 1}\n",
    "omap-bomb": "model: " + fuzzing._bomb("omap", 9, 9) + "\n",
    "set-bomb": "model: " + fuzzing._bomb("set", 9, 9) + "\n",
    "pairs-bomb": "model: " + fuzzing._bomb("pairs", 9, 9) + "\n",
    "recursive-alias": "model: &r [*r]\n",
    "int-tag-empty": "seed: !!int\n",
    "float-tag-empty": "seed: !!float\n",
    "bool-tag-empty": "seed: !!bool ''\n",
    "timestamp-tag-bad": "seed: !!timestamp x\n",
    "python-tag": "model: !!python/object/apply:os.system [echo hi]\n",
    "big-int": "seed: 100000000000000000000000000000\nmodel: {input_shape: [9223372036854775808]}\n",
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("fuzz"))
    fuzzing.prepare_workdir(folder)
    return folder


def _check(outcome: fuzzing.Outcome, text: str, what: str) -> None:
    if outcome.ok or known_open("validate", outcome):
        return
    pytest.fail(
        f"{outcome.kind} finding {outcome.signature}\nmutation: {what}\n{outcome.detail}\n"
        f"output:\n{outcome.output[-1500:]}\nspec:\n{text[:3000]}",
        pytrace=False,
    )


@pytest.mark.parametrize("case", sorted(REGRESSIONS))
def test_regression(case, workdir, request):
    if case in KNOWN_OPEN:
        request.applymarker(pytest.mark.xfail(strict=False, reason="known open fuzz finding (see KNOWN_OPEN)"))
    path = fuzzing.write_case(workdir, REGRESSIONS[case], f"regression-{case}.yaml")
    outcome = fuzzing.check_file(path, seconds=20, clock="cpu")
    assert outcome.ok, f"{outcome.kind} {outcome.signature}\n{outcome.detail}\n{outcome.output[-1500:]}"


@pytest.mark.parametrize("where", ["folder", "missing", "fifo", "device", "empty", "comment-only"])
def test_file_level(where, workdir):
    """Spec paths that are not a readable YAML file (a long file is left to benchmarks/fuzz_specs.py: slow)."""
    path = os.path.join(workdir, f"file-level-{where}.yaml")
    if where == "folder":
        path = workdir
    elif where == "fifo":
        if not os.path.exists(path):
            os.mkfifo(path)
    elif where == "device":
        path = "/dev/zero"
        if not os.path.exists(path):
            pytest.skip("no /dev/zero")
    elif where in ("empty", "comment-only"):
        text = {"empty": "", "comment-only": "# nothing\n"}[where]
        fuzzing.write_case(workdir, text, os.path.basename(path))
    outcome = fuzzing.check_file(path, seconds=60, memory=2**30, clock="cpu")
    assert outcome.ok, f"{outcome.kind} {outcome.signature}\n{outcome.detail}\n{outcome.output[-1500:]}"


SEEDS = fuzzing.load_seeds()


@pytest.mark.slow
@settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: the failure shows the mutation and the spec
    suppress_health_check=list(HealthCheck),
)
@given(rng=st.randoms(use_true_random=False))
def test_validate_never_crashes(rng, workdir):
    case = fuzzing.make_case(rng, SEEDS)
    path = fuzzing.write_case(workdir, case.text)
    _check(fuzzing.check_file(path, "validate", seconds=10, clock="cpu"), case.text, case.describe())
    agreement = fuzzing.schema_agreement(path)
    assert agreement.agrees, f"{agreement.describe()}\nmutation: {case.describe()}\nspec:\n{case.text[:3000]}"


@settings(
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
)
@given(rng=st.randoms(use_true_random=False))
def test_set_never_crashes(rng, workdir):
    """``graft validate SPEC --set ...`` with generated overrides (benchmarks/fuzz_specs.py --set runs thousands)."""
    case = fuzzing.make_set_case(rng, SEEDS)
    path = fuzzing.write_case(workdir, case.text, "set-case.yaml")
    _check(fuzzing.check_set(path, case.overrides, seconds=10, clock="cpu"), case.text, case.describe())


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("stages]=0x", "graft validate: error: argument --set: stages]=0x: 'stages]' is not a path"),
        ("stages.*.epochs=[", "error: "),
        ("seed=" + "[" * 3000 + "]" * 3000, "error: "),
    ],
)
def test_a_bad_override_is_refused_in_one_line(override, said, workdir):
    """The oracle's rules hold for overrides too, including argparse's usage error for an unreadable path."""
    path = fuzzing.write_case(workdir, SEEDS[0].text, "set-regression.yaml")
    outcome = fuzzing.check_set(path, [override], seconds=20, clock="cpu")
    assert outcome.status == "rejected", f"{outcome.kind} {outcome.signature}\n{outcome.detail}\n{outcome.output}"
    assert said in outcome.output


# id -> a spec graft validate and graft schema once disagreed on (each must now agree, accepted or refused)
SCHEMA_REGRESSIONS = {
    "epochs-as-float": fuzzing.edited("gru_transfer", "stages[0].epochs", 3.0),
    "input-shape-as-floats": fuzzing.edited("gru_transfer", "model.input_shape", [50.0, 8]),
    "filters-as-float": fuzzing.edited("conv1d_transfer", "model.extractor.params.layers[0].filters", 16.0),
    "newline-after-stage-name": fuzzing.edited("gru_transfer", "stages[0].name", "pretrain\n"),
    "newline-after-layer-name": fuzzing.edited("gru_transfer", "model.extractor.params.layers[0].name", "gru_1\n"),
    "nan-learning-rate": fuzzing.edited("gru_transfer", "stages[0].optimizer", {"learning_rate": float("nan")}),
    "infinite-learning-rate": fuzzing.edited("gru_transfer", "stages[0].optimizer", {"learning_rate": float("inf")}),
    "nan-validation-split": fuzzing.edited("gru_transfer", "stages[0].data.params.validation_split", float("nan")),
    "params-of-the-default-policy": fuzzing.edited(
        "gru_transfer", "stages[1].policy", {"params": {"freeze": ["gru_1"]}}  # 'continue' takes none: refused
    ),
    "integer-head-name": fuzzing.edited("gru_transfer", "model.heads", {3: {"plugin": "dense", "loss": "mse"}}),
    "fine-tune-top-negative-layers": fuzzing.edited(
        "gru_transfer", "stages[1].policy", {"plugin": "fine_tune_top", "params": {"layers": -1}}
    ),
    "init-with-two-sources": fuzzing.edited("gru_progressive", "stages[1].init", {"stage": "pretrain", "model": "x"}),
    "bool-key-in-targets": fuzzing.edited("gru_progressive", "stages[0].data.params.targets", {True: "trend"}),
    "float-optimizer-integer": fuzzing.edited(
        "gru_transfer", "stages[0].optimizer", {"name": "adam", "options": {"ema_overwrite_frequency": 4.0}}
    ),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_REGRESSIONS))
def test_schema_agrees_with_validate(case, workdir):
    pytest.importorskip("jsonschema")
    path = fuzzing.write_case(workdir, SCHEMA_REGRESSIONS[case], f"schema-{case}.yaml")
    agreement = fuzzing.schema_agreement(path)
    assert agreement.comparable and agreement.agrees, agreement.describe()


PLAN_CASES = 20

# id -> minimal spec text for `graft plan` findings (validate accepts these)
PLAN_REGRESSIONS = {
    "plan-empty-stage-heads": fuzzing.edited("gru_transfer", "stages[0].heads", {}),
    "plan-head-layer-named-like-extractor": fuzzing.edited(
        "conv1d_transfer", "model.extractor.params.layers[0].name", "trend_hidden_1"
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(PLAN_REGRESSIONS))
def test_plan_regression(case, workdir, request):
    pytest.importorskip("tensorflow")
    if case in KNOWN_OPEN:
        request.applymarker(pytest.mark.xfail(strict=False, reason="known open fuzz finding (see KNOWN_OPEN)"))
    path = fuzzing.write_case(workdir, PLAN_REGRESSIONS[case], f"regression-{case}.yaml")
    outcome = fuzzing.check_file(path, "plan", seconds=60, clock="cpu")
    assert outcome.ok, f"{outcome.kind} {outcome.signature}\n{outcome.detail}\n{outcome.output[-1500:]}"


@pytest.mark.slow
def test_plan_never_crashes(workdir):
    """Plan cases aimed past validation, on the shrunk GRU/Conv1D specs (a seeded loop: TF is slow to start)."""
    pytest.importorskip("tensorflow")
    seeds = fuzzing.tiny_seeds()
    failures = []
    for index in range(PLAN_CASES):
        rng = random.Random(f"plan:{index}")
        case = fuzzing.make_plan_case(rng, seeds)
        path = fuzzing.write_case(workdir, case.text, f"plan-{index}.yaml")
        outcome = fuzzing.check_file(path, "plan-json" if index % 4 == 3 else "plan", seconds=60, clock="cpu")
        if not outcome.ok and not known_open("plan", outcome):
            failures.append(f"case {index}: {outcome.kind} {outcome.signature}\nmutation: {case.describe()}\n"
                            f"{outcome.detail[:1500]}\n{outcome.output[-800:]}")
        os.remove(path)
    assert not failures, "\n\n".join(failures)
