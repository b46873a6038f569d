"""IGC: Interleaved Group Convolutions (IGC v1) and IGC v2.

References:
    Ting Zhang, Guo-Jun Qi, Bin Xiao, Jingdong Wang, "Interleaved Group
    Convolutions for Deep Neural Networks", ICCV 2017,
    https://arxiv.org/abs/1707.02725 (IGC v1).
    Guotian Xie, Jingdong Wang, Ting Zhang, Jianhuang Lai, Richang Hong,
    Guo-Jun Qi, "IGCV2: Interleaved Structured Sparse Convolutional Neural
    Networks", CVPR 2018, https://arxiv.org/abs/1804.06202 (IGC v2).
    IGC v3 (Sun et al., BMVC 2018) lives in ``kerasnets.models.igc_v3``.

IGC v1 block (``kerasnets.layers.InterleavedGroupConv``): a primary k x k
group convolution with L partitions of M channels, the permutation
out[b*L + a] = in[a*M + b], a secondary 1x1 group convolution with M
partitions of L channels and the permutation back, i.e. one convolution with
kernel W = P W_d P^T W_p; then BatchNorm (and ReLU), as in the authors'
MXNet code (github.com/hellozting/InterleavedGroupConvolutions).

ImageNet networks (``IGC_L4M32``, ``IGC_L16M16``, ``IGC_L100M2``): exactly the
three released MXNet symbol files (``resnet_gcwf_noshare_imagenet_d18b*``):
a ResNet-18 layout with +Ident. residual blocks of two IGC blocks,

    g0:  7x7/2 conv (stem width) + BN + ReLU, 3x3/2 max pool (pad 1)
    g1..g4: 2 blocks each; block = IGC(3x3, stride s) + BN + ReLU
            -> IGC(3x3) + BN -> + shortcut -> ReLU
            shortcut = identity, or when the width changes a 1x1 group conv
            (L groups, stride s) + BN ("proj")
    head: 7x7 (global) average pool, FC

BatchNorm epsilon 2e-5 (momentum 0.9), symmetric padding (ZeroPadding2D
before every stride-2 convolution: MXNet pads k//2 on each side), no biases
except the classifier. Layer names mirror the MXNet names: ``g2_b1_conv1`` is
the IGC block whose primary/secondary sub-layers are MXNet's
``g2_b1_conv1_conv1`` / ``g2_b1_conv1_conv2``; ``g2_b1_conv1_bn``,
``g2_b1_proj_conv``, ``g2_b1_proj_bn``, ``g0_conv``, ``g0_bn`` are MXNet's
names; ``predictions`` is MXNet's ``fc_score``.

| builder    | stem | widths (g1-g4)       | L (g1-g4)          | M (g1-g4)      | params (trainable) | MACs    | top-1 (err.)   |
|------------|------|----------------------|--------------------|----------------|--------------------|---------|----------------|
| IGC_L4M32  | 128  | 128, 256, 512, 1024  | 4, 4, 4, 4         | 32, 64, 128, 256 | 12,251,240       | 1.945 G | 69.23 (30.77)  |
| IGC_L16M16 | 256  | 256, 512, 1024, 2048 | 16, 16, 16, 16     | 16, 32, 64, 128  | 13,528,296       | 2.266 G | 70.60 (29.40)  |
| IGC_L100M2 | 100  | 200, 400, 800, 1600  | 100, 200, 400, 800 | 2, 2, 2, 2       | 8,637,900        | 1.265 G | 73.05 (26.95)  |

(The paper's table and the authors' README round the counts differently:
11.205 M / 11.329 M / 8.61 M, without the BatchNorm and classifier terms.)
The released weights are the authors' epoch-95 MXNet checkpoints (no
published hash), read by ``kerasnets.weights.mxnet``; preprocessing: RGB,
mean (123.370, 112.757, 99.406), std (68.998, 66.093, 68.292) on 0-255.

CIFAR networks (``IGCV1CIFAR(L, M, depth, residual)``): the authors'
``network/resnet_igc.py`` (+Ident., ``residual=True``) and
``network/plain_igc.py`` (plain): a 3x3 stem conv to C = L*M channels, three
stages of widths C, 2C, 4C (M doubles, L fixed), the first block of stages 2
and 3 with stride 2, global average pooling and FC.
Residual: (depth - 2) / 6 blocks a stage, each two IGC blocks as above with
a 1x1 stride-2 group conv (L groups) + BN projection where the width doubles;
the first IGC of a block uses ``secondary_groups = C_in / L`` (the authors'
code, also in the down-sampling block). Plain: (depth - 2) / 3 IGC + BN +
ReLU blocks a stage, ``secondary_groups = C_out / L``.
Parameters built (trainable, 10 classes; 100 classes add 90*(4C+1)):

| config  | C   | depth 8 plain / +Ident. | depth 20 plain / +Ident.  | depth 38 plain / +Ident.  |
|---------|-----|-------------------------|---------------------------|---------------------------|
| L4M8    | 32  | 78,634 / 82,346         | 277,546 / 281,258         | 575,914 / 579,626         |
| L24M2   | 48  | 48,442 / 56,890         | 155,962 / 164,410         | 317,242 / 325,690         |
| L32M26  | 832 | 6,683,466 / 7,069,514   | 23,829,322 / 24,215,370   | 49,548,106 / 49,934,154   |

Checked against real MXNet: the authors' residual CIFAR symbol, run in MXNet
1.9.1 on a checkpoint it saved, gives the logits of ``IGCV1CIFAR`` loaded from
that file (tests/weights/test_mxnet.py).

IGC v2 (``IGCV2``, ``igcv2_block``): an interleaved structured sparse
convolution W = P_L W_L ... P_2 W_2 P_1 W_1 generalises IGC to more than two
structured sparse kernels: W_1 a channel-wise 3x3 convolution, W_2..W_L
1x1 group convolutions with K_l channels a group, permutations between them;
complementary condition: each output channel reaches each input channel
(through exactly one path when K_2 ... K_L = C); balance condition: equal
K_l. The paper's ImageNet networks IGCV2-1.0 / 0.5 / 0.25 are compared with
MobileNet v1 1.0 / 0.5 / 0.25.

What the reachable sources state (the paper's own text beyond its abstract,
and its ImageNet architecture table, were not reachable; no code or weights
from the authors exist for IGCV2):

- arXiv:1804.06202 abstract (arxiv.org, paperswithcode, vdocuments.us copy):
  the block and the two conditions;
- ImageNet complexity and top-1 error of the three paper networks, as
  transcribed in the ShuffleNet V2 paper's comparison table (Ma et al.,
  ECCV 2018, arXiv:1807.11164, Table 8, "FLOPs" = multiply-adds, MobileNet v1
  1.0 = 569 M there): IGCV2-1.0 564 M, 29.3 % (top-1 70.7); IGCV2-0.5 156 M,
  34.5 %; IGCV2-0.25 46 M, 45.1 %;
- paper notes hosted on GitHub (found by full-text search, repositories
  not named by the index): top-1 70.7 vs MobileNet v1 70.6, CIFAR-100
  22.95 % error with 0.65 M parameters (no CIFAR layout given); "the
  structure of IGCV2 is from MobileNet_V1";
- the authors' IGCV3 README (github.com/homles11/IGCV3): IGCV2 = a
  depth-wise 3x3 in place of IGC's primary group convolution, then a series
  of point-wise group convolutions. The parameter count of the paper's
  ImageNet networks was found in none of them.

``IGCV2`` therefore builds a reconstruction, not a transcription: MobileNet
v1's macro layout (3x3/2 stem with 32 channels, 13 units with MobileNet's
strides, global average pooling, FC), every unit an IGCV2 block with L = 3
(channel-wise 3x3, then a 1x1 group convolution with K_2 = K = 4 channels a
group, permutation, then a 1x1 group convolution with K_3 = C / K channels
a group, i.e. K groups; K_2 K_3 = C), BN + ReLU after the block, unit widths
1.75 x MobileNet's (112, 224, 448, 896, 1792) and the width multiplier
``alpha`` scaling everything as in MobileNet. The free choices (K, the
width factor) are the ones that reproduce all three published complexities
with one base network; balanced chains (K_2 = K_3 = sqrt(C), or the
shortest chain with K = 8) widened to 564 M at alpha 1 give about 210-270 M
at 0.5 and 80-120 M at 0.25 instead of 156 / 46 M. Built (trainable, 1000
classes; MACs at 224 by ``kerasnets.utils.count_macs``: convolutions and
FC, no BN, as the 569 M of MobileNet v1; paper top-1 = 100 - the error):

| IGCV2(alpha)  | unit widths, stem      | params    | MACs    | paper MACs | paper top-1 |
|---------------|------------------------|-----------|---------|------------|-------------|
| 1.0 (default) | 112 ... 1792, 32       | 4,872,760 | 570.7 M | 564 M      | 70.7        |
| 0.5           | 56 ... 896, 16         | 1,702,272 | 157.5 M | 156 M      | 65.5        |
| 0.25          | 28 ... 448, 8          | 667,984   | 46.8 M  | 46 M       | 54.9        |

(MACs +1.2 / +1.0 / +1.7 % over the paper's: the widths are 1.75 x
MobileNet's rather than the exact 1.74 x fit. Same counting convention as
the paper's MobileNet v1 figure: ``count_macs(MobileNet())`` = 568.7 M vs
569 M.)

Uncertain (not in any reachable source): the per-unit widths, K, the number
of group convolutions a block, the BN/ReLU placement inside the block, and
so the parameter counts above. ``group_size``, ``group_convs``, ``units``
and ``stem_filters`` change them; ``IGCV2(group_size=8,
units=MOBILENET_UNITS, group_convs=None)`` is the earlier kerasnets network
(MobileNet widths, shortest chain with K = 8: 1,231,976 parameters, 85 M).
"""

