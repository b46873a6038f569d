"""DenseNet: keras.applications and timm parity, parameter counts, errors."""

try:
    # timm imports torch._dynamo, which imports triton; importing triton
    # after TensorFlow segfaults on this machine, so load it first.
    import triton  # noqa: F401
except ImportError:
    pass

import inspect
import shutil

import h5py
import numpy as np
import pytest

import keras

import kerasnets
from kerasnets.models import densenet, densenet_cifar
from kerasnets.weights.config import IMAGENET_MEAN, IMAGENET_STD
from tests.parity import (
    assert_logits_close,
    calibrate_keras,
    calibrate_torch,
    random_images,
    randomize_keras,
    save_state_dict,
    torch_logits,
)

# keras.applications parity: same graph, same weights; measured ratio 0
# (bit-identical outputs), the tolerance only allows other kernels.
KERAS_TOL = 1e-5
# timm parity is limited by float32 rounding: measured ratios 4e-5 to 2.6e-4
# of the logit spread (it varies between runs; features 1.5e-4 to 2e-4),
# of which the BN epsilon (timm 1e-5, keras 1.001e-5) is about 2e-5; timm's
# own float32 logits differ from its float64 ones by 8e-5. Measured bugs:
# BN epsilon 1e-3 gives 3.1, TF "same" padding in the stem 7.6.
TIMM_TOL = 1e-3


def trainable_params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def save_legacy_h5(model, path):
    """Writes ``model``'s weights as keras.applications publishes them.

    Keras 3.15's ``model.save_weights`` refuses names not ending in
    ``.weights.h5`` (checked by ``test_keras_save_weights_refuses_legacy_h5``),
    so the legacy writer is called directly.
    """
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return str(path)


def keras_reference(builder, images, include_top=True, **kwargs):
    """keras.applications model, random weights, calibrated BN."""
    model = builder(
        weights=None,
        include_top=include_top,
        classifier_activation=None,
        **kwargs,
    )
    randomize_keras(model)
    calibrate_keras(model, images)
    return model


def run(model, images):
    """Eager inference (predict() traces a tf.function: 10x slower here)."""
    return keras.ops.convert_to_numpy(model(images, training=False))


def weight_layer_names(model):
    return [layer.name for layer in model.layers if layer.weights]


@pytest.fixture(scope="module")
def keras121_h5(tmp_path_factory):
    """A randomised, calibrated keras.applications DenseNet121 (with top) as
    a legacy .h5 file, and its logits on 224x224 images."""
    images = random_images(4, 224)
    reference = keras_reference(keras.applications.DenseNet121, images)
    path = save_legacy_h5(
        reference, tmp_path_factory.mktemp("densenet") / "densenet121.h5"
    )
    expected = run(reference, images)
    names = weight_layer_names(reference)
    keras.backend.clear_session()
    return path, images, expected, names


@pytest.fixture(scope="module")
def densenet169():
    """One DenseNet169 (random weights) for the wrong-checkpoint tests."""
    return kerasnets.DenseNet169(weights=None, input_shape=(32, 32, 3))


def check_counts(model, trainable, total):
    assert trainable_params(model) == trainable
    assert model.count_params() == total


# ---------------------------------------------------- keras.applications


