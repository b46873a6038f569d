"""Nothing lost (issue 15): training runs, the weights cache and the command
line under faults and bad input. Each test is one fault: what kerasnets must
refuse, keep or say."""

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets import cli, data, training
from kerasnets.weights import loading
from tests.imagefolders import make_image_folder
from tests.train_worker import MODEL, MODEL_KWARGS
from tests.weights.test_cache import serve
from tests.weights.test_loading import save_safetensors, tiny_builder, tiny_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = dict(epochs=1, batch_size=8, image_size=32, steps_per_epoch=2, lr=0.05,
              weight_decay=0.0, seed=3, val_split=None, strategy="cpu", verbose=0,
              model_kwargs=MODEL_KWARGS)


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults_colours")
    make_image_folder(str(root), per_class=8, formats=("png", "jpg"))
    return "folder:" + str(root)


def snapshot(directory):
    """{relative path: sha256} of every file under ``directory``."""
    result = {}
    for folder, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(folder, name)
            result[os.path.relpath(path, directory)] = hashlib.sha256(
                Path(path).read_bytes()).hexdigest()
    return result


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kerasnets: error: "), err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------ training runs


class PoisonAtEpoch(keras.callbacks.Callback):
    """Makes every weight NaN at the end of one step (a diverging update)."""

    def __init__(self, epoch, step):
        super().__init__()
        self.at, self.epoch = (epoch, step), 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            for variable in self.model.trainable_variables:
                variable.assign(np.full(variable.shape, np.nan, variable.dtype))


def test_non_finite_loss_stops_and_keeps_the_last_finite_checkpoint(colours, tmp_path):
    output = str(tmp_path / "run")
    with pytest.raises(training.TrainingDiverged) as info:
        training.train(MODEL, colours, output=output, **dict(RECIPE, epochs=3),
                       callbacks=[PoisonAtEpoch(1, 0)])
    message = str(info.value)
    assert "epoch 2, step 2" in message and "learning rate (0.05)" in message
    assert "last.weights.h5 (epoch 1" in message and "model.keras was not written" in message
    assert not os.path.exists(os.path.join(output, "model.keras"))
    checkpoint = kerasnets.DenseNetCIFAR(**MODEL_KWARGS, classes=4, input_shape=(32, 32, 3))
    checkpoint.load_weights(os.path.join(output, "checkpoints", "last.weights.h5"))
    assert all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in checkpoint.weights)
    backup = os.path.join(output, "backup", "latest.weights.h5")
    checkpoint.load_weights(backup)  # the backup holds the finite epoch-1 state too
    assert all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in checkpoint.weights)
    config = json.load(open(os.path.join(output, "config.json")))
    assert config["status"] == "diverged"
    before = snapshot(output)
    with pytest.raises(training.RunConflict, match="diverged"):  # the same command again
        training.train(MODEL, colours, output=output, **dict(RECIPE, epochs=3))
    assert snapshot(output) == before


def test_cli_diverging_run_exits_non_zero_without_a_model(colours, tmp_path, capsys):
    output = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--model", MODEL, "--dataset", colours,
                           "--model-arg", "depth=7", "--model-arg", "growth_rate=4",
                           "--epochs", "2", "--batch-size", "8", "--image-size", "32",
                           "--steps-per-epoch", "3", "--lr", "1e8", "--val-split", "none",
                           "--strategy", "cpu", "--output", output)
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("kerasnets: error: Training diverged") and "1e+08" in line
    assert not (output / "model.keras").exists()