import keras
from keras import layers

from kerasnets import weights as weights_lib
from kerasnets.imagenet import decode_predictions  # noqa: F401  (offline, bundled index)
from kerasnets.layers import (
    BatchNormalization,
    ChannelShuffle,
    GroupConv2D,
    InterleavedGroupConv,
)
from kerasnets.models.common import (
    check_arguments,
    classifier_top,
    finish_model,
    image_input,
    preprocessing_layer,
)
from kerasnets.models.igc_v3 import IGCV3  # noqa: F401  (re-exported)
from kerasnets.weights import WeightsEntry
from kerasnets.weights.mxnet import register_mxnet_converter

BN_EPSILON = 2e-5
BN_MOMENTUM = 0.9
MIN_SIZE = 32

IMAGENET_VARIANTS = {
    "IGC_L4M32": dict(stem_filters=128, widths=(128, 256, 512, 1024),
                      primary_groups=(4, 4, 4, 4)),
    "IGC_L16M16": dict(stem_filters=256, widths=(256, 512, 1024, 2048),
                       primary_groups=(16, 16, 16, 16)),
    "IGC_L100M2": dict(stem_filters=100, widths=(200, 400, 800, 1600),
                       primary_groups=(100, 200, 400, 800)),
}

# ------------------------------------------------------------ pretrained

