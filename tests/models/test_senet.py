"""SENet family (se_resnet, se_inception, se_mobilenet; senet re-exports
them): timm legacy_* parity, SE in Inception v3 / MobileNet, parameter
counts, catalog and pretrained configurations, errors."""

import sys

import numpy as np
import pytest

import keras

import kerasnets
from kerasnets import registry
from kerasnets.layers import GroupConv2D, SEBlock
from kerasnets.models import se_inception, se_mobilenet, se_resnet, senet
from kerasnets.weights import pretrained_cfg
from kerasnets.weights.config import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INCEPTION_MEAN,
    INCEPTION_STD,
)
from tests.models.mobilenet_common import (
    KERAS_TOL,
    count_macs,
    fake_downloads,
    save_legacy_h5,
    trainable_params,
    weight_layer_names,
)
from tests.parity import (
    assert_logits_close,
    calibrate_torch,
    random_images,
    randomize_keras,
    save_state_dict,
    torch_logits,
)

# Parity with timm runs in float64 on both sides: the port must then agree
# to rounding (measured ratios 3e-13 .. 2e-11; on SE-ResNeXt-50 a BN epsilon
# of 1e-3, TF "same" instead of symmetric padding, or a "same" stem pool at
# odd sizes give ratios of 5 to 11). In float32 these deep networks amplify rounding:
# timm's own float32 logits differ from its float64 logits by up to 3e-3 of
# the spread (SENet-154, SE-ResNet-152 at 97-224 px; 8x the spread with a
# single calibration, see `calibrated_timm`), too much to resolve 1e-4.
F64_TOL = 1e-6
# The float32 checks (the default dtype) on SE-ResNet-50 and -18, where
# timm's own float32 error is 2e-4 of the spread (measured: 1.7e-4, 2e-5).
F32_TOL = 1e-3


def run(model, images):
    """Eager inference (predict() traces a tf.function: slower here)."""
    return keras.ops.convert_to_numpy(model(images, training=False))


def layer_names(model):
    return [layer.name for layer in model.layers]


def se_macs(model):
    """Multiply-adds: convolutions and dense layers, plus each SE block's two
    FC layers and its channel scaling (one multiply per element)."""
    total = count_macs(model)
    for layer in model.layers:
        if isinstance(layer, SEBlock):
            total += int(np.prod(layer.reduce.kernel.shape))
            total += int(np.prod(layer.expand.kernel.shape))
            total += int(np.prod(layer.output.shape[1:]))
    return total


