"""The `kerasnets` command: list, info, predict, and one-line errors."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets import cli, data, imagenet, registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *needles, status=1):
    assert code == status
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kerasnets: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(180, 240), (256, 200)]):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        pixels[h // 4: h // 2, :, i] = 255  # some structure
        path = folder / f"image{i}.{'png' if i else 'jpg'}"
        encode = tf.io.encode_png if i else tf.io.encode_jpeg
        path.write_bytes(encode(pixels).numpy())
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    from tests.parity import randomize_keras

    model = kerasnets.MobileNetV3Small(weights=None)
    randomize_keras(model, seed=1)
    path = str(tmp_path_factory.mktemp("w") / "small.weights.h5")
    model.save_weights(path)
    return path


def test_list_family_rows(capsys):
    code, out, _ = run(capsys, "list", "--family", "MobileNet_V3", "--generic")
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines()
            if line.count("│") > 4 and "MobileNetV3" in line}
    assert set(rows) == {"MobileNetV3", "MobileNetV3Large", "MobileNetV3Small"}
    assert "(generic)" in rows["MobileNetV3"]
    stats = registry.indexed("MobileNetV3Small")
    small = rows["MobileNetV3Small"]
    assert f"{stats['params'] / 1e6:,.2f} M" in small and "2.54 M" in small
    assert f"{stats['macs'] / 1e6:.0f} M" in small  # 56.5 M (the paper: 56 M)
    top1 = kerasnets.weights.pretrained_cfg("MobileNetV3Small").top1
    assert f"{top1:.1f}" in small
    assert "imagenet" in small


def test_list_everything_natural_order_and_unknown_family(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    for name in ("DenseNet121", "DPN92", "SEResNeXt50_32x4d", "IGC_L4M32", "IGCV3"):
        assert name in out
    assert out.index("DPN68 ") < out.index("DPN92") < out.index("DPN107")
    one_line_error(*run(capsys, "list", "--family", "densnet")[::2], "did you mean densenet",
                   status=2)
    code, out, _ = run(capsys, "list", "se*resnext*", "--pretrained")
    assert code == 0 and "SEResNeXt50_32x4d" in out and "SEResNet50 " not in out


def test_help_list_and_info_do_not_import_tensorflow():
    code = ("import sys\n"
            "from kerasnets import cli\n"
            "for argv in (['--help'], ['list'], ['info', 'dpn92'], ['info', 'DenseNet']):\n"
            "    try:\n"
            "        cli.main(argv)\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print('LOADED', sorted(m for m in ('tensorflow', 'keras', 'torch', 'jax') "
            "if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert "LOADED []" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stderr == ""


def test_info(capsys):
    code, out, _ = run(capsys, "info", "mobilenetv3small")
    assert code == 0
    assert "arXiv:1905.02244" in out
    assert "parameters: 2,542,856 trainable, 2,554,968 in all" in out
    assert "8768d4c2e7dee89b9d02b2d03d65d862" in out  # keras' published md5
    assert "weights_mobilenet_v3_small_224_1.0_float.h5" in out
    assert "mean 0.000, 0.000, 0.000, std 1.000, 1.000, 1.000" in out  # rescales itself
    assert "reference implementation (parity): timm:tf_mobilenetv3_small_100" in out
    code, out, _ = run(capsys, "info", "DenseNet")
    assert code == 0 and "generic builder" in out and "arxiv.org/abs/1608.06993" in out
    code, out, _ = run(capsys, "info", "DPN92")
    assert "Figures (generated): 37,668,392 trainable parameters" in out or \
        "37,668,392 trainable" in out
    one_line_error(*run(capsys, "info", "DPN93")[::2], "did you mean", "DPN92", status=2)


def test_predict_matches_the_library(capsys, images, weights_file):
    code, out, err = run(capsys, "predict", *images, "--model", "MobileNetV3Small",
                         "--weights", weights_file, "--top", "3")
    assert code == 0, err
    model = kerasnets.MobileNetV3Small(weights=weights_file)
    batch = np.stack([data.load_image(p, "MobileNetV3Small", weights_file, image_size=224)
                      for p in images])
    expected = imagenet.decode_predictions(model.predict(batch, verbose=0), top=3)
    for path, rows in zip(images, expected):
        section = out.split(path)[1]
        for rank, (wnid, name, score) in enumerate(rows, 1):
            assert name in section and wnid in section
            assert f"{100 * float(score):.2f}%" in section


def test_predict_errors_are_one_line(capsys, images, weights_file, tmp_path, monkeypatch):
    one_line_error(*run(capsys, "predict", str(tmp_path / "missing.jpg"), "--model",
                        "MobileNetV3Small", "--weights", weights_file)[::2],
                   "no such image file")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    one_line_error(*run(capsys, "predict", str(text), "--model", "MobileNetV3Small",
                        "--weights", weights_file)[::2], "not a readable image")
    one_line_error(*run(capsys, "predict", images[0], "--model", "MobileNetV3Small",
                        "--weights", "nope")[::2], "Unknown weights 'nope'")
    one_line_error(*run(capsys, "predict", images[0], "--model", "MobileNetV3Small",
                        "--top", "0")[::2], "--top", status=2)
    one_line_error(*run(capsys, "predict", images[0])[::2], "--model is required", status=2)
    # No network: the message names the URL and how to place the file.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example: None -- no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    cfg = kerasnets.weights.pretrained_cfg("MobileNetV3Small")
    one_line_error(*run(capsys, "predict", images[0], "--model", "MobileNetV3Small")[::2],
                   cfg.url, "place it at", "--weights PATH")


def test_command_line_exit_status_without_traceback(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-m", "kerasnets", "predict", str(tmp_path / "none.jpg"),
         "--model", "MobileNetV3Small"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"kerasnets: error: no such image file: {tmp_path / 'none.jpg'}")
    result = subprocess.run(
        [sys.executable, "-m", "kerasnets", "info", "NoSuchNet"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kerasnets: error: Unknown model 'NoSuchNet'")
    # No TensorFlow banner before the one-line error of a command that loads it.
    assert len(result.stderr.strip().splitlines()) == 1


def test_predict_without_an_image_uses_the_bundled_sample(capsys, weights_file):
    code, out, err = run(capsys, "predict", "--model", "MobileNetV3Small",
                         "--weights", weights_file, "--top", "2")
    assert code == 0, err
    assert imagenet.sample_image() in out and "probability" in out


def test_predict_a_trained_keras_file_without_model(capsys, tmp_path, images):
    model = kerasnets.MobileNetV3Small(weights=None, input_shape=(64, 64, 3), classes=3)
    path = tmp_path / "run" / "model.keras"
    path.parent.mkdir()
    model.save(path)
    prep = kerasnets.preprocessing.for_model("MobileNetV3Small", None)
    import dataclasses
    import json

    (path.parent / "config.json").write_text(json.dumps(
        {"model": "MobileNetV3Small", "class_names": ["ant", "bee", "cat"],
         "preprocessing": dataclasses.asdict(prep)}))
    code, out, err = run(capsys, "predict", images[0], "--weights", str(path), "--top", "2")
    assert code == 0, err
    expected = model.predict(data.load_image(images[0], image_size=64,
                                             preprocessing=prep)[None], verbose=0)[0]
    best = ["ant", "bee", "cat"][int(np.argmax(expected))]
    assert best in out.split("│ 1 │")[1].splitlines()[0]
    code, out, err = run(capsys, "predict", images[0], "--model", "MobileNetV3Small",
                         "--weights", "none", "--model-arg", "alpha=0.75", "--top", "1")
    assert code == 0, err
    assert "weights random" in out