IGC_MEAN = (123.370, 112.757, 99.406)  # RGB, 0-255 (authors' train_imagenet.py)
IGC_STD = (68.998, 66.093, 68.292)

# The authors' repository at the commit that added the models ("add models").
_REPO = ("https://raw.githubusercontent.com/hellozting/InterleavedGroupConvolutions/"
         "2871fdbd2343982ea1ee2460fc26bccba7d40ec9/models/")
_RELEASES = {
    "IGC_L4M32": ("IGC-L4M32_ImageNet/resnet_gcwf_noshare_imagenet_d18b4-0095.params", 69.23, 89.01),
    "IGC_L16M16": ("IGC-L16M16_ImageNet/resnet_gcwf_noshare_imagenet_d18b16-0095.params", 70.60, 89.68),
    "IGC_L100M2": ("IGC-L100M2_ImageNet/resnet_gcwf_noshare_imagenet_d18b100-0095.params", 73.05, 91.08),
}
for _builder, (_file, _top1, _top5) in _RELEASES.items():
    weights_lib.register(
        _builder,
        "imagenet",
        WeightsEntry(
            url=_REPO + _file,
            format="mxnet_params",
            preprocessing="igc",  # mean/std above: see preprocess_input
            source="authors' MXNet release (epoch 95), hellozting/InterleavedGroupConvolutions",
            license="see the authors' repository",
            top1=_top1,
            top5=_top5,
        ),
        default=True,
    )

# ----------------------------------------------------------------- blocks


def batch_norm(x, name, momentum=BN_MOMENTUM):
    return BatchNormalization(epsilon=BN_EPSILON, momentum=momentum, name=name)(x)