@pytest.fixture
def timm1(timm):
    """The ``timm`` fixture, with torch on one thread: with two OpenMP
    threads on the two shared cores a busy neighbour makes torch 10-15x
    slower (spin-waiting); one thread costs little on a quiet machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield timm
    torch.set_num_threads(threads)


@pytest.fixture
def float64():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_dtype_policy(policy)


def calibrate_scaleless_bn(model, images, seed=0):
    """``calibrate_keras`` for BN layers without gamma (keras' InceptionV3
    uses ``scale=False``): batch statistics of ``images``, random beta."""
    rng = np.random.default_rng(seed)
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    model(images, training=True)
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
        bn.beta.assign(rng.normal(0.0, 0.2, bn.beta.shape).astype("float32"))


def calibrated_timm(timm, name, size, seed=1):
    """A timm legacy model with calibrated BN and random BN affine weights.

    ``calibrate_torch`` is applied twice with the same seed: the second pass
    recomputes the statistics under the random affine weights the first set
    (and sets the same ones again), so eval-mode activations stay normalised
    through 50 blocks. After one pass SENet-154's logits reach 1e4 and its
    float32 rounding error 8x their spread.
    """
    model = timm.create_model(name, pretrained=False)
    images = random_images(4, size, seed=seed)
    calibrate_torch(model, images)
    calibrate_torch(model, images)
    return model


def check_timm_parity(model, reference, cases, tol, dtype="float32"):
    """Logits of ``model`` vs ``reference`` on (size, seed) cases, batch 2."""
    ratios = {}
    for size, seed in cases:
        images = random_images(2, size, seed=seed).astype(dtype)
        ratios[size] = assert_logits_close(
            run(model, images), torch_logits(reference, images), tol
        )
    print(f"{model.name} vs timm ({dtype}): ratios {ratios}")
    return ratios


# ------------------------------------------------------------------ timm


def test_seresnet50_matches_timm(timm1, tmp_path):
    """Default dtype (float32), .safetensors, 224 and odd 97; headless
    features; the checkpoint refused by SE-ResNet-101."""
    import torch

    reference = calibrated_timm(timm1, "legacy_seresnet50", 97)
    path = save_state_dict(reference, tmp_path / "seresnet50.safetensors")
    model = kerasnets.SEResNet50(
        weights=path, input_shape=(None, None, 3), classifier_activation=None
    )
    check_timm_parity(model, reference, [(224, 3), (97, 4)], F32_TOL)
    assert trainable_params(model) == 28_088_024
    assert model.get_layer("conv3_block1_1_conv").strides == (2, 2)  # Caffe
    assert model.get_layer("conv3_block1_2_conv").strides == (1, 1)

    headless = kerasnets.SEResNet50(weights=path, include_top=False)
    images = random_images(2, 97, seed=5)
    with torch.no_grad():
        features = reference.forward_features(
            torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
        ).numpy()
    ratio = assert_logits_close(
        run(headless, images), features.transpose(0, 2, 3, 1), F32_TOL
    )
    print(f"SEResNet50 features vs timm at 97: ratio {ratio:.2g}")

    with pytest.raises(ValueError, match=r"'layer3\.6\.conv1\.weight'"):
        kerasnets.SEResNet101(weights=path)


def test_seresnext50_matches_timm_pth(timm1, tmp_path, float64):
    reference = calibrated_timm(timm1, "legacy_seresnext50_32x4d", 97)
    path = save_state_dict(reference, tmp_path / "seresnext50.pth")
    reference.double()
    model = kerasnets.SEResNeXt50_32x4d(
        weights=path, input_shape=(None, None, 3), classifier_activation=None
    )
    check_timm_parity(model, reference, [(224, 6), (113, 7)], F64_TOL, "float64")
    conv = model.get_layer("conv3_block1_2_conv")
    assert isinstance(conv, GroupConv2D)
    assert (conv.groups, conv.filters, conv.strides) == (32, 256, (2, 2))


@pytest.mark.heavy
def test_senet154_matches_timm(timm1, tmp_path, float64):
    reference = calibrated_timm(timm1, "legacy_senet154", 64)
    path = save_state_dict(reference, tmp_path / "senet154.safetensors")
    reference.double()
    model = kerasnets.SENet154(
        weights=path, input_shape=(None, None, 3), classifier_activation=None
    )
    check_timm_parity(model, reference, [(224, 8)], F64_TOL, "float64")
    assert model.get_layer("top_dropout").rate == 0.2
    assert [model.get_layer(f"conv1_{i}_conv").filters for i in (1, 2, 3)] == [64, 64, 128]
    assert model.get_layer("conv3_block1_0_conv").kernel_size == (3, 3)
    assert model.get_layer("conv2_block1_0_conv").kernel_size == (1, 1)
    assert model.get_layer("conv4_block1_2_conv").groups == 64


@pytest.mark.parametrize(
    "timm_name, builder, size",
    [
        ("legacy_seresnet152", kerasnets.SEResNet152, 97),
        ("legacy_seresnext101_32x4d", kerasnets.SEResNeXt101_32x4d, 113),
    ],
)
@pytest.mark.heavy
def test_deep_variants_match_timm(timm1, tmp_path, float64, timm_name, builder, size):
    reference = calibrated_timm(timm1, timm_name, 64)
    path = save_state_dict(reference, tmp_path / f"{timm_name}.safetensors")
    reference.double()
    model = builder(
        weights=path, input_shape=(None, None, 3), classifier_activation=None
    )
    check_timm_parity(model, reference, [(size, 10)], F64_TOL, "float64")


def test_imagenet_tag_loads_the_timm_release(timm1, tmp_path, monkeypatch):
    """weights="imagenet" fetches the registered .pth (here: a local file in
    its place) and reads it with torch's weights-only loader."""
    reference = calibrated_timm(timm1, "legacy_seresnet18", 64)
    path = save_state_dict(reference, tmp_path / "seresnet18.pth")
    requested = fake_downloads(monkeypatch, path)
    model = kerasnets.SEResNet18(
        weights="imagenet", input_shape=(None, None, 3), classifier_activation=None
    )
    assert requested["kerasnets"] == [pretrained_cfg("SEResNet18").url]
    check_timm_parity(model, reference, [(64, 11)], F32_TOL)
    assert model.get_layer("conv3_block1_1_conv").strides == (2, 2)
    assert "conv2_block1_0_conv" not in layer_names(model)  # identity shortcut


