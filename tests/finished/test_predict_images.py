"""``graft predict OUT STAGE images...`` on a stage trained on ``image_folder`` data: real PNGs written here.

The rows written must be ``model.predict`` of the images decoded and resized as the
stage's ``image_folder`` params say; everything that can be wrong with the images,
the output or the stage is said before TensorFlow is imported.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("graft_digits")

import attrs  # noqa: E402

import graft  # noqa: E402
from graft.commands.cli import main  # noqa: E402
from graft_digits.folder import write_png  # noqa: E402

SIDE = 32
SPEC = f"""\
seed: 1
model:
  input_shape: [{SIDE}, {SIDE}, 3]
  extractor: {{plugin: pixels, params: {{units: 4}}}}
  heads:
    label: {{plugin: dense, loss: sparse_categorical_crossentropy, params: {{units: 2}}}}
stages:
  - name: only
    data:
      source: image_folder
      params: {{directory: train, image_size: [{SIDE}, {SIDE}], interpolation: bilinear, max_pixels: 2400}}
    epochs: 1
    batch_size: 4
"""


@attrs.frozen
class PixelsParams:
    units: int


class Pixels:
    """A tiny image extractor of Keras's own layers (so ``model.keras`` loads without this plugin)."""

    @graft.hookimpl
    def build_extractor(self, params: PixelsParams, input_shape):
        import keras

        inputs = keras.Input(shape=input_shape, name="pixels_input")
        scaled = keras.layers.Rescaling(1 / 255, name="pixels_scale")(inputs)
        flat = keras.layers.Flatten(name="pixels_flat")(scaled)
        return keras.Model(inputs, keras.layers.Dense(params.units, name="pixels_dense")(flat), name="pixels")


