"""kerasnets.export and `kerasnets export`: LiteRT, ONNX and SavedModel
round trips checked against Keras, int8 calibration, rewrites, errors.

Models are random (weights=None) at small sizes with calibrated BatchNorm
statistics and random BN affine weights (tests.parity.calibrate_keras), so
their logits depend on the input and a comparison means something.
"""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets import cli, data, export
from tests.imagefolders import make_image_folder
from tests.parity import assert_logits_close, calibrate_keras

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 64

# One builder of each family that has its own layers or ops: inverted
# residuals, hard-swish + SE, dense concatenation, dual paths with grouped
# convs, SE + grouped convs, interleaved group convs, IGCV3's group convs +
# channel shuffle.
ROUND_TRIP = ["MobileNetV2", "MobileNetV3Small", "DenseNet121", "DPN68",
              "SEResNeXt50_32x4d", "IGC_L4M32", "IGCV3"]


def leftovers(directory):
    """Partial or backup files an export left behind."""
    return [name for name in os.listdir(directory) if ".partial-" in name or ".old-" in name]


def calibrated(builder, images, **kwargs):
    model = getattr(kerasnets, builder)(weights=None, input_shape=images.shape[1:],
                                        classifier_activation=None, **kwargs)
    calibrate_keras(model, images)
    return model


def sample(builder, size=SIZE, n=16):
    prep = data.preprocessing_for(builder, None)
    return export.calibration_images(export.SYNTHETIC, size, prep, n)


@pytest.fixture
def tiny_model():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(5)(x), name="tiny")


# ------------------------------------------------------------- round trips


@pytest.mark.heavy
@pytest.mark.parametrize("builder", ROUND_TRIP)
def test_litert_and_onnx_round_trips(builder, tmp_path):
    images = sample(builder)
    model = calibrated(builder, images)
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    for fmt, name in (("tflite", "model.tflite"), ("onnx", "model.onnx")):
        path = tmp_path / name
        report = export.export_model(model, path, calibration=images)
        assert report.format == fmt and report.quantize is None
        assert report.weights == "as given"
        assert report.input_shape == (None, SIZE, SIZE, 3)
        assert report.compared == "logits" and report.samples == 16
        assert report.relative_diff <= export.DEFAULT_RTOL, report
        assert report.agreement >= 15 / 16
        assert report.file_size == os.path.getsize(path) > 0
        # Independently of the report: the file itself, batch size changed.
        run = export.load_exported(path)
        actual = np.concatenate([run(images[:5]), run(images[5:])])
        ratio = assert_logits_close(actual, expected, tol=export.DEFAULT_RTOL)
        print(f"{builder} {fmt}: max abs diff {report.max_abs_diff:.3g}, "
              f"relative {report.relative_diff:.2e} ({ratio:.2e})")
    import onnx

    ops = {node.op_type for node in onnx.load(str(tmp_path / "model.onnx")).graph.node}
    assert "StatefulPartitionedCall" not in ops and "Conv" in ops
    assert leftovers(tmp_path) == []


def test_savedmodel_round_trip_and_replace(tmp_path):
    images = sample("IGCV1CIFAR", size=32, n=8)
    model = calibrated("IGCV1CIFAR", images, L=2, M=8, depth=8)
    path = tmp_path / "igc_savedmodel"
    report = export.export_model(model, path, calibration=images)
    assert report.format == "savedmodel"
    assert os.path.isfile(path / "saved_model.pb")
    assert report.relative_diff <= export.DEFAULT_RTOL
    run = export.load_exported(path)
    assert_logits_close(run(images), keras.ops.convert_to_numpy(model(images)), tol=1e-3)
    # A second export replaces the first whole.
    (path / "stale.txt").write_text("from the previous export")
    export.export_model(model, path, calibration=images)
    assert not (path / "stale.txt").exists() and leftovers(tmp_path) == []


