"""memory_efficient=True (DenseNet, DPN): same variables, weights files,
outputs, gradients and moving statistics as the default model; .keras round
trip; the layers that implement it (kerasnets.layers.checkpointed).

Memory and step time are measured by tools/bench_memory.py, not here.
"""

try:
    import triton  # noqa: F401  (timm after TensorFlow segfaults otherwise)
except ImportError:
    pass

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasnets
from kerasnets.layers import (
    ConcatBatchNormalization,
    ConcatNormActConv2D,
    ConcatNormActGroupConv2D,
)
from kerasnets.models import dpn
from kerasnets.weights import cache
from tests.parity import (
    calibrate_torch,
    random_images,
    randomize_keras,
    save_state_dict,
)

# Heavy tier: the fast tier keeps each family's build, load and parity check.
pytestmark = pytest.mark.heavy

# float32 gradients of the two forms differ by summation order only: measured
# max |difference| / max |gradient| per variable up to 3e-4 (DPN68, the stem
# BN at the end of the backward pass; median 1e-6) on one CPU, 2.1e-3 on an
# AVX-512 one (oneDNN sums in another order there). In float64 the same
# comparison gives 1e-12, so the float64 tests below are the exact ones.
F32_GRAD_TOL = 5e-3
F64_GRAD_TOL = 1e-9


@pytest.fixture(autouse=True)
def same_batch_norm_arithmetic(monkeypatch):
    """Both forms compute BatchNormalization's moments with Keras' own
    operations, so they agree to the last bits; the default form's fused
    training kernel (kerasnets.layers.BatchNormalization) rounds differently
    and is compared with Keras' in tests/layers/test_layers.py."""
    monkeypatch.setattr(kerasnets.layers.BatchNormalization, "_fused_training",
                        lambda self, inputs, mask: False)


def weight_layers(model):
    """(name, class name as .weights.h5 files address it) of weight owners."""
    return [(layer.name, type(layer).__name__) for layer in model.layers if layer.weights]


def run(model, x, training=False):
    return keras.ops.convert_to_numpy(model(x, training=training))


def gradients(model, x):
    """Eager gradients (by variable path) of a loss that reads every output
    unevenly."""
    weights = np.linspace(-1.0, 1.0, int(np.prod(model.output_shape[1:])))
    weights = weights.reshape(model.output_shape[1:]).astype(x.dtype)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=True) * weights)
    grads = tape.gradient(loss, model.trainable_weights)
    return {v.path: g.numpy() for v, g in zip(model.trainable_weights, grads)}


def assert_gradients_close(expected, actual, tol):
    assert sorted(actual) == sorted(expected)
    for path, e in expected.items():
        diff, scale = np.abs(actual[path] - e).max(), np.abs(e).max()
        assert diff <= tol * scale, (
            f"{path}: max diff {diff:.3g}, max |gradient| {scale:.3g}"
        )


def copy_weights(source, target):
    for layer in source.layers:
        if layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())


def pair(builder, **kwargs):
    """The default model (random weights) and the memory-efficient one with
    the same weights."""
    default = builder(weights=None, **kwargs)
    efficient = builder(weights=None, memory_efficient=True, **kwargs)
    randomize_keras(default)
    copy_weights(default, efficient)
    return default, efficient


def by_class(model):
    """Weight layers per class, in order: what .weights.h5 paths encode."""
    result = {}
    for name, cls in weight_layers(model):
        result.setdefault(cls, []).append(name)
    return result


def assert_same_structure(default, efficient, same_order=True):
    """Same variables (paths, shapes), weight layers and classes; with
    ``same_order`` also the same order (legacy .h5 files load by it).

    DPN-68b is the exception: in each first block of a stage its 1x1_c BN,
    one layer closer to the output without the ReLU layer, ties with the
    projection's layers in Keras' depth ordering, and two BN/conv pairs trade
    places in ``model.layers``; files still load (by name, or by class and
    position: ``by_class`` is unchanged)."""
    variables = [(v.path, tuple(v.shape)) for v in default.weights]
    if same_order:
        assert weight_layers(efficient) == weight_layers(default)
        assert [(v.path, tuple(v.shape)) for v in efficient.weights] == variables
        assert cache.model_signature(efficient) == cache.model_signature(default)
    else:
        assert sorted(weight_layers(efficient)) == sorted(weight_layers(default))
        assert sorted((v.path, tuple(v.shape)) for v in efficient.weights) == sorted(variables)
    assert by_class(efficient) == by_class(default)
    assert efficient.count_params() == default.count_params()
    # no concatenation or ReLU layer inside the blocks
    assert len(efficient.layers) < len(default.layers)


