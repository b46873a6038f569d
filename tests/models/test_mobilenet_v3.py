"""MobileNetV3: parity with keras.applications (legacy .h5 files) and timm's
tf_mobilenetv3_* (safetensors), parameter counts, validation, processing."""

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

import kerasnets
from kerasnets.models import mobilenet_v3
from kerasnets.models.mobilenet_v3 import (
    MobileNetV3,
    MobileNetV3Large,
    MobileNetV3Small,
)
from tests.parity import (
    assert_logits_close,
    calibrate_keras,
    calibrate_torch,
    random_images,
    randomize_keras,
    save_state_dict,
    torch_logits,
)

BUILDERS = {"Large": MobileNetV3Large, "Small": MobileNetV3Small}

# (variant, alpha, minimalistic, trainable, keras total) from REFERENCE.md
# section 1 (0.75 minimalistic: no published file, counted from keras).
PARAMS = {
    ("Large", 1.0, False): (5_483_032, 5_507_432),
    ("Large", 0.75, False): (3_993_528, 4_012_616),
    ("Large", 1.0, True): (3_924_288, 3_948_688),
    ("Small", 1.0, False): (2_542_856, 2_554_968),
    ("Small", 0.75, False): (2_041_872, 2_051_552),
    ("Small", 1.0, True): (2_044_736, 2_056_848),
    ("Small", 0.75, True): (1_732_512, 1_742_192),
}

# (variant, alpha, minimalistic, image size, input_shape given, preprocessing)
KERAS_CASES = [
    ("Large", 1.0, False, 224, True, True),
    ("Large", 0.75, False, 96, False, True),  # input_shape=None
    ("Large", 1.0, True, 97, True, True),
    ("Small", 1.0, False, 113, True, False),  # include_preprocessing=False
    ("Small", 0.75, False, 96, True, True),
    ("Small", 1.0, True, 96, False, True),
    ("Small", 0.75, True, 101, True, True),
]


def save_legacy_h5(model, path):
    """keras.applications' .h5 layout (Keras 3 save_weights wants .weights.h5)."""
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return str(path)


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize(
    "variant, alpha, minimalistic, size, static, preprocessing", KERAS_CASES
)
def test_keras_applications_h5_parity(
    tmp_path, variant, alpha, minimalistic, size, static, preprocessing
):
    kwargs = dict(
        alpha=alpha,
        minimalistic=minimalistic,
        weights=None,
        input_shape=(size, size, 3) if static else None,
        classifier_activation=None,
        include_preprocessing=preprocessing,
    )
    reference = getattr(keras.applications, "MobileNetV3" + variant)(**kwargs)
    images = random_images(4, size, seed=1)
    if preprocessing:
        images = (images + 1.0) * 127.5
    randomize_keras(reference)
    calibrate_keras(reference, images)
    top_path = save_legacy_h5(reference, tmp_path / "top.h5")

    kwargs["weights"] = top_path
    ours = BUILDERS[variant](**kwargs)
    assert trainable_count(ours) == PARAMS[variant, alpha, minimalistic][0]
    assert ours.count_params() == PARAMS[variant, alpha, minimalistic][1]
    assert ours.name == "MobileNetV3" + variant
    assert [l.name for l in ours.layers if l.weights] == [
        l.name for l in reference.layers if l.weights
    ]
    expected = reference.predict(images, verbose=0)
    ratio = assert_logits_close(ours.predict(images, verbose=0), expected, 1e-4)
    print(f"{variant} {alpha} min={minimalistic} {size}px top ratio {ratio:.2e}")

    # Headless: keras' no-top files hold the same layers without conv_2/logits.
    kwargs.update(weights=None, include_top=False)
    reference_notop = getattr(keras.applications, "MobileNetV3" + variant)(**kwargs)
    for layer in reference_notop.layers:
        if layer.weights:
            layer.set_weights(reference.get_layer(layer.name).get_weights())
    notop_path = save_legacy_h5(reference_notop, tmp_path / "notop.h5")
    kwargs.update(weights=notop_path, pooling="avg" if static else None)
    ours_notop = BUILDERS[variant](**kwargs)
    features = reference_notop.predict(images, verbose=0)
    if static:
        features = features.mean(axis=(1, 2))
    ratio = assert_logits_close(ours_notop.predict(images, verbose=0), features, 1e-4)
    print(f"{variant} {alpha} min={minimalistic} {size}px no-top ratio {ratio:.2e}")


def test_legacy_h5_of_another_configuration_is_rejected(tmp_path):
    small = keras.applications.MobileNetV3Small(weights=None, input_shape=(64, 64, 3))
    path = save_legacy_h5(small, tmp_path / "small.h5")
    with pytest.raises(ValueError, match="does not match"):
        MobileNetV3Small(weights=path, minimalistic=True, input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="does not match"):
        MobileNetV3Large(weights=path, input_shape=(64, 64, 3))


