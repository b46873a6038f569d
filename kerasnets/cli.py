"""The ``kerasnets`` command line (a thin layer over the library).

    kerasnets list [--family F]  builders: parameters, MACs, weight tags, top-1
    kerasnets info MODEL         paper, architecture, weights sources, preprocessing
    kerasnets predict [IMAGE...] --model MODEL [--weights TAG|PATH] [--top 5]
    kerasnets train ...          train or fine-tune on a tfds dataset or an image folder
    kerasnets evaluate ...       top-1/top-5 accuracy and images/s of a model and weights
    kerasnets tune ...           keras-tuner search over a family (or several)
    kerasnets convert SOURCE --model MODEL -o OUT   checkpoint -> .weights.h5 / .keras
    kerasnets export MODEL -o OUT --format savedmodel|tflite|onnx
    kerasnets benchmark --model MODEL --mode infer|train
"""

import argparse
import inspect
import os
import sys


def builders():
    """Public builder functions of kerasnets, by name."""
    import kerasnets

    return {
        name: obj
        for name, obj in vars(kerasnets).items()
        if inspect.isfunction(obj) and name[:1].isupper()
    }


def _get_builder(name):
    table = builders()
    if name not in table:
        raise SystemExit(
            f"kerasnets: unknown model {name!r}. Known: {', '.join(sorted(table))}"
        )
    return table[name]


def _console():
    from rich.console import Console

    # Piped output (tests, `| less`) keeps full rows instead of 80 columns.
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def _family(builder):
    """The family module of a builder ("densenet", "mobilenet_v3", ...)."""
    return (getattr(builder, "__module__", "") or "").rsplit(".", 1)[-1]


def _is_generic(builder):
    """Generic builders (DenseNet(blocks, ...)) need arguments to build."""
    return any(
        p.default is inspect.Parameter.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in inspect.signature(builder).parameters.values()
    )


def model_stats():
    """{builder: {"params", "macs", "input_size"}} measured by
    tools/make_model_stats.py (building every model takes minutes)."""
    import json
    from importlib import resources

    try:
        text = resources.files("kerasnets").joinpath("resources/model_stats.json").read_text()
    except (FileNotFoundError, OSError):
        return {}
    return json.loads(text)


def _default_weights(name):
    """(tag, WeightsEntry) of a builder's "imagenet" weights, or None."""
    from kerasnets import data

    return data._weights_entry(name, "imagenet")


def _millions(value):
    return "-" if value is None else f"{value / 1e6:,.2f} M"


def _macs_text(value):
    if value is None:
        return "-"
    return f"{value / 1e9:.2f} G" if value >= 1e9 else f"{value / 1e6:.0f} M"


def cmd_list(args):
    from rich.table import Table

    from kerasnets import weights

    table = builders()
    families = sorted({_family(b) for b in table.values()})
    if args.family:
        wanted = args.family.lower()
        table = {n: b for n, b in table.items()
                 if _family(b) == wanted or _family(b).startswith(wanted + "_")}
        if not table:
            raise ValueError(
                f"unknown family {args.family!r}; families: {', '.join(families)}"
            )
    stats = model_stats()
    out = Table(title="kerasnets models (params and MACs at the default input size)")
    for column, justify in (("model", "left"), ("family", "left"), ("params", "right"),
                            ("MACs", "right"), ("weights", "left"), ("top-1", "right")):
        out.add_column(column, justify=justify, no_wrap=column != "weights")
    for name in sorted(table, key=lambda n: (_family(table[n]), n)):
        builder = table[name]
        tags = weights.available(name)
        found = _default_weights(name)
        top1 = found[1].top1 if found else None
        if _is_generic(builder):
            params = macs = "(generic)"
        else:
            row = stats.get(name, {})
            params, macs = _millions(row.get("params")), _macs_text(row.get("macs"))
        out.add_row(name, _family(builder), params, macs,
                    ", ".join(tags) if tags else "(none published)",
                    "-" if top1 is None else f"{top1:.1f}")
    _console().print(out)


def _paper(builder):
    """The module docstring's title and reference paragraphs."""
    module = sys.modules.get(builder.__module__)
    doc = inspect.getdoc(module) or ""
    paragraphs = [p.strip() for p in doc.split("\n\n") if p.strip()]
    keep = [p for i, p in enumerate(paragraphs)
            if i == 0 or "Reference" in p or "arxiv" in p.lower()]
    return "\n\n".join(keep[:3])


