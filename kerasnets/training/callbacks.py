"""The callbacks of a training run, all writing into its directory: backup
(resume), last/best checkpoints, CSV history and training curves."""

import math
import os
import warnings

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
    """The recipe's callbacks, all writing under ``directory``: first a guard
    that stops at a non-finite loss before anything is saved from it, then
    ``batch_norm`` (``batchnorm.precise_batch_norm``: the statistics every
    validation and save sees), the backup (resume), the last/best
    checkpoints, the CSV history and the curves."""
    import keras

    checkpoints = os.path.join(directory, "checkpoints")
    os.makedirs(checkpoints, exist_ok=True)
    callbacks = [
        _finite_guard(backup_every if isinstance(backup_every, int) else None),
        *([batch_norm] if batch_norm is not None else []),
        # Before the checkpoints, so that it has saved before anything else
        # reacts to an epoch; the previous backup is kept (``.bkp``) in case
        # the latest is damaged.
        keras.callbacks.BackupAndRestore(os.path.join(directory, BACKUP_DIR),
                                         save_freq=backup_every, double_checkpoint=True),
        keras.callbacks.ModelCheckpoint(os.path.join(checkpoints, LAST_CHECKPOINT),
                                        save_weights_only=True),
    ]
    if validation:
        callbacks.append(keras.callbacks.ModelCheckpoint(
            os.path.join(checkpoints, BEST_CHECKPOINT), save_weights_only=True,
            monitor="val_accuracy", mode="max", save_best_only=True))
    csv_path = os.path.join(directory, HISTORY_FILE)
    callbacks.append(keras.callbacks.CSVLogger(csv_path, append=True))
    if plot:
        callbacks.append(_curves_callback(csv_path, os.path.join(directory, CURVES_FILE),
                                          title))
    return callbacks
