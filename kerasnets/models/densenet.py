"""DenseNet: Densely Connected Convolutional Networks.

Reference:
    Gao Huang, Zhuang Liu, Laurens van der Maaten, Kilian Q. Weinberger,
    "Densely Connected Convolutional Networks", CVPR 2017,
    https://arxiv.org/abs/1608.06993

Each layer of a *dense block* receives the feature maps of all preceding
layers (concatenated) and adds ``k`` (the growth rate) new ones. A layer is
BN-ReLU-Conv3x3 (DenseNet) or, with a *bottleneck* (DenseNet-B),
BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k). Between blocks a *transition layer*
BN-ReLU-Conv1x1-AvgPool2x2 halves the resolution and, with *compression*
theta < 1 (DenseNet-C), keeps floor(theta * m) of its m channels.
DenseNet-BC uses both; the ImageNet networks of Table 1 are DenseNet-BC with
k = 32 (k = 48 for DenseNet-161), theta = 0.5 and a 7x7/2 conv + 3x3/2 max
pool stem with 2k channels.

The ImageNet builders reproduce ``keras.applications.densenet`` exactly:
layer names (``conv2_block1_1_conv``), layer order (legacy ``.h5`` files load
by topology) and BatchNorm epsilon 1.001e-5. PyTorch checkpoints in timm's
(= torchvision's) layout load through ``weights=path`` and the timm tags;
the padding is identical (zero padding 3 before the 7x7/2 stem conv, 1
before the 3x3/2 max pool, after a ReLU so zeros equal PyTorch's -inf);
only timm's BN epsilon (1e-5) differs, by 1e-8, which moves logits by about
1e-6 of their spread.

Table 1 (ImageNet, 224x224, MACs = multiply-adds):

| builder     | k  | blocks        | params (trainable) | keras total | MACs   |
|-------------|----|---------------|--------------------|-------------|--------|
| DenseNet121 | 32 | 6, 12, 24, 16 | 7,978,856          | 8,062,504   | 2.83 G |
| DenseNet169 | 32 | 6, 12, 32, 32 | 14,149,480         | 14,307,880  | 3.36 G |
| DenseNet201 | 32 | 6, 12, 48, 32 | 20,013,928         | 20,242,984  | 4.29 G |
| DenseNet264 | 32 | 6, 12, 64, 48 | 33,337,704         | 33,736,232  | 5.75 G |
| DenseNet161 | 48 | 6, 12, 36, 24 | 28,681,000         | 28,900,936  | 7.73 G |

CIFAR networks (Section 4, 10 classes, 32x32): see ``DenseNetCIFAR``.

``memory_efficient=True`` (every builder) trains with the shared-storage
scheme of Pleiss et al., "Memory-Efficient Implementation of DenseNets"
(arXiv:1707.06990): each layer keeps only the list of earlier feature maps
and recomputes their concatenation and BN-ReLU in the backward pass
(``bn_relu_conv``). Same outputs, gradients, weights and weight-layer names
and order; measured with ``tools/bench_memory.py``.
"""

import numbers
import re

import keras
from keras import layers

from kerasnets import weights as weights_lib
from kerasnets.imagenet import decode_predictions  # noqa: F401  (offline, bundled index)
from kerasnets.layers import (
    BatchNormalization,
    ConcatBatchNormalization,
    ConcatNormActConv2D,
)
from kerasnets.models.common import (
    check_arguments,
    classifier_top,
    finish_model,
    image_input,
    preprocessing_layer,
)
from kerasnets.weights import WeightsEntry

# --------------------------------------------------------------- constants

BN_EPSILON = 1.001e-5  # keras.applications' value (timm / torchvision: 1e-5)
BOTTLENECK_WIDTH = 4  # the 1x1 conv of a DenseNet-B layer produces 4k maps
COMPRESSION = 0.5  # theta of DenseNet-BC
MIN_SIZE = 32

