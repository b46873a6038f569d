"""The `kerasnets` command: list, info, predict, and one-line errors."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets import cli, data, imagenet, utils
from kerasnets.weights import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *needles):
    assert code == 1
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
    code, out, _ = run(capsys, "list", "--family", "mobilenet_v3")
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines()
            if line.count("│") > 4 and "MobileNetV3" in line}
    assert set(rows) == {"MobileNetV3", "MobileNetV3Large", "MobileNetV3Small"}
    assert "(generic)" in rows["MobileNetV3"]
    stats = cli.model_stats()["MobileNetV3Small"]
    small = rows["MobileNetV3Small"]
    assert f"{stats['params'] / 1e6:,.2f} M" in small and "2.54 M" in small
    assert f"{stats['macs'] / 1e6:.0f} M" in small  # 56.5 M (the paper: 56 M)
    found = data._weights_entry("MobileNetV3Small", "imagenet")
    assert f"{found[1].top1:.1f}" in small
    assert "imagenet" in small


def test_list_everything_and_unknown_family(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    for name in ("DenseNet121", "DPN92", "SEResNeXt50_32x4d", "IGC_L4M32", "IGCV3"):
        assert name in out
    one_line_error(*run(capsys, "list", "--family", "resnet")[::2], "densenet")


def test_bundled_stats_match_live_counts():
    model = kerasnets.MobileNetV3Small(weights=None)
    stats = cli.model_stats()["MobileNetV3Small"]
    assert stats == {"params": utils.count_trainable_params(model),
                     "macs": utils.count_macs(model, input_shape=(224, 224, 3)),
                     "input_size": 224}
    for name, builder in cli.builders().items():
        assert cli._is_generic(builder) or name in cli.model_stats(), name


def test_info(capsys):
    code, out, _ = run(capsys, "info", "MobileNetV3Small")
    assert code == 0
    assert "arXiv:1905.02244" in out
    assert "parameters: 2,542,856 trainable, 2,554,968 in all" in out
    assert "8768d4c2e7dee89b9d02b2d03d65d862" in out  # keras' published md5
    assert "weights_mobilenet_v3_small_224_1.0_float.h5" in out
    assert "preprocessing: mode none" in out
    code, out, _ = run(capsys, "info", "DenseNet")
    assert code == 0 and "generic builder" in out and "arxiv.org/abs/1608.06993" in out


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
    # No network: the message names the URL and how to place the file.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example: None -- no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    entry = registry.tags_for("MobileNetV3Small_1.0")["imagenet"]
    one_line_error(*run(capsys, "predict", images[0], "--model", "MobileNetV3Small")[::2],
                   entry.url, "place it at", "weights=")


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
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "unknown model 'NoSuchNet'" in result.stderr


def test_predict_without_an_image_uses_the_bundled_sample(capsys, weights_file):
    code, out, err = run(capsys, "predict", "--model", "MobileNetV3Small",
                         "--weights", weights_file, "--top", "2")
    assert code == 0, err
    assert imagenet.sample_image() in out and "probability" in out
