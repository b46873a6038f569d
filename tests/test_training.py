"""kerasnets.training and the train/evaluate commands.

The distributed tests run in subprocesses (tests/train_worker.py): logical
devices and cluster membership are fixed once per TensorFlow process.
"""

import json
import os
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import kerasnets
from kerasnets import cli, data, training
from kerasnets.weights import PretrainedCfg, config
from tests.imagefolders import make_image_folder
from tests.train_worker import MODEL_KWARGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUBPROCESS_TIMEOUT = 240


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    make_image_folder(str(root), per_class=24, formats=("png", "jpg"))
    return "folder:" + str(root)


def run_worker(*args, env=None, check=True):
    """Runs tests/train_worker.py; returns the CompletedProcess."""
    full_env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    full_env.pop("TF_CONFIG", None)
    full_env.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "tests.train_worker", *args], cwd=ROOT, env=full_env,
        capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"worker {args} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def load_weights(path):
    arrays = np.load(path)
    return [arrays[k] for k in sorted(arrays.files, key=lambda k: int(k.split("_")[1]))]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------ distributed


@pytest.mark.heavy
def test_mirrored_over_two_cpus_equals_one_device(colours, tmp_path):
    result = str(tmp_path / "weights.npz")
    run_worker("mirrored", colours, result)
    one, two = load_weights(result), load_weights(result + ".two.npz")
    losses = json.load(open(result + ".json"))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(one, two))
    moved = max(float(np.abs(a).max()) for a in one)
    assert diff < 1e-4 * max(moved, 1.0), diff
    np.testing.assert_allclose(losses["one"], losses["two"], rtol=1e-4)
    assert losses["one"][1] < losses["one"][0]
    # Per-replica BatchNorm statistics (half batches) would not agree: the
    # comparison is sensitive enough to see that.
    assert losses["unsynced_diff"] > 100 * diff


@pytest.mark.heavy
def test_multiworker_two_processes_end_with_identical_weights(colours, tmp_path):
    output = str(tmp_path / "run")
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    procs, logs = [], []
    for index in range(2):
        env["TF_CONFIG"] = json.dumps({"cluster": cluster,
                                       "task": {"type": "worker", "index": index}})
        logs.append((tmp_path / f"worker{index}.out", tmp_path / f"worker{index}.err"))
        with open(logs[-1][0], "w") as out, open(logs[-1][1], "w") as err:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "tests.train_worker", "worker", colours, output,
                 str(tmp_path / f"worker{index}.npz")],
                cwd=ROOT, env=dict(env), stdout=out, stderr=err))
    # A worker that fails leaves the other waiting on its collectives: stop
    # both as soon as one fails, and report the failing one.
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.5)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    outputs = []
    for index, proc in enumerate(procs):
        proc.wait()
        out, err = (path.read_text() for path in logs[index])
        assert proc.returncode == 0, (
            f"worker {index} ended with {proc.returncode}:\n{out[-2000:]}\n{err[-5000:]}")
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert [o["chief"] for o in outputs] == [True, False]
    assert all(o["replicas"] == 2 for o in outputs)
    w0, w1 = (load_weights(str(tmp_path / f"worker{i}.npz")) for i in range(2))
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)
    history = json.load(open(str(tmp_path / "worker0.npz") + ".json"))
    assert history["loss"][1] < history["loss"][0]
    # Only the chief wrote the run; the other worker's private directory is gone.
    assert {"model.keras", "history.csv", "config.json", "training_curves.png"} <= set(
        os.listdir(output))
    assert outputs[1]["write_dir"] != output and not os.path.exists(outputs[1]["write_dir"])


@pytest.mark.heavy
def test_run_killed_mid_epoch_resumes_from_its_backup(colours, tmp_path):
    output = str(tmp_path / "run")
    killed = run_worker("resume", colours, output, str(tmp_path / "a.npz"),
                        "--kill-at", "1:2", check=False)
    assert killed.returncode == -9, killed.stderr[-3000:]  # SIGKILL, mid-epoch 1
    with open(os.path.join(output, "backup", "training_metadata.json")) as f:
        assert json.load(f) == {"epoch": 1, "batch": 1}  # backed up after 2 steps
    assert not os.path.exists(os.path.join(output, "model.keras"))
    first_epoch_loss = float(open(os.path.join(output, "history.csv")).read()
                             .splitlines()[1].split(",")[2])

    run_worker("resume", colours, output, str(tmp_path / "b.npz"))
    history = json.load(open(str(tmp_path / "b.npz") + ".json"))
    assert len(history["loss"]) == 2  # epochs 1 and 2 only: resumed at epoch 1
    assert history["loss"][0] < first_epoch_loss  # from the backed-up weights
    rows = open(os.path.join(output, "history.csv")).read().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2"]
    assert os.path.exists(os.path.join(output, "model.keras"))
    assert not os.path.exists(os.path.join(output, "backup"))  # finished: removed


