"""`kerasnets convert` / kerasnets.convert: checkpoints (or pretrained
tags) to .weights.h5 and .keras, with the parity report; failures leave no
output behind."""

import dataclasses
import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets import cli, convert
from kerasnets import weights as weights_lib
from kerasnets.convert import parity as convert_parity
from kerasnets.weights import config
from tests.models.mobilenet_common import keras_reference, save_legacy_h5
from tests.parity import (
    assert_logits_close,
    calibrate_torch,
    random_images,
    require,
    save_state_dict,
    torch_logits,
)

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DPN68_SIZE = 64
DPN68_TENSORS = (361, 433)  # variables / tensors in timm's state dict (72 BN counters)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run(model, images):
    return keras.ops.convert_to_numpy(model(images, training=False))


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def dpn68(tmp_path_factory):
    """timm dpn68 with calibrated BN (random weights) and its safetensors file."""
    torch = require("torch")
    timm = require("timm")
    torch.manual_seed(0)
    reference = timm.create_model("dpn68", pretrained=False)
    calibrate_torch(reference, random_images(8, DPN68_SIZE, seed=1), batches=2)
    path = save_state_dict(reference, tmp_path_factory.mktemp("dpn68") / "dpn68.safetensors")
    return reference, path


@pytest.fixture(scope="module")
def mobilenet_v2_files(tmp_path_factory):
    """keras.applications MobileNetV2 (alpha 0.35, 96 px) with random weights and
    calibrated BN, as legacy .h5 files with and without the classifier, and the
    reference's logits and pooled features on ``images``."""
    folder = tmp_path_factory.mktemp("mobilenet_v2")
    images = random_images(4, 96, seed=5)
    top = keras_reference(keras.applications.MobileNetV2, random_images(8, 96, seed=4),
                          alpha=0.35, input_shape=(96, 96, 3))
    headless = keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3),
                                              include_top=False, weights=None, pooling="avg")
    headless.set_weights(top.get_weights()[:-2])  # all but the classifier
    files = dict(
        top=save_legacy_h5(top, folder / "mobilenet_v2_0.35_96.h5"),
        notop=save_legacy_h5(headless, folder / "mobilenet_v2_0.35_96_no_top.h5"),
        images=images,
        logits=keras.ops.convert_to_numpy(top(images, training=False)),
        features=keras.ops.convert_to_numpy(headless(images, training=False)),
    )
    keras.backend.clear_session()
    return files


MOBILENET_V2 = {"alpha": 0.35, "input_shape": (96, 96, 3)}


# ------------------------------------------------------------ conversions


def test_timm_safetensors_to_weights_h5(dpn68, tmp_path):
    reference, source = dpn68
    output = tmp_path / "out" / "dpn68.weights.h5"
    report = convert.convert(source, "DPN68", output,
                             model_kwargs={"input_shape": (DPN68_SIZE, DPN68_SIZE, 3)})
    parity = report.parity
    assert parity.status == "ok", parity.describe()
    assert parity.reference == "timm dpn68" and parity.what == "logits"
    assert parity.max_abs_diff <= 1e-3 * parity.spread
    assert parity.image_size == (DPN68_SIZE, DPN68_SIZE) and parity.images == 4
    assert (report.tensors_loaded, report.source_tensors) == DPN68_TENSORS
    assert report.unused["BatchNorm step counters"] == 72
    assert report.parameters == 12_676_718 and report.trainable_parameters == 12_611_602
    assert report.source_format == "safetensors"
    assert report.output == str(output) and report.output_kind == "Keras weights"
    assert report.output_bytes == os.path.getsize(output)
    assert report.output_sha256 == sha256(output)
    assert os.listdir(output.parent) == ["dpn68.weights.h5"]  # no temporary left
    # The written file is the converted checkpoint: timm's logits.
    model = kerasnets.DPN68(weights=str(output), input_shape=(DPN68_SIZE, DPN68_SIZE, 3),
                            classifier_activation=None)
    images = random_images(2, DPN68_SIZE, seed=7)
    assert_logits_close(run(model, images), torch_logits(reference, images), tol=1e-3)


@pytest.mark.heavy
def test_cli_process_timm_safetensors_to_keras_model(dpn68, tmp_path):
    """`python -m kerasnets convert` as users run it: TensorFlow is imported
    first, so timm runs in a subprocess of its own."""
    reference, source = dpn68
    output = tmp_path / "dpn68.keras"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "kerasnets", "convert", str(source), "--model", "DPN68",
         "--input-size", str(DPN68_SIZE), "-o", str(output)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "DPN68: converted" in out
    assert "361 of 433 in the source (unused: 72 BatchNorm step counters)" in out
    assert "12,676,718 (12,611,602 trainable)" in out
    assert "timm dpn68, 4 random images 64x64" in out and "(ok, tolerance 0.001)" in out
    assert sha256(output) in out
    model = keras.saving.load_model(output, safe_mode=True)  # no Lambda layers
    images = random_images(2, DPN68_SIZE, seed=8)
    np.testing.assert_allclose(run(model, images).sum(axis=1), 1.0, rtol=1e-5)  # softmax
    logits = convert_parity._keras_outputs(model, images, True)  # the softmax set aside
    assert_logits_close(logits, torch_logits(reference, images), tol=1e-3)


