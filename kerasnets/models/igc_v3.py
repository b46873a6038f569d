"""IGCV3: Interleaved Low-Rank Group Convolutions.

Reference:
    Ke Sun, Mingjie Li, Dong Liu, Jingdong Wang, "IGCV3: Interleaved
    Low-Rank Group Convolutions for Efficient Deep Neural Networks",
    BMVC 2018, https://arxiv.org/abs/1806.00178

An IGCV3 block is MobileNetV2's inverted residual block with the dense 1x1
convolutions replaced by low-rank *group* convolutions and a permutation
between them (paper Fig. 2, "IGCV3-D"; the authors' MXNet
``symbols/igcv3.py`` and released ``models/igcv3-symbol.json``):

    1x1 group conv, 2 groups, C_in -> t * C_in, + BN        (no activation)
    channel shuffle with 2 groups (out[2b + a] = in[a * C/2 + b])
    3x3 depthwise conv (stride s) + BN + ReLU6
    1x1 group conv, 2 groups, t * C_in -> C_out, + BN       (linear)
    + input, when it has C_out channels and s = 1 (not in the first block
      of a sequence)

Network (MobileNetV2's layout): 3x3/2 conv, 32 ch + BN + ReLU6; sequences
(t, c, n, s) = (1,16,1,1), (6,24,4,2), (6,32,6,2), (6,64,8,2), (6,96,6,1),
(6,160,6,2), (6,320,1,1); 1x1 conv 1280 + BN + ReLU6; global average pool;
FC. BatchNorm epsilon 1e-5 (momentum 0.9), MXNet/PyTorch symmetric padding.
The first sequence keeps its 1x1 "expansion" group conv (t = 1, 32 -> 32).

Width multiplier ``alpha`` scales every width but the last conv:
c -> round(c * alpha), made even (the group convs split channels in two);
the last conv stays 1280 for alpha <= 1 and is int(1280 * alpha), made even,
above. The expansion width is t times the block's actual input channels
(the authors' script computes it from a doubly-scaled width when alpha != 1;
this builder and pytorchcv do not).

| alpha | params (trainable) | MACs (224) | top-1                                      |
|-------|--------------------|------------|--------------------------------------------|
| 1.0   | 3,491,688          | 313 M      | 72.2 (paper, after retraining; 70.6 before) |
| 0.75  | 2,638,084          | 190 M      | -                                          |
| 0.5   | 1,985,528          | 97 M       | -                                          |
| 0.25  | 1,534,020          | 34 M       | -                                          |

MACs count the convolutions' and the classifier's multiply-adds (the paper
reports about 318 M for IGCV3-D 1.0, which includes more than these).
(Counts equal pytorchcv's igcv3_w1 / w3d4 / wd2 / wd4, checked in the tests;
the paper reports 3.5 M for IGCV3-D 1.0.)

Weights: ``weights="imagenet"`` (alpha 1.0) is the authors' released MXNet
checkpoint ``models/igcv3-0000.params`` (github.com/homles11/IGCV3, no
published hash; its names are those of ``models/igcv3-symbol.json``),
preprocessing RGB minus (123.68, 116.779, 103.939), no scaling. A path may
also be a PyTorch state dict in pytorchcv's ``igcv3_w*`` layout (.pth or
.safetensors), or Keras weights.
"""

import re

import keras
from keras import layers

from kerasnets import weights as weights_lib
from kerasnets.imagenet import decode_predictions  # noqa: F401  (offline, bundled index)
from kerasnets.layers import BatchNormalization, ChannelShuffle, GroupConv2D
from kerasnets.models.common import (
    check_arguments,
    classifier_top,
    finish_model,
    image_input,
    preprocessing_layer,
)
from kerasnets.weights import WeightsEntry
from kerasnets.weights.mxnet import register_mxnet_converter

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
GROUPS = 2
FIRST_FILTERS = 32
LAST_FILTERS = 1280
# t, c, n, s (MobileNetV2 / IGCV3-D)
SEQUENCES = (
    (1, 16, 1, 1),
    (6, 24, 4, 2),
    (6, 32, 6, 2),
    (6, 64, 8, 2),
    (6, 96, 6, 1),
    (6, 160, 6, 2),
    (6, 320, 1, 1),
)

IGCV3_MEAN = (123.68, 116.779, 103.939)  # RGB, 0-255; no std scaling