def test_rerun_of_a_finished_run_changes_nothing_and_more_epochs_continue(colours, tmp_path):
    output = str(tmp_path / "run")
    first = training.train(MODEL, colours, output=output, **RECIPE)
    assert first.status == "trained"
    before = snapshot(output)
    again = training.train(MODEL, colours, output=output, **RECIPE)
    assert again.status == "complete" and snapshot(output) == before
    more = training.train(MODEL, colours, output=output, **dict(RECIPE, epochs=2))
    assert more.status == "continued"
    rows = open(os.path.join(output, "history.csv")).read().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["0", "1"]  # one new epoch, appended once
    config = json.load(open(os.path.join(output, "config.json")))
    assert (config["status"], config["completed_epochs"]) == ("complete", 2)
    # The optimizer went on from its state: its step counter counts both epochs.
    model = keras.saving.load_model(os.path.join(output, "model.keras"), safe_mode=True)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 4
    with pytest.raises(training.RunConflict, match="trained 2 epochs already"):
        training.train(MODEL, colours, output=output, **RECIPE)
    fresh = training.train(MODEL, colours, output=output, overwrite=True, **RECIPE)
    assert fresh.status == "trained"
    rows = open(os.path.join(output, "history.csv")).read().splitlines()[1:]
    assert len(rows) == 1


def test_changed_settings_are_refused_before_anything_changes(colours, tmp_path, capsys):
    output = tmp_path / "run"
    training.train(MODEL, colours, output=str(output), **RECIPE)
    before = snapshot(output)
    with pytest.raises(training.RunConflict) as info:
        training.train(MODEL, colours, output=str(output),
                       **dict(RECIPE, lr=0.01, model_kwargs=dict(MODEL_KWARGS, growth_rate=6)))
    message = str(info.value)
    assert "lr: 0.05 -> 0.01" in message and "growth_rate" in message
    assert "--overwrite" in message and len(message) < 400
    assert snapshot(output) == before
    code, _, err = run_cli(capsys, "train", "--model", MODEL, "--dataset", colours,
                           "--model-arg", "depth=7", "--model-arg", "growth_rate=4",
                           "--epochs", "1", "--batch-size", "8", "--image-size", "32",
                           "--steps-per-epoch", "2", "--lr", "0.2", "--val-split", "none",
                           "--strategy", "cpu", "--output", output)
    assert code == 1 and "lr: 0.05 -> 0.2" in one_line(err)
    assert snapshot(output) == before


def test_output_with_run_files_but_no_config_is_refused(colours, tmp_path):
    output = tmp_path / "run"
    (output / "checkpoints").mkdir(parents=True)
    with pytest.raises(training.RunConflict, match="no config.json"):
        training.train(MODEL, colours, output=str(output), **RECIPE)


class FailAt(keras.callbacks.Callback):
    """Interrupts training (as a crash would) at epoch E, step S."""

    def __init__(self, epoch, step):
        super().__init__()
        self.at, self.epoch = (epoch, step), 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt("simulated crash")


