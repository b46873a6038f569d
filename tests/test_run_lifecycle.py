"""The lifecycle of a run folder (issue 20, cases 2-5): a continuation
killed before its first backup, a kill or a full disk while the run is being
finished or checkpointed, two processes on one folder, and the leftovers and
names around them. The states and steps: kerasnets/training/rundir.py."""

import errno
import gc
import json
import os
import socket
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest

from kerasnets import training
from kerasnets.files import partial_path, remove_stale_partials
from kerasnets.training import rundir
from tests.imagefolders import make_image_folder
from tests.test_faults import FailAt, one_line, run_cli, snapshot
from tests.train_worker import MODEL, MODEL_KWARGS

RECIPE = dict(epochs=1, batch_size=8, image_size=32, steps_per_epoch=1, lr=0.05,
              weight_decay=0.0, seed=3, val_split=None, strategy="cpu", verbose=0,
              model_kwargs=MODEL_KWARGS)


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    root = tmp_path_factory.mktemp("lifecycle_colours")
    make_image_folder(str(root), per_class=4, formats=("png",))
    return "folder:" + str(root)


def epochs_in_history(output):
    rows = open(os.path.join(output, "history.csv")).read().splitlines()[1:]
    return [r.split(",")[0] for r in rows]


def status(output):
    return json.load(open(os.path.join(output, "config.json")))["status"]


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def partials(folder):
    return sorted(name for _, _, files in os.walk(folder) for name in files
                  if ".partial-" in name)


# ------------------------------------------------- case 2: continuation


@pytest.mark.heavy
def test_continuation_killed_before_its_first_backup_resumes_where_it_stopped(
        colours, tmp_path):
    output = str(tmp_path / "run")
    training.train(MODEL, colours, output=output, **dict(RECIPE, epochs=2))
    finished = keras.saving.load_model(os.path.join(output, "model.keras"))
    with pytest.raises(KeyboardInterrupt):  # killed during epoch 3
        training.train(MODEL, colours, output=output, callbacks=[FailAt(2, 0)],
                       **dict(RECIPE, epochs=4))
    started = []

    class Epochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            started.append(epoch)
            if epoch == 2:  # the state the continuation went on from
                for a, b in zip(self.model.get_weights(), finished.get_weights()):
                    np.testing.assert_array_equal(a, b)

    result = training.train(MODEL, colours, output=output, callbacks=[Epochs()],
                            **dict(RECIPE, epochs=4))
    assert result.status == "resumed" and started == [2, 3]
    assert epochs_in_history(output) == ["0", "1", "2", "3"]
    model = keras.saving.load_model(os.path.join(output, "model.keras"))
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 4


# ------------------------------------ cases 3 and 5: finishing, full disk