def test_cli_headless_conversion_checks_features(dpn68, tmp_path, capsys):
    _, source = dpn68
    output = tmp_path / "dpn68_notop.weights.h5"
    code, out, err = run_cli(capsys, "convert", source, "--model", "DPN68", "--no-top",
                             "--model-arg", "pooling=avg", "--input-size", DPN68_SIZE,
                             "--images", 3, "-o", output)
    assert code == 0, err
    assert "include_top=False" in out
    assert "359 of 433 in the source" in out
    assert "2 classifier tensors (include_top=False)" in out
    assert "3 random images" in out and "of the feature spread" in out and "(ok," in out
    headless = kerasnets.DPN68(weights=str(output), include_top=False, pooling="avg",
                               input_shape=(DPN68_SIZE, DPN68_SIZE, 3))
    assert headless.output_shape == (None, 832)


def test_keras_h5_to_weights_h5_with_keras_applications_parity(mobilenet_v2_files, tmp_path):
    output = tmp_path / "mobilenet_v2.weights.h5"
    report = convert.convert(mobilenet_v2_files["top"], "MobileNetV2", output,
                             model_kwargs=MOBILENET_V2)
    assert report.parity.status == "ok", report.parity.describe()
    assert report.parity.reference == "keras.applications.MobileNetV2"
    assert report.parity.max_abs_diff <= 1e-4 * report.parity.spread  # the same graph
    assert report.source_format == "keras_h5"
    assert report.tensors_loaded == report.source_tensors == 262
    model = kerasnets.MobileNetV2(weights=str(output), classifier_activation=None,
                                  **MOBILENET_V2)
    assert_logits_close(run(model, mobilenet_v2_files["images"]),
                        mobilenet_v2_files["logits"], tol=1e-4)


def test_registry_tag_is_fetched_cached_and_converted(mobilenet_v2_files, tmp_path,
                                                       monkeypatch):
    """SOURCE = a tag: downloaded (file:// here) as weights="imagenet" is; the
    file follows the builder's options (alpha 0.35 at 96 px), and without the
    classifier the no-top file is used."""
    home = tmp_path / "home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    cfg = weights_lib.pretrained_cfg("MobileNetV2", options={"alpha": 0.35}, input_size=96)
    served = dataclasses.replace(
        cfg, url="file://" + mobilenet_v2_files["top"],
        file_hash=sha256(mobilenet_v2_files["top"]),
        notop_url="file://" + mobilenet_v2_files["notop"],
        notop_hash=sha256(mobilenet_v2_files["notop"]))
    monkeypatch.setitem(config._CFGS, "MobileNetV2",
                        [served if c is cfg else c for c in config._CFGS["MobileNetV2"]])
    output = tmp_path / "mobilenet_v2_notop.keras"
    report = convert.convert("imagenet", "MobileNetV2", output, include_top=False,
                             model_kwargs=dict(MOBILENET_V2, pooling="avg"))
    cached = home / "models" / "kerasnets" / "MobileNetV2.imagenet.mobilenet_v2_0.35_96_no_top.h5"
    assert report.source == "imagenet" and report.source_path == str(cached)
    assert sha256(cached) == sha256(mobilenet_v2_files["notop"])
    assert report.parity.status == "ok" and report.parity.what == "features"
    assert report.tensors_loaded == report.source_tensors == 260
    assert any(n.endswith(".weights.h5") for n in os.listdir(cached.parent))  # cache too
    model = keras.saving.load_model(output, safe_mode=True)
    np.testing.assert_allclose(run(model, mobilenet_v2_files["images"]),
                               mobilenet_v2_files["features"], rtol=1e-5, atol=1e-5)


def test_pytorchcv_igcv3_checkpoint(tmp_path):
    """IGCV3 reads pytorchcv's layout: pytorchcv is its reference (224 px)."""
    torch = require("torch")
    require("pytorchcv")
    from pytorchcv.model_provider import get_model

    torch.manual_seed(0)
    reference = get_model("igcv3_w1", pretrained=False)
    calibrate_torch(reference, random_images(4, 224, seed=1), batches=2)
    path = save_state_dict(reference, tmp_path / "igcv3_w1.pth")
    report = convert.convert(path, "IGCV3", tmp_path / "igcv3.weights.h5")
    assert report.parity.status == "ok", report.parity.describe()
    assert report.parity.reference == "pytorchcv igcv3_w1"
    assert report.parity.image_size == (224, 224)
    assert report.source_format == "pth" and report.trainable_parameters == 3_491_688
    small = convert.check_parity(
        kerasnets.IGCV3(weights=None, input_shape=(64, 64, 3)), "IGCV3", path, "pth")
    assert small.status == "skipped" and "runs at 224x224 only" in small.reason


