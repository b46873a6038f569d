"""InterleavedGroupConv: the dense-kernel identity W = P W_d P^T W_p, the
complementary condition, parameter counts, serialization, bad input."""

import numpy as np
import pytest

import keras

from kerasnets.layers import ChannelShuffle, InterleavedGroupConv
from kerasnets.layers.interleaved_group_conv import block_diagonal_kernel, shuffle_indices


def _random_weights(layer, seed=0):
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        variable.assign(rng.normal(size=variable.shape).astype("float32"))


def _dense_conv(layer, kernel, input_shape):
    conv = keras.layers.Conv2D(layer.filters, layer.kernel_size, strides=layer.strides,
                               padding=layer.padding, dilation_rate=layer.dilation_rate,
                               use_bias=False)
    conv.build(input_shape)
    conv.kernel.assign(kernel)
    return conv


@pytest.mark.parametrize(
    "in_channels, kwargs",
    [
        (128, dict(filters=128, primary_groups=4)),  # L4M32 (ImageNet stage 1)
        (32, dict(filters=32, primary_groups=16)),  # L16M2
        (8, dict(filters=16, primary_groups=8)),  # widening, L=8 (like L100M2 stage 1)
        (24, dict(filters=48, primary_groups=4, strides=2, padding="valid")),
        (16, dict(filters=32, primary_groups=4, secondary_groups=4)),  # authors' CIFAR down block
        (12, dict(filters=12, primary_groups=3, kernel_size=(3, 1), dilation_rate=2)),
    ],
)
def test_plain_conv2d_with_equivalent_kernel_reproduces_the_layer(in_channels, kwargs):
    x = np.random.default_rng(1).normal(size=(2, 9, 10, in_channels)).astype("float32")
    layer = InterleavedGroupConv(**kwargs)
    layer.build(x.shape)
    _random_weights(layer)
    expected = keras.ops.convert_to_numpy(layer(x))
    kernel = layer.equivalent_kernel()
    assert kernel.shape == layer.kernel_size + (in_channels, layer.filters)
    actual = keras.ops.convert_to_numpy(_dense_conv(layer, kernel, x.shape)(x))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_permutation_is_the_papers_and_the_inverse_undoes_it():
    L, M = 4, 3
    # out[b * L + a] = in[a * M + b]
    np.testing.assert_array_equal(
        shuffle_indices(L * M, L), [a * M + b for b in range(M) for a in range(L)]
    )
    x = np.arange(L * M, dtype="float32").reshape(1, 1, 1, -1)
    y = ChannelShuffle(L)(x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(y)[0, 0, 0], shuffle_indices(L * M, L))
    back = keras.ops.convert_to_numpy(ChannelShuffle(M)(y))
    np.testing.assert_array_equal(back, x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ChannelShuffle(L, inverse=True)(y)), x)


@pytest.mark.parametrize("L, M", [(4, 8), (2, 3), (8, 2), (24, 2)])
def test_complementary_condition(L, M):
    """The primary kernel alone is block diagonal; the block is dense, and
    each output reaches each input through exactly one secondary weight."""
    C = L * M
    layer = InterleavedGroupConv(C, L)
    layer.build((None, 5, 5, C))
    for variable in layer.weights:  # all ones: entries count the paths
        variable.assign(np.ones(variable.shape, "float32"))
    primary = block_diagonal_kernel(keras.ops.convert_to_numpy(layer.primary.kernel), L)[1, 1]
    connected = primary != 0
    blocks = np.kron(np.eye(L, dtype=bool), np.ones((M, M), dtype=bool))
    np.testing.assert_array_equal(connected, blocks)  # primary: L blocks of M x M
    assert not connected.all()
    dense = layer.equivalent_kernel()[1, 1]  # (C_in, C_out) at the centre tap
    np.testing.assert_array_equal(dense, np.ones((C, C)))  # one path per (in, out)


def test_equivalent_kernel_is_P_Wd_PT_Wp():
    """The paper's matrix form, built independently of the layer's method."""
    L, M = 3, 4
    C = L * M
    layer = InterleavedGroupConv(C, L, kernel_size=1)
    layer.build((None, 1, 1, C))
    _random_weights(layer, seed=3)
    Wp = block_diagonal_kernel(keras.ops.convert_to_numpy(layer.primary.kernel), L)[0, 0].T
    Wd = block_diagonal_kernel(keras.ops.convert_to_numpy(layer.secondary.kernel), M)[0, 0].T
    P = np.zeros((C, C))  # (P y)[b*L + a] = y[a*M + b]
    for a in range(L):
        for b in range(M):
            P[b * L + a, a * M + b] = 1
    W = P.T @ Wd @ P @ Wp  # (out x in): permute, secondary, permute back, after W_p
    # Paper notation W = P W_d P^T W_p with P its permutation back (= our P^T).
    np.testing.assert_allclose(layer.equivalent_kernel()[0, 0].T, W, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("L, M, k", [(4, 32, 3), (16, 16, 3), (100, 2, 3), (24, 2, 3), (4, 8, 5)])
def test_parameter_count(L, M, k):
    C = L * M
    layer = InterleavedGroupConv(C, L, kernel_size=k)
    layer.build((None, 8, 8, C))
    assert layer.count_params() == k * k * L * M * M + L * L * M
    assert layer.count_params() < k * k * C * C  # vs a regular convolution


def test_keras_round_trip_safe_mode(tmp_path):
    inputs = keras.Input((8, 8, 16))
    x = InterleavedGroupConv(32, 4, strides=2, secondary_groups=4, name="igc",
                             kernel_regularizer="l2")(inputs)
    x = InterleavedGroupConv(32, 8, name="igc2")(x)
    model = keras.Model(inputs, x)
    _random_weights(model)
    data = np.random.default_rng(0).normal(size=(2, 8, 8, 16)).astype("float32")
    path = str(tmp_path / "igc.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(data, verbose=0), model.predict(data, verbose=0),
                               rtol=1e-6, atol=1e-6)
    layer = loaded.get_layer("igc")
    assert isinstance(layer, InterleavedGroupConv)
    assert (layer.primary_groups, layer.secondary_groups, layer.strides) == (4, 4, (2, 2))
    assert layer.get_config() == model.get_layer("igc").get_config()


def test_trains_through_the_fast_grouped_path():
    """Gradients reach both kernels (GroupConv2D's CPU gradient path)."""
    import tensorflow as tf

    layer = InterleavedGroupConv(16, 4)
    x = tf.random.normal((2, 6, 6, 16))
    layer.build(x.shape)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) ** 2)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


def test_bad_input():
    with pytest.raises(ValueError, match="multiple of primary_groups"):
        InterleavedGroupConv(30, 4)
    with pytest.raises(ValueError, match="secondary_groups"):
        InterleavedGroupConv(32, 4, secondary_groups=5)
    layer = InterleavedGroupConv(32, 4)
    with pytest.raises(ValueError, match="input has 30 channels"):
        layer.build((None, 8, 8, 30))
    with pytest.raises(ValueError, match="build the layer"):
        InterleavedGroupConv(32, 4).equivalent_kernel()