def symmetric_pad(x, kernel_size, strides, name):
    """MXNet pads k//2 on every side; Keras "same" differs on stride 2 with
    even inputs, so stride-2 convolutions get explicit padding + "valid"."""
    if strides > 1 and kernel_size > 1:
        return layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x), "valid"
    return x, "same" if kernel_size > 1 else "valid"


def conv_bn(x, filters, kernel_size, name, strides=1, groups=1, activation="relu",
            momentum=BN_MOMENTUM):
    """Conv-BN(-ReLU), MXNet's ``get_conv``: ``{name}_conv``, ``{name}_bn``."""
    x, padding = symmetric_pad(x, kernel_size, strides, name)
    conv = GroupConv2D if groups > 1 else layers.Conv2D
    x = conv(filters, kernel_size, strides=strides, groups=groups, padding=padding,
             use_bias=False, name=f"{name}_conv")(x)
    x = batch_norm(x, f"{name}_bn", momentum)
    if activation:
        x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def interleaved_group_conv(x, filters, primary_groups, name, strides=1,
                           secondary_groups=None, relu=True, momentum=BN_MOMENTUM):
    """IGC block + BN (+ ReLU), MXNet's ``get_igc``: the block ``{name}``
    (sub-layers = ``{name}_conv1`` / ``{name}_conv2``), ``{name}_bn``."""
    x, padding = symmetric_pad(x, 3, strides, name)
    x = InterleavedGroupConv(filters, primary_groups, kernel_size=3, strides=strides,
                             secondary_groups=secondary_groups, padding=padding,
                             name=name)(x)
    x = batch_norm(x, f"{name}_bn", momentum)
    if relu:
        x = layers.Activation("relu", name=f"{name}_relu")(x)
    return x


def residual_block(x, filters, primary_groups, name, strides=1, first_secondary_groups=None):
    """+Ident. block: IGC-BN-ReLU, IGC-BN, add the shortcut, ReLU. The
    shortcut projects (1x1 group conv with L groups + BN) when the width or
    the resolution changes."""
    if x.shape[-1] != filters or strides != 1:
        shortcut = conv_bn(x, filters, 1, f"{name}_proj", strides=strides,
                           groups=primary_groups, activation=None)
    else:
        shortcut = x
    y = interleaved_group_conv(x, filters, primary_groups, f"{name}_conv1", strides=strides,
                               secondary_groups=first_secondary_groups)
    y = interleaved_group_conv(y, filters, primary_groups, f"{name}_conv2", relu=False)
    x = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_relu")(x)


def stem(x, filters):
    """g0: 7x7/2 conv + BN + ReLU, 3x3/2 max pool with padding 1."""
    x = conv_bn(x, filters, 7, "g0", strides=2)
    x = layers.ZeroPadding2D(1, name="g0_pool_pad")(x)  # after ReLU: = -inf padding
    return layers.MaxPooling2D(3, strides=2, name="g0_pool")(x)


def _check_groups(builder, widths, primary_groups):
    for stage, (width, groups) in enumerate(zip(widths, primary_groups), start=1):
        if groups < 1 or width % groups:
            raise ValueError(
                f"{builder}: stage {stage} has {width} channels, which "
                f"L={groups} primary partitions do not divide (C = L * M)."
            )


# ---------------------------------------------------------------- IGC v1


