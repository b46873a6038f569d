"""MobileNet v2, as keras.applications builds it.

Reference:
- M. Sandler, A. Howard, M. Zhu, A. Zhmoginov, L.-C. Chen. "MobileNetV2:
  Inverted Residuals and Linear Bottlenecks", CVPR 2018, arXiv:1801.04381.

The network is a 3x3 stride-2 stem, 17 inverted residual blocks with linear
bottlenecks (paper, Table 2), a 1x1 convolution to 1280 channels, global
average pooling and a dense classifier. The width multiplier ``alpha`` scales
every layer (rounded to multiples of 8) except the last convolution, which
only grows (alpha > 1).

| alpha | trainable params | keras total | MACs at 224 | top-1 |
|---|---|---|---|---|
| 0.35 | 1,677,128 | 1,691,208 |  59 M | 60.3 |
| 0.5  | 1,968,680 | 1,987,224 |  97 M | 65.4 |
| 0.75 | 2,636,424 | 2,663,064 | 209 M | 69.8 |
| 1.0  | 3,504,872 | 3,538,984 | 300 M | 71.8 |
| 1.3  | 5,386,792 | 5,431,048 | 509 M | 74.4 |
| 1.4  | 6,108,776 | 6,156,712 | 582 M | 75.0 |

Layer names, layer order and numerics (BN epsilon 1e-3, ReLU6, TF "same"
padding) equal ``keras.applications.MobileNetV2``, so the published
keras.applications ``.h5`` files load by topology and give identical outputs.
The convolution units and the input rules are MobileNet v1's
(``kerasnets.models.mobilenet``).
"""

import keras
from keras import layers

from kerasnets.models.common import (
    check_arguments,
    classifier_top,
    finish_model,
    image_input,
    preprocessing_layer,
    make_divisible,
)
from kerasnets.models.mobilenet import (
    MIN_SIZE,
    check_top_input_shape,
    conv_bn,
    decode_predictions,
    default_input_size,
    depthwise_conv_bn,
    input_rows,
    is_pretrained_tag,
    preprocess_input,
    pretrained_rows,
)
from kerasnets.weights import WeightsEntry, register

BASE_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
)
# Published keras.applications weights: one file per (alpha, resolution).
ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
RESOLUTIONS = (96, 128, 160, 192, 224)
BN_MOMENTUM = 0.999
# Top-1 at 224 of the published checkpoints.
_TOP1_224 = {0.35: 60.3, 0.5: 65.4, 0.75: 69.8, 1.0: 71.8, 1.3: 74.4, 1.4: 75.0}

# Paper Table 2. Stem: 3x3 stride-2 convolution, 32 filters. Then stages of
#   (t: expansion factor, c: output channels, n: blocks, s: first stride)
# and a 1x1 convolution to 1280 channels.
STEM_FILTERS = 32
STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
LAST_FILTERS = 1280


def weights_key(alpha, rows):
    return f"MobileNetV2_{float(alpha)}_{rows}"


for _alpha in ALPHAS:
    for _rows in RESOLUTIONS:
        _stem = (
            f"{BASE_WEIGHTS_URL}mobilenet_v2_weights_tf_dim_ordering_tf_kernels"
            f"_{float(_alpha)}_{_rows}"
        )
        register(
            weights_key(_alpha, _rows),
            "imagenet",
            WeightsEntry(
                url=f"{_stem}.h5",
                notop_url=f"{_stem}_no_top.h5",
                format="keras_h5",
                input_size=_rows,
                preprocessing="tf",
                source="keras.applications",
                license="Apache-2.0",
                top1=_TOP1_224[_alpha] if _rows == 224 else None,
            ),
        )