# Table 1 of the paper (+ DenseNet-161, the k=48 network the authors
# released with Torch weights).
IMAGENET_VARIANTS = {
    "DenseNet121": dict(blocks=(6, 12, 24, 16), growth_rate=32),
    "DenseNet169": dict(blocks=(6, 12, 32, 32), growth_rate=32),
    "DenseNet201": dict(blocks=(6, 12, 48, 32), growth_rate=32),
    "DenseNet264": dict(blocks=(6, 12, 64, 48), growth_rate=32),
    "DenseNet161": dict(blocks=(6, 12, 36, 24), growth_rate=48),
}

# ---------------------------------------------------------- pretrained files

# keras.applications' legacy .h5 files (the "imagenet" tag, loaded by
# topology): builder -> (md5 with top, md5 without, reported top-1).
KERAS_BASE_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/densenet/"
)
KERAS_WEIGHTS = {
    "DenseNet121": (
        "9d60b8095a5708f2dcce2bca79d332c7",
        "30ee3e1110167f948a6b9946edeeb738",
        75.0,
    ),
    "DenseNet169": (
        "d699b8f76981ab1b30698df4c175e90b",
        "b8c4d4c20dd625c148057b9ff1c1176b",
        76.2,
    ),
    "DenseNet201": (
        "1ceb130c1ea1b78c3bf6114dbdfd8807",
        "c13680b51ded0fb44dff2d8f86ac8bb1",
        77.3,
    ),
}

# timm's checkpoints on the Hugging Face hub (timm/<model>.<tag>, torchvision
# layout, converted on load): builder -> [(tag, reported top-1)].
# DenseNet161 has no keras file: its "imagenet" weights are tv_in1k.
TIMM_WEIGHTS = {
    "DenseNet121": [("tv_in1k", None), ("ra_in1k", None)],
    "DenseNet161": [("tv_in1k", 77.4)],
    "DenseNet169": [("tv_in1k", None)],
    "DenseNet201": [("tv_in1k", None)],
}


def _register_weights():
    for builder, (md5, notop_md5, top1) in KERAS_WEIGHTS.items():
        stem = f"{builder.lower()}_weights_tf_dim_ordering_tf_kernels"
        weights_lib.register(
            builder,
            "imagenet",
            WeightsEntry(
                url=f"{KERAS_BASE_URL}{stem}.h5",
                file_hash=md5,
                notop_url=f"{KERAS_BASE_URL}{stem}_notop.h5",
                notop_hash=notop_md5,
                format="keras_h5",
                preprocessing="torch",
                source="keras.applications",
                top1=top1,
            ),
            default=True,
        )
    for builder, tags in TIMM_WEIGHTS.items():
        for tag, top1 in tags:
            repo = f"timm/{builder.lower()}.{tag}"
            weights_lib.register(
                builder,
                tag,
                WeightsEntry(
                    url=f"https://huggingface.co/{repo}/resolve/main/"
                    "model.safetensors",
                    format="safetensors",
                    preprocessing="torch",
                    interpolation="bicubic",
                    source="timm",
                    license="apache-2.0",
                    top1=top1,
                ),
            )


_register_weights()


# ------------------------------------------------------------------ blocks


def bn_relu(x, name):
    """Pre-activation BN-ReLU; ``name`` "" gives keras' final "bn"/"relu"."""
    prefix = f"{name}_" if name else ""
    x = BatchNormalization(
        axis=-1, epsilon=BN_EPSILON, name=f"{prefix}bn"
    )(x)
    return layers.Activation("relu", name=f"{prefix}relu")(x)