DEFAULT_MARK = " (the default, weights=\"imagenet\")"


def _describe_entry(name, tag, entry, default=False):
    from kerasnets import data

    prep = data.preprocessing_for(name, tag)
    lines = [
        f"[bold]{tag}[/bold]{DEFAULT_MARK if default else ''}: "
        f"{entry.source or 'unknown source'}"
        + (f", licence {entry.license}" if entry.license else ""),
        f"  file: {entry.url} ({entry.format}"
        + (f", {'sha256' if len(entry.file_hash) == 64 else 'md5'} {entry.file_hash}"
           if entry.file_hash else ", no published hash") + ")",
    ]
    if entry.notop_url:
        lines.append(f"  without classifier: {entry.notop_url}")
    accuracy = ", ".join(
        f"{label} {value:.2f}" for label, value in (("top-1", entry.top1), ("top-5", entry.top5))
        if value is not None
    )
    lines.append(f"  reported accuracy: {accuracy or 'not recorded'}")
    mean = ", ".join(f"{v:.3f}" for v in prep.mean)
    std = ", ".join(f"{v:.3f}" for v in prep.std)
    lines.append(
        f"  preprocessing: mode {prep.mode or '-'} (on 0-255 RGB: mean {mean}, std {std}"
        f"{', RGB->BGR' if prep.bgr else ''}); input {entry.input_size}, "
        f"crop {prep.crop_pct}, {prep.interpolation}"
    )
    return lines


