"""MobileNet v1: keras.applications parity, weight files, counts, errors."""

import inspect
import warnings

import numpy as np
import pytest

import keras

import kerasnets
from kerasnets.models import mobilenet
from kerasnets.weights.config import INCEPTION_MEAN, INCEPTION_STD
from tests.models.mobilenet_common import (
    KERAS_TOL,
    assert_same_structure,
    count_macs,
    fake_downloads,
    forbid_downloads,
    keras_reference,
    save_legacy_h5,
    trainable_params,
    weight_layer_names,
)
from tests.parity import assert_logits_close, random_images

# ---------------------------------------------------- keras.applications

# (alpha, depth_multiplier, input_shape, include_top, pooling, image size):
# every alpha and every published resolution at least once, one full-size
# forward, depth multiplier 2, odd and dynamic sizes without the top.
PARITY_CASES = [
    (0.25, 1, (128, 128, 3), True, None, 128),
    (0.5, 1, (160, 160, 3), True, None, 160),
    (0.75, 1, (192, 192, 3), False, None, 192),
    (1.0, 1, (224, 224, 3), True, None, 224),
    (1.0, 2, (96, 96, 3), True, None, 96),
    (0.5, 1, (97, 75, 3), False, None, (97, 75)),
    (0.25, 1, (33, 45, 3), False, "avg", (33, 45)),
    (0.75, 1, (None, None, 3), False, "max", (71, 53)),
]


@pytest.mark.parametrize(
    "alpha, depth_multiplier, input_shape, include_top, pooling, size",
    PARITY_CASES,
    ids=[f"a{c[0]}-dm{c[1]}-{c[5]}-top{int(c[3])}" for c in PARITY_CASES],
)
@pytest.mark.heavy
def test_matches_keras_applications(
    tmp_path, alpha, depth_multiplier, input_shape, include_top, pooling, size
):
    images = random_images(4, size)
    kwargs = dict(
        input_shape=input_shape,
        alpha=alpha,
        depth_multiplier=depth_multiplier,
        include_top=include_top,
        pooling=pooling,
    )
    reference = keras_reference(keras.applications.MobileNet, images, **kwargs)
    path = save_legacy_h5(reference, tmp_path / "mobilenet.h5")
    expected = reference(images)

    ours = kerasnets.MobileNet(weights=path, classifier_activation=None, **kwargs)
    assert_same_structure(ours, reference)
    ratio = assert_logits_close(ours(images), expected, tol=KERAS_TOL)
    print(f"keras.applications parity ratio {ratio:.3g}")


def test_top_file_into_headless_model_skips_the_classifier(tmp_path):
    """A full .h5 file loads into a headless model: its classifier (the file's
    last layers) is skipped, as the README promises; another width fails."""
    images = random_images(2, 64)
    reference = keras_reference(
        keras.applications.MobileNet, images, input_shape=(64, 64, 3), alpha=0.25
    )
    path = save_legacy_h5(reference, tmp_path / "top.h5")
    headless = kerasnets.MobileNet(weights=path, alpha=0.25, include_top=False,
                                   input_shape=(64, 64, 3))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(headless.get_layer("conv_pw_13").kernel),
        keras.ops.convert_to_numpy(reference.get_layer("conv_pw_13").kernel))
    with pytest.raises(ValueError, match="conv1"):
        kerasnets.MobileNet(weights=path, alpha=0.5, input_shape=(64, 64, 3))


# (alpha, input_shape, include_top, published file, falls back to 224)
TAG_CASES = [
    (0.5, (160, 160, 3), True, "mobilenet_5_0_160_tf.h5", False),
    (0.25, None, False, "mobilenet_2_5_224_tf_no_top.h5", True),
    (0.75, (192, 192, 3), False, "mobilenet_7_5_192_tf_no_top.h5", False),
    (1.0, (128, 96, 3), False, "mobilenet_1_0_224_tf_no_top.h5", True),
]


