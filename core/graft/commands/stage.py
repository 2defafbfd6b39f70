"""``graft evaluate``, ``graft predict`` and ``graft export``: a finished stage's saved model at work.

The stage is loaded as ``graft.load_stage`` loads it (its files checked against
the digests its report recorded); nothing is written in the run folder.
"""

from __future__ import annotations

import argparse
import json
import os

EXPORT_FORMATS = ("saved_model", "tflite")  # graft.finished.exporting.FORMATS, without importing it


def add_parser(commands) -> None:
    """``graft evaluate``, ``graft predict`` and ``graft export`` under ``commands``."""
    evaluate = commands.add_parser(
        "evaluate", help="loss and metrics per head of a finished stage's model, on its validation data or --data"
    )
    _stage_arguments(evaluate)
    evaluate.add_argument("--data", metavar="FILE.npz",
                          help="evaluate on these arrays: the inputs as 'input', each head's targets by its name "
                          "(default: the stage's own validation data, as its spec defines it)")
    evaluate.add_argument("--spec", metavar="CONFIG",
                          help="the spec the stage ran from (default: the run folder's spec.resolved.yaml); it must "
                          "have the stage's fingerprint")
    evaluate.add_argument("--batch-size", type=_positive, metavar="N",
                          help="samples per batch (default: the stage's batch_size, or 32 with --data)")
    evaluate.add_argument("--format", choices=("text", "json"), default="text", help="json: for scripts")

    predict = commands.add_parser(
        "predict", help="run a finished stage's model on inputs (an .npz, or image files and folders); its outputs "
        "to an .npz or, for images, a row per file"
    )
    _stage_arguments(predict)
    predict.add_argument("inputs", metavar="INPUT", nargs="+",
                         help="an .npz whose array 'input' holds the samples; or, for a stage trained on image_folder "
                         "data, image files and folders of them (decoded and resized as its image_folder params say)")
    predict.add_argument("--output", metavar="PRED",
                         help="where to write the predictions: .npz, or for images .csv (one row per file) or .npz "
                         "(default: INPUT.<stage>-predictions.npz beside INPUT; for images "
                         "<first input>.<stage>-predictions.csv)")
    predict.add_argument("--force", action="store_true", help="replace --output if it exists")
    predict.add_argument("--batch-size", type=_positive, default=32, metavar="N", help="samples per batch (default 32)")

    export = commands.add_parser("export", help="a finished stage's model as a TensorFlow SavedModel or a TFLite file")
    _stage_arguments(export)
    export.add_argument("--format", choices=EXPORT_FORMATS, required=True,
                        help="saved_model: a folder for TensorFlow Serving; tflite: a file for LiteRT/TFLite")
    export.add_argument("--output", metavar="PATH",
                        help="where to write it (default: <run folder name>-<stage>.saved_model or .tflite here)")
    export.add_argument("--force", action="store_true", help="replace --output if it exists")
    export.add_argument("--batch", type=_positive, metavar="N",
                        help="tflite: a fixed batch of N samples per call (default: any batch, or 1 where built-in "
                        "ops need a fixed one, as for GRU)")
    export.add_argument("--select-tf-ops", action="store_true",
                        help="tflite: allow TensorFlow's own ops (any batch for GRU; apps need the Flex delegate)")


def _stage_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("out", metavar="OUT", help="the run folder (graft run --out)")
    command.add_argument("stage", metavar="STAGE", help="a finished stage in it")


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return number


def run_evaluate(args) -> int:
    from graft.finished.api import load_stage

    stage = load_stage(args.out, args.stage)
    result = stage.evaluate(args.data, spec=args.spec, batch_size=args.batch_size)
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2))
        return 0
    samples = f" ({result.samples:,} samples)" if result.samples is not None else ""
    print(f"stage '{stage.name}' of {args.out} on {result.data}{samples}")
    print(result.table())
    return 0