def cmd_info(args):
    from kerasnets import utils, weights
    from kerasnets.weights.registry import all_keys, tags_for

    builder = _get_builder(args.model)
    console = _console()
    console.print(f"[bold]{args.model}[/bold] ({builder.__module__})\n")
    console.print(_paper(builder), markup=False)
    console.print()
    summary = inspect.getdoc(builder) or ""
    console.print(summary, markup=False)
    if _is_generic(builder):
        required = [
            p.name for p in inspect.signature(builder).parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        console.print(f"\n{args.model} is a generic builder: it needs {', '.join(required)}.")
    else:
        model = builder(weights=None)
        size = model.input_shape[1] or 224  # free-size models: counted at 224
        macs = utils.count_macs(model, input_shape=(size, size, model.input_shape[-1]))
        console.print(
            f"\nparameters: {utils.count_trainable_params(model):,} trainable, "
            f"{model.count_params():,} in all; "
            f"MACs at {size}x{size}: {_macs_text(macs)}; "
            f"{len(model.layers)} layers"
        )
    console.print("\n[bold]weights[/bold]")
    keys = [args.model] + [k for k in all_keys() if k.startswith(args.model + "_")]
    shown = 0
    for key in keys:
        for tag, entry in sorted(tags_for(key).items()):
            if tag == "imagenet" and any(
                e is entry for t, e in tags_for(key).items() if t != "imagenet"
            ):
                continue  # an alias, listed under its own name
            if key != args.model:
                console.print(f"{key}:", markup=False)
            default = tag != "imagenet" and tags_for(key).get("imagenet") is entry
            for line in _describe_entry(args.model, tag, entry, default):
                console.print(line, soft_wrap=True)
            shown += 1
    if not shown:
        console.print(f"{weights.describe_tags(args.model)}.")


def cmd_predict(args):
    import numpy as np
    from rich.markup import escape
    from rich.table import Table

    from kerasnets import data, imagenet
    from kerasnets.models.common import is_weights_path

    builder = _get_builder(args.model)
    if _is_generic(builder):
        raise ValueError(f"{args.model} is a generic builder; name a variant "
                         "(see `kerasnets list`)")
    if args.top < 1:
        raise ValueError("--top must be at least 1")
    images = args.images or [imagenet.sample_image()]
    for path in images:
        if not os.path.isfile(path):
            raise ValueError(f"no such image file: {path}")
    weights = args.weights
    if not is_weights_path(weights):
        data.preprocessing_for(args.model, weights)  # unknown tag: fail before building
    model = builder(weights=weights)
    if model.output_shape[-1] != imagenet.NUM_CLASSES:
        raise ValueError(f"{args.model} predicts {model.output_shape[-1]} classes, "
                         "not the 1000 ImageNet classes")
    size = model.input_shape[1]
    batch = np.stack([data.load_image(path, args.model, weights, image_size=size)
                      for path in images])
    preds = model.predict(batch, verbose=0)
    console = _console()
    for path, rows in zip(images, imagenet.decode_predictions(preds, top=args.top)):
        console.print(f"[bold]{escape(path)}[/bold]  ({args.model}, weights "
                      f"{escape(str(weights))})", soft_wrap=True)
        table = Table()
        table.add_column("#", justify="right")
        table.add_column("class")
        table.add_column("WordNet id")
        table.add_column("probability", justify="right")
        for rank, (wnid, name, score) in enumerate(rows, 1):
            table.add_row(str(rank), name, wnid, f"{100 * float(score):.2f}%")
        console.print(table)

def _model_kwargs(items):
    """["alpha=0.5", "minimalistic=True"] -> {"alpha": 0.5, "minimalistic": True}."""
    import ast

    kwargs = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--model-arg {item!r}: expected NAME=VALUE (alpha=0.25)")
        try:
            kwargs[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            kwargs[key] = text
    return kwargs


def cmd_train(args):
    from kerasnets import training

    strategy = training.get_strategy(args.strategy, tpu=args.tpu)  # first: multiworker
    result = training.train(
        _get_builder(args.model), args.dataset, output=args.output, weights=args.weights,
        epochs=args.epochs, batch_size=args.batch_size, image_size=args.image_size,
        optimizer=args.optimizer, lr=args.lr, schedule=args.schedule,
        label_smoothing=args.label_smoothing, mixed_precision=args.mixed_precision,
        strategy=strategy, freeze_backbone=args.freeze_backbone,
        train_split=args.train_split,
        val_split=None if args.val_split.lower() == "none" else args.val_split,
        steps_per_epoch=args.steps_per_epoch, validation_steps=args.validation_steps,
        warmup_epochs=args.warmup_epochs, weight_decay=args.weight_decay,
        dropout=args.dropout, mixup=args.mixup, seed=args.seed, data_dir=args.data_dir,
        model_kwargs=_model_kwargs(args.model_arg) or None,
    )
    if training.is_chief(result.strategy):
        print(f"model: {result.model_path}")


def cmd_evaluate(args):
    from kerasnets import training

    result = training.evaluate(_get_builder(args.model), args.weights, args.dataset,
                               args.split, verbose=1)
    print(result.summary(compare=args.compare))


def _add_train_parser(sub):
    from kerasnets import training

    train = sub.add_parser("train", help="train or fine-tune a model (model.fit)")
    train.add_argument("--model", required=True, help="builder name, e.g. MobileNetV2")
    train.add_argument("--dataset", required=True,
                       help="tensorflow-datasets name (imagenette/320px) or folder:PATH")
    train.add_argument("--weights", default=None,
                       help="start from a pretrained tag (imagenet) or a weights file")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=64, help="global batch size")
    train.add_argument("--image-size", type=int, default=224)
    train.add_argument("--optimizer", choices=training.OPTIMIZERS, default="sgd")
    train.add_argument("--lr", type=float, default=None,
                       help="peak learning rate (default: 0.1 x B/256 sgd, 1e-3 x B/512 adamw)")
    train.add_argument("--schedule", choices=training.SCHEDULES, default="cosine")
    train.add_argument("--label-smoothing", type=float, default=0.1)
    train.add_argument("--mixed-precision", action="store_true",
                       help="float16 on GPUs, bfloat16 on TPUs; outputs and loss float32")
    train.add_argument("--strategy", choices=training.STRATEGIES, default="auto")
    train.add_argument("--tpu", default=None,
                       help="TPU name, grpc://HOST:8470 or 'local' (with --strategy tpu/auto)")
    train.add_argument("--output", required=True,
                       help="run directory; run again with the same one to resume")
    train.add_argument("--freeze-backbone", action="store_true",
                       help="train only a new classifier")
    train.add_argument("--train-split", default="train",
                       help="split or slice to train on, e.g. 'train[:80%%]'")
    train.add_argument("--val-split", default="auto",
                       help="validation split or slice; 'auto' finds one, 'none' skips")
    train.add_argument("--steps-per-epoch", type=int, default=None,
                       help="limit each epoch (quick runs)")
    train.add_argument("--validation-steps", type=int, default=None)
    train.add_argument("--warmup-epochs", type=int, default=0)
    train.add_argument("--weight-decay", type=float, default=None)
    train.add_argument("--dropout", type=float, default=0.0,
                       help="dropout before a new classifier")
    train.add_argument("--mixup", type=float, default=0.0, help="MixUp alpha (0: off)")
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--data-dir", default=None, help="tensorflow-datasets data_dir")
    train.add_argument("--model-arg", action="append", default=[], metavar="NAME=VALUE",
                       help="builder keyword argument, e.g. alpha=0.5 (repeatable)")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="top-1/top-5 accuracy and images/s")
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--weights", default="imagenet",
                          help="pretrained tag, weights file, or a trained model.keras")
    evaluate.add_argument("--dataset", default="imagenet2012")
    evaluate.add_argument("--split", default="validation")
    evaluate.add_argument("--compare", action="store_true",
                          help="print the weights' reported accuracy beside")
    evaluate.set_defaults(func=cmd_evaluate)