def full_disk_at(monkeypatch, name):
    """The next save to a temporary of ``name`` writes part of the file, then
    fails with ENOSPC (as a full disk does)."""
    real_create = h5py.Group.create_dataset
    real_save = keras.Model.save

    def create_dataset(group, *args, **kwargs):
        result = real_create(group, *args, **kwargs)
        if f".{name}.partial-" in group.file.filename:
            raise OSError(errno.ENOSPC, "No space left on device")
        return result

    def save(model, path, *args, **kwargs):
        if f".{name}.partial-" in str(path):
            open(path, "wb").write(b"PK\x03\x04 half a zip")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(model, path, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", create_dataset)
    monkeypatch.setattr(keras.Model, "save", save)


def test_full_disk_while_checkpointing_keeps_the_last_good_one_and_resumes(
        colours, tmp_path, monkeypatch, capfd):
    output = str(tmp_path / "run")
    last = os.path.join(output, "checkpoints", "last.weights.h5")

    class FullDiskAtEpoch2(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                self.kept = open(last, "rb").read()
                full_disk_at(monkeypatch, "last.weights.h5")

    full = FullDiskAtEpoch2()
    with pytest.raises(OSError) as info:
        training.train(MODEL, colours, output=output, callbacks=[full],
                       **dict(RECIPE, epochs=3))
    monkeypatch.undo()
    message = str(info.value)
    assert message.startswith(f"Could not write {last} (No space left on device)")
    assert "run the same command again" in message and "[Errno" not in message
    assert open(last, "rb").read() == full.kept  # the epoch-1 checkpoint, whole
    assert epochs_in_history(output) == ["0", "1"]  # epoch 2's row is kept
    assert partials(output) == []
    gc.collect()  # no h5py complaints about a file left open
    assert "Exception ignored" not in capfd.readouterr().err
    result = training.train(MODEL, colours, output=output, **dict(RECIPE, epochs=3))
    assert result.status == "resumed" and len(result.history["loss"]) == 1
    assert epochs_in_history(output) == ["0", "1", "2"]


def test_a_disk_too_full_for_a_checkpoint_is_refused_before_hdf5_writes(tmp_path,
                                                                         monkeypatch):
    from kerasnets.files import WriteError
    from kerasnets.training.callbacks import save_weights
    from tests.weights.test_loading import tiny_builder

    path = tmp_path / "last.weights.h5"
    path.write_bytes(b"the previous checkpoint")
    opened = []
    monkeypatch.setattr(h5py, "File", lambda *a, **k: opened.append(a) or 1 / 0)
    monkeypatch.setattr(os, "statvfs", lambda p: os.statvfs_result((4096,) * 2 + (0,) * 8))
    with pytest.raises(WriteError, match="No space left on device"):
        save_weights(tiny_builder(), str(path))
    assert opened == [] and path.read_bytes() == b"the previous checkpoint"
    assert os.listdir(tmp_path) == ["last.weights.h5"]


@pytest.mark.parametrize("fault", ["kill", pytest.param("full disk", marks=pytest.mark.heavy)])
def test_fault_while_saving_model_keras_is_finished_by_the_rerun(
        colours, tmp_path, monkeypatch, fault):
    output = str(tmp_path / "run")
    settings = dict(RECIPE, epochs=2)
    real_save = keras.Model.save
    if fault == "kill":
        dead = str(dead_pid())

        def save(model, path, *args, **kwargs):
            open(path, "wb").write(b"PK\x03\x04 half a zip")
            # What a killed process leaves: its temporary.
            os.link(path, path.replace(f"-{os.getpid()}-", f"-{dead}-"))
            raise KeyboardInterrupt("killed")

        monkeypatch.setattr(keras.Model, "save", save)
    else:
        full_disk_at(monkeypatch, "model.keras")
    with pytest.raises(KeyboardInterrupt if fault == "kill" else OSError) as info:
        training.train(MODEL, colours, output=output, **settings)
    monkeypatch.undo()
    if fault == "full disk":
        assert "Could not write" in str(info.value) and "model.keras" in str(info.value)
    assert keras.Model.save is real_save
    assert status(output) == "finishing" and not os.path.exists(
        os.path.join(output, "model.keras"))
    assert len(partials(output)) == (1 if fault == "kill" else 0)
    before = snapshot(os.path.join(output, "checkpoints"))
    history = open(os.path.join(output, "history.csv")).read()

    result = training.train(MODEL, colours, output=output, **settings)
    assert result.status == "resumed" and result.history == {}  # nothing retrained
    assert snapshot(os.path.join(output, "checkpoints")) == before
    assert open(os.path.join(output, "history.csv")).read() == history
    assert status(output) == "complete" and partials(output) == []
    assert not os.path.exists(os.path.join(output, "backup"))
    assert training.train(MODEL, colours, output=output, **settings).status == "complete"


# ------------------------------------------------------------- case 4: lock


def hold_lock(folder, pid, host=None):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, ".lock"), "w") as f:
        json.dump({"pid": pid, "host": host or socket.gethostname()}, f)


def test_a_run_folder_in_use_is_refused_at_once_naming_its_process(colours, tmp_path,
                                                                   capsys):
    output = tmp_path / "run"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        hold_lock(output, sleeper.pid)
        before = snapshot(output)
        with pytest.raises(training.RunConflict) as info:
            training.train(MODEL, colours, output=str(output), **RECIPE)
        assert f"process {sleeper.pid} on {socket.gethostname()}" in str(info.value)
        code, _, err = run_cli(capsys, "train", "--model", MODEL, "--dataset", colours,
                               "--model-arg", "depth=7", "--model-arg", "growth_rate=4",
                               "--epochs", "1", "--batch-size", "8", "--image-size", "32",
                               "--strategy", "cpu", "--output", output)
        assert code == 1 and f"in use by process {sleeper.pid}" in one_line(err)
        assert snapshot(output) == before
    finally:
        sleeper.kill()
        sleeper.wait()
    # Another host's lock cannot be checked: refused, saying how to clear it.
    hold_lock(output, 1, host="elsewhere")
    with pytest.raises(training.RunConflict, match=r"on elsewhere.*delete .*\.lock"):
        training.train(MODEL, colours, output=str(output), **RECIPE)