@pytest.mark.heavy
@pytest.mark.parametrize("previous_backup", [True, False])
def test_damaged_backup_falls_back(colours, tmp_path, capsys, previous_backup):
    output = str(tmp_path / "run")
    settings = dict(RECIPE, epochs=3)
    with pytest.raises(KeyboardInterrupt):
        training.train(MODEL, colours, output=output, callbacks=[FailAt(2, 1)], **settings)
    backup = Path(output) / "backup" / "latest.weights.h5"
    assert backup.exists()
    data_bytes = backup.read_bytes()
    backup.write_bytes(data_bytes[: len(data_bytes) // 3])  # truncated, as a crash leaves it
    if not previous_backup:
        for stale in (backup.parent).glob("*.bkp"):
            stale.unlink()
    capsys.readouterr()
    result = training.train(MODEL, colours, output=output, **settings)
    err = capsys.readouterr().err
    assert result.status == "resumed"
    assert "is damaged" in err and ("previous backup" in err if previous_backup
                                    else "last.weights.h5 after epoch 2" in err)
    rows = open(os.path.join(output, "history.csv")).read().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["0", "1", "2"]
    assert os.path.exists(os.path.join(output, "model.keras"))


def test_corrupt_image_is_named_and_can_be_skipped(tmp_path, capsys):
    root = tmp_path / "images"
    make_image_folder(str(root), per_class=4, formats=("jpg",))
    bad = root / "c1" / "001.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated JPEG
    (root / "c2" / "notes.png").write_bytes(b"not an image at all")
    dataset = f"folder:{root}"
    assert sorted(data.unreadable_images(data.folder_files(dataset)[0])) == sorted(
        [str(bad), str(root / "c2" / "notes.png")])
    with pytest.raises(data.UnreadableImagesError) as info:
        training.train(MODEL, dataset, output=str(tmp_path / "run"),
                       **dict(RECIPE, steps_per_epoch=4))
    assert str(bad) in str(info.value) and "--skip-bad-images" in str(info.value)
    with pytest.warns(UserWarning, match="Skipping 2 unreadable"):
        result = training.train(MODEL, dataset, output=str(tmp_path / "run2"),
                                **dict(RECIPE, steps_per_epoch=4, skip_unreadable=True))
    assert result.status == "trained"


def test_calibration_names_a_corrupt_image(tmp_path):
    from kerasnets import export

    root = tmp_path / "images"
    make_image_folder(str(root), per_class=3, formats=("png",))
    bad = root / "c0" / "000.png"
    bad.write_bytes(b"\x89PNG broken")
    with pytest.raises(data.UnreadableImagesError, match="000.png"):
        export.calibration_images(f"folder:{root}", 32, "torch", samples=8)


def test_empty_class_folder_is_refused(tmp_path):
    root = tmp_path / "images"
    make_image_folder(str(root), per_class=2)
    (root / "empty_class").mkdir()
    with pytest.raises(ValueError, match="empty_class.* holds no images"):
        data.folder_files(f"folder:{root}")


def test_no_validation_split_is_said_once(colours, tmp_path, capsys):
    run = training.train(MODEL, colours, output=str(tmp_path / "run"),
                         **dict(RECIPE, val_split="auto", epochs=2, verbose=2))
    out = capsys.readouterr().out
    assert out.count("has no validation split") == 1  # in the recipe line
    assert "validation: train[90%:]" in out and "val_accuracy" in run.history


# -------------------------------------------------------------- arguments


@pytest.mark.parametrize("argv, needle", [
    (["--batch-size", "0"], "batch_size must be an integer of at least 1"),
    (["--lr", "-1"], "lr must be a positive number"),
    (["--lr", "0"], "lr must be a positive number"),
    (["--epochs", "0"], "epochs must be an integer of at least 1"),
    (["--model-arg", "alpha=abc"], "alpha takes a number; received 'abc'"),
    (["--model-arg", "alpah=0.5"], "did you mean 'alpha'"),
    (["--model-arg", "alpha"], "expected NAME=VALUE"),
])
def test_train_argument_checks_are_usage_errors(colours, tmp_path, capsys, argv, needle):
    output = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--model", "MobileNet", "--dataset", colours,
                           "--output", output, *argv)
    assert code == 2 and needle in one_line(err)
    assert not output.exists()


def test_generic_builders_need_their_arguments(colours, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--model", "densenetcifar", "--dataset", colours,
                           "--output", tmp_path / "run")
    assert code == 2 and "DenseNetCIFAR is a generic builder" in one_line(err)


# ------------------------------------------------------------- weight files


def test_bad_values_in_weights_are_refused_naming_the_tensor(tmp_path):
    for name, change in (("stem.bn.running_var", lambda v: -np.abs(v)),
                         ("body.weight", lambda v: np.where(v > 0, np.nan, v)),
                         ("stem.conv.weight", lambda v: np.full_like(v, np.inf))):
        state = tiny_state()
        state[name] = change(state[name]).astype("float32")
        path = save_safetensors(state, tmp_path / f"{name}.safetensors")
        with pytest.raises(ValueError, match=f"Tensor '{name}'.*(negative|NaN)"):
            tiny_builder(weights=path)
    state = tiny_state()
    state["body.bias"] = np.arange(16, dtype="int64")
    with pytest.raises(ValueError, match="'body.bias'.*int64"):
        tiny_builder(weights=save_safetensors(state, tmp_path / "int.safetensors"))
    model = tiny_builder()
    model.get_layer("stem_bn").moving_variance.assign(-np.ones(8, "float32"))
    keras_file = str(tmp_path / "negative.weights.h5")
    model.save_weights(keras_file)
    with pytest.raises(ValueError, match="stem_bn/moving_variance.*negative"):
        tiny_builder(weights=keras_file)


def test_weights_h5_mismatch_is_one_short_line(tmp_path):
    path = str(tmp_path / "wide.weights.h5")
    tiny_builder(width=8).save_weights(path)
    with pytest.raises(ValueError) as info:
        tiny_builder(width=4, weights=path)
    message = str(info.value)
    assert "layer 'stem_conv' expects (3, 3, 3, 4), the file holds (3, 3, 3, 8)" in message
    assert len(message) < 400 and "[[" not in message


def test_module_prefixed_safetensors_and_home_paths(tmp_path, monkeypatch):
    state = {f"module.{k}": v for k, v in tiny_state().items()}
    home = tmp_path / "home"
    home.mkdir()
    save_safetensors(state, home / "ddp.safetensors")
    monkeypatch.setenv("HOME", str(home))
    model = tiny_builder(weights="~/ddp.safetensors")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("body_conv").bias),
                                  tiny_state()["body.bias"])


