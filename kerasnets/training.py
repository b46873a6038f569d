"""Training and evaluation: strategies, mixed precision, the fit recipe.

One recipe, two doors: ``kerasnets train`` on the command line and
``kerasnets.training.train`` in Python (notebooks) do the same thing:

1. pick a ``tf.distribute`` strategy (``get_strategy``): one device, several
   GPUs (MirroredStrategy), several machines (MultiWorkerMirroredStrategy
   from ``TF_CONFIG``) or a TPU (TPUClusterResolver);
2. under its scope and the mixed-precision policy (float16 on GPUs,
   bfloat16 on TPUs), build the model (``build_model``): a kerasnets builder,
   optionally from pretrained weights with a new classifier for the
   dataset's classes and a frozen backbone; its probabilities are float32;
3. input pipelines from ``kerasnets.data`` (per-replica batches, sharded
   per worker), normalised for the model's weights;
4. compile (SGD with Nesterov momentum or AdamW, cosine or step schedule,
   decoupled weight decay off 1-D parameters, label smoothing) and
   ``model.fit`` with callbacks that write into the output directory:
   ``backup/`` (BackupAndRestore: a run started again with the same output
   directory resumes where it stopped), ``checkpoints/last.weights.h5`` and
   ``best.weights.h5``, ``history.csv``, ``training_curves.png``,
   ``config.json`` and at the end ``model.keras``.

With several workers every worker runs the same program with its own
``TF_CONFIG``; only the chief writes into the output directory, the others
write the same files into a private temporary directory. Resuming assumes
the output directory is shared storage (a bucket, NFS) or, failing that,
that each worker restarts on the machine that holds its own backup.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from typing import Optional

STRATEGIES = ("auto", "cpu", "mirrored", "multiworker", "tpu")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step")
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
CURVES_FILE = "training_curves.png"
CONFIG_FILE = "config.json"


# ---------------------------------------------------------------- strategy


def get_strategy(name="auto", tpu=None):
    """A ``tf.distribute.Strategy`` by name.

    - ``"auto"``: a TPU when one is named (``tpu``), announced by the
      environment (``TPU_NAME``, ``COLAB_TPU_ADDR``) or attached (TPU VM);
      else MirroredStrategy over several GPUs; else the default strategy on
      the single GPU or the CPU.
    - ``"cpu"``: the default strategy pinned to the CPU (GPUs unused).
    - ``"mirrored"``: MirroredStrategy over the local GPUs (or the logical CPU
      devices when there is no GPU).
    - ``"multiworker"``: MultiWorkerMirroredStrategy configured by
      ``TF_CONFIG``; create it first, before any other TensorFlow work.
    - ``"tpu"``: TPUStrategy through ``TPUClusterResolver(tpu)``: ``tpu`` is a
      TPU name, a ``grpc://host:8470`` address or ``"local"`` (TPU VM).
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}: expected one of {STRATEGIES}.")
    # One strategy per kind and process: TensorFlow allows one multi-worker
    # strategy and one TPU initialisation per process, and two mirrored
    # strategies over the same devices would share collective-op keys.
    key = (name, tpu) + tuple(os.environ.get(v) for v in ("TF_CONFIG", "TPU_NAME",
                                                           "COLAB_TPU_ADDR"))
    if key not in _STRATEGIES:
        _STRATEGIES[key] = _new_strategy(name, tpu)
    return _STRATEGIES[key]


_STRATEGIES = {}