def IGCV1(
    stem_filters,
    widths,
    primary_groups,
    blocks=(2, 2, 2, 2),
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=False,
    name="igcv1",
    builder="IGCV1",
):
    """Instantiates an IGC v1 ImageNet network (Zhang et al., ICCV 2017).

    Args:
        stem_filters: channels of the 7x7/2 stem convolution.
        widths: channels of the 4 stages (C = L * M each).
        primary_groups: L of each stage (the secondary convolution has
            M = width / L groups).
        blocks: residual blocks per stage (2, 2, 2, 2: the released nets).
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in keras.applications. ``weights``
            is None, "imagenet" (registered variants) or a path: Keras
            weights, or the authors' MXNet ``.params`` checkpoint.
        include_preprocessing: bake the weights' normalisation into the
            model (raw RGB 0-255 in).
        builder: registry name used for weights and error messages (the
            named variants pass theirs).

    Returns:
        A ``keras.Model``.

    Example (IGC-L4M32+Ident. with 3 blocks a stage):
        >>> model = kerasnets.IGCV1(128, (128, 256, 512, 1024), (4, 4, 4, 4),
        ...                         blocks=(3, 3, 3, 3))
        >>> model.output_shape
        (None, 1000)
    """
    check_arguments(builder, weights=weights, include_top=include_top,
                    classes=classes, pooling=pooling,
                    classifier_activation=classifier_activation)
    if not len(widths) == len(primary_groups) == len(blocks):
        raise ValueError(
            f"{builder}: widths, primary_groups and blocks need one entry per "
            f"stage; received {widths}, {primary_groups}, {blocks}."
        )
    _check_groups(builder, widths, primary_groups)
    img_input = image_input(input_tensor, input_shape, default_size=224,
                            min_size=MIN_SIZE, include_top=include_top,
                            weights=weights)
    x = preprocessing_layer(img_input, builder=builder, weights=weights,
                            include_preprocessing=include_preprocessing)
    x = stem(x, stem_filters)
    for stage, (width, groups, depth) in enumerate(zip(widths, primary_groups, blocks), start=1):
        for block in range(1, depth + 1):
            strides = 2 if (block == 1 and stage > 1) else 1
            x = residual_block(x, width, groups, f"g{stage}_b{block}", strides=strides)
    x = classifier_top(x, include_top=include_top, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation)
    return finish_model(img_input, x, input_tensor=input_tensor, name=name,
                        builder=builder, weights=weights, include_top=include_top)


def _variant(builder):
    def build(
        include_top=True,
        weights="imagenet",
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=1000,
        classifier_activation="softmax",
        include_preprocessing=False,
        name=builder.lower(),
    ):
        return IGCV1(
            **IMAGENET_VARIANTS[builder],
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            include_preprocessing=include_preprocessing,
            name=name,
            builder=builder,
        )

    build.__name__ = build.__qualname__ = builder
    return build


def _doc(builder, params, macs, top1):
    config = IMAGENET_VARIANTS[builder]
    return (
        f"Instantiates {builder}+Ident. (Zhang et al., \"Interleaved Group "
        "Convolutions for Deep Neural Networks\", ICCV 2017, arXiv:1707.02725).\n\n"
        f"Stem {config['stem_filters']}, widths {config['widths']}, "
        f"L={config['primary_groups']}; {params} trainable parameters, {macs} "
        f"MACs at 224x224; top-1 {top1} (ImageNet-1k, the authors' released "
        "epoch-95 MXNet checkpoint, single 224 crop).\n\n"
        "Args: as keras.applications (include_top, weights, input_tensor,\n"
        "input_shape, pooling, classes, classifier_activation, name);\n"
        "include_preprocessing bakes the weights' normalisation into the\n"
        "model (raw RGB 0-255 in).\n"
        "weights='imagenet' downloads the authors' .params file and converts it;\n"
        "weights=path reads a local copy of it (or Keras weights).\n\n"
        "Example:\n"
        f"    >>> model = kerasnets.{builder}(weights=\"imagenet\")\n"
        "    >>> x = kerasnets.data.load_image(kerasnets.imagenet.sample_image(), "
        f"\"{builder}\")\n"
        "    >>> kerasnets.imagenet.decode_predictions(model.predict(x[None]))\n"
    )


IGC_L4M32 = _variant("IGC_L4M32")
IGC_L16M16 = _variant("IGC_L16M16")
IGC_L100M2 = _variant("IGC_L100M2")


IGC_L4M32.__doc__ = _doc("IGC_L4M32", "12,251,240", "1.945 G", 69.23)
IGC_L16M16.__doc__ = _doc("IGC_L16M16", "13,528,296", "2.266 G", 70.60)
IGC_L100M2.__doc__ = _doc("IGC_L100M2", "8,637,900", "1.265 G", 73.05)


# ---------------------------------------------------------- IGC v1 CIFAR