weights_lib.register(
    "IGCV3_1.0",
    "imagenet",
    WeightsEntry(
        url=("https://raw.githubusercontent.com/homles11/IGCV3/"
             "83aba2f34702836cc1b82350163909034cd9b553/models/igcv3-0000.params"),
        format="mxnet_params",
        preprocessing="igcv3",  # x - IGCV3_MEAN: see preprocess_input
        source="authors' MXNet release, homles11/IGCV3",
        license="see the authors' repository",
        top1=72.2,  # paper / README for IGCV3-D 1.0; not re-measured here
        top5=90.5,
    ),
    default=True,
)


def even_width(channels, alpha):
    """round(channels * alpha), made even (authors' rule)."""
    width = int(round(channels * alpha))
    return width + 1 if width % 2 else width


# ----------------------------------------------------------------- blocks


def conv_bn(x, filters, kernel_size, name, strides=1, groups=1, depthwise=False,
            activation=None):
    """Conv-BN(-ReLU6) unit (MXNet ``mobilenet_unit``): ``{name}_conv``,
    ``{name}_bn``, ``{name}_relu6``; symmetric padding (Keras "same" where it
    is the same, an explicit ``{name}_pad`` before stride-2 convolutions)."""
    padding = "same" if kernel_size > 1 else "valid"
    if kernel_size > 1 and strides > 1:
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    if depthwise:
        x = layers.DepthwiseConv2D(kernel_size, strides=strides, padding=padding,
                                   use_bias=False, name=f"{name}_conv")(x)
    else:
        conv = GroupConv2D if groups > 1 else layers.Conv2D
        x = conv(filters, kernel_size, strides=strides, groups=groups, padding=padding,
                 use_bias=False, name=f"{name}_conv")(x)
    x = BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                  name=f"{name}_bn")(x)
    if activation:
        x = layers.ReLU(6.0, name=f"{name}_relu6")(x)
    return x


def igcv3_block(x, filters, expansion, strides, name, shortcut):
    """Interleaved low-rank group convolution block (IGCV3-D)."""
    inputs = x
    expanded = int(round(x.shape[-1] * expansion))
    x = conv_bn(x, expanded, 1, f"{name}_exp", groups=GROUPS)
    x = ChannelShuffle(GROUPS, name=f"{name}_shuffle")(x)
    x = conv_bn(x, expanded, 3, f"{name}_depthwise", strides=strides, depthwise=True,
                activation="relu6")
    x = conv_bn(x, filters, 1, f"{name}_linear", groups=GROUPS)
    if shortcut:
        x = layers.Add(name=f"{name}_add")([inputs, x])
    return x


# ---------------------------------------------------------------- builder


def IGCV3(
    alpha=1.0,
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=False,
    name=None,
):
    """Instantiates IGCV3-D (Sun et al., "IGCV3: Interleaved Low-Rank Group
    Convolutions for Efficient Deep Neural Networks", BMVC 2018,
    arXiv:1806.00178).

    Args:
        alpha: width multiplier (1.0: 3,491,688 parameters, 313 M MACs at
            224, top-1 72.2 in the paper; see the module table).
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in keras.applications.
            ``weights="imagenet"`` (alpha 1.0) is the authors' MXNet release;
            a path may be that .params file, a pytorchcv ``igcv3_w*`` state
            dict (.pth / .safetensors) or Keras weights.
        include_preprocessing: bake the weights' normalisation into the
            model (raw RGB 0-255 in).

    Example:
        >>> model = kerasnets.IGCV3(weights=None, alpha=0.5)
        >>> model = kerasnets.IGCV3(weights="imagenet")
        >>> x = kerasnets.data.load_image(kerasnets.imagenet.sample_image(), "IGCV3")
        >>> kerasnets.imagenet.decode_predictions(model.predict(x[None]))
    """
    builder = "IGCV3"
    key = f"IGCV3_{float(alpha)}"
    if isinstance(weights, str) and weights == "imagenet" and float(alpha) != 1.0:
        raise ValueError(
            f"IGCV3: pretrained 'imagenet' weights exist for alpha=1.0 only; "
            f"received alpha={alpha}. Use weights=None or a path."
        )
    check_arguments(builder, weights=weights, include_top=include_top,
                    classes=classes, pooling=pooling,
                    classifier_activation=classifier_activation)
    if alpha <= 0:
        raise ValueError(f"IGCV3: alpha must be positive; received alpha={alpha}.")
    img_input = image_input(input_tensor, input_shape, default_size=224, min_size=32,
                            include_top=include_top, weights=weights)
    x = preprocessing_layer(img_input, builder=builder, weights=weights,
                            include_preprocessing=include_preprocessing)
    x = conv_bn(x, even_width(FIRST_FILTERS, alpha), 3, "first_3x3_conv",
                strides=2, activation="relu6")
    for index, (t, c, n, s) in enumerate(SEQUENCES):
        filters = even_width(c, alpha)
        for block in range(n):
            x = igcv3_block(x, filters, t, s if block == 0 else 1,
                            f"seq{index}_block{block}", shortcut=block > 0)
    last = LAST_FILTERS if alpha <= 1.0 else even_width(int(LAST_FILTERS * alpha), 1.0)
    x = conv_bn(x, last, 1, "last_1x1_conv", activation="relu6")
    x = classifier_top(x, include_top=include_top, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation)
    name = name or f"igcv3_{float(alpha):g}"
    return finish_model(img_input, x, input_tensor=input_tensor, name=name,
                        builder=builder, weights=weights, include_top=include_top,
                        weights_key=key)