def test_pth_without_torch_raises_import_error(tmp_path, monkeypatch):
    from kerasnets.weights import loading

    path = tmp_path / "seresnet18.pth"
    path.write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="needs torch"):
        loading.read_state_dict(path)


def test_converter_registered_for_every_builder():
    for builder in ["SENet", *se_resnet.VARIANTS]:
        assert registry.get(builder).layer_maps["torch"] is se_resnet.timm_layer_map
    for builder in ["SEInceptionV3", "SEMobileNet"]:  # no timm layout
        assert "torch" not in registry.get(builder).layer_maps


def test_converter_names():
    model = senet.SENet(
        "senet154",
        (1, 2),
        groups=64,
        width_per_group=4,
        stem="senet154",
        downsample_kernel=3,
        input_shape=(32, 32, 3),
        classes=10,
    )
    layer_map, classifier = senet.timm_layer_map(model)
    assert classifier == ("last_linear",)
    assert layer_map["conv1_2_bn"] == "layer0.bn2"
    assert layer_map["conv3_block1_0_conv"] == "layer2.0.downsample.0"
    assert layer_map["conv3_block2_3_bn"] == "layer2.1.bn3"
    assert layer_map["conv3_block2_se"] == {
        "reduce": "layer2.1.se_module.fc1",
        "expand": "layer2.1.se_module.fc2",
    }
    assert layer_map["predictions"] == "last_linear"
    assert set(layer_map) == set(weight_layer_names(model))


# ------------------------------------------------------ parameter counts

COUNTS = {
    # builder: (trainable parameters, MACs at 224 in G)
    "SEResNet18": (11_778_592, 1.81),
    "SEResNet34": (21_958_868, 3.67),
    "SEResNet50": (28_088_024, 3.87),
    "SEResNet101": (49_326_872, 7.58),
    "SEResNet152": (66_821_848, 11.30),
    "SEResNeXt26_32x4d": (16_790_280, 2.48),
    "SEResNeXt50_32x4d": (27_559_896, 4.24),
    "SEResNeXt101_32x4d": (48_955_416, 7.98),
    "SENet154": (115_088_984, 20.70),
}


# The deepest ones in the heavy tier (their figures are checked there too).
@pytest.mark.parametrize("builder", [
    pytest.param(b, marks=pytest.mark.heavy) if b in ("SEResNet101", "SEResNet152",
                                                      "SEResNeXt101_32x4d", "SENet154") else b
    for b in COUNTS])
def test_parameter_counts(builder):
    params, macs = COUNTS[builder]
    model = getattr(kerasnets, builder)(weights=None)
    assert trainable_params(model) == params
    assert abs(se_macs(model) / 1e9 - macs) < 0.005
    assert model.output_shape == (None, 1000)


# ---------------------------------------------------- generic builder


