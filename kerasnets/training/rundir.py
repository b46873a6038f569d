"""A training run's folder and its lifecycle, in one place.

The states of a run folder (``state``):

- ``new``: no run there;
- ``locked``: a live process works in it (``.lock`` names its pid and host):
  every other ``train`` is refused at once, naming it;
- ``running``: training, or interrupted: a rerun resumes from the backup
  (falling back to the previous backup, then to the last checkpoint, when one
  is damaged), or, for a continuation killed before its first backup, from
  the ``model.keras`` it continues;
- ``finishing``: every epoch trained (the backup holds the last one);
  ``model.keras`` is being written;
- ``complete``: ``model.keras`` written; a rerun changes nothing, a larger
  ``epochs`` continues it (back to ``running``);
- ``diverged``: a non-finite loss stopped it: refused until settings change.

The steps that move a folder from one state to the next, each restartable
(a kill or a full disk at any point leaves a state the same command goes on
from, and nothing half-written where a whole file was):

- ``locked``: takes the lock (a stale one of a dead process on this host is
  taken over), and gives it back, with any folder it created, if empty;
- ``plan``: reads the state and decides what the call does ("new",
  "resume", "continue", "complete"), or refuses (``RunConflict``): other
  settings, a diverged run; nothing is written;
- ``start``: -> running: clears an ``overwrite``, removes what killed
  processes left, picks the point to resume from (the history is cut there)
  and writes ``config.json``;
- (``model.fit`` with the callbacks of ``callbacks.make_callbacks``: history
  row, backup, checkpoints after every epoch);
- ``finish``: running -> finishing -> complete: ``model.keras`` written
  whole, then the status, then the backup removed;
- ``diverge``: running -> diverged; ``abandon``: a new run that failed before
  its first epoch leaves nothing behind.

``config.json`` records the settings and the status, written atomically.
"""

import contextlib
import json
import os
import socket

from kerasnets.files import (
    WriteError,
    pid_alive,
    remove,
    remove_stale_partials,
    write_atomically,
)
from kerasnets.training.callbacks import (
    BACKUP_DIR,
    BEST_CHECKPOINT,
    CURVES_FILE,
    HISTORY_FILE,
    LAST_CHECKPOINT,
)

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
CHECKPOINTS_DIR = "checkpoints"
LOCK_FILE = ".lock"
RUN_FILES = (MODEL_FILE, CONFIG_FILE, HISTORY_FILE, CURVES_FILE, CHECKPOINTS_DIR, BACKUP_DIR)
STATES = ("new", "locked", "running", "finishing", "complete", "diverged")
# Settings that change how a run executes, not what it computes: a run may
# resume with other values.
EXECUTION_SETTINGS = {"strategy", "tpu", "data_dir", "try_gcs", "cache", "backup_every",
                      "skip_unreadable", "peer_timeout"}


class RunConflict(ValueError):
    """The output directory holds a run that this call must not change."""


class RunLocked(RunConflict):
    """Another live process works in the folder."""


# ------------------------------------------------------------------ state


def state(output):
    """The state of the run folder ``output``: one of ``STATES``."""
    holder = _lock_holder(os.path.join(output, LOCK_FILE))
    if holder is not None and not _stale(holder):
        return "locked"
    config = read_config(output)
    return "new" if config is None else config.get("status", "running")


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
    write_atomically(os.path.join(output, CONFIG_FILE),
                     lambda temporary: _write_json(temporary, config))


def _write_json(path, value, mode="w"):
    with open(path, mode, encoding="utf-8") as f:
        json.dump(value, f, indent=2)


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
    kept = [rows[0]] + [row for row in rows[1:]
                        if row and row[0].isdigit() and int(row[0]) < epochs]
    if kept != rows:
        write_atomically(path, lambda temporary: _write_rows(temporary, kept))


def _write_rows(path, rows):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


# ------------------------------------------------------------------- lock


@contextlib.contextmanager
def locked(folder, name=LOCK_FILE):
    """Holds ``folder``'s lock (the file ``name`` in it: pid and host) while
    the block runs; creates the folder where missing and, on the way out,
    removes the lock and the folders it created that are still empty. A lock
    whose process is gone (same host, dead pid) is taken over; a live one
    raises ``RunLocked`` at once, naming it."""
    folder = os.fspath(folder)
    if folder and os.path.exists(folder) and not os.path.isdir(folder):
        raise RunConflict(f"{folder} is a file, not a folder: name a folder for the run.")
    created = _make_folders(folder)
    path = os.path.join(folder, name)
    try:
        _take_lock(path, folder)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield
    finally:
        holder = _lock_holder(path)
        if holder is not None and holder.get("pid") == os.getpid():
            remove(path)
        _remove_empty(created)


def _make_folders(folder):
    """Creates ``folder`` and its missing parents; returns those it created,
    deepest first."""
    created, path = [], os.path.abspath(folder)
    while not os.path.exists(path):
        created.append(path)
        path = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise RunConflict(f"Cannot create the folder {folder} "
                          f"({error.strerror or error}): name a writable folder.") from None
    return created


def _remove_empty(folders):
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            return


def _take_lock(path, folder):
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(path) or {}
            if not _stale(holder):
                raise RunLocked(
                    f"{folder} is in use by process {holder.get('pid')} on "
                    f"{holder.get('host')}: wait for it to end, or use another folder (if "
                    f"that process no longer runs, delete {path})."
                ) from None
            remove(path)  # a killed process's: taken over
            continue
        except OSError as error:
            raise RunConflict(f"Cannot write in {folder} ({error.strerror or error}): "
                              "name a writable folder.") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(me, f)
        except OSError as error:
            remove(path)
            raise WriteError(path, error) from None
        return
    raise RunLocked(f"{folder} is being locked by other processes: try again.")


