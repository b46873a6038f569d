"""kerasnets on Keras' JAX and PyTorch backends, against TensorFlow.

Keras fixes its backend once per process: this (TensorFlow) process writes
weights saved under TensorFlow, reference checkpoints and images, and
tests/backend_worker.py runs kerasnets on the same files with
``KERAS_BACKEND=jax`` and ``=torch``, once per backend for the whole module.
Compared here:

- one named model of every family (64 px, random weights with calibrated
  BatchNorm statistics and random affine weights, as tests/parity.py does, so
  the logits depend on the input): the ``.weights.h5`` saved under
  TensorFlow gives TensorFlow's logits; also in the memory-efficient form;
- source checkpoints by path: a timm ``.safetensors`` (DPN68), a
  keras.applications legacy ``.h5`` (MobileNetV2 alpha 0.35) and the IGC
  authors' MXNet ``.params`` (tests/data, real MXNet's logits) give their
  reference's logits;
- training (small DPN and DenseNet with the memory-efficient layers, the
  grouped convolutions of DPN and IGC, kerasnets' BatchNormalization, which
  is Keras' own code off TensorFlow): one SGD step equals TensorFlow's
  (loss, weights, moving statistics), and the ``kerasnets train`` recipe
  lowers the loss; under mixed precision too;
- ``.keras`` files: saved under TensorFlow, loaded with ``safe_mode=True``
  (same outputs), and the reverse.

jax and torch are test requirements: missing, they fail under ``CI=true``
(tests/parity.py ``require``). The whole matrix is the heavy tier (a few
minutes, mostly JAX compiling); ``test_quick_round_trip`` (fast tier) is the
smoke version. CI also runs it (``.ci/run``).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import keras

import kerasnets
from tests.backend_worker import KINDS, flat
from tests.parity import (
    assert_logits_close,
    calibrate_torch,
    random_images,
    randomize_keras,
    require,
    save_state_dict,
    torch_logits,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
BACKENDS = ("jax", "torch")
SIZE = 64

# One named model of every family, with a 10-class top (logits).
PARITY = {
    "DenseNet121": "DenseNet121",
    "MobileNet": "MobileNet",
    "MobileNetV2": "MobileNetV2",
    "MobileNetV3Small": "MobileNetV3Small",
    "SEResNeXt26_32x4d": "SEResNeXt26_32x4d",
    "SEMobileNet": "SEMobileNet",
    "DPN68": "DPN68",
    "IGC_L4M32": "IGC_L4M32",
    "IGCV2": "IGCV2",
    "IGCV3": "IGCV3",
}
# The same files into the memory-efficient form (kerasnets.layers.checkpointed).
MEMORY_EFFICIENT = ("DenseNet121", "DPN68")

# Small networks for training and .keras files; between them every
# kerasnets layer: BatchNormalization, GroupConv2D, ChannelShuffle,
# InterleavedGroupConv, SEBlock, ChannelSplit, ImageNormalization, the
# memory-efficient Concat* layers, hard sigmoid / hard swish.
SMALL = {
    "dpn_me": ("DPN", dict(k_r=32, groups=4, k_sec=(1, 1, 1, 1), inc_sec=(8, 8, 8, 8),
                           init_features=16, small=True, memory_efficient=True)),
    "densenet_me": ("DenseNetCIFAR", dict(depth=10, growth_rate=4, bottleneck=True,
                                          memory_efficient=True)),
    "igc": ("IGCV1CIFAR", dict(L=2, M=2, depth=8)),
    "igc_l4m32": ("IGC_L4M32", {}),
    "semobilenet": ("SEMobileNet", dict(alpha=0.25)),
    "mobilenet_v3": ("MobileNetV3Small", dict(alpha=0.75)),
    "igcv3": ("IGCV3", dict(alpha=0.35)),
    "dpn_preprocessing": ("DPN", dict(k_r=32, groups=4, k_sec=(1, 1, 1, 1),
                                      inc_sec=(8, 8, 8, 8), init_features=16, small=True,
                                      include_preprocessing=True)),
}
TRAIN = ("dpn_me", "densenet_me", "igc")
LR = 0.05
EPOCHS = 5

# Tolerance (max |difference| / logit spread, tests/parity.py). The same
# float32 model on two backends differs by summation order only: measured
# 3e-6 to 3.3e-4 (depthwise networks highest), where a wrong epsilon or
# padding gives 1e-1 to 10 (shared/DESIGN.md). Float64 is no tighter check
# here: off TensorFlow, Keras computes float64 means and BatchNormalization
# in float32 (its type promotion maps float64 to float32 there).
TOL = 1e-3


def require_backend(name):
    """The backend's package (jax / torch): skips locally, fails under CI."""
    return require(name)