def test_generic_forms_and_minimum_size():
    images = random_images(2, 32)
    basic = kerasnets.SENet("basic", (1, 1), classes=5)
    assert basic.input_shape == (None, 224, 224, 3)
    basic = kerasnets.SENet("basic", (1, 1), classes=5, input_shape=(32, 32, 3))
    assert run(basic, images).shape == (2, 5)
    # SENet-154 form at the minimum size: 1x1 maps after three stride-2
    # stages, 3x3 projection shortcuts on 2x2 maps.
    model = kerasnets.SENet(
        "senet154",
        (1, 1, 1, 1),
        groups=64,
        width_per_group=4,
        stem="senet154",
        downsample_kernel=3,
        include_top=False,
        input_shape=(32, 32, 3),
    )
    assert model.output_shape == (None, 1, 1, 2048)
    assert run(model, images).shape == (2, 1, 1, 2048)
    headless = kerasnets.SENet("bottleneck", (1, 1, 1, 1), include_top=False, pooling="avg")
    assert run(headless, random_images(2, (33, 45))).shape == (2, 2048)
    # The ceil-mode pool: ceil((n - 3) / 2) + 1 at even and odd sizes.
    probe = keras.Model(
        headless.input,
        [headless.get_layer("conv1_relu").output, headless.get_layer("pool1_pool").output],
    )
    parities = set()
    for size in (64, 65, 67):
        stem, pooled = probe(random_images(1, size), training=False)
        n = stem.shape[1]
        parities.add(n % 2)
        assert pooled.shape[1] == -(-(n - 3) // 2) + 1
    assert parities == {0, 1}


def test_se_ratio_none_is_the_resnet_baseline():
    plain = kerasnets.SENet("bottleneck", (3, 4, 6, 3), se_ratio=None)
    assert not any(isinstance(layer, SEBlock) for layer in plain.layers)
    assert trainable_params(plain) == 25_557_032  # ResNet-50
    names = layer_names(
        kerasnets.SENet("resnext", (1, 1), groups=32, width_per_group=4, se_ratio=8,
                        include_top=False)
    )
    assert names.index("conv2_block1_3_bn") < names.index("conv2_block1_se")
    assert names.index("conv2_block1_se") < names.index("conv2_block1_add")


def test_generic_builder_accepts_the_variant_tags():
    # A configuration equal to a named variant gets its tags (and fails on
    # unknown ones by listing them); other configurations have none.
    with pytest.raises(ValueError, match=r"one of 'imagenet'"):
        kerasnets.SENet("bottleneck", [3, 4, 6, 3], weights="in22k")
    with pytest.raises(ValueError, match="no published pretrained weights"):
        kerasnets.SENet("bottleneck", (3, 4, 6, 3), se_ratio=8, weights="imagenet")
    assert se_resnet._variant_of(
        dict(block="senet154", depths=[3, 8, 36, 3], groups=64, width_per_group=4,
             se_ratio=16, stem="senet154", downsample_kernel=3)
    ) == "SENet154"


# -------------------------------------------------- SE in other networks


@pytest.mark.heavy
def test_se_inception_v3(tmp_path, monkeypatch):
    images = random_images(4, 75)
    keras.backend.clear_session()  # keras' auto names count per session
    reference = keras.applications.InceptionV3(
        weights=None, input_shape=(75, 75, 3), classifier_activation=None
    )
    randomize_keras(reference)
    calibrate_scaleless_bn(reference, images)
    path = save_legacy_h5(reference, tmp_path / "inception_v3.h5")
    expected = run(reference, images)
    model = kerasnets.SEInceptionV3(
        se_ratio=None,
        weights=path,
        input_shape=(75, 75, 3),
        classifier_activation=None,
    )
    assert layer_names(model)[1:] == layer_names(reference)[1:]
    assert model.name == reference.name == "inception_v3"
    ratio = assert_logits_close(run(model, images), expected, KERAS_TOL)
    print(f"SEInceptionV3(se_ratio=None) vs keras InceptionV3 at 75: ratio {ratio:.2g}")

    # weights="imagenet" without SE fetches keras.applications' file.
    requested = fake_downloads(monkeypatch, path)
    kerasnets.SEInceptionV3(se_ratio=None, weights="imagenet", input_shape=(75, 75, 3))
    assert requested["kerasnets"] == [
        "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
        "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
    ]
    # With SE blocks (the default se_ratio) there is no such file: refused
    # before anything is built or fetched.
    with pytest.raises(ValueError, match=r"No 'imagenet' weights are published for this "
                       r"configuration of SEInceptionV3: they exist for se_ratio=None"):
        kerasnets.SEInceptionV3(weights="imagenet")

    # With SE: an SEBlock on each module's output, everything else equal.
    se_model = kerasnets.SEInceptionV3(input_shape=(75, 75, 3))
    se = [layer for layer in se_model.layers if isinstance(layer, SEBlock)]
    assert [layer.name for layer in se] == [f"mixed{i}_se" for i in range(11)]
    for i in range(11):
        assert se_model.get_layer(f"mixed{i}_se").input is se_model.get_layer(f"mixed{i}").output
    assert [n for n in layer_names(se_model) if not n.endswith("_se")][1:] == (
        layer_names(model)[1:]
    )
    assert trainable_params(se_model) - trainable_params(model) == 1_661_620
    assert se_model.name == "se_inception_v3"
    out = run(se_model, images[:2])
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="at least 75x75"):
        kerasnets.SEInceptionV3(include_top=False, input_shape=(74, 80, 3))