def _pixels(seed: int, side: int = SIDE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished stage ``only`` trained on a folder of PNGs (classes ``circle``, ``square``), and new PNGs to
    predict on: ``new/`` (two of the model's size, one larger that must be resized) and ``one.png``."""
    folder = tmp_path_factory.mktemp("predict-images")
    for index, name in enumerate(("square", "circle")):
        os.makedirs(folder / "train" / name)
        for number in range(4):
            write_png(str(folder / "train" / name / f"{number}.png"), _pixels(10 * index + number))
    os.makedirs(folder / "new" / "deeper")
    new = {"new/a.png": _pixels(101), "new/deeper/b.png": _pixels(102), "new/wide.png": _pixels(103, 48),
           "one.png": _pixels(104)}
    for relative, pixels in new.items():
        write_png(str(folder / relative), pixels)
    (folder / "spec.yaml").write_text(SPEC)
    from graft.plugins.registry import Registry
    from graft.runs.stages import run_spec
    from graft.spec.specfile import load_spec

    registry = Registry.discover()
    registry.register(Pixels(), "pixels", distribution="graft-test-pixels", version="0.1")
    run_spec(load_spec(str(folder / "spec.yaml"), registry), registry, str(folder / "out"), log=lambda _: None)
    return folder, new


def _expected(folder, new: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    """``model.predict`` of the images as Keras would read them: grey to RGB, resized to 32x32 (bilinear)."""
    import tensorflow as tf

    images = [tf.image.resize(np.repeat(new[name][..., None], 3, axis=-1), (SIDE, SIDE), method="bilinear")
              for name in names]
    model = graft.load_stage(folder / "out", "only").model
    return model.predict(np.stack([np.asarray(image, np.float32) for image in images]), verbose=0)


@pytest.mark.slow
def test_predict_writes_a_row_per_image_file_as_model_predict_of_the_decoded_images(run, monkeypatch, capsys):
    folder, new = run
    monkeypatch.chdir(folder)
    assert main(["predict", "out", "only", "new", "one.png"]) == 0
    said = capsys.readouterr().out
    assert "for 4 images to" in said and "new.only-predictions.csv: one row per file, label" in said
    assert "note: label holds logits" in said
    with open(folder / "new.only-predictions.csv", newline="") as handle:
        table = list(csv.reader(handle))
    names = ["new/a.png", "new/deeper/b.png", "new/wide.png", "one.png"]  # a folder's images sorted, sub-folders too
    assert table[0] == ["path", "label", "label_class", "label_0", "label_1"]
    assert [row[0] for row in table[1:]] == names
    expected = _expected(folder, new, names)
    written = np.array([[float(value) for value in row[3:]] for row in table[1:]])
    np.testing.assert_allclose(written, expected, rtol=1e-4, atol=1e-5)
    assert [int(row[1]) for row in table[1:]] == list(np.argmax(expected, axis=1))
    assert [row[2] for row in table[1:]] == [["circle", "square"][i] for i in np.argmax(expected, axis=1)]

    assert main(["predict", "out", "only", "one.png", "new/a.png", "--output", "p.npz"]) == 0
    with np.load(folder / "p.npz") as saved:
        assert list(saved["path"]) == ["one.png", "new/a.png"]
        np.testing.assert_allclose(saved["label"], expected[[3, 0]], rtol=1e-5, atol=1e-6)
    found = graft.load_stage("out", "only").predict_images(["new"])  # the same from Python
    assert found.paths == tuple(names[:3])
    np.testing.assert_allclose(found.outputs["label"], expected[:3], rtol=1e-5, atol=1e-6)


PROBE = """\
import sys
from graft.commands.cli import main
codes = [main(args) for args in {calls!r}]
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "TensorFlow was imported"
print("codes", codes)
"""


@pytest.mark.slow
def test_what_is_wrong_with_the_images_is_said_before_tensorflow_is_imported(run, tmp_path):
    folder, _ = run
    os.makedirs(tmp_path / "mixed")
    write_png(str(tmp_path / "mixed" / "ok.png"), _pixels(1))
    write_png(str(tmp_path / "mixed" / "huge.png"), _pixels(2, 64))  # 4,096 pixels: over max_pixels 2,400
    (tmp_path / "mixed" / "notes.txt").write_text("not an image")
    (tmp_path / "cut.png").write_bytes((tmp_path / "mixed" / "ok.png").read_bytes()[:40])
    os.mkfifo(tmp_path / "mixed" / "pipe.png")  # never opened: listing must not block
    with open(folder / "out" / "only" / "report.json") as handle:
        assert json.load(handle)["data"]["classes"] == ["circle", "square"]
    out = str(folder / "out")
    calls = [
        ["predict", out, "only", str(tmp_path / "mixed"), str(tmp_path / "cut.png"), str(tmp_path / "gone.png")],
        ["predict", out, "only", str(tmp_path / "mixed" / "ok.png"), "--output", str(tmp_path / "p.txt")],
        ["predict", out, "onyl", str(tmp_path / "mixed" / "ok.png")],
    ]
    probe = subprocess.run([sys.executable, "-c", PROBE.format(calls=calls)], capture_output=True, text=True,
                           timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert "codes [1, 1, 1]" in probe.stdout
    err = probe.stderr
    assert "5 problems with the images to predict on" in err
    assert f"{tmp_path / 'mixed' / 'notes.txt'} is not an image file by its name" in err
    assert f"{tmp_path / 'mixed' / 'huge.png'}" in err and "2,400" in err
    assert f"{tmp_path / 'mixed' / 'pipe.png'} is a named pipe (FIFO), not an image file: leave it out" in err
    assert f"{tmp_path / 'cut.png'} is a truncated PNG image" in err
    assert f"{tmp_path / 'gone.png'}: no such file or folder" in err
    assert "predictions on images are written as .csv or .npz" in err
    assert "has no finished stage 'onyl'" in err and "did you mean 'only'" in err
    assert not os.path.exists(tmp_path / "p.txt")


@pytest.mark.slow
def test_images_for_a_stage_that_trained_on_arrays_are_refused_before_tensorflow(run, tmp_path):
    import shutil

    folder, _ = run
    shutil.copytree(folder / "out", tmp_path / "out")  # the same stage, as if its spec had read an .npz
    resolved = tmp_path / "out" / "spec.resolved.yaml"
    resolved.write_text(resolved.read_text().replace("source: image_folder", "source: npz"))
    write_png(str(tmp_path / "x.png"), _pixels(1))
    calls = [["predict", str(tmp_path / "out"), "only", str(tmp_path / "x.png")]]
    probe = subprocess.run([sys.executable, "-c", PROBE.format(calls=calls)], capture_output=True, text=True,
                           timeout=120)
    assert "codes [1]" in probe.stdout, probe.stderr
    assert "stage 'only' trained on npz data, not image_folder" in probe.stderr
