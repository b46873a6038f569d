"""IGC v1 / v2 / v3 networks: the released architectures, parameter counts,
pytorchcv parity (IGCV3), training through the fast grouped path, errors."""

import json
import os

import numpy as np
import pytest

import keras

import kerasnets
from kerasnets.layers import GroupConv2D, InterleavedGroupConv
from kerasnets.models import igc, igc_v3
from tests.parity import (
    assert_logits_close,
    calibrate_torch,
    random_images,
    require,
    save_state_dict,
    torch_logits,
)

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# ------------------------------------------------------ IGC v1 ImageNet

IMAGENET_PARAMS = {  # REFERENCE section 1: trainable; keras total adds BN statistics
    "IGC_L4M32": (12_251_240, 12_270_440),
    "IGC_L16M16": (13_528_296, 13_566_696),
    "IGC_L100M2": (8_637_900, 8_668_100),
}


@pytest.mark.parametrize("builder", sorted(IMAGENET_PARAMS))
def test_imagenet_networks_are_the_released_symbols(builder):
    """Parameter counts, and every layer of the authors' symbol file: conv
    kernel / filters / groups / stride, BN epsilon, the Reorder branch
    factors, the classifier, and the checkpoint's parameter names."""
    model = getattr(kerasnets, builder)(weights=None)
    assert (trainable(model), model.count_params()) == IMAGENET_PARAMS[builder]
    symbol = json.load(open(os.path.join(DATA, "igc_imagenet_symbols.json")))[builder]

    def keras_conv(name):  # MXNet conv name -> the Keras (sub-)layer holding it
        for suffix, part in (("_conv1", "primary"), ("_conv2", "secondary")):
            if name.endswith(suffix) and "_proj" not in name:
                return getattr(model.get_layer(name[: -len(suffix)]), part)
        return model.get_layer(name)

    reorders = [entry for entry in symbol["layers"] if entry[0] == "Reorder"]
    igc_layers = [l for l in model.layers if isinstance(l, InterleavedGroupConv)]
    assert len(reorders) == 2 * len(igc_layers)
    for entry in symbol["layers"]:
        kind, name = entry[:2]
        if kind == "Convolution":
            _, _, kernel, filters, groups, stride, pad = entry
            conv = keras_conv(name)
            assert conv.kernel_size == tuple(kernel) and conv.filters == filters, name
            assert conv.groups == groups and conv.strides == tuple(stride), name
            if kernel[0] > 1 and stride[0] > 1:  # symmetric padding, as MXNet
                pad_name = name[: -len("_conv1")] if name.endswith("_conv1") else name[: -len("_conv")]
                assert model.get_layer(f"{pad_name}_pad").padding == ((pad[0],) * 2, (pad[1],) * 2)
        elif kind == "BatchNorm":
            assert model.get_layer(name).epsilon == pytest.approx(entry[2]) == 2e-5
        elif kind == "Reorder":
            layer = model.get_layer(name.rsplit("_reorder", 1)[0])
            expected = layer.primary_groups if name.endswith("1") else layer.secondary_groups
            assert entry[2] == expected, name
        elif kind == "FullyConnected":
            assert model.get_layer("predictions").units == entry[2]
    # The package's MXNet name map asks for exactly the checkpoint's names.
    layer_map, _ = igc.mxnet_layer_map(model)
    wanted = set()
    for layer in model.layers:
        for variable in layer.weights:
            prefix = layer_map[layer.name]
            if isinstance(prefix, dict):
                prefix = prefix[variable.path.split("/")[-2]]
            kind = variable.path.rsplit("/", 1)[-1]
            wanted.add(prefix + "_" + {"kernel": "weight", "moving_variance": "moving_var"}.get(kind, kind))
    bn_stats = {f"{e[1]}_{s}" for e in symbol["layers"] if e[0] == "BatchNorm"
                for s in ("moving_mean", "moving_var")}
    assert wanted == set(symbol["params"]) | bn_stats


def test_full_size_forward_and_headless_pooling():
    model = kerasnets.IGC_L100M2(weights=None)
    probs = model.predict(random_images(1, 224), verbose=0)
    assert probs.shape == (1, 1000)
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-5)
    headless = kerasnets.IGC_L4M32(weights=None, include_top=False, pooling="max",
                                   input_shape=(96, 128, 3))
    assert headless.output_shape == (None, 1024)
    features = kerasnets.IGC_L4M32(weights=None, include_top=False)
    assert features.output_shape == (None, None, None, 1024)


