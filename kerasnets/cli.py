"""The ``kerasnets`` command line (a thin layer over the library).

    kerasnets list [--family F]  builders: parameters, MACs, weight tags, top-1
    kerasnets info MODEL         paper, architecture, weights sources, preprocessing
    kerasnets predict IMAGE... --model MODEL [--weights TAG|PATH] [--top 5]
    kerasnets train ...          train or fine-tune on a tfds dataset or an image folder
    kerasnets evaluate ...       top-1/top-5 accuracy and images/s of a model and weights
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
    summary = (inspect.getdoc(builder) or "").split("\n\n")[0]
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


def _read_image(path, size, prep):
    import numpy as np
    import tensorflow as tf

    from kerasnets import data

    if not os.path.isfile(path):
        raise ValueError(f"no such image file: {path}")
    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3,
                                   expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        raise ValueError(
            f"{path} is not a readable image (JPEG, PNG, BMP or GIF expected)"
        ) from error
    image = data.center_crop(image, size, prep.crop_pct, prep.interpolation)
    return np.asarray(prep.normalize(image))


def cmd_predict(args):
    import numpy as np
    from rich.markup import escape
    from rich.table import Table

    from kerasnets import data, imagenet

    builder = _get_builder(args.model)
    if _is_generic(builder):
        raise ValueError(f"{args.model} is a generic builder; name a variant "
                         "(see `kerasnets list`)")
    if args.top < 1:
        raise ValueError("--top must be at least 1")
    for path in args.images:
        if not os.path.isfile(path):
            raise ValueError(f"no such image file: {path}")
    weights = args.weights
    model = builder(weights=weights)
    if model.output_shape[-1] != imagenet.NUM_CLASSES:
        raise ValueError(f"{args.model} predicts {model.output_shape[-1]} classes, "
                         "not the 1000 ImageNet classes")
    prep = data.preprocessing_for(args.model, weights)
    size = model.input_shape[1]
    if size is None:
        found = data._weights_entry(args.model, weights)
        size = found[1].input_size if found else 224
    batch = np.stack([_read_image(path, size, prep) for path in args.images])
    preds = model.predict(batch, verbose=0)
    console = _console()
    for path, rows in zip(args.images, imagenet.decode_predictions(preds, top=args.top)):
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

def cmd_train(args):
    from kerasnets import training

    strategy = training.get_strategy(args.strategy, tpu=args.tpu)  # first: multiworker
    result = training.train(
        _get_builder(args.model), args.dataset, output=args.output, weights=args.weights,
        epochs=args.epochs, batch_size=args.batch_size, image_size=args.image_size,
        optimizer=args.optimizer, lr=args.lr, schedule=args.schedule,
        label_smoothing=args.label_smoothing, mixed_precision=args.mixed_precision,
        strategy=strategy, freeze_backbone=args.freeze_backbone,
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
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--model", required=True, help="builder name, e.g. MobileNetV2")
    predict.add_argument("--weights", default="imagenet",
                         help="pretrained tag (default imagenet) or a weights file")
    predict.add_argument("--top", type=int, default=5)
    predict.set_defaults(func=cmd_predict)
    _add_train_parser(sub)
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
