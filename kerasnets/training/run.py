"""A training run: its settings (``TrainConfig``) and ``train``."""

import dataclasses
import json
import math
import os
import shutil
from typing import Optional

from kerasnets.training import batchnorm, cluster, rundir
from kerasnets.training.callbacks import HISTORY_FILE, NonFiniteLoss, make_callbacks
from kerasnets.training.distribute import (
    JaxDataParallel,
    activated,
    device_kind,
    get_strategy,
    is_chief,
    keras_compatible,
    requested_policy,
    task,
    write_dir,
)
from kerasnets.weights.loading import load_model_file
from kerasnets.training.recipe import (
    build_model,
    check_model_kwargs,
    compile_model,
    get_builder,
    use_synchronized_batch_norm,
)

MODEL_FILE = rundir.MODEL_FILE
CONFIG_FILE = rundir.CONFIG_FILE


class TrainingDiverged(RuntimeError):
    """The loss (or the weights) became non-finite: training stopped, and
    nothing was saved from that state."""


@dataclasses.dataclass
class TrainResult:
    """What ``train`` did. ``status``: "trained" (a new run), "resumed" (an
    interrupted one finished), "continued" (a finished one trained for more
    epochs) or "complete" (it was finished already: nothing changed)."""

    model: object
    history: dict
    output: str
    model_path: str
    strategy: object
    preprocessing: object
    status: str = "trained"


def count_examples(dataset, split, data_dir=None, try_gcs=False):
    """Examples in a split: from the dataset's metadata, else its cardinality,
    else counted (small datasets only)."""
    from kerasnets import data

    n = data.info(dataset, split, data_dir, try_gcs).num_examples
    if n:
        return n
    source = data._encoded_source(  # noqa: SLF001
        dataset, split, data_dir=data_dir, try_gcs=try_gcs, training=False, seed=0,
        input_context=None, download=True)
    n = int(source.cardinality())
    if n < 0:
        n = int(source.reduce(0, lambda count, _: count + 1))
    return n