@pytest.mark.heavy
def test_a_stale_lock_is_taken_over_and_released(tmp_path):
    folder = str(tmp_path / "run")
    hold_lock(folder, dead_pid())  # a killed run's
    with rundir.locked(folder):
        holder = json.load(open(os.path.join(folder, ".lock")))
        assert holder == {"pid": os.getpid(), "host": socket.gethostname()}
        assert rundir.state(folder) == "locked"
        with pytest.raises(rundir.RunLocked):  # not even by the same process
            with rundir.locked(folder):
                pass
    assert os.listdir(folder) == [] and rundir.state(folder) == "new"
    hold_lock(folder, os.getpid())
    open(os.path.join(folder, ".lock"), "w").write("")  # killed while taking it
    with rundir.locked(folder):
        pass


def test_a_project_searched_by_another_process_is_refused(colours, tmp_path):
    from kerasnets.tuner import search

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        hold_lock(str(tmp_path / "search"), sleeper.pid)
        os.rename(tmp_path / "search" / ".lock", tmp_path / "search" / ".proj.lock")
        with pytest.raises(rundir.RunLocked, match=f"process {sleeper.pid}"):
            search("mobilenet", colours, directory=str(tmp_path / "search"),
                   project_name="proj", image_size=32, batch_size=8, strategy="cpu")
        assert os.listdir(tmp_path / "search") == [".proj.lock"]
    finally:
        sleeper.kill()
        sleeper.wait()


# ----------------------------------------------------- leftovers and names


def test_failed_train_leaves_no_folder_it_created(tmp_path, capsys):
    images = tmp_path / "images"
    make_image_folder(str(images), per_class=2, classes=((200, 0, 0), (0, 200, 0)))
    for image in images.glob("*/*.png"):
        image.write_bytes(b"\x89PNG broken")
    common = ("train", "--model", MODEL, "--model-arg", "depth=7", "--model-arg",
              "growth_rate=4", "--image-size", "32", "--batch-size", "2", "--strategy",
              "cpu", "--val-split", "none", "--output", tmp_path / "new" / "run", "--dataset")
    code, _, err = run_cli(capsys, *common, f"folder:{tmp_path / 'missing'}")
    assert code == 1 and "does not exist" in one_line(err)
    assert not (tmp_path / "new").exists()
    code, _, err = run_cli(capsys, *common, f"folder:{images}")  # fails in the first step
    assert code == 1 and "cannot be decoded" in err.strip().splitlines()[-1]
    assert not (tmp_path / "new").exists()


def test_output_that_is_empty_or_a_file_is_one_clear_line(colours, tmp_path, capsys):
    common = ("train", "--model", MODEL, "--dataset", colours, "--model-arg", "depth=7",
              "--model-arg", "growth_rate=4", "--strategy", "cpu", "--output")
    code, _, err = run_cli(capsys, *common, "")
    assert code == 2 and "output must name a folder" in one_line(err)
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    code, _, err = run_cli(capsys, *common, afile)
    line = one_line(err)
    assert code == 1 and f"{afile} is a file, not a folder" in line and "Errno" not in line
    assert afile.read_text() == "mine"


def test_temporaries_of_long_names_stay_within_name_max(tmp_path):
    from kerasnets.files import write_atomically

    path = tmp_path / ("m" * 240 + ".weights.h5")
    temporary = partial_path(path, ".weights.h5")
    assert len(os.path.basename(temporary)) < 160
    write_atomically(path, lambda t: open(t, "w").write("whole"), ".weights.h5")
    assert path.read_text() == "whole"
    dead = tmp_path / os.path.basename(temporary).replace(f"-{os.getpid()}-",
                                                          f"-{dead_pid()}-")
    dead.write_text("half")
    assert remove_stale_partials(path) == [str(dead)]


@pytest.mark.heavy
def test_run_with_a_long_output_name_and_old_leftovers(colours, tmp_path):
    output = str(tmp_path / ("r" * 230))
    with pytest.raises(KeyboardInterrupt):
        training.train(MODEL, colours, output=output, callbacks=[FailAt(1, 0)],
                       **dict(RECIPE, epochs=2))
    pid = dead_pid()
    for name in ("model.keras", "checkpoints/last.weights.h5", "config.json"):
        folder, base = os.path.split(os.path.join(output, name))
        open(os.path.join(folder, f".{base}.partial-{pid}-abcd1234.tmp"), "w").write("half")
    result = training.train(MODEL, colours, output=output, **dict(RECIPE, epochs=2))
    assert result.status == "resumed" and partials(output) == []
