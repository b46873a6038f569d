"""The bundled ImageNet class index and decode_predictions (offline)."""

import hashlib
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

from kerasnets import imagenet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INDEX = os.path.join(ROOT, "kerasnets", "resources", "imagenet_class_index.json")
# The hash keras.applications.imagenet_utils checks its downloaded copy against.
KERAS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"
FAMILIES = ("densenet", "dpn", "igc", "igc_v3", "mobilenet", "mobilenet_v2",
            "mobilenet_v3", "senet")


def test_bundled_index_is_keras_file():
    with open(INDEX, "rb") as f:
        assert hashlib.md5(f.read()).hexdigest() == KERAS_INDEX_MD5
    index = imagenet.class_index()
    assert len(index) == 1000
    assert index["0"] == ["n01440764", "tench"]
    assert index["2"] == ["n01484850", "great_white_shark"]
    assert index["607"] == ["n03590841", "jack-o'-lantern"]
    assert index["999"] == ["n15075141", "toilet_tissue"]
    wnids = imagenet.wordnet_ids()
    assert wnids == sorted(wnids) and len(set(wnids)) == 1000
    names = imagenet.class_names()
    assert names[134] == names[517] == "crane"  # keras' two repeated names
    assert names[638] == names[639] == "maillot"
    assert len(set(names)) == 998


@pytest.mark.heavy
def test_generator_reproduces_bundled_file():
    pytest.importorskip("timm")
    tool = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "make_class_index.py"), "--check"],
        capture_output=True, text=True,
    )
    assert tool.returncode == 0, tool.stdout + tool.stderr


def test_decode_predictions_keras_semantics():
    rng = np.random.default_rng(0)
    preds = rng.random((3, 1000)).astype("float32")
    preds[0, 281] = 5.0
    decoded = imagenet.decode_predictions(preds, top=4)
    assert len(decoded) == 3 and all(len(row) == 4 for row in decoded)
    assert decoded[0][0] == ("n02123045", "tabby", np.float32(5.0))
    names = imagenet.class_names()
    for row, pred in zip(decoded, preds):
        order = np.argsort(pred)[::-1][:4]
        assert [r[1] for r in row] == [names[i] for i in order]
        assert [r[2] for r in row] == list(pred[order])
        assert [r[2] for r in row] == sorted((r[2] for r in row), reverse=True)
    assert len(imagenet.decode_predictions(preds, top=1)[2]) == 1


def test_decode_predictions_accepts_tensors():
    import keras

    preds = np.zeros((1, 1000), "float32")
    preds[0, 954] = 1.0
    decoded = imagenet.decode_predictions(keras.ops.convert_to_tensor(preds), top=1)
    assert decoded[0][0][:2] == ("n07753592", "banana")


@pytest.mark.parametrize("shape", [(1000,), (2, 10), (2, 1000, 1)])
def test_decode_predictions_rejects_wrong_shapes(shape):
    with pytest.raises(ValueError, match=r"\(samples, 1000\)"):
        imagenet.decode_predictions(np.zeros(shape))


@pytest.mark.parametrize("family", FAMILIES)
def test_family_decoders_are_offline(family, monkeypatch):
    import keras

    def no_download(*args, **kwargs):
        raise AssertionError("decode_predictions tried to download")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", no_download)
    monkeypatch.setattr("keras.src.applications.imagenet_utils.CLASS_INDEX", None)
    module = importlib.import_module(f"kerasnets.models.{family}")
    preds = np.zeros((2, 1000), "float32")
    preds[0, [7, 3]] = [0.9, 0.1]
    preds[1, 999] = 1.0
    decoded = module.decode_predictions(preds, top=2)
    assert decoded == imagenet.decode_predictions(preds, top=2)
    assert [d[1] for d in decoded[0]] == ["cock", "tiger_shark"]


def test_top_zero_returns_every_class_as_keras_does():
    """keras.applications' decode_predictions(preds, top=0) returns every class
    (its ``argsort()[-0:]``), highest first; so does ours."""
    preds = np.random.default_rng(4).random((2, 1000)).astype("float32")
    ours = imagenet.decode_predictions(preds, top=0)
    assert [len(r) for r in ours] == [1000, 1000]
    for pred, rows in zip(preds, ours):
        assert [row[2] for row in rows] == sorted(pred.tolist(), reverse=True)
    with pytest.raises(ValueError, match="non-negative"):
        imagenet.decode_predictions(preds, top=-1)