@pytest.mark.heavy
def test_int8_mobilenet_v2_calibrated_on_an_image_folder(tmp_path):
    """A random backbone with a classifier fitted to four colour classes:
    the int8 model must classify the calibration images as Keras does."""
    folder = make_image_folder(str(tmp_path / "colours"), per_class=8, size=(72, 80))
    prep = data.preprocessing_for("MobileNetV2", None)
    ds = data.load("folder:" + folder, "train", SIZE, 32, preprocessing=prep)
    images, labels = (np.asarray(t) for t in next(iter(ds)))
    model = kerasnets.MobileNetV2(weights=None, input_shape=(SIZE, SIZE, 3), classes=4,
                                  classifier_activation=None)
    calibrate_keras(model, images)
    features = keras.Model(model.input, model.get_layer("avg_pool").output)(images)
    features = np.concatenate([np.asarray(features), np.ones((len(images), 1))], 1)
    targets = 10.0 * np.eye(4)[labels]
    solution = np.linalg.solve(features.T @ features + 1e-3 * np.eye(features.shape[1]),
                               features.T @ targets).astype("float32")
    model.get_layer("predictions").set_weights([solution[:-1], solution[-1]])

    path = tmp_path / "int8.tflite"
    report = export.export_model(model, path, quantize="int8", calibration=folder,
                                 calibration_samples=32)
    assert report.quantize == "int8" and report.samples == 32
    assert report.sample_source == f"{folder}, train"
    assert report.agreement >= 0.9, report
    assert report.rtol is None and report.min_agreement == export.DEFAULT_MIN_AGREEMENT
    # Weights stored as int8: about a quarter of the float32 parameters.
    assert report.file_size < 0.4 * 4 * model.count_params()
    interpreter = export.checks._tflite_interpreter(str(path))
    dtypes = {d["dtype"] for d in interpreter.get_tensor_details()}
    assert np.int8 in dtypes
    assert interpreter.get_input_details()[0]["dtype"] == np.float32
    print(f"int8 MobileNetV2: agreement {report.agreement:.2f}, "
          f"relative diff {report.relative_diff:.2f}, {report.file_size / 1e6:.2f} MB")


# ------------------------------------------------- rewrites, custom gradient


def test_stock_grouped_conv2d_and_mixed_precision_are_rewritten(tmp_path):
    inputs = keras.Input((16, 16, 8))
    x = keras.layers.Conv2D(16, 3, groups=4, padding="same", name="grouped")(inputs)
    x = keras.layers.BatchNormalization(dtype="mixed_float16")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(6, dtype="float32")(x))
    images = np.random.default_rng(0).normal(size=(8, 16, 16, 8)).astype("float32")
    calibrate_keras(model, images)
    report = export.export_model(model, tmp_path / "m.onnx", calibration=images)
    assert report.rewrites == ("Conv2D(groups>1) -> GroupConv2D: 1",
                               "mixed precision -> float32: 1 layers")
    assert report.relative_diff <= export.DEFAULT_RTOL
    assert type(model.get_layer("grouped")) is keras.layers.Conv2D  # not modified


@pytest.mark.heavy
def test_export_with_the_custom_gradient_path(tmp_path):
    """Without oneDNN on a CPU, GroupConv2D wraps its convolution in
    tf.custom_gradient; the exports must still hold plain convolutions."""
    script = textwrap.dedent(f"""
        import os
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
        import keras, numpy as np, onnx
        from kerasnets import export
        from kerasnets.layers import GroupConv2D, group_conv
        if not group_conv._needs_custom_gradient():
            print("SKIP: this machine differentiates grouped convolutions natively")
            raise SystemExit(0)
        inputs = keras.Input((12, 12, 16))
        x = GroupConv2D(16, 3, groups=8, padding="same")(inputs)   # 2 channels a group
        x = GroupConv2D(16, 3, groups=2, strides=2)(x)             # 8 channels a group
        model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
        for path in ({str(tmp_path / 'g.onnx')!r}, {str(tmp_path / 'g.tflite')!r}):
            report = export.export_model(model, path)
            assert report.relative_diff <= export.DEFAULT_RTOL, report
        ops = {{n.op_type for n in onnx.load({str(tmp_path / 'g.onnx')!r}).graph.node}}
        assert not ops & {{"IdentityN", "StatefulPartitionedCall"}}, ops
        print("OK", sorted(ops))
    """)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3",
               TF_ENABLE_ONEDNN_OPTS="0", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=False,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    if "SKIP" in result.stdout:
        pytest.skip(result.stdout.strip())
    assert "OK" in result.stdout