# ------------------------------------------------------------- fixtures


def randomize_and_calibrate(model, images, seed):
    """Random weights (tests/parity.py ``randomize_keras``), then every
    BatchNormalization's moving statistics set to the batch statistics of
    ``images`` in one training-mode pass, under the final gamma/beta.

    tests/parity.py's ``calibrate_keras`` draws new gamma/beta after that
    pass, so deeper layers see other statistics than they were calibrated
    on; in a random MobileNetV3 that error grows tenfold per SE block and
    float32 rounding moves its logits by 0.26 of their spread between any
    two backends. Calibrated in place, each layer normalises what reaches it
    (MobileNetV3Small: logit spread 2.4 instead of 990, backends within
    2e-4 of it).
    """
    randomize_keras(model, seed=seed)
    bns = [layer for layer in model._flatten_layers(include_self=False)  # noqa: SLF001
           if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    try:
        model(images, training=True)
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum



def _small_model(key, **kwargs):
    builder, options = SMALL[key]
    return getattr(kerasnets, builder)(weights=None,
                                       input_shape=(SIZE, SIZE, 3),
                                       classes=10, **options, **kwargs)


def _save(directory, name, array):
    path = os.path.join(directory, name)
    np.save(path, array)
    return path


def make_small_fixtures(directory, keys, train_keys, tasks, expected):
    """TensorFlow's side of the small networks: .keras files and their
    outputs; for training, the initial weights, the data and one SGD step."""
    rng = np.random.default_rng(3)
    images = random_images(4, SIZE, seed=11)
    images_path = _save(directory, "small_images.npy", images)
    pixels = ((images + 1.0) * 127.5).astype("float32")
    pixels_path = _save(directory, "small_pixels.npy", pixels)
    x = random_images(8, SIZE, seed=12)
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, 8)]
    data = os.path.join(directory, "train_data.npz")
    np.savez(data, x=x, y=y)
    calibration = random_images(16, SIZE, seed=13)
    for key in keys:
        preprocessing = SMALL[key][1].get("include_preprocessing")
        inputs, inputs_path = (pixels, pixels_path) if preprocessing else (images, images_path)
        model = _small_model(key, classifier_activation=None)
        randomize_and_calibrate(model, (calibration + 1.0) * 127.5 if preprocessing
                                else calibration, seed=len(key))
        path = os.path.join(directory, f"{key}_tf.keras")
        model.save(path)
        expected[f"from_tf/{key}"] = model.predict(inputs, verbose=0)
        tasks.append({"id": f"from_tf/{key}", "kind": "load_keras", "path": path,
                      "images": inputs_path})
    for key in train_keys:
        model = _small_model(key)
        randomize_keras(model, seed=len(key))
        weights = os.path.join(directory, f"{key}_init.weights.h5")
        model.save_weights(weights)
        for part, variables in (("trainable", model.trainable_weights),
                                ("statistics", model.non_trainable_weights)):
            expected[f"train/{key}/initial_{part}"] = flat(variables)
        model.compile(optimizer=keras.optimizers.SGD(LR),
                      loss=keras.losses.CategoricalCrossentropy())
        expected[f"train/{key}/step_loss"] = float(model.train_on_batch(x, y))
        for part, variables in (("trainable", model.trainable_weights),
                                ("statistics", model.non_trainable_weights)):
            expected[f"train/{key}/step_{part}"] = flat(variables)
        builder, options = SMALL[key]
        common = dict(builder=builder, weights=weights, data=data, lr=LR, epochs=EPOCHS,
                      kwargs={**options, "input_shape": [SIZE] * 2 + [3],
                              "classes": 10})
        tasks.append({"id": f"train/{key}", "kind": "train", "images": images_path,
                      "save": os.path.join(directory, f"{key}_{{backend}}.keras"), **common})
    return data


