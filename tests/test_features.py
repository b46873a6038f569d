"""Multi-scale backbones (issue 17): ``features_only=True`` gives the feature
maps at timm's points; with the same checkpoint (calibrated BatchNorm) they
equal timm's ``forward_intermediates``, for one model of every family timm
has; every builder takes the arguments."""

import numpy as np
import pytest

import keras

import kerasnets
from tests.parity import (
    assert_logits_close,
    calibrate_torch,
    random_images,
    save_state_dict,
)

# Heavy tier: the fast tier keeps each family's build, load and parity check.
pytestmark = pytest.mark.heavy


def timm_features(model, images):
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        return [o.permute(0, 2, 3, 1).numpy()
                for o in model.forward_intermediates(x, intermediates_only=True)]


def assert_features_close(ours, theirs, tol):
    assert len(ours) == len(theirs)
    ratios = []
    for level, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == b.shape, (level, a.shape, b.shape)
        # Each map compared like logits: relative to its spread across images.
        ratios.append(assert_logits_close(a.reshape(len(a), -1), b.reshape(len(b), -1),
                                          tol=tol))
    print("max difference / spread per map:", " ".join(f"{r:.1e}" for r in ratios))
    return ratios


# kerasnets model, timm model, checkpoint suffix, builder arguments, tolerance
TIMM_FAMILIES = [
    ("DPN68", "dpn68", ".safetensors", {}, 5e-4),
    # timm's DenseNet tolerance (tests/models/test_densenet.py): float32 rounding
    # and BN epsilon 1e-5 against keras' 1.001e-5.
    ("DenseNet121", "densenet121", ".safetensors", {}, 1e-3),
    # MobileNetV3's float32 tolerance (tests/models/test_mobilenet_v3.py): the
    # hard-swish nets amplify rounding (tight in float64: see below).
    ("MobileNetV3Small", "tf_mobilenetv3_small_100", ".safetensors",
     {"include_preprocessing": False}, 2e-2),
    ("MobileNetV3Large", "tf_mobilenetv3_large_100", ".safetensors",
     {"include_preprocessing": False}, 2e-2),
]


# Each row plain, and memory-efficient where the family has that mode.
PARITY_CASES = [pytest.param(*row, False, id=row[0]) for row in TIMM_FAMILIES] + [
    pytest.param(*row, True, id=f"{row[0]}-memory_efficient") for row in TIMM_FAMILIES
    if row[0].startswith(("DPN", "DenseNet"))]


@pytest.mark.parametrize("name, timm_name, suffix, kwargs, tol, memory_efficient",
                         PARITY_CASES)
def test_features_match_timm(timm, tmp_path, name, timm_name, suffix, kwargs, tol,
                             memory_efficient):
    import torch

    torch.manual_seed(0)  # timm's initialisation: the same network whatever ran before
    reference = timm.create_model(timm_name, pretrained=False)
    calibrate_torch(reference, random_images(8, 64, seed=1), batches=2)
    path = save_state_dict(reference, tmp_path / f"{timm_name}{suffix}")
    extra = {"memory_efficient": True} if memory_efficient else {}
    backbone = kerasnets.create_model(name, weights=path, include_top=False,
                                      features_only=True, input_shape=(None, None, 3),
                                      **kwargs, **extra)
    images = random_images(2, 96, seed=2)
    ours = [keras.ops.convert_to_numpy(o) for o in backbone(images, training=False)]
    assert_features_close(ours, timm_features(reference, images), tol)
    info = kerasnets.feature_info(name, **kwargs)
    assert [f["reduction"] for f in info] == [2, 4, 8, 16, 32]
    assert [f["num_chs"] for f in info] == [o.shape[-1] for o in ours]
    assert backbone.feature_info == info


