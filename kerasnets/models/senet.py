"""SENet: Squeeze-and-Excitation Networks.

Reference:
    Jie Hu, Li Shen, Gang Sun, "Squeeze-and-Excitation Networks", CVPR 2018,
    https://arxiv.org/abs/1709.01507 (journal version: TPAMI 2019).

A squeeze-and-excitation (SE) block recalibrates the channels of a feature
map U (H x W x C) from its global context (paper Sec. 3, Fig. 1):

    z = mean_hw(U)                                 squeeze: C numbers
    s = sigmoid(W2 relu(W1 z))                     excitation, W1: C -> C/r
    out = U * s                                    scale each channel

with reduction ratio r = 16. Both fully connected layers carry biases (the
released Caffe models; 1x1 convolutions on the pooled map here and in the
converted PyTorch models). ``kerasnets.layers.SEBlock`` is that block.

In an SE-ResNet module (Fig. 3) the block rescales the residual branch after
its last BN, before the identity (or projection) shortcut is added. The
networks here are the ones the authors released (converted from Caffe by
Cadene; timm's ``legacy_*`` models), which differ from torchvision's ResNets:

- SE-ResNet bottleneck: 1x1 -> 3x3 -> 1x1 (x4), the stride on the first 1x1
  (Caffe style); SE-ResNet-18/34 use basic blocks (two 3x3, stride on the
  first; their released weights, trained by timm, also apply a ReLU after
  the second BN, before the SE block).
- SE-ResNeXt bottleneck: 1x1 -> grouped 3x3 (32 groups, the stride) -> 1x1,
  width floor(planes * 4 / 64) * 32 = 2 x planes.
- SENet-154: stem of three 3x3 convolutions (64, 64, 128 channels, the first
  stride 2), bottleneck 1x1 (2 x planes) -> grouped 3x3 (64 groups, 4 x
  planes, the stride) -> 1x1 (4 x planes), and a 3x3 stride-2 projection
  shortcut in stages 3-5; dropout 0.2 before the classifier.
- Stem max pool 3x3/2 with Caffe's ceil mode and no padding; BN epsilon
  1e-5; classifier ``last_linear`` after global average pooling.

PyTorch padding is reproduced exactly at every input size: stride-2
convolutions with k > 1 are ``ZeroPadding2D(k // 2)`` + "valid"; the ceil-mode
pool is a zero row/column at the bottom/right + "valid" (exact because it
follows a ReLU: on even sizes the window that overhangs the border sees the
zero instead of nothing, on odd sizes no window reaches the padded row).

Parameters (trainable = timm's count) and multiply-adds at 224x224
(computed: convolutions, the classifier, and each SE block's two FC layers
plus one multiply per scaled element):

| builder            | block      | stages       | params      | MACs    | top-1 |
|--------------------|------------|--------------|-------------|---------|-------|
| SEResNet18         | basic      | 2, 2, 2, 2   | 11,778,592  | 1.81 G  |       |
| SEResNet34         | basic      | 3, 4, 6, 3   | 21,958,868  | 3.67 G  |       |
| SEResNet50         | bottleneck | 3, 4, 6, 3   | 28,088,024  | 3.87 G  | 77.6  |
| SEResNet101        | bottleneck | 3, 4, 23, 3  | 49,326,872  | 7.58 G  | 78.4  |
| SEResNet152        | bottleneck | 3, 8, 36, 3  | 66,821,848  | 11.30 G | 78.7  |
| SEResNeXt26_32x4d  | resnext    | 2, 2, 2, 2   | 16,790,280  | 2.48 G  |       |
| SEResNeXt50_32x4d  | resnext    | 3, 4, 6, 3   | 27,559,896  | 4.24 G  | 79.1  |
| SEResNeXt101_32x4d | resnext    | 3, 4, 23, 3  | 48,955,416  | 7.98 G  | 80.3  |
| SENet154           | senet154   | 3, 8, 36, 3  | 115,088,984 | 20.70 G | 81.3  |

(paper Table 2: SE-ResNet-50/101/152 3.87 / 7.60 / 11.32 GFLOPs, SE-ResNeXt-50/
101 4.25 / 8.00, SENet-154 20.7; top-1: timm's evaluation of the released
weights, which are the "imagenet" tag here.)

SE in other networks (paper Fig. 2, Table 2/3): ``SEInceptionV3`` adds an SE
block to each Inception module of keras.applications' InceptionV3;
``SEMobileNet`` adds one after each depthwise separable block of MobileNet
v1 (paper: 4.7 M parameters, 572 M MACs, top-1 74.7).

Adding SE to your own model: an ``SEBlock`` goes on any 4-D feature map;
in a residual network put it on the residual branch before the addition::

    import keras
    from kerasnets.layers import SEBlock

    def my_se_block(x, filters, name):
        y = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_1_conv")(x)
        y = keras.layers.BatchNormalization(name=f"{name}_1_bn")(y)
        y = keras.layers.ReLU(name=f"{name}_1_relu")(y)
        y = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(y)
        y = keras.layers.BatchNormalization(name=f"{name}_2_bn")(y)
        y = SEBlock(ratio=16, name=f"{name}_se")(y)  # squeeze-and-excitation
        y = keras.layers.Add(name=f"{name}_add")([x, y])
        return keras.layers.ReLU(name=f"{name}_out")(y)

    inputs = keras.Input((32, 32, 64))
    outputs = my_se_block(inputs, 64, "block1")
    model = keras.Model(inputs, outputs)

(for a plain CNN, ``x = SEBlock(16)(x)`` after a stage or an Inception-style
module's concatenation is the whole recipe.)
"""

import re

import keras
from keras import layers

from kerasnets import weights as weights_lib
from kerasnets.imagenet import decode_predictions  # noqa: F401  (offline, bundled index)
from kerasnets.layers import BatchNormalization, GroupConv2D, SEBlock
from kerasnets.models import mobilenet
from kerasnets.models.common import (
    check_arguments,
    classifier_top,
    finish_model,
    image_input,
    preprocessing_layer,
)
from kerasnets.weights import WeightsEntry

