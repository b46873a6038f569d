"""include_preprocessing=True: the weights' normalisation inside the model."""

import numpy as np
import pytest

import keras

import kerasnets
from kerasnets import data
from kerasnets.layers import ImageNormalization

# Heavy tier: the fast tier keeps each family's build, load and parity check.
pytestmark = pytest.mark.heavy

NORMALISATION = {  # on 0-255 pixels
    "torch": lambda: (data.get_preprocessing("torch").mean, data.get_preprocessing("torch").std),
    "tf": lambda: (data.get_preprocessing("tf").mean, data.get_preprocessing("tf").std),
    "dpn": lambda: (kerasnets.models.dpn.DPN_MEAN, kerasnets.models.dpn.DPN_STD),
    "igc": lambda: (kerasnets.models.igc.IGC_MEAN, kerasnets.models.igc.IGC_STD),
    "igcv3": lambda: (kerasnets.models.igc_v3.IGCV3_MEAN, (1.0, 1.0, 1.0)),
}

CASES = [
    ("DenseNet121", lambda **kw: kerasnets.DenseNet121(input_shape=(64, 64, 3), **kw), "torch"),
    ("DenseNetCIFAR", lambda **kw: kerasnets.DenseNetCIFAR(40, 12, input_shape=(32, 32, 3), **kw), "torch"),
    ("MobileNet", lambda **kw: kerasnets.MobileNet(alpha=0.25, input_shape=(64, 64, 3), **kw), "tf"),
    ("MobileNetV2", lambda **kw: kerasnets.MobileNetV2(alpha=0.35, input_shape=(64, 64, 3), **kw), "tf"),
    ("SEResNet18", lambda **kw: kerasnets.SEResNet18(input_shape=(64, 64, 3), **kw), "torch"),
    ("SEMobileNet", lambda **kw: kerasnets.SEMobileNet(input_shape=(64, 64, 3), **kw), "torch"),
    ("DPN68", lambda **kw: kerasnets.DPN68(input_shape=(64, 64, 3), **kw), "dpn"),
    ("IGC_L4M32", lambda **kw: kerasnets.IGC_L4M32(input_shape=(64, 64, 3), **kw), "igc"),
    ("IGCV1CIFAR", lambda **kw: kerasnets.IGCV1CIFAR(4, 8, 8, input_shape=(32, 32, 3), **kw), "igc"),
    ("IGCV2", lambda **kw: kerasnets.IGCV2(input_shape=(64, 64, 3), **kw), "igc"),
    ("IGCV3", lambda **kw: kerasnets.IGCV3(alpha=0.5, input_shape=(64, 64, 3), **kw), "igcv3"),
]


# DenseNetCIFAR and IGCV1CIFAR cover the torch and igc modes in the fast tier.
HEAVY_CASES = ("DenseNet121", "DPN68", "IGC_L4M32")


@pytest.mark.parametrize("name,build,mode", [
    pytest.param(*c, id=c[0], marks=[pytest.mark.heavy] if c[0] in HEAVY_CASES else [])
    for c in CASES])
def test_raw_pixels_give_the_preprocessed_outputs(name, build, mode):
    plain = build(weights=None, classifier_activation=None)
    baked = build(weights=None, classifier_activation=None, include_preprocessing=True)
    assert isinstance(baked.get_layer("preprocessing"), ImageNormalization)
    assert len(baked.weights) == len(plain.weights)  # no new variables
    baked.set_weights(plain.get_weights())
    prep = data.preprocessing_for(name, None)
    assert (prep.mean, prep.std) == NORMALISATION[mode]()
    size = plain.input_shape[1]
    pixels = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    expected = plain.predict(np.asarray(prep.normalize(pixels)), verbose=0)
    np.testing.assert_allclose(baked.predict(pixels, verbose=0), expected, rtol=1e-5, atol=1e-5)


def test_family_preprocess_input_agrees_with_the_baked_layer():
    """The layer applies what each family's preprocess_input applies."""
    from kerasnets.models import densenet, dpn, igc, igc_v3, mobilenet, senet

    pixels = np.random.default_rng(1).uniform(0, 255, (1, 8, 8, 3)).astype("float32")
    for module, builder in [(densenet, "DenseNet121"), (mobilenet, "MobileNet"),
                            (senet, "SEResNet50"), (dpn, "DPN92"), (igc, "IGC_L16M16"),
                            (igc_v3, "IGCV3")]:
        prep = data.preprocessing_for(builder, "imagenet")
        layer = ImageNormalization(prep.mean, prep.std, bgr=prep.bgr)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(layer(pixels)),
            np.asarray(module.preprocess_input(pixels.copy())), rtol=1e-5, atol=1e-4,
            err_msg=builder)


def test_keras_file_round_trip_and_bgr(tmp_path):
    model = kerasnets.MobileNet(alpha=0.25, input_shape=(32, 32, 3), weights=None,
                                include_preprocessing=True)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    pixels = np.random.default_rng(2).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(pixels, verbose=0), model.predict(pixels, verbose=0),
                               rtol=1e-6)
    layer = ImageNormalization((103.939, 116.779, 123.68), (1, 1, 1), bgr=True)
    out = keras.ops.convert_to_numpy(layer(np.array([[[[10.0, 20.0, 30.0]]]], "float32")))
    np.testing.assert_allclose(out[0, 0, 0], [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-6)
    with pytest.raises(ValueError, match="three means"):
        ImageNormalization((1, 2), (1, 1, 1))