# -------------------------------------------------------- checkpoints

_BLOCK = re.compile(r"seq(\d+)_block(\d+)_(exp|depthwise|linear)_(conv|bn)$")


def mxnet_layer_map(model):
    """Keras layer -> MXNet prefix (the released igcv3-symbol.json names)."""
    suffix = {"conv": "conv2d", "bn": "batchnorm"}
    mapping = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        name = layer.name
        match = _BLOCK.match(name)
        if match:
            seq, block, part, kind = match.groups()
            mapping[name] = f"seq-{seq}-block{block}-{part}-{suffix[kind]}"
        elif name == "predictions":
            mapping[name] = "fc"
        else:  # first_3x3_conv_conv -> first-3x3-conv-conv2d
            prefix, kind = name.rsplit("_", 1)
            mapping[name] = prefix.replace("_", "-") + "-" + suffix[kind]
    return mapping, ("fc",)


def pytorchcv_layer_map(model):
    """Keras layer -> module prefix of pytorchcv's ``igcv3_w*`` models
    (features.init_block, features.stage{i}.unit{j}.conv{1,2,3},
    features.final_block, output). pytorchcv starts a stage at every
    stride-2 sequence."""
    stage_unit = {}
    stage, unit = 0, 0
    for index, (_, _, n, s) in enumerate(SEQUENCES):
        if index == 0 or s == 2:
            stage, unit = stage + 1, 0
        for block in range(n):
            unit += 1
            stage_unit[(index, block)] = (stage, unit)
    parts = {"exp": "conv1", "depthwise": "conv2", "linear": "conv3"}
    mapping = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        name = layer.name
        match = _BLOCK.match(name)
        if match:
            seq, block, part, kind = match.groups()
            stage, unit = stage_unit[(int(seq), int(block))]
            mapping[name] = f"features.stage{stage}.unit{unit}.{parts[part]}.{kind}"
        elif name == "predictions":
            mapping[name] = "output"
        else:
            prefix, kind = name.rsplit("_", 1)
            block = {"first_3x3_conv": "init_block", "last_1x1_conv": "final_block"}[prefix]
            mapping[name] = f"features.{block}.{kind}"
    return mapping, ("output",)


register_mxnet_converter("IGCV3", mxnet_layer_map)
weights_lib.register_converter("IGCV3", pytorchcv_layer_map)

# ---------------------------------------------------------- pre/post


def preprocess_input(x, data_format=None):
    """Preprocessing of the released IGCV3 weights: RGB in [0, 255] minus
    (123.68, 116.779, 103.939) (the authors' MXNet data iterator; no std)."""
    import numpy as np

    channels_first = (data_format or keras.config.image_data_format()) == "channels_first"
    mean = np.array(IGCV3_MEAN, dtype="float32").reshape((3, 1, 1) if channels_first else (3,))
    if isinstance(x, np.ndarray):
        return x.astype("float32") - mean
    return keras.ops.convert_to_tensor(x, dtype="float32") - mean