@pytest.mark.parametrize(
    "alpha, input_shape, include_top, filename, fallback", TAG_CASES
)
def test_imagenet_loads_the_file_keras_loads(
    tmp_path, monkeypatch, alpha, input_shape, include_top, filename, fallback
):
    size = input_shape[:2] if input_shape else (64, 48)
    images = random_images(2, size)
    kwargs = dict(input_shape=input_shape, alpha=alpha, include_top=include_top)
    path = save_legacy_h5(
        keras_reference(keras.applications.MobileNet, images, **kwargs),
        tmp_path / "published.h5",
    )
    requested = fake_downloads(monkeypatch, path)
    models = []
    for builder in (keras.applications.MobileNet, kerasnets.MobileNet):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            models.append(
                builder(weights="imagenet", classifier_activation=None, **kwargs)
            )
        fell_back = any("(224, 224) will be" in str(w.message) for w in caught)
        assert fell_back == fallback, builder
    theirs, ours = models
    expected_url = mobilenet.BASE_WEIGHTS_URL + filename
    assert requested == {"keras": [expected_url], "kerasnets": [expected_url]}
    assert ours.name == theirs.name
    assert_logits_close(ours(images), theirs(images), tol=KERAS_TOL)


def test_registry_has_every_published_file():
    cfgs = kerasnets.weights.pretrained_cfgs("MobileNet")
    assert len(cfgs) == 16
    assert kerasnets.weights.available("MobileNet") == ["imagenet"]
    # The builder's default configuration first.
    assert (dict(cfgs[0].options), cfgs[0].input_size) == ({"alpha": 1.0}, 224)
    base = keras.src.applications.mobilenet.BASE_WEIGHT_PATH
    assert mobilenet.BASE_WEIGHTS_URL == base
    for alpha, text in [(1.0, "1_0"), (0.75, "7_5"), (0.5, "5_0"), (0.25, "2_5")]:
        for rows in (128, 160, 192, 224):
            cfg = kerasnets.weights.pretrained_cfg(
                "MobileNet", "imagenet", options={"alpha": alpha}, input_size=rows)
            assert cfg.tag == "imagenet"
            assert cfg.url == f"{base}mobilenet_{text}_{rows}_tf.h5"
            assert cfg.notop_url == f"{base}mobilenet_{text}_{rows}_tf_no_top.h5"
            assert cfg.file_hash is None and cfg.notop_hash is None
            assert cfg.format == "keras_h5"
            assert (cfg.mean, cfg.std) == (INCEPTION_MEAN, INCEPTION_STD)  # keras "tf" mode
            assert cfg.input_size == rows
            assert cfg.reference == "keras:MobileNet"
    assert kerasnets.weights.pretrained_cfg(
        "MobileNet", options={"alpha": 1.0}, input_size=224).top1 == 70.6


def test_signature_is_keras_applications_then_keyword_only():
    ours = inspect.signature(kerasnets.MobileNet).parameters.values()
    theirs = inspect.signature(keras.applications.MobileNet).parameters.values()
    positional = [(p.name, p.default) for p in ours if p.kind is not p.KEYWORD_ONLY]
    assert positional == [(p.name, p.default) for p in theirs]
    keyword_only = [(p.name, p.default) for p in ours if p.kind is p.KEYWORD_ONLY]
    assert keyword_only == [("include_preprocessing", False), ("features_only", False),
                            ("out_indices", None)]


# ------------------------------------------------------ counts and shapes

# REFERENCE section 1: (trainable, keras total, MACs at 224 in millions).
COUNTS = {
    1.0: (4_231_976, 4_253_864, 569),
    0.75: (2_585_560, 2_601_976, 325),
    0.5: (1_331_592, 1_342_536, 149),
    0.25: (470_072, 475_544, 41),
}