def _new_strategy(name, tpu):
    import tensorflow as tf

    if name == "tpu" or (name == "auto" and _tpu_announced(tpu)):
        return _tpu_strategy(tpu)
    if name == "multiworker":
        config = os.environ.get("TF_CONFIG")
        if not config:
            raise RuntimeError(
                "--strategy multiworker needs TF_CONFIG: every worker runs the "
                'same command with TF_CONFIG=\'{"cluster": {"worker": ["host1:port", '
                '"host2:port"]}, "task": {"type": "worker", "index": 0}}\' '
                "(its own index)."
            )
        try:
            json.loads(config)
        except ValueError as error:
            raise RuntimeError(f"TF_CONFIG is not valid JSON: {error}") from error
        return keras_compatible(tf.distribute.MultiWorkerMirroredStrategy())
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        devices = [d.name for d in gpus] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return tf.distribute.MirroredStrategy(devices)
    if name == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def keras_compatible(strategy):
    """Lets Keras 3 ``fit``/``evaluate`` run under MultiWorkerMirroredStrategy.

    Keras 3 (up to 3.15 at least, keras-team/keras#20585) calls
    ``strategy.reduce`` in two ways that MultiWorkerMirroredStrategy rejects:
    on the whole (images, labels) structure of the first batch (to learn the
    input shapes), and with ``axis=0`` on scalar per-replica logs (the loss and
    metrics of each step). This makes ``reduce`` of this strategy object map
    over structures and reduce scalars across replicas (``axis=None``); every
    worker makes the same calls in the same order. Other strategies are
    returned unchanged.
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return strategy
    if getattr(strategy, "_kerasnets_reduce", None) is not None:
        return strategy
    reduce = strategy.reduce

    def reduce_one(reduce_op, value, axis):
        if axis is not None:
            parts = (strategy.experimental_local_results(value)
                     if isinstance(value, tf.distribute.DistributedValues) else (value,))
            if parts and getattr(parts[0], "shape", None) is not None and parts[0].shape.rank == 0:
                axis = None  # a scalar per replica: reduce across replicas only
        return reduce(reduce_op, value, axis=axis)

    def nested_reduce(reduce_op, value, axis=None):
        return tf.nest.map_structure(lambda v: reduce_one(reduce_op, v, axis), value)

    strategy.reduce = nested_reduce
    strategy._kerasnets_reduce = reduce
    return strategy


def _tpu_announced(tpu):
    import tensorflow as tf

    if tpu or os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"):
        return True
    try:
        return bool(tf.config.list_physical_devices("TPU"))
    except Exception:  # noqa: BLE001 - no TPU platform in this build
        return False


def tpu_resolver(tpu=None):
    """``TPUClusterResolver`` for ``tpu`` (name, grpc address, "local") or
    the environment; raises a RuntimeError that says what to pass."""
    import tensorflow as tf

    if tpu is None:
        if os.environ.get("COLAB_TPU_ADDR"):
            tpu = "grpc://" + os.environ["COLAB_TPU_ADDR"]
        elif os.environ.get("TPU_NAME"):
            tpu = os.environ["TPU_NAME"]
        elif _local_tpu():
            tpu = "local"
        else:
            raise RuntimeError(
                "No TPU found: pass --tpu with a TPU name, a grpc://HOST:8470 "
                "address or 'local' (on a TPU VM), set TPU_NAME, or use "
                "--strategy auto/cpu/mirrored."
            )
    try:
        return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    except Exception as error:  # noqa: BLE001 - TF raises ValueError or others
        raise RuntimeError(f"Cannot resolve the TPU {tpu!r}: {error}") from error


def _local_tpu():
    import tensorflow as tf

    try:
        return bool(tf.config.list_physical_devices("TPU"))
    except Exception:  # noqa: BLE001
        return False


def _tpu_strategy(tpu):
    import tensorflow as tf

    resolver = tpu_resolver(tpu)
    try:
        if tpu != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as error:  # noqa: BLE001
        raise RuntimeError(
            f"Cannot connect to the TPU {tpu or resolver.master()!r}: {error}"
        ) from error
    return tf.distribute.TPUStrategy(resolver)


def device_kind(strategy):
    """"tpu", "gpu" or "cpu": where ``strategy`` computes."""
    import tensorflow as tf

    if isinstance(strategy, (tf.distribute.TPUStrategy,)) or "TPU" in type(strategy).__name__:
        return "tpu"
    if isinstance(strategy, tf.distribute.OneDeviceStrategy):
        devices = (strategy.extended._device,)  # noqa: SLF001 - no public accessor
    else:
        try:
            devices = tuple(strategy.extended.worker_devices)
        except RuntimeError:  # the default strategy has no device list
            devices = ()
    if not devices:  # the default strategy: TensorFlow's own placement
        return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"
    return "gpu" if any("GPU" in str(d).upper() for d in devices) else "cpu"


def mixed_precision_policy(strategy):
    """Policy name for mixed precision on ``strategy``'s devices:
    mixed_float16 on GPUs, mixed_bfloat16 on TPUs (and CPUs)."""
    return "mixed_float16" if device_kind(strategy) == "gpu" else "mixed_bfloat16"


def requested_policy(mixed_precision, strategy):
    """The dtype policy a run asked for: None (float32), a policy name, or
    True for the strategy's own (``mixed_precision_policy``); warns that
    bfloat16 on a CPU is for testing. Warnings point at the caller's caller
    (``train``, ``tuner.search``)."""
    if not mixed_precision:
        return None
    policy = (mixed_precision if isinstance(mixed_precision, str)
              else mixed_precision_policy(strategy))
    if policy == "mixed_bfloat16" and device_kind(strategy) == "cpu":
        warnings.warn("Mixed precision on CPU (bfloat16) is for testing: it is "
                      "rarely faster than float32 there.", stacklevel=3)
    return policy


def task(strategy):
    """(task_type, task_id) of this process in a multi-worker cluster, or
    (None, None) on one machine."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return None, None
    return resolver.task_type, resolver.task_id


