"""Model analysis helpers: multiply-accumulate counts.

``count_macs(model)`` counts the multiply-accumulates of one forward pass of
one image, the way the papers of these families report "FLOPs" (all of them
count multiply-adds): every convolution (standard, grouped -- ``Conv2D(groups=)``
and ``GroupConv2D`` --, depthwise, separable, transposed) and every dense
layer, biases not counted. Element-wise work (BatchNorm, activations,
pooling, additions, SE gating) is not counted, as in the papers;
``batch_norm=True`` adds one MAC per BatchNorm output element (inference BN
is a per-channel scale and shift); ``elementwise=True`` one operation per
element of BatchNorm, activation and pooling layers, as ptflops counts (the
2.87 G often quoted for DenseNet-121 is that count).

Measured at 224x224 (convolutions + dense): MobileNet 568.7 M (paper 569 M),
MobileNetV2 300.8 M (300 M), DenseNet121 2.834 G (2.867 G with
``elementwise=True``; 2.87 G quoted), DPN92 6.502 G (6.5 G),
SE-ResNeXt-50 (32x4d) 4.233 G (4.25 G).
"""

import math
import warnings

import keras


def _prod(values):
    return int(math.prod(int(v) for v in values))


def _spatial(shape, data_format):
    """Spatial dims of a (batch, ..., channels) or channels_first shape."""
    shape = tuple(shape)
    return shape[2:] if data_format == "channels_first" else shape[1:-1]


def _conv_macs(layer, input_shape, output_shape):
    fmt = getattr(layer, "data_format", "channels_last")
    if hasattr(layer, "pointwise_kernel"):  # separable: depthwise + 1x1
        depthwise = _prod(layer.depthwise_kernel.shape)  # (*k, in, multiplier)
        pointwise = _prod(layer.pointwise_kernel.shape)  # (*1, in*mult, out)
        return _prod(_spatial(output_shape, fmt)) * (depthwise + pointwise)
    if hasattr(layer, "depthwise_kernel"):  # (*k, in, multiplier)
        return _prod(_spatial(output_shape, fmt)) * _prod(layer.depthwise_kernel.shape)
    kernel = _prod(layer.kernel.shape)
    if isinstance(layer, _TRANSPOSED):
        # (*k, out, in): every input position scatters a k x out block.
        return _prod(_spatial(input_shape, fmt)) * kernel
    # (*k, in/groups, out): each output element sums k * in/groups products.
    return _prod(_spatial(output_shape, fmt)) * kernel


_TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
               keras.layers.Conv3DTranspose)


def _dense_macs(layer, input_shape, output_shape):
    # (in, units), applied at every position of the leading dimensions.
    return _prod(tuple(output_shape)[1:-1]) * _prod(layer.kernel.shape)


def _batch_norm_macs(layer, input_shape, output_shape):
    return _prod(tuple(output_shape)[1:])


def _pooling_macs(layer, input_shape, output_shape):
    return _prod(tuple(input_shape)[1:])  # one op per element read


_ACTIVATIONS = (keras.layers.ReLU, keras.layers.Activation, keras.layers.LeakyReLU,
                keras.layers.ELU, keras.layers.PReLU, keras.layers.Softmax)
_POOLING = (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D,
            keras.layers.AveragePooling1D, keras.layers.AveragePooling2D,
            keras.layers.AveragePooling3D, keras.layers.GlobalAveragePooling1D,
            keras.layers.GlobalAveragePooling2D, keras.layers.GlobalAveragePooling3D,
            keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D,
            keras.layers.GlobalMaxPooling3D)


def _se_block_macs(layer, input_shape, output_shape):
    # Two 1x1 convolutions on the pooled (1 x 1) map.
    return _prod(layer.reduce.kernel.shape) + _prod(layer.expand.kernel.shape)


def _interleaved_macs(layer, input_shape, output_shape):
    # Both group convolutions produce maps of the block's output size.
    return (_conv_macs(layer.primary, input_shape, output_shape)
            + _conv_macs(layer.secondary, output_shape, output_shape))


_CONV_TYPES = (
    keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
    keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D, keras.layers.SeparableConv2D,
)

# Extra rules: {layer class: fn(layer, input_shape, output_shape) -> MACs}.
MAC_RULES = {}


def register_mac_rule(layer_class, rule):
    """Teaches ``count_macs`` a layer type: ``rule(layer, input_shape,
    output_shape)`` returns its MACs for one call (shapes with a batch dim)."""
    MAC_RULES[layer_class] = rule


def _rule_for(layer, batch_norm, elementwise=False):
    for cls in type(layer).__mro__:
        if cls in MAC_RULES:
            return MAC_RULES[cls]
    from kerasnets.layers import InterleavedGroupConv, SEBlock

    if isinstance(layer, SEBlock):
        return _se_block_macs
    if isinstance(layer, InterleavedGroupConv):
        return _interleaved_macs
    if isinstance(layer, _CONV_TYPES):
        return _conv_macs
    if isinstance(layer, (keras.layers.Dense,)):
        return _dense_macs
    if isinstance(layer, keras.layers.BatchNormalization):
        return _batch_norm_macs if batch_norm or elementwise else None
    if elementwise and isinstance(layer, _ACTIVATIONS):
        return _batch_norm_macs  # one op per output element
    if elementwise and isinstance(layer, _POOLING):
        return _pooling_macs
    return None