@pytest.mark.parametrize("alpha", sorted(COUNTS))
def test_parameter_and_mac_counts(alpha):
    trainable, total, macs = COUNTS[alpha]
    model = kerasnets.MobileNet(weights=None, alpha=alpha)
    assert trainable_params(model) == trainable
    assert model.count_params() == total
    assert abs(count_macs(model) - macs * 1e6) < 1e6


@pytest.mark.parametrize("rows, macs", [(192, 418), (160, 290), (128, 186)])
def test_mac_counts_per_resolution(rows, macs):
    # Paper, Table 7 (alpha 1.0).
    model = kerasnets.MobileNet(weights=None, input_shape=(rows, rows, 3))
    assert abs(count_macs(model) - macs * 1e6) < 1e6


def test_input_tensor_and_pooling_match_keras():
    for builder in (keras.applications.MobileNet, kerasnets.MobileNet):
        tensor = keras.Input((96, 80, 3))
        model = builder(
            input_tensor=tensor,
            alpha=0.25,
            include_top=False,
            pooling="max",
            weights=None,
        )
        assert model.input is tensor or model.inputs[0] is tensor
        assert tuple(model.output.shape) == (None, 256)
        assert model.name == "mobilenet_0.25_None"


def test_keras_file_round_trip_safe_mode(tmp_path):
    model = kerasnets.MobileNet(
        weights=None, alpha=0.25, input_shape=(32, 32, 3), classes=7
    )
    path = str(tmp_path / "mobilenet.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    images = random_images(2, 32)
    np.testing.assert_allclose(loaded(images), model(images), atol=1e-6)
    assert weight_layer_names(loaded) == weight_layer_names(model)


# --------------------------------------------------------------- errors

BAD_ARGUMENTS = [
    (dict(weights="imagenet", classes=10), "classes"),
    (dict(weights="imagenet", alpha=0.6), "If imagenet weights are being loaded, alpha can be"),
    (dict(weights="imagenet", depth_multiplier=2), "depth multiplier"),
    (dict(weights="imagenet", input_shape=(200, 200, 3)), r"\(224, 224, 3\)"),
    (dict(weights=None, include_top=False, input_shape=(31, 64, 3)), "at least 32"),
    (dict(weights=None, input_shape=(None, None, 3)), "static"),
    (dict(weights="imagenet", classifier_activation="relu"), "activation"),
    (dict(weights="instagram"), "instagram"),
]


@pytest.mark.parametrize("kwargs, match", BAD_ARGUMENTS)
def test_bad_arguments_raise_like_keras(monkeypatch, kwargs, match):
    forbid_downloads(monkeypatch)
    with pytest.raises(ValueError):
        keras.applications.MobileNet(**kwargs)
    with pytest.raises(ValueError, match=match):
        kerasnets.MobileNet(**kwargs)


def test_unknown_pooling_raises():
    # Stricter than keras.applications.MobileNet, which ignores it.
    with pytest.raises(ValueError, match="pooling"):
        kerasnets.MobileNet(weights=None, include_top=False, pooling="sum")


# ------------------------------------------------- preprocess / decode


def test_preprocess_input_is_tf_mode():
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = keras.applications.mobilenet.preprocess_input(x.copy())
    np.testing.assert_allclose(mobilenet.preprocess_input(x.copy()), expected)
    np.testing.assert_allclose(expected, x / 127.5 - 1.0, rtol=1e-6, atol=1e-6)


def test_decode_predictions():
    # The class index is bundled (kerasnets.imagenet): no download.
    preds = np.zeros((2, 1000), "float32")
    preds[0, [7, 3]] = [0.9, 0.1]
    preds[1, 999] = 1.0
    decoded = mobilenet.decode_predictions(preds, top=2)
    assert [d[:2] for d in decoded[0]] == [
        ("n01514668", "cock"),
        ("n01491361", "tiger_shark"),
    ]
    assert decoded[1][0][:2] == ("n15075141", "toilet_tissue")
    with pytest.raises(ValueError):
        mobilenet.decode_predictions(np.zeros((1, 10)))