def IGCV1CIFAR(
    L,
    M,
    depth,
    residual=True,
    classes=10,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classifier_activation="softmax",
    include_preprocessing=False,
    name=None,
):
    """Instantiates an IGC v1 CIFAR network (Zhang et al., ICCV 2017, section
    5.1; the authors' ``resnet_igc.py`` / ``plain_igc.py``).

    Args:
        L: primary partitions (fixed across stages).
        M: secondary partitions of the first stage (doubles per stage); the
            stages have C, 2C, 4C channels with C = L * M.
        depth: 8, 20, 38, ...: (depth - 2) must be a multiple of 6 with
            ``residual`` (two IGC blocks per residual block, 3 stages) and of
            3 without.
        residual: +Ident. residual blocks (IGC-Lx-My+Ident.), else the plain
            network.
        classes: 10 (CIFAR-10), 100 (CIFAR-100), ...
        include_top, weights, input_tensor, input_shape, pooling,
        classifier_activation, name: as in keras.applications (input 32x32 by
            default). ``weights``: None or a path (Keras weights, or an MXNet
            checkpoint of the authors' CIFAR code, whose names it maps).
        include_preprocessing: bake the weights' normalisation into the
            model (raw RGB 0-255 in).

    The module docstring tabulates the parameter counts of the paper's
    configurations (L4M8, L24M2, L32M26 at depths 8/20/38).

    Returns:
        A ``keras.Model``.

    Example (IGC-L24M2+Ident., depth 20, CIFAR-10):
        >>> model = kerasnets.IGCV1CIFAR(L=24, M=2, depth=20)
        >>> model.output_shape
        (None, 10)
    """
    builder = "IGCV1CIFAR"
    check_arguments(builder, weights=weights, include_top=include_top,
                    classes=classes, pooling=pooling,
                    classifier_activation=classifier_activation)
    per_stage = 6 if residual else 3
    if depth < 2 + per_stage or (depth - 2) % per_stage:
        raise ValueError(
            f"IGCV1CIFAR: depth={depth} is not 2 + a multiple of {per_stage} "
            f"({'two IGC blocks per residual block' if residual else 'one IGC block per layer'}, "
            "3 stages); e.g. 8, 20, 38" + ("" if residual else ", 11, 14")
            + "."
        )
    width = L * M
    widths = (width, 2 * width, 4 * width)
    _check_groups(builder, widths, (L, L, L))
    img_input = image_input(input_tensor, input_shape, default_size=32, min_size=8,
                            include_top=include_top, weights=weights)
    x = preprocessing_layer(img_input, builder=builder, weights=weights,
                            include_preprocessing=include_preprocessing)
    momentum = BN_MOMENTUM if residual else 0.99
    x = conv_bn(x, width, 3, "g0", momentum=momentum)
    blocks = (depth - 2) // per_stage
    for stage, stage_width in enumerate(widths, start=1):
        for block in range(1, blocks + 1):
            strides = 2 if (block == 1 and stage > 1) else 1
            if residual:
                x = residual_block(x, stage_width, L, f"g{stage}_b{block}", strides=strides,
                                   first_secondary_groups=x.shape[-1] // L)
            else:
                x = interleaved_group_conv(x, stage_width, L, f"g{stage}_b{block}",
                                           strides=strides, momentum=momentum)
    x = classifier_top(x, include_top=include_top, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation)
    kind = "ident" if residual else "plain"
    name = name or f"igc_l{L}m{M}_d{depth}_{kind}"
    return finish_model(img_input, x, input_tensor=input_tensor, name=name,
                        builder=builder, weights=weights, include_top=include_top)


# ---------------------------------------------------------------- IGC v2

# MobileNet v1's layout: (filters, stride) of the 13 depthwise-separable
# units after the 3x3/2 32-channel stem.
MOBILENET_UNITS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                   (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2),
                   (1024, 1))

