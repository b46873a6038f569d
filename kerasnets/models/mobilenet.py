"""MobileNet v1, as keras.applications builds it.

Reference:
- A. G. Howard, M. Zhu, B. Chen, D. Kalenichenko, W. Wang, T. Weyand,
  M. Andreetto, H. Adam. "MobileNets: Efficient Convolutional Neural Networks
  for Mobile Vision Applications", arXiv:1704.04861 (2017).

The network is a 3x3 stride-2 stem followed by 13 depthwise separable blocks
(paper, Table 1), global average pooling and a 1x1 convolution classifier.
Two hyperparameters thin it: the width multiplier ``alpha`` scales every
layer's channels, the resolution multiplier is the input size (128, 160, 192
or 224). keras.applications additionally exposes ``depth_multiplier``, the
number of depthwise outputs per input channel.

| alpha | trainable params | keras total | MACs at 224 | top-1 (paper) |
|---|---|---|---|---|
| 1.0  | 4,231,976 | 4,253,864 | 569 M | 70.6 |
| 0.75 | 2,585,560 | 2,601,976 | 325 M | 68.4 |
| 0.5  | 1,331,592 | 1,342,536 | 149 M | 63.7 |
| 0.25 |   470,072 |   475,544 |  41 M | 50.6 |

MACs scale with the input area: alpha 1.0 costs 418 M at 192, 290 M at 160
and 186 M at 128 (top-1 69.1 / 67.2 / 64.4 in the paper).

Layer names, layer order and numerics (BN epsilon 1e-3, ReLU6, TF "same"
padding) equal ``keras.applications.MobileNet``, so the published
keras.applications ``.h5`` files load by topology and give identical outputs.
The convolution + BN (+ ReLU6) units here are shared with MobileNet v2
(``kerasnets.models.mobilenet_v2``).
"""

import warnings

import keras
from keras import layers

from kerasnets.imagenet import decode_predictions  # noqa: F401  (offline, bundled index)
from kerasnets.layers import BatchNormalization
from kerasnets.models.common import (
    check_arguments,
    finish_model,
    global_pool,
    image_input,
    preprocessing_layer,
    is_weights_path,
    tf_same_padding,
)
from kerasnets.weights import WeightsEntry, register

BASE_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
)
# Published keras.applications weights: one file per (alpha, resolution).
ALPHAS = (0.25, 0.5, 0.75, 1.0)
RESOLUTIONS = (128, 160, 192, 224)
MIN_SIZE = 32
BN_EPSILON = 1e-3
# Top-1 reported in the paper (Tables 6 and 7): alpha at 224, 1.0 per size.
_PAPER_TOP1 = {
    (1.0, 224): 70.6,
    (0.75, 224): 68.4,
    (0.5, 224): 63.7,
    (0.25, 224): 50.6,
    (1.0, 192): 69.1,
    (1.0, 160): 67.2,
    (1.0, 128): 64.4,
}

# Paper Table 1. The stem is a full 3x3 stride-2 convolution with 32 filters,
# then 13 depthwise separable blocks:
#   (pointwise filters, stride of the 3x3 depthwise convolution)
# (Table 1 prints "s2" for the last block; the released models, and keras,
# keep stride 1 there so that the final feature map is 7x7 at 224.)
STEM_FILTERS = 32
BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


def _alpha_text(alpha):
    """keras.applications' file-name spelling of alpha: 0.75 -> "7_5"."""
    return {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}[alpha]


def weights_key(alpha, rows):
    return f"MobileNet_{float(alpha)}_{rows}"


for _alpha in ALPHAS:
    for _rows in RESOLUTIONS:
        _stem = f"{BASE_WEIGHTS_URL}mobilenet_{_alpha_text(_alpha)}_{_rows}"
        register(
            weights_key(_alpha, _rows),
            "imagenet",
            WeightsEntry(
                url=f"{_stem}_tf.h5",
                notop_url=f"{_stem}_tf_no_top.h5",
                format="keras_h5",
                input_size=_rows,
                preprocessing="tf",
                source="keras.applications",
                license="Apache-2.0",
                top1=_PAPER_TOP1.get((_alpha, _rows)),
            ),
        )


# ------------------------------------------------------------------ units
# Shared with MobileNet v2: convolution + BN (+ ReLU6) units with the names
# keras.applications gives them. v1 uses Keras' default BN momentum (0.99),
# v2 0.999; both use epsilon 1e-3.


def conv_bn(
    x,
    filters,
    name,
    *,
    kernel_size=1,
    strides=1,
    bn_name=None,
    relu_name=None,
    relu6=True,
    momentum=0.99,
):
    """Convolution (no bias) -> BN -> ReLU6 (or linear with ``relu6=False``).

    Names default to ``name``, ``name_bn`` and ``name_relu``.
    """
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        name=name,
    )(x)
    x = BatchNormalization(
        epsilon=BN_EPSILON, momentum=momentum, name=bn_name or f"{name}_bn"
    )(x)
    if relu6:
        x = layers.ReLU(6.0, name=relu_name or f"{name}_relu")(x)
    return x