def cmd_tune(args):
    from kerasnets import tuner

    families = args.families if args.families else args.family
    result = tuner.search(
        families, args.dataset, directory=args.directory,
        project_name=args.project or "-".join(
            ([families] if isinstance(families, str) else families)
            + (["finetune"] if args.weights else [])),
        tuner=args.tuner, max_trials=args.max_trials, epochs=args.epochs,
        image_size=args.image_size, batch_size=args.batch_size,
        steps_per_epoch=args.steps_per_epoch, validation_steps=args.validation_steps,
        train_split=args.train_split, val_split=args.val_split, weights=args.weights,
        backbone=args.backbone, augment=args.augment, fixed=tuner.parse_fixed(args.fix),
        hyperband_factor=args.hyperband_factor, objective=args.objective,
        strategy=args.strategy, tpu=args.tpu, mixed_precision=args.mixed_precision,
        seed=args.seed, overwrite=args.overwrite,
    )
    console = _console()
    if result.role == "worker":
        console.print(f"worker {os.environ.get('KERASTUNER_TUNER_ID')}: ran trials "
                      f"{', '.join(result.ran_trials) or 'none'}; the chief saves the best "
                      "model", markup=False, soft_wrap=True)
        return
    console.print(tuner.trials_table(result.tuner))
    console.print(tuner.hyperparameters_table(result.best_hyperparameters))
    print(f"best model: {result.model_path}")


def _add_tune_parser(sub):
    # Literal choices (kerasnets.tuner's FAMILIES, TUNERS, STRATEGIES): importing
    # it loads keras-tuner and TensorFlow, which the other commands do not need.
    families = ("densenet", "mobilenet", "senet", "dpn", "igc")
    tune = sub.add_parser(
        "tune", help="hyperparameter search with keras-tuner (resumable, distributable)",
        description="Searches a family's hyperparameters (or a fine-tuning of a pretrained "
                    "backbone with --weights). Run again with the same --directory and "
                    "--project to resume. For distributed tuning set KERASTUNER_TUNER_ID, "
                    "KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT (see kerasnets.tuner).")
    which = tune.add_mutually_exclusive_group(required=True)
    which.add_argument("--family", choices=families, help="search one family's space")
    which.add_argument("--families", nargs="+", choices=families, metavar="FAMILY",
                       help="search across families (the family is a hyperparameter)")
    tune.add_argument("--dataset", required=True,
                      help="tensorflow-datasets name (imagenette/160px) or folder:PATH")
    tune.add_argument("--tuner", choices=("random", "bayesian", "hyperband"), default="random")
    tune.add_argument("--max-trials", type=int, default=None,
                      help="trials in all (default 10; hyperband: as its brackets need, "
                           "capped by this); a larger value continues a finished search")
    tune.add_argument("--epochs", type=int, default=3,
                      help="epochs per trial (hyperband: the most a trial trains)")
    tune.add_argument("--image-size", type=int, default=224)
    tune.add_argument("--batch-size", type=int, default=64, help="global batch size")
    tune.add_argument("--steps-per-epoch", type=int, default=None,
                      help="default: training images // batch size (small for smoke runs)")
    tune.add_argument("--validation-steps", type=int, default=None,
                      help="default: the whole validation split")
    tune.add_argument("--train-split", default="train")
    tune.add_argument("--val-split", default="auto",
                      help="default: the validation or test split, else the last 20%% of "
                           "the training split")
    tune.add_argument("--directory", default="kerasnets_tuning",
                      help="searches live in DIRECTORY/PROJECT (trial_*, best_model.keras)")
    tune.add_argument("--project", default=None,
                      help="project name (default: the family names, -finetune with "
                           "--weights)")
    tune.add_argument("--weights", default=None,
                      help="fine-tune search: a pretrained tag (imagenet) or weights file")
    tune.add_argument("--backbone", default=None,
                      help="the pretrained builder to fine-tune (default: the family's, "
                           "e.g. MobileNetV2)")
    tune.add_argument("--augment", action="store_true",
                      help="search the strength of random rotation, zoom and contrast too")
    tune.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                      help="hold a hyperparameter at one value (repeatable), e.g. "
                           "--fix optimizer=sgd --fix alpha=0.5")
    tune.add_argument("--objective", default="val_accuracy",
                      help="metric to optimise (val_accuracy, val_loss, val_top5)")
    tune.add_argument("--hyperband-factor", type=int, default=3)
    tune.add_argument("--strategy", choices=("auto", "cpu", "mirrored", "tpu"), default="auto",
                      help="where each trial trains")
    tune.add_argument("--tpu", default=None,
                      help="TPU name, grpc://HOST:8470 or 'local' (with --strategy tpu/auto)")
    tune.add_argument("--mixed-precision", action="store_true",
                      help="float16 on GPUs, bfloat16 on TPUs; outputs and loss float32")
    tune.add_argument("--seed", type=int, default=None)
    tune.add_argument("--overwrite", action="store_true",
                      help="start over instead of resuming DIRECTORY/PROJECT")
    tune.set_defaults(func=cmd_tune)