def test_keras_save_weights_refuses_legacy_h5(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        model.save_weights(str(tmp_path / "x.h5"))


def test_densenet121_matches_keras_applications(keras121_h5):
    path, images, expected, names = keras121_h5
    model = kerasnets.DenseNet121(weights=path, classifier_activation=None)
    assert model.input_shape == (None, 224, 224, 3)
    assert weight_layer_names(model) == names
    check_counts(model, 7_978_856, 8_062_504)
    ratio = assert_logits_close(run(model, images), expected, KERAS_TOL)
    print(f"DenseNet121 vs keras.applications (top, 224): ratio {ratio:.2g}")


@pytest.mark.heavy
def test_generic_densenet_notop_matches_keras_applications(tmp_path):
    """keras' notop file, through the generic builder (blocks first)."""
    images = random_images(4, 64, seed=1)
    reference = keras_reference(
        keras.applications.DenseNet121, images, include_top=False
    )
    path = save_legacy_h5(reference, tmp_path / "densenet121_notop.h5")
    expected = run(reference, images)
    model = kerasnets.DenseNet([6, 12, 24, 16], include_top=False, weights=path)
    assert model.output_shape == (None, None, None, 1024)
    assert weight_layer_names(model) == weight_layer_names(reference)
    ratio = assert_logits_close(run(model, images), expected, KERAS_TOL)
    print(f"DenseNet121 vs keras.applications (no top, 64): ratio {ratio:.2g}")


@pytest.mark.parametrize(
    "ours, theirs, counts",
    [
        (
            kerasnets.DenseNet169,
            keras.applications.DenseNet169,
            (14_149_480, 14_307_880),
        ),
        (
            kerasnets.DenseNet201,
            keras.applications.DenseNet201,
            (20_013_928, 20_242_984),
        ),
    ],
)
@pytest.mark.heavy
def test_densenet169_201_match_keras_applications(tmp_path, ours, theirs, counts):
    images = random_images(4, 64, seed=2)
    reference = keras_reference(theirs, images, input_shape=(64, 64, 3))
    path = save_legacy_h5(reference, tmp_path / "weights.h5")
    expected = run(reference, images)
    model = ours(weights=path, input_shape=(64, 64, 3), classifier_activation=None)
    assert weight_layer_names(model) == weight_layer_names(reference)
    check_counts(model, *counts)
    ratio = assert_logits_close(run(model, images), expected, KERAS_TOL)
    print(f"{model.name} vs keras.applications (64): ratio {ratio:.2g}")


def test_densenet121_h5_into_densenet169_raises(keras121_h5, densenet169):
    # What DenseNet169(weights=path) runs after building the model.
    with pytest.raises(ValueError, match=r"layer #\d+ 'conv4_block25_1_conv'"):
        kerasnets.weights.load_weights(
            densenet169, keras121_h5[0],
            layer_maps=kerasnets.registry.get("DenseNet169").layer_maps)


# -------------------------------------------------------------- timm


@pytest.fixture
def timm1(timm):
    """timm, with torch on one thread: on 2 shared cores torch's OpenMP pool
    ran densenet161 5x slower with 2 threads than with 1."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield timm
    torch.set_num_threads(threads)


def _timm_reference(timm, name, size=224, seed=0):
    model = timm.create_model(name, pretrained=False)
    calibrate_torch(model, random_images(4, size, seed=seed))
    return model


def test_densenet121_matches_timm(timm1, tmp_path, densenet169, monkeypatch):
    import torch

    reference = _timm_reference(timm1, "densenet121")
    path = save_state_dict(reference, tmp_path / "densenet121.safetensors")
    model = kerasnets.DenseNet121(
        weights=path, input_shape=(None, None, 3), classifier_activation=None
    )
    for size, seed in ((224, 3), (97, 4)):
        images = random_images(2, size, seed=seed)
        ratio = assert_logits_close(
            run(model, images), torch_logits(reference, images), TIMM_TOL
        )
        print(f"DenseNet121 vs timm at {size}: ratio {ratio:.2g}")

    # The "tv_in1k" tag, its file already in the cache (no network here);
    # headless, so the classifier tensors are skipped; features = norm5+ReLU.
    cache = tmp_path / "keras" / "models" / "kerasnets"
    cache.mkdir(parents=True)
    shutil.copy(path, cache / "DenseNet121.tv_in1k.model.safetensors")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    headless = kerasnets.DenseNet121(weights="tv_in1k", include_top=False)
    images = random_images(2, 97, seed=5)
    with torch.no_grad():
        features = reference.forward_features(
            torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
        ).numpy()
    ratio = assert_logits_close(
        run(headless, images), features.transpose(0, 2, 3, 1), TIMM_TOL
    )
    print(f"DenseNet121 features vs timm at 97: ratio {ratio:.2g}")

    with pytest.raises(ValueError, match=r"features\.denseblock3\.denselayer25"):
        kerasnets.weights.load_weights(
            densenet169, path, layer_maps=kerasnets.registry.get("DenseNet169").layer_maps)


@pytest.mark.heavy
def test_densenet161_matches_timm_pth(timm1, tmp_path):
    reference = _timm_reference(timm1, "densenet161")
    path = save_state_dict(reference, tmp_path / "densenet161.pth")
    model = kerasnets.DenseNet161(
        weights=path, input_shape=(None, None, 3), classifier_activation=None
    )
    check_counts(model, 28_681_000, 28_900_936)
    assert model.get_layer("conv1_conv").filters == 96
    for size, seed in ((224, 6), (97, 7)):
        images = random_images(2, size, seed=seed)
        ratio = assert_logits_close(
            run(model, images), torch_logits(reference, images), TIMM_TOL
        )
        print(f"DenseNet161 vs timm at {size}: ratio {ratio:.2g}")


def test_converter_registered_for_every_builder():
    for builder in (
        "DenseNet",
        "DenseNet121",
        "DenseNet161",
        "DenseNet169",
        "DenseNet201",
        "DenseNet264",
    ):
        assert kerasnets.registry.get(builder).layer_maps["torch"] is densenet.timm_layer_map


# ------------------------------------------------------ parameter counts


@pytest.mark.heavy
def test_densenet264_parameter_counts():
    # 121/169/201/161 are counted in their parity tests.
    model = kerasnets.DenseNet264(input_shape=(32, 32, 3))
    check_counts(model, 33_337_704, 33_736_232)
    assert model.get_layer("conv5_block48_concat").output.shape[-1] == 2688


@pytest.mark.parametrize(
    "depth, growth_rate, bc, params",
    [
        (40, 12, False, 1_019_722),
        (100, 12, False, 6_979_642),
        (100, 12, True, 769_162),
        pytest.param(250, 24, True, 15_324_406, marks=pytest.mark.heavy),
        pytest.param(190, 40, True, 25_624_430, marks=pytest.mark.heavy),
    ],
)
def test_cifar_parameter_counts(depth, growth_rate, bc, params):
    model = kerasnets.DenseNetCIFAR(
        depth,
        growth_rate,
        bottleneck=bc,
        compression=0.5 if bc else 1.0,
    )
    assert trainable_params(model) == params
    assert model.input_shape == (None, 32, 32, 3)
    assert model.output_shape == (None, 10)
    blocks = {name.split("_")[0] for name in weight_layer_names(model)}
    assert blocks == {"conv1", "conv2", "conv3", "conv4", "pool2", "pool3", "bn", "predictions"}
    n = (depth - 4) // (6 if bc else 3)
    assert f"conv4_block{n}_concat" in [layer.name for layer in model.layers]
    assert f"conv4_block{n + 1}_concat" not in [layer.name for layer in model.layers]


def test_cifar_forward_and_variants():
    images = random_images(2, 32)
    model = kerasnets.DenseNetCIFAR(40, 12, dropout_rate=0.2)
    out = run(model, images)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert model.name == "densenet40_k12"
    # Dropout follows each conv (and the transitions) in the paper's setup.
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert len(drops) == 3 * 12 + 2
    # Stem: 16 channels, 2k for DenseNet-BC; plain DenseNet has no 1x1 conv.
    assert model.get_layer("conv1_conv").filters == 16
    assert model.get_layer("conv2_block1_1_conv").kernel_size == (3, 3)
    bc = kerasnets.DenseNetCIFAR(
        40, 12, bottleneck=True, compression=0.5, include_top=False, pooling="avg"
    )
    assert bc.name == "densenet_bc40_k12"
    assert bc.get_layer("conv1_conv").filters == 24
    assert bc.get_layer("conv2_block1_1_conv").filters == 48
    # n = 6: 24 + 6k = 96 -> 48 -> 48 + 6k = 120 -> 60 -> 60 + 6k = 132.
    assert bc.get_layer("pool2_conv").filters == 48
    assert bc.output_shape == (None, 132)
    assert run(bc, images).shape == (2, 132)


@pytest.mark.parametrize("depth, bottleneck", [(41, False), (4, False), (100.0, False), (42, True), (4, True)])
def test_cifar_invalid_depth_raises(depth, bottleneck):
    with pytest.raises(ValueError, match="depth"):
        kerasnets.DenseNetCIFAR(depth, 12, bottleneck=bottleneck)


def test_minimum_input_size(densenet169):
    # 32x32 (the minimum) leaves 1x1 maps after the stem and 3 transitions.
    assert densenet169.get_layer("relu").output.shape == (None, 1, 1, 1664)
    out = run(densenet169, random_images(1, 32))
    assert out.shape == (1, 1000)


def test_keras_file_round_trip(tmp_path):
    """No Lambda layers: the .keras file loads with safe_mode=True."""
    model = kerasnets.DenseNet(
        [1, 2], growth_rate=4, dropout_rate=0.1, classes=3, input_shape=(32, 32, 3)
    )
    path = str(tmp_path / "densenet.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    images = random_images(2, 32)
    np.testing.assert_allclose(run(loaded, images), run(model, images), rtol=1e-6)


def test_generic_densenet_forms():
    """DenseNet, -B, -C, -BC on ImageNet-style inputs (small and cheap)."""
    images = random_images(2, 32)
    plain = kerasnets.DenseNet(
        [2, 2],
        growth_rate=8,
        bottleneck=False,
        compression=1.0,
        classes=5,
        input_shape=(32, 32, 3),
    )
    assert plain.get_layer("conv1_conv").filters == 16
    assert plain.get_layer("pool2_conv").filters == 16 + 2 * 8
    assert "conv2_block1_2_conv" not in [layer.name for layer in plain.layers]
    compressed = kerasnets.DenseNet(
        [2, 2], growth_rate=8, init_features=12, compression=0.5, include_top=False
    )
    assert compressed.get_layer("conv1_conv").filters == 12
    assert compressed.get_layer("conv2_block1_1_conv").filters == 32
    assert compressed.get_layer("pool2_conv").filters == (12 + 16) // 2
    assert run(plain, images).shape == (2, 5)


# -------------------------------------------------------------- errors


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="classes"):
        kerasnets.DenseNet121(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match=r"'imagenet', 'ra_in1k', 'tv_in1k'"):
        kerasnets.DenseNet121(weights="in22k")
    with pytest.raises(ValueError, match="no published pretrained weights"):
        kerasnets.DenseNet264(weights="imagenet")
    with pytest.raises(ValueError, match="no published pretrained weights"):
        kerasnets.DenseNet([1, 2, 3, 4], weights="imagenet")
    with pytest.raises(ValueError, match=r"'imagenet', 'ra_in1k', 'tv_in1k'"):
        kerasnets.DenseNet([6, 12, 24, 16], weights="nope")
    with pytest.raises(ValueError, match="at least 32x32"):
        kerasnets.DenseNet121(weights=None, include_top=False, input_shape=(31, 64, 3))
    with pytest.raises(ValueError, match="growth_rate"):
        kerasnets.DenseNet([6, 12, 24, 16], False)  # keras' positional include_top
    with pytest.raises(ValueError, match="blocks"):
        kerasnets.DenseNet(121)
    with pytest.raises(ValueError, match="compression"):
        kerasnets.DenseNet([2, 2], compression=0.0)
    with pytest.raises(ValueError, match="pooling"):
        kerasnets.DenseNet121(weights=None, include_top=False, pooling="sum")


def test_registry_entries():
    pretrained_cfg = kerasnets.weights.pretrained_cfg
    assert kerasnets.weights.available("DenseNet121") == ["imagenet", "ra_in1k", "tv_in1k"]
    cfg = pretrained_cfg("DenseNet121", "imagenet")
    assert cfg.format == "keras_h5"
    assert cfg.url.endswith("densenet121_weights_tf_dim_ordering_tf_kernels.h5")
    assert cfg.file_hash == "9d60b8095a5708f2dcce2bca79d332c7"
    assert cfg.notop_url.endswith("densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5")
    assert cfg.notop_hash == "30ee3e1110167f948a6b9946edeeb738"
    assert cfg.reference == "keras:DenseNet121"
    assert (cfg.mean, cfg.std) == (IMAGENET_MEAN, IMAGENET_STD)  # keras "torch" mode
    assert pretrained_cfg("DenseNet169").file_hash == "d699b8f76981ab1b30698df4c175e90b"
    assert pretrained_cfg("DenseNet201").notop_hash == "c13680b51ded0fb44dff2d8f86ac8bb1"
    for key, model, tag in [
        ("DenseNet121", "densenet121", "tv_in1k"),
        ("DenseNet121", "densenet121", "ra_in1k"),
        ("DenseNet161", "densenet161", "tv_in1k"),
    ]:
        cfg = pretrained_cfg(key, tag)
        assert cfg.format == "safetensors"
        assert (cfg.mean, cfg.std) == (IMAGENET_MEAN, IMAGENET_STD)
        assert cfg.file_hash is None
        assert cfg.url == (
            f"https://huggingface.co/timm/{model}.{tag}/resolve/main/model.safetensors"
        )
        assert cfg.reference == f"timm:{model}"
    # DenseNet161's default ("imagenet") weights are torchvision's.
    assert kerasnets.weights.available("DenseNet161") == ["imagenet", "tv_in1k"]
    assert pretrained_cfg("DenseNet161", "imagenet") == pretrained_cfg("DenseNet161", "tv_in1k")
    assert kerasnets.weights.available("DenseNet264") == []
    # Models without weights normalise as the family's ("torch" mode).
    for name in ("DenseNet", "DenseNet264", "DenseNetCIFAR"):
        entry = kerasnets.registry.get(name)
        assert (entry.family, entry.mean, entry.std) == ("densenet", IMAGENET_MEAN, IMAGENET_STD)
    cifar = kerasnets.registry.get("DenseNetCIFAR")
    assert cifar.builder is densenet_cifar.DenseNetCIFAR
    assert (cifar.default_size, cifar.min_size, cifar.generic) == (32, 8, True)


@pytest.mark.parametrize("name", ["DenseNet121", "DenseNet169", "DenseNet201"])
def test_signature_is_keras_applications_then_keyword_only(name):
    ours = inspect.signature(getattr(kerasnets, name)).parameters.values()
    theirs = inspect.signature(getattr(keras.applications, name)).parameters.values()
    positional = [(p.name, p.default) for p in ours if p.kind is not p.KEYWORD_ONLY]
    assert positional == [(p.name, p.default) for p in theirs]
    keyword_only = [(p.name, p.default) for p in ours if p.kind is p.KEYWORD_ONLY]
    assert keyword_only == [("include_preprocessing", False), ("memory_efficient", False),
                            ("features_only", False), ("out_indices", None),
                            ("bn_epsilon", None)]
    for extra in ("DenseNet161", "DenseNet264"):
        extra_params = inspect.signature(getattr(kerasnets, extra)).parameters
        assert list(extra_params) == [p.name for p in ours]


# -------------------------------------------------- preprocess / decode


def test_preprocess_input_matches_keras_applications():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = keras.applications.densenet.preprocess_input(x.copy())
    np.testing.assert_allclose(densenet.preprocess_input(x.copy()), expected, rtol=1e-6)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(expected, (x / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)


def test_decode_predictions():
    # The class index is bundled (kerasnets.imagenet): no download.
    preds = np.zeros((2, 1000), "float32")
    preds[0, [7, 3]] = [0.9, 0.1]
    preds[1, 999] = 1.0
    decoded = densenet.decode_predictions(preds, top=2)
    assert [d[:2] for d in decoded[0]] == [("n01514668", "cock"), ("n01491361", "tiger_shark")]
    assert decoded[1][0][1] == "toilet_tissue"
    with pytest.raises(ValueError):
        densenet.decode_predictions(np.zeros((1, 10)))
