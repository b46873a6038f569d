"""MobileNet v2: keras.applications parity, weight files, counts, errors."""

import inspect
import warnings

import numpy as np
import pytest

import keras

import kerasnets
from kerasnets.models import mobilenet_v2
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

# (alpha, input_shape, include_top, pooling, image size): every alpha and
# every published resolution at least once, one full-size forward, odd and
# dynamic sizes without the top.
PARITY_CASES = [
    (0.35, (96, 96, 3), True, None, 96),
    (0.5, (128, 128, 3), True, None, 128),
    (0.75, (160, 160, 3), False, None, 160),
    (1.0, (224, 224, 3), True, None, 224),
    (1.3, (192, 192, 3), True, None, 192),
    (1.4, (97, 75, 3), False, None, (97, 75)),
    (0.35, (33, 47, 3), False, "avg", (33, 47)),
    (1.0, (None, None, 3), False, "max", (71, 53)),
]


@pytest.mark.parametrize(
    "alpha, input_shape, include_top, pooling, size",
    PARITY_CASES,
    ids=[f"a{c[0]}-{c[4]}-top{int(c[2])}" for c in PARITY_CASES],
)
@pytest.mark.heavy
def test_matches_keras_applications(
    tmp_path, alpha, input_shape, include_top, pooling, size
):
    images = random_images(4, size)
    kwargs = dict(
        input_shape=input_shape,
        alpha=alpha,
        include_top=include_top,
        pooling=pooling,
    )
    reference = keras_reference(keras.applications.MobileNetV2, images, **kwargs)
    path = save_legacy_h5(reference, tmp_path / "mobilenet_v2.h5")
    expected = reference(images)

    ours = kerasnets.MobileNetV2(weights=path, classifier_activation=None, **kwargs)
    assert_same_structure(ours, reference)
    ratio = assert_logits_close(ours(images), expected, tol=KERAS_TOL)
    print(f"keras.applications parity ratio {ratio:.3g}")


def test_v1_file_into_v2_raises(tmp_path):
    images = random_images(2, 64)
    reference = keras_reference(
        keras.applications.MobileNet, images, input_shape=(64, 64, 3), alpha=0.25
    )
    path = save_legacy_h5(reference, tmp_path / "mobilenet_v1.h5")
    with pytest.raises(ValueError, match="Conv1"):
        kerasnets.MobileNetV2(weights=path, alpha=0.35, input_shape=(64, 64, 3))


FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels"
# (alpha, input_shape or "tensor" (an input_tensor of 160x160), include_top,
#  published file, falls back to 224)
TAG_CASES = [
    (0.35, (96, 96, 3), True, f"{FILE}_0.35_96.h5", False),
    (1.3, None, False, f"{FILE}_1.3_224_no_top.h5", True),
    (1.0, "tensor", True, f"{FILE}_1.0_160.h5", False),
    (0.75, (100, 100, 3), False, f"{FILE}_0.75_224_no_top.h5", True),
]


