"""Running a search: the tuners, ``search`` (data, strategy, resume, best model)
and the tables that report it."""

import contextlib
import dataclasses
import functools
import json
import os
import warnings
from typing import Optional

import keras
import keras_tuner

from kerasnets import data, training
from kerasnets.files import inside, remove, remove_stale_partials, write_atomically
from kerasnets.text import parse_assignments
from kerasnets.training import batchnorm, rundir
from kerasnets.tuner.hypermodels import (
    BEST_MODEL_FILE,
    SEARCH_FILE,
    STRATEGIES,
    TUNERS,
    _is_int,
    _KerasNetsHyperModel,
    get_hypermodel,
)

# ------------------------------------------------------------------ tuners


class _TunerMixin:
    """Records the trials this process ran (``ran_trials``), and imports
    TensorBoard only for a search that has a TensorBoard callback
    (keras-tuner 1.4 imports it in every trial on the TensorFlow backend,
    and TensorFlow does not install it)."""

    def on_trial_begin(self, trial):
        self.__dict__.setdefault("ran_trials", []).append(trial.trial_id)
        super().on_trial_begin(trial)

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        if any(type(c).__name__ == "TensorBoard" for c in callbacks):
            super()._configure_tensorboard_dir(callbacks, trial, execution)

    def _build_hypermodel(self, hp):
        # keras-tuner clears the Keras session before each build, and with it
        # the global dtype policy: set the search's again.
        policy = getattr(self, "dtype_policy", None)
        if policy is not None:
            keras.config.set_dtype_policy(policy)
        return super()._build_hypermodel(hp)


class _RandomSearch(_TunerMixin, keras_tuner.RandomSearch):
    pass


class _BayesianOptimization(_TunerMixin, keras_tuner.BayesianOptimization):
    pass


class _Hyperband(_TunerMixin, keras_tuner.Hyperband):
    pass


def distributed_role():
    """"chief" or "worker" under keras-tuner's chief/worker mode (the
    ``KERASTUNER_*`` environment variables), else None."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    missing = [v for v in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID")
               if not os.environ.get(v)]
    if missing:
        raise RuntimeError(
            f"KERASTUNER_ORACLE_IP is set but {' and '.join(missing)} not: distributed "
            "tuning needs KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT and "
            "KERASTUNER_TUNER_ID ('chief' or a worker name) in every process.")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


# ---------------------------------------------------------- project folder

# What keras-tuner writes in a trial folder: trial.json, build_config.json and
# the best epoch's checkpoint (checkpoint.weights.h5; "checkpoint*" files
# under tf.keras).
_TRIAL_FILES = ("trial.json", "build_config.json")


def project_path(directory, project_name):
    """``directory/project_name``; a ValueError for a project name that leads
    outside ``directory`` (an absolute path, ".", "..")."""
    return inside(directory, project_name, what="project_name")


def _is_trial_folder(path):
    if os.path.islink(path) or not os.path.isdir(path):
        return False
    return all((name in _TRIAL_FILES or name.startswith("checkpoint"))
               and os.path.isfile(os.path.join(path, name)) for name in os.listdir(path))


def _is_search_file(path):
    """A file that a search writes at the top of its project: keras-tuner's
    JSON files (oracle.json, one per tuner id, the settings), the best model
    and their temporary names. Lock files are left to their owner."""
    name = os.path.basename(path)
    if os.path.islink(path) or not os.path.isfile(path):
        return False
    return (name.endswith(".json") or name == BEST_MODEL_FILE
            or (name.startswith("best_model.") and name.endswith(".tmp.keras"))
            or (name.startswith(f"{SEARCH_FILE}.") and name.endswith(".tmp")))


def search_files(project_dir):
    """The files and trial folders of the search in ``project_dir`` (what
    ``overwrite`` deletes; its ``kerasnets_search.json`` marker stays). A ValueError, before anything is deleted, for a
    folder that no kerasnets search wrote (no ``kerasnets_search.json``) or
    that holds anything else (a training run, a user's notes), naming it."""
    if not os.path.lexists(project_dir):
        return []
    if os.path.islink(project_dir) or not os.path.isdir(project_dir):
        raise ValueError(f"{project_dir} is not a search's folder (a file or a link): "
                         "use another project name or directory.")
    if not os.listdir(project_dir):
        return []
    if not os.path.isfile(os.path.join(project_dir, SEARCH_FILE)):
        raise ValueError(
            f"{project_dir} was not written by a kerasnets search (it has no {SEARCH_FILE}): "
            "overwrite deletes only a search's own folder; use another project name or "
            "directory.")
    ours, foreign = [], []
    for name in sorted(os.listdir(project_dir)):
        path = os.path.join(project_dir, name)
        if name == SEARCH_FILE or (name.endswith(".lock") and not os.path.isdir(path)):
            continue  # the marker stays until the new settings replace it
        if (name.startswith("trial_") and _is_trial_folder(path)) or _is_search_file(path):
            ours.append(path)
        else:
            foreign.append(path)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more"
                                          if len(foreign) > 3 else "")
        raise ValueError(
            f"{project_dir} holds files that are not the search's ({shown}); overwrite deletes "
            "only a search's own files: move them away, or use another project name or "
            "directory.")
    return ours


