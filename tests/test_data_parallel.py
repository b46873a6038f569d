"""``--strategy data-parallel``: ``keras.distribution.DataParallel`` on JAX,
MirroredStrategy on TensorFlow, refused on PyTorch.

The JAX runs need JAX's device count fixed before it is imported
(``XLA_FLAGS=--xla_force_host_platform_device_count=4``): they run in a
subprocess (tests/jax_worker.py), as tests/test_backends.py does. The fast
tier checks the strategy names and messages in this (TensorFlow) process.
"""

import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasnets import cli, training, tuner
from kerasnets.weights.loading import load_model_file
from tests.imagefolders import make_image_folder
from tests.parity import require

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ------------------------------------------------------------- fast tier


def test_data_parallel_on_tensorflow_is_mirrored():
    strategy = training.get_strategy("data-parallel")
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert strategy is training.get_strategy("mirrored")


def test_unknown_strategy_names_the_choices(tmp_path, capsys):
    with pytest.raises(ValueError, match="Unknown strategy 'dp'.*'data-parallel'"):
        training.get_strategy("dp")
    with pytest.raises(ValueError, match="Unknown strategy 'dp' for a search.*data-parallel"):
        tuner.search("igc", "folder:x", directory=str(tmp_path), strategy="dp")
    for command in ("train", "tune"):
        required = (["--model", "DenseNet121", "--output", str(tmp_path / "run")]
                    if command == "train" else ["--family", "igc"])
        assert cli.main([command, *required, "--dataset", "folder:x", "--strategy", "dp"]) == 2
        assert "'data-parallel'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_incompatible_backends_are_refused_with_the_way_out(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    with pytest.raises(ValueError, match="Keras' torch backend has no data-parallel "
                                         "training: use --strategy auto"):
        training.get_strategy("data-parallel")
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ValueError, match="TensorFlow backend only .*'data-parallel' "
                                         "spreads each batch over JAX's devices"):
        training.get_strategy("mirrored")


def test_a_bad_multi_host_setting_is_named(monkeypatch):
    require("jax")
    from kerasnets.training import distribute

    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "two")
    with pytest.raises(RuntimeError, match=r"Cannot join the multi-host JAX cluster "
                                           r"\(KERAS_DISTRIBUTION_NUM_PROCESSES=two\): .*"
                                           r"KERAS_DISTRIBUTION_PROCESS_ID \(0 \.\. n-1\)"):
        distribute._join_hosts()  # noqa: SLF001