def test_out_indices_and_argument_checks():
    backbone = kerasnets.DPN68(weights=None, include_top=False, features_only=True,
                               out_indices=(1, -1), input_shape=(64, 64, 3))
    assert [o.shape for o in backbone.outputs] == [(None, 16, 16, 144), (None, 2, 2, 832)]
    assert [f["reduction"] for f in backbone.feature_info] == [4, 32]
    with pytest.raises(ValueError, match="include_top=False"):
        kerasnets.DPN68(weights=None, features_only=True)
    with pytest.raises(ValueError, match="pooling=None"):
        kerasnets.DPN68(weights=None, include_top=False, pooling="avg", features_only=True)
    with pytest.raises(ValueError, match="out_indices"):
        kerasnets.DPN68(weights=None, include_top=False, features_only=True, out_indices=(5,))
    with pytest.raises(ValueError, match="features_only=True"):
        kerasnets.DPN68(weights=None, include_top=False, out_indices=(1,))


# ------------------------------------------------------------- MobileNetV3


def test_mobilenet_v3_features_match_timm_in_float64(timm, tmp_path):
    """The hard-swish nets amplify float32 rounding (the last map agrees to
    about 5e-3 of its spread in float32, see TIMM_FAMILIES); in float64, at an
    odd size (TF "same" padding on every stride-2 layer), every map of Small
    and Large equals timm's tf_mobilenetv3_* to 1e-11 of its spread or better."""
    import torch

    images = random_images(2, 67, seed=5).astype("float64")
    previous = keras.config.dtype_policy()
    for name, timm_name in (("MobileNetV3Small", "tf_mobilenetv3_small_100"),
                            ("MobileNetV3Large", "tf_mobilenetv3_large_100")):
        reference = timm.create_model(timm_name, pretrained=False)
        calibrate_torch(reference, random_images(8, 64, seed=1), batches=2)
        path = save_state_dict(reference, tmp_path / f"{timm_name}.safetensors")
        keras.config.set_dtype_policy("float64")
        try:
            backbone = kerasnets.create_model(name, weights=path, include_top=False,
                                              features_only=True, input_shape=(67, 67, 3),
                                              include_preprocessing=False)
            ours = [keras.ops.convert_to_numpy(o) for o in backbone(images, training=False)]
        finally:
            keras.config.set_dtype_policy(previous)
        with torch.no_grad():
            theirs = timm_features(reference.double(), images)
        assert_features_close(ours, theirs, 1e-8)
        assert [o.shape[1] for o in ours] == [34, 17, 9, 5, 3]


def test_mobilenet_v3_feature_points():
    """timm's tf_mobilenetv3_* points, the classifier model unchanged, and
    ``out_indices`` / argument checks through the keras.applications-style
    signature (the two arguments come last, keyword-only)."""
    small = kerasnets.feature_info("MobileNetV3Small")
    assert [(f["name"], f["num_chs"], f["reduction"]) for f in small] == [
        ("conv", 16, 2), ("expanded_conv", 16, 4), ("expanded_conv_2", 24, 8),
        ("expanded_conv_7", 48, 16), ("conv_1", 576, 32)]
    large = kerasnets.feature_info("MobileNetV3Large")
    assert [(f["name"], f["num_chs"], f["reduction"]) for f in large] == [
        ("expanded_conv", 16, 2), ("expanded_conv_2", 24, 4), ("expanded_conv_5", 40, 8),
        ("expanded_conv_11", 112, 16), ("conv_1", 960, 32)]
    assert [f["num_chs"] for f in kerasnets.feature_info(
        "MobileNetV3Large", alpha=0.75, minimalistic=True)] == [16, 24, 32, 88, 720]
    # A custom table: the same rule (what precedes a stride-2 block, then conv_1).
    from kerasnets.models.mobilenet_v3 import LARGE_BLOCKS

    custom = kerasnets.MobileNetV3(LARGE_BLOCKS[:-3], 1280, weights=None, include_top=False,
                                   features_only=True, input_shape=(64, 64, 3))
    assert [(f["num_chs"], f["reduction"]) for f in custom.feature_info] == [
        (16, 2), (24, 4), (40, 8), (672, 16)]

    backbone = kerasnets.MobileNetV3Small(weights=None, include_top=False, features_only=True,
                                          out_indices=(0, -1), input_shape=(64, 64, 3))
    assert [o.shape for o in backbone.outputs] == [(None, 32, 32, 16), (None, 2, 2, 576)]
    assert backbone.get_layer("conv_1_act").output is backbone.outputs[-1]
    headless = kerasnets.MobileNetV3Small(weights=None, include_top=False,
                                          input_shape=(64, 64, 3))
    assert headless.output_shape == (None, 2, 2, 576)
    full = kerasnets.MobileNetV3Small(weights=None, include_top=False, features_only=True,
                                      input_shape=(64, 64, 3))
    # No new layers (the input layers' names differ).
    assert [l.name for l in full.layers[1:]] == [l.name for l in headless.layers[1:]]
    with pytest.raises(ValueError, match="include_top=False"):
        kerasnets.MobileNetV3Large(weights=None, features_only=True)
    with pytest.raises(ValueError, match="pooling=None"):
        kerasnets.MobileNetV3Large(weights=None, include_top=False, pooling="avg",
                                   features_only=True)