# ---------------------------------------------------------------- the CLI


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *needles, status=1):
    assert code == status
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kerasnets: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_cli_exports_a_keras_file(tmp_path, capsys):
    model = kerasnets.IGCV1CIFAR(L=2, M=8, depth=8, weights=None)  # softmax top
    calibrate_keras(model, sample("IGCV1CIFAR", size=32, n=8))
    model_file = tmp_path / "igc.keras"
    model.save(model_file)
    out_path = tmp_path / "exports" / "igc.onnx"
    code, out, err = run(capsys, "export", model_file, "-o", out_path, "--image-size", 32)
    assert code == 0, err
    assert out_path.is_file() and leftovers(tmp_path / "exports") == []
    for text in ("max abs diff", "relative diff", "log-probabilities", "from igc.keras",
                 "onnx", "(batch, 32, 32, 3)"):
        assert text in out, out


def test_cli_user_mistakes_are_one_line_errors(tmp_path, capsys, tiny_model, monkeypatch):
    model_file = tmp_path / "tiny.keras"
    tiny_model.save(model_file)
    one_line_error(*run(capsys, "export", model_file, "-o", tmp_path / "m.pb",
                        "--format", "protobuf")[::2], "Unknown export format 'protobuf'")
    one_line_error(*run(capsys, "export", "MobileNetV2", "-o", tmp_path / "m.tflite",
                        "--quantize", "int8", "--weights", "none")[::2],
                   "int8 quantization needs calibration images")
    one_line_error(*run(capsys, "export", "MobileNetV2", "-o", tmp_path / "m.onnx",
                        "--quantize", "float16")[::2], "for LiteRT exports")
    one_line_error(*run(capsys, "export", "MobileNetV2", "-o", tmp_path / "m.onnx",
                        "--format", "tflite")[::2], ".tflite file")
    one_line_error(*run(capsys, "export", model_file, "-o", tmp_path / "m.onnx",
                        "--weights", "imagenet")[::2], "carries its weights", status=2)
    one_line_error(*run(capsys, "export", "DenseNet", "-o", tmp_path / "m.onnx")[::2],
                   "generic builder", status=2)
    one_line_error(*run(capsys, "export", "NoSuchNet", "-o", tmp_path / "m.onnx")[::2],
                   "Unknown model 'NoSuchNet'", status=2)
    one_line_error(*run(capsys, "export", model_file, "-o", tmp_path / "model.pdf")[::2],
                   "Cannot tell the export format", "'.pdf'")
    assert not (tmp_path / "model.pdf").exists()
    one_line_error(*run(capsys, "export", tmp_path / "none.keras", "-o",
                        tmp_path / "m.onnx")[::2], "No such model file")
    one_line_error(*run(capsys, "export", model_file, "-o", tmp_path / "m.tflite",
                        "--quantize", "int8", "--calibration", "synthetic")[::2],
                   "Cannot tell how tiny preprocesses", "--preprocessing")
    # Builder names default to the ImageNet weights; offline, the message
    # names the URL (the weights registry's error).
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example: None -- no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    entry = kerasnets.weights.pretrained_cfg("MobileNetV3Small")
    one_line_error(*run(capsys, "export", "MobileNetV3Small", "-o", tmp_path / "m.onnx")[::2],
                   entry.url)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("user data")
    one_line_error(*run(capsys, "export", model_file, "-o", tmp_path / "notes")[::2],
                   "holds no SavedModel")
    assert (tmp_path / "notes" / "keep.txt").exists()
    assert not any(p.name.startswith("m.") or ".partial-" in p.name for p in tmp_path.iterdir())


# ---------------------------------------------------------- check failures