def is_chief(strategy):
    """Whether this process writes the run's outputs (the chief, or worker 0
    of a cluster without a chief, or the only process)."""
    task_type, task_id = task(strategy)
    if task_type is None or task_type == "chief":
        return True
    if task_type != "worker" or task_id != 0:
        return False
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return "chief" not in spec


def write_dir(output, strategy):
    """Where this process writes: ``output`` for the chief, a private
    temporary directory (stable for ``output``, so a restarted worker finds
    its own backup) for the other workers."""
    if is_chief(strategy):
        return output
    task_type, task_id = task(strategy)
    digest = hashlib.sha1(os.path.abspath(output).encode()).hexdigest()[:10]
    return os.path.join(
        tempfile.gettempdir(), "kerasnets-workers", f"{digest}-{task_type}-{task_id}"
    )


# ------------------------------------------------------------------ models


def get_builder(model):
    """A kerasnets builder function from its name (or the function itself)."""
    if callable(model):
        return model
    import inspect

    import kerasnets

    builder = getattr(kerasnets, str(model), None)
    if not (inspect.isfunction(builder) and str(model)[:1].isupper()):
        known = sorted(
            n for n, o in vars(kerasnets).items() if inspect.isfunction(o) and n[:1].isupper()
        )
        raise ValueError(f"Unknown model {model!r}. Known: {', '.join(known)}")
    return builder


def build_model(
    model,
    num_classes,
    image_size,
    *,
    weights=None,
    freeze_backbone=False,
    dropout=0.0,
    float32_outputs=None,
    **model_kwargs,
):
    """Builds a classifier for ``num_classes`` (call under the strategy scope
    and the dtype policy you train with).

    With pretrained ``weights`` (a tag or a path) and ``num_classes`` other
    than 1000, or with ``freeze_backbone``, the builder's headless network
    (``include_top=False, pooling="avg"``) gets a new ``Dense`` classifier
    named ``predictions`` (after ``Dropout(dropout)`` when > 0);
    ``freeze_backbone`` freezes every layer but that head (frozen
    BatchNormalization layers run in inference mode). Otherwise the
    builder's own top is built with ``classes=num_classes``.

    Under a mixed precision policy the classifier computes in the compute
    dtype and a float32 softmax (``Activation`` layer ``predictions_float32``)
    makes the outputs float32; ``float32_outputs`` forces it on or off.

    Returns the model; it outputs class probabilities.
    """
    import keras

    builder = get_builder(model)
    if float32_outputs is None:
        float32_outputs = keras.config.dtype_policy().compute_dtype != "float32"
    activation = None if float32_outputs else "softmax"
    new_head = weights is not None and (num_classes != 1000 or freeze_backbone)
    shape = (image_size, image_size, 3)
    if new_head:
        base = builder(include_top=False, weights=weights, input_shape=shape,
                       pooling="avg", **model_kwargs)
        x = base.output
        if dropout:
            x = keras.layers.Dropout(dropout, name="top_dropout")(x)
        x = keras.layers.Dense(num_classes, activation=activation, name="predictions")(x)
        head = {"top_dropout", "predictions"}
    else:
        base = builder(include_top=True, weights=weights, input_shape=shape,
                       classes=num_classes, classifier_activation=activation,
                       **model_kwargs)
        x = base.output
        weighted = [layer for layer in base.layers if layer.weights]
        head = {weighted[-1].name} if weighted else set()
    if float32_outputs:
        x = keras.layers.Activation("softmax", dtype="float32", name="predictions_float32")(x)
    result = keras.Model(base.inputs, x, name=base.name)
    if freeze_backbone:
        for layer in result.layers:
            if layer.name not in head and layer.name != "predictions_float32":
                layer.trainable = False
    return result