TIMM_CASES = [
    ("tf_mobilenetv3_large_100", "Large", False),
    ("tf_mobilenetv3_small_100", "Small", False),
    ("tf_mobilenetv3_small_minimal_100", "Small", True),
]


@pytest.mark.parametrize("timm_name, variant, minimalistic", TIMM_CASES)
def test_timm_tf_mobilenetv3_parity(tmp_path, timm, timm_name, variant, minimalistic):
    reference = timm.create_model(timm_name, pretrained=False)
    calibrate_torch(reference, random_images(8, 224, seed=2))
    path = save_state_dict(reference, tmp_path / "model.safetensors")
    kwargs = dict(
        alpha=1.0,
        minimalistic=minimalistic,
        weights=path,
        include_preprocessing=False,
        classifier_activation=None,
    )
    # 224 with the default dynamic input; an odd size (asymmetric TF "same"
    # padding on every stride-2 layer) with a static one.
    for size, input_shape in ((224, None), (113, (113, 113, 3))):
        images = random_images(4, size, seed=3)
        ours = BUILDERS[variant](input_shape=input_shape, **kwargs)
        ratio = assert_logits_close(
            ours.predict(images, verbose=0), torch_logits(reference, images), 1e-4
        )
        print(f"{timm_name} {size}px logits ratio {ratio:.2e}")

    # Headless from the same checkpoint (conv_head/classifier left unused).
    import torch

    images = random_images(2, 113, seed=4)
    with torch.no_grad():
        expected = reference.forward_features(
            torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
        ).numpy()
    ours = BUILDERS[variant](
        input_shape=(113, 113, 3), include_top=False, **kwargs
    )
    ratio = assert_logits_close(
        ours.predict(images, verbose=0), expected.transpose(0, 2, 3, 1), 1e-4
    )
    print(f"{timm_name} 113px features ratio {ratio:.2e}")

    # A checkpoint of another configuration is refused, naming a tensor.
    with pytest.raises(ValueError, match="tf_mobilenetv3|model.safetensors"):
        BUILDERS[variant](
            input_shape=(64, 64, 3),
            **dict(kwargs, minimalistic=not minimalistic),
        )


def test_timm_layer_map_names_every_weighted_layer():
    model = MobileNetV3Large(weights=None, input_shape=(64, 64, 3))
    layer_map, classifier = mobilenet_v3.timm_layer_map(model)
    assert {l.name for l in model.layers if l.weights} == set(layer_map)
    assert layer_map["expanded_conv_depthwise"] == "blocks.0.0.conv_dw"
    assert layer_map["expanded_conv_project"] == "blocks.0.0.conv_pw"
    assert layer_map["expanded_conv_1_expand"] == "blocks.1.0.conv_pw"
    assert layer_map["expanded_conv_3_squeeze_excite_conv"] == "blocks.2.0.se.conv_reduce"
    assert layer_map["expanded_conv_10_project_bn"] == "blocks.4.0.bn3"
    assert layer_map["expanded_conv_14_project"] == "blocks.5.2.conv_pwl"
    assert layer_map["conv_1"] == "blocks.6.0.conv"
    assert set(classifier) == {"conv_head", "classifier"}
    small = MobileNetV3Small(weights=None, input_shape=(64, 64, 3))
    small_map, _ = mobilenet_v3.timm_layer_map(small)
    assert small_map["expanded_conv_squeeze_excite_conv_1"] == "blocks.0.0.se.conv_expand"
    assert small_map["expanded_conv_7_depthwise"] == "blocks.3.1.conv_dw"
    assert small_map["conv_1_bn"] == "blocks.5.0.bn1"


