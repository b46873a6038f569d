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

# (variant, alpha, minimalistic, image size, static input_shape,
#  include_preprocessing, also check the headless model)
KERAS_CASES = [
    ("Large", 1.0, False, 224, True, True, True),
    ("Large", 0.75, False, 96, False, True, True),  # input_shape=None
    ("Large", 1.0, True, 97, True, True, False),
    ("Small", 1.0, False, 113, True, False, True),  # include_preprocessing=False
    ("Small", 0.75, False, 96, True, True, False),
    ("Small", 1.0, True, 96, False, True, True),
    ("Small", 0.75, True, 101, True, True, False),
]


def save_legacy_h5(model, path):
    """keras.applications' .h5 layout (Keras 3 save_weights wants .weights.h5)."""
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return str(path)


def headless(reference):
    """keras.applications' include_top=False model sharing ``reference``'s
    layers: everything up to the activation after conv_1_bn (what the
    published *_no_top_v2.h5 files hold)."""
    names = [layer.name for layer in reference.layers]
    last = reference.layers[names.index("conv_1_bn") + 1]
    return keras.Model(reference.input, last.output)


@pytest.fixture
def float64():
    """Builds models in float64. Calibrated random MobileNetV3s amplify
    rounding by about 10^3-10^4 (a 1e-7 relative change of the input moves
    the logits by 4e-4 of their spread), so float32 results agree only as
    far as both sides round alike; in float64 any mismatch is a real one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_dtype_policy(previous)


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def run(model, images):
    return keras.ops.convert_to_numpy(model(images, training=False))


@pytest.mark.parametrize(
    "variant, alpha, minimalistic, size, static, preprocessing, notop",
    KERAS_CASES,
)
@pytest.mark.heavy
def test_keras_applications_h5_parity(
    float64, tmp_path, variant, alpha, minimalistic, size, static, preprocessing, notop
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

    kwargs["weights"] = save_legacy_h5(reference, tmp_path / "top.h5")
    ours = BUILDERS[variant](**kwargs)
    assert trainable_count(ours) == PARAMS[variant, alpha, minimalistic][0]
    assert ours.count_params() == PARAMS[variant, alpha, minimalistic][1]
    assert ours.name == "MobileNetV3" + variant
    assert [l.name for l in ours.layers if l.weights] == [
        l.name for l in reference.layers if l.weights
    ]
    ratio = assert_logits_close(run(ours, images), run(reference, images), 1e-8)
    print(f"{variant} {alpha} min={minimalistic} {size}px top ratio {ratio:.2e}")
    if not notop:
        return

    reference_notop = headless(reference)
    kwargs.update(
        weights=save_legacy_h5(reference_notop, tmp_path / "notop.h5"),
        include_top=False,
        pooling="avg" if static else None,
    )
    ours_notop = BUILDERS[variant](**kwargs)
    features = run(reference_notop, images)
    if static:
        features = features.mean(axis=(1, 2))
    ratio = assert_logits_close(run(ours_notop, images), features, 1e-8)
    print(f"{variant} {alpha} min={minimalistic} {size}px no-top ratio {ratio:.2e}")


def test_legacy_h5_of_another_configuration_is_rejected(tmp_path):
    small = keras.applications.MobileNetV3Small(weights=None, input_shape=(64, 64, 3))
    path = save_legacy_h5(small, tmp_path / "small.h5")
    with pytest.raises(ValueError, match="does not match"):
        MobileNetV3Small(weights=path, minimalistic=True, input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="does not match"):
        MobileNetV3Large(weights=path, input_shape=(64, 64, 3))


@pytest.fixture
def timm1(timm, torch):
    """timm with one PyTorch thread: next to TensorFlow's (spinning) thread
    pools on 2 cores, torch's own parallel loops run 10-50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield timm
    torch.set_num_threads(threads)


# (timm model, variant, minimalistic, also check the headless model)
TIMM_CASES = [
    ("tf_mobilenetv3_large_100", "Large", False, True),
    ("tf_mobilenetv3_small_100", "Small", False, False),
    ("tf_mobilenetv3_small_minimal_100", "Small", True, True),
]