def test_failed_check_leaves_nothing_and_keeps_the_old_file(tmp_path, tiny_model,
                                                            monkeypatch):
    path = tmp_path / "tiny.onnx"
    path.write_bytes(b"previous export")

    def broken(path, format=None):
        return lambda x: np.zeros((len(x), 5), np.float32)

    monkeypatch.setattr(export.exporter, "load_exported", broken)
    with pytest.raises(export.ExportError, match="does not match Keras"):
        export.export_model(tiny_model, path)
    assert path.read_bytes() == b"previous export"
    assert leftovers(tmp_path) == []
    fresh = tmp_path / "new" / "deeper" / "tiny.onnx"
    with pytest.raises(export.ExportError):
        export.export_model(tiny_model, fresh)
    assert not (tmp_path / "new").exists()  # directories it made are gone too


def test_argument_errors(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="Unknown export format"):
        export.export_model(tiny_model, tmp_path / "m.x", format="caffe2")
    with pytest.raises(ValueError, match="needs calibration images"):
        export.export_model(tiny_model, tmp_path / "m.tflite", quantize="int8")
    with pytest.raises(ValueError, match="Unknown quantization"):
        export.export_model(tiny_model, tmp_path / "m.tflite", quantize="int4")
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        export.export_model(tiny_model, tmp_path / "dir.onnx")
    with pytest.raises(ValueError, match="A SavedModel is a directory"):
        export.export_model(tiny_model, tmp_path / "m.keras", format="savedmodel")
    with pytest.raises(ValueError, match="for LiteRT exports"):
        export.export_model(tiny_model, tmp_path / "m", quantize="float16")
    assert os.listdir(tmp_path) == ["dir.onnx"]


# ------------------------------------------------------------- the numbers


def test_compare_measures_softmax_outputs_as_log_probabilities():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (8, 10))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    shifted = logits + 1e-3 * rng.normal(size=logits.shape)
    probs2 = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
    numbers = export.compare(probs, probs2)
    assert numbers["compared"] == "log-probabilities"
    expected = np.log(probs).std(0).mean()
    assert numbers["scale"] == pytest.approx(expected)
    assert 1e-4 < numbers["relative_diff"] < 2e-3
    assert numbers["agreement"] == 1.0
    flat = export.compare(np.ones((4, 3)), np.ones((4, 3)) + 1e-6)  # input-independent
    assert flat["scale"] == pytest.approx(export.checks.SCALE_FLOOR)
    with pytest.raises(export.ExportError, match="shape"):
        export.compare(np.ones((4, 3)), np.ones((4, 2)))


def test_format_and_builder_names():
    assert export.resolve_format(None, "a/b.tflite") == "tflite"
    assert export.resolve_format(None, "a/b.onnx") == "onnx"
    assert export.resolve_format(None, "a/b") == "savedmodel"
    assert export.resolve_format("litert", "b.tflite") == "tflite"
    assert export.builder_for("densenet121") == "DenseNet121"
    assert export.builder_for("mobilenetv2_1.00_224") == "MobileNetV2"
    assert export.builder_for("seresnext50_32x4d") == "SEResNeXt50_32x4d"
    assert export.builder_for("se_mobilenet_1.00") == "SEMobileNet"
    assert export.builder_for("densenet99") == "DenseNet"  # the family's preprocessing
    assert export.builder_for("mobilenetv9") is None
    assert export.builder_for("my_model") is None


def test_formats_keras_cannot_export_on_a_backend_are_refused_first():
    """Measured with Keras 3.15 (README "Backends"): LiteRT needs TensorFlow
    (or litert-torch), SavedModel fails on PyTorch. The refusal names the
    backend that exports it."""
    from kerasnets.export.checks import BACKEND_FORMATS, check_backend_format

    for backend, formats in BACKEND_FORMATS.items():
        for format in formats:
            check_backend_format(format, backend)
    assert set(BACKEND_FORMATS["tensorflow"]) == set(export.FORMATS)
    with pytest.raises(ValueError, match="cannot export tflite on the jax backend.*"
                                         "KERAS_BACKEND=tensorflow"):
        check_backend_format("tflite", "jax")
    with pytest.raises(ValueError, match="cannot export savedmodel on the torch backend"):
        check_backend_format("savedmodel", "torch")
