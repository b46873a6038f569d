"""``kerasnets predict``, ``train``, ``evaluate`` and ``tune``."""

import argparse
import contextlib
import dataclasses
import os
import sys
import warnings

from kerasnets import files
from kerasnets.cli import common
from kerasnets.training import recipe as training_recipe
from kerasnets.training.cluster import PEER_TIMEOUT, WorkerLost
from kerasnets.training.distribute import STRATEGIES as TRAIN_STRATEGIES
from kerasnets.training.run import TrainConfig

# kerasnets.tuner's FAMILIES, TUNERS and STRATEGIES as literals: importing it
# loads keras-tuner and TensorFlow, which --help does not need.
TUNE_FAMILIES = ("densenet", "mobilenet", "senet", "dpn", "igc")
TUNE_STRATEGIES = ("auto", "cpu", "mirrored", "tpu", "data-parallel")


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


def _model_and_weights(args):
    """(catalog name or None, --model-arg values, weights, is a .keras file) of
    predict's and evaluate's --model/--weights/--model-arg: --model may be
    left out for a .keras file (which must then be of that model)."""
    weights = common.weights_arg(args.weights)
    keras_file = weights is not None and weights.lower().endswith(".keras")
    if keras_file:
        if args.model_arg:
            raise common.UsageError("--model-arg builds a model; a .keras file is built "
                                    "already")
        return (common.model_name(args.model) if args.model else None), {}, weights, True
    if args.model is None:
        raise common.UsageError("--model is required unless --weights is a .keras model file")
    name, kwargs = common.model_with_args(args.model, args.model_arg)
    return name, kwargs, weights, False


def _progress_verbosity():
    """Keras' progress bar on a terminal; one line per epoch (verbose=2) in a
    log or pipe, where the bar's control codes would fill it."""
    return 1 if sys.stdout.isatty() else 2


@contextlib.contextmanager
def _plain_warnings():
    """The library's warnings as one line each ("kerasnets: ..."), without
    Python's file and source line."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"kerasnets: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def cmd_predict(args):
    import numpy as np
    from rich.markup import escape
    from rich.table import Table

    if args.top < 1:
        raise common.UsageError("--top must be at least 1")
    name, kwargs, weights, keras_file = _model_and_weights(args)
    common.load_tensorflow()
    from kerasnets import data, imagenet, preprocessing, registry
    from kerasnets import weights as weights_lib
    from kerasnets.training.evaluate import keras_model_file

    images = args.images or [imagenet.sample_image()]
    for path in images:
        if not os.path.isfile(path):
            raise ValueError(f"no such image file: {path}")
    if keras_file:
        loaded = keras_model_file(weights, name)
        model, prep, class_names = loaded.model, loaded.preprocessing, loaded.class_names
        label = loaded.name or model.name
    else:
        if isinstance(weights, str) and not weights_lib.is_path(weights):
            weights_lib.pretrained_cfg(name, weights, options=kwargs)  # fail before building
        model = registry.create_model(name, weights=weights, **kwargs)
        prep = preprocessing.for_model(name, weights, options=kwargs)
        class_names, label = None, name
    classes = int(model.output_shape[-1])
    unnamed = class_names is None and classes != imagenet.NUM_CLASSES
    if unnamed:  # not ImageNet's classes, and no names came with it: their indices
        class_names = tuple(f"class {i}" for i in range(classes))
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
    if unnamed:
        console.print(f"The {classes} classes of {escape(label)} have no names (a run's "
                      "config.json beside a .keras file gives them): shown by index",
                      soft_wrap=True)
    for path, rows in zip(images, decoded):
        console.print(f"[bold]{escape(path)}[/bold]  ({escape(label)}, weights "
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


# Builder arguments that train's options set (``common.model_args``).
TRAIN_SETS = {
    "input_shape": "use --image-size",
    "include_top": "train builds a classifier for the dataset's classes "
                   "(--freeze-backbone trains only that)",
    "classes": "train takes the number of classes from the dataset",
    "classifier_activation": "train's classifier ends in a softmax",
    "pooling": "train's classifier pools by average",
}


def train_config(args):
    """The ``TrainConfig`` of ``kerasnets train``'s arguments."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["model"], values["model_kwargs"] = common.model_with_args(
        args.model, args.model_arg, instead=TRAIN_SETS)
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
    config.strategy = training.get_strategy(args.strategy, tpu=args.tpu,
                                            peer_timeout=args.peer_timeout)
    try:
        result = training.train(config, overwrite=args.overwrite,
                                verbose=_progress_verbosity())
    except WorkerLost as error:
        # After its collectives were aborted TensorFlow cannot be shut down
        # cleanly (its tf.data threads can hold the exit for a minute or
        # more): every file is whole and the run folder unlocked; leave now.
        print(f"kerasnets: error: {common.one_line(error)}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(1)
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
    name, kwargs, weights, _ = _model_and_weights(args)
    common.at_least(args.batch_size, 1, "--batch-size")
    common.load_tensorflow()
    from kerasnets import training

    with _plain_warnings():
        result = training.evaluate(name, weights, args.dataset, args.split,
                                   batch_size=args.batch_size,
                                   verbose=_progress_verbosity(), model_kwargs=kwargs or None)
    print(result.summary(compare=args.compare))


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that shows each option's default value (where it has one)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (action.option_strings and "%(default)" not in text and "default:" not in text
                and default not in (None, argparse.SUPPRESS, [])
                and not isinstance(default, bool)):
            text += " (default: %(default)s)"
        return text


