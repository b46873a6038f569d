"""DPN: Dual Path Networks.

Reference:
    Yunpeng Chen, Jianan Li, Huaxin Xiao, Xiaojie Jin, Shuicheng Yan,
    Jiashi Feng, "Dual Path Networks", NeurIPS 2017,
    https://arxiv.org/abs/1707.01629

A dual path block runs one shared body, 1x1 -> grouped 3x3 -> 1x1 (each
pre-activated: BN-ReLU-Conv), on the concatenation of two paths, and splits
the body's output in two (paper Eq. 1-5, Fig. 2e):

    x_k = [r_k | d_k]                          (residual | densely connected)
    o   = body(x_k) = [o_res | o_dense]        (bw + inc channels)
    r_{k+1} = r_k + o_res                      residual path: added (ResNet)
    d_{k+1} = [d_k | o_dense]                  dense path: concatenated (DenseNet)

The first block of a stage projects its input with BN-ReLU-1x1 (stride 2
from the second stage on) to bw + 2*inc channels: bw residual, 2*inc dense.
DPN-68b splits the last 1x1 into two convolutions after one BN-ReLU.

Architecture table (residual widths bw = (64, 128, 256, 512) * f, f = 1 for
the small DPN-68 and 4 otherwise; bottleneck width r = k_r * bw / (64 f)):

| builder | stem  | init | k_r | G  | k_sec        | inc_sec          | params (trainable) | MACs   |
|---------|-------|------|-----|----|--------------|------------------|--------------------|--------|
| DPN68   | 3x3/2 | 10   | 128 | 32 | 3, 4, 12, 3  | 16, 32, 32, 64   | 12,611,602         | 2.35 G |
| DPN68b  | 3x3/2 | 10   | 128 | 32 | 3, 4, 12, 3  | 16, 32, 32, 64   | 12,611,602         | 2.35 G |
| DPN92   | 7x7/2 | 64   | 96  | 32 | 3, 4, 20, 3  | 16, 32, 24, 128  | 37,668,392         | 6.5 G  |
| DPN98   | 7x7/2 | 96   | 160 | 40 | 3, 6, 20, 3  | 16, 32, 32, 128  | 61,570,728         | 11.7 G |
| DPN107  | 7x7/2 | 128  | 200 | 50 | 4, 8, 20, 3  | 20, 64, 64, 128  | 86,917,800         | 18.3 G |
| DPN131  | 7x7/2 | 128  | 160 | 40 | 4, 8, 28, 3  | 16, 32, 32, 128  | 79,254,504         | 16.0 G |

Numerics follow the released (MXNet, converted by timm) models: BN epsilon
1e-3, PyTorch's symmetric padding (explicit ZeroPadding2D before every
stride-2 convolution, so even inputs such as 224 match), the classifier a
1x1 convolution with bias (kept here as a Dense layer; both layouts load),
and the final BN followed by ReLU (timm's constructor names an ELU there, but
the norm layer it builds keeps ReLU; the logits match only with ReLU).

``memory_efficient=True`` (every builder) keeps the paths as a list
``[residual, dense_1, ..., dense_n]`` instead of concatenating them and
recomputes concatenations and BN-ReLU outputs in the backward pass (as
Pleiss et al., arXiv:1707.06990, for DenseNet; ``bn_act_conv``): same
outputs, gradients, weights and weight-layer names. In DPN-68b two layers of
each stage's first block trade places in ``model.layers``: weights files
still load either way (by name, or by class and position within the class),
but the optimizer state saved with a compiled model does not move between
the two forms.
"""

import keras
from keras import layers

from kerasnets import weights as weights_lib
from kerasnets.imagenet import decode_predictions  # noqa: F401  (offline, bundled index)
from kerasnets.layers import (
    BatchNormalization,
    ChannelSplit,
    ConcatBatchNormalization,
    ConcatNormActConv2D,
    ConcatNormActGroupConv2D,
    GroupConv2D,
)
from kerasnets.models.common import (
    check_arguments,
    finish_model,
    global_pool,
    image_input,
    preprocessing_layer,
)
from kerasnets.weights import WeightsEntry

BN_EPSILON = 1e-3
MIN_SIZE = 32
BASE_WIDTHS = (64, 128, 256, 512)