def depthwise_conv_bn(
    x,
    name,
    *,
    strides=1,
    depth_multiplier=1,
    pad_name,
    stride2_padding="tf_same",
    bn_name=None,
    relu_name=None,
    momentum=0.99,
):
    """3x3 depthwise convolution (no bias) -> BN -> ReLU6.

    A stride-2 convolution is explicitly zero-padded then "valid":
    ``stride2_padding="tf_same"`` pads as TF "same" for the map's actual size
    (v2); ``"bottom_right"`` always pads one row/column at the bottom/right,
    which is TF "same" on even maps only (v1, as keras builds it: on odd maps
    the last row/column is dropped).
    """
    if strides == 1:
        padding = "same"
    else:
        padding = "valid"
        if stride2_padding == "tf_same":
            x = tf_same_padding(x, 3, name=pad_name)
        else:
            x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=pad_name)(x)
    x = layers.DepthwiseConv2D(
        3,
        strides=strides,
        padding=padding,
        depth_multiplier=depth_multiplier,
        use_bias=False,
        name=name,
    )(x)
    x = BatchNormalization(
        epsilon=BN_EPSILON, momentum=momentum, name=bn_name or f"{name}_bn"
    )(x)
    return layers.ReLU(6.0, name=relu_name or f"{name}_relu")(x)


# ------------------------------------------------------------ input checks
# keras.applications' MobileNet-specific input rules (v1 and v2): the
# pretrained resolution follows the input rows, and with a pretrained top the
# input must be exactly that resolution.


def default_input_size(shape, resolutions):
    """The published resolution that ``shape`` (rows, cols, ...) asks for."""
    if shape is not None:
        rows, cols = shape[0], shape[1]
        if rows == cols and rows in resolutions:
            return rows
    return 224


def check_top_input_shape(input_shape, *, default_size, include_top, pretrained):
    """keras' obtain_input_shape rules for a model with its classifier."""
    if not include_top or input_shape is None:
        return
    input_shape = tuple(input_shape)
    default_shape = (default_size, default_size, 3)
    if pretrained and input_shape != default_shape:
        raise ValueError(
            "When setting `include_top=True` and loading `imagenet` weights, "
            f"`input_shape` should be {default_shape}.  Received: "
            f"input_shape={input_shape}"
        )
    if None in input_shape:
        raise ValueError(
            "If `include_top` is True, you should specify a static "
            f"`input_shape`. Received: input_shape={input_shape}"
        )


def input_rows(input_shape, *, default_size, include_top):
    """(rows, cols) of the input as keras.applications resolves them."""
    if input_shape is None:
        return (default_size, default_size) if include_top else (None, None)
    return input_shape[0], input_shape[1]


def pretrained_rows(rows, cols, resolutions):
    """The resolution of the pretrained file to load (with keras' warning)."""
    if rows != cols or rows not in resolutions:
        warnings.warn(
            "`input_shape` is undefined or non-square, or `rows` is not in "
            f"{list(resolutions)}. Weights for input shape (224, 224) will be "
            "loaded as the default.",
            stacklevel=3,
        )
        return 224
    return rows


def is_pretrained_tag(weights):
    return weights is not None and not is_weights_path(weights)


# ----------------------------------------------------------------- blocks


def depthwise_separable_block(
    x, filters, strides, *, alpha, depth_multiplier, block_id
):
    """Depthwise separable convolution (paper, Fig. 3 right).

    3x3 depthwise conv -> BN -> ReLU6, then 1x1 pointwise conv to
    ``int(filters * alpha)`` channels -> BN -> ReLU6.
    """
    x = depthwise_conv_bn(
        x,
        f"conv_dw_{block_id}",
        strides=strides,
        depth_multiplier=depth_multiplier,
        pad_name=f"conv_pad_{block_id}",
        stride2_padding="bottom_right",
    )
    return conv_bn(x, int(filters * alpha), f"conv_pw_{block_id}")


# ---------------------------------------------------------------- builder


def mobilenet_top(x, include_top, pooling, classes, dropout, classifier_activation):
    """MobileNet's head: the paper's fully connected layer as a 1x1
    convolution ``conv_preds`` after global pooling (or ``pooling``)."""
    if not include_top:
        return global_pool(x, pooling)
    x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Conv2D(classes, 1, padding="same", name="conv_preds")(x)
    x = layers.Reshape((classes,), name="reshape_2")(x)
    return layers.Activation(classifier_activation, name="predictions")(x)