# --------------------------------------------------------------- constants

BN_EPSILON = 1e-5  # Caffe / PyTorch default, as in the released models
SE_RATIO = 16  # the paper's reduction ratio r
MIN_SIZE = 32  # 1x1 maps after the stem and three stride-2 stages
DEFAULT_SIZE = 224
STAGE_PLANES = (64, 128, 256, 512)  # "planes" of stages conv2 .. conv5
BLOCKS = ("basic", "bottleneck", "resnext", "senet154")
STEMS = ("resnet", "senet154")
EXPANSION = {"basic": 1, "bottleneck": 4, "resnext": 4, "senet154": 4}

# The released networks (paper Table 2 / timm's legacy_* models).
VARIANTS = {
    "SEResNet18": dict(block="basic", depths=(2, 2, 2, 2)),
    "SEResNet34": dict(block="basic", depths=(3, 4, 6, 3)),
    "SEResNet50": dict(block="bottleneck", depths=(3, 4, 6, 3)),
    "SEResNet101": dict(block="bottleneck", depths=(3, 4, 23, 3)),
    "SEResNet152": dict(block="bottleneck", depths=(3, 8, 36, 3)),
    "SEResNeXt26_32x4d": dict(
        block="resnext", depths=(2, 2, 2, 2), groups=32, width_per_group=4
    ),
    "SEResNeXt50_32x4d": dict(
        block="resnext", depths=(3, 4, 6, 3), groups=32, width_per_group=4
    ),
    "SEResNeXt101_32x4d": dict(
        block="resnext", depths=(3, 4, 23, 3), groups=32, width_per_group=4
    ),
    "SENet154": dict(
        block="senet154",
        depths=(3, 8, 36, 3),
        groups=64,
        width_per_group=4,
        stem="senet154",
        downsample_kernel=3,
    ),
}
_GENERIC_DEFAULTS = dict(
    groups=1, width_per_group=64, se_ratio=SE_RATIO, stem="resnet", downsample_kernel=1
)

# ---------------------------------------------------------- pretrained files

# timm's legacy releases (GitHub release assets, torch pickles without a
# published hash): the authors' Caffe models as converted by Cadene
# (SE-ResNet-50/101/152, SE-ResNeXt-50/101, SENet-154) and timm's own
# trainings of SE-ResNet-18/34 and SE-ResNeXt-26. ImageNet mean/std, crop
# 0.875, resize interpolation as listed.
_TIMM_RELEASES = "https://github.com/rwightman/pytorch-image-models/releases/download/"
_PRETRAINED = {
    # builder: (timm model, file under _TIMM_RELEASES, interpolation, top-1)
    "SEResNet18": (
        "legacy_seresnet18", "v0.1-weights/seresnet18-4bb0ce65.pth", "bicubic", None
    ),
    "SEResNet34": (
        "legacy_seresnet34", "v0.1-weights/seresnet34-a4004e63.pth", "bilinear", None
    ),
    "SEResNet50": (
        "legacy_seresnet50", "v0.1-cadene/se_resnet50-ce0d4300.pth", "bilinear", 77.6
    ),
    "SEResNet101": (
        "legacy_seresnet101", "v0.1-cadene/se_resnet101-7e38fcc6.pth", "bilinear", 78.4
    ),
    "SEResNet152": (
        "legacy_seresnet152", "v0.1-cadene/se_resnet152-d17c99b7.pth", "bilinear", 78.7
    ),
    "SEResNeXt26_32x4d": (
        "legacy_seresnext26_32x4d",
        "v0.1-weights/seresnext26_32x4d-65ebdb501.pth",
        "bicubic",
        None,
    ),
    "SEResNeXt50_32x4d": (
        "legacy_seresnext50_32x4d",
        "v0.1-weights/legacy_se_resnext50_32x4d-f3651bad.pth",
        "bilinear",
        79.1,
    ),
    "SEResNeXt101_32x4d": (
        "legacy_seresnext101_32x4d",
        "v0.1-weights/legacy_se_resnext101_32x4d-37725eac.pth",
        "bilinear",
        80.3,
    ),
    "SENet154": (
        "legacy_senet154", "v0.1-weights/legacy_senet154-e9eb9fe6.pth", "bilinear", 81.3
    ),
}
for _builder, (_timm_name, _file, _interpolation, _top1) in _PRETRAINED.items():
    weights_lib.register(
        _builder,
        "imagenet",
        WeightsEntry(
            url=_TIMM_RELEASES + _file,
            format="pth",
            file_hash=None,
            preprocessing="torch",
            interpolation=_interpolation,
            source=f"timm ({_timm_name}.in1k)",
            license="apache-2.0",
            top1=_top1,
        ),
        default=True,
    )

# keras.applications' InceptionV3 file: ``SEInceptionV3(se_ratio=None)`` is
# exactly that network and accepts its weights.
_INCEPTION_BASE = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
    "inception_v3_weights_tf_dim_ordering_tf_kernels"
)
weights_lib.register(
    "InceptionV3",
    "imagenet",
    WeightsEntry(
        url=f"{_INCEPTION_BASE}.h5",
        file_hash="9a0d58056eeedaa3f26cb7ebd46da564",
        notop_url=f"{_INCEPTION_BASE}_notop.h5",
        notop_hash="bcbd6486424b2319ff4ef7d526e38f63",
        format="keras_h5",
        input_size=299,
        preprocessing="tf",
        source="keras.applications",
        license="apache-2.0",
        top1=77.9,
    ),
    default=True,
)


# ------------------------------------------------------------------ units