def bn_relu_conv(x, filters, kernel_size, bn_name, conv_name, memory_efficient=False):
    """BN-ReLU-Conv (``{bn_name}_bn``, ``_relu``, ``{conv_name}_conv``).

    With ``memory_efficient``, ``x`` may be a list of feature maps read as
    their concatenation, and the concatenation, BN output and ReLU are
    recomputed in the backward pass instead of stored (Pleiss et al. 2017,
    ``kerasnets.layers.ConcatBatchNormalization`` + ``ConcatNormActConv2D``):
    same outputs, gradients, weights and weight-layer names, no ``_relu``
    layer.
    """
    padding = "same" if kernel_size > 1 else "valid"
    if memory_efficient:
        features = list(x) if isinstance(x, (list, tuple)) else [x]
        affine = ConcatBatchNormalization(
            axis=-1, epsilon=BN_EPSILON, name=f"{bn_name}_bn"
        )(features)
        return ConcatNormActConv2D(
            filters, kernel_size, padding=padding, use_bias=False,
            name=f"{conv_name}_conv",
        )([affine, *features])
    x = bn_relu(x, bn_name)
    return layers.Conv2D(
        filters, kernel_size, padding=padding, use_bias=False, name=f"{conv_name}_conv"
    )(x)


def _dropout(x, rate, name):
    return layers.Dropout(rate, name=name)(x) if rate else x


def conv_block(x, growth_rate, name, bottleneck=True, dropout_rate=0.0,
               memory_efficient=False):
    """One layer H_l of a dense block: k new maps concatenated to ``x``.

    DenseNet-B: BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k) (keras names
    ``{name}_0_bn``, ``_1_conv``, ``_1_bn``, ``_2_conv``, ``_concat``);
    plain DenseNet: BN-ReLU-Conv3x3(k) (``{name}_0_bn``, ``_1_conv``).
    Dropout (the paper's, without data augmentation) follows each conv.

    With ``memory_efficient``, ``x`` is the list of the block's feature maps
    so far (or one tensor) and the list with the k new maps appended is
    returned instead of a concatenation (see ``bn_relu_conv``).
    """
    if memory_efficient:
        x = list(x) if isinstance(x, (list, tuple)) else [x]
    if bottleneck:
        y = bn_relu_conv(x, BOTTLENECK_WIDTH * growth_rate, 1, f"{name}_0",
                         f"{name}_1", memory_efficient)
        y = _dropout(y, dropout_rate, f"{name}_1_drop")
        y = bn_relu_conv(y, growth_rate, 3, f"{name}_1", f"{name}_2",
                         memory_efficient)
        y = _dropout(y, dropout_rate, f"{name}_2_drop")
    else:
        y = bn_relu_conv(x, growth_rate, 3, f"{name}_0", f"{name}_1",
                         memory_efficient)
        y = _dropout(y, dropout_rate, f"{name}_1_drop")
    if memory_efficient:
        return [*x, y]
    return layers.Concatenate(axis=-1, name=f"{name}_concat")([x, y])


def dense_block(x, num_layers, name, growth_rate, bottleneck=True, dropout_rate=0.0,
                memory_efficient=False):
    """``num_layers`` conv blocks, each seeing all earlier feature maps
    (with ``memory_efficient``: returns the list of them, not concatenated)."""
    for i in range(num_layers):
        x = conv_block(
            x,
            growth_rate,
            name=f"{name}_block{i + 1}",
            bottleneck=bottleneck,
            dropout_rate=dropout_rate,
            memory_efficient=memory_efficient,
        )
    return x