def _graph_nodes(model):
    functional = getattr(model, "_functional", None) or model  # Sequential
    by_depth = getattr(functional, "_nodes_by_depth", None)
    if by_depth is None:
        raise ValueError(
            f"count_macs needs a built functional or Sequential model; "
            f"{model.name} ({type(model).__name__}) has no layer graph."
        )
    for depth in sorted(by_depth, reverse=True):  # inputs first
        yield from by_depth[depth]


def _known_shape(shape):
    return all(d is not None for d in tuple(shape)[1:])


def _count(model, batch_norm, per_layer, uncounted, elementwise=False):
    total = 0
    for node in _graph_nodes(model):
        layer = node.operation
        if isinstance(layer, keras.Model):
            inner_shape = tuple(node.input_tensors[0].shape)[1:]
            if not all(_known_shape(t.shape) for t in layer.inputs) and None not in inner_shape:
                layer = _with_input_shape(layer, inner_shape)  # free-size inner model
            total += _count(layer, batch_norm, per_layer, uncounted, elementwise)
            continue
        rule = _rule_for(layer, batch_norm, elementwise)
        if rule is None:
            if any(v.trainable for v in getattr(layer, "weights", [])) and not isinstance(
                layer, (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
                        keras.layers.GroupNormalization, keras.layers.Normalization)
            ):
                uncounted.append(layer.name)
            continue
        if not node.input_tensors or not node.output_tensors:
            continue
        input_shape = node.input_tensors[0].shape
        output_shape = node.output_tensors[0].shape
        if not (_known_shape(input_shape) and _known_shape(output_shape)):
            raise ValueError(
                f"count_macs: layer {layer.name!r} of {model.name} sees inputs of "
                f"shape {tuple(input_shape)}: the model has no fixed input size. "
                "Pass `input_shape=` (e.g. (224, 224, 3))."
            )
        macs = int(rule(layer, input_shape, output_shape))
        total += macs
        if per_layer is not None:
            per_layer[layer.name] = per_layer.get(layer.name, 0) + macs
    return total


def _with_input_shape(model, input_shape):
    """``model``'s layers called on a fixed-size input (weights shared)."""
    inputs = keras.Input(shape=tuple(input_shape))
    if isinstance(model.input, (list, tuple)):
        inputs = [inputs]
    return keras.models.clone_model(model, input_tensors=inputs,
                                    clone_function=lambda layer: layer)


def count_macs(model, input_shape=None, batch_norm=False, elementwise=False,
               per_layer=False):
    """Multiply-accumulates of one forward pass of one example.

    Args:
        model: a built functional or Sequential Keras model (nested models
            are counted too).
        input_shape: (height, width, channels) to count at another size
            (the layers are re-used, not copied). A model built without a
            fixed size (``input_shape=(None, None, 3)``, as MobileNetV3 and
            every headless model by default) is counted at 224x224.
        batch_norm: also count one MAC per BatchNormalization output element
            (inference BN is a per-channel scale and shift).
        elementwise: also count one operation per element of BatchNorm and
            activation outputs and of pooling inputs, as ptflops does.
            DenseNet-121 at 224: 2.834 G by default (torchvision's figure),
            2.850 G with ``batch_norm``, 2.867 G with ``elementwise``: the
            2.87 G commonly quoted for it.
        per_layer: return ``(total, {layer name: MACs})`` instead of the total.

    Counted: convolutions (standard, grouped, depthwise, separable,
    transposed; ``GroupConv2D``, ``InterleavedGroupConv``), dense layers, the
    two 1x1 convolutions of ``SEBlock``; biases and element-wise operations
    are not (the papers' convention). Other layers with trainable weights
    that no rule covers are reported in a warning (``register_mac_rule``
    adds rules).

        >>> count_macs(kerasnets.MobileNet(weights=None)) / 1e6
        568.740...
    """
    if input_shape is None and not all(_known_shape(t.shape) for t in model.inputs):
        channels = model.inputs[0].shape[-1] or 3
        input_shape = (224, 224, channels)  # keras.applications' default size
    if input_shape is not None:
        model = _with_input_shape(model, input_shape)
    table = {} if per_layer else None
    uncounted = []
    total = _count(model, batch_norm, table, uncounted, elementwise)
    if uncounted:
        warnings.warn(
            f"count_macs: no rule for layers with weights {sorted(set(uncounted))[:5]}"
            f"{' ...' if len(set(uncounted)) > 5 else ''}; they are not counted "
            "(kerasnets.utils.register_mac_rule adds one).",
            stacklevel=2,
        )
    return (total, table) if per_layer else total


def count_trainable_params(model):
    """Trainable parameters (what timm and the papers count)."""
    return sum(_prod(w.shape) for w in model.trainable_weights)


__all__ = ["MAC_RULES", "count_macs", "count_trainable_params", "register_mac_rule"]