def make_tuner(hypermodel, kind="random", *, directory, project_name, max_trials=None,
               epochs=3, hyperband_factor=3, objective="val_accuracy", seed=None,
               distribution_strategy=None, overwrite=False, executions_per_trial=1,
               dtype_policy=None):
    """A keras-tuner tuner for ``hypermodel``: ``kind`` "random", "bayesian"
    or "hyperband" (``max_epochs=epochs``; ``max_trials``, if given, caps its
    trials). Reloads ``directory/project_name`` unless ``overwrite``; a
    reloaded search keeps its trials and continues up to ``max_trials``.
    ``overwrite`` deletes only a kerasnets search's own files
    (``search_files``). ``dtype_policy`` (e.g. "mixed_float16") is set before
    every build."""
    if kind not in TUNERS:
        raise ValueError(f"Unknown tuner {kind!r}: expected one of {', '.join(TUNERS)}.")
    if max_trials is not None and (not _is_int(max_trials) or max_trials < 1):
        raise ValueError(f"max_trials must be a positive integer; received {max_trials!r}.")
    project_dir = project_path(directory, project_name)
    if overwrite:  # not keras-tuner's: it deletes whatever the folder holds
        for path in search_files(project_dir):
            remove(path)
    common = dict(objective=objective, seed=seed, directory=directory,
                  project_name=project_name, overwrite=False,
                  distribution_strategy=distribution_strategy,
                  executions_per_trial=executions_per_trial)
    if kind == "random":
        tuner = _RandomSearch(hypermodel, max_trials=max_trials or 10, **common)
    elif kind == "bayesian":
        tuner = _BayesianOptimization(hypermodel, max_trials=max_trials or 10, **common)
    else:
        if not _is_int(hyperband_factor) or hyperband_factor < 2:
            raise ValueError(
                f"hyperband_factor must be an integer of at least 2; received "
                f"{hyperband_factor!r}.")
        tuner = _Hyperband(hypermodel, max_epochs=epochs, factor=hyperband_factor, **common)
    if max_trials is not None:
        tuner.oracle.max_trials = max_trials
    tuner.ran_trials = []
    tuner.dtype_policy = dtype_policy
    return tuner


# ------------------------------------------------------------------ search


@dataclasses.dataclass
class SearchResult:
    """What ``search`` returns.

    Attributes:
        tuner: the keras-tuner tuner (``tuner.oracle.trials`` on the chief).
        best_model: the best trial's model (its best epoch's weights), or
            None on a worker of a distributed search.
        best_hyperparameters: its ``keras_tuner.HyperParameters`` (None on a
            worker).
        model_path: where ``best_model`` was saved
            (``DIRECTORY/PROJECT/best_model.keras``), or None.
        ran_trials: ids of the trials this call ran (resumed searches skip
            finished ones).
        role: None, or "chief"/"worker" in keras-tuner's distributed mode.
        project_dir: ``DIRECTORY/PROJECT``.
        objective: the objective's name ("val_accuracy").
    """

    tuner: object
    best_model: Optional[object]
    best_hyperparameters: Optional[object]
    model_path: Optional[str]
    ran_trials: list
    role: Optional[str]
    project_dir: str
    objective: str