@pytest.mark.parametrize(
    "alpha, input_shape, include_top, filename, fallback", TAG_CASES
)
def test_imagenet_loads_the_file_keras_loads(
    tmp_path, monkeypatch, alpha, input_shape, include_top, filename, fallback
):
    if input_shape == "tensor":
        size, input_shape = (160, 160), None
        tensor = lambda: keras.Input((160, 160, 3))  # noqa: E731
    else:
        size = input_shape[:2] if input_shape else (64, 48)
        tensor = lambda: None  # noqa: E731
    images = random_images(2, size)
    kwargs = dict(input_shape=input_shape, alpha=alpha, include_top=include_top)
    path = save_legacy_h5(
        keras_reference(
            keras.applications.MobileNetV2,
            images,
            input_tensor=tensor(),
            **kwargs,
        ),
        tmp_path / "published.h5",
    )
    requested = fake_downloads(monkeypatch, path)
    models = []
    for builder in (keras.applications.MobileNetV2, kerasnets.MobileNetV2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            models.append(
                builder(
                    weights="imagenet",
                    classifier_activation=None,
                    input_tensor=tensor(),
                    **kwargs,
                )
            )
        fell_back = any("(224, 224) will be" in str(w.message) for w in caught)
        assert fell_back == fallback, builder
    theirs, ours = models
    expected_url = mobilenet_v2.BASE_WEIGHTS_URL + filename
    assert requested == {"keras": [expected_url], "kerasnets": [expected_url]}
    assert ours.name == theirs.name
    assert_logits_close(ours(images), theirs(images), tol=KERAS_TOL)


def test_registry_has_every_published_file():
    cfgs = kerasnets.weights.pretrained_cfgs("MobileNetV2")
    assert len(cfgs) == 30
    assert kerasnets.weights.available("MobileNetV2") == ["imagenet"]
    # The builder's default configuration first.
    assert (dict(cfgs[0].options), cfgs[0].input_size) == ({"alpha": 1.0}, 224)
    base = keras.src.applications.mobilenet_v2.BASE_WEIGHT_PATH
    assert mobilenet_v2.BASE_WEIGHTS_URL == base
    for alpha in ("0.35", "0.5", "0.75", "1.0", "1.3", "1.4"):
        for rows in (96, 128, 160, 192, 224):
            cfg = kerasnets.weights.pretrained_cfg(
                "MobileNetV2", "imagenet", options={"alpha": float(alpha)}, input_size=rows)
            assert cfg.tag == "imagenet"
            assert cfg.url == f"{base}{FILE}_{alpha}_{rows}.h5"
            assert cfg.notop_url == f"{base}{FILE}_{alpha}_{rows}_no_top.h5"
            assert cfg.file_hash is None and cfg.notop_hash is None
            assert cfg.format == "keras_h5"
            assert (cfg.mean, cfg.std) == (INCEPTION_MEAN, INCEPTION_STD)  # keras "tf" mode
            assert cfg.input_size == rows
            assert cfg.reference == "keras:MobileNetV2"
    assert kerasnets.weights.pretrained_cfg(
        "MobileNetV2", options={"alpha": 1.0}, input_size=224).top1 == 71.8


def test_signature_is_keras_applications_then_keyword_only():
    ours = inspect.signature(kerasnets.MobileNetV2).parameters.values()
    theirs = inspect.signature(keras.applications.MobileNetV2).parameters.values()
    positional = [(p.name, p.default) for p in ours if p.kind is not p.KEYWORD_ONLY]
    assert positional == [(p.name, p.default) for p in theirs]
    keyword_only = [(p.name, p.default) for p in ours if p.kind is p.KEYWORD_ONLY]
    assert keyword_only == [("include_preprocessing", False), ("features_only", False),
                            ("out_indices", None)]


# ------------------------------------------------------ counts and shapes

# REFERENCE section 1: (trainable, keras total, MACs at 224 in millions).
COUNTS = {
    0.35: (1_677_128, 1_691_208, 59),
    0.5: (1_968_680, 1_987_224, 97),
    0.75: (2_636_424, 2_663_064, 209),
    1.0: (3_504_872, 3_538_984, 300),
    1.3: (5_386_792, 5_431_048, 509),
    1.4: (6_108_776, 6_156_712, 582),
}


@pytest.mark.parametrize("alpha", sorted(COUNTS))
def test_parameter_and_mac_counts(alpha):
    trainable, total, macs = COUNTS[alpha]
    model = kerasnets.MobileNetV2(weights=None, alpha=alpha)
    assert trainable_params(model) == trainable
    assert model.count_params() == total
    assert abs(count_macs(model) - macs * 1e6) < 1e6
    # The last convolution is not thinned, only widened.
    last = {1.3: 1664, 1.4: 1792}.get(alpha, 1280)
    assert model.get_layer("Conv_1").filters == last


def test_input_tensor_and_pooling_match_keras():
    for builder in (keras.applications.MobileNetV2, kerasnets.MobileNetV2):
        tensor = keras.Input((96, 80, 3))
        model = builder(
            input_tensor=tensor,
            alpha=0.35,
            include_top=False,
            pooling="avg",
            weights=None,
        )
        assert tuple(model.output.shape) == (None, 1280)
        assert model.name == "mobilenetv2_0.35_None"


def test_keras_file_round_trip_safe_mode(tmp_path):
    model = kerasnets.MobileNetV2(
        weights=None, alpha=0.35, input_shape=(32, 32, 3), classes=7
    )
    path = str(tmp_path / "mobilenet_v2.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    images = random_images(2, 32)
    np.testing.assert_allclose(loaded(images), model(images), atol=1e-6)
    assert weight_layer_names(loaded) == weight_layer_names(model)


# --------------------------------------------------------------- errors

BAD_ARGUMENTS = [
    (dict(weights="imagenet", classes=10), "classes"),
    (dict(weights="imagenet", alpha=0.6), "If imagenet weights are being loaded, alpha must be"),
    (dict(weights="imagenet", input_shape=(100, 100, 3)), r"\(224, 224, 3\)"),
    (dict(weights=None, include_top=False, input_shape=(64, 31, 3)), "at least 32"),
    (dict(weights=None, input_shape=(None, None, 3)), "static"),
    (dict(weights="imagenet", classifier_activation="relu"), "activation"),
    (dict(weights="instagram"), "instagram"),
]


@pytest.mark.parametrize("kwargs, match", BAD_ARGUMENTS)
def test_bad_arguments_raise_like_keras(monkeypatch, kwargs, match):
    forbid_downloads(monkeypatch)
    with pytest.raises(ValueError):
        keras.applications.MobileNetV2(**kwargs)
    with pytest.raises(ValueError, match=match):
        kerasnets.MobileNetV2(**kwargs)


def test_input_tensor_inconsistent_with_input_shape_raises_like_keras():
    for builder in (keras.applications.MobileNetV2, kerasnets.MobileNetV2):
        with pytest.raises(ValueError, match="must equal input_shape"):
            builder(
                input_tensor=keras.Input((96, 96, 3)),
                input_shape=(96, 128, 3),
                include_top=False,
                weights=None,
            )


# ------------------------------------------------- preprocess / decode


def test_preprocess_input_is_tf_mode():
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = keras.applications.mobilenet_v2.preprocess_input(x.copy())
    np.testing.assert_allclose(mobilenet_v2.preprocess_input(x.copy()), expected)
    np.testing.assert_allclose(expected, x / 127.5 - 1.0, rtol=1e-6, atol=1e-6)


def test_decode_predictions():
    # The class index is bundled (kerasnets.imagenet): no download.
    preds = np.zeros((2, 1000), "float32")
    preds[0, [7, 3]] = [0.9, 0.1]
    preds[1, 999] = 1.0
    decoded = mobilenet_v2.decode_predictions(preds, top=2)
    assert [d[:2] for d in decoded[0]] == [("n01514668", "cock"), ("n01491361", "tiger_shark")]
    assert decoded[1][0][:2] == ("n15075141", "toilet_tissue")
    with pytest.raises(ValueError):
        mobilenet_v2.decode_predictions(np.zeros((1, 10)))