# In float32, PyTorch and TensorFlow round differently and the calibrated
# random Large amplifies that: 0.7-4e-4 of the logit spread with TF's Eigen
# kernels, 2e-4 to 5e-3 with oneDNN (on in the tests); timm's own float32 and
# float64 outputs differ by 6e-5. Port errors are far larger: BN epsilon 1e-5
# instead of 1e-3 gives 2, keras' even-size padding on an odd input 12. The
# float64 comparison below is the tight one (about 1e-13).
FLOAT32_TOLERANCE = 2e-2


@pytest.mark.parametrize("timm_name, variant, minimalistic, headless_too", TIMM_CASES)
def test_timm_tf_mobilenetv3_parity(
    tmp_path, timm1, timm_name, variant, minimalistic, headless_too
):
    import torch

    reference = timm1.create_model(timm_name, pretrained=False)
    calibrate_torch(reference, random_images(8, 224, seed=2))
    path = save_state_dict(reference, tmp_path / "model.safetensors")
    kwargs = dict(
        alpha=1.0,
        minimalistic=minimalistic,
        weights=path,
        include_preprocessing=False,
        classifier_activation=None,
    )
    # float32 at 224, the default dynamic input.
    images = random_images(4, 224, seed=3)
    ours = BUILDERS[variant](**kwargs)
    ratio = assert_logits_close(
        run(ours, images), torch_logits(reference, images), FLOAT32_TOLERANCE
    )
    print(f"{timm_name} float32 224px logits ratio {ratio:.2e}")

    # The same (float32) weights, both sides in float64, at an odd size
    # (asymmetric TF "same" padding on every stride-2 layer). PyTorch's
    # float64 depthwise convolution is slow: one small batch.
    reference = reference.double()
    images = random_images(3, 113, seed=4).astype("float64")
    with torch.no_grad():
        features = reference.forward_features(
            torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
        )
        logits = reference.forward_head(features).numpy()
    features = features.numpy().transpose(0, 2, 3, 1)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        ours = BUILDERS[variant](input_shape=(113, 113, 3), **kwargs)
        ratio = assert_logits_close(run(ours, images), logits, 1e-8)
        print(f"{timm_name} float64 113px logits ratio {ratio:.2e}")
        if headless_too:  # conv_head/classifier of the checkpoint unused
            ours = BUILDERS[variant](
                input_shape=(113, 113, 3), include_top=False, **kwargs
            )
            ratio = assert_logits_close(run(ours, images), features, 1e-8)
            print(f"{timm_name} float64 113px features ratio {ratio:.2e}")
    finally:
        keras.config.set_dtype_policy(previous)


def test_timm_checkpoint_of_another_configuration_is_refused(tmp_path, timm1):
    reference = timm1.create_model("tf_mobilenetv3_small_minimal_100")
    path = save_state_dict(reference, tmp_path / "small_minimal.safetensors")
    for kwargs in (dict(), dict(alpha=0.75, minimalistic=True)):
        with pytest.raises(ValueError, match="small_minimal.safetensors"):
            MobileNetV3Small(weights=path, input_shape=(64, 64, 3), **kwargs)
    with pytest.raises(ValueError, match="small_minimal.safetensors"):
        MobileNetV3Large(weights=path, minimalistic=True, input_shape=(64, 64, 3))