# ------------------------------------------------------------- IGC v1/v2/v3

# No timm model: the last layer of each stride level (after its activation:
# the ReLU of the stem / of a block, IGCV3's linear bottleneck outputs);
# builder, arguments, input size, the layers whose outputs are the maps
# (channels, reduction). IGCV1CIFAR has no stride-2 stem: strides 1, 2, 4.
IGC_POINTS = [
    ("IGC_L4M32", {}, 64, [("g0_relu", 128, 2), ("g1_b2_relu", 128, 4), ("g2_b2_relu", 256, 8),
                           ("g3_b2_relu", 512, 16), ("g4_b2_relu", 1024, 32)]),
    ("IGC_L100M2", {}, 64, [("g0_relu", 100, 2), ("g1_b2_relu", 200, 4),
                            ("g2_b2_relu", 400, 8), ("g3_b2_relu", 800, 16),
                            ("g4_b2_relu", 1600, 32)]),
    ("IGCV1", dict(stem_filters=32, widths=(32, 64, 128, 256), primary_groups=(4, 4, 8, 8),
                   blocks=(1, 2, 3, 1)),
     64, [("g0_relu", 32, 2), ("g1_b1_relu", 32, 4), ("g2_b2_relu", 64, 8),
          ("g3_b3_relu", 128, 16), ("g4_b1_relu", 256, 32)]),
    ("IGCV1CIFAR", dict(L=4, M=8, depth=20), 32,
     [("g1_b3_relu", 32, 1), ("g2_b3_relu", 64, 2), ("g3_b3_relu", 128, 4)]),
    ("IGCV1CIFAR", dict(L=4, M=8, depth=11, residual=False), 32,
     [("g1_b3_relu", 32, 1), ("g2_b3_relu", 64, 2), ("g3_b3_relu", 128, 4)]),
    ("IGCV2", dict(alpha=0.5), 64,
     [("block1_relu", 56, 2), ("block3_relu", 112, 4), ("block5_relu", 224, 8),
      ("block11_relu", 448, 16), ("block13_relu", 896, 32)]),
    ("IGCV3", dict(alpha=0.5), 64,
     [("seq0_block0_linear_bn", 8, 2), ("seq1_block3_add", 12, 4), ("seq2_block5_add", 16, 8),
      ("seq4_block5_add", 48, 16), ("last_1x1_conv_relu6", 1280, 32)]),
]


# IGC_L100M2 (as IGC_L4M32) and IGCV3 (its pytorchcv parity test) in the heavy tier
@pytest.mark.parametrize("name, kwargs, size, points", [
    pytest.param(*p, id=f"{p[0]}-{i}",
                 marks=[pytest.mark.heavy] if p[0] in ("IGC_L100M2", "IGCV3") else [])
    for i, p in enumerate(IGC_POINTS)])
