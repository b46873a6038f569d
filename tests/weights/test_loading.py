"""The weights path of the builder contract: formats, strictness, errors."""

import os

import numpy as np
import pytest

import keras

from kerasnets import registry
from kerasnets import weights as weights_lib
from kerasnets.models import common
from kerasnets.weights import config, loading
from tests.parity import require


def TinyNet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    width=8,
    name="tiny",
):
    """A two-conv network built through the shared contract."""
    cfg = common.check_arguments(
        "TinyNet",
        weights=weights,
        include_top=include_top,
        classes=classes,
        pooling=pooling,
        classifier_activation=classifier_activation,
    )
    img_input = common.image_input(
        input_tensor, input_shape, default_size=32, min_size=16,
        include_top=include_top, weights=weights,
    )
    x = keras.layers.Conv2D(width, 3, strides=2, use_bias=False, name="stem_conv")(img_input)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.Conv2D(2 * width, 3, name="body_conv")(x)
    x = common.classifier_top(
        x, include_top=include_top, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
    )
    return common.finish_model(
        img_input, x, input_tensor=input_tensor, name=name, model_name="TinyNet",
        weights=weights, include_top=include_top, cfg=cfg,
    )


TINY_MAP = {
    "stem_conv": "stem.conv",
    "stem_bn": "stem.bn",
    "body_conv": "body",
    "predictions": "head.fc",
}


def tiny_converter(model):
    return TINY_MAP, ("head.fc",)


# A test family in the catalog (torch layout only).
tiny_builder = registry.family("tiny", min_size=16, layer_maps={"torch": tiny_converter},
                               mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))(TinyNet)


def serve_cfg(monkeypatch, cfg):
    """Registers ``cfg`` as TinyNet's only pretrained configuration for one test."""
    monkeypatch.setitem(config._CFGS, "TinyNet", [cfg])
    return cfg


def tiny_state(width=8, classes=1000, seed=0):
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.normal(size=s).astype("float32")  # noqa: E731
    return {
        "stem.conv.weight": r(width, 3, 3, 3),
        "stem.bn.weight": r(width),
        "stem.bn.bias": r(width),
        "stem.bn.running_mean": r(width),
        "stem.bn.running_var": np.abs(r(width)) + 0.5,
        "stem.bn.num_batches_tracked": np.array(3, dtype="int64"),
        "body.weight": r(2 * width, width, 3, 3),
        "body.bias": r(2 * width),
        "head.fc.weight": r(classes, 2 * width),
        "head.fc.bias": r(classes),
    }


def save_safetensors(state, path):
    from safetensors.numpy import save_file

    save_file(state, str(path))
    return str(path)


def numpy_forward(state, x):
    """The tiny network in numpy with PyTorch semantics (NCHW weights)."""

    def conv(x, w, stride):
        kh = w.shape[2]
        n, h, wd, c = x.shape
        ho, wo = (h - kh) // stride + 1, (wd - kh) // stride + 1
        out = np.zeros((n, ho, wo, w.shape[0]), "float64")
        for i in range(kh):
            for j in range(kh):
                patch = x[:, i : i + stride * ho : stride, j : j + stride * wo : stride, :]
                out += patch @ w[:, :, i, j].T
        return out

    y = conv(x, state["stem.conv.weight"], 2)
    y = (y - state["stem.bn.running_mean"]) / np.sqrt(state["stem.bn.running_var"] + 1e-5)
    y = np.maximum(y * state["stem.bn.weight"] + state["stem.bn.bias"], 0)
    y = conv(y, state["body.weight"], 1) + state["body.bias"]
    return y.mean(axis=(1, 2)) @ state["head.fc.weight"].T + state["head.fc.bias"]


def test_safetensors_checkpoint_converts_to_same_logits(tmp_path):
    state = tiny_state()
    path = save_safetensors(state, tmp_path / "tiny.safetensors")
    model = tiny_builder(weights=path, classifier_activation=None)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model(x), numpy_forward(state, x), rtol=1e-4, atol=1e-4)
    headless = tiny_builder(weights=path, include_top=False, input_shape=(None, None, 3))
    assert headless.output_shape == (None, None, None, 16)


def test_pth_checkpoint_loads_weights_only(tmp_path):
    torch = require("torch")
    state = tiny_state()
    path = str(tmp_path / "tiny.pth")
    torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}, path)
    model = tiny_builder(weights=path, classifier_activation=None)
    x = np.random.default_rng(2).normal(size=(1, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model(x), numpy_forward(state, x), rtol=1e-4, atol=1e-4)


class NotATensor:
    pass


def test_pth_with_arbitrary_objects_is_refused(tmp_path):
    torch = require("torch")
    path = str(tmp_path / "evil.pth")
    torch.save({"stem.conv.weight": NotATensor()}, path)
    with pytest.raises(ValueError, match="weights-only"):
        tiny_builder(weights=path)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s.pop("body.bias"), "has no tensor 'body.bias'"),
        (lambda s: s.__setitem__("extra.weight", np.ones(3, "float32")), "first 'extra.weight'"),
        (lambda s: s.__setitem__("body.weight", np.ones((16, 8, 5, 5), "float32")), "'body.weight'"),
    ],
)
def test_state_dict_loading_is_strict(tmp_path, mutate, message):
    state = tiny_state()
    mutate(state)
    path = save_safetensors(state, tmp_path / "tiny.safetensors")
    with pytest.raises(ValueError, match=message):
        tiny_builder(weights=path)