def test_timm_layer_map_names_every_weighted_layer():
    large = MobileNetV3Large(weights=None, input_shape=(64, 64, 3))
    layer_map, classifier = mobilenet_v3.timm_layer_map(large)
    assert {l.name for l in large.layers if l.weights} == set(layer_map)
    assert set(classifier) == {"conv_head", "classifier"}
    expected = {
        "expanded_conv_depthwise": "blocks.0.0.conv_dw",  # depthwise-separable
        "expanded_conv_project": "blocks.0.0.conv_pw",
        "expanded_conv_1_expand": "blocks.1.0.conv_pw",
        "expanded_conv_3_squeeze_excite_conv": "blocks.2.0.se.conv_reduce",
        "expanded_conv_10_project_bn": "blocks.4.0.bn3",  # 80 -> 112, stride 1
        "expanded_conv_14_project": "blocks.5.2.conv_pwl",
        "conv_1": "blocks.6.0.conv",
        "conv_2": "conv_head",
        "logits": "classifier",
    }
    assert {k: layer_map[k] for k in expected} == expected

    small = MobileNetV3Small(weights=None, input_shape=(64, 64, 3))
    layer_map, _ = mobilenet_v3.timm_layer_map(small)
    expected = {
        "expanded_conv_squeeze_excite_conv_1": "blocks.0.0.se.conv_expand",
        "expanded_conv_7_depthwise": "blocks.3.1.conv_dw",  # 40 -> 48
        "conv_1_bn": "blocks.5.0.bn1",
    }
    assert {k: layer_map[k] for k in expected} == expected


def test_pretrained_cfgs():
    for builder in ("MobileNetV3Large", "MobileNetV3Small"):
        assert kerasnets.weights.available(builder) == ["imagenet", "tf_in1k"]
        assert kerasnets.registry.get(builder).layer_maps == {
            "torch": mobilenet_v3.timm_layer_map
        }
        # one file per published configuration, alpha 1.0 first (the default)
        for tag in ("imagenet", "tf_in1k"):
            assert [dict(c.options) for c in kerasnets.weights.pretrained_cfgs(builder, tag)] == [
                {"alpha": 1.0, "minimalistic": False},
                {"alpha": 0.75, "minimalistic": False},
                {"alpha": 1.0, "minimalistic": True},
            ]
    assert kerasnets.registry.get("MobileNetV3").generic
    options = {"alpha": 1.0, "minimalistic": True}
    keras_entry = kerasnets.weights.pretrained_cfg("MobileNetV3Large", options=options)
    timm_entry = kerasnets.weights.pretrained_cfg(
        "MobileNetV3Large", "tf_in1k", options=options
    )
    assert keras_entry.format == "keras_h5"
    assert keras_entry.url.endswith(
        "mobilenet_v3/weights_mobilenet_v3_large_minimalistic_224_1.0_float.h5"
    )
    assert keras_entry.notop_url.endswith(
        "weights_mobilenet_v3_large_minimalistic_224_1.0_float_no_top_v2.h5"
    )
    assert keras_entry.file_hash == "675e7b876c45c57e9e63e6d90a36599c"
    assert keras_entry.notop_hash == "ec5221f64a2f6d1ef965a614bdae7973"
    assert keras_entry.reference == "keras:MobileNetV3Large"
    assert timm_entry.format == "safetensors"
    assert timm_entry.url == (
        "https://huggingface.co/timm/tf_mobilenetv3_large_minimal_100.in1k"
        "/resolve/main/model.safetensors"
    )
    assert timm_entry.reference == "timm:tf_mobilenetv3_large_minimal_100"
    # both sets expect [-1, 1] inputs, which the model's Rescaling makes
    for entry in (keras_entry, timm_entry):
        assert (entry.mean, entry.std) == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    small = {"alpha": 0.75, "minimalistic": False}
    assert (
        kerasnets.weights.pretrained_cfg("MobileNetV3Small", options=small).file_hash
        == "cb65d4e5be93758266aa0a7f2c6708b7"
    )
    assert "small_075" in kerasnets.weights.pretrained_cfg(
        "MobileNetV3Small", "tf_in1k", options=small
    ).url
    # Published configurations only (keras' alpha rule).
    for tag in ("imagenet", "tf_in1k"):
        assert kerasnets.weights.pretrained_cfg(
            "MobileNetV3Small", tag, options={"alpha": 0.75, "minimalistic": True},
            strict=False,
        ) is None