def test_igc_features_are_the_classifier_layers(tmp_path, name, kwargs, size, points):
    """Shapes and reductions; a backbone loaded from the classifier's weights
    file gives the outputs of the classifier's layers at the points (and its
    last map is the include_top=False output)."""
    shape = (size, size, 3)
    classifier = kerasnets.create_model(name, weights=None, input_shape=shape, **kwargs)
    rng = np.random.default_rng(0)
    for layer in classifier.layers:  # BN statistics off their defaults
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.1, channels).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2, channels).astype("float32"))
    path = str(tmp_path / "classifier.weights.h5")
    classifier.save_weights(path)

    backbone = kerasnets.create_model(name, weights=path, include_top=False,
                                      features_only=True, input_shape=shape, **kwargs)
    info = backbone.feature_info
    assert [(f["num_chs"], f["reduction"]) for f in info] == [p[1:] for p in points]
    assert [tuple(o.shape) for o in backbone.outputs] == [
        (None, size // r, size // r, c) for _, c, r in points]
    assert kerasnets.feature_info(name, input_shape=shape, **kwargs) == info

    images = random_images(2, size, seed=3)
    ours = [keras.ops.convert_to_numpy(o) for o in backbone(images, training=False)]
    taps = keras.Model(classifier.input,
                       [classifier.get_layer(layer).output for layer, _, _ in points])
    for a, b in zip(ours, taps(images, training=False)):
        np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), rtol=1e-5, atol=1e-5)
        assert float(np.std(a)) > 1e-3
    headless = kerasnets.create_model(name, weights=path, include_top=False,
                                      input_shape=shape, **kwargs)
    np.testing.assert_allclose(ours[-1], keras.ops.convert_to_numpy(
        headless(images, training=False)), rtol=1e-5, atol=1e-5)

    picked = kerasnets.create_model(name, weights=None, include_top=False, features_only=True,
                                    out_indices=(-1,), input_shape=shape, **kwargs)
    assert picked.output_shape == backbone.outputs[-1].shape


def test_igcv3_features_match_pytorchcv_stages(torch, tmp_path):
    """IGCV3's points are pytorchcv's igcv3_w1 stage outputs (stage1..4, then
    final_block), with the same checkpoint."""
    from tests.parity import require

    require("pytorchcv")
    from pytorchcv.model_provider import get_model

    torch.manual_seed(0)
    reference = get_model("igcv3_w1", pretrained=False).eval()
    # (its head pools 7x7: calibrated at 224)
    calibrate_torch(reference, random_images(4, 224, seed=1), batches=2)
    path = save_state_dict(reference, tmp_path / "igcv3_w1.pth")
    backbone = kerasnets.IGCV3(weights=path, include_top=False, features_only=True,
                               input_shape=(None, None, 3))
    images = random_images(2, 96, seed=2)
    ours = [keras.ops.convert_to_numpy(o) for o in backbone(images, training=False)]
    theirs = []
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        for module_name, module in reference.features.named_children():
            x = module(x)
            if module_name in ("stage1", "stage2", "stage3", "stage4", "final_block"):
                theirs.append(x.permute(0, 2, 3, 1).numpy())
            if module_name == "final_block":  # then final_pool (7x7)
                break
    assert_features_close(ours, theirs, 1e-3)  # float32: the last map about 2e-4


# ------------------------------------------------- MobileNet v1/v2, DenseNet

# keras.applications' layout (timm's mobilenetv2 pads otherwise): each map is
# keras.applications' layer of the same name, with the same weights (legacy
# .h5, as tests/models/mobilenet_common.py); the last is the headless output.
# (builder, arguments, image size, feature names)
MOBILENET_POINTS = ["conv_pw_1_relu", "conv_pw_3_relu", "conv_pw_5_relu", "conv_pw_11_relu",
                    "conv_pw_13_relu"]
MOBILENET_V2_POINTS = ["expanded_conv_project_BN", "block_2_add", "block_5_add",
                       "block_12_add", "out_relu"]
MOBILENET_KERAS_CASES = [
    ("MobileNet", {"alpha": 0.25, "input_shape": (None, None, 3)}, (97, 75), MOBILENET_POINTS),
    ("MobileNet", {"alpha": 1.0, "input_shape": (64, 64, 3)}, 64, MOBILENET_POINTS),
    ("MobileNetV2", {"alpha": 1.0, "input_shape": (None, None, 3)}, (71, 53),
     MOBILENET_V2_POINTS),
    ("MobileNetV2", {"alpha": 0.35, "input_shape": (96, 96, 3)}, 96, MOBILENET_V2_POINTS),
]


@pytest.mark.parametrize("name, kwargs, size, names", MOBILENET_KERAS_CASES,
                         ids=[f"{c[0]}-a{c[1]['alpha']}" for c in MOBILENET_KERAS_CASES])
