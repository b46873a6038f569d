"""The callbacks of a training run, all writing into its directory: backup
(resume), last/best checkpoints, CSV history and training curves. Every
weights file is written whole or not at all (a temporary, renamed): a kill or
a full disk keeps the previous one."""

import contextlib
import errno
import json
import math
import os
import warnings

from kerasnets.files import write_atomically

HISTORY_FILE = "history.csv"
CURVES_FILE = "training_curves.png"
BACKUP_DIR = "backup"
LAST_CHECKPOINT = "last.weights.h5"
BEST_CHECKPOINT = "best.weights.h5"


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
    write_atomically(path, figure.savefig, ".png")
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


def save_weights(model, path):
    """``model.save_weights(path)`` (with the optimizer's state), whole or not
    at all: a failed write raises ``WriteError`` and keeps the previous file."""
    write_atomically(path, lambda temporary: _save_weights_to(model, temporary),
                     ".weights.h5")


def _save_weights_to(model, path):
    _check_space(model, path)
    try:
        model.save_weights(path)
    except BaseException:
        _close_h5(path)  # Keras leaves it open: h5py would fail again at exit
        raise


def _check_space(model, path):
    """Raises ENOSPC before HDF5 writes a weights file the disk cannot hold
    (HDF5 meets a full disk badly: errors at every object it frees, then a
    crash)."""
    import numpy as np

    if not hasattr(os, "statvfs"):
        return
    optimizer = getattr(model, "optimizer", None)
    variables = list(model.weights) + list(getattr(optimizer, "variables", None) or [])
    need = 65536
    for variable in variables:
        try:
            itemsize = np.dtype(str(variable.dtype)).itemsize
        except TypeError:  # bfloat16
            itemsize = 2
        need += int(np.prod(variable.shape)) * itemsize + 2048  # and its HDF5 headers
    stat = os.statvfs(os.path.dirname(os.path.abspath(path)))
    if stat.f_bavail * stat.f_frsize < need:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


def _close_h5(path):
    import h5py

    for file_id in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE):
        with contextlib.suppress(Exception):
            if os.fsdecode(file_id.name) == path:
                file_id.close()


def _checkpoint(path, monitor=None):
    import keras

    class Checkpoint(keras.callbacks.Callback):
        """Saves the weights at every epoch's end (with ``monitor``: when it
        is the highest yet), like ``ModelCheckpoint`` but whole or not at
        all."""

        def __init__(self):
            super().__init__()
            self.best = -math.inf

        def on_epoch_end(self, epoch, logs=None):
            if monitor is not None:
                value = (logs or {}).get(monitor)
                if value is None or not value > self.best:
                    return
                self.best = value
            save_weights(self.model, path)

    return Checkpoint()


def _backup(directory, save_freq):
    import keras

    class Backup(keras.callbacks.BackupAndRestore):
        """``BackupAndRestore`` writing whole files: the new backup goes into a
        temporary; the previous one becomes ``.bkp`` (a hard link, no extra
        space) only once the new one is complete. It is kept when training
        ends: the run removes it once ``model.keras`` is written."""

        def _save_model(self):
            os.makedirs(self.backup_dir, exist_ok=True)
            pairs = ((self._weights_path, self._prev_weights_path),
                     (self._training_metadata_path, self._prev_training_metadata_path))

            def write(temporary):
                _save_weights_to(self.model, temporary)
                for current, previous in pairs:
                    if os.path.exists(current):
                        write_atomically(previous, lambda t, c=current: _link(c, t))

            write_atomically(self._weights_path, write, ".weights.h5")
            metadata = json.dumps({"epoch": self._current_epoch,
                                   "batch": self._last_batch_seen})
            write_atomically(self._training_metadata_path,
                             lambda t: _write_text(t, metadata))

    return Backup(directory, save_freq=save_freq, double_checkpoint=True,
                  delete_checkpoint=False)


def _link(source, target):
    try:
        os.link(source, target)
    except OSError:  # no hard links here: a copy
        import shutil

        shutil.copyfile(source, target)


def _write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


class NonFiniteLoss(ArithmeticError):
    """Training produced a non-finite loss (or weights); see ``FiniteGuard``."""

    def __init__(self, epoch, step, what):
        super().__init__(f"{what} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.what = epoch, step, what


def _finite_guard(check_every):
    import keras
    import numpy as np

    class FiniteGuard(keras.callbacks.Callback):
        """Stops training at the first non-finite loss, and before any
        checkpoint or backup is written from non-finite weights: it runs
        first, and raises ``NonFiniteLoss`` (so no later callback sees the
        step or epoch)."""

        def __init__(self):
            super().__init__()
            self.epoch = 0

        def _weights_finite(self):
            return all(np.isfinite(keras.ops.convert_to_numpy(v)).all()
                       for v in self.model.weights)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                raise NonFiniteLoss(self.epoch + 1, batch + 1, f"the loss became {float(loss)}")
            if check_every and (batch + 1) % check_every == 0 and not self._weights_finite():
                raise NonFiniteLoss(self.epoch + 1, batch + 1, "the weights became non-finite")

        def on_epoch_end(self, epoch, logs=None):
            if not self._weights_finite():
                raise NonFiniteLoss(epoch + 1, "end", "the weights became non-finite")

    return FiniteGuard()


def make_callbacks(directory, *, backup_every="epoch", validation=True, title=None,
                   plot=True, batch_norm=None):
    """The recipe's callbacks, all writing under ``directory``, in this order:
    a guard that stops at a non-finite loss before anything is saved from it,
    ``batch_norm`` (``batchnorm.precise_batch_norm``: the statistics every
    validation and save sees), the CSV history (an epoch's row is written
    before anything else can fail), the backup (resume), the last/best
    checkpoints and the curves. A rerun resumes from the backup and drops the
    history rows after it, so the history stays whole whichever write fails."""
    checkpoints = os.path.join(directory, "checkpoints")
    os.makedirs(checkpoints, exist_ok=True)
    csv_path = os.path.join(directory, HISTORY_FILE)
    callbacks = [
        _finite_guard(backup_every if isinstance(backup_every, int) else None),
        *([batch_norm] if batch_norm is not None else []),
        _history_logger(csv_path),
        _backup(os.path.join(directory, BACKUP_DIR), backup_every),
        _checkpoint(os.path.join(checkpoints, LAST_CHECKPOINT)),
    ]
    if validation:
        callbacks.append(_checkpoint(os.path.join(checkpoints, BEST_CHECKPOINT),
                                     monitor="val_accuracy"))
    if plot:
        callbacks.append(_curves_callback(csv_path, os.path.join(directory, CURVES_FILE),
                                          title))
    return callbacks


def _history_logger(path):
    import keras

    return keras.callbacks.CSVLogger(path, append=True)
