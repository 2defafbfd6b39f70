"""A finished stage's model for serving: a TensorFlow SavedModel, or a TFLite flat buffer, checked on samples.

Both take the model's input as ``input`` and give one output per head, named
after it (signature ``serving_default``).  The SavedModel is written by Keras's
own export (``keras.export.ExportArchive``, what ``model.export`` uses) on Keras 3
and by ``tf.saved_model.save`` of the model's variables and serving function on
Keras 2; TFLite is converted from it.

Recurrent layers (GRU, LSTM) run as a loop over time steps whose buffers TFLite's
built-in ops hold only at a fixed batch size: with a free batch the converter
needs TensorFlow's own ops (SELECT_TF_OPS, the Flex delegate, which apps must
link and which TensorFlow 2.21's ``tf.lite.Interpreter`` lacks).  So a model the
converter cannot turn into built-in ops at a free batch is converted at a batch
of 1 (one sample per call), and says so; ``batch`` chooses another,
``select_tf_ops`` keeps the free batch with TensorFlow ops instead.

Before the file is put in place, the exported model is run on a few seeded
samples and its outputs compared with the Keras model's (``Exported.max_difference``).
"""

from __future__ import annotations

import inspect
import math
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from graft.base.problems import GraftError
from graft.plugins.layers import INPUT_NAME

FORMATS = ("saved_model", "tflite")
SIGNATURE = "serving_default"
CHECK_SAMPLES = 4
TOLERANCE = 1e-4  # largest |exported - Keras| allowed, relative to the outputs' scale (at least 1)


class ExportError(GraftError):
    """A model that cannot be exported, or whose export does not reproduce it."""


@attrs.frozen
class Exported:
    """What ``export`` wrote: where, in which format, and how its outputs compare with the Keras model's.

    ``batch`` is the TFLite model's fixed batch size (None: any); ``select_tf_ops``
    whether it needs TensorFlow's ops (the Flex delegate); ``checked`` how many
    samples were compared (0 if this TensorFlow cannot run the file) and ``notes``
    what the user should know.
    """

    path: str
    format: str
    batch: int | None
    select_tf_ops: bool
    checked: int
    max_difference: float
    notes: tuple[str, ...] = ()


def export(model: Any, path: str, format: str, *, batch: int | None = None, select_tf_ops: bool = False,
           force: bool = False) -> Exported:
    """Export ``model`` to ``path`` (``saved_model``: a folder, ``tflite``: a file), checked, never over an
    existing path unless ``force``."""
    from graft.base.backend import import_keras
    from graft.finished.outfile import check_free, write_file, write_folder

    if format not in FORMATS:
        raise ExportError(f"--format {format}: choose {' or '.join(FORMATS)}")
    if batch is not None and batch < 1:
        raise ExportError(f"--batch {batch}: a batch size is 1 or more")
    if format == "saved_model" and (batch is not None or select_tf_ops):
        raise ExportError("--batch and --select-tf-ops are for --format tflite; a SavedModel takes any batch")
    check_free(path, force, "--output")
    keras = import_keras()
    count = CHECK_SAMPLES if batch is None else batch * math.ceil(CHECK_SAMPLES / batch)  # whole batches
    samples = np.random.default_rng(0).normal(size=(count, *_input_shape(model))).astype(np.float32)
    expected = _outputs(model, model(samples, training=False))  # eager: no predict function to trace
    if format == "saved_model":
        found: dict[str, Any] = {}

        def write_saved(folder: str) -> None:
            save(keras, model, folder, None)
            found["result"] = _check(expected, _run_saved(folder, samples), path, format)

        written = write_folder(path, write_saved, force, "--output")
        checked, difference = found["result"]
        return Exported(written, format, None, False, checked, difference)
    with tempfile.TemporaryDirectory(prefix="graft-export-") as scratch:
        flat, used_batch, notes = _tflite(keras, model, scratch, batch, select_tf_ops)
    outputs, why = _run_tflite(flat, samples, used_batch)
    if outputs is None:
        checked, difference = 0, float("nan")
        notes = (*notes, f"not checked: {why}")
    else:
        checked, difference = _check(expected, outputs, path, format)

    def write_tflite(target: str) -> None:
        with open(target, "wb") as handle:
            handle.write(flat)

    written = write_file(path, write_tflite, force, "--output")
    return Exported(written, format, used_batch, select_tf_ops, checked, difference, notes)


def _input_shape(model: Any) -> tuple[int, ...]:
    return tuple(int(size) for size in model.input_shape[1:])


def _outputs(model: Any, values: Any) -> dict[str, np.ndarray]:
    values = values if isinstance(values, (list, tuple)) else [values]
    return {name: np.asarray(value) for name, value in zip(model.output_names, values, strict=True)}  # tensors too


