"""``kerasnets convert``, ``export`` and ``benchmark``."""

import json
import os

from kerasnets.cli import common

# kerasnets.export's FORMATS and QUANTIZATIONS, kerasnets.convert's defaults:
# literals, so that --help imports neither.
EXPORT_FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("float16", "int8")
EXPORT_SUFFIXES = {".tflite": "tflite", ".onnx": "onnx"}


def add_parsers(sub):
    _add_convert_parser(sub)
    _add_export_parser(sub)
    _add_benchmark_parser(sub)


# ----------------------------------------------------------------- convert


def cmd_convert(args):
    # Unknown names and arguments fail before anything is read.
    name, options = common.model_with_args(args.model, args.model_arg, instead={
        "weights": "the weights are SOURCE (the first argument)",
        "include_top": "use --no-top"})
    common.at_least(args.images, 2, "--images")
    common.at_least(args.tolerance, 0, "--tolerance")
    if args.input_size is not None:
        if "input_shape" in options:
            raise common.UsageError(
                "give the input size once: --input-size or --model-arg input_shape")
        options["input_shape"] = (args.input_size, args.input_size, 3)
    common.load_tensorflow()
    from rich.markup import escape
    from rich.table import Table

    from kerasnets import convert

    def show(report, title):
        table = Table(title=title, show_header=False)
        table.add_column("", style="bold")
        table.add_column("")
        for label, value in report.rows():
            table.add_row(label, escape(value))
        common.console().print(table)

    try:
        with common.progress("converting") as progress:
            report = convert.convert(os.path.expanduser(args.source), name, args.output,
                                     include_top=not args.no_top, parity=not args.no_parity,
                                     model_kwargs=options, tolerance=args.tolerance,
                                     images=args.images, progress=progress)
    except convert.ParityError as error:
        show(error.report, f"{name}: parity check failed, nothing written")
        raise
    show(report, f"{name}: converted {args.source}")


def _add_convert_parser(sub):
    conv = sub.add_parser(
        "convert", help="convert a checkpoint (or a pretrained tag) to .weights.h5 / .keras",
        description="Build MODEL with weights=SOURCE (strict loading), compare it with the "
                    "reference implementation (timm, pytorchcv or keras.applications) where "
                    "installed, and save it.")
    conv.add_argument("source", metavar="SOURCE",
                      help="checkpoint file (.safetensors/.pth/.bin in timm layout, MXNet "
                           ".params, legacy keras .h5, .weights.h5) or a pretrained tag "
                           "(imagenet, tv_in1k, ...)")
    conv.add_argument("--model", required=True, help="model name, e.g. DPN92")
    conv.add_argument("-o", "--output", required=True,
                      help="OUT.weights.h5 (weights) or OUT.keras (the whole model)")
    conv.add_argument("--no-top", action="store_true",
                      help="without the classifier (include_top=False)")
    conv.add_argument("--input-size", type=int, default=None,
                      help="square input size built into the model (default: the builder's)")
    conv.add_argument("--model-arg", action="append", default=[], metavar="NAME=VALUE",
                      help="builder argument, repeatable (--model-arg alpha=0.35)")
    conv.add_argument("--no-parity", action="store_true",
                      help="skip the comparison with the reference implementation")
    conv.add_argument("--tolerance", type=common.finite_float, default=1e-3,
                      help="largest accepted max |diff| / logit spread (default 1e-3)")
    conv.add_argument("--images", type=int, default=4,
                      help="random images of the parity check (default 4)")
    conv.set_defaults(func=cmd_convert)


# ------------------------------------------------------------------ export


def cmd_export(args):
    keras_file = args.model.endswith(".keras")
    if keras_file and args.weights is not None:
        raise common.UsageError(
            "--weights is for model names; a .keras file carries its weights")
    if not keras_file and (os.path.sep in args.model or args.model.endswith((".h5", ".pth"))):
        raise common.UsageError(
            f"MODEL must be a model name or a .keras file; received {args.model}")
    for option, value in (("--min-agreement", args.min_agreement),
                          ("--max-probability-diff", args.max_probability_diff)):
        if not 0 <= value <= 1:
            raise common.UsageError(f"{option} is a fraction in [0, 1]; received {value:g}")
    model = os.path.expanduser(args.model) if keras_file else common.named_model(args.model)
    weights = common.weights_arg(args.weights or "imagenet")
    common.load_tensorflow()
    from rich.table import Table
    from rich.text import Text

    from kerasnets import export

    with common.progress("exporting") as progress:
        report = export.export_model(
            model, os.path.expanduser(args.output), args.format,
            weights=None if keras_file else weights, image_size=args.image_size,
            quantize=args.quantize, calibration=args.calibration,
            calibration_split=args.calibration_split,
            calibration_samples=args.calibration_samples, preprocessing=args.preprocessing,
            min_agreement=args.min_agreement,
            max_probability_diff=args.max_probability_diff, progress=progress,
        )
    table = Table(title="kerasnets export (checked against the Keras model)")
    table.add_column("")
    table.add_column("")
    for label, value in report.rows():
        table.add_row(Text(label), Text(value))
    common.console().print(table)