def test_registry():
    for builder in ("MobileNetV3Large", "MobileNetV3Small"):
        assert {"imagenet", "tf_in1k"} <= set(kerasnets.weights.available(builder))
    tags = kerasnets.weights.registry.tags_for("MobileNetV3Large_1.0_minimalistic")
    keras_entry, timm_entry = tags["imagenet"], tags["tf_in1k"]
    assert keras_entry.format == "keras_h5"
    assert keras_entry.url.endswith(
        "mobilenet_v3/weights_mobilenet_v3_large_minimalistic_224_1.0_float.h5"
    )
    assert keras_entry.notop_url.endswith(
        "weights_mobilenet_v3_large_minimalistic_224_1.0_float_no_top_v2.h5"
    )
    assert keras_entry.file_hash == "675e7b876c45c57e9e63e6d90a36599c"
    assert keras_entry.notop_hash == "ec5221f64a2f6d1ef965a614bdae7973"
    assert timm_entry.format == "safetensors"
    assert timm_entry.url == (
        "https://huggingface.co/timm/tf_mobilenetv3_large_minimal_100.in1k"
        "/resolve/main/model.safetensors"
    )
    assert timm_entry.preprocessing == "tf"
    small = kerasnets.weights.registry.tags_for("MobileNetV3Small_0.75")
    assert small["imagenet"].file_hash == "cb65d4e5be93758266aa0a7f2c6708b7"
    assert "small_075" in small["tf_in1k"].url
    assert mobilenet_v3.weights_key("small", 1, False) == "MobileNetV3Small_1.0"
    # Published configurations only (keras' alpha rule).
    assert not kerasnets.weights.registry.tags_for("MobileNetV3Small_0.75_minimalistic")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(classes=10), "classes` should be 1000"),
        (dict(weights="tf_in1k", classes=10), "classes` should be 1000"),
        (dict(alpha=0.5), "alpha can be one of `0.75`, `1.0`"),
        (dict(alpha=0.75, minimalistic=True), "`1.0` for minimalistic only"),
        (dict(weights="tf_in1k", alpha=1.25), "alpha can be one of"),
        (dict(input_shape=(31, 64, 3)), "at least 32x32"),
        (dict(weights=None, input_shape=(64, 16, 3)), "at least 32x32"),
        (dict(weights="in22k"), "Unknown weights 'in22k'"),
        (dict(classifier_activation="relu"), "Only `None` and `softmax`"),
        (dict(weights=None, pooling="mean", include_top=False), "`pooling`"),
        (dict(weights="/no/such/file.h5"), "does not exist"),
    ],
)
def test_bad_arguments(kwargs, message):
    for builder in (MobileNetV3Large, MobileNetV3Small):
        with pytest.raises(ValueError, match=message):
            builder(**kwargs)


def test_generic_builder_custom_table_and_serialization(tmp_path):
    blocks = mobilenet_v3.SMALL_BLOCKS[:4]
    model = MobileNetV3(
        blocks, 256, input_shape=(64, 64, 3), weights=None, classes=7,
        model_type="small", name="tiny_v3",
    )
    assert model.name == "tiny_v3"
    assert model.output_shape == (None, 7)
    assert model.get_layer("conv_1").filters == 240  # 6 x 40
    assert model.get_layer("conv_2").filters == 256
    assert not any(isinstance(l, keras.layers.Lambda) for l in model.layers)
    images = random_images(2, 64) * 127.5 + 127.5
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, rtol=1e-5)
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(restored.predict(images, verbose=0), expected, atol=1e-6)


def test_hard_activations_are_keras_builtins():
    model = MobileNetV3Small(weights=None, input_shape=(32, 32, 3), alpha=0.75)
    names = {
        keras.activations.serialize(l.activation)
        for l in model.layers
        if isinstance(l, keras.layers.Activation)
    }
    assert {"hard_sigmoid", "hard_silu", "softmax"} <= names
    x = np.linspace(-5, 5, 101).astype("float32")
    gate = model.get_layer("expanded_conv_squeeze_excite_hard_sigmoid")
    np.testing.assert_allclose(gate(x), np.clip(x + 3, 0, 6) / 6, atol=1e-6)


def test_alpha_above_one_widens_head_and_minimalistic_has_no_se():
    wide = MobileNetV3Small(alpha=1.25, weights=None, input_shape=(32, 32, 3))
    assert wide.get_layer("conv_2").filters == 1280  # 1024 * 1.25
    minimal = MobileNetV3Large(minimalistic=True, weights=None, include_top=False)
    assert not [l for l in minimal.layers if "squeeze_excite" in l.name]
    assert all(
        l.kernel_size == (3, 3)
        for l in minimal.layers
        if isinstance(l, keras.layers.DepthwiseConv2D)
    )
    assert not [
        l for l in minimal.layers if isinstance(l, keras.layers.Activation)
    ]


def test_preprocess_input_is_identity():
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    assert mobilenet_v3.preprocess_input(x) is x
    np.testing.assert_array_equal(
        mobilenet_v3.preprocess_input(x),
        keras.applications.mobilenet_v3.preprocess_input(x.copy()),
    )


def test_decode_predictions(monkeypatch):
    from keras.src.applications import imagenet_utils

    # The class index is a download; a stand-in keeps the test offline.
    index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    monkeypatch.setattr(imagenet_utils, "CLASS_INDEX", index)
    preds = np.random.default_rng(0).random((2, 1000)).astype("float32")
    ours = mobilenet_v3.decode_predictions(preds, top=3)
    assert ours == keras.applications.mobilenet_v3.decode_predictions(preds, top=3)
    assert [r[1] for r in ours[0]] == [
        f"class_{i}" for i in np.argsort(preds[0])[::-1][:3]
    ]
    with pytest.raises(ValueError, match="samples, 1000"):
        mobilenet_v3.decode_predictions(preds[:, :10])