def run_predict(args) -> int:
    from graft.finished.imageinputs import is_npz
    from graft.finished.outfile import check_free
    from graft.finished.serving import default_predictions_path
    from graft.finished.stagearrays import check_inputs, open_inputs

    if not is_npz(args.inputs):
        return _predict_images(args)
    output = args.output or default_predictions_path(args.inputs[0], args.stage)
    check_free(output, args.force, "--output")  # before the model is loaded and run
    inputs = open_inputs(args.inputs[0], "INPUT")  # a missing or misnamed array: before TensorFlow is imported

    from graft.finished.api import load_stage
    from graft.finished.serving import input_shape, predict, write_predictions

    stage = load_stage(args.out, args.stage)
    rows = check_inputs(inputs, input_shape(stage.model))
    predictions = predict(stage, rows, args.batch_size)
    written = write_predictions(predictions, output, args.force)
    shapes = ", ".join(f"{name} {values.shape}" for name, values in predictions.items())
    print(f"wrote the predictions of stage '{stage.name}' for {len(rows):,} samples to {written}: {shapes}")
    _logits_notes(stage)
    return 0


def _logits_notes(stage) -> None:
    from graft.finished.serving import logits_heads

    for name in logits_heads(stage):
        squash = "sigmoid" if stage.report.heads[name].loss == "binary_crossentropy" else "softmax"
        print(f"note: {name} holds logits (the head's output is linear); apply a {squash} for probabilities")


def _predict_images(args) -> int:
    """Image files and folders: everything about them, the stage and the output checked before TensorFlow."""
    from graft.finished.imageinputs import (
        ImageInputError,
        check_output_format,
        default_output,
        image_inputs,
        predict_images,
        write_rows,
    )
    from graft.finished.outfile import check_free
    from graft.finished.stage import finished_report

    report = finished_report(args.out, args.stage)
    output = args.output or default_output(args.inputs, args.stage)
    check_output_format(output, list(report.plan.outputs))
    check_free(output, args.force, "--output")
    images = image_inputs(args.out, args.stage, report, args.inputs)

    from graft.finished.api import load_stage
    from graft.finished.serving import input_shape

    stage = load_stage(args.out, args.stage)
    if input_shape(stage.model) != images.decoding.input_shape:
        raise ImageInputError(f"stage '{stage.name}' takes inputs shaped {input_shape(stage.model)}, but its "
                              f"image_folder params decode images to {images.decoding.input_shape}")
    predictions = predict_images(stage.model, images, args.batch_size)
    classes = {images.head: images.classes} if images.classes else {}
    written = write_rows(output, images.paths, predictions, stage.report, classes, args.force)
    print(f"wrote the predictions of stage '{stage.name}' for {len(images.paths):,} images to {written}: "
          f"one row per file, {', '.join(predictions)}")
    _logits_notes(stage)
    return 0


def run_export(args) -> int:
    from graft.finished.api import load_stage
    from graft.finished.outfile import check_free

    suffix = ".tflite" if args.format == "tflite" else ".saved_model"
    output = args.output or f"{os.path.basename(os.path.abspath(args.out))}-{args.stage}{suffix}"
    check_free(output, args.force, "--output")  # before the model is loaded
    stage = load_stage(args.out, args.stage)
    result = stage.export(output, args.format, batch=args.batch, select_tf_ops=args.select_tf_ops, force=args.force)
    batch = "any batch" if result.batch is None else f"a batch of {result.batch}"
    print(f"exported stage '{stage.name}' as {result.format} ({batch}"
          + (", TensorFlow ops" if result.select_tf_ops else "") + f") to {result.path}")
    if result.checked:
        print(f"checked: on {result.checked} samples its outputs are within {result.max_difference:.2g} of the "
              "Keras model's")
    for note in result.notes:
        print(f"note: {note}")
    return 0


COMMANDS = {"evaluate": run_evaluate, "predict": run_predict, "export": run_export}