def _add_export_parser(sub):
    parser = sub.add_parser(
        "export", help="SavedModel, LiteRT (.tflite) or ONNX, checked against Keras")
    parser.add_argument("model", metavar="MODEL",
                        help="model name (e.g. MobileNetV2) or a .keras file")
    parser.add_argument("-o", "--output", required=True,
                        help="a .tflite or .onnx file, or a SavedModel directory")
    parser.add_argument("--format", default=None,
                        help=f"{' | '.join(EXPORT_FORMATS)} (default: from the output's "
                             "extension; a directory is a SavedModel)")
    parser.add_argument("--weights", default=None,
                        help="pretrained tag (default imagenet), a weights file, or none "
                             "(random); model names only")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input size (default: the model's or its weights')")
    parser.add_argument("--quantize", default=None, choices=QUANTIZATIONS,
                        help="LiteRT only; int8 needs --calibration")
    parser.add_argument("--calibration", default=None,
                        help="images to calibrate int8 and to check on: a tfds name, "
                             "folder:PATH (or a directory), or synthetic")
    parser.add_argument("--calibration-split", default="train")
    parser.add_argument("--calibration-samples", type=int, default=128)
    parser.add_argument("--preprocessing", default=None,
                        help="torch, tf, caffe, none, or a model name (MODEL or MODEL:TAG) "
                             "whose weights' preprocessing to use (default: the model's)")
    parser.add_argument("--min-agreement", type=common.finite_float, default=0.8,
                        help="quantized exports: least top-1 agreement with Keras "
                             "(default 0.8)")
    parser.add_argument("--max-probability-diff", type=common.finite_float, default=0.1,
                        help="quantized exports: largest change of a class probability, "
                             "mean over the images (default 0.1)")
    parser.set_defaults(func=cmd_export)


# --------------------------------------------------------------- benchmark


# Builder arguments that benchmark sets (``common.model_args``).
BENCHMARK_SETS = {
    "weights": "benchmark builds the model with random weights",
    "input_shape": "use --image-size",
    **{key: "benchmark builds the model with its 1000-class classifier"
       for key in ("include_top", "classes", "classifier_activation", "pooling")},
}


def cmd_benchmark(args):
    for option, value, minimum in (("--steps", args.steps, 1), ("--warmup", args.warmup, 0),
                                   ("--batch-size", args.batch_size, 1),
                                   ("--image-size", args.image_size, 1)):
        common.at_least(value, minimum, option)
    name, kwargs = common.model_with_args(args.model, args.model_arg, instead=BENCHMARK_SETS)
    common.load_tensorflow()
    from rich.table import Table

    from kerasnets import benchmark
    from kerasnets.text import format_bytes

    result = benchmark.benchmark(
        name, args.mode, batch_size=args.batch_size, image_size=args.image_size,
        mixed_precision=args.mixed_precision, jit_compile=args.jit_compile,
        steps=args.steps, warmup=args.warmup, model_kwargs=kwargs,
    )
    if args.json:
        print(json.dumps(result.as_dict()))
        return
    extra = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    table = Table(title=f"{result.model}{extra}: {result.mode}, batch {result.batch_size}, "
                        f"{result.image_size} px, {result.precision}"
                        f"{', XLA' if result.jit_compile else ''}")
    for column in ("device", "images/s", "latency p50", "latency p95", "peak memory",
                   "first step", "steps"):
        table.add_column(column, justify="left" if column == "device" else "right")
    table.add_row(f"{result.device}: {result.device_name}",
                  f"{result.images_per_second:.1f}",
                  f"{result.latency_p50_ms:.1f} ms", f"{result.latency_p95_ms:.1f} ms",
                  format_bytes(result.peak_memory_bytes),
                  f"{result.first_step_seconds:.1f} s",
                  f"{result.steps} (+{result.warmup} warm-up)")
    backend = {"tensorflow": "TF", "jax": "JAX", "torch": "PyTorch"}.get(result.backend,
                                                                          result.backend)
    table.caption = (f"latency per batch; memory: {result.memory_source}; "
                     f"{backend} {result.backend_version}, Keras {result.keras_version}")
    common.console().print(table)


def _add_benchmark_parser(sub):
    bench = sub.add_parser(
        "benchmark", help="images/s, latency and peak memory of a model",
        description="Builds MODEL (weights=None) and times warm-up then timed steps on "
                    "random images: images/s, per-batch latency p50/p95, peak memory. "
                    "To use only the CPU of a GPU machine: CUDA_VISIBLE_DEVICES= kerasnets "
                    "benchmark ...")
    bench.add_argument("--model", required=True, help="model name, e.g. DPN92")
    bench.add_argument("--mode", choices=("infer", "train"), default="infer",
                       help="infer: predict_on_batch; train: train_on_batch with the "
                            "`kerasnets train` compile recipe (default infer)")
    bench.add_argument("--batch-size", type=int, default=32, help="default 32")
    bench.add_argument("--image-size", type=int, default=224, help="default 224")
    bench.add_argument("--mixed-precision", action="store_true",
                       help="mixed_float16 on a GPU, mixed_bfloat16 on a CPU/TPU")
    bench.add_argument("--jit-compile", action="store_true",
                       help="compile the step with XLA (off by default; slow on CPUs)")
    bench.add_argument("--steps", type=int, default=20, help="timed steps")
    bench.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    bench.add_argument("--model-arg", action="append", default=[], metavar="NAME=VALUE",
                       help="builder argument, repeatable (--model-arg alpha=0.25)")
    bench.add_argument("--json", action="store_true", help="print the result as JSON")
    bench.set_defaults(func=cmd_benchmark)