VARIANTS = {
    "DPN68": dict(small=True, init_features=10, k_r=128, groups=32,
                  k_sec=(3, 4, 12, 3), inc_sec=(16, 32, 32, 64)),
    "DPN68b": dict(small=True, init_features=10, k_r=128, groups=32,
                   k_sec=(3, 4, 12, 3), inc_sec=(16, 32, 32, 64), b=True),
    "DPN92": dict(init_features=64, k_r=96, groups=32,
                  k_sec=(3, 4, 20, 3), inc_sec=(16, 32, 24, 128)),
    "DPN98": dict(init_features=96, k_r=160, groups=40,
                  k_sec=(3, 6, 20, 3), inc_sec=(16, 32, 32, 128)),
    "DPN107": dict(init_features=128, k_r=200, groups=50,
                   k_sec=(4, 8, 20, 3), inc_sec=(20, 64, 64, 128)),
    "DPN131": dict(init_features=128, k_r=160, groups=40,
                   k_sec=(4, 8, 28, 3), inc_sec=(16, 32, 32, 128)),
}

# ------------------------------------------------------------ pretrained

# The authors' MXNet weights as converted by timm (Hugging Face hub), and
# timm's own DPN-68b training. DPN-68b/92/107 "mx" were pretrained on
# ImageNet-5k, then fine-tuned on ImageNet-1k.
DPN_MEAN = (124 / 255, 117 / 255, 104 / 255)
DPN_STD = (0.23482,) * 3  # x - mean, times 0.0167, on 0-255 inputs
_HUB = "https://huggingface.co/timm/{}/resolve/main/model.safetensors"
_MX_TOP1 = {"DPN68": 76.3, "DPN68b": 77.5, "DPN92": 80.0, "DPN98": 79.7,
            "DPN107": 80.2, "DPN131": 79.8}

for _builder, _top1 in _MX_TOP1.items():
    weights_lib.register(
        _builder,
        "mx_in1k",
        WeightsEntry(
            url=_HUB.format(f"{_builder.lower()}.mx_in1k"),
            format="safetensors",
            preprocessing="dpn",
            interpolation="bicubic",
            source="timm (authors' MXNet weights)",
            license="apache-2.0",
            top1=_top1,
        ),
        default=True,
    )
weights_lib.register(
    "DPN68b",
    "ra_in1k",
    WeightsEntry(
        url=_HUB.format("dpn68b.ra_in1k"),
        format="safetensors",
        preprocessing="torch",
        crop_pct=0.95,
        interpolation="bicubic",
        source="timm (RandAugment recipe)",
        license="apache-2.0",
        top1=79.2,
    ),
)

# ----------------------------------------------------------------- blocks


def bn_act(x, name, activation="relu"):
    x = BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.Activation(activation, name=f"{name}_{activation}")(x)


def bn_act_conv(x, filters, kernel_size, name, strides=1, groups=1,
                memory_efficient=False):
    """Pre-activation convolution: BN-ReLU-Conv with PyTorch padding.

    With ``memory_efficient``, ``x`` may be a list of feature maps read as
    their concatenation (``[residual, dense_1, ..., dense_n]``), and the
    concatenation, BN output and ReLU are recomputed in the backward pass
    instead of stored (``kerasnets.layers.ConcatBatchNormalization`` +
    ``ConcatNormActConv2D``): same outputs, gradients, weights and
    weight-layer names, no ``_relu`` (and ``_pad``) layer; strided 3x3
    convolutions pad the activated map inside the layer (``zero_padding``).
    """
    padded = kernel_size > 1 and strides > 1
    if memory_efficient:
        features = list(x) if isinstance(x, (list, tuple)) else [x]
        affine = ConcatBatchNormalization(epsilon=BN_EPSILON,
                                          name=f"{name}_bn")(features)
        conv = ConcatNormActGroupConv2D if groups > 1 else ConcatNormActConv2D
        return conv(filters, kernel_size, strides=strides, groups=groups,
                    padding="same" if kernel_size > 1 and not padded else "valid",
                    zero_padding=kernel_size // 2 if padded else 0,
                    use_bias=False, name=f"{name}_conv")([affine, *features])
    x = bn_act(x, name)
    if padded:
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same" if kernel_size > 1 else "valid"
    conv = GroupConv2D if groups > 1 else layers.Conv2D
    return conv(filters, kernel_size, strides=strides, groups=groups,
                padding=padding, use_bias=False, name=f"{name}_conv")(x)