def test_mobilenet_v1_v2_features_match_keras_applications(tmp_path, name, kwargs, size,
                                                           names):
    from tests.models.mobilenet_common import KERAS_TOL, keras_reference, save_legacy_h5

    reference = keras_reference(getattr(keras.applications, name), random_images(4, size),
                                include_top=False, **kwargs)
    path = save_legacy_h5(reference, tmp_path / f"{name}.h5")
    backbone = getattr(kerasnets, name)(weights=path, include_top=False, features_only=True,
                                        **kwargs)
    info = backbone.feature_info
    assert [f["name"] for f in info] == names
    assert [f["reduction"] for f in info] == [2, 4, 8, 16, 32]
    assert names[-1] == reference.layers[-1].name  # the include_top=False output
    taps = keras.Model(reference.input, [reference.get_layer(n).output for n in names])
    images = random_images(2, size, seed=3)
    ours = [keras.ops.convert_to_numpy(o) for o in backbone(images, training=False)]
    theirs = [keras.ops.convert_to_numpy(o) for o in taps(images, training=False)]
    assert [f["num_chs"] for f in info] == [o.shape[-1] for o in theirs]
    assert_features_close(ours, theirs, KERAS_TOL)
    np.testing.assert_allclose(ours[-1], keras.ops.convert_to_numpy(reference(images)),
                               rtol=1e-5, atol=1e-5)
    assert kerasnets.feature_info(name, alpha=kwargs["alpha"]) == info

    picked = getattr(kerasnets, name)(weights=None, include_top=False, features_only=True,
                                      out_indices=(0, -1), **kwargs)
    assert [o.shape[-1] for o in picked.outputs] == [info[0]["num_chs"], info[-1]["num_chs"]]
    assert [f["index"] for f in picked.feature_info] == [0, 4]


def test_densenet_feature_points():
    """timm's DenseNet points (stem BN-ReLU, the first three dense blocks'
    outputs before their transitions, the final BN-ReLU), named after keras'
    layers; the same with memory_efficient; a generic 3-block DenseNet has
    one stride fewer."""
    for memory_efficient in (False, True):
        info = kerasnets.feature_info("DenseNet121", memory_efficient=memory_efficient)
        assert [(f["name"], f["num_chs"], f["reduction"]) for f in info] == [
            ("conv1_relu", 64, 2), ("conv2_block6_concat", 256, 4),
            ("conv3_block12_concat", 512, 8), ("conv4_block24_concat", 1024, 16),
            ("relu", 1024, 32)]
    assert [(f["num_chs"], f["reduction"]) for f in kerasnets.feature_info("DenseNet161")] == [
        (96, 2), (384, 4), (768, 8), (2112, 16), (2208, 32)]
    generic = kerasnets.feature_info("DenseNet", blocks=[2, 2, 2], growth_rate=8)
    assert [(f["num_chs"], f["reduction"]) for f in generic] == [
        (16, 2), (32, 4), (32, 8), (32, 16)]


