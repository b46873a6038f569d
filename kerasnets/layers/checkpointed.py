"""Memory-efficient pre-activation convolution over concatenated feature maps.

Reference: Geoff Pleiss, Danlu Chen, Gao Huang, Tongcheng Li, Laurens van der
Maaten, Kilian Q. Weinberger, "Memory-Efficient Implementation of DenseNets",
2017, https://arxiv.org/abs/1707.06990

A DenseNet layer (and a DPN block) reads the channel concatenation of all
earlier feature maps through BN-ReLU-Conv. Built from plain layers, every
layer stores its own concatenation, BN output and ReLU output for the
backward pass: memory grows quadratically with the depth of a block. Here
the pair

    affine = ConcatBatchNormalization(name="..._bn")(features)
    y = ConcatNormActConv2D(filters, 1, name="..._conv")([affine, *features])

computes ``conv(relu(bn(concat(features))))`` from the *list* ``features``
and keeps only that list (shared by all layers of a block) and a few
per-channel vectors; concatenation, normalisation and activation are
recomputed in the backward pass (a custom gradient on TensorFlow,
``jax.checkpoint`` on JAX, ``torch.utils.checkpoint`` on PyTorch). Outputs
and gradients equal those of ``Concatenate -> BatchNormalization ->
Activation -> Conv2D``:

- ``ConcatBatchNormalization`` is a ``BatchNormalization`` (same variables,
  config, moving-statistics update, ``trainable=False`` inference mode) whose
  output is the per-channel affine transform ``bn(x) = x * scale + offset``,
  as a ``(2, channels)`` tensor ``[scale, offset]``. Its batch moments are
  computed once, in the forward pass, so the moving statistics are updated
  exactly once per step; only their gradient recomputes the concatenation.
- ``ConcatNormActConv2D`` (``ConcatNormActGroupConv2D``) is a ``Conv2D``
  (``GroupConv2D``) with the same kernel and arguments that applies
  ``activation(x * scale + offset)`` to the concatenation before convolving.

Both keep the class name of the layer they stand for (``BatchNormalization``,
``Conv2D``, ``GroupConv2D``) as ``__name__``, because Keras' ``.weights.h5``
format addresses a layer's variables by its class name and position
(``layers/batch_normalization_7/vars``): weight files, legacy ``.h5`` files
(loaded by topology) and converted checkpoints move freely between a model
built from these layers and the same model built from plain layers. They are
serialized under their own registered names (``kerasnets>ConcatNormActConv2D``).
"""

import keras
from keras import ops

from kerasnets.layers.group_conv import GroupConv2D


def _recompute_in_backward(fn, args, anchor=-1):
    """``fn(*args)`` (TensorFlow tensors) that stores only ``args`` for the
    backward pass, which calls ``fn`` again under a local tape.

    In a graph (``tf.function``, ``model.fit``) Grappler's and XLA's common
    subexpression elimination would merge the recomputation with the forward
    pass and keep its intermediates alive again. As in ``tf.recompute_grad``,
    the recomputation therefore reads ``args[anchor]`` plus a zero that is
    data-dependent on the output gradient; ``anchor`` should be a small
    argument (the cost is one elementwise add on it) that the first
    operation of ``fn`` consumes.
    """
    import tensorflow as tf

    @tf.custom_gradient
    def recomputed(*inputs):
        outputs = fn(*inputs)

        def grad(*output_grads):
            inputs_again = list(inputs)
            if not tf.executing_eagerly():
                seed = next((g for g in output_grads if g is not None), None)
                if seed is not None:
                    # A zero no compiler folds: it reads the gradient's
                    # first element (tf.recompute_grad's construction).
                    first = tf.reduce_max(tf.reshape(seed, [-1])[:1])
                    flag = tf.cast(first, tf.bool)
                    zero = tf.where(flag == flag, 0.0, float("nan"))  # noqa: PLR0124
                    anchored = inputs_again[anchor]
                    inputs_again[anchor] = anchored + tf.cast(zero, anchored.dtype)
            with tf.GradientTape() as tape:
                tape.watch(inputs_again)
                outputs_again = fn(*inputs_again)
            return tape.gradient(
                outputs_again,
                inputs_again,
                output_gradients=list(output_grads)
                if isinstance(outputs_again, (list, tuple))
                else output_grads[0],
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )

        return outputs, grad

    # Variables (a Keras kernel is a tf.Variable underneath) are read here,
    # outside: their gradients flow through the reads.
    return recomputed(*[tf.convert_to_tensor(a) for a in args])