# ------------------------------------------------------------------ layers


def test_layer_pair_equals_plain_layers():
    rng = np.random.default_rng(0)
    maps = [rng.normal(size=(3, 6, 6, c)).astype("float32") for c in (5, 3, 4)]
    bn = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.9)
    conv = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=True,
                               activation="tanh")
    concat = np.concatenate(maps, -1)
    conv(keras.layers.Activation("relu")(bn(concat)))
    ebn = ConcatBatchNormalization(epsilon=1e-3, momentum=0.9)
    econv = ConcatNormActConv2D(8, 3, strides=2, padding="same", use_bias=True,
                                activation="tanh")
    econv([ebn(maps), *maps])
    for layer in (bn, conv):
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32")
                           for w in layer.get_weights()])
    ebn.set_weights(bn.get_weights())
    econv.set_weights(conv.get_weights())
    for training in (False, True):
        expected = conv(keras.ops.relu(bn(concat, training=training)))
        actual = econv([ebn(maps, training=training), *maps])
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ebn.moving_mean, bn.moving_mean, rtol=1e-6)
    np.testing.assert_allclose(ebn.moving_variance, bn.moving_variance, rtol=1e-6)
    assert ebn(maps).shape == (2, 12)
    assert econv.compute_output_shape([(2, 12), *[m.shape for m in maps]]) == (3, 3, 3, 8)
    # .weights.h5 addresses variables by class name: the same as the plain layers
    assert type(ebn).__name__ == "BatchNormalization"
    assert type(econv).__name__ == "Conv2D"
    assert type(ConcatNormActGroupConv2D(4, 3, groups=2)).__name__ == "GroupConv2D"


def test_grouped_layer_and_config_round_trip():
    rng = np.random.default_rng(1)
    maps = [rng.normal(size=(2, 5, 5, c)).astype("float32") for c in (4, 4)]
    ebn = ConcatBatchNormalization(epsilon=1e-5, name="n")
    econv = ConcatNormActGroupConv2D(6, 3, groups=2, padding="same",
                                     use_bias=False, norm_activation="relu6",
                                     name="c")
    out = econv([ebn(maps, training=True), *maps])
    grouped = kerasnets.layers.GroupConv2D(6, 3, groups=2, padding="same", use_bias=False)
    grouped.build((None, 5, 5, 8))
    grouped.set_weights(econv.get_weights())
    plain_bn = keras.layers.BatchNormalization(epsilon=1e-5)
    plain_bn.build((None, 5, 5, 8))
    expected = grouped(keras.ops.relu6(plain_bn(np.concatenate(maps, -1), training=True)))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    for layer in (ebn, econv):
        config = keras.saving.serialize_keras_object(layer)
        assert config["registered_name"].startswith("kerasnets>Concat")
        clone = keras.saving.deserialize_keras_object(config)
        assert type(clone) is type(layer)
        assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="renorm"):
        ConcatBatchNormalization(renorm=True)
    with pytest.raises(ValueError, match=r"\[affine, \*features\]"):
        ConcatNormActConv2D(4, 1)(maps[0])


# ------------------------------------------------- full-size architectures


@pytest.fixture(scope="module")
def densenet121():
    return pair(kerasnets.DenseNet121, include_top=False, pooling="avg",
                input_shape=(64, 64, 3))


@pytest.fixture(scope="module")
def dpn68():
    return pair(kerasnets.DPN68, include_top=False, pooling="avg",
                input_shape=(64, 64, 3))


@pytest.mark.parametrize("name", ["densenet121", "dpn68"])
def test_same_variables_outputs_and_gradients(request, name):
    default, efficient = request.getfixturevalue(name)
    assert_same_structure(default, efficient)
    x = random_images(4, 64, seed=3)
    for training in (False, True):
        np.testing.assert_allclose(run(efficient, x, training),
                                   run(default, x, training), rtol=1e-5, atol=1e-6)
    assert_gradients_close(gradients(default, x), gradients(efficient, x), F32_GRAD_TOL)


def values(model):
    return {v.path: v.numpy() for v in model.weights}


def assert_same_values(model, expected):
    actual = values(model)
    assert sorted(actual) == sorted(expected)
    for path, value in expected.items():
        np.testing.assert_array_equal(actual[path], value, err_msg=path)