def test_classifier_only_skipped_without_top(tmp_path):
    state = tiny_state(classes=10)
    path = save_safetensors(state, tmp_path / "tiny.safetensors")
    with pytest.raises(ValueError, match="predictions/kernel"):
        tiny_builder(weights=path)  # 1000-class model, 10-class checkpoint
    tiny_builder(weights=path, include_top=False)


def test_wrong_width_checkpoint_names_the_tensor(tmp_path):
    path = save_safetensors(tiny_state(width=4), tmp_path / "narrow.safetensors")
    with pytest.raises(ValueError, match="stem.conv.weight"):
        tiny_builder(weights=path)


@pytest.mark.parametrize("suffix", [".safetensors", ".h5", ".pth"])
def test_garbage_and_truncated_files_raise_naming_the_file(tmp_path, suffix):
    if suffix == ".pth":
        require("torch")
    garbage = tmp_path / f"garbage{suffix}"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(ValueError, match="garbage"):
        tiny_builder(weights=str(garbage))
    if suffix == ".safetensors":
        good = save_safetensors(tiny_state(), tmp_path / "good.safetensors")
        data = open(good, "rb").read()
        truncated = tmp_path / f"truncated{suffix}"
        truncated.write_bytes(data[: len(data) // 2])
        with pytest.raises(ValueError, match="truncated"):
            tiny_builder(weights=str(truncated))


def test_legacy_h5_round_trip_and_mismatch(tmp_path):
    from keras.src.legacy.saving import legacy_h5_format
    import h5py

    source = tiny_builder()
    for v in source.weights:
        value = np.random.default_rng(5).normal(size=v.shape).astype("float32")
        v.assign(np.abs(value) if v.path.endswith("moving_variance") else value)
    path = str(tmp_path / "tiny.h5")
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    x = np.random.default_rng(6).normal(size=(1, 32, 32, 3)).astype("float32")
    loaded = tiny_builder(weights=path)
    np.testing.assert_allclose(loaded(x), source(x), rtol=1e-6)
    with pytest.raises(ValueError, match="'stem_conv' expects weights of shapes"):
        tiny_builder(weights=path, width=4)
    # Without the top, the file's classifier (its last layer) is skipped.
    headless = tiny_builder(weights=path, include_top=False)
    assert len(headless.weights) == len(source.weights) - 2
    with pytest.raises(ValueError, match="first unmatched one is 'predictions'"):
        bigger = tiny_builder(include_top=False)
        loading.load_legacy_h5(bigger, path, include_top=True)


def test_keras_weights_file(tmp_path):
    source = tiny_builder()
    path = str(tmp_path / "tiny.weights.h5")
    source.save_weights(path)
    loaded = tiny_builder(weights=path)
    for a, b in zip(source.weights, loaded.weights):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="tiny.weights.h5"):
        tiny_builder(weights=path, width=4)


def test_contract_validation_messages(tmp_path):
    with pytest.raises(ValueError, match="Unknown weights 'imagenet' for TinyNet"):
        tiny_builder(weights="imagenet")
    with pytest.raises(ValueError, match="does not exist"):
        tiny_builder(weights=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="pooling"):
        tiny_builder(pooling="mean")
    with pytest.raises(ValueError, match="at least 16x16"):
        tiny_builder(input_shape=(8, 8, 3), include_top=False)
    with pytest.raises(ValueError, match="three positive integers"):
        tiny_builder(input_shape=(32, 32), include_top=False)
    path = save_safetensors(tiny_state(), tmp_path / "t.safetensors")
    with pytest.raises(ValueError, match="Only `None` and `softmax`"):
        tiny_builder(weights=path, classifier_activation="sigmoid")
    with pytest.raises(ValueError, match="Cannot tell the format"):
        other = tmp_path / "weights.npz"
        other.write_bytes(b"x")
        tiny_builder(weights=str(other))
    model = tiny_builder(include_top=False, pooling="max", input_shape=(40, 48, 3))
    assert model.output_shape == (None, 16)
    inp = keras.Input((36, 36, 3))
    model = tiny_builder(input_tensor=inp, include_top=False, pooling="avg")
    assert model.input_shape == (None, 36, 36, 3)


def test_registry_tags_and_failed_download(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    cfg = serve_cfg(monkeypatch, weights_lib.PretrainedCfg(
        "TinyNet", "test_in1k", url=(tmp_path / "src.safetensors").as_uri(),
        format="safetensors", file_hash="0" * 64,
    ))
    assert weights_lib.available("TinyNet") == ["imagenet", "test_in1k"]
    assert weights_lib.pretrained_cfg("TinyNet") is cfg
    save_safetensors(tiny_state(), tmp_path / "src.safetensors")
    with pytest.raises(ValueError, match="place it at") as info:
        tiny_builder(weights="test_in1k")
    assert cfg.url in str(info.value)
    cache = tmp_path / "home" / "models" / "kerasnets"
    assert not any(cache.iterdir()), "a file that failed its hash stays cached"
