"""Grouped convolution that is fast on every backend.

Keras 3 routes ``Conv2D(groups > 1)`` through an XLA-compiled function on the
TensorFlow backend, about 4x slower forward and several hundred times slower
backward on CPU than TensorFlow's own kernels, and opaque to the ONNX
exporter. ``GroupConv2D`` keeps Conv2D's arguments and weight layout
(kernel ``(kh, kw, in/groups, filters)``), so weights and configs move freely
between the two, and calls ``tf.nn.convolution`` directly on TensorFlow.

TensorFlow's default (Eigen) CPU kernels compute the grouped forward pass
but not its gradients ("Gradients for grouped convolutions are not supported
on CPU"), so on a CPU without oneDNN the gradient is computed by other native
CPU ops: ``grouped_conv_gradients`` below. TensorFlow's oneDNN kernels (on by
default on Intel CPUs, and turned on by ``import kerasnets`` before
TensorFlow elsewhere) have both and are 3-6x faster. Other backends use
Conv2D's own path.
"""

import functools

import keras


@functools.lru_cache(maxsize=None)
def _needs_custom_gradient():
    """True when TensorFlow's CPU kernels cannot differentiate grouped convs:
    no GPU and oneDNN off."""
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        return False
    try:
        from tensorflow.python.util import _pywrap_util_port

        return not _pywrap_util_port.IsMklEnabled()
    except (ImportError, AttributeError):
        return True


@functools.lru_cache(maxsize=None)
def _cpu_only():
    import tensorflow as tf

    return not tf.config.list_logical_devices("GPU")


def _grouped_gradients_by_group(x, kernel, dy, groups, forward):
    """Gradients of one dense convolution per group (TensorFlow's own dense
    gradients, dilation included): best when groups have many channels."""
    import tensorflow as tf

    xs = tf.split(x, groups, axis=-1)
    ks = tf.split(kernel, groups, axis=-1)
    dys = tf.split(dy, groups, axis=-1)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(xs)
        tape.watch(ks)
        ys = [forward(xg, kg) for xg, kg in zip(xs, ks)]
    grads = [tape.gradient(yg, [xg, kg], output_gradients=dyg)
             for yg, xg, kg, dyg in zip(ys, xs, ks, dys)]
    return tf.concat([g[0] for g in grads], -1), tf.concat([g[1] for g in grads], -1)


def _grouped_gradients_depthwise(x, kernel, dy, groups, strides, padding):
    """The same gradients as depthwise backprop ops on ``dy`` repeated once per
    input channel of its group: best for narrow groups (ResNeXt, DPN)."""
    import tensorflow as tf

    kh, kw, per_group_in, filters = kernel.shape
    per_group_out = filters // groups
    # Depthwise kernel [a, b, g*ci + i, m] = kernel[a, b, i, g*co + m].
    split = (kh, kw, per_group_in, groups, per_group_out)
    depthwise_kernel = tf.reshape(
        tf.transpose(tf.reshape(kernel, split), (0, 1, 3, 2, 4)),
        (kh, kw, groups * per_group_in, per_group_out),
    )
    n, h, w = tf.unstack(tf.shape(dy)[:3])
    repeated = tf.broadcast_to(
        tf.reshape(dy, (n, h, w, groups, 1, per_group_out)),
        (n, h, w, groups, per_group_in, per_group_out),
    )
    repeated = tf.reshape(repeated, (n, h, w, groups * per_group_in * per_group_out))
    dx = tf.nn.depthwise_conv2d_backprop_input(
        tf.shape(x), depthwise_kernel, repeated, strides, padding
    )
    dk = tf.nn.depthwise_conv2d_backprop_filter(
        x, (kh, kw, groups * per_group_in, per_group_out), repeated, strides, padding
    )
    dk = tf.reshape(
        tf.transpose(
            tf.reshape(dk, (kh, kw, groups, per_group_in, per_group_out)),
            (0, 1, 3, 2, 4),
        ),
        (kh, kw, per_group_in, filters),
    )
    return dx, dk


def grouped_conv_gradients(x, kernel, dy, groups, forward, strides, padding, dilations):
    """d(loss)/dx and d(loss)/dkernel of the grouped ``forward`` (NHWC).

    Measured on 2 CPU cores (batch 8, 3x3): the depthwise form wins for up
    to 4 input channels a group (ResNeXt 32x4d, DPN), one dense convolution
    per group wins above (3-5x faster at 8 or more channels a group).
    """
    if kernel.shape[2] <= 4 and all(d == 1 for d in dilations):
        return _grouped_gradients_depthwise(
            x, kernel, dy, groups, [1, *strides, 1], padding
        )
    return _grouped_gradients_by_group(x, kernel, dy, groups, forward)


@keras.saving.register_keras_serializable(package="kerasnets")
class GroupConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with a fast grouped path on TensorFlow.

    Grouped convolution: AlexNet's two-GPU split (Krizhevsky et al.,
    NeurIPS 2012) made a design axis, the cardinality, by ResNeXt (Xie et
    al., "Aggregated Residual Transformations for Deep Neural Networks",
    CVPR 2017, arXiv:1611.05431); used here by SE-ResNeXt, DPN and IGC.

    Args:
        filters, kernel_size, strides, padding, data_format, dilation_rate,
            activation, use_bias, initializers, regularizers, constraints:
            as ``keras.layers.Conv2D`` (same weight layout).
        groups: splits input and output channels into that many independent
            convolutions (must divide both).

    Example:
        >>> layer = GroupConv2D(256, 3, groups=32, padding="same")
        >>> layer(keras.ops.ones((1, 56, 56, 256))).shape
        (1, 56, 56, 256)
    """

    def call(self, inputs):
        if keras.backend.backend() != "tensorflow" or self.groups == 1:
            return super().call(inputs)
        import tensorflow as tf

        outputs = self.convolution_op(inputs, self.kernel)
        if self.use_bias:
            # A plain add, not BiasAdd: Grappler would fuse Conv2D + BiasAdd
            # into _FusedConv2D, whose kernel rejects grouped convolutions.
            shape = (1, 1, 1, -1) if self.data_format == "channels_last" else (1, -1, 1, 1)
            outputs = tf.add(outputs, tf.reshape(self.bias, shape))
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    def convolution_op(self, inputs, kernel):
        if keras.backend.backend() != "tensorflow":
            return super().convolution_op(inputs, kernel)
        import tensorflow as tf

        strides = list(self.strides)
        padding = self.padding.upper()
        dilations = list(self.dilation_rate)
        channels_last = self.data_format == "channels_last"
        data_format = "NHWC" if channels_last else "NCHW"

        def forward(x, k):
            return tf.nn.convolution(
                x, k, strides=strides, padding=padding, dilations=dilations,
                data_format=data_format,
            )

        if self.groups == 1 or not channels_last:
            return forward(inputs, kernel)
        if not _needs_custom_gradient() and not (
            inputs.dtype != tf.float32 and _cpu_only()
        ):
            # oneDNN or GPU kernels differentiate grouped convs; oneDNN's
            # half-precision (bfloat16) ones only on CPUs with AVX-512, so
            # those take the path below on every CPU.
            return forward(inputs, kernel)
        groups = self.groups

        @tf.custom_gradient
        def grouped_conv(x, k):
            def grad(dy):
                return grouped_conv_gradients(
                    x, k, dy, groups, forward, strides, padding, dilations
                )

            return forward(x, k), grad

        return grouped_conv(inputs, tf.convert_to_tensor(kernel))
