import numpy as np
import pytest

import keras

from kerasnets.layers import (
    BatchNormalization,
    ChannelShuffle,
    GroupConv2D,
    SEBlock,
    hard_sigmoid,
    hard_swish,
)


def _roundtrip(model, tmp_path):
    path = str(tmp_path / "model.keras")
    model.save(path)
    return keras.saving.load_model(path, safe_mode=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(filters=32, kernel_size=3, groups=8, padding="same"),
        dict(filters=16, kernel_size=3, groups=4, strides=2, padding="valid", use_bias=False),
        dict(filters=24, kernel_size=(3, 1), groups=3, dilation_rate=2, padding="same"),
    ],
)
def test_group_conv_matches_stock_conv2d(kwargs):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 11, 12, 24)).astype("float32")
    ours = GroupConv2D(**kwargs)
    stock = keras.layers.Conv2D(**kwargs)
    ours.build(x.shape)
    stock.build(x.shape)
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in stock.weights]
    stock.set_weights([rng.normal(size=w.shape).astype("float32") for w in stock.weights])
    ours.set_weights(stock.get_weights())
    np.testing.assert_allclose(ours(x), stock(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "channels, groups, strides, padding, dilation",
    [
        (16, 4, 1, "same", 1),  # 4 channels a group: depthwise-backprop path
        (12, 4, 2, "valid", 1),  # 3 channels a group, strided
        (32, 4, 2, "same", 1),  # 8 channels a group: per-group path
        (32, 2, 1, "same", 2),  # dilated: per-group path
    ],
)
@pytest.mark.parametrize("path", ["kerasnets", "tensorflow"])
def test_group_conv_gradients_match_stock_conv2d(
    monkeypatch, path, channels, groups, strides, padding, dilation
):
    """Both gradient paths: kerasnets' own CPU gradients and, where
    TensorFlow has them (oneDNN or GPU), TensorFlow's."""
    import tensorflow as tf

    from kerasnets.layers import group_conv

    if path == "tensorflow":
        group_conv._needs_custom_gradient.cache_clear()
        if group_conv._needs_custom_gradient():
            pytest.skip("TensorFlow lacks grouped-conv gradients here (no oneDNN, no GPU)")
    monkeypatch.setattr(group_conv, "_needs_custom_gradient", lambda: path == "kerasnets")

    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(2, 10, 9, channels)).astype("float32"))
    kwargs = dict(
        filters=channels, kernel_size=3, groups=groups, strides=strides,
        padding=padding, dilation_rate=dilation,
    )
    ours = GroupConv2D(**kwargs)
    stock = keras.layers.Conv2D(**kwargs)
    ours.build(x.shape)
    stock.build(x.shape)
    stock.set_weights([rng.normal(size=w.shape).astype("float32") for w in stock.weights])
    ours.set_weights(stock.get_weights())
    grads = []
    for layer in (ours, stock):

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x) ** 2)
            return tape.gradient(loss, [x, layer.kernel, layer.bias])

        grads.append(step())
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


def test_group_conv_trains_with_fit():
    rng = np.random.default_rng(4)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 16)),
            GroupConv2D(32, 3, groups=8, padding="same", activation="relu"),
            GroupConv2D(32, 3, groups=2, strides=2, padding="same"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.normal(size=(16, 8, 8, 16)).astype("float32")
    y = rng.integers(0, 3, 16)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert all(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


def test_group_conv_rejects_indivisible_channels():
    with pytest.raises(ValueError, match="divisible"):
        GroupConv2D(30, 3, groups=4)
    with pytest.raises(ValueError):
        GroupConv2D(32, 3, groups=4)(np.zeros((1, 8, 8, 6), "float32"))


def test_channel_shuffle_is_the_igc_permutation():
    groups, m = 3, 4  # out[b*L + a] = in[a*M + b]
    x = np.arange(groups * m, dtype="float32").reshape(1, 1, 1, -1)
    out = np.asarray(ChannelShuffle(groups)(x)).ravel()
    expected = [a * m + b for b in range(m) for a in range(groups)]
    np.testing.assert_array_equal(out, expected)
    back = np.asarray(ChannelShuffle(groups, inverse=True)(out.reshape(x.shape))).ravel()
    np.testing.assert_array_equal(back, x.ravel())
    with pytest.raises(ValueError, match="divisible by 5"):
        ChannelShuffle(5)(x)


def test_se_block_formula_and_options():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 5, 5, 32)).astype("float32")
    se = SEBlock(ratio=8)
    y = np.asarray(se(x))
    w1, b1, w2, b2 = [np.asarray(w) for w in se.weights]
    assert w1.shape == (1, 1, 32, 4)
    z = np.maximum(x.mean(axis=(1, 2)) @ w1[0, 0] + b1, 0) @ w2[0, 0] + b2
    np.testing.assert_allclose(y, x * (1 / (1 + np.exp(-z)))[:, None, None, :], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(se.gate(x)), (1 / (1 + np.exp(-z)))[:, None, None, :],
                               rtol=1e-5, atol=1e-6)

    se = SEBlock(squeeze_channels=6, gate_activation="hard_sigmoid", use_bias=False)
    se(x)
    assert [tuple(w.shape) for w in se.weights] == [(1, 1, 32, 6), (1, 1, 6, 32)]
    with pytest.raises(ValueError, match="ratio"):
        SEBlock(ratio=None)