def test_densenet_loads_legacy_and_keras_weight_files(densenet121, tmp_path):
    """keras.applications' .h5 layout (loaded by topology) and .weights.h5
    files written by either form load into the other."""
    from keras.src.legacy.saving import legacy_h5_format

    default, efficient = densenet121
    expected = values(default)
    legacy = str(tmp_path / "densenet121_notop.h5")
    with h5py.File(legacy, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, default)
    randomize_keras(efficient, seed=3)
    # what DenseNet121(weights=legacy, memory_efficient=True) does once built
    kerasnets.weights.load_weights(efficient, legacy, include_top=False,
                                       layer_maps=kerasnets.registry.get("DenseNet121").layer_maps)
    assert_same_values(efficient, expected)
    for source, target, seed in ((efficient, default, 1), (default, efficient, 2)):
        path = str(tmp_path / f"{seed}.weights.h5")
        source.save_weights(path)
        randomize_keras(target, seed=seed)
        kerasnets.weights.load_weights(target, path, include_top=False,
                                       layer_maps=kerasnets.registry.get("DenseNet121").layer_maps)
        assert_same_values(target, expected)


def test_dpn68_loads_timm_checkpoint(dpn68, timm, tmp_path):
    default, efficient = dpn68
    reference = timm.create_model("dpn68", pretrained=False)
    calibrate_torch(reference, random_images(4, 64, seed=5), batches=2)
    path = save_state_dict(reference, tmp_path / "dpn68.safetensors")
    for model in (default, efficient):
        kerasnets.weights.load_weights(model, path, include_top=False,
                                       layer_maps=kerasnets.registry.get("DPN68").layer_maps)
    assert_same_values(efficient, values(default))
    assert np.abs(values(default)["conv1_bn/moving_mean"]).max() > 0  # loaded


# ------------------------------------------------ small networks, exactly


def small_densenet(**kwargs):
    return kerasnets.DenseNetCIFAR(16, 8, bottleneck=True, compression=0.5,
                                  dropout_rate=0.0, input_shape=(16, 16, 3),
                                  **kwargs)


def small_densenet_plain(**kwargs):
    return kerasnets.DenseNetCIFAR(10, 6, input_shape=(16, 16, 3), **kwargs)


def small_dpn(groups=8, **kwargs):
    return dpn.DPN(k_r=32, groups=groups, k_sec=(1, 2, 2, 1), inc_sec=(8, 8, 8, 8),
                   init_features=16, small=True, input_shape=(32, 32, 3),
                   classes=4, **kwargs)


def small_dpn_b(groups=8, **kwargs):
    return dpn.DPN(k_r=32, groups=groups, k_sec=(2, 1, 1, 1), inc_sec=(8, 8, 8, 8),
                   init_features=16, small=True, b=True, input_shape=(32, 32, 3),
                   classes=4, **kwargs)


def small_dpn_dense(**kwargs):
    """groups=1: TensorFlow's CPU kernels have no float64 grouped-conv
    gradients (oneDNN is float32 only; GroupConv2D then fails for the
    default model too). The grouped layer is checked in float32 above."""
    return small_dpn(groups=1, **kwargs)


def small_dpn_b_dense(**kwargs):
    return small_dpn_b(groups=1, **kwargs)


@pytest.mark.parametrize(
    "builder",
    [small_densenet, small_densenet_plain, small_dpn_dense, small_dpn_b_dense],
    ids=lambda b: b.__name__,
)
def test_float64_gradients_are_exact(builder):
    keras.config.set_dtype_policy("float64")
    try:
        default, efficient = pair(builder, classifier_activation=None)
        assert_same_structure(default, efficient, same_order=builder is not small_dpn_b_dense)
        size = default.input_shape[1]
        x = random_images(4, size, seed=7).astype("float64")
        np.testing.assert_allclose(run(efficient, x, True), run(default, x, True),
                                   rtol=1e-12, atol=1e-12)
        assert_gradients_close(gradients(default, x), gradients(efficient, x),
                               F64_GRAD_TOL)
    finally:
        keras.config.set_dtype_policy("float32")


def named(model, kind=""):
    """The model's (trainable / non_trainable) variables sorted by path."""
    return sorted(getattr(model, f"{kind}_weights" if kind else "weights"),
                  key=lambda v: v.path)


def fit_one_step(model, x, y):
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False)
    return history.history["loss"][0]


@pytest.mark.heavy
@pytest.mark.parametrize("builder", [small_densenet, small_dpn_b],
                         ids=lambda b: b.__name__)