def test_pretrained_cfgs_layer_maps_and_preprocessing():
    for builder in IMAGENET_PARAMS:
        cfg = kerasnets.weights.pretrained_cfg(builder)
        assert kerasnets.weights.available(builder) == ["imagenet"]
        assert cfg.format == "mxnet_params"
        assert cfg.url.startswith("https://raw.githubusercontent.com/hellozting/")
        assert cfg.url.endswith("-0095.params")
        assert cfg.file_hash.startswith("git-blob:") and cfg.reference is None
        assert (cfg.mean, cfg.std) == (igc.IGC_MEAN, igc.IGC_STD)
        assert kerasnets.registry.get(builder).layer_maps == {"mxnet": igc.mxnet_layer_map}
    assert kerasnets.weights.available("IGCV1CIFAR") == []
    assert kerasnets.weights.available("IGCV2") == []
    assert kerasnets.registry.get("IGCV1").layer_maps == {"mxnet": igc.mxnet_layer_map}
    cifar = kerasnets.registry.get("IGCV1CIFAR")
    assert cifar.layer_maps == {"mxnet": igc.mxnet_cifar_layer_map}
    assert (cifar.generic, cifar.default_size, cifar.min_size) == (True, 32, 8)
    assert kerasnets.registry.get("IGCV2").layer_maps == {}
    x = np.array([[[[123.370, 112.757, 99.406], [255.0, 0.0, 0.0]]]], "float32")
    y = igc.preprocess_input(x.copy())
    np.testing.assert_allclose(y[0, 0, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(y[0, 0, 1], [(255 - 123.370) / 68.998, -112.757 / 66.093,
                                            -99.406 / 68.292], rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(igc.preprocess_input(keras.ops.convert_to_tensor(x))), y)


# --------------------------------------------------------- IGC v1 CIFAR

CIFAR_PARAMS = {  # (L, M, depth, residual): trainable, 10 classes (module docstring)
    (4, 8, 8, False): 78_634, (4, 8, 8, True): 82_346,
    (4, 8, 20, False): 277_546, (4, 8, 20, True): 281_258,
    (4, 8, 38, False): 575_914, (4, 8, 38, True): 579_626,
    (24, 2, 8, False): 48_442, (24, 2, 8, True): 56_890,
    (24, 2, 20, False): 155_962, (24, 2, 20, True): 164_410,
    (24, 2, 38, False): 317_242, (24, 2, 38, True): 325_690,
    (32, 26, 20, True): 24_215_370,
}


@pytest.mark.parametrize("config", sorted(CIFAR_PARAMS))
def test_cifar_parameter_table(config):
    L, M, depth, residual = config
    model = kerasnets.IGCV1CIFAR(L, M, depth, residual=residual)
    assert trainable(model) == CIFAR_PARAMS[config]
    assert model.output_shape == (None, 10)
    igcs = [l for l in model.layers if isinstance(l, InterleavedGroupConv)]
    assert len(igcs) == 3 * ((depth - 2) // 3)  # IGC blocks: depth - 2 (+ stem, FC)
    assert {l.primary_groups for l in igcs} == {L}
    assert {l.filters // l.primary_groups for l in igcs} >= {M, 2 * M, 4 * M}


def test_cifar_100_classes_and_round_trip(tmp_path):
    model = kerasnets.IGCV1CIFAR(4, 2, 8, classes=100)
    assert trainable(model) - trainable(kerasnets.IGCV1CIFAR(4, 2, 8)) == 90 * (4 * 8 + 1)
    path = str(tmp_path / "igc.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    images = random_images(2, 32)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_training_lowers_the_loss_through_the_fast_grouped_path(monkeypatch):
    """A learnable synthetic task (which half of the image is brighter): the
    loss falls within a few steps, and no grouped convolution goes through
    Keras' stock (XLA-compiled on TensorFlow) grouped path."""
    from keras.src.layers.convolutional.base_conv import BaseConv

    stock_grouped_calls = []
    original = BaseConv.convolution_op

    def spy(self, inputs, kernel):
        if self.groups > 1:
            stock_grouped_calls.append(self.name)
        return original(self, inputs, kernel)

    monkeypatch.setattr(BaseConv, "convolution_op", spy)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 64)
    images = rng.normal(0, 1, (64, 16, 16, 3)).astype("float32")
    images[labels == 1, :8] += 1.0  # top half brighter
    images[labels == 0, 8:] += 1.0  # bottom half brighter
    model = kerasnets.IGCV1CIFAR(4, 2, 8, classes=2, input_shape=(16, 16, 3))
    grouped = [l for l in model._flatten_layers()
               if isinstance(l, keras.layers.Conv2D) and l.groups > 1]
    assert grouped and all(isinstance(l, GroupConv2D) for l in grouped)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss="sparse_categorical_crossentropy", jit_compile=False)
    before = model.evaluate(images, labels, verbose=0)
    history = model.fit(images, labels, batch_size=16, epochs=6, verbose=0, shuffle=True)
    after = model.evaluate(images, labels, verbose=0)
    print(f"loss {before:.3f} -> {after:.3f} (train {history.history['loss']})")
    assert after < 0.5 * before
    assert stock_grouped_calls == []


# ----------------------------------------------------------------- IGC v2


@pytest.mark.parametrize("in_channels, filters, k, convs", [
    (64, 64, 8, None), (64, 64, 4, None), (32, 64, 8, None), (16, 16, 16, None),
    (64, 64, 4, 2), (32, 112, 4, 2), (112, 224, 4, 2), (16, 16, 4, 3),
])
def test_igcv2_block_meets_the_complementary_condition(in_channels, filters, k, convs):
    """All-ones kernels, a one-hot input at the centre pixel: the centre output
    counts the paths from each input channel to each output channel."""
    inputs = keras.Input((3, 3, in_channels))
    full = keras.Model(inputs, igc.igcv2_block(inputs, filters, k, "b", convs=convs))
    chain = igc.igcv2_groups(in_channels, filters, k, convs=convs)
    if convs:
        assert len(chain) == convs
    graph = keras.Model(inputs, full.get_layer(f"b_gconv{len(chain)}").output)  # before BN
    for variable in graph.weights:
        variable.assign(np.ones(variable.shape, "float32"))
    probe = np.zeros((in_channels, 3, 3, in_channels), "float32")
    probe[np.arange(in_channels), 1, 1, np.arange(in_channels)] = 1.0
    paths = graph.predict(probe, verbose=0)[:, 1, 1, :]  # (input channel, output channel)
    assert (paths > 0).all()  # every output sees every input
    sizes = [(in_channels if i == 0 else filters) // g for i, g in enumerate(chain)]  # K_2..K_L
    if in_channels == filters and np.prod(sizes) == filters:
        np.testing.assert_array_equal(paths, 1.0)  # exactly one path
    convs_ = [l for l in graph.layers if l.name.startswith("b_gconv")]
    assert len(convs_) == len(chain)
    assert sum(l.count_params() for l in convs_) == sum(size * filters for size in sizes)


IGCV2_PAPER = {  # alpha: trainable parameters built; the paper's MACs (ShuffleNet V2, Table 8)
    1.0: (4_872_760, 564e6),
    0.5: (1_702_272, 156e6),
    0.25: (667_984, 46e6),
}


@pytest.mark.parametrize("alpha", sorted(IGCV2_PAPER))
def test_igcv2_counts_against_the_paper(alpha):
    """The reconstruction of IGCV2-1.0 / 0.5 / 0.25 (module notes): its own
    parameter count, and MACs within 2 % of the paper's 564 / 156 / 46 M
    (counted as the paper's 569 M of MobileNet v1: convolutions and FC)."""
    from kerasnets.utils import count_macs

    params, paper_macs = IGCV2_PAPER[alpha]
    model = kerasnets.IGCV2(alpha=alpha, input_shape=(224, 224, 3))
    assert trainable(model) == params
    macs = count_macs(model)
    print(f"IGCV2 alpha {alpha}: {trainable(model):,} parameters, {macs / 1e6:.1f} M MACs "
          f"(paper {paper_macs / 1e6:.0f} M)")
    assert abs(macs - paper_macs) <= 0.02 * paper_macs


def test_igcv2_block_structure():
    """Default network: stem 3x3/2 32-ch, MobileNet v1's 13 units 1.75 x wider,
    each channel-wise 3x3 (MobileNet's stride) -> 1x1 group conv with 4
    channels a group -> shuffle -> 1x1 group conv with 4 groups -> BN -> ReLU."""
    model = kerasnets.IGCV2()
    assert model.get_layer("stem_conv").filters == 32
    assert model.get_layer("stem_conv").strides == (2, 2)
    assert igc.IGCV2_UNITS == tuple((c * 7 // 4, s) for c, s in igc.MOBILENET_UNITS)
    assert [c for c, _ in igc.IGCV2_UNITS] == [112, 224, 224, 448, 448] + [896] * 6 + [1792] * 2
    in_channels = 32
    for index, (filters, strides) in enumerate(igc.IGCV2_UNITS, start=1):
        name = f"block{index}"
        dw = model.get_layer(f"{name}_dw")
        assert isinstance(dw, keras.layers.DepthwiseConv2D)
        assert dw.kernel_size == (3, 3) and dw.strides == (strides, strides) and not dw.use_bias
        first, second = model.get_layer(f"{name}_gconv1"), model.get_layer(f"{name}_gconv2")
        assert first.kernel_size == second.kernel_size == (1, 1)
        assert first.filters == second.filters == filters
        assert first.groups == in_channels // 4  # K_2 = 4 channels a group
        assert second.groups == 4  # K_3 = C / 4 channels a group
        assert model.get_layer(f"{name}_shuffle1").groups == first.groups
        with pytest.raises(ValueError):
            model.get_layer(f"{name}_gconv3")
        assert model.get_layer(f"{name}_bn").epsilon == pytest.approx(2e-5)
        in_channels = filters
    assert model.get_layer("predictions").units == 1000
    assert model.output_shape == (None, 1000)


def test_igcv2_builds_and_refuses_bad_group_sizes():
    model = kerasnets.IGCV2(alpha=0.25, input_shape=(64, 64, 3), classes=10)
    assert model.predict(random_images(1, 64), verbose=0).shape == (1, 10)
    headless = kerasnets.IGCV2(alpha=0.5, include_top=False, pooling="avg",
                               input_shape=(96, 96, 3))
    assert headless.output_shape == (None, 896)
    # The earlier kerasnets layout (MobileNet widths, shortest chains with K = 8).
    legacy = kerasnets.IGCV2(group_size=8, units=igc.MOBILENET_UNITS, group_convs=None)
    assert trainable(legacy) == 1_231_976
    with pytest.raises(ValueError, match="group size K=6"):
        kerasnets.IGCV2(group_size=6)
    with pytest.raises(ValueError, match="group size K=6"):
        kerasnets.IGCV2(group_size=6, group_convs=None)


# ----------------------------------------------------------------- IGC v3

IGCV3_PARAMS = {1.0: 3_491_688, 0.75: 2_638_084, 0.5: 1_985_528, 0.25: 1_534_020}


@pytest.mark.parametrize("alpha", sorted(IGCV3_PARAMS))
def test_igcv3_parameter_counts(alpha):
    """pytorchcv igcv3_w1 / w3d4 / wd2 / wd4 (the paper: 3.5 M at 1.0)."""
    model = kerasnets.IGCV3(alpha=alpha, weights=None)
    assert trainable(model) == IGCV3_PARAMS[alpha]


def test_igcv3_pretrained_cfg_and_signature():
    import inspect

    cfg = kerasnets.weights.pretrained_cfg("IGCV3", options={"alpha": 1.0})
    assert kerasnets.weights.available("IGCV3") == ["imagenet"]
    assert cfg.format == "mxnet_params" and cfg.reference is None
    assert cfg.url.startswith("https://raw.githubusercontent.com/homles11/IGCV3/")
    assert cfg.url.endswith("models/igcv3-0000.params")
    assert (cfg.mean, cfg.std) == (igc_v3.IGCV3_MEAN, (1.0, 1.0, 1.0))
    assert kerasnets.weights.pretrained_cfg("IGCV3", options={"alpha": 0.5}, strict=False) is None
    assert kerasnets.registry.get("IGCV3").layer_maps == {
        "mxnet": igc_v3.mxnet_layer_map, "torch": igc_v3.pytorchcv_layer_map}
    assert igc.IGCV3 is igc_v3.IGCV3  # re-exported
    parameters = inspect.signature(igc_v3.IGCV3).parameters
    assert list(parameters)[:8] == ["include_top", "weights", "input_tensor", "input_shape",
                                    "pooling", "classes", "classifier_activation", "name"]
    for keyword in ("alpha", "include_preprocessing"):
        assert parameters[keyword].kind is inspect.Parameter.KEYWORD_ONLY
    x = np.array([[[[123.68, 116.779, 103.939], [255.0, 0.0, 0.0]]]], "float32")
    y = igc_v3.preprocess_input(x.copy())
    np.testing.assert_allclose(y[0, 0], [[0.0, 0.0, 0.0], [255 - 123.68, -116.779, -103.939]],
                               rtol=1e-6, atol=1e-5)


def test_igcv3_matches_the_released_symbol_names():
    model = kerasnets.IGCV3(weights=None)
    layer_map, _ = igc_v3.mxnet_layer_map(model)
    suffix = {"kernel": "weight", "depthwise_kernel": "weight", "moving_variance": "moving_var"}
    wanted = {f"{layer_map[l.name]}_{suffix.get(v.path.rsplit('/', 1)[-1], v.path.rsplit('/', 1)[-1])}"
              for l in model.layers for v in l.weights}
    released = json.load(open(os.path.join(DATA, "igcv3_symbol_params.json")))["params"]
    assert wanted == set(released)
    assert all(l.epsilon == 1e-5 for l in model.layers if isinstance(l, keras.layers.BatchNormalization))


def test_igcv3_pytorchcv_parity(tmp_path):
    require("torch")
    require("pytorchcv")
    from pytorchcv.model_provider import get_model

    reference = get_model("igcv3_w1", pretrained=False).eval()
    assert sum(p.numel() for p in reference.parameters()) == IGCV3_PARAMS[1.0]
    calibrate_torch(reference, random_images(8, 224, seed=1), batches=2)
    path = save_state_dict(reference, tmp_path / "igcv3_w1.pth")
    model = kerasnets.IGCV3(weights=path, classifier_activation=None)
    images = random_images(2, 224, seed=3)
    ratio = assert_logits_close(model.predict(images, verbose=0), torch_logits(reference, images),
                                tol=3e-4)
    print(f"igcv3_w1 224px: max diff / logit spread = {ratio:.2e}")


# ------------------------------------------------------------- bad input


def test_bad_arguments():
    with pytest.raises(ValueError, match="stage 2 has 250 channels"):
        igc.IGCV1(64, (128, 250, 512, 1024), (4, 4, 4, 4))
    with pytest.raises(ValueError, match="one entry per stage"):
        igc.IGCV1(64, (128, 256), (4, 4, 4, 4))
    with pytest.raises(ValueError, match="depth=10 is not 2 \\+ a multiple of 6"):
        kerasnets.IGCV1CIFAR(4, 8, 10)
    kerasnets.IGCV1CIFAR(4, 8, 11, residual=False)  # plain: 3 IGC blocks a stage
    with pytest.raises(ValueError, match="at least 32x32"):
        kerasnets.IGC_L4M32(weights=None, input_shape=(16, 16, 3))
    with pytest.raises(ValueError, match="Unknown weights 'imagenet' for IGCV1CIFAR"):
        kerasnets.IGCV1CIFAR(4, 8, 20, weights="imagenet")
    with pytest.raises(ValueError, match="classes"):
        kerasnets.IGC_L16M16(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match="alpha=1.0 only"):
        kerasnets.IGCV3(alpha=0.5)
    with pytest.raises(TypeError, match="keyword-only"):
        kerasnets.IGCV3(0.5)  # alpha came first before the catalog signature
    with pytest.raises(ValueError, match="does not exist"):
        kerasnets.IGC_L100M2(weights="/nonexistent/igc.params")
    with pytest.raises(ValueError, match="no published pretrained weights"):
        kerasnets.IGCV2(weights="imagenet")