@dataclasses.dataclass
class TrainConfig:
    """The settings of a training run: ``kerasnets train``'s options, one
    field each (the command line fills it from its arguments).

    Attributes:
        model: catalog name (``"MobileNetV2"``, case-insensitive) or builder
            function; ``model_kwargs`` go to the builder (``{"alpha": 0.35}``).
        dataset: tfds name or ``"folder:PATH"`` (see ``kerasnets.data``).
        output: run directory (checkpoints, history, curves, model.keras).
        weights: None (from scratch), a pretrained tag or a weights path; with
            pretrained weights and other than 1000 classes the model gets a
            new classifier (see ``build_model``).
        epochs, batch_size (global), image_size: the usual.
        optimizer: "sgd" (Nesterov, momentum ``momentum``) or "adamw".
        lr: peak learning rate (default: SGD 0.2 x batch/256 from scratch,
            0.1 x batch/256 from pretrained weights; AdamW 1e-3 x batch/512).
        schedule: "cosine" (after ``warmup_epochs`` of linear warm-up;
            default one epoch, at most a tenth of the run) or "step" (x0.1
            at 30%, 60%, 90%).
        weight_decay: decoupled, not on 1-D parameters (default 5e-5 SGD,
            0.05 AdamW).
        label_smoothing: of the cross-entropy.
        mixed_precision: False, True (float16 on GPU, bfloat16 on TPU/CPU) or
            a policy name. Outputs and loss stay float32.
        strategy: "auto", "cpu", "mirrored", "multiworker", "tpu",
            "data-parallel" (``get_strategy``; JAX: every device), or a
            ``tf.distribute.Strategy``; ``tpu``: TPU name/address.
        peer_timeout: multi-worker: seconds without heartbeats after which
            a worker counts as lost and the others stop with ``WorkerLost``
            (default ``cluster.PEER_TIMEOUT``; see ``get_strategy``).
        freeze_backbone: train only the classifier.
        dropout: before the classifier (> 0: the pooled Dense classifier of
            ``build_model``, also when training from scratch).
        train_split, val_split: splits (``data.validation_splits``: "auto"
            takes "validation" or "test" when the dataset has one, else holds
            out the last 10 % of ``train_split``; None: no validation).
        flip: random horizontal flips (off for digits, text, and images
            whose left and right differ in meaning).
        crop_scale: the smallest area fraction of the random resized crop
            (default 1.0: whole images, aspect ratio 3/4-4/3, for the short runs
            of small datasets that ``epochs=10`` means; ImageNet-length
            schedules use 0.08).
        randaugment, mixup, cache, seed, deterministic, data_dir, try_gcs:
            see ``data.load``. A seed also seeds Keras (weights
            initialisation, dropout).
        steps_per_epoch: default: training examples // batch_size.
        validation_steps: default: the whole split (on one worker).
        backup_every: "epoch" or a number of steps between backups.
        sync_batch_norm: BatchNorm statistics over all replicas (default: on
            with several replicas, so results do not depend on the replica
            count).
        skip_unreadable: folder datasets: leave out images that cannot be
            decoded (named in a warning) instead of stopping.
    """

    model: object
    dataset: str
    output: str
    weights: Optional[str] = None
    epochs: int = 10
    batch_size: int = 64
    image_size: int = 224
    optimizer: str = "sgd"
    lr: Optional[float] = None
    schedule: str = "cosine"
    warmup_epochs: Optional[float] = None
    weight_decay: Optional[float] = None
    momentum: float = 0.9
    label_smoothing: float = 0.1
    mixed_precision: object = False
    strategy: object = "auto"
    tpu: Optional[str] = None
    peer_timeout: Optional[float] = None
    freeze_backbone: bool = False
    dropout: float = 0.0
    train_split: str = "train"
    val_split: Optional[str] = "auto"
    flip: bool = True
    crop_scale: float = 1.0
    randaugment: object = None
    mixup: float = 0.0
    data_dir: Optional[str] = None
    try_gcs: bool = False
    cache: object = False
    seed: Optional[int] = None
    deterministic: Optional[bool] = None
    steps_per_epoch: Optional[int] = None
    validation_steps: Optional[int] = None
    backup_every: object = "epoch"
    sync_batch_norm: Optional[bool] = None
    skip_unreadable: bool = False
    model_kwargs: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        from kerasnets.training.recipe import OPTIMIZERS, SCHEDULES

        self.model_kwargs = dict(self.model_kwargs or {})
        if self.weights is not None:
            self.weights = os.fspath(self.weights)
        self.output = os.fspath(self.output)
        if not self.output:
            raise ValueError("output must name a folder for the run; received ''.")
        _check("epochs", self.epochs, minimum=1)
        _check("batch_size", self.batch_size, minimum=1)
        _check("image_size", self.image_size, minimum=1)
        _check("steps_per_epoch", self.steps_per_epoch, minimum=1, optional=True)
        _check("validation_steps", self.validation_steps, minimum=1, optional=True)
        if self.lr is not None and not (_is_number(self.lr) and 0 < self.lr < math.inf):
            raise ValueError(f"lr must be a positive number (or None for the recipe's "
                             f"default); received {self.lr!r}.")
        # Finite numbers in [low, high): a NaN fails every comparison.
        for name, low, high in (("label_smoothing", 0, 1.0), ("dropout", 0, 1.0),
                                ("momentum", 0, 1.0), ("crop_scale", 1e-9, 1.0 + 1e-9),
                                ("mixup", 0, math.inf), ("warmup_epochs", 0, math.inf),
                                ("weight_decay", 0, math.inf)):
            value = getattr(self, name)
            if (name in ("weight_decay", "warmup_epochs") and value is None) or (
                    _is_number(value) and low <= value < high):
                continue
            interval = ("in (0, 1]" if name == "crop_scale" else
                        f"in [0, {high:g})" if high < math.inf else "a number of at least 0")
            raise ValueError(f"{name} must be {interval}; received {value!r}.")
        cluster.check_peer_timeout(self.peer_timeout)
        check_model_kwargs(self.model_kwargs)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {self.optimizer!r}: expected one of "
                             f"{', '.join(OPTIMIZERS)}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Unknown schedule {self.schedule!r}: expected one of "
                             f"{', '.join(SCHEDULES)}.")

    def recipe(self, train_split, val_split, steps_per_epoch):
        """The run's recipe in one line (printed when a run starts)."""
        from kerasnets.training.recipe import default_weight_decay

        lr = self.peak_lr()
        options = "".join(f", {k}={v}" for k, v in self.model_kwargs.items())
        start = f"from {self.weights}" if self.weights else "from scratch"
        if self.freeze_backbone:
            start += ", backbone frozen"
        optimizer = ("SGD (Nesterov, momentum %g)" % self.momentum
                     if self.optimizer == "sgd" else "AdamW")
        decay = default_weight_decay(self.optimizer) if self.weight_decay is None \
            else self.weight_decay
        warmup = self.warmup()
        schedule = self.schedule + (
            f" after {warmup:g} warm-up epoch{'' if warmup == 1 else 's'}"
            if warmup and self.schedule == "cosine" else "")
        area = "100%" if self.crop_scale >= 1 else f"{self.crop_scale:.0%}-100%"
        augment = [f"random resized crop (area {area})"]
        augment += ["horizontal flip"] if self.flip else []
        augment += [f"RandAugment {self.randaugment}"] if self.randaugment else []
        augment += [f"MixUp {self.mixup:g}"] if self.mixup else []
        return (f"recipe: {self.model_name}({options[2:]}) {start}; {self.epochs} epochs x "
                f"{steps_per_epoch} steps of {self.batch_size} images at {self.image_size} "
                f"px from {train_split}; {optimizer} lr {lr:g}, {schedule}, weight decay "
                f"{decay:g}, label smoothing {self.label_smoothing:g}; "
                "BatchNorm statistics re-estimated before each validation and save; "
                f"{', '.join(augment)}; validation: {val_split or 'none'}")

    def peak_lr(self):
        """``lr``, or the recipe's default for the optimizer and batch size
        (``recipe.default_learning_rate``)."""
        from kerasnets.training.recipe import default_learning_rate

        if self.lr is not None:
            return self.lr
        return default_learning_rate(self.optimizer, self.batch_size,
                                     pretrained=self.weights is not None)

    def warmup(self):
        """``warmup_epochs``, or the default: one epoch, at most a tenth of
        the run (``recipe.default_warmup_epochs``)."""
        from kerasnets.training.recipe import default_warmup_epochs

        if self.warmup_epochs is not None:
            return self.warmup_epochs
        return default_warmup_epochs(self.epochs)

    @property
    def model_name(self):
        return getattr(self.model, "__name__", None) or str(self.model)

    def settings(self):
        """The JSON-able settings (``config.json``'s ``settings``): what decides
        the run's result; ``output`` and the strategy object are left out."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["model"] = self.model_name
        values.pop("output")
        if not isinstance(self.strategy, str):
            values["strategy"] = type(self.strategy).__name__
        return json.loads(json.dumps(values, default=repr))


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(name, value, *, minimum, optional=False):
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}; received "
                         f"{value!r}.")


def read_run_config(path):
    """The ``config.json`` of a run, given the run directory or a file in it
    (``model.keras``): a dict whose ``preprocessing`` is a ``Preprocessing``;
    None where there is none (or another program's, or a damaged one).
    """
    path = os.fspath(path)
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    try:
        config = rundir.read_config(directory)
        if config is None:
            return None
        config["preprocessing"] = rundir_preprocessing(config)
        str(config["model"])
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return config


def _history(output):
    """The run's history.csv as {metric: [values per epoch]}."""
    import csv

    path = os.path.join(output, HISTORY_FILE)
    history = {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                for key, value in row.items():
                    if key != "epoch":
                        history.setdefault(key, []).append(float(value))
    except (OSError, ValueError):
        pass
    return history


def _restore_finished(net, path):
    """Weights and optimizer state of a finished run's ``model.keras`` into
    ``net`` (compiled with the new schedule): training continues where it
    stopped."""

    finished = load_model_file(path, compile=True)
    net.set_weights(finished.get_weights())
    optimizer = net.optimizer
    optimizer.build(net.trainable_variables)
    old = finished.optimizer.variables
    if len(old) != len(optimizer.variables):
        raise rundir.RunConflict(f"{path} holds another optimizer's state: cannot continue it.")
    for variable, value in zip(optimizer.variables, old):
        variable.assign(value)


def _diverged_message(failure, output, lr):
    last = os.path.join(output, rundir.CHECKPOINTS_DIR, "last.weights.h5")
    kept = (f"kept {last} (epoch {failure.epoch - 1}, the last finite one)"
            if failure.epoch > 1 and os.path.exists(last)
            else "no checkpoint was written (it diverged in the first epoch)")
    return (f"Training diverged: {failure.what} at epoch {failure.epoch}, step "
            f"{failure.step}. The learning rate ({lr:g}) is likely too high, or the data "
            f"holds bad values. Stopped; {kept}; {MODEL_FILE} was not written.")


def train(model, dataset=None, *, output=None, preprocessing=None, callbacks=(),
          verbose="auto", overwrite=False, **settings):
    """Trains a model and writes the run into its output directory.

    The Python form of ``kerasnets train`` (same defaults):
    ``train(TrainConfig(...))`` or ``train(model, dataset, output=...,
    **settings)`` with ``TrainConfig``'s fields as keywords.

    Running it again with the same ``output`` is always safe: an interrupted
    run resumes from its backup; a finished run is left as it is (a larger
    ``epochs`` continues it); other settings are refused before anything is
    changed, naming the differences, unless ``overwrite=True`` (start over).
    A second call on an output in use is refused at once (``RunLocked``).
    A non-finite loss stops training with ``TrainingDiverged``; no
    checkpoint, backup or model is written from a non-finite state. The
    run's states and steps: ``kerasnets.training.rundir``.

    Args:
        model: a ``TrainConfig``, or its ``model`` (then ``dataset``,
            ``output`` and the other settings are keywords).
        preprocessing: default: the weights' (``kerasnets.preprocessing``).
        callbacks: extra Keras callbacks.
        verbose: ``model.fit``'s.
        overwrite: start over in an output directory that holds a run.

    Returns:
        ``TrainResult`` (model, history dict, output dir, model path, strategy,
        preprocessing, status).
    """
    config = model if isinstance(model, TrainConfig) else TrainConfig(
        model=model, dataset=dataset, output=output, **settings)
    import keras
    import tensorflow as tf

    from kerasnets import data

    builder = get_builder(config.model)
    model_name = builder.__name__
    output = config.output
    run_settings = dict(config.settings(), model=model_name)
    strategy = config.strategy
    if not isinstance(strategy, tf.distribute.Strategy):
        strategy = get_strategy(strategy, tpu=config.tpu, peer_timeout=config.peer_timeout)
    strategy = keras_compatible(strategy)
    if isinstance(strategy, JaxDataParallel):
        _check_jax_batch_norm(config.sync_batch_norm)
    chief = is_chief(strategy)
    directory = write_dir(output, strategy)

    # new/any -> locked, or refused naming the holder; a JAX distribution is
    # Keras' current one for the whole run.
    with rundir.locked(directory), activated(strategy):
        # What this call may do with the directory: decided before anything is
        # written (a conflicting run raises here).
        action, previous = rundir.plan(output, run_settings, overwrite)
        if action == "complete":
            path = os.path.join(output, MODEL_FILE)
            prep = rundir_preprocessing(previous)
            return TrainResult(load_model_file(path), _history(output), output, path, None,
                               prep, "complete")
        if config.seed is not None:
            keras.utils.set_random_seed(config.seed)
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        if preprocessing is None:
            preprocessing = data.preprocessing_for(model_name, config.weights,
                                                   options=config.model_kwargs)
            if config.crop_scale >= 1:  # trained on whole images: evaluated on them
                preprocessing = dataclasses.replace(data.get_preprocessing(preprocessing),
                                                    crop_pct=1.0)
        inputs = _inputs(config, strategy, data.get_preprocessing(preprocessing), chief)
        if chief and verbose:
            print(config.recipe(inputs.train_split, inputs.val_split, inputs.steps_per_epoch)
                  + (" (held out: the dataset has no validation split)"
                     if inputs.held_out else ""), flush=True)
        net, policy = _compiled_model(config, builder, strategy, inputs)
        lr = config.peak_lr()
        run_config = _run_config(config, model_name, inputs, lr, policy, strategy,
                                 run_settings, previous if action != "new" else None)

        # The first change to the directory: everything above has been checked.
        if not chief:
            _take_chief_backup(output, directory)
        point = rundir.start(directory, action, previous, run_config,
                             overwrite=overwrite and chief, output=output)  # -> running
        with strategy.scope():
            initial_epoch = _restore(net, point)
        if chief and verbose and action == "resume":
            print(_resume_message(point, config.epochs), flush=True)
        try:
            history = net.fit(
                inputs.train,
                epochs=config.epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=inputs.steps_per_epoch,
                validation_data=inputs.val,
                validation_steps=inputs.validation_steps,
                callbacks=make_callbacks(directory, backup_every=config.backup_every,
                                         batch_norm=batchnorm.precise_batch_norm(
                                             inputs.statistics, batchnorm.steps_for(
                                                 config.batch_size, inputs.steps_per_epoch),
                                             strategy),
                                         validation=inputs.val is not None,
                                         title=f"{model_name} on {config.dataset}",
                                         plot=chief) + list(callbacks),
                shuffle=False,  # the pipeline shuffles
                verbose=verbose,
            )
            rundir.finish(directory, run_config, net.save)  # -> finishing -> complete
        except NonFiniteLoss as failure:
            rundir.diverge(directory, run_config, failure)  # -> diverged
            raise TrainingDiverged(_diverged_message(failure, output, lr)) from None
        except OSError as error:  # a full disk: every file is still whole
            raise rundir.stopped(error, output) from None
        except BaseException as error:
            if action == "new":
                rundir.abandon(directory)  # nothing of value: -> new
            lost = cluster.worker_lost(error, rundir.backup_epoch(directory)) if task(
                strategy)[0] is not None else None
            if lost is not None:  # a peer stopped: the backup stays for the rerun
                raise lost from error
            if isinstance(error, (tf.errors.InvalidArgumentError, tf.errors.UnknownError)):
                # A file the pipeline could not decode: name it (folder datasets).
                for split in filter(None, (inputs.train_split, inputs.val_split)):
                    data.check_images(config.dataset, split)
            raise
    model_path = os.path.join(directory, MODEL_FILE)
    if not chief:
        shutil.rmtree(directory, ignore_errors=True)
        model_path = os.path.join(output, MODEL_FILE)
    status = {"new": "trained", "resume": "resumed", "continue": "continued"}[action]
    return TrainResult(net, dict(history.history), output, model_path, strategy,
                       inputs.preprocessing, status)


@dataclasses.dataclass
class _Inputs:
    preprocessing: object
    info: object
    train_split: str
    val_split: Optional[str]
    held_out: bool  # the validation images are the training split's last part
    steps_per_epoch: int
    validation_steps: Optional[int]
    train: object
    val: object
    statistics: object  # training images, evaluation transform (precise BN)


def _inputs(config, strategy, preprocessing, chief):
    """The input pipelines of a run and their step counts."""
    from kerasnets import data

    dataset, batch_size = config.dataset, config.batch_size
    data_dir, try_gcs = config.data_dir, config.try_gcs
    info = data.info(dataset, config.train_split, data_dir, try_gcs)
    train_split, val_split, held_out = data.validation_splits(
        dataset, config.train_split, config.val_split, data_dir, try_gcs)
    multi_worker = task(strategy)[0] is not None
    steps_per_epoch, validation_steps = config.steps_per_epoch, config.validation_steps
    if steps_per_epoch is None:
        n = count_examples(dataset, train_split, data_dir, try_gcs)
        steps_per_epoch = max(1, n // batch_size)
    if val_split and validation_steps is None and (
            multi_worker or device_kind(strategy) == "tpu"
            or isinstance(strategy, JaxDataParallel)):
        # Equal, static steps on every worker, whole batches for every device
        # (a JAX mesh splits each batch evenly): drop the last partial batch.
        n_val = count_examples(dataset, val_split, data_dir, try_gcs)
        validation_steps = max(1, n_val // batch_size)
    common = dict(image_size=config.image_size, batch_size=batch_size,
                  preprocessing=preprocessing, data_dir=data_dir, try_gcs=try_gcs,
                  seed=config.seed, deterministic=config.deterministic, cache=config.cache,
                  num_classes=info.num_classes, one_hot=True, strategy=strategy,
                  skip_unreadable=config.skip_unreadable)
    train_ds = data.load(dataset, train_split, training=True, flip=config.flip,
                         scale=(config.crop_scale, 1.0), randaugment=config.randaugment,
                         mixup=config.mixup, **common)
    # Precise BatchNorm statistics before each validation and save: training
    # images through the evaluation transform (training/batchnorm.py).
    statistics_ds = data.load(dataset, train_split, training=False, shuffle=True,
                              repeat=True, **common)
    val_ds = None
    if val_split:
        val_ds = data.load(dataset, val_split, training=False,
                           repeat=validation_steps is not None,
                           drop_remainder=validation_steps is not None, **common)
    return _Inputs(preprocessing, info, train_split, val_split, held_out, steps_per_epoch,
                   validation_steps, train_ds, val_ds, statistics_ds)


def _compiled_model(config, builder, strategy, inputs):
    """The compiled model under the strategy and precision policy (not yet
    restored), and the policy's name."""
    import keras

    replicas = strategy.num_replicas_in_sync
    steps = inputs.steps_per_epoch
    policy = requested_policy(config.mixed_precision, strategy)
    previous_policy = keras.config.dtype_policy()
    try:
        if policy:
            keras.config.set_dtype_policy(policy)
        with strategy.scope():
            net = build_model(builder, inputs.info.num_classes, config.image_size,
                              weights=config.weights, freeze_backbone=config.freeze_backbone,
                              dropout=config.dropout, **config.model_kwargs)
            sync_batch_norm = config.sync_batch_norm
            if isinstance(strategy, JaxDataParallel):
                sync_batch_norm = False  # JAX computes on the global batch already
            if sync_batch_norm is None:
                sync_batch_norm = replicas > 1
            if sync_batch_norm and replicas > 1:
                use_synchronized_batch_norm(net)
            compile_model(
                net, optimizer=config.optimizer, lr=config.peak_lr(),
                batch_size=config.batch_size,
                schedule=config.schedule, total_steps=config.epochs * steps,
                warmup_steps=int(config.warmup() * steps),
                weight_decay=config.weight_decay, momentum=config.momentum,
                label_smoothing=config.label_smoothing,
                steps_per_execution=min(32, steps) if device_kind(strategy) == "tpu" else 1,
            )
    finally:
        keras.config.set_dtype_policy(previous_policy)
    return net, policy


def _check_jax_batch_norm(sync_batch_norm):
    if sync_batch_norm is False:
        raise ValueError(
            "sync_batch_norm=False: under JAX data parallelism (keras.distribution) "
            "BatchNorm always normalises with the statistics of the whole global batch, "
            "as one device would; leave sync_batch_norm unset.")


def _restore(net, point):
    """Loads the state ``rundir.start`` chose into ``net``; returns the epoch
    training goes on from (a backup: Keras' ``BackupAndRestore`` loads it)."""
    source, path, epoch = point
    if source == "model":
        _restore_finished(net, path)
    elif source == "checkpoint":
        net.optimizer.build(net.trainable_variables)
        net.load_weights(path)
    return epoch if source in ("model", "checkpoint") else 0


def _run_config(config, model_name, inputs, lr, policy, strategy, run_settings, previous):
    """``config.json``: what the run is (its status is the lifecycle's)."""
    return dict(
        model=model_name, model_kwargs=config.model_kwargs, dataset=config.dataset,
        weights=config.weights, epochs=config.epochs, batch_size=config.batch_size,
        image_size=config.image_size, optimizer=config.optimizer, lr=lr,
        schedule=config.schedule, label_smoothing=config.label_smoothing,
        mixed_precision=policy, strategy=type(strategy).__name__,
        replicas=strategy.num_replicas_in_sync, freeze_backbone=config.freeze_backbone,
        train_split=inputs.train_split, val_split=inputs.val_split,
        num_classes=inputs.info.num_classes, class_names=list(inputs.info.class_names),
        preprocessing=dataclasses.asdict(inputs.preprocessing), seed=config.seed,
        steps_per_epoch=inputs.steps_per_epoch, settings=run_settings, status="running",
        completed_epochs=(previous or {}).get("completed_epochs", 0),
    )


def rundir_preprocessing(config):
    """The ``Preprocessing`` a run's config records."""
    from kerasnets import preprocessing as preprocessing_lib

    return preprocessing_lib.Preprocessing(**{
        k: tuple(v) if isinstance(v, list) else v for k, v in config["preprocessing"].items()})


def _resume_message(point, epochs):
    """The log line of a resumed run: which epoch it goes on at, from what."""
    source, _, epoch = point
    if not epoch:
        return "resuming: no epoch was finished before the stop; training from epoch 1"
    what = {"backup": "its backup",
            "checkpoint": "the last epoch checkpoint (the optimizer state restarts)",
            "model": "the model it continues"}[source]
    return f"resuming at epoch {epoch + 1} of {epochs} from {what} (after epoch {epoch})"


def _take_chief_backup(output, directory):
    """A worker restarts from the chief's backup when it can read it (shared
    storage); else from its own (same machine)."""
    chief_backup = os.path.join(output, "backup")
    own_backup = os.path.join(directory, "backup")
    if os.path.isdir(chief_backup) and os.listdir(chief_backup):
        shutil.rmtree(own_backup, ignore_errors=True)
        shutil.copytree(chief_backup, own_backup)