def use_synchronized_batch_norm(model):
    """Makes every BatchNormalization layer of ``model`` use the batch
    statistics of all replicas (as one device would with the global batch)."""
    import keras

    count = 0
    for layer in model._flatten_layers(include_self=False):  # noqa: SLF001
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            count += 1
    return count


# ---------------------------------------------------------------- recipe


def default_learning_rate(optimizer, batch_size):
    """Linear scaling: SGD 0.1 per 256 images, AdamW 1e-3 per 512."""
    if optimizer == "sgd":
        return 0.1 * batch_size / 256
    return 1e-3 * batch_size / 512


def learning_rate_schedule(lr, schedule, total_steps, warmup_steps=0):
    """Cosine decay to 0 (after a linear warm-up), or step decay (x0.1 at
    30%, 60% and 90% of training)."""
    import keras

    total_steps = max(int(total_steps), 1)
    if schedule == "cosine":
        warmup_steps = min(int(warmup_steps), total_steps - 1)
        if warmup_steps:
            return keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=0.0,
                decay_steps=total_steps - warmup_steps,
                warmup_target=lr,
                warmup_steps=warmup_steps,
            )
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=total_steps)
    if schedule == "step":
        boundaries = sorted({max(1, int(total_steps * f)) for f in (0.3, 0.6, 0.9)})
        values = [lr * 0.1**i for i in range(len(boundaries) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    raise ValueError(f"Unknown schedule {schedule!r}: expected one of {SCHEDULES}.")


def make_optimizer(name, learning_rate, *, weight_decay=None, momentum=0.9):
    """SGD (Nesterov momentum) or AdamW, with decoupled weight decay
    (defaults: 5e-5 for SGD, 0.05 for AdamW; 0 turns it off)."""
    import keras

    if name == "sgd":
        wd = 5e-5 if weight_decay is None else weight_decay
        return keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=True,
                                    weight_decay=wd or None)
    if name == "adamw":
        wd = 0.05 if weight_decay is None else weight_decay
        return keras.optimizers.AdamW(learning_rate, weight_decay=wd)
    raise ValueError(f"Unknown optimizer {name!r}: expected one of {OPTIMIZERS}.")


def compile_model(model, *, optimizer="sgd", lr=None, batch_size=64, schedule="cosine",
                  total_steps=1000, warmup_steps=0, weight_decay=None, momentum=0.9,
                  label_smoothing=0.1, steps_per_execution=1):
    """Compiles ``model`` (probability outputs, one-hot labels) with the
    recipe's optimizer, schedule, loss and top-1/top-5 metrics."""
    import keras

    lr = default_learning_rate(optimizer, batch_size) if lr is None else lr
    opt = make_optimizer(optimizer, learning_rate_schedule(lr, schedule, total_steps,
                                                           warmup_steps),
                         weight_decay=weight_decay, momentum=momentum)
    # No decay on biases and normalisation parameters (1-D variables).
    opt.exclude_from_weight_decay(
        var_list=[v for v in model.trainable_variables if len(v.shape) <= 1]
    )
    model.compile(
        optimizer=opt,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")]
        + ([keras.metrics.TopKCategoricalAccuracy(5, name="top5")]
           if model.output_shape[-1] > 5 else []),
        steps_per_execution=steps_per_execution,
    )
    return model


# -------------------------------------------------------------- callbacks


def plot_history(history, path, title=None):
    """Writes training curves (loss, accuracy) to ``path`` as a PNG.

    ``history``: a ``keras.callbacks.History``, a dict of lists, or the path
    of a CSVLogger file. Uses matplotlib's Agg canvas (no display, no change
    to the global backend).
    """
    import csv

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if isinstance(history, (str, os.PathLike)):
        rows = {}
        with open(history, newline="") as f:
            for row in csv.DictReader(f):  # a resumed run may repeat an epoch
                rows[int(row["epoch"])] = row
        keys = [k for k in (next(iter(rows.values()), {}) or {}) if k != "epoch"]
        epochs = sorted(rows)
        logs = {k: [_number(rows[e].get(k)) for e in epochs] for k in keys}
        xs = [e + 1 for e in epochs]
    else:
        logs = dict(getattr(history, "history", history))
        xs = list(range(1, 1 + max((len(v) for v in logs.values()), default=0)))
    # CSVLogger writes "NA" for validation columns of runs without validation.
    logs = {k: v for k, v in logs.items() if any(x == x for x in v)}
    figure = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(figure)
    panels = (("loss", "loss"), ("accuracy", "top-1 accuracy"), ("top5", "top-5 accuracy"))
    panels = [p for p in panels if p[0] in logs]
    for i, (key, label) in enumerate(panels, 1):
        axes = figure.add_subplot(1, len(panels), i)
        for name, style in ((key, "-o"), ("val_" + key, "--s")):
            if name in logs:
                axes.plot(xs[: len(logs[name])], logs[name], style, markersize=3,
                          label="validation" if name.startswith("val_") else "train")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epoch")
        axes.set_title(label)
        axes.grid(alpha=0.3)
        axes.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    tmp = f"{path}.tmp.png"
    figure.savefig(tmp)
    os.replace(tmp, path)
    return path


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _curves_callback(csv_path, png_path, title):
    import keras

    class TrainingCurves(keras.callbacks.Callback):
        """Redraws the training-curve PNG from the CSV history every epoch."""

        def on_epoch_end(self, epoch, logs=None):
            if os.path.exists(csv_path):
                try:
                    plot_history(csv_path, png_path, title)
                except Exception as error:  # noqa: BLE001 - never stop training
                    warnings.warn(f"Could not draw {png_path}: {error}", stacklevel=2)

    return TrainingCurves()


def make_callbacks(directory, *, backup_every="epoch", validation=True, title=None,
                   plot=True):
    """The recipe's callbacks, all writing under ``directory``."""
    import keras

    checkpoints = os.path.join(directory, "checkpoints")
    os.makedirs(checkpoints, exist_ok=True)
    callbacks = [
        # First, so that it has saved before anything else reacts to an epoch.
        keras.callbacks.BackupAndRestore(os.path.join(directory, "backup"),
                                         save_freq=backup_every),
        keras.callbacks.ModelCheckpoint(os.path.join(checkpoints, "last.weights.h5"),
                                        save_weights_only=True),
    ]
    if validation:
        callbacks.append(keras.callbacks.ModelCheckpoint(
            os.path.join(checkpoints, "best.weights.h5"), save_weights_only=True,
            monitor="val_accuracy", mode="max", save_best_only=True))
    csv_path = os.path.join(directory, HISTORY_FILE)
    callbacks.append(keras.callbacks.CSVLogger(csv_path, append=True))
    if plot:
        callbacks.append(_curves_callback(csv_path, os.path.join(directory, CURVES_FILE),
                                          title))
    return callbacks


# ------------------------------------------------------------------- train


@dataclasses.dataclass
class TrainResult:
    model: object
    history: dict
    output: str
    model_path: str
    strategy: object
    preprocessing: object


def _default_val_split(dataset, data_dir, try_gcs):
    from kerasnets import data

    if data.is_folder(dataset):
        for split in ("validation", "test"):
            try:
                data.folder_files(dataset, split)
                return split
            except ValueError:
                continue
        return None
    try:
        splits = data._tfds_builder(dataset, data_dir, try_gcs).info.splits  # noqa: SLF001
        names = list(splits.keys())
    except Exception:  # noqa: BLE001 - unprepared, mocked
        names = []
    return next((s for s in ("validation", "test") if s in names), None)


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


def train(
    model,
    dataset,
    *,
    output,
    weights=None,
    epochs=10,
    batch_size=64,
    image_size=224,
    optimizer="sgd",
    lr=None,
    schedule="cosine",
    warmup_epochs=0,
    weight_decay=None,
    momentum=0.9,
    label_smoothing=0.1,
    mixed_precision=False,
    strategy="auto",
    tpu=None,
    freeze_backbone=False,
    dropout=0.0,
    train_split="train",
    val_split="auto",
    preprocessing=None,
    randaugment=None,
    mixup=0.0,
    data_dir=None,
    try_gcs=False,
    cache=False,
    seed=None,
    deterministic=None,
    steps_per_epoch=None,
    validation_steps=None,
    backup_every="epoch",
    sync_batch_norm=None,
    callbacks=(),
    verbose="auto",
    model_kwargs=None,
):
    """Trains ``model`` on ``dataset`` and writes the run into ``output``.

    The Python form of ``kerasnets train`` (same defaults). Running it again
    with the same ``output`` resumes an interrupted run from its backup.

    Args:
        model: builder name (``"MobileNetV2"``) or builder function;
            ``model_kwargs`` go to the builder (``{"alpha": 0.35}``).
        dataset: tfds name or ``"folder:PATH"`` (see ``kerasnets.data``).
        output: run directory (checkpoints, history, curves, model.keras).
        weights: None (from scratch), a pretrained tag or a weights path; with
            pretrained weights and other than 1000 classes the model gets a
            new classifier (see ``build_model``).
        epochs, batch_size (global), image_size: the usual.
        optimizer: "sgd" (Nesterov, momentum ``momentum``) or "adamw".
        lr: peak learning rate (default: 0.1 x batch/256 for SGD, 1e-3 x
            batch/512 for AdamW).
        schedule: "cosine" (with ``warmup_epochs`` of linear warm-up) or
            "step" (x0.1 at 30%, 60%, 90%).
        weight_decay: decoupled, not on 1-D parameters (default 5e-5 SGD,
            0.05 AdamW).
        label_smoothing: of the cross-entropy.
        mixed_precision: False, True (float16 on GPU, bfloat16 on TPU/CPU) or
            a policy name. Outputs and loss stay float32.
        strategy: "auto", "cpu", "mirrored", "multiworker", "tpu", or a
            ``tf.distribute.Strategy``; ``tpu``: TPU name/address.
        freeze_backbone: train only the classifier.
        dropout: before a new classifier.
        train_split, val_split: splits ("auto": "validation" or "test" when
            the dataset has one; None: no validation).
        preprocessing: default: the weights' (``data.preprocessing_for``).
        randaugment, mixup, cache, seed, deterministic: see ``data.load``.
            A seed also seeds Keras (weights initialisation, dropout).
        steps_per_epoch: default: training examples // batch_size.
        validation_steps: default: the whole split (on one worker).
        backup_every: "epoch" or a number of steps between backups.
        sync_batch_norm: BatchNorm statistics over all replicas (default: on
            with several replicas, so results do not depend on the replica
            count).
        callbacks: extra Keras callbacks.

    Returns:
        ``TrainResult`` (model, history dict, output dir, model path, strategy,
        preprocessing).
    """
    import keras
    import tensorflow as tf

    from kerasnets import data

    if not isinstance(strategy, tf.distribute.Strategy):
        strategy = get_strategy(strategy, tpu=tpu)
    strategy = keras_compatible(strategy)
    builder = get_builder(model)
    model_name = builder.__name__
    if seed is not None:
        keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    chief = is_chief(strategy)
    directory = write_dir(output, strategy)
    os.makedirs(directory, exist_ok=True)
    if not chief:
        _take_chief_backup(output, directory)

    if preprocessing is None:
        preprocessing = data.preprocessing_for(model_name, weights)
    preprocessing = data.get_preprocessing(preprocessing)
    info = data.info(dataset, train_split, data_dir, try_gcs)
    if val_split == "auto":
        val_split = _default_val_split(dataset, data_dir, try_gcs)
    kind = device_kind(strategy)
    replicas = strategy.num_replicas_in_sync
    multi_worker = task(strategy)[0] is not None
    if steps_per_epoch is None:
        n = count_examples(dataset, train_split, data_dir, try_gcs)
        steps_per_epoch = max(1, n // batch_size)
    if val_split and validation_steps is None and (multi_worker or kind == "tpu"):
        # Equal, static steps on every worker: drop the last partial batch.
        n_val = count_examples(dataset, val_split, data_dir, try_gcs)
        validation_steps = max(1, n_val // batch_size)

    common = dict(image_size=image_size, batch_size=batch_size, preprocessing=preprocessing,
                  data_dir=data_dir, try_gcs=try_gcs, seed=seed, deterministic=deterministic,
                  cache=cache, num_classes=info.num_classes, one_hot=True,
                  strategy=strategy)
    train_ds = data.load(dataset, train_split, training=True, randaugment=randaugment,
                         mixup=mixup, **common)
    val_ds = None
    if val_split:
        val_ds = data.load(dataset, val_split, training=False,
                           repeat=validation_steps is not None,
                           drop_remainder=validation_steps is not None, **common)

    policy = requested_policy(mixed_precision, strategy)
    previous_policy = keras.config.dtype_policy()
    try:
        if policy:
            keras.config.set_dtype_policy(policy)
        with strategy.scope():
            net = build_model(builder, info.num_classes, image_size, weights=weights,
                              freeze_backbone=freeze_backbone, dropout=dropout,
                              **(model_kwargs or {}))
            if sync_batch_norm is None:
                sync_batch_norm = replicas > 1
            if sync_batch_norm and replicas > 1:
                use_synchronized_batch_norm(net)
            compile_model(
                net, optimizer=optimizer, lr=lr, batch_size=batch_size, schedule=schedule,
                total_steps=epochs * steps_per_epoch,
                warmup_steps=int(warmup_epochs * steps_per_epoch),
                weight_decay=weight_decay, momentum=momentum,
                label_smoothing=label_smoothing,
                steps_per_execution=min(32, steps_per_epoch) if kind == "tpu" else 1,
            )
    finally:
        keras.config.set_dtype_policy(previous_policy)

    run_config = dict(
        model=model_name, model_kwargs=model_kwargs or {}, dataset=dataset,
        weights=None if weights is None else os.fspath(weights), epochs=epochs,
        batch_size=batch_size, image_size=image_size, optimizer=optimizer,
        lr=lr if lr is not None else default_learning_rate(optimizer, batch_size),
        schedule=schedule, label_smoothing=label_smoothing, mixed_precision=policy,
        strategy=type(strategy).__name__, replicas=replicas,
        freeze_backbone=freeze_backbone, train_split=train_split, val_split=val_split,
        num_classes=info.num_classes, class_names=list(info.class_names),
        preprocessing=dataclasses.asdict(preprocessing), seed=seed,
        steps_per_epoch=steps_per_epoch,
    )
    with open(os.path.join(directory, CONFIG_FILE), "w") as f:
        json.dump(run_config, f, indent=2)

    history = net.fit(
        train_ds,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=val_ds,
        validation_steps=validation_steps,
        callbacks=make_callbacks(directory, backup_every=backup_every,
                                 validation=val_ds is not None,
                                 title=f"{model_name} on {dataset}",
                                 plot=chief) + list(callbacks),
        shuffle=False,  # the pipeline shuffles
        verbose=verbose,
    )
    model_path = os.path.join(directory, MODEL_FILE)
    net.save(model_path)
    if not chief:
        shutil.rmtree(directory, ignore_errors=True)
        model_path = os.path.join(output, MODEL_FILE)
    return TrainResult(net, dict(history.history), output, model_path, strategy,
                       preprocessing)


def _take_chief_backup(output, directory):
    """A worker restarts from the chief's backup when it can read it (shared
    storage); else from its own (same machine)."""
    chief_backup = os.path.join(output, "backup")
    own_backup = os.path.join(directory, "backup")
    if os.path.isdir(chief_backup) and os.listdir(chief_backup):
        shutil.rmtree(own_backup, ignore_errors=True)
        shutil.copytree(chief_backup, own_backup)


# ---------------------------------------------------------------- evaluate


@dataclasses.dataclass
class Evaluation:
    top1: float
    top5: Optional[float]
    images_per_second: float
    num_examples: int
    seconds: float
    reported_top1: Optional[float] = None
    reported_top5: Optional[float] = None

    def summary(self, compare=False):
        lines = [f"top-1 {100 * self.top1:6.2f}%"
                 + (f"   top-5 {100 * self.top5:6.2f}%" if self.top5 is not None else ""),
                 f"{self.num_examples} images in {self.seconds:.1f} s: "
                 f"{self.images_per_second:.1f} images/s"]
        if compare:
            if self.reported_top1 is None and self.reported_top5 is None:
                lines.append("reported: no accuracy published for these weights")
            else:
                parts = []
                for name, ours, theirs in (("top-1", self.top1, self.reported_top1),
                                           ("top-5", self.top5, self.reported_top5)):
                    if theirs is not None and ours is not None:
                        parts.append(f"{name} {theirs:6.2f}% (ours {100 * ours - theirs:+.2f})")
                lines.append("reported: " + "   ".join(parts))
        return "\n".join(lines)


def evaluate(
    model,
    weights="imagenet",
    dataset="imagenet2012",
    split="validation",
    *,
    image_size=None,
    batch_size=64,
    preprocessing=None,
    data_dir=None,
    try_gcs=False,
    strategy="auto",
    tpu=None,
    max_examples=None,
    verbose=0,
    model_kwargs=None,
):
    """Top-1 / top-5 accuracy and throughput of ``model`` with ``weights``.

    ``weights``: a pretrained tag, a weights file, or a ``.keras`` model
    written by ``train`` (its ``config.json`` beside it gives the
    preprocessing). ``image_size``: default the weights' input size
    (``.keras``: the model's). ``preprocessing``: default the weights'.
    Images/s counts the whole evaluation after one warm-up batch.
    Returns an ``Evaluation`` with the registry's reported accuracy.
    """
    import keras
    import tensorflow as tf

    from kerasnets import data

    if not isinstance(strategy, tf.distribute.Strategy):
        strategy = get_strategy(strategy, tpu=tpu)
    builder = get_builder(model)
    name = builder.__name__
    found = None
    keras_file = isinstance(weights, (str, os.PathLike)) and os.fspath(weights).endswith(".keras")
    if keras_file:
        config_path = os.path.join(os.path.dirname(os.fspath(weights)), CONFIG_FILE)
        if preprocessing is None and os.path.exists(config_path):
            with open(config_path) as f:
                preprocessing = data.Preprocessing(
                    **{k: tuple(v) if isinstance(v, list) else v
                       for k, v in json.load(f)["preprocessing"].items()})
    elif isinstance(weights, str) and not os.path.exists(weights):
        prefer = [f"_{float(model_kwargs['alpha'])}"] if "alpha" in (model_kwargs or {}) else []
        if image_size:
            prefer.append(f"_{image_size}")
        found = data._weights_entry(name, weights, prefer=tuple(prefer))  # noqa: SLF001
    if preprocessing is None:
        preprocessing = data.preprocessing_for(name, None if keras_file else weights)
    preprocessing = data.get_preprocessing(preprocessing)
    with strategy.scope():
        if keras_file:
            net = keras.models.load_model(weights, compile=False)
        else:
            size = image_size or (found[1].input_size if found else 224)
            net = builder(weights=weights, input_shape=(size, size, 3),
                          **(model_kwargs or {}))
    image_size = image_size or int(net.input_shape[1] or 224)
    num_classes = int(net.output_shape[-1])
    with strategy.scope():
        net.compile(loss=keras.losses.SparseCategoricalCrossentropy(), metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="top1"),
            keras.metrics.SparseTopKCategoricalAccuracy(min(5, num_classes), name="top5"),
        ])
    n = count_examples(dataset, split, data_dir, try_gcs)
    if max_examples:
        n = min(n, int(max_examples))
    ds = data.load(dataset, split, image_size, batch_size, training=False,
                   preprocessing=preprocessing, data_dir=data_dir, try_gcs=try_gcs,
                   drop_remainder=device_kind(strategy) == "tpu")
    if max_examples:
        ds = ds.unbatch().take(n).batch(batch_size)
    net.evaluate(ds.take(1), verbose=0)  # trace and warm up
    start = time.perf_counter()
    results = net.evaluate(ds, verbose=verbose, return_dict=True)
    seconds = time.perf_counter() - start
    entry = found[1] if found else None
    return Evaluation(
        top1=float(results["top1"]),
        top5=float(results["top5"]) if num_classes > 5 else None,
        images_per_second=n / seconds if seconds > 0 else float("inf"),
        num_examples=n,
        seconds=seconds,
        reported_top1=getattr(entry, "top1", None),
        reported_top5=getattr(entry, "top5", None),
    )


__all__ = [
    "Evaluation",
    "TrainResult",
    "build_model",
    "compile_model",
    "device_kind",
    "evaluate",
    "get_strategy",
    "is_chief",
    "make_callbacks",
    "mixed_precision_policy",
    "plot_history",
    "tpu_resolver",
    "train",
    "write_dir",
]