def test_cli_help_says_what_the_batch_size_and_strategy_mean(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "global batch size" in text and "data-parallel" in text
    assert "keras.distribution.DataParallel" in text


# ----------------------------------------------------------- heavy tier


def _history_csv(output):
    with open(os.path.join(output, "history.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in rows[0] if k != "epoch"}


@pytest.mark.heavy
def test_jax_data_parallel_over_four_devices_equals_one_device(tmp_path):
    """The same run (seed, data, global batch 8, DenseNet-CIFAR at 32 px, 2
    epochs, each interrupted in its second epoch and resumed) on JAX's
    default device and with ``--strategy data-parallel`` over four simulated
    CPU devices: the same loss curves and final weights; the run directories,
    resume and ``model.keras`` (loaded here, under TensorFlow) as with one
    device; a batch the devices cannot share is refused before anything is
    written; ``kerasnets tune --strategy data-parallel`` runs."""
    require("jax")
    data = str(tmp_path / "data")
    make_image_folder(data, per_class=20)  # 72 training images, 8 held out
    images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "images.npy", images)
    out = str(tmp_path / "out")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="",
               XLA_FLAGS="--xla_force_host_platform_device_count=4", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "tests.jax_worker", f"folder:{data}", out],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-5000:]
    with open(out + ".json") as f:
        report = json.load(f)
    arrays = np.load(out + ".npz")
    assert report["backend"] == "jax" and report["devices"] == 4

    assert ("batch_size 6 is not divisible by the 4 replicas of JaxDataParallel: use a "
            "multiple of 4") in (report["refused"] or ""), report["refused"]
    assert report["refused_wrote"] == []
    assert "leave sync_batch_norm unset" in (report["unsynced_refused"] or "")
    assert "evaluate on one device (strategy='auto')" in (report["evaluate_refused"] or "")

    one, four = report["runs"]["one"], report["runs"]["four"]
    assert one["weight_devices"] == [1] and four["weight_devices"] == [4]
    assert four["config"] == {"strategy": "JaxDataParallel", "replicas": 4,
                              "status": "complete", "completed_epochs": 2}
    assert one["config"]["replicas"] == 1
    for run in (one, four):
        assert run["status"] == "resumed" and run["backup"]["epoch"] == 1
        assert list(run["history"]) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert four["files"] == one["files"]
    assert {"model.keras", "history.csv", "config.json", "checkpoints"} <= set(four["files"])
    assert "backup" not in four["files"]  # finished: removed

    # The loss curves (history.csv: the first attempt's epoch, the resumed one).
    curve_one, curve_four = _history_csv(one["output"]), _history_csv(four["output"])
    assert len(curve_four["loss"]) == 2
    loss_diff = max(abs(a - b) for k in curve_one for a, b in zip(curve_one[k], curve_four[k]))
    weights_one, weights_four = arrays["one/weights"], arrays["four/weights"]
    weight_diff = float(np.abs(weights_one - weights_four).max())
    moved = float(np.abs(weights_one).max())
    print(f"1 vs 4 devices: losses {curve_one['loss']} vs {curve_four['loss']}; max |loss "
          f"or metric difference| {loss_diff:.2e}; max |weight difference| {weight_diff:.2e} "
          f"(largest weight {moved:.2f})")
    for key in curve_one:
        np.testing.assert_allclose(curve_four[key], curve_one[key], rtol=1e-4, atol=1e-5)
    assert weight_diff < 1e-4 * max(moved, 1.0), weight_diff
    assert curve_four["loss"][1] < curve_four["loss"][0]  # resumed from the backup

    # model.keras loads in a plain (TensorFlow) process: the same outputs.
    model = load_model_file(os.path.join(four["output"], "model.keras"))
    np.testing.assert_allclose(model.predict(images, verbose=0), arrays["four/outputs"],
                               atol=1e-5)

    assert report["tune_status"] == 0
    assert "best_model.keras" in report["tune_files"]


@pytest.mark.heavy
def test_jax_data_parallel_over_two_processes(tmp_path):
    """Two JAX processes of two CPU devices each join one cluster through
    Keras' variables (``keras.distribution.initialize``) and train one model
    over the four devices with ``kerasnets train --strategy data-parallel``:
    process 0 writes the run, process 1 leaves nothing behind."""
    require("jax")
    import hashlib
    import socket
    import tempfile

    data = str(tmp_path / "data")
    make_image_folder(data, per_class=20)
    output = str(tmp_path / "run")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for index in range(2):
        env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="",
                   XLA_FLAGS="--xla_force_host_platform_device_count=2",
                   TF_CPP_MIN_LOG_LEVEL="3", KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
                   KERAS_DISTRIBUTION_NUM_PROCESSES="2", KERAS_DISTRIBUTION_PROCESS_ID=str(index),
                   PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "kerasnets", "train", "--model", "DenseNetCIFAR",
             "--model-arg", "depth=7", "--model-arg", "growth_rate=4", "--weights", "none",
             "--dataset", f"folder:{data}", "--epochs", "1", "--batch-size", "8",
             "--steps-per-epoch", "2", "--image-size", "32", "--seed", "7",
             "--strategy", "data-parallel", "--output", output],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=400))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()  # the other one waits on its collectives
                proc.communicate()
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, out[-2000:] + err[-4000:]
    assert "final: accuracy" in outputs[0][0] and "final:" not in outputs[1][0]
    assert {"model.keras", "history.csv", "config.json", "training_curves.png"} <= set(
        os.listdir(output))
    with open(os.path.join(output, "config.json")) as f:
        config = json.load(f)
    assert (config["strategy"], config["replicas"], config["status"]) == (
        "JaxDataParallel", 4, "complete")
    digest = hashlib.sha1(os.path.abspath(output).encode()).hexdigest()[:10]
    assert not os.path.exists(os.path.join(tempfile.gettempdir(), "kerasnets-workers",
                                           f"{digest}-worker-1"))
    curve = _history_csv(output)
    assert len(curve["loss"]) == 1 and all(np.isfinite(curve["val_loss"]))
    model = load_model_file(os.path.join(output, "model.keras"))
    assert model.output_shape == (None, 4)
