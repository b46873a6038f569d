"""``kerasnets predict``, ``train``, ``evaluate`` and ``tune``."""

import dataclasses
import os

from kerasnets import files
from kerasnets.cli import common
from kerasnets.training import recipe as training_recipe
from kerasnets.training.distribute import STRATEGIES as TRAIN_STRATEGIES
from kerasnets.training.run import TrainConfig

# kerasnets.tuner's FAMILIES, TUNERS and STRATEGIES as literals: importing it
# loads keras-tuner and TensorFlow, which --help does not need.
TUNE_FAMILIES = ("densenet", "mobilenet", "senet", "dpn", "igc")
TUNE_STRATEGIES = ("auto", "cpu", "mirrored", "tpu")


def add_parsers(sub):
    predict = sub.add_parser("predict", help="top-k classes of images")
    predict.add_argument("images", nargs="*", metavar="IMAGE",
                         help="image files (default: the bundled sample photo, "
                              "a CC0 tabby cat)")
    predict.add_argument("--model", default=None,
                         help="model name, e.g. MobileNetV2 (not needed when --weights is "
                              "a .keras model file)")
    predict.add_argument("--weights", default="imagenet",
                         help="pretrained tag (default imagenet), a weights file, a .keras "
                              "model (e.g. a run's model.keras) or none (random)")
    predict.add_argument("--model-arg", action="append", default=[], metavar="NAME=VALUE",
                         help="builder argument, repeatable (--model-arg alpha=0.5)")
    predict.add_argument("--top", type=int, default=5)
    predict.set_defaults(func=cmd_predict)
    _add_train_parser(sub)
    _add_tune_parser(sub)


# ---------------------------------------------------------------- predict


def _keras_model_file(path):
    """(model, preprocessing, class names) of a .keras file; the run's
    config.json beside it (``kerasnets train``) gives its preprocessing and
    class names."""
    from kerasnets import preprocessing, registry
    from kerasnets.export import builder_for
    from kerasnets.training import read_run_config
    from kerasnets.weights.loading import load_model_file

    model = load_model_file(path)
    run = read_run_config(path)
    if run is not None:
        return model, run["preprocessing"], run.get("class_names")
    name = builder_for(model.name)
    if name is None or registry.canonical_name(name) is None:
        raise ValueError(f"cannot tell how {path} preprocesses its images (no run "
                         "config.json beside it, and its name is no kerasnets model)")
    return model, preprocessing.for_model(name, None), None


def cmd_predict(args):
    import numpy as np
    from rich.markup import escape
    from rich.table import Table

    if args.top < 1:
        raise common.UsageError("--top must be at least 1")
    weights = common.weights_arg(args.weights)
    keras_file = weights is not None and weights.lower().endswith(".keras")
    name, kwargs = None, common.model_args(args.model_arg)
    if args.model is not None:
        name, kwargs = common.model_with_args(args.model, args.model_arg)
    elif not keras_file:
        raise common.UsageError("--model is required unless --weights is a .keras model file")
    if keras_file and kwargs:
        raise common.UsageError("--model-arg builds a model; a .keras file is built already")
    common.load_tensorflow()
    from kerasnets import data, imagenet, preprocessing, registry
    from kerasnets import weights as weights_lib

    images = args.images or [imagenet.sample_image()]
    for path in images:
        if not os.path.isfile(path):
            raise ValueError(f"no such image file: {path}")
    if keras_file:
        model, prep, class_names = _keras_model_file(weights)
        label = name or model.name
    else:
        if isinstance(weights, str) and not weights_lib.is_path(weights):
            weights_lib.pretrained_cfg(name, weights, options=kwargs)  # fail before building
        model = registry.create_model(name, weights=weights, **kwargs)
        prep = preprocessing.for_model(name, weights, options=kwargs)
        class_names, label = None, name
    classes = int(model.output_shape[-1])
    if class_names is None and classes != imagenet.NUM_CLASSES:
        raise ValueError(f"{label} predicts {classes} classes, not the 1000 ImageNet "
                         "classes, and no class names came with it")
    size = model.input_shape[1] or prep.input_size or 224
    batch = np.stack([data.load_image(path, image_size=size, preprocessing=prep)
                      for path in images])
    preds = model.predict(batch, verbose=0)
    if class_names is None:
        decoded = imagenet.decode_predictions(preds, top=args.top)
    else:
        order = np.argsort(-preds, axis=-1)[:, :args.top]
        decoded = [[("", class_names[i], p[i]) for i in row] for p, row in zip(preds, order)]
    console = common.console()
    shown = "random" if weights is None else weights
    for path, rows in zip(images, decoded):
        console.print(f"[bold]{escape(path)}[/bold]  ({label}, weights "
                      f"{escape(str(shown))})", soft_wrap=True)
        table = Table()
        table.add_column("#", justify="right")
        table.add_column("class")
        if class_names is None:
            table.add_column("WordNet id")
        table.add_column("probability", justify="right")
        for rank, (wnid, class_name, score) in enumerate(rows, 1):
            cells = [str(rank), class_name] + ([wnid] if class_names is None else [])
            table.add_row(*cells, f"{100 * float(score):.2f}%")
        console.print(table)