def test_fit_step_moving_statistics_and_keras_round_trip(builder, tmp_path):
    """One model.fit step (a traced graph: the recomputation there carries
    the data dependency that keeps it from being merged with the forward
    pass) updates weights and moving statistics as the default model does;
    then .keras round trip with safe_mode=True."""
    default, efficient = pair(builder, classifier_activation=None)
    size = default.input_shape[1]
    classes = default.output_shape[-1]
    x = random_images(8, size, seed=8)
    y = np.arange(8) % classes
    before = [v.numpy() for v in named(default, "non_trainable")]
    losses = [fit_one_step(m, x, y) for m in (default, efficient)]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-6)
    moving = [v.numpy() for v in named(default, "non_trainable")]
    assert all(np.abs(a - b).max() > 0 for a, b in zip(moving, before))
    for a, b in zip(named(efficient, "non_trainable"), named(default, "non_trainable")):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7,
                                   err_msg=a.path)
    for a, b in zip(named(efficient, "trainable"), named(default, "trainable")):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=a.path)

    path = str(tmp_path / "efficient.keras")
    efficient.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert any(isinstance(layer, ConcatBatchNormalization) for layer in restored.layers)
    assert weight_layers(restored) == weight_layers(efficient)
    for training in (False, True):
        np.testing.assert_array_equal(run(restored, x, training), run(efficient, x, training))


def test_dpn_b_weight_files_across_modes(tmp_path):
    """DPN-68b's layer order differs (see assert_same_structure); .weights.h5
    files still load both ways: they address variables by class and
    position within the class, which is unchanged."""
    default, efficient = pair(small_dpn_b)
    assert weight_layers(efficient) != weight_layers(default)
    x = random_images(2, 32, seed=10)
    expected = run(default, x)
    for source, target, seed in ((efficient, default, 1), (default, efficient, 2)):
        path = str(tmp_path / f"{seed}.weights.h5")
        source.save_weights(path)
        randomize_keras(target, seed=seed)
        kerasnets.weights.load_weights(target, path,
                                       layer_maps=kerasnets.registry.get("DPN").layer_maps)
        np.testing.assert_array_equal(run(target, x), expected)


@pytest.mark.heavy
def test_mixed_precision():
    """mixed_float16: the affine stays float32, outputs and one fit step as
    the default model's. (DenseNet: GroupConv2D, in DPN, has no float16
    gradients on a CPU with oneDNN, in either form.)"""
    keras.config.set_dtype_policy("mixed_float16")
    try:
        default, efficient = pair(small_densenet, classifier_activation=None)
        affine = next(layer for layer in efficient.layers
                      if isinstance(layer, ConcatBatchNormalization))
        assert affine.output.dtype == "float32"  # BN arithmetic stays float32
        assert efficient.get_layer("conv2_block1_1_conv").compute_dtype == "float16"
        x = random_images(8, 16, seed=9)
        for training in (False, True):
            out, expected = run(efficient, x, training), run(default, x, training)
            assert out.dtype == expected.dtype
            np.testing.assert_allclose(out.astype("float32"), expected.astype("float32"),
                                       rtol=1e-2, atol=1e-2)
        y = np.arange(8) % default.output_shape[-1]
        losses = [fit_one_step(m, x, y) for m in (default, efficient)]
        assert np.isfinite(losses).all()
        np.testing.assert_allclose(losses[1], losses[0], rtol=1e-3)
        for a, b in zip(named(efficient), named(default)):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-2, atol=1e-3,
                                       err_msg=a.path)
    finally:
        keras.config.set_dtype_policy("float32")


def test_zero_padding_pads_the_activated_map():
    """``zero_padding`` = ZeroPadding2D between activation and a "valid"
    convolution (PyTorch's symmetric padding of a strided 3x3 conv)."""
    rng = np.random.default_rng(2)
    maps = [rng.normal(1.0, 1.0, size=(2, 6, 6, c)).astype("float32") for c in (3, 5)]
    bn = ConcatBatchNormalization(epsilon=1e-5)
    conv = ConcatNormActConv2D(4, 3, strides=2, padding="valid", zero_padding=1,
                               use_bias=False)
    out = conv([bn(maps, training=True), *maps])
    assert out.shape == (2, 3, 3, 4)
    assert conv.compute_output_shape([(2,), (None, 6, 6, 3), (None, 6, 6, 5)]) == (
        None, 3, 3, 4)
    plain_bn = keras.layers.BatchNormalization(epsilon=1e-5)
    plain_conv = keras.layers.Conv2D(4, 3, strides=2, use_bias=False)
    x = keras.layers.ZeroPadding2D(1)(keras.ops.relu(plain_bn(np.concatenate(maps, -1),
                                                              training=True)))
    expected = plain_conv(x)
    plain_conv.set_weights(conv.get_weights())
    np.testing.assert_allclose(out, plain_conv(x), rtol=1e-5, atol=1e-5)
    assert expected.shape == out.shape
    assert ConcatNormActConv2D.from_config(conv.get_config()).zero_padding == 1
