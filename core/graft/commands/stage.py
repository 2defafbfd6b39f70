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
        "predict", help="run a finished stage's model on inputs; one array per head to an npz"
    )
    _stage_arguments(predict)
    predict.add_argument("inputs", metavar="INPUT.npz", help="an .npz whose array 'input' holds the samples")
    predict.add_argument("--output", metavar="PRED.npz",
                         help="where to write the predictions (default: INPUT.<stage>-predictions.npz beside INPUT)")
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
    from graft.finished.outfile import check_free
    from graft.finished.serving import default_predictions_path
    from graft.finished.stagearrays import check_inputs, open_inputs

    output = args.output or default_predictions_path(args.inputs, args.stage)
    check_free(output, args.force, "--output")  # before the model is loaded and run
    inputs = open_inputs(args.inputs, "INPUT")  # a missing or misnamed array: before TensorFlow is imported

    from graft.finished.api import load_stage
    from graft.finished.serving import input_shape, logits_heads, predict, write_predictions

    stage = load_stage(args.out, args.stage)
    rows = check_inputs(inputs, input_shape(stage.model))
    predictions = predict(stage, rows, args.batch_size)
    written = write_predictions(predictions, output, args.force)
    shapes = ", ".join(f"{name} {values.shape}" for name, values in predictions.items())
    print(f"wrote the predictions of stage '{stage.name}' for {len(rows):,} samples to {written}: {shapes}")
    for name in logits_heads(stage):
        squash = "sigmoid" if stage.report.heads[name].loss == "binary_crossentropy" else "softmax"
        print(f"note: {name} holds logits (the head's output is linear); apply a {squash} for probabilities")
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