def transition_block(x, compression, name, dropout_rate=0.0, memory_efficient=False):
    """BN-ReLU-Conv1x1(floor(theta * m))-AvgPool 2x2/2 between dense blocks
    (``x``: a tensor, or with ``memory_efficient`` a list of feature maps)."""
    maps = x if isinstance(x, (list, tuple)) else [x]
    channels = int(sum(m.shape[-1] for m in maps) * compression)
    x = bn_relu_conv(x, channels, 1, name, name, memory_efficient)
    x = _dropout(x, dropout_rate, f"{name}_drop")
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def dense_stages(x, blocks, growth_rate, bottleneck, compression, dropout_rate,
                 memory_efficient=False):
    """Dense blocks ``conv2, conv3, ...`` with transitions ``pool2, ...``
    between them, then the final BN-ReLU (keras' "bn"/"relu")."""
    for i, num_layers in enumerate(blocks):
        stage = i + 2
        x = dense_block(
            x,
            num_layers,
            name=f"conv{stage}",
            growth_rate=growth_rate,
            bottleneck=bottleneck,
            dropout_rate=dropout_rate,
            memory_efficient=memory_efficient,
        )
        if i < len(blocks) - 1:
            x = transition_block(
                x, compression, name=f"pool{stage}", dropout_rate=dropout_rate,
                memory_efficient=memory_efficient,
            )
    if memory_efficient:  # the last block's maps, concatenated once
        x = layers.Concatenate(
            axis=-1, name=f"conv{len(blocks) + 1}_block{blocks[-1]}_concat"
        )(x)
    return bn_relu(x, "")


def imagenet_stem(x, channels):
    """Conv 7x7/2 (2k maps) + BN + ReLU + MaxPool 3x3/2, PyTorch padding."""
    x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = layers.Conv2D(channels, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = bn_relu(x, "conv1")
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name="pool1")(x)


def _positive_int(value):
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and value >= 1
    )


def _check_options(growth_rate, compression, dropout_rate, init_features=None):
    if not _positive_int(growth_rate):
        raise ValueError(
            "`growth_rate` must be a positive integer (note: the second "
            "positional argument of kerasnets' DenseNet is `growth_rate`, "
            "keras.applications' is `include_top`; pass the keras arguments "
            f"by keyword). Received: growth_rate={growth_rate!r}"
        )
    if init_features is not None and not _positive_int(init_features):
        raise ValueError(
            "`init_features` must be None (2 * growth_rate) or a positive "
            f"integer. Received: init_features={init_features!r}"
        )
    if not 0.0 < compression <= 1.0:
        raise ValueError(
            "`compression` (theta) must be in (0, 1]. "
            f"Received: compression={compression!r}"
        )
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(
            f"`dropout_rate` must be in [0, 1). Received: dropout_rate={dropout_rate!r}"
        )


def _variant_of(blocks, growth_rate, init_features, bottleneck, compression):
    """The named ImageNet variant a generic configuration equals, if any."""
    for builder, config in IMAGENET_VARIANTS.items():
        if (
            tuple(blocks) == config["blocks"]
            and growth_rate == config["growth_rate"]
            and init_features == 2 * growth_rate
            and bottleneck
            and compression == COMPRESSION
        ):
            return builder
    return None


# ----------------------------------------------------------------- builder