def inverted_res_block(x, expansion, filters, strides, *, alpha, block_id):
    """Inverted residual block with a linear bottleneck (paper, Table 1).

    1x1 expansion to ``expansion`` x the input channels -> BN -> ReLU6 (absent
    when t = 1), 3x3 depthwise (stride ``strides``) -> BN -> ReLU6, linear 1x1
    projection to ``make_divisible(int(filters * alpha), 8)`` channels -> BN;
    the input is added when the shapes allow (stride 1, same channels).
    """
    inputs = x
    in_channels = x.shape[-1]
    out_channels = make_divisible(int(filters * alpha), 8)
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    if expansion != 1:
        x = conv_bn(
            x,
            expansion * in_channels,
            f"{prefix}expand",
            bn_name=f"{prefix}expand_BN",
            momentum=BN_MOMENTUM,
        )
    x = depthwise_conv_bn(
        x,
        f"{prefix}depthwise",
        strides=strides,
        pad_name=f"{prefix}pad",
        stride2_padding="tf_same",
        bn_name=f"{prefix}depthwise_BN",
        momentum=BN_MOMENTUM,
    )
    x = conv_bn(
        x,
        out_channels,
        f"{prefix}project",
        bn_name=f"{prefix}project_BN",
        relu6=False,
        momentum=BN_MOMENTUM,
    )
    if strides == 1 and in_channels == out_channels:
        x = layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def MobileNetV2(
    input_shape=None,
    alpha=1.0,
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=False,
    name=None,
):
    """Instantiates MobileNet v2 (Sandler et al., 2018, arXiv:1801.04381).

    Same arguments, architecture, layer names and weight files as
    ``keras.applications.MobileNetV2``. At 224x224 with alpha 1.0: 3.50 M
    trainable parameters (3.54 M with BN statistics), 300 M multiply-adds,
    top-1 71.8 (alpha 0.35 / 0.5 / 0.75 / 1.3 / 1.4: 1.68 / 1.97 / 2.64 /
    5.39 / 6.11 M params, 59 / 97 / 209 / 509 / 582 M MACs).

    Args:
        input_shape: optional (rows, cols, 3); at least 32x32. With
            ``weights="imagenet"`` the rows pick the published file (96, 128,
            160, 192 or 224; otherwise 224 is loaded, with a warning), and
            with ``include_top=True`` the shape must be that resolution.
        alpha: width multiplier; the pretrained files exist for 0.35, 0.5,
            0.75, 1.0, 1.3 and 1.4.
        include_top: whether to include the classifier (Dense
            ``predictions``).
        weights: None, a pretrained tag (``"imagenet"``), or a path to a
            weights file (keras.applications ``.h5`` or ``.weights.h5``).
        input_tensor: optional Keras tensor to use as the image input; its
            size picks the pretrained file when ``input_shape`` is None.
        pooling: None, "avg" or "max"; pooling of a model without its top.
        classes: number of classes (1000 with the pretrained classifier).
        classifier_activation: activation of the top; None returns logits.
        include_preprocessing: bake the weights' normalisation into the
            model (raw RGB 0-255 in); otherwise inputs are in [-1, 1]
            (``preprocess_input``).
        name: model name (default ``mobilenetv2_{alpha:.2f}_{rows}``).

    Returns:
        A ``keras.Model``.

    Example:
        >>> model = kerasnets.MobileNetV2(weights="imagenet")
        >>> x = kerasnets.data.load_image(kerasnets.imagenet.sample_image(), "MobileNetV2")
        >>> kerasnets.imagenet.decode_predictions(model.predict(x[None]))
    """
    builder = "MobileNetV2"
    check_arguments(
        builder,
        weights=weights,
        include_top=include_top,
        classes=classes,
        pooling=pooling,
        classifier_activation=classifier_activation,
    )
    pretrained = is_pretrained_tag(weights)
    size_hint = input_shape
    if input_tensor is not None:
        _check_input_tensor(input_tensor, input_shape)
        if input_shape is None and keras.backend.is_keras_tensor(input_tensor):
            size_hint = tuple(input_tensor.shape)[1:]
    default_size = default_input_size(size_hint, RESOLUTIONS)
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
        if alpha not in ALPHAS:
            raise ValueError(
                "If imagenet weights are being loaded, alpha must be one of "
                "`0.35`, `0.50`, `0.75`, `1.0`, `1.3` or `1.4` only; "
                f"Received `alpha={alpha}`"
            )
        rows = pretrained_rows(rows, cols, RESOLUTIONS)

    x = conv_bn(
        x,
        make_divisible(STEM_FILTERS * alpha, 8),
        "Conv1",
        kernel_size=3,
        strides=2,
        bn_name="bn_Conv1",
        momentum=BN_MOMENTUM,
    )
    block_id = 0
    for expansion, filters, repeats, first_stride in STAGES:
        for i in range(repeats):
            x = inverted_res_block(
                x,
                expansion,
                filters,
                first_stride if i == 0 else 1,
                alpha=alpha,
                block_id=block_id,
            )
            block_id += 1
    # The last convolution is not thinned, only widened (paper, Sec. 6.1).
    last_filters = (
        make_divisible(LAST_FILTERS * alpha, 8) if alpha > 1.0 else LAST_FILTERS
    )
    x = conv_bn(
        x, last_filters, "Conv_1", relu_name="out_relu", momentum=BN_MOMENTUM
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
        name=name or f"mobilenetv2_{alpha:0.2f}_{rows}",
        builder=builder,
        weights=weights,
        include_top=include_top,
        weights_key=weights_key(alpha, rows) if pretrained else None,
    )


def _check_input_tensor(input_tensor, input_shape):
    """keras' consistency rules for ``input_tensor`` next to ``input_shape``."""
    if input_shape is None:
        return
    if not keras.backend.is_keras_tensor(input_tensor):
        raise ValueError(
            "input_tensor is not a Keras tensor; Received "
            f"`input_tensor={input_tensor}`"
        )
    if input_tensor.shape[2] != input_shape[1]:
        raise ValueError(
            "input_tensor.shape[2] must equal input_shape[1]; Received "
            f"`input_tensor.shape={input_tensor.shape}`, "
            f"`input_shape={input_shape}`"
        )


__all__ = ["MobileNetV2", "decode_predictions", "preprocess_input"]
