"""The callbacks of a training run, all writing into its directory: backup
(resume), last/best checkpoints, CSV history and training curves."""

import os
import warnings

HISTORY_FILE = "history.csv"
CURVES_FILE = "training_curves.png"


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