def cmd_benchmark(args):
    import json

    from rich.table import Table

    from kerasnets import benchmark

    builder = _get_builder(args.model)
    kwargs = _model_kwargs(args.model_arg)
    if _is_generic(builder) and not kwargs:
        raise ValueError(f"{args.model} is a generic builder; name a variant "
                         "(see `kerasnets list`) or pass its arguments with --model-arg")
    result = benchmark.benchmark(
        builder, args.mode, batch_size=args.batch_size, image_size=args.image_size,
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
                  benchmark.format_bytes(result.peak_memory_bytes),
                  f"{result.first_step_seconds:.1f} s",
                  f"{result.steps} (+{result.warmup} warm-up)")
    backend = {"tensorflow": "TF", "jax": "JAX"}.get(result.backend, result.backend)
    table.caption = (f"latency per batch; memory: {result.memory_source}; "
                     f"{backend} {result.backend_version}, Keras {result.keras_version}")
    _console().print(table)


def _add_benchmark_parser(sub):
    bench = sub.add_parser(
        "benchmark", help="images/s, latency and peak memory of a model",
        description="Builds MODEL (weights=None) and times warm-up then timed steps on "
                    "random images: images/s, per-batch latency p50/p95, peak memory. "
                    "To use only the CPU of a GPU machine: CUDA_VISIBLE_DEVICES= kerasnets "
                    "benchmark ...")
    bench.add_argument("--model", required=True, help="builder name, e.g. DPN92")
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


def cmd_convert(args):
    from rich.markup import escape
    from rich.table import Table

    from kerasnets.weights import convert

    _get_builder(args.model)  # unknown names fail before anything is read
    options = convert.parse_model_args(args.model_arg)
    if args.input_size is not None:
        if "input_shape" in options:
            raise ValueError("give the input size once: --input-size or --model-arg input_shape")
        options["input_shape"] = (args.input_size, args.input_size, 3)

    def show(report, title):
        table = Table(title=title, show_header=False)
        table.add_column("", style="bold")
        table.add_column("")
        for label, value in report.rows():
            table.add_row(label, escape(value))
        _console().print(table)

    try:
        report = convert.convert(args.source, args.model, args.output,
                                 include_top=not args.no_top, parity=not args.no_parity,
                                 model_kwargs=options, tolerance=args.tolerance,
                                 images=args.images)
    except convert.ParityError as error:
        show(error.report, f"{args.model}: parity check failed, nothing written")
        raise
    show(report, f"{args.model}: converted {args.source}")


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
    conv.add_argument("--model", required=True, help="builder name, e.g. DPN92")
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
    conv.add_argument("--tolerance", type=float, default=1e-3,
                      help="largest accepted max |diff| / logit spread (default 1e-3)")
    conv.add_argument("--images", type=int, default=4,
                      help="random images of the parity check (default 4)")
    conv.set_defaults(func=cmd_convert)