def test_se_mobilenet():
    model = kerasnets.SEMobileNet()
    assert trainable_params(model) == 4_718_044  # paper: 4.7 M
    assert abs(se_macs(model) - 572e6) < 1e6  # paper: 572 M
    assert [layer.name for layer in model.layers if isinstance(layer, SEBlock)] == [
        f"conv_se_{i}" for i in range(1, 14)
    ]
    assert model.get_layer("conv_se_13").input is model.get_layer("conv_pw_13_relu").output
    # Without SE: keras.applications' MobileNet, weight for weight.
    plain = kerasnets.SEMobileNet(alpha=0.5, se_ratio=None, input_shape=(128, 128, 3))
    reference = keras.applications.MobileNet(
        weights=None, alpha=0.5, input_shape=(128, 128, 3)
    )
    assert weight_layer_names(plain) == weight_layer_names(reference)
    assert [tuple(w.shape) for w in plain.weights] == [tuple(w.shape) for w in reference.weights]
    small = kerasnets.SEMobileNet(alpha=0.25, include_top=False, pooling="avg",
                                   input_shape=(32, 32, 3))
    assert run(small, random_images(2, 32)).shape == (2, 256)


def test_module_docstring_example_runs():
    """The module docstring's "SE in your own model" example."""
    doc = senet.__doc__
    start = doc.index("import keras\n")
    code = "\n".join(
        line[4:] for line in doc[start - 4 : doc.index("\n\n(for a plain")].splitlines()
    )
    namespace = {}
    exec(code, namespace)
    model = namespace["model"]
    assert isinstance(model.get_layer("block1_se"), SEBlock)
    assert model.get_layer("block1_se").reduce.filters == 4
    assert run(model, random_images(1, 32)[..., :1].repeat(64, -1)).shape == (1, 32, 32, 64)