# --------------------------------------------------------------- recipe


@pytest.mark.heavy
def test_fine_tuning_reaches_high_accuracy(colours, tmp_path):
    """From a weights file, a new 4-class head, on a held-out split."""
    import kerasnets

    keras.utils.set_random_seed(0)

    pretrained = kerasnets.DenseNetCIFAR(include_top=False, pooling="avg",
                                         input_shape=(32, 32, 3), **MODEL_KWARGS)
    weights = str(tmp_path / "backbone.weights.h5")
    pretrained.save_weights(weights)
    output = str(tmp_path / "run")
    run = training.train(
        "DenseNetCIFAR", colours, output=output, weights=weights, epochs=6,
        batch_size=8, image_size=32, optimizer="adamw", lr=0.01, seed=0,
        train_split="train[:75%]", val_split="train[75%:]", model_kwargs=MODEL_KWARGS,
        verbose=0,
    )
    assert run.history["val_accuracy"][-1] >= 0.9
    assert {"model.keras", "history.csv", "training_curves.png", "config.json",
            "checkpoints"} <= set(os.listdir(output))
    assert set(os.listdir(os.path.join(output, "checkpoints"))) == {
        "last.weights.h5", "best.weights.h5"}
    with open(os.path.join(output, "training_curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    config = json.load(open(os.path.join(output, "config.json")))
    assert config["num_classes"] == 4
    torch_mode = kerasnets.preprocessing.KERAS_MODES["torch"]
    assert tuple(config["preprocessing"]["mean"]) == torch_mode.mean  # DenseNet's family
    # The saved model reloads safely and evaluates the same on held-out images.
    result = training.evaluate("DenseNetCIFAR", run.model_path, colours, "train[75%:]",
                               batch_size=8)
    assert result.top1 >= 0.9 and result.num_examples == 24
    assert result.top5 is None and result.images_per_second > 0
    reloaded = keras.models.load_model(run.model_path, safe_mode=True)
    x = next(iter(data.load(colours, "train[75%:]", 32, 8, preprocessing="torch")))[0]
    np.testing.assert_allclose(reloaded.predict(x, verbose=0),
                               run.model.predict(x, verbose=0), atol=1e-6)


def test_dropout_applies_to_a_run_from_scratch_too():
    """--dropout builds the pooled classifier with its Dropout even without
    pretrained weights (the builder's own top has none to set)."""
    plain = training.build_model("DenseNetCIFAR", 3, 16, **MODEL_KWARGS)
    assert not [layer for layer in plain.layers if isinstance(layer, keras.layers.Dropout)]
    model = training.build_model("DenseNetCIFAR", 3, 16, dropout=0.3, **MODEL_KWARGS)
    assert model.get_layer("top_dropout").rate == 0.3
    assert model.get_layer("predictions").units == 3 and model.output_shape == (None, 3)


def test_freeze_backbone_trains_only_the_new_head(tmp_path):
    import kerasnets

    base = kerasnets.DenseNetCIFAR(include_top=False, pooling="avg",
                                   input_shape=(16, 16, 3), **MODEL_KWARGS)
    path = str(tmp_path / "base.weights.h5")
    base.save_weights(path)
    model = training.build_model("DenseNetCIFAR", 3, 16, weights=path, freeze_backbone=True,
                                 dropout=0.2, **MODEL_KWARGS)
    assert [w.path for w in model.trainable_weights] == ["predictions/kernel",
                                                         "predictions/bias"]
    before = [w.numpy() for w in model.weights if "predictions" not in w.path]
    training.compile_model(model, optimizer="sgd", lr=0.1, total_steps=2)
    x = tf.random.uniform((4, 16, 16, 3))
    y = tf.one_hot([0, 1, 2, 0], 3)
    model.fit(x, y, epochs=2, verbose=0)
    after = [w.numpy() for w in model.weights if "predictions" not in w.path]
    for a, b in zip(before, after):  # BN statistics too: frozen BN runs in inference
        np.testing.assert_array_equal(a, b)
    # Loaded from the file, not left random.
    np.testing.assert_array_equal(model.get_layer("conv1_conv").kernel.numpy(),
                                  base.get_layer("conv1_conv").kernel.numpy())


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_outputs_and_loss_float32(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = training.build_model("DenseNetCIFAR", 6, 32, **MODEL_KWARGS)
        training.compile_model(model, optimizer="sgd", total_steps=4)
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.layers[-1].name == "predictions_float32"
    assert model.layers[-1].dtype_policy.name == "float32"
    assert model.get_layer("predictions").compute_dtype == policy.split("_")[1]
    assert model.output.dtype == "float32"
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    if policy == "mixed_float16":  # loss scaling for float16 gradients
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    else:  # bfloat16 runs on CPU: one step, finite float32 loss
        x = tf.random.uniform((4, 32, 32, 3))
        logs = model.train_on_batch(x, tf.one_hot([0, 1, 2, 3], 6), return_dict=True)
        assert np.isfinite(logs["loss"])
        assert model(x).dtype == "float32"
        np.testing.assert_allclose(model(x).numpy().sum(-1), 1.0, rtol=1e-5)


def test_schedules_and_optimizers():
    cosine = training.learning_rate_schedule(0.4, "cosine", total_steps=100, warmup_steps=10)
    assert float(cosine(0)) == pytest.approx(0.0, abs=1e-7)
    assert float(cosine(5)) == pytest.approx(0.2, rel=1e-4)
    assert float(cosine(10)) == pytest.approx(0.4, rel=1e-4)
    assert float(cosine(55)) == pytest.approx(0.2, rel=1e-3)
    assert float(cosine(100)) == pytest.approx(0.0, abs=1e-6)
    step = training.learning_rate_schedule(1.0, "step", total_steps=100)
    assert [round(float(step(s)), 6) for s in (0, 31, 61, 91)] == [1.0, 0.1, 0.01, 0.001]
    assert training.default_learning_rate("sgd", 512) == pytest.approx(0.4)
    assert training.default_learning_rate("sgd", 512, pretrained=True) == pytest.approx(0.2)
    assert training.default_learning_rate("adamw", 256) == pytest.approx(5e-4)
    sgd = training.make_optimizer("sgd", 0.1)
    assert sgd.nesterov and sgd.momentum == 0.9 and sgd.weight_decay == 5e-5
    adamw = training.make_optimizer("adamw", 1e-3, weight_decay=0.01)
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == 0.01
    with pytest.raises(ValueError, match="Unknown optimizer"):
        training.make_optimizer("lamb", 0.1)
    with pytest.raises(ValueError, match="Unknown schedule"):
        training.learning_rate_schedule(0.1, "linear", 10)
    # No weight decay on 1-D variables (biases, BN).
    model = training.build_model("DenseNetCIFAR", 3, 16, **MODEL_KWARGS)
    training.compile_model(model, optimizer="sgd", total_steps=10)
    model.optimizer.build(model.trainable_variables)
    decayed = [v.path for v in model.trainable_variables
               if model.optimizer._use_weight_decay(v)]  # noqa: SLF001
    assert decayed and all(v.endswith("kernel") for v in decayed)


def test_plot_history_from_csv(tmp_path):
    csv = tmp_path / "history.csv"
    csv.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n"
                   "0,0.5,1.2,NA,NA\n1,0.7,0.9,NA,NA\n1,0.71,0.88,NA,NA\n2,0.8,0.7,NA,NA\n")
    png = training.plot_history(str(csv), str(tmp_path / "curves.png"), title="t")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    training.plot_history({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]},
                          str(tmp_path / "dict.png"))
    assert os.path.getsize(tmp_path / "dict.png") > 1000


# ------------------------------------------------------------ strategies


def test_strategy_selection(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    monkeypatch.delenv("COLAB_TPU_ADDR", raising=False)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    auto = training.get_strategy("auto")
    assert auto is tf.distribute.get_strategy()  # one CPU: the default strategy
    assert training.device_kind(auto) == "cpu"
    cpu = training.get_strategy("cpu")
    assert isinstance(cpu, tf.distribute.OneDeviceStrategy)
    assert training.mixed_precision_policy(cpu) == "mixed_bfloat16"
    mirrored = training.get_strategy("mirrored")
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert training.device_kind(mirrored) == "cpu"
    assert training.is_chief(mirrored) and training.write_dir("out", mirrored) == "out"
    with pytest.raises(ValueError, match="Unknown strategy 'gpu'"):
        training.get_strategy("gpu")
    with pytest.raises(RuntimeError, match="needs TF_CONFIG"):
        training.get_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(RuntimeError, match="not valid JSON"):
        training.get_strategy("multiworker")


def test_chief_and_worker_directories():
    class Spec:
        def __init__(self, spec):
            self.spec = spec

        def as_dict(self):
            return self.spec

    class Resolver:
        def __init__(self, task_type, task_id, spec):
            self.task_type, self.task_id, self._spec = task_type, task_id, spec

        def cluster_spec(self):
            return Spec(self._spec)

    class Strategy:
        def __init__(self, *args):
            self.cluster_resolver = Resolver(*args)

    workers = {"worker": ["a:1", "b:2"]}
    with_chief = {"chief": ["c:0"], "worker": ["a:1"]}
    assert training.is_chief(Strategy("worker", 0, workers))
    assert not training.is_chief(Strategy("worker", 1, workers))
    assert training.is_chief(Strategy("chief", 0, with_chief))
    assert not training.is_chief(Strategy("worker", 0, with_chief))
    other = training.write_dir("/runs/x", Strategy("worker", 1, workers))
    assert other != "/runs/x" and "worker-1" in other
    assert other == training.write_dir("/runs/x", Strategy("worker", 1, workers))  # stable


def test_tpu_paths_without_a_tpu(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    monkeypatch.delenv("COLAB_TPU_ADDR", raising=False)
    with pytest.raises(RuntimeError, match="No TPU found: pass --tpu"):
        training.get_strategy("tpu")
    resolver = training.tpu_resolver("grpc://127.0.0.1:8470")
    assert resolver.master() == "grpc://127.0.0.1:8470"

    calls = []

    def unreachable(resolver):
        calls.append(resolver.master())
        raise tf.errors.UnavailableError(None, None, "failed to connect to all addresses")

    monkeypatch.setattr(tf.config, "experimental_connect_to_cluster", unreachable)
    with pytest.raises(RuntimeError, match="Cannot connect to the TPU .*failed to connect"):
        training.get_strategy("tpu", tpu="grpc://127.0.0.1:8470")
    # auto goes to the TPU when the environment names one (Colab).
    monkeypatch.setenv("COLAB_TPU_ADDR", "127.0.0.1:8470")
    with pytest.raises(RuntimeError, match="Cannot connect to the TPU"):
        training.get_strategy("auto")
    assert calls == ["grpc://127.0.0.1:8470"] * 2

    class TPUStrategy:  # what device_kind and the policy see on a TPU
        pass

    assert training.device_kind(TPUStrategy()) == "tpu"
    assert training.mixed_precision_policy(TPUStrategy()) == "mixed_bfloat16"


# ------------------------------------------------------------------- CLI


def test_cli_train_and_evaluate(tmp_path, capsys):
    output = str(tmp_path / "run")
    with tfds.testing.mock_data(num_examples=16):
        assert cli.main(["train", "--model", "MobileNet", "--dataset", "cifar10",
                         "--epochs", "1", "--batch-size", "8", "--image-size", "32",
                         "--optimizer", "adamw", "--lr", "0.001", "--schedule", "step",
                         "--label-smoothing", "0.0", "--strategy", "cpu",
                         "--output", output]) == 0
        assert f"model: {output}/model.keras" in capsys.readouterr().out
        assert cli.main(["evaluate", "--model", "MobileNet", "--weights",
                         f"{output}/model.keras", "--dataset", "cifar10", "--split", "test",
                         "--compare"]) == 0
    printed = capsys.readouterr().out
    assert "top-1" in printed and "images/s" in printed
    assert "no accuracy published" in printed
    config = json.load(open(os.path.join(output, "config.json")))
    assert (config["model"], config["optimizer"], config["schedule"]) == (
        "MobileNet", "adamw", "step")
    tf_mode = kerasnets.preprocessing.KERAS_MODES["tf"]
    assert tuple(config["preprocessing"]["mean"]) == tf_mode.mean  # MobileNet's weights'
    assert config["settings"]["optimizer"] == "adamw"
    assert cli.main(["train", "--model", "MobileNet", "--dataset", "cifar10",
                     "--optimizer", "lamb", "--output", output]) == 2
    assert "invalid choice: 'lamb'" in capsys.readouterr().err


def test_evaluate_compares_with_the_registry(tmp_path, monkeypatch, colours):
    """A registered tag (served from a local file) prints its reported accuracy."""
    import kerasnets

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    # Pretrained tags have 1000 classes (the builder contract).
    model = kerasnets.DenseNetCIFAR(classes=1000, input_shape=(32, 32, 3), **MODEL_KWARGS)
    path = tmp_path / "published.weights.h5"
    model.save_weights(str(path))
    cfg = PretrainedCfg("DenseNetCIFAR", "test_in1k", url=path.as_uri(), format="keras",
                        input_size=32, top1=12.5, top5=50.0)
    monkeypatch.setitem(config._CFGS, "DenseNetCIFAR", [cfg])  # noqa: SLF001
    result = training.evaluate("DenseNetCIFAR", "test_in1k", colours, "train[75%:]",
                               batch_size=8, model_kwargs=dict(classes=1000, **MODEL_KWARGS))
    assert result.num_examples == 24 and 0.0 <= result.top1 <= 1.0
    assert (result.reported_top1, result.reported_top5) == (12.5, 50.0)
    summary = result.summary(compare=True)
    assert "reported: top-1  12.50%" in summary
    assert f"(ours {100 * result.top1 - 12.5:+.2f})" in summary