def save(keras, model: Any, folder: str, batch: int | None) -> None:
    """A SavedModel of ``model`` in ``folder``: signature ``serving_default``, input ``input``, an output per head."""
    import tensorflow as tf

    names = list(model.output_names)

    def serve(inputs):
        outputs = model(inputs, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return dict(zip(names, outputs, strict=True))

    spec = tf.TensorSpec((batch, *_input_shape(model)), tf.float32, name=INPUT_NAME)
    if int(keras.__version__.split(".")[0]) >= 3:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(name="serve", fn=serve, input_signature=[spec])  # also serving_default
        quiet = {"verbose": False} if "verbose" in inspect.signature(archive.write_out).parameters else {}
        archive.write_out(folder, **quiet)
    else:  # the weights and the function alone: saving the Keras 2 model itself traces every layer (4x the time)
        module = tf.Module()
        module.weights = list(model.variables)
        module.serve = tf.function(serve, input_signature=[spec])
        tf.saved_model.save(module, folder, signatures={SIGNATURE: module.serve.get_concrete_function()})


def _run_saved(folder: str, samples: np.ndarray) -> dict[str, np.ndarray]:
    import tensorflow as tf

    signature = tf.saved_model.load(folder).signatures[SIGNATURE]
    return {name: value.numpy() for name, value in signature(**{INPUT_NAME: tf.constant(samples)}).items()}


def _tflite(keras, model: Any, scratch: str, batch: int | None, select_tf_ops: bool) -> tuple[bytes, int | None, tuple]:
    """The flat buffer, its fixed batch (None: any) and notes; at a batch of 1 if the free batch needs TF ops."""

    def convert(at_batch: int | None) -> bytes:
        folder = os.path.join(scratch, f"batch-{at_batch}")
        save(keras, model, folder, at_batch)
        return _quietly(lambda: _convert(folder, select_tf_ops))

    if batch is not None or select_tf_ops:
        return convert(batch), batch, ()
    try:
        return convert(None), None, ()
    except ConversionFailed as free_batch:
        flat = convert(1)
        return flat, 1, (
            f"converted at a fixed batch of 1 (one sample per call): at a free batch {in_words(free_batch.reason)}; "
            "--batch N for N samples per call, or --select-tf-ops for any batch (apps then need the Flex delegate)",
        )


def in_words(reason: str) -> str:
    """What the converter's ``reason`` (MLIR text naming ``'tf.TensorListReserve'`` ops) means, in words."""
    ops = sorted(set(re.findall(r"'tf\.(\w+)'", reason)))
    named = f" ({', '.join(ops)})" if ops else ""
    if any(op.startswith("TensorList") for op in ops):
        return (f"TFLite's built-in ops cannot hold the buffers of a recurrent layer's loop over the time steps"
                f"{named}, so the converter needs TensorFlow's own ops")
    return f"the converter needs TensorFlow's own ops{named}, which TFLite's built-in ops do not cover"


def _quietly(work: Callable[[], Any]) -> Any:
    """``work()`` with what TensorFlow's C++ code writes to fd 2 held back (the converter's diagnostics, the
    interpreter's delegate notes; GRAFT_VERBOSE=1 shows them): a failure's error says what failed."""
    from graft.base.backend import fd2_lines_hidden, verbose

    if verbose():
        return work()
    failure: Exception | None = None
    with fd2_lines_hidden([""]):  # every line matches: all hidden, as the block ends normally
        try:
            result = work()
        except Exception as exc:  # noqa: BLE001 - raised again below, once fd 2 is back
            failure = exc
    if failure is not None:
        raise failure
    return result


class ConversionFailed(ExportError):
    """The TFLite converter refused the model; ``reason`` is its first error line."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def _convert(folder: str, select_tf_ops: bool) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(folder, signature_keys=[SIGNATURE])
    if select_tf_ops:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        converter._experimental_lower_tensor_list_ops = False  # keep recurrent loops' buffers as TF ops
    try:
        return converter.convert()
    except Exception as exc:  # noqa: BLE001 - ConverterError and what the converter's passes raise
        reason = _first_error(str(exc)) or f"{type(exc).__name__}: {exc}"
        raise ConversionFailed(
            f"the TFLite converter cannot convert this model{' with SELECT_TF_OPS' if select_tf_ops else ''}: "
            f"{reason}" + ("" if select_tf_ops else "; try --select-tf-ops (TensorFlow's own ops)"), reason
        ) from None


def _first_error(text: str) -> str:
    """The converter's first ``error:`` line, without its MLIR location (``loc(...): ``)."""
    for line in text.splitlines():
        if "error:" in line:
            message = _without_location(line.split("error:", 1)[1].strip())
            return message.split("\\n")[0].strip()
    return ""


def _without_location(message: str) -> str:
    if not message.startswith("loc("):
        return message
    depth = 0
    for position, character in enumerate(message):
        depth += {"(": 1, ")": -1}.get(character, 0)
        if depth == 0:
            return message[position + 1:].lstrip(": ")
    return message


def _run_tflite(flat: bytes, samples: np.ndarray, batch: int | None) -> tuple[dict[str, np.ndarray] | None, str]:
    """The TFLite model's outputs for ``samples`` (``batch`` at a time), or None and why it cannot run here."""
    import tensorflow as tf

    def run() -> list[dict[str, np.ndarray]]:
        runner = tf.lite.Interpreter(model_content=flat).get_signature_runner(SIGNATURE)
        step = batch or len(samples)
        return [runner(**{INPUT_NAME: samples[start:start + step]}) for start in range(0, len(samples), step)]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation note (LiteRT)
        try:
            parts = _quietly(run)
        except RuntimeError as exc:  # e.g. TensorFlow ops this interpreter was built without (Flex)
            return None, f"this TensorFlow's TFLite interpreter cannot run it ({str(exc).splitlines()[0][:200]})"
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}, ""


def _check(expected: dict[str, np.ndarray], found: dict[str, np.ndarray], where: str, format: str) -> tuple[int, float]:
    """Samples compared and the largest difference; ``ExportError`` if an output is missing or differs."""
    if set(found) != set(expected):
        raise ExportError(f"the exported {format} gives outputs {sorted(found)}, not the heads {sorted(expected)}")
    worst = 0.0
    for name, values in expected.items():
        difference = float(np.max(np.abs(found[name].astype(np.float64) - values)))
        scale = max(1.0, float(np.max(np.abs(values))))
        if not difference <= TOLERANCE * scale:
            raise ExportError(
                f"the exported {format} does not reproduce the model: head '{name}' differs by {difference:.3g} "
                f"on {len(values)} samples (allowed {TOLERANCE * scale:.3g}); nothing was written to {where}"
            )
        worst = max(worst, difference)
    return len(next(iter(expected.values()))), worst