# -------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(block="basic", depths=(2, 2, 2, 2), groups=3),
         r"groups=3 does not divide the 64 output channels .* stage conv2"),
        (dict(block="senet154", depths=(1, 1), groups=64, width_per_group=1),
         r"groups=64 does not divide the 32 input channels"),
        (dict(block="resnet", depths=(1,)), "`block` must be one of"),
        (dict(block="basic", depths=(1, 1, 1, 1, 1)), "at most 4 stages"),
        (dict(block="basic", depths=50), "`depths`"),
        (dict(block="basic", depths=(1,), se_ratio=0), "`se_ratio`"),
        (dict(block="basic", depths=(1,), stem="vgg"), "`stem`"),
        (dict(block="basic", depths=(1,), downsample_kernel=2), "`downsample_kernel`"),
        (dict(block="basic", depths=(1,), width_per_group=0), "`width_per_group`"),
    ],
)
def test_invalid_generic_configurations_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kerasnets.SENet(**kwargs)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="classes"):
        kerasnets.SEResNet50(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match="at least 32x32"):
        kerasnets.SEResNet50(weights=None, include_top=False, input_shape=(31, 64, 3))
    with pytest.raises(ValueError, match="pooling"):
        kerasnets.SEResNet18(weights=None, include_top=False, pooling="sum")
    with pytest.raises(ValueError, match="does not exist"):
        kerasnets.SEResNet18(weights="/nonexistent/seresnet18.pth")
    with pytest.raises(ValueError, match="`alpha`"):
        kerasnets.SEMobileNet(alpha=0)


# -------------------------------------------- registry / preprocess / decode


TIMM_RELEASES = {
    # builder: (file under the releases URL, interpolation, top-1)
    "SEResNet18": ("v0.1-weights/seresnet18-4bb0ce65.pth", "bicubic", None),
    "SEResNet34": ("v0.1-weights/seresnet34-a4004e63.pth", "bilinear", None),
    "SEResNet50": ("v0.1-cadene/se_resnet50-ce0d4300.pth", "bilinear", 77.6),
    "SEResNet101": ("v0.1-cadene/se_resnet101-7e38fcc6.pth", "bilinear", 78.4),
    "SEResNet152": ("v0.1-cadene/se_resnet152-d17c99b7.pth", "bilinear", 78.7),
    "SEResNeXt26_32x4d": ("v0.1-weights/seresnext26_32x4d-65ebdb501.pth", "bicubic", None),
    "SEResNeXt50_32x4d": (
        "v0.1-weights/legacy_se_resnext50_32x4d-f3651bad.pth", "bilinear", 79.1),
    "SEResNeXt101_32x4d": (
        "v0.1-weights/legacy_se_resnext101_32x4d-37725eac.pth", "bilinear", 80.3),
    "SENet154": ("v0.1-weights/legacy_senet154-e9eb9fe6.pth", "bilinear", 81.3),
}


def test_pretrained_cfgs():
    base = "https://github.com/rwightman/pytorch-image-models/releases/download/"
    assert set(TIMM_RELEASES) == set(se_resnet.VARIANTS)
    for builder, (file, interpolation, top1) in TIMM_RELEASES.items():
        assert kerasnets.weights.available(builder) == ["imagenet"]
        assert kerasnets.weights.default_tag(builder) == "imagenet"
        cfg = pretrained_cfg(builder)
        timm_name = "legacy_" + builder.lower()
        assert (cfg.model, cfg.tag, cfg.url) == (builder, "imagenet", base + file)
        assert (cfg.format, cfg.file_hash, cfg.options) == ("pth", None, {})
        assert (cfg.mean, cfg.std, cfg.bgr) == (IMAGENET_MEAN, IMAGENET_STD, False)
        assert cfg.notop_url is None and cfg.classes == 1000 and cfg.input_size == 224
        assert (cfg.interpolation, cfg.crop_pct, cfg.top1) == (interpolation, 0.875, top1)
        assert cfg.reference == f"timm:{timm_name}"
        assert (cfg.source, cfg.license) == (f"timm ({timm_name}.in1k)", "apache-2.0")
    assert kerasnets.weights.available("SENet") == []
    assert kerasnets.weights.available("SEMobileNet") == []

    # keras.applications' InceptionV3 file: SEInceptionV3 with se_ratio=None.
    assert kerasnets.weights.available("SEInceptionV3") == ["imagenet"]
    (cfg,) = kerasnets.weights.pretrained_cfgs("SEInceptionV3")
    assert pretrained_cfg("SEInceptionV3", options={"se_ratio": None}) is cfg
    base = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
            "inception_v3_weights_tf_dim_ordering_tf_kernels")
    assert (cfg.url, cfg.file_hash) == (base + ".h5", "9a0d58056eeedaa3f26cb7ebd46da564")
    assert (cfg.notop_url, cfg.notop_hash) == (
        base + "_notop.h5", "bcbd6486424b2319ff4ef7d526e38f63")
    assert (cfg.format, cfg.options, cfg.input_size) == ("keras_h5", {"se_ratio": None}, 299)
    assert (cfg.mean, cfg.std) == (INCEPTION_MEAN, INCEPTION_STD)
    assert (cfg.reference, cfg.top1) == ("keras:InceptionV3", 77.9)
    with pytest.raises(ValueError, match="they exist for se_ratio=None"):
        pretrained_cfg("SEInceptionV3", options={"se_ratio": 16})