def dual_path_block(x, bottleneck, residual_width, increment, groups, name,
                    block_type="normal", b=False, memory_efficient=False):
    """One dual path block; ``x`` is ``[residual | dense]``.

    ``block_type``: "proj" (first block of the first stage: 1x1 projection),
    "down" (first block of later stages: stride-2 projection) or "normal".

    With ``memory_efficient``, ``x`` may be the list ``[residual, dense_1,
    ..., dense_n]`` (before a "proj"/"down" block: any list of maps) and the
    block returns ``[residual', dense_1, ..., dense_n, dense_new]`` instead
    of concatenating it (see ``bn_act_conv``).
    """
    strides = 2 if block_type == "down" else 1
    if block_type == "normal" and isinstance(x, (list, tuple)):
        residual, dense = x[0], list(x[1:])
    else:
        if block_type == "normal":
            shortcut = x
            dense_width = -1
        else:
            shortcut = bn_act_conv(x, residual_width + 2 * increment, 1,
                                   f"{name}_proj", strides=strides,
                                   memory_efficient=memory_efficient)
            dense_width = 2 * increment
        residual, dense = ChannelSplit([residual_width, dense_width],
                                       name=f"{name}_paths")(shortcut)
        dense = [dense]
    y = bn_act_conv(x, bottleneck, 1, f"{name}_1x1_a",
                    memory_efficient=memory_efficient)
    y = bn_act_conv(y, bottleneck, 3, f"{name}_3x3_b", strides=strides,
                    groups=groups, memory_efficient=memory_efficient)
    if b:
        if memory_efficient:
            affine = ConcatBatchNormalization(epsilon=BN_EPSILON,
                                              name=f"{name}_1x1_c_bn")([y])
            y = [affine, y]
            conv = ConcatNormActConv2D
        else:
            y = bn_act(y, f"{name}_1x1_c")
            conv = layers.Conv2D
        new_residual = conv(residual_width, 1, use_bias=False,
                            name=f"{name}_1x1_c1_conv")(y)
        new_dense = conv(increment, 1, use_bias=False,
                         name=f"{name}_1x1_c2_conv")(y)
    else:
        y = bn_act_conv(y, residual_width + increment, 1, f"{name}_1x1_c",
                        memory_efficient=memory_efficient)
        new_residual, new_dense = ChannelSplit(
            [residual_width, increment], name=f"{name}_out")(y)
    residual = layers.Add(name=f"{name}_add")([residual, new_residual])
    if memory_efficient:
        return [residual, *dense, new_dense]
    return layers.Concatenate(name=f"{name}_concat")([residual, *dense, new_dense])