def _jax_recompute(fn, args):
    """``jax.checkpoint(fn)(*args)`` when JAX traces the call (``jax.jit``,
    ``jax.grad``: Keras' training step): the backward pass recomputes ``fn``
    from ``args`` (``prevent_cse`` keeps XLA from merging the recomputation
    with the forward pass). Eager calls on concrete arrays run ``fn``."""
    import jax

    if not any(isinstance(a, jax.core.Tracer) for a in args):
        return fn(*args)
    return jax.checkpoint(fn)(*args)


def _torch_recompute(fn, args):
    """``torch.utils.checkpoint`` (non-reentrant) when autograd records the
    call: only ``args`` are saved, ``fn`` runs again in the backward pass.
    Without gradients (inference) ``fn`` runs as it is."""
    import torch

    if not (torch.is_grad_enabled()
            and any(getattr(a, "requires_grad", False) for a in args)):
        return fn(*args)
    from torch.utils.checkpoint import checkpoint

    return checkpoint(fn, *args, use_reentrant=False)


def _recompute(fn, args):
    """``fn(*args)``, keeping only ``args`` for the backward pass, which
    recomputes ``fn``: a custom gradient on TensorFlow, ``jax.checkpoint``
    on JAX, ``torch.utils.checkpoint`` on PyTorch; other backends run ``fn``
    (same values, no memory saved)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _recompute_in_backward(fn, args)
    if backend == "jax":
        return _jax_recompute(fn, args)
    if backend == "torch":
        return _torch_recompute(fn, args)
    return fn(*args)


def _as_list(inputs):
    return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]


def _shape_list(input_shape):
    """A list of shapes from the shape(s) Keras passes to build()."""
    if input_shape and isinstance(input_shape[0], (list, tuple)):
        return [tuple(s) for s in input_shape]
    return [tuple(input_shape)]


@keras.saving.register_keras_serializable(package="kerasnets")
class ConcatBatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization of the channel concatenation of its inputs, returned
    as the per-channel affine transform instead of the normalised tensor.

    Called on a list of feature maps (NHWC, channels last), it returns the
    ``(2, channels)`` tensor ``[scale, offset]`` with
    ``BatchNormalization(concat(inputs)) == concat(inputs) * scale + offset``
    (``scale = gamma / sqrt(var + epsilon)``, ``offset = beta - mean * scale``,
    batch moments in training, moving statistics otherwise): the input of a
    ``ConcatNormActConv2D``. Variables, arguments and the moving-statistics
    update are BatchNormalization's. In training the batch moments are
    computed without keeping the concatenation for the backward pass (it is
    recomputed there). ``renorm`` and ``synchronized`` are not
    supported. Reference: Pleiss et al., "Memory-Efficient Implementation
    of DenseNets", 2017 (arXiv:1707.06990).

    Args:
        **kwargs: BatchNormalization's (``momentum``, ``epsilon``, ``center``,
            ``scale``, initializers, ``name``); channels last.

    Example:
        >>> features = [keras.Input((8, 8, 16)), keras.Input((8, 8, 4))]
        >>> affine = ConcatBatchNormalization(epsilon=1.001e-5)(features)
        >>> y = ConcatNormActConv2D(8, 1, use_bias=False)([affine, *features])
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(axis=axis, **kwargs)
        if self.renorm or self.synchronized:
            raise ValueError(
                "ConcatBatchNormalization supports neither `renorm` nor "
                "`synchronized`."
            )
        self.supports_masking = False

    def build(self, input_shape):
        shapes = _shape_list(input_shape)
        if self.axis not in (-1, len(shapes[0]) - 1):
            raise ValueError(
                "ConcatBatchNormalization normalises the last (channel) axis "
                f"only. Received: axis={self.axis}"
            )
        super().build(_concat_shape(shapes))
        self.input_spec = None

    def call(self, inputs, training=None, mask=None):
        features = _as_list(inputs)
        dtype = keras.backend.result_type(features[0].dtype, "float32")
        if training and self.trainable:
            axes = self._reduction_axes

            def moments(*maps):
                x = ops.concatenate([ops.cast(m, dtype) for m in maps], axis=-1)
                return ops.moments(x, axes=axes)

            mean, variance = _recompute(moments, features)
            self.moving_mean.assign(
                ops.cast(self.moving_mean, dtype) * self.momentum
                + mean * (1.0 - self.momentum)
            )
            self.moving_variance.assign(
                ops.cast(self.moving_variance, dtype) * self.momentum
                + variance * (1.0 - self.momentum)
            )
        else:
            mean = ops.cast(self.moving_mean, dtype)
            variance = ops.cast(self.moving_variance, dtype)
        # tf.nn.batch_normalization's arithmetic, operation for operation.
        scale = ops.rsqrt(variance + self.epsilon)
        if self.scale:
            scale = scale * ops.cast(self.gamma, dtype)
        if self.center:
            offset = ops.cast(self.beta, dtype) - mean * scale
        else:
            offset = -mean * scale
        return ops.stack([scale, offset])

    def compute_output_shape(self, input_shape):
        return (2, _concat_shape(_shape_list(input_shape))[-1])

    def compute_output_spec(self, inputs, training=None, mask=None):
        features = _as_list(inputs)
        shape = self.compute_output_shape([tuple(f.shape) for f in features])
        dtype = keras.backend.result_type(features[0].dtype, "float32")
        return keras.KerasTensor(shape, dtype=dtype)

    def compute_mask(self, inputs, mask=None):
        return None


ConcatBatchNormalization.__name__ = "BatchNormalization"  # .weights.h5 paths


def _concat_shape(shapes):
    channels = [s[-1] for s in shapes]
    total = None if None in channels else sum(channels)
    return shapes[0][:-1] + (total,)


class _ConcatNormActConv:
    """``conv(norm_activation(concat(features) * scale + offset))``, called on
    ``[affine, *features]``; see ``ConcatNormActConv2D``."""

    def __init__(self, *args, norm_activation="relu", zero_padding=0, **kwargs):
        # No autocasting: under mixed precision the affine stays float32 (as
        # inside BatchNormalization); `call` casts features and kernel.
        kwargs["autocast"] = False
        super().__init__(*args, **kwargs)
        self.norm_activation = keras.activations.get(norm_activation)
        self.zero_padding = int(zero_padding)
        if self.zero_padding < 0:
            raise ValueError(f"zero_padding must be >= 0; received {zero_padding}.")
        self.input_spec = None

    def build(self, input_shape):
        shapes = _shape_list(input_shape)
        if len(shapes) < 2:
            raise ValueError(
                f"{type(self).__qualname__} is called on [affine, *features] "
                "(the output of a ConcatBatchNormalization and the feature "
                f"maps it normalised). Received input shapes {shapes}."
            )
        if self.data_format != "channels_last":
            raise ValueError(
                f"{type(self).__qualname__} supports channels_last only."
            )
        super().build(_concat_shape(shapes[1:]))
        self.input_spec = None

    def call(self, inputs):
        affine, *features = inputs
        features = [ops.cast(f, self.compute_dtype) for f in features]
        kernel = ops.cast(self.kernel, self.compute_dtype)

        def forward(kernel, affine, *maps):
            x = maps[0] if len(maps) == 1 else ops.concatenate(list(maps), axis=-1)
            x = ops.cast(x, affine.dtype)
            # BatchNormalization's output: x * scale + offset, cast back.
            x = ops.cast(x * affine[0] + affine[1], self.compute_dtype)
            x = self.norm_activation(x)
            if self.zero_padding:
                p = self.zero_padding
                x = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
            return self.convolution_op(x, kernel)

        outputs = _recompute(forward, [kernel, affine, *features])
        if self.use_bias:
            bias = ops.reshape(self.bias, (1,) * (self.rank + 1) + (self.filters,))
            outputs = ops.add(outputs, ops.cast(bias, outputs.dtype))
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        shapes = _shape_list(input_shape)
        if len(shapes) > 1:
            input_shape = _concat_shape(shapes[1:])
        # else: the concatenated shape (Conv2D.build checks it this way)
        if self.zero_padding:
            input_shape = (input_shape[0],
                           *(None if d is None else d + 2 * self.zero_padding
                             for d in input_shape[1:-1]),
                           input_shape[-1])
        return super().compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "norm_activation": keras.activations.serialize(self.norm_activation),
            "zero_padding": self.zero_padding,
        }


@keras.saving.register_keras_serializable(package="kerasnets")
class ConcatNormActConv2D(_ConcatNormActConv, keras.layers.Conv2D):
    """``Conv2D`` of ``norm_activation(concat(features) * scale + offset)``.

    Called on ``[affine, *features]``: ``affine`` is the ``[scale, offset]``
    output of a ``ConcatBatchNormalization`` of ``features`` (a list of NHWC
    feature maps), so the layer equals ``Concatenate -> BatchNormalization ->
    Activation(norm_activation) -> Conv2D`` with the same kernel, and stores
    only ``features`` and ``affine`` for the backward pass, where the
    concatenation, normalisation and activation are recomputed.

    Args:
        norm_activation: the activation between normalisation and
            convolution ("relu").
        zero_padding: symmetric zero padding of the activated map before
            the convolution (``ZeroPadding2D(zero_padding)`` between the
            activation and a "valid" convolution, as PyTorch pads); 0: none.
        *args, **kwargs: Conv2D's (``filters``, ``kernel_size``, ``strides``,
            ``padding``, ``use_bias``, ...); channels last.

    Reference: Pleiss et al., "Memory-Efficient Implementation of DenseNets",
    2017 (arXiv:1707.06990), the shared-storage BN-ReLU-conv.

    Example:
        >>> features = [keras.Input((8, 8, 16)), keras.Input((8, 8, 4))]
        >>> affine = ConcatBatchNormalization()(features)
        >>> y = ConcatNormActConv2D(8, 1, use_bias=False)([affine, *features])
    """


ConcatNormActConv2D.__name__ = "Conv2D"  # .weights.h5 paths


@keras.saving.register_keras_serializable(package="kerasnets")
class ConcatNormActGroupConv2D(_ConcatNormActConv, GroupConv2D):
    """``ConcatNormActConv2D`` with ``GroupConv2D``'s grouped convolution
    (its fast TensorFlow kernels): DPN's grouped 3x3 after BN-ReLU of the
    concatenated paths (Pleiss et al., arXiv:1707.06990, applied to DPN).

    Args:
        norm_activation, *args, **kwargs: as ``ConcatNormActConv2D``, plus
            ``groups`` (> 1, dividing the input and output channels).

    Example:
        >>> features = [keras.Input((8, 8, 16)), keras.Input((8, 8, 16))]
        >>> affine = ConcatBatchNormalization()(features)
        >>> y = ConcatNormActGroupConv2D(32, 3, groups=4, padding="same")([affine, *features])
    """


ConcatNormActGroupConv2D.__name__ = "GroupConv2D"  # .weights.h5 paths