def conv_bn(x, filters, kernel_size, name, strides=1, groups=1, activation=True):
    """Conv (no bias) -> BN (eps 1e-5) [-> ReLU] with PyTorch's padding.

    Names ``{name}_pad`` (stride-2 convolutions with k > 1: symmetric k // 2
    zero padding, then "valid"), ``{name}_conv``, ``{name}_bn``,
    ``{name}_relu``. Grouped convolutions use ``GroupConv2D``.
    """
    padding = "same"
    if strides > 1:
        padding = "valid"
        if kernel_size > 1:
            x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
    conv = GroupConv2D if groups > 1 else layers.Conv2D
    extra = {"groups": groups} if groups > 1 else {}
    x = conv(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        name=f"{name}_conv",
        **extra,
    )(x)
    x = BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    if activation:
        x = layers.Activation("relu", name=f"{name}_relu")(x)
    return x


def squeeze_excitation(x, ratio, name):
    """The SE block (Fig. 1), named ``{name}_se``; identity when ``ratio`` is
    None."""
    if not ratio:
        return x
    return SEBlock(ratio=ratio, name=f"{name}_se")(x)


def block_width(planes, groups, width_per_group):
    """Channels of a block's 3x3 convolution: floor(planes * d / 64) * C for
    cardinality C = ``groups`` and group width d = ``width_per_group``
    (ResNeXt); ``planes`` for the SE-ResNets (C = 1, d = 64)."""
    return (planes * width_per_group // 64) * groups


def basic_branch(x, planes, strides, groups, width_per_group, name):
    """SE-ResNet-18/34 residual branch: 3x3 (stride) -> 3x3 (``groups``).

    As in the released SE-ResNet-18/34 (timm's ``SEResNetBlock``, whose
    weights need it), the second BN is followed by a ReLU before the SE
    block; the bottleneck branches end at their last BN.
    """
    width = block_width(planes, groups, width_per_group)
    x = conv_bn(x, width, 3, f"{name}_1", strides=strides)
    return conv_bn(x, planes, 3, f"{name}_2", groups=groups)


def bottleneck_branch(x, planes, strides, groups, width_per_group, name):
    """SE-ResNet bottleneck branch, Caffe style: 1x1 (stride) -> 3x3 -> 1x1."""
    width = block_width(planes, groups, width_per_group)
    x = conv_bn(x, width, 1, f"{name}_1", strides=strides)
    x = conv_bn(x, width, 3, f"{name}_2", groups=groups)
    return conv_bn(x, planes * 4, 1, f"{name}_3", activation=False)


def resnext_branch(x, planes, strides, groups, width_per_group, name):
    """SE-ResNeXt bottleneck branch: 1x1 -> grouped 3x3 (stride) -> 1x1."""
    width = block_width(planes, groups, width_per_group)
    x = conv_bn(x, width, 1, f"{name}_1")
    x = conv_bn(x, width, 3, f"{name}_2", strides=strides, groups=groups)
    return conv_bn(x, planes * 4, 1, f"{name}_3", activation=False)


def senet154_branch(x, planes, strides, groups, width_per_group, name):
    """SENet-154 bottleneck branch: 1x1 (width / 2) -> grouped 3x3 (width,
    stride) -> 1x1 (4 x planes); width = 4 x planes with 64 groups of 4."""
    width = block_width(planes, groups, width_per_group)
    x = conv_bn(x, width // 2, 1, f"{name}_1")
    x = conv_bn(x, width, 3, f"{name}_2", strides=strides, groups=groups)
    return conv_bn(x, planes * 4, 1, f"{name}_3", activation=False)


RESIDUAL_BRANCHES = {
    "basic": basic_branch,
    "bottleneck": bottleneck_branch,
    "resnext": resnext_branch,
    "senet154": senet154_branch,
}


def se_residual_block(
    x,
    planes,
    name,
    *,
    block,
    strides=1,
    groups=1,
    width_per_group=64,
    se_ratio=SE_RATIO,
    shortcut_kernel=1,
):
    """SE-ResNet module (paper Fig. 3): ReLU(SE(branch(x)) + shortcut(x)).

    The shortcut is the identity, or a projection conv + BN (``{name}_0``,
    kernel ``shortcut_kernel``) when the stride or the channels change.
    Layers: ``{name}_0_*`` (projection), ``{name}_{1,2,3}_*`` (branch),
    ``{name}_se``, ``{name}_add``, ``{name}_out``.
    """
    out_channels = planes * EXPANSION[block]
    if strides != 1 or x.shape[-1] != out_channels:
        shortcut = conv_bn(
            x,
            out_channels,
            shortcut_kernel,
            f"{name}_0",
            strides=strides,
            activation=False,
        )
    else:
        shortcut = x
    y = RESIDUAL_BRANCHES[block](x, planes, strides, groups, width_per_group, name)
    y = squeeze_excitation(y, se_ratio, name)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.Activation("relu", name=f"{name}_out")(y)


def se_stage(x, planes, num_blocks, name, *, strides, shortcut_kernel, **block_args):
    """``num_blocks`` SE residual blocks ``{name}_block1 ...``; the first one
    strides and projects."""
    for i in range(num_blocks):
        x = se_residual_block(
            x,
            planes,
            f"{name}_block{i + 1}",
            strides=strides if i == 0 else 1,
            shortcut_kernel=shortcut_kernel if i == 0 else 1,
            **block_args,
        )
    return x


def ceil_mode_max_pool(x, name):
    """PyTorch ``MaxPool2d(3, 2, ceil_mode=True)`` (no padding) after a ReLU:
    one zero row/column at the bottom/right, then a "valid" pool. Output
    ceil((n - 3) / 2) + 1 for every n, with identical values."""
    x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name=f"{name}_pool")(x)


def senet_stem(x, kind):
    """``"resnet"``: 7x7/2 conv, 64 channels (``conv1``). ``"senet154"``:
    3x3/2 (64), 3x3 (64), 3x3 (128) (``conv1_1`` .. ``conv1_3``). Both are
    followed by the ceil-mode 3x3/2 max pool (``pool1``)."""
    if kind == "resnet":
        x = conv_bn(x, 64, 7, "conv1", strides=2)
    else:
        x = conv_bn(x, 64, 3, "conv1_1", strides=2)
        x = conv_bn(x, 64, 3, "conv1_2")
        x = conv_bn(x, 128, 3, "conv1_3")
    return ceil_mode_max_pool(x, "pool1")


# -------------------------------------------------------------- validation


def _valid_ratio(se_ratio):
    """None (no SE) or a positive number."""
    return se_ratio is None or (
        isinstance(se_ratio, (int, float)) and not isinstance(se_ratio, bool) and se_ratio > 0
    )


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_senet_options(
    block, depths, groups, width_per_group, se_ratio, stem_kind, downsample_kernel,
    dropout_rate,
):
    if block not in BLOCKS:
        raise ValueError(
            f"`block` must be one of {BLOCKS}. Received: block={block!r}"
        )
    if (
        isinstance(depths, (int, str))
        or not len(depths)
        or not all(_positive_int(n) for n in depths)
    ):
        raise ValueError(
            "`depths` must be a non-empty list of positive block counts per "
            f"stage, e.g. (3, 4, 6, 3). Received: depths={depths!r}"
        )
    if len(depths) > 4:
        raise ValueError(
            "SENet has at most 4 stages (planes 64, 128, 256, 512). "
            f"Received {len(depths)}: depths={depths!r}"
        )
    for arg, value in (("groups", groups), ("width_per_group", width_per_group)):
        if not _positive_int(value):
            raise ValueError(
                f"`{arg}` must be a positive integer. Received: {arg}={value!r}"
            )
    if not _valid_ratio(se_ratio):
        raise ValueError(
            "`se_ratio` must be None (no SE blocks) or a positive reduction "
            f"ratio (the paper's 16). Received: se_ratio={se_ratio!r}"
        )
    if stem_kind not in STEMS:
        raise ValueError(f"`stem` must be one of {STEMS}. Received: stem={stem_kind!r}")
    if not _positive_int(downsample_kernel) or downsample_kernel % 2 == 0:
        raise ValueError(
            "`downsample_kernel` must be an odd positive integer (1: 1x1 "
            f"projection, 3: SENet-154). Received: {downsample_kernel!r}"
        )
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(
            f"`dropout_rate` must be in [0, 1). Received: dropout_rate={dropout_rate!r}"
        )
    # Grouped convolutions split input and output channels into equal parts.
    for stage, planes in enumerate(STAGE_PLANES[: len(depths)], start=2):
        width = block_width(planes, groups, width_per_group)
        if block == "basic":
            convs = [(width, planes)]  # the grouped conv is the second 3x3
        elif block == "senet154":
            convs = [(width // 2, width)]
        else:
            convs = [(width, width)]
        for channels_in, channels_out in convs:
            for role, channels in (("input", channels_in), ("output", channels_out)):
                if channels % groups:
                    raise ValueError(
                        f"groups={groups} does not divide the {channels} {role} "
                        f"channels of the grouped 3x3 convolution of stage "
                        f"conv{stage} ({block!r} block, planes {planes}, "
                        f"width_per_group={width_per_group}): a grouped "
                        "convolution splits its input and output channels "
                        "into `groups` equal parts."
                    )


def _variant_of(config):
    """The named variant a generic configuration equals, if any."""
    for builder, variant in VARIANTS.items():
        expected = {**_GENERIC_DEFAULTS, **variant}
        if all(
            (tuple(config[k]) if k == "depths" else config[k]) == v
            for k, v in expected.items()
        ):
            return builder
    return None


# ----------------------------------------------------------------- builder


def SENet(
    block,
    depths,
    groups=1,
    width_per_group=64,
    se_ratio=SE_RATIO,
    stem="resnet",
    downsample_kernel=1,
    dropout_rate=0.0,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=False,
    name="senet",
):
    """Instantiates a Squeeze-and-Excitation network (Hu et al., CVPR 2018).

    Reference: "Squeeze-and-Excitation Networks",
    https://arxiv.org/abs/1709.01507 (Fig. 3, Table 1).

    Stem, ceil-mode 3x3/2 max pool, ``len(depths)`` stages ``conv2 ..`` of SE
    residual blocks with planes 64, 128, 256, 512 (stride 2 from the second
    stage on), global average pooling, dropout and the classifier. The named
    variants (``SEResNet50`` ...) are calls of this builder; a configuration
    equal to one of them accepts its pretrained tags.

    Args:
        block: the residual branch of every block:
            ``"basic"``: 3x3 (stride) -> 3x3 -> ReLU, expansion 1 (SE-ResNet-
            18/34 as timm released them, with a ReLU before the SE block);
            ``"bottleneck"``: 1x1 (stride) -> 3x3 -> 1x1 (4 x planes), the
            Caffe ResNet used by SE-ResNet-50/101/152;
            ``"resnext"``: 1x1 -> grouped 3x3 (stride) -> 1x1 (4 x planes),
            SE-ResNeXt;
            ``"senet154"``: 1x1 (width / 2) -> grouped 3x3 (width, stride) ->
            1x1 (4 x planes), SENet-154.
        depths: blocks per stage, e.g. ``(3, 4, 6, 3)`` (1 to 4 stages).
        groups: cardinality C of the 3x3 convolutions (32 for SE-ResNeXt, 64
            for SENet-154; for basic blocks, of the second 3x3).
        width_per_group: channels per group d; the 3x3 width is
            floor(planes * d / 64) * C (64 with C = 1: the plain ResNet width;
            SE-ResNeXt 32x4d and SENet-154 use 4).
        se_ratio: SE reduction ratio r (squeeze channels C // r); None
            builds the network without SE blocks (the ResNet baseline).
        stem: ``"resnet"`` (7x7/2 conv, 64 channels) or ``"senet154"``
            (three 3x3 convs: 64/2, 64, 128).
        downsample_kernel: kernel of the projection shortcuts of stages 3-5
            (1, or 3 for SENet-154; stage 2 always projects with a 1x1).
        dropout_rate: dropout before the classifier (0.2 for SENet-154).
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name: as in keras.applications. ``weights``
            is None, a pretrained tag of the equal named variant, or a file:
            ``.weights.h5``, or a timm ``legacy_*`` state dict (``.safetensors``,
            ``.pth``, ``.bin``). Inputs at least 32x32 (224 by default).
        include_preprocessing: bake the weights' normalisation into the
            model (raw RGB 0-255 in).

    Returns:
        A ``keras.Model``.

    Raises:
        ValueError: invalid options, e.g. ``groups`` that do not divide the
            channels of a grouped convolution.

    Example (SE-ResNeXt-50 32x4d with reduction ratio 8):
        >>> model = kerasnets.SENet("resnext", (3, 4, 6, 3), groups=32,
        ...                         width_per_group=4, se_ratio=8)
        >>> model.output_shape
        (None, 1000)
    """
    _check_senet_options(
        block, depths, groups, width_per_group, se_ratio, stem, downsample_kernel,
        dropout_rate,
    )
    config = dict(
        block=block,
        depths=depths,
        groups=groups,
        width_per_group=width_per_group,
        se_ratio=se_ratio,
        stem=stem,
        downsample_kernel=downsample_kernel,
    )
    builder = _variant_of(config) or "SENet"
    check_arguments(
        builder,
        weights=weights,
        include_top=include_top,
        classes=classes,
        pooling=pooling,
        classifier_activation=classifier_activation,
    )
    img_input = image_input(
        input_tensor,
        input_shape,
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        include_top=include_top,
        weights=weights,
        require_flatten=True,
    )
    x = preprocessing_layer(img_input, builder=builder, weights=weights,
                            include_preprocessing=include_preprocessing)
    x = senet_stem(x, stem)
    for i, num_blocks in enumerate(depths):
        x = se_stage(
            x,
            STAGE_PLANES[i],
            num_blocks,
            f"conv{i + 2}",
            strides=1 if i == 0 else 2,
            shortcut_kernel=1 if i == 0 else downsample_kernel,
            block=block,
            groups=groups,
            width_per_group=width_per_group,
            se_ratio=se_ratio,
        )
    x = classifier_top(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        dropout_rate=dropout_rate,
    )
    return finish_model(
        img_input,
        x,
        input_tensor=input_tensor,
        name=name,
        builder=builder,
        weights=weights,
        include_top=include_top,
    )


def _variant(builder, **kwargs):
    return SENet(**VARIANTS[builder], **kwargs)


def SEResNet18(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    dropout_rate=0.0,
    include_preprocessing=False,
    name="seresnet18",
):
    return _variant("SEResNet18", **locals())


def SEResNet34(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    dropout_rate=0.0,
    include_preprocessing=False,
    name="seresnet34",
):
    return _variant("SEResNet34", **locals())


def SEResNet50(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    dropout_rate=0.0,
    include_preprocessing=False,
    name="seresnet50",
):
    return _variant("SEResNet50", **locals())


def SEResNet101(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    dropout_rate=0.0,
    include_preprocessing=False,
    name="seresnet101",
):
    return _variant("SEResNet101", **locals())


def SEResNet152(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    dropout_rate=0.0,
    include_preprocessing=False,
    name="seresnet152",
):
    return _variant("SEResNet152", **locals())


def SEResNeXt26_32x4d(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    dropout_rate=0.0,
    include_preprocessing=False,
    name="seresnext26_32x4d",
):
    return _variant("SEResNeXt26_32x4d", **locals())


def SEResNeXt50_32x4d(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    dropout_rate=0.0,
    include_preprocessing=False,
    name="seresnext50_32x4d",
):
    return _variant("SEResNeXt50_32x4d", **locals())


def SEResNeXt101_32x4d(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    dropout_rate=0.0,
    include_preprocessing=False,
    name="seresnext101_32x4d",
):
    return _variant("SEResNeXt101_32x4d", **locals())


def SENet154(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    dropout_rate=0.2,
    include_preprocessing=False,
    name="senet154",
):
    return _variant("SENet154", **locals())


_VARIANT_ARGS = """

    Args:
        include_top: whether to include the classifier (global average
            pooling, dropout, Dense "predictions" = timm's ``last_linear``).
        weights: None (random initialization), "imagenet" (timm's
            ``{timm}.in1k``: a ``.pth`` release, read with torch's
            weights-only loader, so torch must be installed), or the path to
            a weights file: ``.weights.h5``, or a timm ``{timm}`` state dict
            (``.safetensors``, ``.pth``, ``.bin``).
        input_tensor: optional Keras tensor to use as image input.
        input_shape: optional (height, width, 3), both at least 32; defaults
            to (224, 224, 3) with the top, (None, None, 3) without.
        pooling: None, "avg" or "max": global pooling of a headless model.
        classes: number of classes (1000 with pretrained weights and a top).
        classifier_activation: activation of "predictions" (None or
            "softmax" with pretrained weights).
        dropout_rate: dropout before the classifier (training only).
        include_preprocessing: bake the weights' normalisation into the
            model (raw RGB 0-255 in).
        name: the model's name.

    Returns:
        A ``keras.Model``. Inputs are preprocessed with
        ``kerasnets.models.senet.preprocess_input`` (ImageNet mean/std).

    Example:
        >>> model = kerasnets.{builder}(weights="imagenet")
        >>> x = kerasnets.data.load_image(kerasnets.imagenet.sample_image(), "{builder}")
        >>> kerasnets.imagenet.decode_predictions(model.predict(x[None]))
    """


def _doc(builder, title, structure, params, macs, top1):
    timm_name = _PRETRAINED[builder][0]
    accuracy = (
        f"; released weights: top-1 {top1} (timm)" if top1 else ""
    )
    return (
        f"Instantiates {title} ({structure}).\n\n"
        "    Hu et al., \"Squeeze-and-Excitation Networks\", CVPR 2018\n"
        "    (arXiv:1709.01507). "
        f"{params} trainable parameters, {macs} MACs at 224x224{accuracy}."
        + _VARIANT_ARGS.format(timm=timm_name, builder=builder)
    )


SEResNet18.__doc__ = _doc(
    "SEResNet18", "SE-ResNet-18", "basic blocks 2-2-2-2", "11,778,592", "1.81 G", None
)
SEResNet34.__doc__ = _doc(
    "SEResNet34", "SE-ResNet-34", "basic blocks 3-4-6-3", "21,958,868", "3.67 G", None
)
SEResNet50.__doc__ = _doc(
    "SEResNet50",
    "SE-ResNet-50",
    "bottleneck blocks 3-4-6-3, stride on the first 1x1",
    "28,088,024",
    "3.87 G",
    77.6,
)
SEResNet101.__doc__ = _doc(
    "SEResNet101",
    "SE-ResNet-101",
    "bottleneck blocks 3-4-23-3, stride on the first 1x1",
    "49,326,872",
    "7.58 G",
    78.4,
)
SEResNet152.__doc__ = _doc(
    "SEResNet152",
    "SE-ResNet-152",
    "bottleneck blocks 3-8-36-3, stride on the first 1x1",
    "66,821,848",
    "11.30 G",
    78.7,
)
SEResNeXt26_32x4d.__doc__ = _doc(
    "SEResNeXt26_32x4d",
    "SE-ResNeXt-26 (32x4d)",
    "ResNeXt blocks 2-2-2-2, 32 groups of 4 channels",
    "16,790,280",
    "2.48 G",
    None,
)
SEResNeXt50_32x4d.__doc__ = _doc(
    "SEResNeXt50_32x4d",
    "SE-ResNeXt-50 (32x4d)",
    "ResNeXt blocks 3-4-6-3, 32 groups of 4 channels",
    "27,559,896",
    "4.24 G",
    79.1,
)
SEResNeXt101_32x4d.__doc__ = _doc(
    "SEResNeXt101_32x4d",
    "SE-ResNeXt-101 (32x4d)",
    "ResNeXt blocks 3-4-23-3, 32 groups of 4 channels",
    "48,955,416",
    "7.98 G",
    80.3,
)
SENet154.__doc__ = _doc(
    "SENet154",
    "SENet-154",
    "3x3 stem 64-64-128, blocks 3-8-36-3 with 64 groups, 3x3 projection "
    "shortcuts, dropout 0.2",
    "115,088,984",
    "20.70 G",
    81.3,
)


# ------------------------------------------------------ SE in other networks

# keras.applications' InceptionV3, as a table. Each module is a list of
# branches; a branch is a list of steps: (filters, rows, cols[, strides,
# padding]) for conv + BN (no scale) + ReLU, ("avg",) for a 3x3/1 "same"
# average pool, ("max",) for a 3x3/2 "valid" max pool, and ("split", a, b)
# for two parallel convs whose outputs are concatenated (mixed9/10).
def _module_35x35(pool_filters):  # mixed0-2
    return [
        [(64, 1, 1)],
        [(48, 1, 1), (64, 5, 5)],
        [(64, 1, 1), (96, 3, 3), (96, 3, 3)],
        [("avg",), (pool_filters, 1, 1)],
    ]


def _module_17x17(channels_7x7):  # mixed4-7
    c = channels_7x7
    return [
        [(192, 1, 1)],
        [(c, 1, 1), (c, 1, 7), (192, 7, 1)],
        [(c, 1, 1), (c, 7, 1), (c, 1, 7), (c, 7, 1), (192, 1, 7)],
        [("avg",), (192, 1, 1)],
    ]


_MODULE_8X8 = [  # mixed9-10
    [(320, 1, 1)],
    [(384, 1, 1), ("split", (384, 1, 3), (384, 3, 1))],
    [(448, 1, 1), (384, 3, 3), ("split", (384, 1, 3), (384, 3, 1))],
    [("avg",), (192, 1, 1)],
]
INCEPTION_V3_MODULES = [
    ("mixed0", _module_35x35(32)),
    ("mixed1", _module_35x35(64)),
    ("mixed2", _module_35x35(64)),
    (
        "mixed3",
        [
            [(384, 3, 3, 2, "valid")],
            [(64, 1, 1), (96, 3, 3), (96, 3, 3, 2, "valid")],
            [("max",)],
        ],
    ),
    ("mixed4", _module_17x17(128)),
    ("mixed5", _module_17x17(160)),
    ("mixed6", _module_17x17(160)),
    ("mixed7", _module_17x17(192)),
    (
        "mixed8",
        [
            [(192, 1, 1), (320, 3, 3, 2, "valid")],
            [(192, 1, 1), (192, 1, 7), (192, 7, 1), (192, 3, 3, 2, "valid")],
            [("max",)],
        ],
    ),
    ("mixed9", _MODULE_8X8),
    ("mixed10", _MODULE_8X8),
]
INCEPTION_V3_STEM = [
    (32, 3, 3, 2, "valid"),
    (32, 3, 3, 1, "valid"),
    (64, 3, 3),
    ("max",),
    (80, 1, 1, 1, "valid"),
    (192, 3, 3, 1, "valid"),
    ("max",),
]


class _KerasNames:
    """keras' automatic layer names in a fresh session (``conv2d``,
    ``conv2d_1``, ...), given explicitly so they do not depend on what else
    the session built."""

    def __init__(self):
        self.counts = {}

    def __call__(self, base):
        index = self.counts.get(base, 0)
        self.counts[base] = index + 1
        return base if index == 0 else f"{base}_{index}"


def _inception_step(x, step, names):
    if step[0] == "avg":
        return layers.AveragePooling2D(
            3, strides=1, padding="same", name=names("average_pooling2d")
        )(x)
    if step[0] == "max":
        return layers.MaxPooling2D(3, strides=2, name=names("max_pooling2d"))(x)
    filters, rows, cols, *rest = step
    strides, padding = rest if rest else (1, "same")
    x = layers.Conv2D(
        filters,
        (rows, cols),
        strides=strides,
        padding=padding,
        use_bias=False,
        name=names("conv2d"),
    )(x)
    # keras' InceptionV3: BN without scale, default epsilon (1e-3).
    x = BatchNormalization(scale=False, name=names("batch_normalization"))(x)
    return layers.Activation("relu", name=names("activation"))(x)


def inception_module(x, branches, name, names, split_index):
    """One Inception module: branches run on ``x`` and are concatenated
    (``name``); ``split`` steps end in their own concatenation (mixed9/10:
    ``{name}_{split_index}`` for the first, ``concatenate*`` for the second,
    as keras names them)."""
    outputs = []
    for b, branch in enumerate(branches):
        y = x
        for step in branch:
            if step[0] == "split":
                parts = [_inception_step(y, s, names) for s in step[1:]]
                concat_name = (
                    f"mixed9_{split_index}" if b == 1 else names("concatenate")
                )
                y = layers.Concatenate(axis=-1, name=concat_name)(parts)
            else:
                y = _inception_step(y, step, names)
        outputs.append(y)
    return layers.Concatenate(axis=-1, name=name)(outputs)


def SEInceptionV3(
    se_ratio=SE_RATIO,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=False,
    name=None,
):
    """Instantiates SE-Inception-v3: InceptionV3 with an SE block on the
    output of each Inception module (Hu et al., "Squeeze-and-Excitation
    Networks", CVPR 2018, arXiv:1709.01507, Fig. 2).

    The topology, layer names and layer order are those of
    ``keras.applications.InceptionV3`` (Szegedy et al., CVPR 2016; 23.85 M
    parameters, 5.7 G MACs at 299x299); an ``SEBlock`` named ``mixed{i}_se``
    follows each of the eleven modules ``mixed0`` .. ``mixed10`` (1,661,620
    more parameters at r = 16; 5.72 G MACs). The paper applies this recipe
    to BN-Inception (Table 2: SE-BN-Inception top-1 error 24.23 vs 25.38,
    2.04 vs 2.03 GFLOPs) and Inception-ResNet-v2; here it is applied to
    keras' Inception v3, for which no SE weights are published.

    With ``se_ratio=None`` the model is exactly keras' InceptionV3 (same
    layer names in a fresh session, same order), so keras.applications'
    ``inception_v3_weights_tf_dim_ordering_tf_kernels*.h5`` load by
    topology; ``weights="imagenet"`` then fetches them (preprocess with
    ``keras.applications.inception_v3.preprocess_input``, mode "tf").

    Args:
        se_ratio: SE reduction ratio (16), or None for no SE blocks.
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation: as in keras.applications.InceptionV3
            (default input 299x299, at least 75x75). ``weights``: None, a
            path (keras ``.h5`` / ``.weights.h5``), or "imagenet" with
            ``se_ratio=None``.
        include_preprocessing: bake the weights' normalisation into the
            model (raw RGB 0-255 in).
        name: the model's name (default "se_inception_v3", or
            "inception_v3" without SE).

    Returns:
        A ``keras.Model``.

    Example:
        >>> model = kerasnets.SEInceptionV3()  # random initialization
        >>> model.output_shape
        (None, 1000)
        >>> inception = kerasnets.SEInceptionV3(se_ratio=None, weights="imagenet")
    """
    if not _valid_ratio(se_ratio):
        raise ValueError(
            "`se_ratio` must be None (keras' InceptionV3) or a positive "
            f"reduction ratio. Received: se_ratio={se_ratio!r}"
        )
    builder = "SEInceptionV3" if se_ratio else "InceptionV3"
    check_arguments(
        builder,
        weights=weights,
        include_top=include_top,
        classes=classes,
        pooling=pooling,
        classifier_activation=classifier_activation,
    )
    img_input = image_input(
        input_tensor,
        input_shape,
        default_size=299,
        min_size=75,
        include_top=include_top,
        weights=weights,
        require_flatten=True,
    )
    x = preprocessing_layer(img_input, builder=builder, weights=weights,
                            include_preprocessing=include_preprocessing)
    names = _KerasNames()
    for step in INCEPTION_V3_STEM:
        x = _inception_step(x, step, names)
    split_index = 0
    for module_name, branches in INCEPTION_V3_MODULES:
        x = inception_module(x, branches, module_name, names, split_index)
        if module_name in ("mixed9", "mixed10"):
            split_index += 1
        x = squeeze_excitation(x, se_ratio, module_name)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(
            classes, activation=classifier_activation, name="predictions"
        )(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name=names("global_average_pooling2d"))(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name=names("global_max_pooling2d"))(x)
    return finish_model(
        img_input,
        x,
        input_tensor=input_tensor,
        name=name or ("se_inception_v3" if se_ratio else "inception_v3"),
        builder=builder,
        weights=weights,
        include_top=include_top,
    )


def SEMobileNet(
    alpha=1.0,
    depth_multiplier=1,
    se_ratio=SE_RATIO,
    dropout=1e-3,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=False,
    name=None,
):
    """Instantiates SE-MobileNet: MobileNet v1 with an SE block after each
    depthwise separable block (Hu et al., "Squeeze-and-Excitation Networks",
    CVPR 2018, arXiv:1709.01507, Table 3).

    The blocks, names and numerics are ``kerasnets.models.mobilenet``'s
    (keras.applications' MobileNet: BN eps 1e-3, ReLU6, TF "same" padding,
    1x1 conv classifier ``conv_preds``); an ``SEBlock`` ``conv_se_{i}``
    follows block ``conv_pw_{i}`` (i = 1 .. 13). alpha 1.0 at 224x224:
    4,718,044 trainable parameters, 572 M MACs (paper: 4.7 M, 572 M; top-1
    74.7 vs 71.6 for its MobileNet baseline). No weights are published.

    Args:
        alpha: width multiplier (1.0, 0.75, 0.5, 0.25, or any positive value).
        depth_multiplier: depthwise outputs per input channel.
        se_ratio: SE reduction ratio (16), or None (keras' MobileNet).
        dropout: dropout rate before the classifier.
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation: as in keras.applications (default input
            224x224, at least 32x32). ``weights``: None or a Keras weights
            file.
        include_preprocessing: bake the weights' normalisation into the
            model (raw RGB 0-255 in).
        name: the model's name (default ``se_mobilenet_{alpha:.2f}``).

    Returns:
        A ``keras.Model``.

    Example:
        >>> model = kerasnets.SEMobileNet(alpha=0.5, input_shape=(160, 160, 3))
        >>> model.output_shape
        (None, 1000)
    """
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha <= 0:
        raise ValueError(f"`alpha` must be a positive number. Received: alpha={alpha!r}")
    if not _valid_ratio(se_ratio):
        raise ValueError(
            "`se_ratio` must be None (plain MobileNet) or a positive "
            f"reduction ratio. Received: se_ratio={se_ratio!r}"
        )
    builder = "SEMobileNet"
    check_arguments(
        builder,
        weights=weights,
        include_top=include_top,
        classes=classes,
        pooling=pooling,
        classifier_activation=classifier_activation,
    )
    img_input = image_input(
        input_tensor,
        input_shape,
        default_size=224,
        min_size=mobilenet.MIN_SIZE,
        include_top=include_top,
        weights=weights,
        require_flatten=True,
    )
    x = preprocessing_layer(img_input, builder=builder, weights=weights,
                            include_preprocessing=include_preprocessing)
    x = mobilenet.conv_bn(
        x,
        int(mobilenet.STEM_FILTERS * alpha),
        "conv1",
        kernel_size=3,
        strides=2,
    )
    for block_id, (filters, strides) in enumerate(mobilenet.BLOCKS, start=1):
        x = mobilenet.depthwise_separable_block(
            x,
            filters,
            strides,
            alpha=alpha,
            depth_multiplier=depth_multiplier,
            block_id=block_id,
        )
        if se_ratio:
            x = SEBlock(ratio=se_ratio, name=f"conv_se_{block_id}")(x)
    x = mobilenet.mobilenet_top(x, include_top, pooling, classes, dropout,
                                classifier_activation)
    return finish_model(
        img_input,
        x,
        input_tensor=input_tensor,
        name=name or f"se_mobilenet_{alpha:0.2f}",
        builder=builder,
        weights=weights,
        include_top=include_top,
    )


# ------------------------------------------------------------ timm legacy_*

_TIMM_PATTERNS = [
    (re.compile(r"conv1_(conv|bn)"), lambda m: f"layer0.{m[1]}1"),
    (re.compile(r"conv1_([123])_(conv|bn)"), lambda m: f"layer0.{m[2]}{m[1]}"),
    (
        re.compile(r"conv(\d+)_block(\d+)_0_(conv|bn)"),
        lambda m: f"layer{int(m[1]) - 1}.{int(m[2]) - 1}.downsample."
        + ("0" if m[3] == "conv" else "1"),
    ),
    (
        re.compile(r"conv(\d+)_block(\d+)_([123])_(conv|bn)"),
        lambda m: f"layer{int(m[1]) - 1}.{int(m[2]) - 1}.{m[4]}{m[3]}",
    ),
    (
        re.compile(r"conv(\d+)_block(\d+)_se"),
        lambda m: {
            "reduce": f"layer{int(m[1]) - 1}.{int(m[2]) - 1}.se_module.fc1",
            "expand": f"layer{int(m[1]) - 1}.{int(m[2]) - 1}.se_module.fc2",
        },
    ),
    (re.compile(r"predictions"), lambda m: "last_linear"),
]


def timm_layer_map(model):
    """Keras layer name -> timm ``legacy_*`` module (timm/models/senet.py).

    ``conv1_{conv,bn}`` -> ``layer0.{conv1,bn1}``; SENet-154's
    ``conv1_{i}_{conv,bn}`` -> ``layer0.{conv,bn}{i}``;
    ``conv{s}_block{b}_{k}_{conv,bn}`` -> ``layer{s-1}.{b-1}.{conv,bn}{k}``;
    ``conv{s}_block{b}_0_{conv,bn}`` -> ``layer{s-1}.{b-1}.downsample.{0,1}``;
    ``conv{s}_block{b}_se`` -> ``...se_module.fc1`` (reduce) / ``fc2``
    (expand); ``predictions`` -> ``last_linear``.
    """
    layer_map = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        for pattern, target in _TIMM_PATTERNS:
            match = pattern.fullmatch(layer.name)
            if match:
                layer_map[layer.name] = target(match)
                break
    return layer_map, ("last_linear",)


for _builder in ["SENet", *VARIANTS]:
    weights_lib.register_converter(_builder, timm_layer_map)


# ----------------------------------------------------------- preprocessing


def preprocess_input(x, data_format=None):
    """Scales to [0, 1] and normalises with the ImageNet mean/std, as the
    released SENet weights expect (keras.applications mode "torch")."""
    return keras.applications.imagenet_utils.preprocess_input(
        x, data_format=data_format, mode="torch"
    )


__all__ = [
    "SENet",
    "SENet154",
    "SEInceptionV3",
    "SEMobileNet",
    "SEResNeXt101_32x4d",
    "SEResNeXt26_32x4d",
    "SEResNeXt50_32x4d",
    "SEResNet101",
    "SEResNet152",
    "SEResNet18",
    "SEResNet34",
    "SEResNet50",
    "ceil_mode_max_pool",
    "decode_predictions",
    "inception_module",
    "preprocess_input",
    "se_residual_block",
    "squeeze_excitation",
]