def test_imagenet_tag_fetches_the_keras_file_of_the_configuration(
    tmp_path, monkeypatch
):
    reference = keras.applications.MobileNetV3Small(
        minimalistic=True, weights=None, input_shape=(64, 64, 3)
    )
    randomize_keras(reference)
    files = {
        "top": save_legacy_h5(reference, tmp_path / "top.h5"),
        "notop": save_legacy_h5(headless(reference), tmp_path / "notop.h5"),
    }
    calls = []

    def get_file(fname, origin, file_hash=None, **kwargs):  # offline stand-in
        calls.append((fname, origin, file_hash))
        return files["notop" if "no_top" in origin else "top"]

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    with pytest.warns(UserWarning, match="224"):
        ours = MobileNetV3Small(minimalistic=True, input_shape=(64, 64, 3))
    fname, origin, file_hash = calls[-1]
    assert fname.startswith(
        "MobileNetV3Small.imagenet.weights_mobilenet_v3_small_minimalistic_224_1.0_float.h5"
    )
    assert origin == (
        "https://storage.googleapis.com/tensorflow/keras-applications/"
        "mobilenet_v3/weights_mobilenet_v3_small_minimalistic_224_1.0_float.h5"
    )
    assert file_hash is None  # kerasnets checks every download itself (weights.hashes)
    from kerasnets.weights.config import pretrained_cfgs
    (cfg,) = [c for c in pretrained_cfgs("MobileNetV3Small") if c.url == origin]
    assert cfg.file_hash == "99cd97fb2fcdad2bf028eb838de69e37"
    for a, b in zip(ours.weights, reference.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    ours = MobileNetV3Small(minimalistic=True, include_top=False, pooling="max")
    fname, origin, file_hash = calls[-1]
    assert origin.endswith("small_minimalistic_224_1.0_float_no_top_v2.h5")
    assert file_hash is None
    (cfg,) = [c for c in pretrained_cfgs("MobileNetV3Small") if c.notop_url == origin]
    assert cfg.notop_hash == "cde8136e733e811080d9fcd8a252f7e4"
    assert ours.output_shape == (None, 576)


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


def test_input_tensor_must_agree_with_input_shape():
    """keras.applications.MobileNetV3's check (issue 16)."""
    for builder in (MobileNetV3Large, MobileNetV3Small):
        with pytest.raises(ValueError, match="input_shape\\[1\\] must equal input_tensor"):
            builder(weights=None, input_tensor=keras.Input((64, 64, 3)),
                    input_shape=(96, 96, 3))
        with pytest.raises(ValueError, match="not a Keras tensor"):
            builder(weights=None, input_tensor=np.zeros((1, 64, 64, 3), "float32"),
                    input_shape=(64, 64, 3))
        tensor = keras.Input((64, 64, 3))
        model = builder(weights=None, input_tensor=tensor, input_shape=(64, 64, 3))
        assert model.input_shape == (None, 64, 64, 3)
        with pytest.raises(ValueError, match="input_shape\\[1\\] must equal input_tensor"):
            getattr(keras.applications, builder.__name__)(
                weights=None, input_tensor=keras.Input((64, 64, 3)), input_shape=(96, 96, 3))


def test_generic_builder_custom_table_and_serialization(tmp_path):
    blocks = mobilenet_v3.SMALL_BLOCKS[:4]
    model = MobileNetV3(
        blocks,
        256,
        input_shape=(64, 64, 3),
        weights=None,
        classes=7,
        model_type="small",
        name="tiny_v3",
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


def test_decode_predictions():
    from kerasnets import imagenet

    # The class index is bundled (kerasnets.imagenet): no download.
    preds = np.random.default_rng(0).random((2, 1000)).astype("float32")
    ours = mobilenet_v3.decode_predictions(preds, top=3)
    names = imagenet.class_names()
    assert [r[1] for r in ours[0]] == [
        names[i] for i in np.argsort(preds[0])[::-1][:3]
    ]
    with pytest.raises(ValueError, match="samples, 1000"):
        mobilenet_v3.decode_predictions(preds[:, :10])