# ------------------------------------------------------------------ train


def train_config(args):
    """The ``TrainConfig`` of ``kerasnets train``'s arguments."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["model"], values["model_kwargs"] = common.model_with_args(args.model,
                                                                     args.model_arg)
    values["weights"] = common.weights_arg(args.weights)
    values["val_split"] = None if args.val_split.lower() == "none" else args.val_split
    values["skip_unreadable"] = args.skip_bad_images
    try:
        return TrainConfig(**values)
    except ValueError as error:
        raise common.UsageError(str(error)) from None


def cmd_train(args):
    config = train_config(args)
    common.load_tensorflow()
    from kerasnets import training

    # First: a multi-worker strategy must exist before other TensorFlow work.
    config.strategy = training.get_strategy(args.strategy, tpu=args.tpu)
    result = training.train(config, overwrite=args.overwrite)
    if result.status == "complete":
        print(f"the run in {config.output} is complete ({config.epochs} epochs): nothing to "
              "do (a larger --epochs continues it, --overwrite starts over)")
        print(f"model: {result.model_path}")
        return
    if training.is_chief(result.strategy):
        final = {k: v[-1] for k, v in result.history.items() if v}
        if final:
            print("final: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(final.items())))
        print(f"model: {result.model_path}")


def cmd_evaluate(args):
    name, kwargs = common.model_with_args(args.model, args.model_arg)
    weights = common.weights_arg(args.weights)
    common.load_tensorflow()
    from kerasnets import training

    result = training.evaluate(name, weights, args.dataset, args.split, verbose=1,
                               model_kwargs=kwargs or None)
    print(result.summary(compare=args.compare))


def _add_train_parser(sub):
    train = sub.add_parser("train", help="train or fine-tune a model (model.fit)")
    train.add_argument("--model", required=True, help="model name, e.g. MobileNetV2")
    train.add_argument("--dataset", required=True,
                       help="tensorflow-datasets name (imagenette/320px) or folder:PATH")
    train.add_argument("--weights", default=None,
                       help="start from a pretrained tag (imagenet) or a weights file")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=64, help="global batch size")
    train.add_argument("--image-size", type=int, default=224)
    train.add_argument("--optimizer", choices=training_recipe.OPTIMIZERS, default="sgd")
    train.add_argument("--lr", type=float, default=None,
                       help="peak learning rate (default: 0.1 x B/256 sgd, 1e-3 x B/512 adamw)")
    train.add_argument("--schedule", choices=training_recipe.SCHEDULES, default="cosine")
    train.add_argument("--label-smoothing", type=float, default=0.1)
    train.add_argument("--mixed-precision", action="store_true",
                       help="float16 on GPUs, bfloat16 on TPUs; outputs and loss float32")
    train.add_argument("--strategy", choices=TRAIN_STRATEGIES, default="auto")
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
    train.add_argument("--warmup-epochs", type=float, default=0)
    train.add_argument("--weight-decay", type=float, default=None)
    train.add_argument("--dropout", type=float, default=0.0,
                       help="dropout before a new classifier")
    train.add_argument("--mixup", type=float, default=0.0, help="MixUp alpha (0: off)")
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--data-dir", default=None, help="tensorflow-datasets data_dir")
    train.add_argument("--model-arg", action="append", default=[], metavar="NAME=VALUE",
                       help="builder keyword argument, e.g. alpha=0.5 (repeatable)")
    train.add_argument("--overwrite", action="store_true",
                       help="start over in an --output that holds a run (otherwise a rerun "
                            "resumes, continues with more --epochs, or is refused when its "
                            "settings differ)")
    train.add_argument("--skip-bad-images", action="store_true",
                       help="image folders: leave out files that cannot be decoded "
                            "(named in a warning) instead of stopping")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="top-1/top-5 accuracy and images/s")
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--weights", default="imagenet",
                          help="pretrained tag, weights file, or a trained model.keras")
    evaluate.add_argument("--dataset", default="imagenet2012")
    evaluate.add_argument("--split", default="validation")
    evaluate.add_argument("--model-arg", action="append", default=[], metavar="NAME=VALUE",
                          help="builder argument, repeatable (--model-arg alpha=0.5)")
    evaluate.add_argument("--compare", action="store_true",
                          help="print the weights' reported accuracy beside")
    evaluate.set_defaults(func=cmd_evaluate)


# ------------------------------------------------------------------- tune


def _family(text):
    for family in TUNE_FAMILIES:
        if family == text.lower():
            return family
    from kerasnets import registry

    raise common.UsageError(registry.unknown_name_message("family", text, TUNE_FAMILIES))


def cmd_tune(args):
    families = [_family(f) for f in args.families] if args.families else _family(args.family)
    backbone = common.named_model(args.backbone) if args.backbone else None
    fixed = common.assignments(args.fix, "--fix", scoped=True)
    for option, value, minimum in (("--epochs", args.epochs, 1), ("--batch-size", args.batch_size, 1),
                                   ("--image-size", args.image_size, 1),
                                   ("--max-trials", args.max_trials, 1)):
        common.at_least(value, minimum, option)
    project = args.project or "-".join(([families] if isinstance(families, str) else families)
                                       + (["finetune"] if args.weights else []))
    try:
        files.inside(args.directory, project, what="--project")
    except ValueError as error:
        raise common.UsageError(str(error)) from None
    common.load_tensorflow()
    from kerasnets import tuner

    result = tuner.search(
        families, args.dataset, directory=args.directory, project_name=project,
        tuner=args.tuner, max_trials=args.max_trials, epochs=args.epochs,
        image_size=args.image_size, batch_size=args.batch_size,
        steps_per_epoch=args.steps_per_epoch, validation_steps=args.validation_steps,
        train_split=args.train_split, val_split=args.val_split,
        weights=common.weights_arg(args.weights), backbone=backbone, augment=args.augment,
        fixed=fixed, hyperband_factor=args.hyperband_factor, objective=args.objective,
        strategy=args.strategy, tpu=args.tpu, mixed_precision=args.mixed_precision,
        seed=args.seed, overwrite=args.overwrite,
    )
    console = common.console()
    if result.role == "worker":
        console.print(f"worker {os.environ.get('KERASTUNER_TUNER_ID')}: ran trials "
                      f"{', '.join(result.ran_trials) or 'none'}; the chief saves the best "
                      "model", markup=False, soft_wrap=True)
        return
    console.print(tuner.trials_table(result.tuner))
    console.print(tuner.hyperparameters_table(result.best_hyperparameters))
    print(f"best model: {result.model_path}")


def _add_tune_parser(sub):
    tune = sub.add_parser(
        "tune", help="hyperparameter search with keras-tuner (resumable, distributable)",
        description="Searches a family's hyperparameters (or a fine-tuning of a pretrained "
                    "backbone with --weights). Run again with the same --directory and "
                    "--project to resume. For distributed tuning set KERASTUNER_TUNER_ID, "
                    "KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT (see kerasnets.tuner).")
    which = tune.add_mutually_exclusive_group(required=True)
    which.add_argument("--family", metavar="FAMILY",
                       help=f"search one family's space ({', '.join(TUNE_FAMILIES)})")
    which.add_argument("--families", nargs="+", metavar="FAMILY",
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
                      help="the pretrained model to fine-tune (default: the family's, "
                           "e.g. MobileNetV2)")
    tune.add_argument("--augment", action="store_true",
                      help="search the strength of random rotation, zoom and contrast too")
    tune.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                      help="hold a hyperparameter at one value (repeatable), e.g. "
                           "--fix optimizer=sgd --fix alpha=0.5")
    tune.add_argument("--objective", default="val_accuracy",
                      help="metric to optimise (val_accuracy, val_loss, val_top5)")
    tune.add_argument("--hyperband-factor", type=int, default=3)
    tune.add_argument("--strategy", choices=TUNE_STRATEGIES, default="auto",
                      help="where each trial trains")
    tune.add_argument("--tpu", default=None,
                      help="TPU name, grpc://HOST:8470 or 'local' (with --strategy tpu/auto)")
    tune.add_argument("--mixed-precision", action="store_true",
                      help="float16 on GPUs, bfloat16 on TPUs; outputs and loss float32")
    tune.add_argument("--seed", type=int, default=None)
    tune.add_argument("--overwrite", action="store_true",
                      help="start over instead of resuming DIRECTORY/PROJECT (deletes only "
                           "the search's own files; anything else there is refused)")
    tune.set_defaults(func=cmd_tune)