def test_hard_activations_are_relu6_based():
    x = np.linspace(-8, 8, 161).astype("float32")
    relu6 = np.clip(x + 3, 0, 6) / 6
    np.testing.assert_allclose(hard_sigmoid(x), relu6, atol=1e-6)
    np.testing.assert_allclose(hard_swish(x), x * relu6, atol=1e-5)


def test_layers_roundtrip_through_keras_file(tmp_path):
    inputs = keras.Input((8, 8, 16))
    x = GroupConv2D(16, 3, groups=4, padding="same", name="gconv")(inputs)
    x = ChannelShuffle(4, name="shuffle")(x)
    x = SEBlock(ratio=4, gate_activation="hard_sigmoid", name="se")(x)
    x = BatchNormalization(epsilon=1e-5, name="bn")(x)
    model = keras.Model(inputs, x)
    sample = np.random.default_rng(3).normal(size=(2, 8, 8, 16)).astype("float32")
    restored = _roundtrip(model, tmp_path)
    assert isinstance(restored.get_layer("gconv"), GroupConv2D)
    assert restored.get_layer("shuffle").groups == 4
    assert restored.get_layer("se").get_config()["gate_activation"] == "hard_sigmoid"
    assert type(restored.get_layer("bn")) is BatchNormalization
    np.testing.assert_allclose(restored(sample), model(sample), rtol=1e-6, atol=1e-6)


def test_group_conv_trains_in_bfloat16_on_cpu():
    """Half-precision grouped gradients: oneDNN has them only with AVX-512, so
    GroupConv2D computes them itself on other CPUs (mixed_bfloat16 training)."""
    import tensorflow as tf

    x = tf.random.normal((2, 9, 9, 8), seed=3)
    reference = GroupConv2D(8, 3, groups=4, padding="same", strides=2)
    reference.build(x.shape)
    half = GroupConv2D(8, 3, groups=4, padding="same", strides=2, dtype="mixed_bfloat16")
    half.build(x.shape)
    half.set_weights(reference.get_weights())
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        loss = tf.reduce_sum(reference(x) ** 2)
        loss_half = tf.reduce_sum(tf.cast(half(x), tf.float32) ** 2)
    for exact, approx in zip(tape.gradient(loss, [x, reference.kernel]),
                             tape.gradient(loss_half, [x, half.kernel])):
        error = tf.reduce_max(tf.abs(exact - tf.cast(approx, tf.float32)))
        assert float(error / tf.reduce_max(tf.abs(exact))) < 3e-2


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({}, (4, 6, 5, 7)),
        ({"epsilon": 1.001e-5, "momentum": 0.9}, (3, 4, 4, 8)),
        ({"scale": False}, (2, 3, 3, 4)),
        ({"center": False, "epsilon": 1e-5}, (2, 5, 5, 3)),
        ({"epsilon": 1e-3}, (1, 1, 1, 6)),  # one value a channel: variance 0
    ],
)
@pytest.mark.parametrize("graph", [False, True])
def test_fused_batch_norm_matches_keras(kwargs, shape, graph):
    """Outputs, input/weight gradients and moving statistics of the fused
    training step equal keras.layers.BatchNormalization's."""
    import tensorflow as tf


    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(1.0, 3.0, shape).astype("float32"))
    upstream = tf.constant(rng.normal(size=shape).astype("float32"))
    initial = None
    results = []
    for cls in (keras.layers.BatchNormalization, BatchNormalization):
        layer = cls(**kwargs)
        layer.build(shape)
        if initial is None:
            initial = [rng.uniform(0.5, 1.5, v.shape).astype("float32") for v in layer.weights]
        layer.set_weights(initial)

        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(y * upstream + 0.5 * y * y)
            return y, tape.gradient(loss, [x, *layer.trainable_weights])

        y, grads = (tf.function(step) if graph else step)(x)
        results.append((y.numpy(), [g.numpy() for g in grads],
                        [v.numpy() for v in layer.weights]))
    (y0, g0, w0), (y1, g1, w1) = results
    np.testing.assert_allclose(y1, y0, atol=1e-4)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(b).max()))
    for a, b in zip(w1, w0):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_fused_batch_norm_uses_the_fused_kernel_and_keeps_inference():
    import tensorflow as tf


    layer = BatchNormalization()
    x = tf.random.normal((2, 4, 4, 3))
    graph = tf.function(lambda x: layer(x, training=True)).get_concrete_function(x).graph
    assert any(op.type == "FusedBatchNormV3" for op in graph.get_operations())
    graph = tf.function(lambda x: layer(x, training=False)).get_concrete_function(x).graph
    assert not any(op.type.startswith("FusedBatchNorm") for op in graph.get_operations())
    # Ranks other than 4 and channels-first take Keras' path, with the same result.
    for shape, axis in [((3, 5), -1), ((2, 3, 4, 4), 1)]:
        fused, plain = BatchNormalization(axis=axis), keras.layers.BatchNormalization(axis=axis)
        v = tf.random.normal(shape)
        np.testing.assert_allclose(fused(v, training=True), plain(v, training=True), atol=1e-5)