def make_fixtures(directory, full=True):
    """Writes every file the worker reads; returns (spec tasks, expected)."""
    tasks, expected = [], {}
    # The authors' MXNet checkpoint and real MXNet's logits (tests/data).
    io = np.load(os.path.join(DATA, "igc_cifar_l2m2_d8_io.npz"))
    tasks.append({"id": "source/mxnet", "kind": "predict", "builder": "IGCV1CIFAR",
                  "weights": os.path.join(DATA, "igc_cifar_l2m2_d8.params"),
                  "images": _save(directory, "mxnet_images.npy",
                                  io["images"].transpose(0, 2, 3, 1)),
                  "kwargs": dict(L=2, M=2, depth=8, input_shape=[16, 16, 3],
                                 classifier_activation=None)})
    expected["source/mxnet"] = io["logits"]
    if not full:
        make_small_fixtures(directory, ["densenet_me"], ["densenet_me"], tasks, expected)
        return tasks, expected
    data = make_small_fixtures(directory, list(SMALL), TRAIN, tasks, expected)
    for policy in ("mixed_bfloat16", "mixed_float16"):
        tasks.append({"id": f"mixed/{policy}", "kind": "mixed_precision", "policy": policy,
                      "builder": SMALL["dpn_me"][0], "data": data, "lr": LR,
                      "epochs": EPOCHS, "kwargs": SMALL["dpn_me"][1]})

    # One named model of every family: weights saved under TensorFlow.
    calibration = random_images(8, SIZE, seed=1)
    images = random_images(4, SIZE, seed=2)
    images_path = _save(directory, "images.npy", images)
    options = dict(input_shape=[SIZE, SIZE, 3], classes=10, classifier_activation=None)
    for key, name in PARITY.items():
        model = getattr(kerasnets, name)(weights=None, **options)
        randomize_and_calibrate(model, calibration, seed=len(key))
        weights = os.path.join(directory, f"{key}.weights.h5")
        model.save_weights(weights)
        expected[f"parity/{key}"] = model.predict(images, verbose=0)
        keras.backend.clear_session(free_memory=False)
        variants = [(key, {})]
        if key in MEMORY_EFFICIENT:
            variants.append((key + "-memory_efficient", {"memory_efficient": True}))
            expected[f"parity/{key}-memory_efficient"] = expected[f"parity/{key}"]
        for task_id, extra in variants:
            tasks.append({"id": f"parity/{task_id}", "kind": "predict", "builder": name,
                          "weights": weights, "images": images_path,
                          "kwargs": {**options, **extra}})

    # Source checkpoints: timm (safetensors), keras.applications (legacy .h5).
    timm = require("timm")
    reference = timm.create_model("dpn68", pretrained=False)
    calibrate_torch(reference, calibration, batches=2)
    tasks.append({"id": "source/timm", "kind": "predict", "builder": "DPN68",
                  "weights": save_state_dict(reference, os.path.join(directory,
                                                                     "dpn68.safetensors")),
                  "images": images_path,
                  "kwargs": dict(input_shape=[SIZE, SIZE, 3], classifier_activation=None)})
    expected["source/timm"] = torch_logits(reference, images)

    from tests.models.mobilenet_common import keras_reference, save_legacy_h5

    small = random_images(4, 96, seed=4)
    reference = keras_reference(keras.applications.MobileNetV2, small, alpha=0.35,
                                input_shape=(96, 96, 3))
    tasks.append({"id": "source/keras_h5", "kind": "predict", "builder": "MobileNetV2",
                  "weights": save_legacy_h5(reference, os.path.join(
                      directory, "mobilenet_v2_0.35_96.h5")),
                  "images": _save(directory, "images96.npy", small),
                  "kwargs": dict(alpha=0.35, input_shape=[96, 96, 3],
                                 classifier_activation=None)})
    expected["source/keras_h5"] = np.asarray(reference(small))
    # The same file as the "imagenet" weights: download (faked), the
    # trust-on-first-use hash, conversion and cache, on each backend.
    tasks.append({"id": "pretrained/keras_h5", "kind": "pretrained", "builder": "MobileNetV2",
                  "tag": "imagenet", "source": tasks[-1]["weights"],
                  "images": tasks[-1]["images"], "kwargs": tasks[-1]["kwargs"]})
    keras.backend.clear_session(free_memory=False)
    return tasks, expected


def run_worker(backend, directory, tasks, timeout):
    """Runs tests/backend_worker.py under ``backend``: (report, arrays)."""
    require_backend(backend)
    spec = [{**t, "save": t["save"].format(backend=backend)} if "save" in t else t
            for t in sorted(tasks, key=lambda t: KINDS.index(t["kind"]))]
    spec_path = os.path.join(directory, f"spec_{backend}.json")
    with open(spec_path, "w") as f:
        json.dump({"tasks": spec}, f)
    out = os.path.join(directory, f"result_{backend}")
    env = dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="",
               JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "tests.backend_worker", spec_path, out],
                          cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{backend} worker failed:\n{done.stderr[-5000:]}"
    with open(out + ".json") as f:
        report = json.load(f)
    assert report["backend"] == backend
    print(f"\n{backend} worker:\n{done.stderr.strip()}")
    return report, dict(np.load(out + ".npz")), spec


