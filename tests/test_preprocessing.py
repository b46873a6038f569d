"""Every family's preprocess_input behaves as keras.applications' does: numpy
float arrays in place (float64 kept), other dtypes become floatx, tensors go
through keras.ops, and a bad data_format raises."""

import importlib

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets import preprocessing, registry

MODULES = sorted({registry.get(name).module for name in kerasnets.list_models()
                  if registry.get(name).module.startswith("kerasnets.")})


@pytest.mark.parametrize("module_name", MODULES)
def test_preprocess_input_has_keras_semantics(module_name):
    preprocess_input = importlib.import_module(module_name).preprocess_input
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3))
    if module_name.endswith("mobilenet_v3"):  # the identity, as keras' (the model rescales)
        assert preprocess_input(pixels) is pixels
        assert keras.applications.mobilenet_v3.preprocess_input(pixels) is pixels
        return
    with pytest.raises(ValueError, match="data_format"):
        preprocess_input(pixels.copy(), data_format="channels_middle")
    x64 = pixels.copy()
    out64 = preprocess_input(x64)
    assert out64.dtype == np.float64
    x32 = pixels.astype("float32")
    out32 = preprocess_input(x32)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-5, atol=1e-4)
    changed = not np.allclose(out64, pixels)
    if changed:  # the identity (MobileNetV3) has nothing to do in place
        assert np.shares_memory(out32, x32) or np.allclose(x32, out32)
    as_int = preprocess_input(pixels.astype("uint8"))
    assert as_int.dtype == np.dtype(keras.config.floatx())
    tensor = keras.ops.convert_to_numpy(preprocess_input(keras.ops.convert_to_tensor(
        pixels.astype("float32"))))
    np.testing.assert_allclose(tensor, out64, rtol=1e-5, atol=1e-4)
    first = preprocess_input(pixels.transpose(0, 3, 1, 2).copy(), data_format="channels_first")
    np.testing.assert_allclose(first.transpose(0, 2, 3, 1), out64, rtol=1e-6, atol=1e-5)


def test_normalize_matches_keras_modes():
    pixels = np.random.default_rng(1).uniform(0, 255, (3, 5, 5, 3)).astype("float32")
    for mode in ("tf", "torch", "caffe"):
        ours = preprocessing.normalize(pixels.copy(), mode)
        theirs = keras.applications.imagenet_utils.preprocess_input(pixels.copy(), mode=mode)
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4, err_msg=mode)


def test_for_model_follows_the_configuration():
    # SEInceptionV3 with SE blocks has no weights: its family's ImageNet statistics;
    # se_ratio=None is keras' InceptionV3 file: x / 127.5 - 1.
    torch_mode = preprocessing.KERAS_MODES["torch"]
    tf_mode = preprocessing.KERAS_MODES["tf"]
    assert preprocessing.for_model("SEInceptionV3", None).mean == torch_mode.mean
    inception = preprocessing.for_model("SEInceptionV3", None, options={"se_ratio": None})
    assert inception.mean == tf_mode.mean and inception.input_size == 299
    assert preprocessing.for_model("MobileNet", "imagenet", options={"alpha": 0.5}).mean == \
        tf_mode.mean