def MobileNet(
    input_shape=None,
    alpha=1.0,
    depth_multiplier=1,
    dropout=1e-3,
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=False,
    name=None,
):
    """Instantiates MobileNet v1 (Howard et al., 2017, arXiv:1704.04861).

    Same arguments, architecture, layer names and weight files as
    ``keras.applications.MobileNet``. At 224x224 with alpha 1.0: 4.23 M
    trainable parameters (4.25 M with BN statistics), 569 M multiply-adds,
    top-1 70.6 (alpha 0.75 / 0.5 / 0.25: 2.59 / 1.33 / 0.47 M params,
    325 / 149 / 41 M MACs).

    Args:
        input_shape: optional (rows, cols, 3); at least 32x32. With
            ``weights="imagenet"`` the rows pick the published file (128, 160,
            192 or 224; otherwise 224 is loaded, with a warning), and with
            ``include_top=True`` the shape must be that resolution.
        alpha: width multiplier; the pretrained files exist for 0.25, 0.5,
            0.75 and 1.0.
        depth_multiplier: depthwise outputs per input channel (1 for the
            pretrained weights).
        dropout: dropout rate before the classifier.
        include_top: whether to include the classifier (1x1 convolution
            ``conv_preds``).
        weights: None, a pretrained tag (``"imagenet"``), or a path to a
            weights file (keras.applications ``.h5`` or ``.weights.h5``).
        input_tensor: optional Keras tensor to use as the image input.
        pooling: None, "avg" or "max"; pooling of a model without its top.
        classes: number of classes (1000 with the pretrained classifier).
        classifier_activation: activation of the top; None returns logits.
        include_preprocessing: bake the weights' normalisation into the
            model (raw RGB 0-255 in); otherwise inputs are in [-1, 1]
            (``preprocess_input``).
        name: model name (default ``mobilenet_{alpha:.2f}_{rows}``).

    Returns:
        A ``keras.Model``.

    Example:
        >>> model = kerasnets.MobileNet(weights="imagenet")
        >>> x = kerasnets.data.load_image(kerasnets.imagenet.sample_image(), "MobileNet")
        >>> kerasnets.imagenet.decode_predictions(model.predict(x[None]))
    """
    builder = "MobileNet"
    check_arguments(
        builder,
        weights=weights,
        include_top=include_top,
        classes=classes,
        pooling=pooling,
        classifier_activation=classifier_activation,
    )
    pretrained = is_pretrained_tag(weights)
    default_size = default_input_size(input_shape, RESOLUTIONS)
    check_top_input_shape(
        input_shape,
        default_size=default_size,
        include_top=include_top,
        pretrained=pretrained,
    )
    img_input = image_input(
        input_tensor,
        input_shape,
        default_size=default_size,
        min_size=MIN_SIZE,
        include_top=include_top,
        weights=weights,
        require_flatten=True,
    )
    x = preprocessing_layer(img_input, builder=builder, weights=weights,
                            include_preprocessing=include_preprocessing)
    rows, cols = input_rows(
        input_shape, default_size=default_size, include_top=include_top
    )
    if pretrained:
        if depth_multiplier != 1:
            raise ValueError(
                "If imagenet weights are being loaded, depth multiplier must "
                f"be 1.  Received depth_multiplier={depth_multiplier}"
            )
        if alpha not in ALPHAS:
            raise ValueError(
                "If imagenet weights are being loaded, alpha can be one of "
                "`0.25`, `0.50`, `0.75` or `1.0` only.  "
                f"Received alpha={alpha}"
            )
        rows = pretrained_rows(rows, cols, RESOLUTIONS)

    x = conv_bn(
        x, int(STEM_FILTERS * alpha), "conv1", kernel_size=3, strides=2
    )
    for block_id, (filters, strides) in enumerate(BLOCKS, start=1):
        x = depthwise_separable_block(
            x,
            filters,
            strides,
            alpha=alpha,
            depth_multiplier=depth_multiplier,
            block_id=block_id,
        )

    x = mobilenet_top(x, include_top, pooling, classes, dropout, classifier_activation)

    return finish_model(
        img_input,
        x,
        input_tensor=input_tensor,
        name=name or f"mobilenet_{alpha:0.2f}_{rows}",
        builder=builder,
        weights=weights,
        include_top=include_top,
        weights_key=weights_key(alpha, rows) if pretrained else None,
    )


def preprocess_input(x, data_format=None):
    """Scales pixels from [0, 255] to [-1, 1] (keras "tf" mode)."""
    return keras.applications.imagenet_utils.preprocess_input(
        x, data_format=data_format, mode="tf"
    )


__all__ = [
    "MobileNet",
    "conv_bn",
    "decode_predictions",
    "depthwise_conv_bn",
    "depthwise_separable_block",
    "preprocess_input",
]