def DenseNet(
    blocks,
    growth_rate=32,
    init_features=None,
    bottleneck=True,
    compression=COMPRESSION,
    dropout_rate=0.0,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=False,
    memory_efficient=False,
    name="densenet",
):
    """Instantiates an ImageNet-style DenseNet (Huang et al., CVPR 2017).

    Reference: "Densely Connected Convolutional Networks",
    https://arxiv.org/abs/1608.06993 (Table 1).

    Stem conv 7x7/2 + max pool 3x3/2, then ``len(blocks)`` dense blocks
    separated by transition layers, final BN-ReLU, global average pooling
    and the classifier. The defaults give DenseNet-BC as in Table 1; the
    paper's other forms are ``bottleneck=False`` (no 1x1 bottleneck: plain
    DenseNet or DenseNet-C) and ``compression=1.0`` (DenseNet, DenseNet-B).
    A configuration equal to a named variant (``DenseNet121`` ...) accepts
    that variant's pretrained tags.

    Args:
        blocks: number of layers of each dense block, e.g. ``[6, 12, 24, 16]``
            (first positional argument, as in keras.applications).
        growth_rate: k, the feature maps each layer adds.
        init_features: channels of the stem conv; None means 2k.
        bottleneck: use the 1x1 (4k) bottleneck conv in each layer (-B).
        compression: theta, the fraction of channels a transition keeps (-C
            when < 1).
        dropout_rate: dropout after each conv (the paper uses 0.2 without
            data augmentation).
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name: as in keras.applications. ``weights``
            is None (default), a pretrained tag or a file path (legacy keras
            ``.h5``, ``.weights.h5``, or a timm/torchvision state dict).
        memory_efficient: recompute the concatenations and BN-ReLU outputs
            in the backward pass instead of storing them (Pleiss et al.,
            "Memory-Efficient Implementation of DenseNets", arXiv:1707.06990):
            training memory grows linearly instead of quadratically with the
            depth of a dense block, for some extra step time. Same outputs,
            gradients, weights and weight layers (every weights file loads
            either way); the weightless ``*_concat`` and ``*_relu`` layers do
            not exist, except the last block's concatenation and the final
            "relu" (see ``bn_relu_conv``).

    Returns:
        A ``keras.Model``.

    Example:
        >>> model = kerasnets.DenseNet([6, 12, 32, 32], growth_rate=32)  # DenseNet-169
        >>> model = kerasnets.DenseNet([4, 4, 4], growth_rate=12, bottleneck=False,
        ...                            input_shape=(64, 64, 3), classes=10)
    """
    if (
        not isinstance(blocks, (list, tuple))
        or not blocks
        or not all(_positive_int(n) for n in blocks)
    ):
        raise ValueError(
            "`blocks` must be a non-empty list of positive layer counts, e.g. "
            f"[6, 12, 24, 16]. Received: blocks={blocks!r}"
        )
    _check_options(growth_rate, compression, dropout_rate, init_features)
    if init_features is None:
        init_features = 2 * growth_rate
    builder = (
        _variant_of(blocks, growth_rate, init_features, bottleneck, compression)
        or "DenseNet"
    )
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
        min_size=MIN_SIZE,
        include_top=include_top,
        weights=weights,
        require_flatten=True,
    )
    x = preprocessing_layer(img_input, builder=builder, weights=weights,
                            include_preprocessing=include_preprocessing)
    x = imagenet_stem(x, init_features)
    x = dense_stages(
        x, blocks, growth_rate, bottleneck, compression, dropout_rate,
        memory_efficient=memory_efficient,
    )
    x = classifier_top(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
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


def _variant(builder, name, weights, **kwargs):
    config = IMAGENET_VARIANTS[builder]
    return DenseNet(
        list(config["blocks"]),
        growth_rate=config["growth_rate"],
        weights=weights,
        name=name,
        **kwargs,
    )


_VARIANT_ARGS = """

    Args:
        include_top: whether to include the classifier (global average
            pooling + Dense "predictions").
        weights: None (random initialization), a pretrained tag ({tags}),
            or the path to a weights file: legacy keras ``.h5`` (as published
            by keras.applications), ``.weights.h5``, or a PyTorch state dict
            in timm / torchvision layout (``.safetensors``, ``.pth``, ``.bin``).
        input_tensor: optional Keras tensor to use as image input.
        input_shape: optional (height, width, 3), both at least 32; defaults
            to (224, 224, 3) with the top, (None, None, 3) without.
        pooling: None, "avg" or "max": global pooling of a headless model.
        classes: number of classes (1000 with pretrained weights and a top).
        classifier_activation: activation of "predictions" (None or
            "softmax" with pretrained weights).
        memory_efficient: recompute concatenations and BN-ReLU outputs in
            the backward pass to save training memory (see ``DenseNet``).
        include_preprocessing: bake the weights' normalisation into the
            model (raw RGB 0-255 in).
        name: the model's name.

    Returns:
        A ``keras.Model``. Inputs are preprocessed with
        ``kerasnets.models.densenet.preprocess_input`` (mode "torch"), or
        inside the model with ``include_preprocessing=True``.

    Example:
        >>> model = kerasnets.{builder}(weights={example_weights})
        >>> x = kerasnets.data.load_image(kerasnets.imagenet.sample_image(), "{builder}")
        >>> kerasnets.imagenet.decode_predictions(model.predict(x[None]))
    """


def DenseNet121(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=False,
    memory_efficient=False,
    name="densenet121",
):
    return _variant(
        "DenseNet121",
        name,
        weights,
        include_top=include_top,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing,
        memory_efficient=memory_efficient,
    )


def DenseNet169(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=False,
    memory_efficient=False,
    name="densenet169",
):
    return _variant(
        "DenseNet169",
        name,
        weights,
        include_top=include_top,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing,
        memory_efficient=memory_efficient,
    )


def DenseNet201(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=False,
    memory_efficient=False,
    name="densenet201",
):
    return _variant(
        "DenseNet201",
        name,
        weights,
        include_top=include_top,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing,
        memory_efficient=memory_efficient,
    )


def DenseNet264(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=False,
    memory_efficient=False,
    name="densenet264",
):
    return _variant(
        "DenseNet264",
        name,
        weights,
        include_top=include_top,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing,
        memory_efficient=memory_efficient,
    )


def DenseNet161(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=False,
    memory_efficient=False,
    name="densenet161",
):
    return _variant(
        "DenseNet161",
        name,
        weights,
        include_top=include_top,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing,
        memory_efficient=memory_efficient,
    )


DenseNet121.__doc__ = (
    """Instantiates DenseNet-121 (k=32, blocks 6-12-24-16).

    Huang et al., "Densely Connected Convolutional Networks", CVPR 2017
    (arXiv:1608.06993), Table 1. 7,978,856 parameters (8,062,504 with BN
    statistics), 2.83 G MACs at 224x224; keras.applications' weights: top-1
    75.0. Same architecture, layer names and weight order as
    ``keras.applications.DenseNet121``."""
    + _VARIANT_ARGS.format(
    tags='"imagenet" (keras), "tv_in1k", "ra_in1k" (timm)', builder="DenseNet121",
    example_weights='"imagenet"')
)
DenseNet169.__doc__ = (
    """Instantiates DenseNet-169 (k=32, blocks 6-12-32-32).

    Huang et al., "Densely Connected Convolutional Networks", CVPR 2017
    (arXiv:1608.06993), Table 1. 14,149,480 parameters (14,307,880 with BN
    statistics), 3.36 G MACs at 224x224; keras.applications' weights: top-1
    76.2. Same architecture, layer names and weight order as
    ``keras.applications.DenseNet169``."""
    + _VARIANT_ARGS.format(
    tags='"imagenet" (keras), "tv_in1k" (timm)', builder="DenseNet169",
    example_weights='"imagenet"')
)
DenseNet201.__doc__ = (
    """Instantiates DenseNet-201 (k=32, blocks 6-12-48-32).

    Huang et al., "Densely Connected Convolutional Networks", CVPR 2017
    (arXiv:1608.06993), Table 1. 20,013,928 parameters (20,242,984 with BN
    statistics), 4.29 G MACs at 224x224; keras.applications' weights: top-1
    77.3. Same architecture, layer names and weight order as
    ``keras.applications.DenseNet201``."""
    + _VARIANT_ARGS.format(
    tags='"imagenet" (keras), "tv_in1k" (timm)', builder="DenseNet201",
    example_weights='"imagenet"')
)
DenseNet264.__doc__ = (
    """Instantiates DenseNet-264 (k=32, blocks 6-12-64-48).

    Huang et al., "Densely Connected Convolutional Networks", CVPR 2017
    (arXiv:1608.06993), Table 1 (paper top-1 77.85). 33,337,704 parameters
    (33,736,232 with BN statistics), 5.75 G MACs at 224x224. No pretrained
    weights are published: ``weights`` defaults to None."""
    + _VARIANT_ARGS.format(
    tags="none published", builder="DenseNet264",
    example_weights="None")
)
DenseNet161.__doc__ = (
    """Instantiates DenseNet-161 (k=48, stem 96, blocks 6-12-36-24).

    Huang et al., "Densely Connected Convolutional Networks", CVPR 2017
    (arXiv:1608.06993): the wide DenseNet-BC released with the paper's
    code. 28,681,000 parameters (28,900,936 with BN statistics), 7.73 G MACs
    at 224x224; torchvision's weights (timm ``densenet161.tv_in1k``, the
    "imagenet" tag here): top-1 77.4."""
    + _VARIANT_ARGS.format(
    tags='"imagenet" = "tv_in1k" (torchvision via timm)', builder="DenseNet161",
    example_weights='"imagenet"')
)


# ------------------------------------------------------------------- CIFAR


def DenseNetCIFAR(
    depth,
    growth_rate,
    bottleneck=False,
    compression=1.0,
    dropout_rate=0.0,
    classes=10,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classifier_activation="softmax",
    include_preprocessing=False,
    memory_efficient=False,
    name=None,
):
    """Instantiates the CIFAR/SVHN DenseNet of Huang et al. (CVPR 2017).

    Reference: "Densely Connected Convolutional Networks",
    https://arxiv.org/abs/1608.06993, Section 4 and Table 2.

    Stem 3x3 conv with 16 channels (2k for DenseNet-BC), three dense blocks
    of n layers on 32x32, 16x16 and 8x8 maps with n = (depth - 4) / 3
    (DenseNet) or (depth - 4) / 6 (bottleneck layers count twice), transition
    layers BN-ReLU-Conv1x1-AvgPool2x2, then BN-ReLU, global average pooling
    and the classifier. Weights are always trained from scratch here (no
    published files).

    Parameters (10 classes) and MACs at 32x32, with the paper's C10+ / C100+
    errors:

    | model                 | params     | MACs    | C10+ / C100+  |
    |-----------------------|------------|---------|---------------|
    | (40, 12)              | 1,019,722  | 0.26 G  | 5.24 / 24.42  |
    | (100, 12)             | 6,979,642  | 1.77 G  | 4.10 / 20.20  |
    | BC (100, 12)          | 769,162    | 0.29 G  | 4.51 / 22.27  |
    | BC (250, 24)          | 15,324,406 | 5.42 G  | 3.62 / 17.60  |
    | BC (190, 40)          | 25,624,430 | 9.30 G  | 3.46 / 17.18  |

    (BC = ``bottleneck=True, compression=0.5``.)

    Args:
        depth: L, the number of conv and dense layers: 3n + 4, or 6n + 4
            with the bottleneck.
        growth_rate: k.
        bottleneck: 1x1 (4k) bottleneck in every layer (DenseNet-B).
        compression: theta of the transitions (DenseNet-C when < 1).
        dropout_rate: dropout after each conv (0.2 in the paper without
            data augmentation).
        classes: number of classes (10).
        include_top, weights, input_tensor, input_shape (default 32x32x3),
            pooling, classifier_activation: as in keras.applications;
            ``weights`` is None or a path to a Keras weights file.
        memory_efficient: recompute concatenations and BN-ReLU outputs in
            the backward pass to save training memory (see ``DenseNet``).
        name: model name; default e.g. "densenet_bc100_k12", "densenet40_k12".

    Returns:
        A ``keras.Model``.

    Example:
        >>> model = kerasnets.DenseNetCIFAR(100, 12, bottleneck=True, compression=0.5)
        >>> model.count_params()  # DenseNet-BC (L=100, k=12): 0.8 M
    """
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral):
        raise ValueError(f"`depth` must be an integer. Received: depth={depth!r}")
    per_layer = 6 if bottleneck else 3
    if depth < 4 + per_layer or (depth - 4) % per_layer:
        form = "6n + 4 with `bottleneck=True`" if bottleneck else "3n + 4"
        raise ValueError(
            f"DenseNetCIFAR depth must be {form} with n >= 1 (3 dense blocks "
            f"of n layers plus the stem, two transitions and the classifier). "
            f"Received: depth={depth}"
        )
    _check_options(growth_rate, compression, dropout_rate)
    num_layers = (depth - 4) // per_layer
    is_bc = bottleneck and compression < 1.0
    if name is None:
        form = ("b" if bottleneck else "") + ("c" if compression < 1.0 else "")
        name = f"densenet_{form}{depth}_k{growth_rate}" if form else (
            f"densenet{depth}_k{growth_rate}"
        )
    builder = "DenseNetCIFAR"
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
        default_size=32,
        min_size=8,
        include_top=include_top,
        weights=weights,
        require_flatten=True,
    )
    x = preprocessing_layer(img_input, builder=builder, weights=weights,
                            include_preprocessing=include_preprocessing)
    x = layers.Conv2D(
        2 * growth_rate if is_bc else 16,
        3,
        padding="same",
        use_bias=False,
        name="conv1_conv",
    )(x)
    x = dense_stages(
        x, [num_layers] * 3, growth_rate, bottleneck, compression, dropout_rate,
        memory_efficient=memory_efficient,
    )
    x = classifier_top(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
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


# ------------------------------------------------------ timm / torchvision


_TIMM_PATTERNS = [
    (re.compile(r"conv1_(conv|bn)$"), lambda m: {"conv": "conv0", "bn": "norm0"}[m[1]]),
    (
        re.compile(r"conv(\d+)_block(\d+)_(0_bn|1_conv|1_bn|2_conv)$"),
        lambda m: f"denseblock{int(m[1]) - 1}.denselayer{m[2]}."
        + {"0_bn": "norm1", "1_conv": "conv1", "1_bn": "norm2", "2_conv": "conv2"}[m[3]],
    ),
    (
        re.compile(r"pool(\d+)_(bn|conv)$"),
        lambda m: f"transition{int(m[1]) - 1}." + {"bn": "norm", "conv": "conv"}[m[2]],
    ),
    (re.compile(r"bn$"), lambda m: "norm5"),
]


def timm_layer_map(model):
    """Keras layer name -> timm/torchvision module, for ``weights=path``.

    ``conv1_conv``/``conv1_bn`` -> ``features.conv0``/``norm0``;
    ``conv{s}_block{i}_{0_bn,1_conv,1_bn,2_conv}`` ->
    ``features.denseblock{s-1}.denselayer{i}.{norm1,conv1,norm2,conv2}``;
    ``pool{s}_{bn,conv}`` -> ``features.transition{s-1}.{norm,conv}``;
    ``bn`` -> ``features.norm5``; ``predictions`` -> ``classifier``.
    """
    layer_map = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name == "predictions":
            layer_map[layer.name] = "classifier"
            continue
        for pattern, target in _TIMM_PATTERNS:
            match = pattern.fullmatch(layer.name)
            if match:
                layer_map[layer.name] = "features." + target(match)
                break
    return layer_map, ("classifier",)


for _builder in ["DenseNet", *IMAGENET_VARIANTS]:
    weights_lib.register_converter(_builder, timm_layer_map)


# ----------------------------------------------------------- preprocessing


def preprocess_input(x, data_format=None):
    """Scales to [0, 1] and normalises with the ImageNet mean/std
    (keras.applications.densenet semantics, mode "torch")."""
    return keras.applications.imagenet_utils.preprocess_input(
        x, data_format=data_format, mode="torch"
    )


__all__ = [
    "DenseNet",
    "DenseNet121",
    "DenseNet161",
    "DenseNet169",
    "DenseNet201",
    "DenseNet264",
    "DenseNetCIFAR",
    "conv_block",
    "decode_predictions",
    "dense_block",
    "preprocess_input",
    "transition_block",
]