def _read_json(path):
    """A search's JSON file as a dict; a ValueError naming it where it is
    damaged (a killed write, a full disk, an edit)."""
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        if isinstance(state, dict):
            return state
        error = f"a JSON {type(state).__name__}, not an object"
    except (OSError, ValueError) as failure:
        error = " ".join(str(failure).split())
    raise ValueError(
        f"{path} is damaged ({error}): the search cannot resume from it; restore the file, "
        "or start the search over with overwrite (--overwrite).")


def _check_resumable(project_dir):
    """Reads every JSON file that resuming the search in ``project_dir``
    reloads (its settings, keras-tuner's oracle.json, tuner and trial.json
    files), so that a damaged one is named before anything runs."""
    for name in sorted(os.listdir(project_dir)):
        path = os.path.join(project_dir, name)
        if name.endswith(".json") and os.path.isfile(path):
            _read_json(path)
        elif name.startswith("trial_") and os.path.isfile(os.path.join(path, "trial.json")):
            _read_json(os.path.join(path, "trial.json"))


def _check_search_file(project_dir, settings, overwrite, role):
    path = os.path.join(project_dir, SEARCH_FILE)
    if os.path.exists(path) and not overwrite:
        previous = _read_json(path)
        keys = ("hypermodel", "families", "classes", "input_shape", "weights", "backbone",
                "backbones", "dataset", "tuner")
        changed = [k for k in keys if previous.get(k) != settings.get(k)]
        if changed:
            details = ", ".join(f"{k} {previous.get(k)!r} (now {settings.get(k)!r})"
                                for k in changed)
            raise ValueError(
                f"{project_dir} holds another search ({details}); use another project "
                "name or directory, or overwrite it.")
        return
    if role == "worker":
        return  # the chief writes it
    os.makedirs(project_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(settings, f, indent=2)
    os.replace(tmp, path)


def _locked(search_function):
    """A search holds its project's lock (``DIRECTORY/.PROJECT.lock``) while
    it runs: a second search of the project is refused at once, naming the
    first; the workers of a distributed search share the chief's."""

    @functools.wraps(search_function)
    def locked_search(*args, directory, project_name="kerasnets", **kwargs):
        lock = (contextlib.nullcontext() if distributed_role() == "worker" else
                rundir.locked(os.fspath(directory), f".{project_name}.lock"))
        with lock:
            return search_function(*args, directory=directory, project_name=project_name,
                                   **kwargs)

    return locked_search


@_locked
def search(
    hypermodel,
    dataset,
    *,
    directory,
    project_name="kerasnets",
    tuner="random",
    max_trials=None,
    epochs=3,
    image_size=224,
    batch_size=64,
    steps_per_epoch=None,
    validation_steps=None,
    train_split="train",
    val_split="auto",
    weights=None,
    backbone=None,
    augment=False,
    fixed=None,
    label_smoothing=0.1,
    hyperband_factor=3,
    objective="val_accuracy",
    executions_per_trial=1,
    strategy="auto",
    tpu=None,
    mixed_precision=False,
    seed=None,
    data_dir=None,
    try_gcs=False,
    cache=False,
    overwrite=False,
    callbacks=(),
    verbose="auto",
):
    """Searches hyperparameters on ``dataset`` and saves the best model.

    The Python form of ``kerasnets tune``. Running it again with the same
    ``directory`` and ``project_name`` resumes the search (see the module
    docstring, which also describes distributed tuning).

    Args:
        hypermodel: a family name (``"mobilenet"``), a list of family names
            (``HyperKerasNets`` over them), or a hypermodel of this module
            built for the dataset's classes and ``image_size``.
        dataset: tfds name or ``"folder:PATH"`` (see ``kerasnets.data``).
        directory, project_name: the search lives in
            ``directory/project_name`` (keras-tuner's layout: ``trial_*``,
            ``oracle.json``); the best model is saved there as
            ``best_model.keras``.
        tuner: "random", "bayesian" or "hyperband".
        max_trials: trials in all (default 10 for random and bayesian;
            Hyperband runs the trials its brackets need, capped by
            ``max_trials`` when given).
        epochs: per trial (Hyperband: the most any trial trains).
        image_size, batch_size (global): the usual.
        steps_per_epoch: default: training examples // batch_size.
        validation_steps: default: the whole validation split.
        train_split, val_split: splits; ``val_split="auto"`` takes the
            dataset's validation or test split, else holds out the last 10%
            of ``train_split``.
        weights, backbone: a pretrained tag or weights file (and a backbone
            builder name): search a fine-tuning (hypermodel docstrings).
        augment: the tunable augmentation (``augment_*`` hyperparameters).
        fixed: ``{name: value}``: hyperparameters held fixed.
        label_smoothing: of the loss.
        hyperband_factor: Hyperband's reduction factor.
        objective: metric to maximise/minimise ("val_accuracy", "val_loss").
        executions_per_trial: trainings averaged per trial.
        strategy: "auto", "cpu", "mirrored", "tpu", "data-parallel" (JAX:
            ``keras.distribution.DataParallel`` over this machine's devices;
            TensorFlow: "mirrored") or a strategy object: each trial trains
            under it.
        tpu: TPU name or address (``strategy="tpu"``).
        mixed_precision: False, True (float16 on GPUs, bfloat16 on TPUs and
            CPUs) or a policy name.
        seed: seeds the oracle, the input pipeline and Keras.
        data_dir, try_gcs, cache: see ``kerasnets.data.load``.
        overwrite: start over, deleting the search's own files in
            ``directory/project_name`` (``search_files``: a folder that no
            kerasnets search wrote, or that holds other files, is refused;
            in a distributed search, the chief's does; workers' is ignored).
        callbacks: Keras callbacks for every trial (deep-copyable).
        verbose: of ``model.fit``, and of the tuner's progress display.

    Returns:
        ``SearchResult``.
    """
    import tensorflow as tf

    if isinstance(strategy, str) and strategy not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {strategy!r} for a search: expected one of "
            f"{', '.join(STRATEGIES)}. To spread trials over machines use keras-tuner's "
            "chief/worker mode (kerasnets.tuner's docstring).")
    if tuner not in TUNERS:
        raise ValueError(f"Unknown tuner {tuner!r}: expected one of {', '.join(TUNERS)}.")
    for arg, value in (("epochs", epochs), ("batch_size", batch_size),
                       ("image_size", image_size), ("executions_per_trial", executions_per_trial)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{arg} must be a positive integer; received {value!r}.")
    for arg, value in (("steps_per_epoch", steps_per_epoch),
                       ("validation_steps", validation_steps)):
        if value is not None and (not _is_int(value) or value < 1):
            raise ValueError(f"{arg} must be a positive integer; received {value!r}.")
    role = distributed_role()
    if role == "worker":
        overwrite = False  # only the chief starts a distributed search over
    project_dir = project_path(directory, project_name)
    if overwrite:
        search_files(project_dir)  # refuses another folder before anything changes
    elif os.path.isdir(project_dir):
        _check_resumable(project_dir)
    if not isinstance(strategy, tf.distribute.Strategy):
        strategy = training.get_strategy(strategy, tpu=tpu)
    jax_data_parallel = isinstance(strategy, training.JaxDataParallel)
    if jax_data_parallel and strategy.num_processes > 1:
        raise ValueError(
            "A search runs data-parallel trials on one machine's devices: it has no "
            "multi-host JAX mode (unset KERAS_DISTRIBUTION_*). To use several machines, "
            "spread the trials over them with keras-tuner's chief/worker mode "
            "(kerasnets.tuner's docstring).")
    if seed is not None:
        keras.utils.set_random_seed(seed)

    train_split, val_split, held_out = data.validation_splits(
        dataset, train_split, val_split, data_dir, try_gcs)
    if val_split is None:
        raise ValueError(f"A search ranks its trials on validation images: {dataset} has "
                         "none (val_split none, or too few images to hold 10 % out); pass "
                         "a validation split with val_split / --val-split.")
    if held_out and verbose and role != "worker":
        print(f"{dataset} has no validation split: validating on {val_split} and searching "
              f"on {train_split}", flush=True)
    info = data.info(dataset, train_split, data_dir, try_gcs)
    input_shape = (image_size, image_size, 3)
    if isinstance(hypermodel, _KerasNetsHyperModel):
        if weights is not None or backbone is not None or augment or fixed:
            raise ValueError(
                "weights, backbone, augment and fixed configure the hypermodel: pass "
                "them to its constructor, not to search().")
        if hypermodel.classes != info.num_classes:
            raise ValueError(
                f"The hypermodel classifies {hypermodel.classes} classes; {dataset} "
                f"has {info.num_classes}.")
        if hypermodel.input_shape != input_shape:
            raise ValueError(
                f"The hypermodel takes {hypermodel.input_shape} images; the pipeline "
                f"makes {input_shape} (image_size={image_size}).")
    else:
        hypermodel = get_hypermodel(
            hypermodel, input_shape, info.num_classes, weights=weights, backbone=backbone,
            augmentation=True if augment else None, fixed=fixed,
            label_smoothing=label_smoothing)

    kind = training.device_kind(strategy)
    if steps_per_epoch is None:
        steps_per_epoch = max(1, training.count_examples(
            dataset, train_split, data_dir, try_gcs) // batch_size)
    if validation_steps is None and (kind == "tpu" or jax_data_parallel):
        # Whole batches only (a JAX mesh splits each batch evenly).
        validation_steps = max(1, training.count_examples(
            dataset, val_split, data_dir, try_gcs) // batch_size)
    common = dict(image_size=image_size, batch_size=batch_size,
                  preprocessing=hypermodel.pipeline_preprocessing, data_dir=data_dir,
                  try_gcs=try_gcs, seed=seed, cache=cache, num_classes=info.num_classes,
                  one_hot=True, strategy=strategy)
    train_ds = data.load(dataset, train_split, training=True, **common)
    val_ds = data.load(dataset, val_split, training=False,
                       repeat=validation_steps is not None,
                       drop_remainder=validation_steps is not None, **common)
    # Every trial is validated with precise BatchNorm statistics, as train's runs.
    statistics_ds = data.load(dataset, train_split, training=False, shuffle=True,
                              repeat=True, **common)
    callbacks = [batchnorm.precise_batch_norm(
        statistics_ds, batchnorm.steps_for(batch_size, steps_per_epoch), strategy),
        *callbacks]

    policy = training.requested_policy(mixed_precision, strategy)
    settings = dict(hypermodel.describe(), dataset=dataset, tuner=tuner,
                    train_split=train_split, val_split=val_split, image_size=image_size)
    _check_search_file(project_dir, settings, overwrite, role)
    # keras-tuner takes tf.distribute strategies only; a JAX distribution is
    # Keras' current one for the whole search instead.
    default_strategy = strategy is tf.distribute.get_strategy() or jax_data_parallel

    with training.activated(strategy):
        previous_policy = keras.config.dtype_policy()
        try:
            if policy:
                keras.config.set_dtype_policy(policy)
            search_tuner = make_tuner(
                hypermodel, tuner, directory=os.fspath(directory), project_name=project_name,
                max_trials=max_trials, epochs=epochs, hyperband_factor=hyperband_factor,
                objective=objective, seed=seed, overwrite=overwrite,
                executions_per_trial=executions_per_trial, dtype_policy=policy,
                distribution_strategy=None if default_strategy else strategy)
            with warnings.catch_warnings():
                # Checkpoints hold optimizer variables; models rebuilt to load
                # them (Hyperband's continued trials) start a new optimizer.
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                try:
                    search_tuner.search(
                        train_ds, validation_data=val_ds, epochs=epochs,
                        steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                        callbacks=list(callbacks), verbose=verbose, shuffle=False)
                except RuntimeError as error:
                    raise _failed_trials_error(error, project_dir) from error
            ran = list(getattr(search_tuner, "ran_trials", []))
            objective_name = _objective_name(search_tuner)
            if role == "worker":
                return SearchResult(search_tuner, None, None, None, ran, role, project_dir,
                                    objective_name)
            completed = [t for t in search_tuner.oracle.get_best_trials(1)
                         if t.status == "COMPLETED"]
            if not completed:
                failed = [t for t in search_tuner.oracle.trials.values() if t.message]
                cause = f"; the last failed with {_cause(failed[-1].message)}" if failed else ""
                raise RuntimeError(
                    f"No trial of {project_dir} completed{cause} (tracebacks in its "
                    "trial_*/trial.json files).")
            best_hp = completed[0].hyperparameters
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                best_model = search_tuner.get_best_models(1)[0]
            # Its optimizer's variables exist, so that the saved file loads whole.
            with strategy.scope():
                best_model.optimizer.build(best_model.trainable_variables)
            model_path = os.path.join(project_dir, BEST_MODEL_FILE)
            remove_stale_partials(model_path)  # of a killed search
            write_atomically(model_path, best_model.save, ".keras")
        finally:
            keras.config.set_dtype_policy(previous_policy)
    return SearchResult(search_tuner, best_model, best_hp, model_path, ran, role,
                        project_dir, objective_name)


def _objective_name(tuner):
    objective = tuner.oracle.objective
    return getattr(objective, "name", str(objective))


def _cause(traceback_text):
    """The line of a trial's traceback that says what went wrong: its last
    line that is neither indented nor TensorFlow's ``[[node ...]]`` note."""
    lines = [line for line in traceback_text.splitlines()
             if line.strip() and not line[0].isspace() and not line.startswith("[[")]
    return lines[-1].strip() if lines else "an unknown error"


def _failed_trials_error(error, project_dir):
    message = str(error)
    if not message.startswith("Number of consecutive failures"):
        return error
    first, _, rest = message.partition("\n")
    return RuntimeError(
        f"{first.strip().rstrip('.')}; the last failed with {_cause(rest)} (tracebacks in "
        f"{project_dir}/trial_*/trial.json).")


# ----------------------------------------------------------------- display


def _format(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def trials_table(tuner, title=None):
    """A ``rich.table.Table`` of a search's trials: status, score, epochs
    (Hyperband) and hyperparameter values, the best trial marked."""
    from rich.table import Table

    oracle = tuner.oracle
    trials = [oracle.trials[t] for t in sorted(oracle.trials, key=_trial_order)]
    objective = _objective_name(tuner)
    best = [t.trial_id for t in oracle.get_best_trials(1) if t.status == "COMPLETED"]
    names = []
    for trial in trials:
        for name in trial.hyperparameters.values:
            if name not in names and not name.startswith("tuner/"):
                names.append(name)
    hyperband = any("tuner/epochs" in t.hyperparameters.values for t in trials)
    table = Table(title=title or f"{len(trials)} trials of {tuner.project_dir}")
    table.add_column("trial", justify="right")
    table.add_column("status")
    table.add_column(objective, justify="right")
    if hyperband:
        table.add_column("epochs", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for trial in trials:
        values = trial.hyperparameters.values
        row = [("* " if trial.trial_id in best else "") + trial.trial_id,
               str(trial.status).lower(),
               "-" if trial.score is None else f"{trial.score:.4f}"]
        if hyperband:
            row.append(str(values.get("tuner/epochs", "-")))
        row += [_format(values[n]) if n in values else "-" for n in names]
        table.add_row(*row, style="bold" if trial.trial_id in best else None)
    return table


def _trial_order(trial_id):
    return (int(trial_id), trial_id) if str(trial_id).isdigit() else (float("inf"), trial_id)


def hyperparameters_table(hyperparameters, title="best hyperparameters"):
    """A ``rich.table.Table`` of one set of hyperparameter values."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("hyperparameter")
    table.add_column("value", justify="right")
    for name, value in hyperparameters.values.items():
        if not name.startswith("tuner/"):
            table.add_row(name, _format(value))
    return table


def parse_fixed(items):
    """``["alpha=0.5", "optimizer=sgd"]`` -> ``{"alpha": 0.5, "optimizer": "sgd"}``
    (``kerasnets.text.parse_assignments``: literals, true/false, else strings;
    names may be scoped, ``dpn/k_r=96``)."""
    return parse_assignments(items, what="--fix", scoped=True)