@pytest.mark.parametrize("memory_efficient", [False, True])
def test_densenet_cifar_features_at_strides_1_2_4(tmp_path, memory_efficient):
    """DenseNetCIFAR has no stride-2 stem: its maps are at strides 1, 2, 4
    (the first two dense blocks before their transitions, the final
    BN-ReLU); the last is the include_top=False output, and the
    memory-efficient backbone gives the same maps with the same weights."""
    from tests.parity import calibrate_keras

    args = dict(depth=16, growth_rate=6, bottleneck=True, compression=0.5,
                include_top=False, input_shape=(None, None, 3))
    images = random_images(2, 20, seed=4)
    plain = kerasnets.DenseNetCIFAR(**args, features_only=True)
    calibrate_keras(plain, random_images(4, 20, seed=5))
    path = str(tmp_path / "cifar.weights.h5")
    plain.save_weights(path)
    backbone = kerasnets.DenseNetCIFAR(**args, weights=path, features_only=True,
                                       memory_efficient=memory_efficient)
    info = backbone.feature_info
    assert [(f["name"], f["num_chs"], f["reduction"]) for f in info] == [
        ("conv2_block2_concat", 24, 1), ("conv3_block2_concat", 24, 2), ("relu", 24, 4)]
    assert info == kerasnets.feature_info("DenseNetCIFAR", depth=16, growth_rate=6,
                                          bottleneck=True, compression=0.5)
    ours = [keras.ops.convert_to_numpy(o) for o in backbone(images, training=False)]
    assert [o.shape[1:3] for o in ours] == [(20, 20), (10, 10), (5, 5)]
    expected = [keras.ops.convert_to_numpy(o) for o in plain(images, training=False)]
    assert_features_close(ours, expected, 1e-5)
    headless = kerasnets.DenseNetCIFAR(**args, weights=path, memory_efficient=memory_efficient)
    np.testing.assert_allclose(ours[-1], keras.ops.convert_to_numpy(
        headless(images, training=False)), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ SENet family
# timm's legacy SENets: layer0 (the stem's last ReLU, before the pool), then
# layer1 .. layer4. Calibrated twice, as tests/models/test_senet.py does
# (`calibrated_timm`): after one pass SE-ResNeXt-26's last map carries float32
# rounding of 1.3e-3 of its spread, after two 8e-5 (SE-ResNet-18: 6e-5, 5e-5).
SENET_TIMM = [
    ("SEResNet18", "legacy_seresnet18", (64, 64, 128, 256, 512)),
    ("SEResNeXt26_32x4d", "legacy_seresnext26_32x4d", (64, 256, 512, 1024, 2048)),
]


@pytest.mark.parametrize("name, timm_name, channels", SENET_TIMM,
                         ids=[f[0] for f in SENET_TIMM])
def test_senet_features_match_timm(timm, tmp_path, name, timm_name, channels):
    import torch

    torch.manual_seed(0)
    reference = timm.create_model(timm_name, pretrained=False)
    calibration = random_images(8, 64, seed=1)
    calibrate_torch(reference, calibration, batches=2)
    calibrate_torch(reference, calibration, batches=2)
    path = save_state_dict(reference, tmp_path / f"{timm_name}.safetensors")
    backbone = kerasnets.create_model(name, weights=path, include_top=False,
                                      features_only=True, input_shape=(None, None, 3))
    images = random_images(2, 97, seed=2)  # odd: PyTorch padding, ceil-mode pool
    ours = [keras.ops.convert_to_numpy(o) for o in backbone(images, training=False)]
    assert_features_close(ours, timm_features(reference, images), 1e-3)
    assert [f["num_chs"] for f in reference.feature_info] == list(channels)
    info = kerasnets.feature_info(name)
    assert [(f["num_chs"], f["reduction"]) for f in info] == [
        (f["num_chs"], f["reduction"]) for f in reference.feature_info]
    assert [f["name"] for f in info] == ["conv1_relu"] + [
        f"conv{s}_block2_out" for s in (2, 3, 4, 5)]
    assert backbone.feature_info == info


def test_senet_feature_points():
    """SENet-154's stem (three convolutions), a generic SENet with fewer
    stages, out_indices; the classifier model is unchanged."""
    info = kerasnets.feature_info("SENet154")
    assert [(f["name"], f["num_chs"], f["reduction"]) for f in info] == [
        ("conv1_3_relu", 128, 2), ("conv2_block3_out", 256, 4), ("conv3_block8_out", 512, 8),
        ("conv4_block36_out", 1024, 16), ("conv5_block3_out", 2048, 32)]
    backbone = kerasnets.SENet("bottleneck", (1, 1), weights=None, include_top=False,
                               features_only=True, out_indices=(0, -1),
                               input_shape=(64, 64, 3))
    assert [o.shape for o in backbone.outputs] == [(None, 32, 32, 64), (None, 8, 8, 512)]
    assert [(f["index"], f["reduction"], f["name"]) for f in backbone.feature_info] == [
        (0, 2, "conv1_relu"), (2, 8, "conv3_block1_out")]
    classifier = kerasnets.SEResNet18(weights=None)
    assert not hasattr(classifier, "feature_info")
    assert classifier.output_shape == (None, 1000)
    with pytest.raises(ValueError, match="include_top=False"):
        kerasnets.SEResNet18(weights=None, features_only=True)


def test_se_inception_v3_features_are_keras_inception_v3_layers(tmp_path):
    """se_ratio=None is keras' InceptionV3: the feature maps are its layers
    activation_2, activation_4, mixed2, mixed7, mixed10 (timm's inception_v3
    points) with the same weights; with SE the modules' SE outputs."""
    from tests.models.mobilenet_common import KERAS_TOL, save_legacy_h5
    from tests.models.test_senet import calibrate_scaleless_bn
    from tests.parity import randomize_keras

    images = random_images(2, 99, seed=3)
    keras.backend.clear_session()  # keras' auto names count per session
    reference = keras.applications.InceptionV3(weights=None, include_top=False,
                                               input_shape=(None, None, 3))
    randomize_keras(reference)
    calibrate_scaleless_bn(reference, images)
    path = save_legacy_h5(reference, tmp_path / "inception_v3_notop.h5")
    points = ["activation_2", "activation_4", "mixed2", "mixed7", "mixed10"]
    taps = keras.Model(reference.input, [reference.get_layer(n).output for n in points])
    expected = [keras.ops.convert_to_numpy(o) for o in taps(images, training=False)]
    backbone = kerasnets.SEInceptionV3(se_ratio=None, weights=path, include_top=False,
                                       features_only=True, input_shape=(None, None, 3))
    assert [f["name"] for f in backbone.feature_info] == points
    assert [(f["num_chs"], f["reduction"]) for f in backbone.feature_info] == [
        (64, 2), (192, 4), (288, 8), (768, 16), (2048, 32)]
    ours = [keras.ops.convert_to_numpy(o) for o in backbone(images, training=False)]
    assert_features_close(ours, expected, KERAS_TOL)

    se = kerasnets.SEInceptionV3(include_top=False, features_only=True, out_indices=(2, 4),
                                 input_shape=(99, 99, 3))
    assert [(f["name"], f["num_chs"]) for f in se.feature_info] == [
        ("mixed2_se", 288), ("mixed10_se", 2048)]
    assert se.outputs[1] is se.get_layer("mixed10_se").output  # the headless output
    assert [o.shape[1] for o in se.outputs] == [10, 1]


def test_se_mobilenet_features_are_mobilenet_points():
    """se_ratio=None: keras' MobileNet layers conv_pw_{1,3,5,11,13}_relu
    (with the same weights); with SE the SE blocks after them; the last map
    is the headless output."""
    from tests.models.mobilenet_common import KERAS_TOL
    from tests.parity import calibrate_keras, randomize_keras

    images = random_images(2, 96, seed=4)
    reference = keras.applications.MobileNet(weights=None, alpha=0.5, include_top=False,
                                             input_shape=(96, 96, 3))
    randomize_keras(reference)
    calibrate_keras(reference, images)
    points = [f"conv_pw_{i}_relu" for i in (1, 3, 5, 11, 13)]
    taps = keras.Model(reference.input, [reference.get_layer(n).output for n in points])
    backbone = kerasnets.SEMobileNet(alpha=0.5, se_ratio=None, include_top=False,
                                     features_only=True, input_shape=(96, 96, 3))
    backbone.set_weights(reference.get_weights())  # the same layers, in the same order
    assert [f["name"] for f in backbone.feature_info] == points
    assert [(f["num_chs"], f["reduction"]) for f in backbone.feature_info] == [
        (32, 2), (64, 4), (128, 8), (256, 16), (512, 32)]
    ours = [keras.ops.convert_to_numpy(o) for o in backbone(images, training=False)]
    expected = [keras.ops.convert_to_numpy(o) for o in taps(images, training=False)]
    assert_features_close(ours, expected, KERAS_TOL)

    se = kerasnets.SEMobileNet(include_top=False, features_only=True,
                               input_shape=(96, 96, 3))
    assert [(f["name"], f["num_chs"], f["reduction"]) for f in se.feature_info] == [
        (f"conv_se_{i}", c, r) for i, c, r in
        zip((1, 3, 5, 11, 13), (64, 128, 256, 512, 1024), (2, 4, 8, 16, 32))]
    assert [o.shape[1] for o in se.outputs] == [48, 24, 12, 6, 3]
    assert se.outputs[-1] is se.get_layer("conv_se_13").output  # the headless output