STRATEGY_HELP = ("where training runs: auto (a TPU, all GPUs or the one device), cpu, "
                 "mirrored (the local GPUs), multiworker (TF_CONFIG), tpu (--tpu) are "
                 "TensorFlow's tf.distribute; data-parallel splits each batch over every "
                 "device: on JAX keras.distribution.DataParallel (several hosts: set "
                 "KERAS_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES, _PROCESS_ID), on "
                 "TensorFlow as mirrored")


VAL_SPLIT_HELP = ("validation split or slice; 'auto': the dataset's validation or test "
                  "split, else the last 10%% of the training split")


def _add_train_parser(sub):
    train = sub.add_parser(
        "train", help="train or fine-tune a model (model.fit)",
        formatter_class=DefaultsHelpFormatter,
        description="Trains a model on a tensorflow-datasets dataset or a folder of class "
                    "folders. Augmentation: random resized crop and horizontal flip. "
                    "BatchNorm statistics are re-estimated on training images before each "
                    "validation and save. The run's recipe is printed in one line when it "
                    "starts.")
    train.add_argument("--model", required=True, help="model name, e.g. MobileNetV2")
    train.add_argument("--dataset", required=True,
                       help="tensorflow-datasets name (imagenette/320px) or folder:PATH")
    train.add_argument("--weights", default=None,
                       help="start from a pretrained tag (imagenet), a weights file, or a "
                            "previous run's model.keras (fine-tuning it further)")
    train.add_argument("--epochs", type=int, default=10, help="passes over the training images")
    train.add_argument("--batch-size", type=int, default=64,
                       help="global batch size: of all devices together (each gets an equal "
                            "share under --strategy data-parallel/mirrored/multiworker/tpu)")
    train.add_argument("--image-size", type=int, default=224, help="input height and width")
    train.add_argument("--optimizer", choices=training_recipe.OPTIMIZERS, default="sgd",
                       help="SGD with Nesterov momentum 0.9, or AdamW")
    train.add_argument("--lr", type=common.finite_float, default=None,
                       help="peak learning rate (default: sgd 0.2 x B/256 from scratch, 0.1 x "
                            "B/256 from --weights; adamw 1e-3 x B/512)")
    train.add_argument("--schedule", choices=training_recipe.SCHEDULES, default="cosine",
                       help="learning-rate schedule")
    train.add_argument("--label-smoothing", type=common.finite_float, default=0.1,
                       help="of the cross-entropy")
    train.add_argument("--mixed-precision", action="store_true",
                       help="float16 on GPUs, bfloat16 on TPUs; outputs and loss float32")
    train.add_argument("--strategy", choices=TRAIN_STRATEGIES, default="auto",
                       help=STRATEGY_HELP)
    train.add_argument("--tpu", default=None,
                       help="TPU name, grpc://HOST:8470 or 'local' (with --strategy tpu/auto)")
    train.add_argument("--peer-timeout", type=common.finite_float, default=None,
                       metavar="SECONDS",
                       help="--strategy multiworker: a worker silent this long counts as "
                            "lost and the others stop, naming it (default: "
                            f"{PEER_TIMEOUT:g}); run every worker's command again to resume")
    train.add_argument("--output", required=True,
                       help="run directory; run again with the same one to resume")
    train.add_argument("--freeze-backbone", action="store_true",
                       help="train only a new classifier")
    train.add_argument("--train-split", default="train",
                       help="split or slice to train on, e.g. 'train[:80%%]'")
    train.add_argument("--val-split", default="auto",
                       help=VAL_SPLIT_HELP + "; 'none' trains on every image")
    train.add_argument("--steps-per-epoch", type=int, default=None,
                       help="limit each epoch (quick runs)")
    train.add_argument("--validation-steps", type=int, default=None,
                       help="default: the whole validation split")
    train.add_argument("--warmup-epochs", type=common.finite_float, default=None,
                       help="linear learning-rate warm-up (cosine schedule; default: 1 "
                            "epoch, at most a tenth of the run)")
    train.add_argument("--weight-decay", type=common.finite_float, default=None,
                       help="decoupled, not on biases and norms (default: 5e-5 sgd, 0.05 "
                            "adamw)")
    train.add_argument("--dropout", type=common.finite_float, default=0.0,
                       help="dropout before the classifier (> 0: a pooled Dense classifier, also from scratch)")
    train.add_argument("--mixup", type=common.finite_float, default=0.0,
                       help="MixUp alpha (0: off)")
    train.add_argument("--no-flip", dest="flip", action="store_false",
                       help="no random horizontal flips (digits, text, some medical images)")
    train.add_argument("--crop-scale", type=common.finite_float, default=1.0, metavar="MIN",
                       help="smallest area fraction of the random resized crop (1: whole "
                            "images, for short runs; ImageNet-length runs use 0.08)")
    train.add_argument("--seed", type=int, default=None,
                       help="reproducible data order, augmentation and initialisation")
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
    evaluate.add_argument("--model", default=None,
                          help="model name, e.g. MobileNetV2 (not needed when --weights is "
                               "a .keras model file)")
    evaluate.add_argument("--weights", default="imagenet",
                          help="pretrained tag, weights file, or a trained model.keras")
    evaluate.add_argument("--dataset", default="imagenet2012",
                          help="tensorflow-datasets name or folder:PATH (class folders, "
                               "matched by name to the model's classes)")
    evaluate.add_argument("--split", default=None,
                          help="default: validation, else test; a folder without split "
                               "folders is evaluated whole")
    evaluate.add_argument("--batch-size", type=int, default=None,
                          help="default 64 (at most the number of images)")
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
    tune.add_argument("--val-split", default="auto", help=VAL_SPLIT_HELP)
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
                      help="where each trial trains (as kerasnets train's; data-parallel: "
                           "this machine's devices)")
    tune.add_argument("--tpu", default=None,
                      help="TPU name, grpc://HOST:8470 or 'local' (with --strategy tpu/auto)")
    tune.add_argument("--mixed-precision", action="store_true",
                      help="float16 on GPUs, bfloat16 on TPUs; outputs and loss float32")
    tune.add_argument("--seed", type=int, default=None)
    tune.add_argument("--overwrite", action="store_true",
                      help="start over instead of resuming DIRECTORY/PROJECT (deletes only "
                           "the search's own files; anything else there is refused)")
    tune.set_defaults(func=cmd_tune)