def cmd_export(args):
    from rich.table import Table
    from rich.text import Text

    from kerasnets import export

    keras_file = args.model.endswith(".keras")
    if keras_file and args.weights is not None:
        raise ValueError("--weights is for builder names; a .keras file carries its weights")
    if not keras_file and os.path.sep in args.model:
        raise ValueError(f"MODEL must be a builder name or a .keras file; received {args.model}")
    weights = args.weights or "imagenet"
    if weights.lower() == "none":
        weights = None
    report = export.export_model(
        args.model, args.output, args.format, weights=None if keras_file else weights,
        image_size=args.image_size, quantize=args.quantize, calibration=args.calibration,
        calibration_split=args.calibration_split,
        calibration_samples=args.calibration_samples, preprocessing=args.preprocessing,
        min_agreement=args.min_agreement,
    )
    table = Table(title="kerasnets export (checked against the Keras model)")
    table.add_column("")
    table.add_column("")
    for label, value in report.rows():
        table.add_row(Text(label), Text(value))
    _console().print(table)


def _add_export_parser(sub):
    from kerasnets import export

    parser = sub.add_parser(
        "export", help="SavedModel, LiteRT (.tflite) or ONNX, checked against Keras")
    parser.add_argument("model", metavar="MODEL",
                        help="builder name (e.g. MobileNetV2) or a .keras file")
    parser.add_argument("-o", "--output", required=True,
                        help="a .tflite or .onnx file, or a SavedModel directory")
    parser.add_argument("--format", default=None,
                        help=f"{' | '.join(export.FORMATS)} (default: from the output's "
                             "extension; a directory is a SavedModel)")
    parser.add_argument("--weights", default=None,
                        help="pretrained tag (default imagenet), a weights file, or none "
                             "(random); builder names only")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input size (default: the model's or its weights')")
    parser.add_argument("--quantize", default=None,
                        help=f"{' | '.join(export.QUANTIZATIONS)} (LiteRT only; int8 "
                             "needs --calibration)")
    parser.add_argument("--calibration", default=None,
                        help="images to calibrate int8 and to check on: a tfds name, "
                             "folder:PATH (or a directory), or synthetic")
    parser.add_argument("--calibration-split", default="train")
    parser.add_argument("--calibration-samples", type=int, default=128)
    parser.add_argument("--preprocessing", default=None,
                        help="torch, tf, caffe, dpn, igc or none (default: the model's)")
    parser.add_argument("--min-agreement", type=float, default=export.DEFAULT_MIN_AGREEMENT,
                        help="quantized exports: least top-1 agreement with Keras")
    parser.set_defaults(func=cmd_export)


def _one_line(error):
    text = " ".join(str(error).split())
    return text or type(error).__name__


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(prog="kerasnets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="builders: params, MACs, weight tags, top-1")
    listing.add_argument("--family", default=None,
                         help="only this family (densenet, dpn, igc, mobilenet, senet, ...)")
    listing.set_defaults(func=cmd_list)
    info = sub.add_parser("info", help="one builder: paper, parameters, weights, preprocessing")
    info.add_argument("model")
    info.set_defaults(func=cmd_info)
    predict = sub.add_parser("predict", help="top-k ImageNet classes of images")
    predict.add_argument("images", nargs="*", metavar="IMAGE",
                         help="image files (default: the bundled sample photo, "
                              "a CC0 tabby cat)")
    predict.add_argument("--model", required=True, help="builder name, e.g. MobileNetV2")
    predict.add_argument("--weights", default="imagenet",
                         help="pretrained tag (default imagenet) or a weights file")
    predict.add_argument("--top", type=int, default=5)
    predict.set_defaults(func=cmd_predict)
    _add_train_parser(sub)
    _add_export_parser(sub)
    _add_tune_parser(sub)
    _add_convert_parser(sub)
    _add_benchmark_parser(sub)
    args = parser.parse_args(argv)
    # Errors are one line and an exit status, not a traceback
    # (KERASNETS_DEBUG=1 shows the traceback).
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("kerasnets: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get("KERASNETS_DEBUG"):
            raise
        print(f"kerasnets: error: {_one_line(error)}", file=sys.stderr)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