def stem(x, filters, kernel_size):
    """conv1: Conv-BN-ReLU (k x k / 2) then 3x3/2 max pool, PyTorch padding."""
    x = layers.ZeroPadding2D(kernel_size // 2, name="conv1_pad")(x)
    x = layers.Conv2D(filters, kernel_size, strides=2, use_bias=False,
                      name="conv1_conv")(x)
    x = bn_act(x, "conv1")
    x = layers.ZeroPadding2D(1, name="conv1_pool_pad")(x)  # after ReLU: = -inf
    return layers.MaxPooling2D(3, strides=2, name="conv1_pool")(x)


def test_time_pool_top(x, classes, classifier_activation):
    """The paper's test-time pooling: 7x7/1 average pool, the classifier
    applied at every position, then the mean of global average and max."""
    x = layers.AveragePooling2D(7, strides=1, name="ttp_avg_pool")(x)
    x = layers.Dense(classes, name="predictions")(x)
    x = layers.Average(name="ttp_avgmax")([
        layers.GlobalAveragePooling2D(name="ttp_global_avg")(x),
        layers.GlobalMaxPooling2D(name="ttp_global_max")(x),
    ])
    return layers.Activation(classifier_activation, name="probabilities")(x)


# ---------------------------------------------------------------- builder


def DPN(
    k_r,
    groups,
    k_sec,
    inc_sec,
    init_features=64,
    small=False,
    b=False,
    test_time_pool=False,
    head_activation="relu",
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=False,
    memory_efficient=False,
    name="dpn",
    builder="DPN",
):
    """Instantiates a Dual Path Network (Chen et al., NeurIPS 2017).

    Args:
        k_r: bottleneck width factor: the 3x3 convs of stage i have
            ``k_r * (64, 128, 256, 512)[i] / 64`` channels.
        groups: groups of the 3x3 convolutions (G).
        k_sec: blocks per stage (4 stages).
        inc_sec: dense-path increment per block, per stage.
        init_features: stem channels.
        small: DPN-68 layout: 3x3 stem, residual widths (64, ..., 512)
            instead of 4x that.
        b: DPN-68b: the last 1x1 of a block is two convs (residual, dense).
        test_time_pool: 7x7/1 average pool + classifier + mean of global
            average and max (the paper's 320 px evaluation); needs inputs of
            at least 224 px. Same weights as the plain head.
        head_activation: activation after the final BN (ReLU in the
            released models).
        memory_efficient: recompute the concatenated paths and BN-ReLU
            outputs in the backward pass instead of storing them (as Pleiss
            et al., "Memory-Efficient Implementation of DenseNets",
            arXiv:1707.06990, do for DenseNet): less training memory for
            some extra step time. Same outputs, gradients, weights and
            weight layers (every weights file loads either way; DPN-68b
            orders two layers per stage differently, see above); most
            weightless ``*_concat``, ``*_paths`` and ``*_relu`` layers do
            not exist (see ``bn_act_conv``).
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in keras.applications. ``weights``
            is None, a tag (``kerasnets.weights.available("DPN92")``) or a
            path (.safetensors/.pth in timm's layout, or Keras weights).

    Returns:
        A ``keras.Model``.

    Example:
        >>> # DPN-92's table (k_r=96, G=32, k_sec=(3, 4, 20, 3), inc_sec=(16, 32, 24, 128))
        >>> model = kerasnets.DPN(96, 32, (3, 4, 20, 3), (16, 32, 24, 128), weights=None)
        >>> small = kerasnets.DPN(128, 32, (3, 4, 12, 3), (16, 32, 32, 64), small=True,
        ...                       init_features=10, weights=None, classes=10)  # DPN-68
    """
    check_arguments(builder, weights=weights, include_top=include_top,
                    classes=classes, pooling=pooling,
                    classifier_activation=classifier_activation)
    if len(k_sec) != 4 or len(inc_sec) != 4:
        raise ValueError(
            f"DPN has 4 stages: k_sec and inc_sec need 4 entries each; "
            f"received k_sec={k_sec}, inc_sec={inc_sec}."
        )
    width_factor = 1 if small else 4
    for base in BASE_WIDTHS:
        bottleneck = k_r * base // 64
        if bottleneck % groups:
            raise ValueError(
                f"DPN: the grouped 3x3 convolutions have k_r*{base}/64 = "
                f"{bottleneck} channels, which {groups} groups do not divide. "
                "Choose k_r and groups so every stage's width is a multiple "
                "of groups."
            )
    min_size = 224 if (test_time_pool and include_top) else MIN_SIZE
    img_input = image_input(input_tensor, input_shape, default_size=224,
                            min_size=min_size, include_top=include_top,
                            weights=weights)
    x = preprocessing_layer(img_input, builder=builder, weights=weights,
                            include_preprocessing=include_preprocessing)

    x = stem(x, init_features, 3 if small else 7)
    for stage, (base, depth, increment) in enumerate(zip(BASE_WIDTHS, k_sec, inc_sec)):
        for block in range(1, depth + 1):
            if block > 1:
                block_type = "normal"
            else:
                block_type = "proj" if stage == 0 else "down"
            block_name = f"conv{stage + 2}_{block}"
            x = dual_path_block(
                x,
                bottleneck=k_r * base // 64,
                residual_width=base * width_factor,
                increment=increment,
                groups=groups,
                name=block_name,
                block_type=block_type,
                b=b,
                memory_efficient=memory_efficient,
            )
    if memory_efficient:  # the last block's paths, concatenated once
        x = layers.Concatenate(name=f"{block_name}_concat")(x)
    x = bn_act(x, "conv5_final", activation=head_activation)

    if include_top and test_time_pool:
        x = test_time_pool_top(x, classes, classifier_activation)
    elif include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, activation=classifier_activation,
                         name="predictions")(x)
    else:
        x = global_pool(x, pooling)
    return finish_model(img_input, x, input_tensor=input_tensor, name=name,
                        builder=builder, weights=weights,
                        include_top=include_top)