def outcome(run, task_id):
    """The worker's record of ``task_id`` (fails with its traceback)."""
    report, arrays, _ = run
    entry = report["tasks"][task_id]
    assert entry["ok"], f"{report['backend']}: {task_id} failed:\n{entry['error']}"
    prefix = task_id + "/"
    return entry, {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def full_fixtures(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("backends"))
    tasks, expected = make_fixtures(directory, full=True)
    return directory, tasks, expected


@pytest.fixture(scope="module", params=BACKENDS)
def full_run(request, full_fixtures):
    directory, tasks, expected = full_fixtures
    return (*run_worker(request.param, directory, tasks, timeout=2400), expected)


# ------------------------------------------------------------- checks


def check_logits(run, task_id, tol):
    *worker, expected = run
    _, arrays = outcome(worker, task_id)
    key = next(k for k in ("logits", "outputs") if k in arrays)
    ratio = assert_logits_close(arrays[key], expected[task_id], tol=tol)
    print(f"{worker[0]['backend']} {task_id}: max diff / logit spread = {ratio:.2e}")
    return ratio


def check_training(run, key):
    """One SGD step as TensorFlow's; the recipe lowers the loss; the model
    saved under the backend loads under TensorFlow with the same outputs."""
    *worker, expected = run
    backend = worker[0]["backend"]
    entry, arrays = outcome(worker, f"train/{key}")
    loss_diff = abs(entry["step_loss"] - expected[f"train/{key}/step_loss"])
    assert loss_diff <= 1e-4 * max(1.0, abs(expected[f"train/{key}/step_loss"]))
    ratios = {}
    for part in ("trainable", "statistics"):
        initial = expected[f"train/{key}/initial_{part}"]
        update = expected[f"train/{key}/step_{part}"] - initial
        error = arrays[f"step_{part}"] - expected[f"train/{key}/step_{part}"]
        assert np.abs(update).max() > 0, part
        ratios[part] = (np.abs(error).max() / np.abs(update).max(),
                        np.linalg.norm(error) / np.linalg.norm(update))
    print(f"{backend} train/{key}: one SGD step vs TensorFlow's: loss differs by "
          f"{loss_diff:.2e}; weights by {ratios['trainable'][0]:.2e} of the largest "
          f"update (max), {ratios['trainable'][1]:.2e} (L2); moving statistics by "
          f"{ratios['statistics'][0]:.2e} / {ratios['statistics'][1]:.2e}; recipe losses "
          f"{np.round(entry['losses'], 4).tolist()}")
    # The moving statistics come from the forward pass: float32 rounding
    # only. Gradients also flip where an activation rounds to the other side
    # of a ReLU's kink (TensorFlow -1.2e-6, JAX +1.8e-7 in the DPN): measured
    # up to 7e-3 of the largest update (max), 2e-3 (L2); elsewhere 1e-6 to
    # 1e-5. A wrong gradient is O(1); a variance update with Bessel's
    # correction (TensorFlow's fused kernel's) 1e-2 of the statistics' update.
    assert ratios["statistics"][0] <= 1e-4, ratios
    assert ratios["trainable"][1] <= 1e-2 and ratios["trainable"][0] <= 5e-2, ratios
    # The memory-efficient layers recompute in the backward pass on every
    # backend (jax.checkpoint, torch.utils.checkpoint: counted by the worker).
    memory_efficient = SMALL[key][1].get("memory_efficient", False)
    assert (entry["recomputations"] > 0) == memory_efficient, entry["recomputations"]
    losses = entry["losses"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    # The reverse trip: saved under the backend, loaded under TensorFlow.
    spec = worker[2]
    path = next(t["save"] for t in spec if t["id"] == f"train/{key}")
    images = np.load(next(t["images"] for t in spec if t["id"] == f"train/{key}"))
    from kerasnets.weights import loading

    model = loading.load_model_file(path)
    outputs = model.predict(images, verbose=0)
    print(f"{backend} train/{key}: its .keras under TensorFlow: max |probability "
          f"difference| {np.abs(outputs - arrays['outputs']).max():.2e}")
    np.testing.assert_allclose(outputs, arrays["outputs"], atol=1e-5, rtol=0)


# ------------------------------------------------------------- fast tier


def test_quick_round_trip(tmp_path):
    """Smoke version of the heavy matrix (one small memory-efficient
    DenseNet, the MXNet checkpoint) on each backend."""
    tasks, expected = make_fixtures(str(tmp_path), full=False)
    for backend in BACKENDS:
        run = (*run_worker(backend, str(tmp_path), tasks, timeout=600), expected)
        check_logits(run, "source/mxnet", TOL)
        check_logits(run, "from_tf/densenet_me", TOL)
        check_training(run, "densenet_me")


# ------------------------------------------------------------ heavy tier


@pytest.mark.heavy
@pytest.mark.parametrize("key", [*PARITY, *(m + "-memory_efficient" for m in MEMORY_EFFICIENT)])
def test_named_models_match_tensorflow(full_run, key):
    check_logits(full_run, f"parity/{key}", TOL)


@pytest.mark.heavy
@pytest.mark.parametrize("source", ["timm", "keras_h5", "mxnet"])
def test_source_checkpoints_load_by_path(full_run, source):
    check_logits(full_run, f"source/{source}", TOL)


@pytest.mark.heavy
def test_pretrained_weights_download_convert_and_cache(full_run):
    """``weights="imagenet"``: the download (faked: keras.utils.get_file
    returns the keras.applications file), the trust-on-first-use hash and
    the cache, then a second load checked against the recorded hash."""
    *worker, expected = full_run
    entry, arrays = outcome(worker, "pretrained/keras_h5")
    assert entry["downloads"][0] == 1, entry
    for when in ("first", "cached"):
        ratio = assert_logits_close(arrays[when], expected["source/keras_h5"], tol=TOL)
        print(f"{worker[0]['backend']} imagenet weights ({when}): {ratio:.2e}")


@pytest.mark.heavy
@pytest.mark.parametrize("key", TRAIN)
def test_training_and_keras_file_to_tensorflow(full_run, key):
    check_training(full_run, key)


@pytest.mark.heavy
@pytest.mark.parametrize("key", list(SMALL))
def test_keras_file_from_tensorflow(full_run, key):
    check_logits(full_run, f"from_tf/{key}", TOL)


@pytest.mark.heavy
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_training(full_run, policy):
    *worker, _ = full_run
    entry, _ = outcome(worker, f"mixed/{policy}")
    print(f"{worker[0]['backend']} {policy}: {entry}")
    assert entry["output_dtype"] == "float32" and entry["finite"]
    assert entry["conv_compute_dtypes"] == [policy.split("_", 1)[1]]
    assert entry["losses"][-1] < entry["losses"][0], entry["losses"]


@pytest.mark.heavy
def test_inference_never_imports_tensorflow(full_run):
    """Builders, layers and weight loaders never import TensorFlow off its
    backend (the worker runs every predict / pretrained / load_keras task
    before the training tasks; Keras' own `model.save` imports TensorFlow where it is
    installed)."""
    report, _, spec, _ = full_run
    inference = [t["id"] for t in spec if t["kind"] in ("predict", "pretrained", "load_keras")]
    assert not [i for i in inference if report["tasks"][i]["tensorflow_imported"]]



@pytest.mark.heavy
@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_train_on_backend(tmp_path, backend):
    """`kerasnets train` as a JAX or PyTorch user runs it (tf.data feeds the
    backend's model; the default strategy), and a tf.distribute strategy is
    refused before anything is written."""
    require_backend(backend)
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                tmp_path / "data" / cls / f"{i}.png")
    env = dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="",
               JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))

    def train(output, *extra):
        return subprocess.run(
            [sys.executable, "-m", "kerasnets", "train", "--model", "MobileNetV3Small",
             "--model-arg", "alpha=0.75", "--weights", "none",
             "--dataset", f"folder:{tmp_path / 'data'}", "--epochs", "1", "--batch-size", "4",
             "--image-size", "32", "--output", str(output), *extra],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)

    done = train(tmp_path / "run")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "final: accuracy" in done.stdout and (tmp_path / "run" / "model.keras").is_file()
    refused = train(tmp_path / "refused", "--strategy", "mirrored")
    assert refused.returncode != 0
    assert f"TensorFlow backend only (KERAS_BACKEND is {backend})" in refused.stderr
    assert not (tmp_path / "refused").exists()
