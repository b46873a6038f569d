"""The ``kerasnets`` command line (a thin layer over the library).

    kerasnets list               builders and their pretrained weight tags
    kerasnets info MODEL         docstring, parameter counts, weight tags
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


def cmd_list(args):
    from kerasnets import weights

    for name in sorted(builders()):
        tags = weights.available(name)
        print(f"{name:28s} {', '.join(tags) if tags else '(no published weights)'}")


def cmd_info(args):
    from kerasnets import weights

    builder = _get_builder(args.model)
    print(inspect.getdoc(builder) or "")
    required = [
        p.name for p in inspect.signature(builder).parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        print(f"\n{args.model} is a generic builder: it needs {', '.join(required)}.")
        return
    model = builder(weights=None)
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    print(f"\nparameters: {trainable:,} trainable, {model.count_params():,} in all")
    print(f"weights: {', '.join(weights.available(args.model)) or 'none published'}")


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


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(prog="kerasnets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="builders and weight tags").set_defaults(func=cmd_list)
    info = sub.add_parser("info", help="one builder: docstring and parameters")
    info.add_argument("model")
    info.set_defaults(func=cmd_info)
    _add_train_parser(sub)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