def _variant(builder, params, macs, top1):
    """A named DPN: keras.applications' signature, the table's settings."""

    def build(
        include_top=True,
        weights="imagenet",
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=1000,
        classifier_activation="softmax",
        test_time_pool=False,
        include_preprocessing=False,
        memory_efficient=False,
        name=builder.lower(),
    ):
        return DPN(
            **VARIANTS[builder],
            test_time_pool=test_time_pool,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            include_preprocessing=include_preprocessing,
            memory_efficient=memory_efficient,
            name=name,
            builder=builder,
        )

    config = VARIANTS[builder]
    build.__name__ = build.__qualname__ = builder
    build.__doc__ = (
        f"Instantiates {builder} (Chen et al., \"Dual Path Networks\", "
        "NeurIPS 2017, arXiv:1707.01629).\n\n"
        f"k_r={config['k_r']}, G={config['groups']}, k_sec={config['k_sec']}, "
        f"inc_sec={config['inc_sec']}; {params} trainable parameters, "
        f"{macs} MACs at 224x224; top-1 {top1} (ImageNet-1k, 224, timm's "
        "evaluation of the released weights).\n\n"
        "Args: as keras.applications (include_top, weights, input_tensor,\n"
        "input_shape, pooling, classes, classifier_activation, name), plus\n"
        "test_time_pool and memory_efficient (see `DPN`). Default weights:\n"
        "the authors' MXNet release as converted by timm (tag 'mx_in1k').\n\n"
        "Example:\n"
        f"    >>> model = kerasnets.{builder}(weights=\"imagenet\")\n"
        "    >>> x = kerasnets.models.dpn.preprocess_input(images)\n"
        "    >>> kerasnets.models.dpn.decode_predictions(model.predict(x))\n"
    )
    return build


DPN68 = _variant("DPN68", "12,611,602", "2.35 G", 76.3)
DPN68b = _variant("DPN68b", "12,611,602", "2.35 G", 77.5)
DPN92 = _variant("DPN92", "37,668,392", "6.5 G", 80.0)
DPN98 = _variant("DPN98", "61,570,728", "11.7 G", 79.7)
DPN107 = _variant("DPN107", "86,917,800", "18.3 G", 80.2)
DPN131 = _variant("DPN131", "79,254,504", "16.0 G", 79.8)

# ------------------------------------------------------ timm checkpoints


def timm_layer_map(model):
    """Keras layer name -> timm module prefix (timm/models/dpn.py layout)."""
    mapping = {
        "conv1_conv": "features.conv1_1.conv",
        "conv1_bn": "features.conv1_1.bn",
        "conv5_final_bn": "features.conv5_bn_ac.bn",
        "predictions": "classifier",
    }
    for layer in model.layers:
        if not layer.weights or layer.name in mapping:
            continue
        block, _, part = layer.name.partition("_")  # conv3_1 | 2_3x3_b_bn
        index, _, part = part.partition("_")
        prefix = f"features.{block}_{index}"
        if part.startswith("proj_"):
            stride = 2 if block != "conv2" else 1
            module = f"c1x1_w_s{stride}"
            part = part[len("proj_"):]
        else:
            module, _, part = part.rpartition("_")  # 1x1_a | bn
            module = "c" + module
        if part == "conv" and module in ("c1x1_c1", "c1x1_c2"):
            mapping[layer.name] = f"{prefix}.{module}"
        else:
            mapping[layer.name] = f"{prefix}.{module}.{part}"
    return mapping, ("classifier",)


for _builder in ["DPN", *VARIANTS]:
    weights_lib.register_converter(_builder, timm_layer_map)

# ---------------------------------------------------------- pre/post


def preprocess_input(x, data_format=None):
    """Preprocessing of the default (MXNet) DPN weights: RGB inputs in
    [0, 255] -> (x / 255 - (124, 117, 104) / 255) / 0.23482.

    Numpy in, numpy out; tensors in, tensors out (keras.applications style).
    """
    import numpy as np

    channels_first = (data_format or keras.config.image_data_format()) == "channels_first"
    shape = (3, 1, 1) if channels_first else (3,)
    mean = (np.array(DPN_MEAN, dtype="float32") * 255.0).reshape(shape)
    std = (np.array(DPN_STD, dtype="float32") * 255.0).reshape(shape)
    if isinstance(x, np.ndarray):
        return (x.astype("float32") - mean) / std
    x = keras.ops.convert_to_tensor(x, dtype="float32")
    return (x - mean) / std