def test_empty_files_directories_and_damaged_keras_files(tmp_path, capsys):
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        tiny_builder(weights=str(empty))
    folder = tmp_path / "folder.weights.h5"
    folder.mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        tiny_builder(weights=str(folder))
    damaged = tmp_path / "model.keras"
    damaged.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="not a .keras model file"):
        loading.load_model_file(damaged)
    code, _, err = run_cli(capsys, "predict", "--weights", damaged)
    assert code == 1 and "not a .keras model file" in one_line(err)


def test_legacy_h5_without_top_skips_the_files_classifier(tmp_path):
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    source = tiny_builder()
    path = str(tmp_path / "tiny.h5")
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    headless = tiny_builder(weights=path, include_top=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(headless.get_layer("body_conv").kernel),
                                  keras.ops.convert_to_numpy(source.get_layer("body_conv").kernel))


# ------------------------------------------------------------------ cache


def test_read_only_cache_loads_what_is_there_and_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    (tmp_path / "site").mkdir()
    published = save_safetensors(tiny_state(), tmp_path / "site" / "model.safetensors")
    serve(monkeypatch, published)
    tiny_builder(weights="test_in1k")  # converted into the cache
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & os.O_CREAT or flags & os.O_WRONLY or flags & os.O_RDWR:
            raise OSError(errno.EROFS, "Read-only file system", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError("downloaded")))
    tiny_builder(weights="test_in1k")  # served from the cache, no lock, no write
    monkeypatch.setattr(os, "makedirs", lambda *a, **k: (_ for _ in ()).throw(
        OSError(errno.EROFS, "Read-only file system")))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "elsewhere"))
    with pytest.raises(ValueError, match="set KERAS_HOME to a writable folder"):
        tiny_builder(weights="test_in1k")


def test_partial_outputs_of_a_killed_conversion_are_removed(tmp_path):
    from kerasnets.files import partial_path, remove_stale_partials

    output = tmp_path / "model.weights.h5"
    dead = tmp_path / ".model.weights.h5.partial-99999999-abcd1234.weights.h5"
    dead.write_bytes(b"half")
    alive = Path(partial_path(output, ".weights.h5"))
    alive.write_bytes(b"in progress")  # this process: still writing
    assert remove_stale_partials(output) == [str(dead)]
    assert alive.exists() and not dead.exists()


def test_failing_command_prints_only_its_own_line(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    result = subprocess.run(
        [sys.executable, "-m", "kerasnets", "predict", str(tmp_path / "no.jpg"), "--model",
         "MobileNetV3Small", "--weights", "none"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"kerasnets: error: no such image file: {tmp_path / 'no.jpg'}"]