def test_mxnet_source_has_no_reference(tmp_path, capsys):
    code, out, err = run_cli(
        capsys, "convert", os.path.join(DATA, "igc_cifar_l2m2_d8.params"), "--model",
        "IGCV1CIFAR", "--model-arg", "L=2", "--model-arg", "M=2", "--model-arg", "depth=8",
        "--input-size", 16, "-o", tmp_path / "igc.weights.h5")
    assert code == 0, err
    assert "MXNet checkpoint (.params)" in out
    if importlib.util.find_spec("mxnet") is None:
        assert "skipped: no reference installed (MXNet)" in out
    model = kerasnets.IGCV1CIFAR(2, 2, 8, weights=str(tmp_path / "igc.weights.h5"),
                                 input_shape=(16, 16, 3))
    assert model.output_shape == (None, 10)


def test_no_parity_option(mobilenet_v2_files, tmp_path):
    report = convert.convert(mobilenet_v2_files["top"], "MobileNetV2",
                             tmp_path / "m.weights.h5", parity=False,
                             model_kwargs=MOBILENET_V2)
    assert report.parity.status == "skipped" and "not requested" in report.parity.reason


# --------------------------------------------------------------- failures


def assert_one_line_error(code, err, *fragments):
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kerasnets: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("damage", ["random", "truncated"])
def test_bad_sources_give_one_line_and_no_output(mobilenet_v2_files, tmp_path, capsys,
                                                 damage):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rng = np.random.default_rng(0)
    if damage == "random":
        source = tmp_path / "random.safetensors"
        source.write_bytes(rng.bytes(4096))
        argv = ("--model", "MobileNetV3Small", "--input-size", 64)
        expected = ("random.safetensors", "not a readable safetensors checkpoint")
    else:
        data = Path(mobilenet_v2_files["top"]).read_bytes()
        source = tmp_path / "truncated.h5"
        source.write_bytes(data[: len(data) // 2])
        argv = ("--model", "MobileNetV2", "--model-arg", "alpha=0.35", "--input-size", 96)
        expected = ("truncated.h5", "truncated or corrupt")
    for output in (out_dir / "x.weights.h5", out_dir / "x.keras"):
        code, _, err = run_cli(capsys, "convert", source, *argv, "-o", output)
        assert_one_line_error(code, err, *expected)
    assert os.listdir(out_dir) == []


def test_usage_errors(tmp_path, capsys):
    code, _, err = run_cli(capsys, "convert", tmp_path / "missing.pth", "--model", "DPN68",
                           "-o", tmp_path / "x.weights.h5")
    assert_one_line_error(code, err, "missing.pth", "does not exist")
    code, _, err = run_cli(capsys, "convert", "imagenet", "--model", "DPN68",
                           "-o", tmp_path / "x.h5")
    assert_one_line_error(code, err, "'.weights.h5'", "'.keras'")
    code, _, err = run_cli(capsys, "convert", "in22k", "--model", "DPN68",
                           "-o", tmp_path / "x.keras")
    assert_one_line_error(code, err, "Unknown weights 'in22k' for DPN68")
    code, _, err = run_cli(capsys, "convert", "imagenet", "--model", "IGCV2",
                           "-o", tmp_path / "x.keras")
    assert_one_line_error(code, err, "no published pretrained weights")
    code, _, err = run_cli(capsys, "convert", "imagenet", "--model", "DPN68", "--model-arg",
                           "weights=None", "-o", tmp_path / "x.keras")
    assert code == 2 and "--model-arg weights: the weights are SOURCE" in err  # usage error
    assert os.listdir(tmp_path) == []


def test_parity_failure_writes_nothing(mobilenet_v2_files, tmp_path, capsys, monkeypatch):
    keras_outputs = convert_parity._keras_outputs
    monkeypatch.setattr(convert_parity, "_keras_outputs",
                        lambda *args: keras_outputs(*args) + np.linspace(0, 1, 1000))
    code, out, err = run_cli(capsys, "convert", mobilenet_v2_files["top"], "--model",
                             "MobileNetV2", "--model-arg", "alpha=0.35", "--input-size", 96,
                             "-o", tmp_path / "m.weights.h5")
    assert_one_line_error(code, err, "does not match keras.applications.MobileNetV2",
                          "nothing was written", "--no-parity")
    assert "parity check failed, nothing written" in out and "MISMATCH" in out
    assert sorted(os.listdir(tmp_path)) == []


def test_failed_save_leaves_no_partial_file(mobilenet_v2_files, tmp_path, monkeypatch):
    def half_written(self, path, *args, **kwargs):
        Path(path).write_bytes(b"\x89HDF partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(keras.Model, "save_weights", half_written)
    with pytest.raises(OSError, match="No space left"):
        convert.convert(mobilenet_v2_files["top"], "MobileNetV2", tmp_path / "m.weights.h5",
                        parity=False, model_kwargs=MOBILENET_V2)
    assert os.listdir(tmp_path) == []
