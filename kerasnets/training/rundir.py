"""A training run's directory: what is there, and what a new ``train`` call
may do with it (nothing is changed before the plan is made).

- no run there: a new run;
- the same settings, interrupted: resume from the backup (falling back to
  the previous backup, then to the last checkpoint, when one is damaged);
- the same settings, finished: nothing to do; a larger ``epochs`` continues
  it from ``model.keras`` (weights and optimizer state);
- other settings, or a run that diverged: refused with the difference, before
  anything is written; ``overwrite=True`` starts over explicitly.

``config.json`` records the settings and the run's status ("running",
"complete", "diverged") and is written atomically.
"""

import json
import os

from kerasnets.files import partial_path, remove
from kerasnets.training.callbacks import (
    BACKUP_DIR,
    CURVES_FILE,
    HISTORY_FILE,
    LAST_CHECKPOINT,
)

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
CHECKPOINTS_DIR = "checkpoints"
RUN_FILES = (MODEL_FILE, CONFIG_FILE, HISTORY_FILE, CURVES_FILE, CHECKPOINTS_DIR, BACKUP_DIR)
# Settings that change how a run executes, not what it computes: a run may
# resume with other values.
EXECUTION_SETTINGS = {"strategy", "tpu", "data_dir", "try_gcs", "cache", "backup_every",
                      "skip_unreadable"}


class RunConflict(ValueError):
    """The output directory holds a run that this call must not change."""


def read_config(output):
    """The run's ``config.json`` as a dict, None where there is none."""
    path = os.path.join(output, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise RunConflict(
            f"{path} is not readable ({error}): the run directory is damaged; use another "
            "output, or --overwrite to start over."
        ) from error


def write_config(output, config):
    """Writes ``config.json`` atomically (a temporary file, renamed)."""
    path = os.path.join(output, CONFIG_FILE)
    temporary = partial_path(path)
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    os.replace(temporary, path)


def settings_diff(old, new):
    """``["lr: 0.1 -> 0.01", ...]`` for the settings that decide the result."""
    keys = sorted((set(old) | set(new)) - EXECUTION_SETTINGS - {"epochs"})
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def completed_epochs(output):
    """Epochs recorded in the run's history.csv (0 without one)."""
    import csv

    path = os.path.join(output, HISTORY_FILE)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return len({row["epoch"] for row in csv.DictReader(f) if row.get("epoch")})
    except (OSError, KeyError, ValueError):
        return 0


def trim_history(output, epochs):
    """Keeps the first ``epochs`` epochs of history.csv (a resume from an
    older state redoes the others; they are logged again)."""
    import csv

    path = os.path.join(output, HISTORY_FILE)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError:
        return
    if not rows:
        return
    kept = [rows[0]] + [row for row in rows[1:] if row and int(row[0]) < epochs]
    temporary = partial_path(path)
    with open(temporary, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(kept)
    os.replace(temporary, path)


def plan(output, settings, overwrite=False):
    """What ``train`` does in ``output``: ``(action, previous config)`` with
    action "new", "resume", "continue" or "complete". Raises ``RunConflict``
    (nothing changed) for a run with other settings or one that diverged."""
    present = [name for name in RUN_FILES if os.path.exists(os.path.join(output, name))]
    if overwrite:
        return "new", None
    previous = read_config(output)
    hint = "use another --output, or --overwrite to start over"
    if previous is None:
        if present:
            raise RunConflict(
                f"{output} holds files of a training run ({', '.join(present)}) but no "
                f"{CONFIG_FILE}: {hint}."
            )
        return "new", None
    old = previous.get("settings")
    if old is None:  # written by kerasnets before settings were recorded
        return "resume", previous
    differences = settings_diff(old, settings)
    if differences:
        shown = "; ".join(differences[:6]) + (
            f"; and {len(differences) - 6} more" if len(differences) > 6 else "")
        raise RunConflict(f"{output} holds a run with other settings ({shown}): {hint}.")
    status = previous.get("status", "running")
    if status == "diverged":
        raise RunConflict(
            f"The run in {output} diverged ({previous.get('failure', 'a non-finite loss')}); "
            f"running it again would too: change its settings (a lower --lr) and {hint}."
        )
    done, epochs = previous.get("completed_epochs", 0), settings["epochs"]
    if status == "complete":
        if epochs == done:
            return "complete", previous
        if epochs < done:
            raise RunConflict(
                f"The run in {output} has trained {done} epochs already; --epochs {epochs} "
                f"would not change it (more epochs continue it; {hint})."
            )
        return "continue", previous
    if old.get("epochs") != epochs:
        raise RunConflict(
            f"The interrupted run in {output} was started for {old.get('epochs')} epochs; "
            f"resume it with --epochs {old.get('epochs')} (its learning-rate schedule "
            f"depends on it), or {hint}."
        )
    return "resume", previous


def clear(output):
    """Removes a previous run's files (``overwrite``); other files stay."""
    for name in RUN_FILES:
        remove(os.path.join(output, name))


def _readable_h5(path):
    import h5py

    try:
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, item: getattr(item, "shape", None))
        return True
    except Exception:  # noqa: BLE001 - truncated, garbage: not readable
        return False


def check_backup(output):
    """Makes a damaged backup harmless before ``fit`` reads it.

    Keras' ``BackupAndRestore`` resumes from ``backup/latest.weights.h5`` (and
    ``.bkp``, the previous one, where the latest does not open). A backup
    that cannot be read is moved aside (``.damaged``); then the previous
    backup is used, or, failing that, the last epoch checkpoint. Returns
    ``(checkpoint path, epoch)`` to resume from when the backup is gone (the
    optimizer state then restarts), else None; raises ``RunConflict`` saying
    how to recover when nothing readable is left.
    """
    backup = os.path.join(output, BACKUP_DIR)
    latest = os.path.join(backup, "latest.weights.h5")
    previous = latest + ".bkp"
    metadata = os.path.join(backup, "training_metadata.json")
    if not os.path.exists(latest) or _readable_h5(latest):
        return None
    os.replace(latest, latest + ".damaged")
    damaged = [latest]
    if os.path.exists(previous) and _readable_h5(previous):
        os.replace(previous, latest)
        if os.path.exists(metadata + ".bkp"):
            os.replace(metadata + ".bkp", metadata)
        try:
            with open(metadata, encoding="utf-8") as f:
                trim_history(output, json.load(f)["epoch"])  # epochs it will redo
        except (OSError, ValueError, KeyError):
            pass
        warn(f"the backup {latest} is damaged (moved to .damaged); resuming from the "
             "previous backup")
        return None
    if os.path.exists(previous):
        os.replace(previous, previous + ".damaged")
        damaged.append(previous)
    remove(metadata)
    checkpoint = os.path.join(output, CHECKPOINTS_DIR, LAST_CHECKPOINT)
    epoch = completed_epochs(output)
    if os.path.exists(checkpoint) and _readable_h5(checkpoint) and epoch:
        warn(f"the backup {latest} is damaged (moved to .damaged); resuming from "
             f"{checkpoint} after epoch {epoch} (the optimizer state restarts)")
        return checkpoint, epoch
    raise RunConflict(
        f"The backup {', '.join(damaged)} of the run in {output} is damaged (moved to "
        ".damaged) and no readable epoch checkpoint is left to resume from: rerun with "
        "--overwrite to start over."
    )


def warn(message):
    import sys

    print(f"kerasnets: {message}", file=sys.stderr)