# The default IGCV2 network (module notes): MobileNet v1's units, 1.75 x wider.
IGCV2_UNITS = tuple((filters * 7 // 4, strides) for filters, strides in MOBILENET_UNITS)


def igcv2_groups(in_channels, filters, group_size, max_convs=6, convs=None):
    """Groups of the chain of 1x1 group convolutions that follows the
    channel-wise 3x3 in an IGCV2 block (a channel shuffle with the groups of
    each convolution follows it, but the last).

    ``convs=None``: every convolution has ``group_size`` (K) input channels
    a group, and the chain is the shortest one meeting the complementary
    condition (L - 1 = log_K C convolutions when K^(L-1) = C).
    ``convs=n``: n convolutions, the first n - 1 with K channels a group and
    the last with C / K^(n-1) (C = ``filters``), so that K_2 ... K_L = C.

    The complementary condition (every output channel reached from every
    input channel, by exactly one path when the K multiply to C) is checked
    by composing the connectivity of the structured sparse kernels."""
    import numpy as np

    from kerasnets.layers.interleaved_group_conv import shuffle_indices

    if convs is not None:
        product = group_size ** (convs - 1) if convs >= 1 else 0
        if not product or filters % product:
            raise ValueError(
                f"IGCV2: group size K={group_size} does not split {in_channels} -> "
                f"{filters} channels into {convs} group convolutions with "
                f"K_2 ... K_L = {filters}."
            )
        sizes = [group_size] * (convs - 1) + [filters // product]
    else:
        sizes = [group_size] * max_convs
    reach = np.eye(in_channels, dtype=bool)  # channel -> input channels it sees
    groups_list = []
    channels = in_channels
    while len(groups_list) < len(sizes):
        size = min(sizes[len(groups_list)], channels)
        if channels % size or filters % (channels // size):
            raise ValueError(
                f"IGCV2: group size K={group_size} does not split {channels} -> "
                f"{filters} channels into equal groups."
            )
        groups = channels // size
        per_out = filters // groups
        out = np.zeros((filters, in_channels), dtype=bool)
        for g in range(groups):
            out[g * per_out:(g + 1) * per_out] = reach[g * size:(g + 1) * size].any(axis=0)
        groups_list.append(groups)
        if out.all() and (convs is None or len(groups_list) == convs):
            return groups_list
        reach = out[shuffle_indices(filters, groups)]
        channels = filters
    raise ValueError(
        f"IGCV2: {len(groups_list)} group convolutions with K={group_size} do not "
        f"connect all {in_channels} input channels to every output."
    )


def igcv2_block(x, filters, group_size, name, strides=1, convs=None):
    """Interleaved structured sparse convolution (IGCV2, Xie et al. 2018,
    Eq. 5): W_L P_{L-1} ... P_2 W_2 P_1 W_1 with W_1 a channel-wise 3x3
    convolution and W_2..W_L 1x1 group convolutions (``igcv2_groups``:
    ``group_size`` = K, ``convs`` = L - 1), then BN + ReLU (as IGC: no
    normalisation between the structured sparse kernels)."""
    if strides > 1:
        x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    x = layers.DepthwiseConv2D(3, strides=strides, padding="valid" if strides > 1 else "same",
                               use_bias=False, name=f"{name}_dw")(x)
    chain = igcv2_groups(x.shape[-1], filters, group_size, convs=convs)
    for index, groups in enumerate(chain, start=1):
        conv = GroupConv2D if groups > 1 else layers.Conv2D
        x = conv(filters, 1, groups=groups, use_bias=False, name=f"{name}_gconv{index}")(x)
        if index < len(chain):
            x = ChannelShuffle(groups, name=f"{name}_shuffle{index}")(x)
    x = batch_norm(x, f"{name}_bn")
    return layers.Activation("relu", name=f"{name}_relu")(x)


def IGCV2(
    alpha=1.0,
    group_size=4,
    units=IGCV2_UNITS,
    stem_filters=32,
    group_convs=2,
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
    """Instantiates an IGCV2 ImageNet network (Xie et al., "IGCV2:
    Interleaved Structured Sparse Convolutional Neural Networks", CVPR 2018,
    arXiv:1804.06202): MobileNet v1's layout with every depthwise-separable
    unit replaced by an interleaved structured sparse convolution.

    Defaults: the reconstruction of the paper's IGCV2-1.0 described in the
    module notes (the paper's architecture table was not reachable): units
    of 112, 224, 448, 896, 1792 channels (1.75 x MobileNet v1's, MobileNet's
    strides), stem 32; each unit channel-wise 3x3 (stride s) -> 1x1 group
    conv with K = 4 channels a group -> permutation -> 1x1 group conv with
    4 groups (C / 4 channels a group) -> BN -> ReLU. 4,872,760 trainable
    parameters, 570.7 M MACs at 224 (paper: 564 M, top-1 70.7); alpha 0.5 /
    0.25 give 157.5 M / 46.8 M (paper IGCV2-0.5 / 0.25: 156 / 46 M).

    Args:
        alpha: width multiplier of the stem and units (the paper's
            IGCV2-1.0 / 0.5 / 0.25; 0.75 builds too). The widths it gives
            must split into the groups above, else a ValueError names them.
        group_size: K, input channels a group of the 1x1 group convolutions
            (all but the last when ``group_convs`` is set).
        units: (filters, stride) per block; ``MOBILENET_UNITS`` gives
            MobileNet v1's widths.
        stem_filters: channels of the 3x3/2 stem convolution.
        group_convs: 1x1 group convolutions a block (L - 1): the last has
            C / K^(L-2) channels a group so that the K multiply to C; None:
            the shortest chain of K-channel groups meeting the complementary
            condition.
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in keras.applications (no pretrained
            IGCV2 weights are published; ``weights`` is None or a path to
            Keras weights).
        include_preprocessing: bake the weights' normalisation into the
            model (raw RGB 0-255 in).

    Returns:
        A ``keras.Model``.

    Example (IGCV2-0.5):
        >>> model = kerasnets.IGCV2(alpha=0.5)
        >>> model.output_shape
        (None, 1000)
    """
    builder = "IGCV2"
    check_arguments(builder, weights=weights, include_top=include_top,
                    classes=classes, pooling=pooling,
                    classifier_activation=classifier_activation)
    img_input = image_input(input_tensor, input_shape, default_size=224, min_size=32,
                            include_top=include_top, weights=weights)
    x = preprocessing_layer(img_input, builder=builder, weights=weights,
                            include_preprocessing=include_preprocessing)
    x = conv_bn(x, int(stem_filters * alpha), 3, "stem", strides=2)
    for index, (filters, strides) in enumerate(units, start=1):
        x = igcv2_block(x, int(filters * alpha), group_size, f"block{index}", strides=strides,
                        convs=group_convs)
    x = classifier_top(x, include_top=include_top, pooling=pooling, classes=classes,
                       classifier_activation=classifier_activation)
    name = name or f"igcv2_{float(alpha):g}_k{group_size}"
    return finish_model(img_input, x, input_tensor=input_tensor, name=name,
                        builder=builder, weights=weights, include_top=include_top)


# ------------------------------------------------------- MXNet checkpoints


def mxnet_layer_map(model):
    """Keras layer -> MXNet prefix for the ImageNet networks (the released
    symbol files' names)."""
    mapping = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        if isinstance(layer, InterleavedGroupConv):
            mapping[layer.name] = {"primary": f"{layer.name}_conv1",
                                   "secondary": f"{layer.name}_conv2"}
        elif layer.name == "predictions":
            mapping[layer.name] = "fc_score"
        else:
            mapping[layer.name] = layer.name
    return mapping, ("fc_score",)


def mxnet_cifar_layer_map(model):
    """Keras layer -> MXNet prefix for checkpoints of the authors' CIFAR code:
    resnet_igc.py names the IGC blocks ``g1_b1_p2_two1`` / ``_two2``, the
    projection ``g2_b1_p0_line`` and the classifier ``fc``; plain_igc.py uses
    ``g1_b1`` and ``fc_score``."""
    residual = any(layer.name.endswith("_add") for layer in model.layers)
    classifier = "fc" if residual else "fc_score"

    def source(name):
        if residual:
            name = name.replace("_conv1", "_p2_two1").replace("_conv2", "_p2_two2")
            name = name.replace("_proj", "_p0_line")
        return name

    mapping = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        if isinstance(layer, InterleavedGroupConv):
            prefix = source(layer.name)
            mapping[layer.name] = {"primary": f"{prefix}_conv1", "secondary": f"{prefix}_conv2"}
        elif layer.name == "predictions":
            mapping[layer.name] = classifier
        else:
            mapping[layer.name] = source(layer.name)
    return mapping, (classifier,)


for _builder in ["IGCV1", *IMAGENET_VARIANTS]:
    register_mxnet_converter(_builder, mxnet_layer_map)
register_mxnet_converter("IGCV1CIFAR", mxnet_cifar_layer_map)

# ---------------------------------------------------------- pre/post


def preprocess_input(x, data_format=None):
    """Preprocessing of the released IGC weights: RGB inputs in [0, 255] ->
    (x - (123.370, 112.757, 99.406)) / (68.998, 66.093, 68.292).

    Numpy in, numpy out; tensors in, tensors out (keras.applications style).
    """
    import numpy as np

    channels_first = (data_format or keras.config.image_data_format()) == "channels_first"
    shape = (3, 1, 1) if channels_first else (3,)
    mean = np.array(IGC_MEAN, dtype="float32").reshape(shape)
    std = np.array(IGC_STD, dtype="float32").reshape(shape)
    if isinstance(x, np.ndarray):
        return (x.astype("float32") - mean) / std
    x = keras.ops.convert_to_tensor(x, dtype="float32")
    return (x - mean) / std