def _lock_holder(path):
    """The lock's {"pid", "host"}; {} if unreadable; None where there is none."""
    try:
        with open(path, encoding="utf-8") as f:
            holder = json.load(f)
        return holder if isinstance(holder, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _stale(holder):
    """Left by a process that is gone: on this host with a dead pid, or never
    written whole (killed while taking it)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool):
        return True
    return holder.get("host") == socket.gethostname() and not pid_alive(pid)


# ------------------------------------------------------------------ steps


def plan(output, settings, overwrite=False):
    """What ``train`` does in ``output``: ``(action, previous config)`` with
    action "new", "resume" (running or finishing: go on from where it
    stopped), "continue" (complete, more epochs) or "complete" (nothing to
    do). Raises ``RunConflict`` (nothing changed) for a run with other
    settings or one that diverged."""
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


def start(directory, action, previous, run_config, *, overwrite=False, output=None):
    """new/running/complete -> running. Clears the previous run
    (``overwrite``), removes the temporaries of killed processes, picks the
    point to resume from and cuts the history there (the epochs after it are
    trained again, and logged once), then writes ``config.json``.

    Returns ``(source, path, epoch)``: "start" (epoch 0), "backup" (Keras'
    ``BackupAndRestore`` restores it), "checkpoint" (weights only, the
    optimizer restarts) or "model" (the ``model.keras`` a continuation goes
    on from: weights and optimizer state; ``output``'s, the chief's, where
    ``directory`` is a worker's).
    """
    if overwrite:
        clear(directory)
    os.makedirs(directory, exist_ok=True)
    _remove_leftovers(directory)
    model = os.path.join(output or directory, MODEL_FILE)
    point = ("start", None, 0)
    if action == "continue":
        point = ("model", model, previous["completed_epochs"])
    elif action == "resume":
        point = _resume_point(directory, previous, model)
    if action != "new":
        trim_history(directory, point[2])
    write_config(directory, dict(run_config, status="running"))
    return point


def _resume_point(directory, previous, model):
    checkpoint = check_backup(directory)
    if checkpoint is not None:
        return ("checkpoint", *checkpoint)
    if os.path.exists(os.path.join(directory, BACKUP_DIR, "latest.weights.h5")):
        return ("backup", None, backup_epoch(directory))
    # No backup yet: a continuation killed in its first new epoch goes on
    # from the model it continues; anything else starts again.
    done = previous.get("completed_epochs", 0)
    if done and os.path.exists(model):
        return ("model", model, done)
    return ("start", None, 0)


def backup_epoch(directory):
    """The epoch (from 0) the backup in ``directory`` resumes at (Keras'
    ``BackupAndRestore`` metadata); 0 without a readable one."""
    path = os.path.join(directory, BACKUP_DIR, "training_metadata.json")
    try:
        with open(path, encoding="utf-8") as f:
            return int(json.load(f)["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _remove_leftovers(directory):
    """The temporaries of killed processes: ``.NAME.partial-PID-*`` beside
    every file of the run."""
    names = [MODEL_FILE, CONFIG_FILE, HISTORY_FILE, CURVES_FILE,
             os.path.join(CHECKPOINTS_DIR, LAST_CHECKPOINT),
             os.path.join(CHECKPOINTS_DIR, BEST_CHECKPOINT)]
    names += [os.path.join(BACKUP_DIR, name) for name in (
        "latest.weights.h5", "latest.weights.h5.bkp", "training_metadata.json",
        "training_metadata.json.bkp")]
    for name in names:
        remove_stale_partials(os.path.join(directory, name))


def finish(directory, run_config, save_model):
    """running -> finishing -> complete, each step restartable: the status
    says every epoch is trained (the backup holds the last one: a rerun
    resumes there and trains nothing); ``save_model(path)`` writes
    ``model.keras`` whole (a temporary, renamed); then the status; then the
    backup is removed."""
    write_config(directory, dict(run_config, status="finishing"))
    write_atomically(os.path.join(directory, MODEL_FILE), save_model, ".keras")
    run_config.update(status="complete", completed_epochs=run_config["epochs"])
    write_config(directory, run_config)
    remove(os.path.join(directory, BACKUP_DIR))


def diverge(directory, run_config, failure):
    """running -> diverged."""
    run_config.update(status="diverged", failure=str(failure))
    write_config(directory, run_config)


def abandon(directory):
    """running -> new, for a new run that failed before its first epoch was
    recorded (a bad image, an interrupt): its files go (the folder too, when
    ``locked`` created it)."""
    if completed_epochs(directory) or os.path.exists(os.path.join(directory, BACKUP_DIR)):
        return
    for name in (CONFIG_FILE, HISTORY_FILE, CURVES_FILE):
        remove(os.path.join(directory, name))
    with contextlib.suppress(OSError):
        os.rmdir(os.path.join(directory, CHECKPOINTS_DIR))


def stopped(error, output):
    """The error of a run stopped by a failed write (a full disk), in one
    line: what failed and that the same command goes on."""
    reason = str(error) if isinstance(error, WriteError) else (
        f"Writing in {output} failed ({getattr(error, 'strerror', None) or error}).")
    return OSError(f"{reason} The run stopped: free space (or make {output} writable) and "
                   "run the same command again; it goes on from its last whole epoch.")


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
