"""The learning-rate range test: on least squares, where the best SGD rate is known, and on a stage's own model."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from graft.base.backend import import_keras
from graft.commands.cli import main
from graft.tuning.lrfind import range_test, rate_at
from tests.tuning.sweep_specs import write


def test_the_rate_grows_exponentially_from_start_to_end():
    assert rate_at(0, 5, 1e-4, 1.0) == pytest.approx(1e-4)
    assert rate_at(2, 5, 1e-4, 1.0) == pytest.approx(1e-2)
    assert rate_at(4, 5, 1e-4, 1.0) == pytest.approx(1.0)


def test_on_least_squares_it_suggests_a_rate_within_a_factor_of_the_best_sgd_rate():
    """SGD on a mean squared error over a linear model converges fastest at 1/L (L: the largest eigenvalue of the
    loss's Hessian, 2/n XᵀX) and diverges above 2/L: the range test must find that from the loss alone."""
    import tensorflow as tf

    keras = import_keras()
    rng = np.random.default_rng(0)
    samples, features = 512, 8
    x = (rng.normal(size=(samples, features)) * rng.uniform(0.5, 2.0, size=features)).astype("float32")
    y = (x @ rng.normal(size=(features, 1)) + 0.1 * rng.normal(size=(samples, 1))).astype("float32")
    with_bias = np.hstack([x, np.ones((samples, 1))])
    best = 1 / np.linalg.eigvalsh(2 / samples * with_bias.T @ with_bias).max()

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((features,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(), loss="mse")
    batches = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(samples, seed=0).batch(32)
    found = range_test(keras, model, batches, steps=200, start=1e-5, end=10.0)

    assert found.exploded  # it stopped where SGD diverges, before the 200 batches
    assert len(found.rates) < 200
    assert 2 * best < found.rates[-1]  # ... which is above 2/L
    assert best / 5 < found.suggested < best * 5, (found.suggested, best)


def digests(folder) -> dict[str, str]:
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, folder)] = hashlib.sha256(handle.read()).hexdigest()
    return found


@pytest.mark.slow
def test_lr_find_on_a_stage_reads_the_run_folder_and_leaves_it_as_it_was(tmp_path, capsys, monkeypatch):
    spec, _ = write(tmp_path)
    out = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    assert main(["lr-find", spec, "--stage", "transfer", "--out", str(out)]) == 1
    assert ("stage 'transfer' starts from stage 'pretrain', which has not finished in "
            f"{out}: train it first") in capsys.readouterr().err
    assert main(["run", spec, "--out", str(out)]) == 0
    before = digests(out)

    assert main(["lr-find", spec, "--stage", "transfer", "--out", str(out), "--steps", "60", "--start", "1e-5"]) == 0
    printed = capsys.readouterr().out
    assert digests(out) == before  # nothing written, nothing changed
    assert (tmp_path / "lr-find-transfer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    suggested = float(printed.split("suggested learning rate: ")[1].split()[0])
    assert 1e-5 < suggested < 10
    assert f"--set stages.transfer.optimizer.learning_rate={suggested:.2g}" in printed

    assert main(["lr-find", spec, "--stage", "transfer", "--out", str(out)]) == 1  # the plot is there
    assert "lr-find-transfer.png exists (file); nothing was written" in capsys.readouterr().err