def test_catalog_entries_and_compatibility_module():
    """se_resnet / se_inception / se_mobilenet register the family "senet";
    kerasnets.models.senet only re-exports their names."""
    modules = {"SEInceptionV3": "se_inception", "SEMobileNet": "se_mobilenet",
               "SENet": "se_resnet", **dict.fromkeys(se_resnet.VARIANTS, "se_resnet")}
    for name, module in modules.items():
        entry = registry.get(name)
        assert (entry.family, entry.module) == ("senet", f"kerasnets.models.{module}")
        assert entry.builder is getattr(senet, name) is getattr(kerasnets, name)
        assert entry.generic == (name == "SENet")
        sizes = (299, 75) if name == "SEInceptionV3" else (224, 32)
        assert (entry.default_size, entry.min_size) == sizes
    assert sorted(registry.list_models(family="senet", include_generic=True)) == sorted(modules)
    assert senet.preprocess_input is se_resnet.preprocess_input
    assert senet.timm_layer_map is se_resnet.timm_layer_map
    assert senet.inception_module is se_inception.inception_module
    assert se_mobilenet.preprocess_input is se_resnet.preprocess_input


def test_named_variants_are_the_table(monkeypatch):
    """Each named variant calls SENet with its VARIANTS configuration, its
    own catalog name and the keras arguments it was given."""
    calls = []
    monkeypatch.setattr(se_resnet, "SENet", lambda *args, **kwargs: calls.append((args, kwargs)))
    for name, variant in se_resnet.VARIANTS.items():
        getattr(se_resnet, name)(weights=None, classes=7, name="x", include_preprocessing=True)
        (args, kwargs), = calls
        calls.clear()
        config = dict(zip(("block", "depths"), args), **kwargs)
        expected = {**se_resnet._GENERIC_DEFAULTS, **variant}
        assert {k: config.get(k, se_resnet._GENERIC_DEFAULTS.get(k)) for k in expected} == (
            expected), name
        assert config["model_name"] == name
        assert config["dropout_rate"] == (0.2 if name == "SENet154" else 0.0)
        assert (config["weights"], config["classes"], config["name"]) == (None, 7, "x")
        assert config["include_preprocessing"] is True


def test_se_inception_preprocess_input_is_keras_inception_v3():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(
        se_inception.preprocess_input(x.copy()),
        keras.applications.inception_v3.preprocess_input(x.copy()),
    )


def test_preprocess_input_is_imagenet_mean_std():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(
        senet.preprocess_input(x.copy()), (x / 255.0 - mean) / std, rtol=1e-5, atol=1e-5
    )


def test_decode_predictions():
    # The class index is bundled (kerasnets.imagenet): no download.
    preds = np.zeros((1, 1000), "float32")
    preds[0, [5, 9]] = [0.7, 0.3]
    decoded = senet.decode_predictions(preds, top=2)
    assert [d[:2] for d in decoded[0]] == [("n01496331", "electric_ray"), ("n01518878", "ostrich")]
