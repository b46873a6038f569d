"""MobileNetV3 (Howard et al., "Searching for MobileNetV3", ICCV 2019,
arXiv:1905.02244).

MobileNetV3 stacks "bneck" blocks: MobileNetV2's inverted residual (1x1
expansion, depthwise k x k, linear 1x1 projection, residual when the shape is
kept) with optional squeeze-and-excitation on the expanded features and the
paper's hard-swish nonlinearity in the deeper half. The two searched networks
are Table 1 (Large) and Table 2 (Small) below; the "efficient last stage"
pools before the 1x1 head convolution, which has no BatchNorm.

The architecture, layer names, layer order and weight order are those of
``keras.applications.MobileNetV3Large/Small``, so keras' published ``.h5``
files load unchanged and give the same outputs. The "minimalistic" variants
use 3x3 kernels, ReLU and no SE throughout.

Pretrained weights (tags, per ``alpha``/``minimalistic``):

- ``"imagenet"``: keras.applications' files (converted TF-slim checkpoints),
  for Large/Small 0.75, 1.0 and 1.0 minimalistic;
- ``"tf_in1k"``: timm's ``tf_mobilenetv3_*`` ports of the same TF checkpoints
  (safetensors, converted on load), the same configurations.

Both expect inputs in [-1, 1]; with ``include_preprocessing=True`` (default)
the model's own ``Rescaling`` maps 0-255 pixels there, so ``preprocess_input``
is the identity, as in keras.
"""

import collections
import warnings

from keras import layers

from kerasnets.imagenet import decode_predictions  # noqa: F401  (offline, bundled index)
from kerasnets.layers import BatchNormalization, hard_sigmoid, hard_swish
from kerasnets.models.common import (
    check_arguments,
    finish_model,
    global_pool,
    image_input,
    is_weights_path,
    make_divisible,
    tf_same_padding,
)
from kerasnets.weights import WeightsEntry, register, register_converter

# ------------------------------------------------------------------ weights

KERAS_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/"
)
TIMM_WEIGHTS_URL = "https://huggingface.co/timm/{}/resolve/main/model.safetensors"

# (model type, alpha, minimalistic): (keras md5 with top, md5 without top,
# timm model name, top-1 reported for the TF-slim checkpoint).
PRETRAINED = {
    ("large", 0.75, False): (
        "765b44a33ad4005b3ac83185abf1d0eb",
        "40af19a13ebea4e2ee0c676887f69a2e",
        "tf_mobilenetv3_large_075.in1k",
        73.3,
    ),
    ("large", 1.0, False): (
        "59e551e166be033d707958cf9e29a6a7",
        "07fb09a5933dd0c8eaafa16978110389",
        "tf_mobilenetv3_large_100.in1k",
        75.2,
    ),
    ("large", 1.0, True): (
        "675e7b876c45c57e9e63e6d90a36599c",
        "ec5221f64a2f6d1ef965a614bdae7973",
        "tf_mobilenetv3_large_minimal_100.in1k",
        72.3,
    ),
    ("small", 0.75, False): (
        "cb65d4e5be93758266aa0a7f2c6708b7",
        "ebdb5cc8e0b497cd13a7c275d475c819",
        "tf_mobilenetv3_small_075.in1k",
        65.4,
    ),
    ("small", 1.0, False): (
        "8768d4c2e7dee89b9d02b2d03d65d862",
        "d3e8ec802a04aa4fc771ee12a9a9b836",
        "tf_mobilenetv3_small_100.in1k",
        67.4,
    ),
    ("small", 1.0, True): (
        "99cd97fb2fcdad2bf028eb838de69e37",
        "cde8136e733e811080d9fcd8a252f7e4",
        "tf_mobilenetv3_small_minimal_100.in1k",
        61.9,
    ),
}


def builder_name(model_type):
    return "MobileNetV3" + model_type.capitalize()


def weights_key(model_type, alpha, minimalistic):
    """Registry key of one configuration, e.g. "MobileNetV3Large_1.0" or
    "MobileNetV3Small_1.0_minimalistic"."""
    key = f"{builder_name(model_type)}_{float(alpha)}"
    return key + "_minimalistic" if minimalistic else key


def _register_pretrained():
    for (model_type, alpha, minimalistic), spec in PRETRAINED.items():
        top_hash, notop_hash, timm_name, top1 = spec
        stem = "weights_mobilenet_v3_{}{}_224_{}_float".format(
            model_type, "_minimalistic" if minimalistic else "", alpha
        )
        key = weights_key(model_type, alpha, minimalistic)
        register(
            key,
            "imagenet",
            WeightsEntry(
                url=KERAS_WEIGHTS_URL + stem + ".h5",
                file_hash=top_hash,
                notop_url=KERAS_WEIGHTS_URL + stem + "_no_top_v2.h5",
                notop_hash=notop_hash,
                format="keras_h5",
                # The model rescales 0-255 pixels itself (Rescaling layer,
                # include_preprocessing=True): nothing to do beforehand.
                preprocessing="none",
                source="keras.applications",
                license="Apache-2.0",
                top1=top1,
            ),
        )
        register(
            key,
            "tf_in1k",
            WeightsEntry(
                url=TIMM_WEIGHTS_URL.format(timm_name),
                format="safetensors",
                # timm normalises with mean = std = 0.5 (x / 127.5 - 1): what
                # the model's own Rescaling does (include_preprocessing=True,
                # the default), so nothing is applied beforehand, as for the
                # keras files; without it, use mode "tf".
                preprocessing="none",
                source=f"timm {timm_name}",
                license="Apache-2.0",
            ),
        )


_register_pretrained()

# ------------------------------------------------------------- architecture

# One "bneck" row of the paper's Tables 1 and 2: depthwise kernel size,
# expansion ratio (written as the paper's "exp size" / input channels),
# output channels (#out), squeeze-and-excitation, nonlinearity ("RE" = ReLU,
# "HS" = hard-swish) and stride of the depthwise convolution.
BlockSpec = collections.namedtuple(
    "BlockSpec", "kernel expansion filters se activation stride"
)

# Table 1: MobileNetV3-Large (stem conv 3x3/2, 16 channels, hard-swish).
LARGE_BLOCKS = (
    BlockSpec(3, 16 / 16, 16, False, "RE", 1),
    BlockSpec(3, 64 / 16, 24, False, "RE", 2),
    BlockSpec(3, 72 / 24, 24, False, "RE", 1),
    BlockSpec(5, 72 / 24, 40, True, "RE", 2),
    BlockSpec(5, 120 / 40, 40, True, "RE", 1),
    BlockSpec(5, 120 / 40, 40, True, "RE", 1),
    BlockSpec(3, 240 / 40, 80, False, "HS", 2),
    BlockSpec(3, 200 / 80, 80, False, "HS", 1),
    BlockSpec(3, 184 / 80, 80, False, "HS", 1),
    BlockSpec(3, 184 / 80, 80, False, "HS", 1),
    BlockSpec(3, 480 / 80, 112, True, "HS", 1),
    BlockSpec(3, 672 / 112, 112, True, "HS", 1),
    BlockSpec(5, 672 / 112, 160, True, "HS", 2),
    BlockSpec(5, 960 / 160, 160, True, "HS", 1),
    BlockSpec(5, 960 / 160, 160, True, "HS", 1),
)
LARGE_LAST_POINT_CHANNELS = 1280  # then conv 1x1 960 (6x), pool, 1280, k

# Table 2: MobileNetV3-Small. (The paper marks SE on the last 1x1 conv too;
# the released checkpoints, keras and timm have none there.)
SMALL_BLOCKS = (
    BlockSpec(3, 16 / 16, 16, True, "RE", 2),
    BlockSpec(3, 72 / 16, 24, False, "RE", 2),
    BlockSpec(3, 88 / 24, 24, False, "RE", 1),
    BlockSpec(5, 96 / 24, 40, True, "HS", 2),
    BlockSpec(5, 240 / 40, 40, True, "HS", 1),
    BlockSpec(5, 240 / 40, 40, True, "HS", 1),
    BlockSpec(5, 120 / 40, 48, True, "HS", 1),
    BlockSpec(5, 144 / 48, 48, True, "HS", 1),
    BlockSpec(5, 288 / 48, 96, True, "HS", 2),
    BlockSpec(5, 576 / 96, 96, True, "HS", 1),
    BlockSpec(5, 576 / 96, 96, True, "HS", 1),
)
SMALL_LAST_POINT_CHANNELS = 1024  # then conv 1x1 576 (6x), pool, 1024, k

SE_RATIO = 0.25  # squeeze channels = make_divisible(expanded * 0.25, 8)
LAST_CONV_EXPANSION = 6  # last 1x1 conv: 6x the last block's channels
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.999


def minimalistic_block(spec):
    """The "minimalistic" row: 3x3 kernel, ReLU, no squeeze-and-excitation."""
    return spec._replace(kernel=3, se=False, activation="RE")


def activation(kind, name):
    """The paper's nonlinearities as layers (no Lambda)."""
    if kind == "RE":
        return layers.ReLU(name=name)
    if kind == "HS":
        return layers.Activation(hard_swish, name=name)
    raise ValueError(f"Unknown MobileNetV3 activation {kind!r}: expected 'RE' or 'HS'.")


def batch_norm(name):
    return BatchNormalization(
        epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name
    )


def squeeze_excite(x, prefix):
    """SE of a bneck block: pool -> 1x1 (ReLU) -> 1x1 (hard sigmoid) -> scale."""
    channels = x.shape[-1]
    se = layers.GlobalAveragePooling2D(
        keepdims=True, name=prefix + "squeeze_excite_avg_pool"
    )(x)
    se = layers.Conv2D(
        make_divisible(channels * SE_RATIO),
        1,
        padding="same",
        name=prefix + "squeeze_excite_conv",
    )(se)
    se = layers.ReLU(name=prefix + "squeeze_excite_relu")(se)
    se = layers.Conv2D(
        channels, 1, padding="same", name=prefix + "squeeze_excite_conv_1"
    )(se)
    se = layers.Activation(
        hard_sigmoid, name=prefix + "squeeze_excite_hard_sigmoid"
    )(se)
    return layers.Multiply(name=prefix + "squeeze_excite_mul")([x, se])


def bneck_block(x, spec, filters, block_id):
    """Inverted residual ("bneck") block with optional SE.

    Block 0 has no expansion convolution (its ratio is 1): it is the
    depthwise-separable block of the paper's first row. Layer names are
    keras.applications': ``expanded_conv_`` for block 0, then
    ``expanded_conv_{block_id}_``.
    """
    prefix = f"expanded_conv_{block_id}_" if block_id else "expanded_conv_"
    shortcut = x
    in_filters = x.shape[-1]
    if block_id:
        x = layers.Conv2D(
            make_divisible(in_filters * spec.expansion),
            1,
            padding="same",
            use_bias=False,
            name=prefix + "expand",
        )(x)
        x = batch_norm(prefix + "expand_bn")(x)
        x = activation(spec.activation, prefix + "expand_act")(x)

    if spec.stride == 2:
        x = tf_same_padding(x, spec.kernel, name=prefix + "depthwise_pad")
    x = layers.DepthwiseConv2D(
        spec.kernel,
        strides=spec.stride,
        padding="same" if spec.stride == 1 else "valid",
        use_bias=False,
        name=prefix + "depthwise",
    )(x)
    x = batch_norm(prefix + "depthwise_bn")(x)
    x = activation(spec.activation, prefix + "depthwise_act")(x)

    if spec.se:
        x = squeeze_excite(x, prefix)

    x = layers.Conv2D(
        filters, 1, padding="same", use_bias=False, name=prefix + "project"
    )(x)
    x = batch_norm(prefix + "project_bn")(x)

    if spec.stride == 1 and in_filters == filters:
        x = layers.Add(name=prefix + "add")([shortcut, x])
    return x


def _check_pretrained_config(builder, weights, model_type, alpha, minimalistic):
    """keras' alpha rule for pretrained weights (any registered tag)."""
    from kerasnets.weights.registry import tags_for

    if weights not in tags_for(weights_key(model_type, alpha, minimalistic)):
        published = sorted(
            ("minimalistic " if m else "") + str(a)
            for (t, a, m) in PRETRAINED
            if t == model_type
        )
        raise ValueError(
            f"If {weights} weights are being loaded, "
            "alpha can be one of `0.75`, `1.0` for non minimalistic "
            "or `1.0` for minimalistic only. "
            f"Received: alpha={alpha}, minimalistic={minimalistic} "
            f"({builder} {weights!r} weights exist for: {', '.join(published)})."
        )


def MobileNetV3(
    blocks,
    last_point_ch,
    input_shape=None,
    alpha=1.0,
    model_type="large",
    minimalistic=False,
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    classes=1000,
    pooling=None,
    dropout_rate=0.2,
    classifier_activation="softmax",
    include_preprocessing=True,
    name=None,
):
    """Instantiates a MobileNetV3 from a table of bneck blocks.

    Reference: Howard et al., "Searching for MobileNetV3", ICCV 2019
    (arXiv:1905.02244). ``MobileNetV3Large`` and ``MobileNetV3Small`` call
    this with the paper's Tables 1 and 2.

    Structure: [Rescaling] -> conv 3x3/2 (16) + BN + act -> bneck blocks ->
    conv 1x1 (6x the last block's channels) + BN + act -> [global average
    pool -> conv 1x1 with bias (``last_point_ch``) + act -> dropout -> 1x1
    logits conv -> softmax]. Stride-2 depthwise convolutions pad like
    TensorFlow's "same" (``tf_same_padding``); with an unknown input size
    (``input_shape=None``) the padding assumes even sizes, as in keras.

    Args:
        blocks: sequence of ``BlockSpec(kernel, expansion, filters, se,
            activation, stride)``, the paper's table rows.
        last_point_ch: channels of the 1x1 head convolution after pooling
            (scaled by ``alpha`` only when ``alpha > 1``).
        input_shape: optional (height, width, channels); at least 32x32.
            Default: any size.
        alpha: width multiplier applied to every block's output channels
            (rounded to multiples of 8); the stem stays at 16.
        model_type: "large" or "small": which published weights apply.
        minimalistic: 3x3 kernels, ReLU and no SE everywhere (no hard-swish).
        include_top: whether to include the classifier head.
        weights: None, a pretrained tag ("imagenet", "tf_in1k") or a path to
            a weights file (keras .h5/.weights.h5, or a timm
            ``tf_mobilenetv3_*`` state dict as .safetensors/.pth).
        input_tensor: optional Keras tensor to use as the image input.
        classes: number of classes (1000 with a pretrained top).
        pooling: None, "avg" or "max" pooling of the features when
            ``include_top=False``.
        dropout_rate: dropout before the logits convolution.
        classifier_activation: activation of the "predictions" layer; None
            returns logits. Only None or "softmax" with pretrained weights.
        include_preprocessing: bake the weights' normalisation into the
            model (raw RGB 0-255 in): ``Rescaling(1/127.5, offset=-1)``
            first; otherwise the model takes [-1, 1].
        name: the model's name.

    Returns:
        A ``keras.Model``.

    Example (MobileNetV3-Large without its last three blocks):
        >>> from kerasnets.models.mobilenet_v3 import LARGE_BLOCKS
        >>> model = kerasnets.MobileNetV3(LARGE_BLOCKS[:-3], 1280, weights=None)
        >>> model.output_shape
        (None, 1000)
    """
    builder = builder_name(model_type)
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
        min_size=32,
        include_top=include_top,
        weights=weights,
    )
    tag = None if weights is None or is_weights_path(weights) else weights
    if tag is not None:
        published = ((LARGE_BLOCKS, LARGE_LAST_POINT_CHANNELS) if model_type == "large"
                     else (SMALL_BLOCKS, SMALL_LAST_POINT_CHANNELS))
        if (tuple(blocks), last_point_ch) != published:
            raise ValueError(
                f"Unknown weights {tag!r} for MobileNetV3: MobileNetV3 has no "
                "published pretrained weights for its own `blocks`/`last_point_ch` "
                "(they exist for the MobileNetV3Large/MobileNetV3Small tables). "
                "Pass weights=None (random initialization) or the path to a "
                "weights file."
            )
        _check_pretrained_config(builder, tag, model_type, alpha, minimalistic)
        rows, cols = img_input.shape[1:3]
        if rows is not None and cols is not None and (rows != cols or rows != 224):
            warnings.warn(
                "`input_shape` is non-square or `rows` is not 224. Weights "
                "for input shape (224, 224) will be loaded as the default.",
                stacklevel=3,
            )

    if minimalistic:
        blocks = [minimalistic_block(spec) for spec in blocks]
    act = "RE" if minimalistic else "HS"

    x = img_input
    if include_preprocessing:
        x = layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name="rescaling")(x)
    x = layers.Conv2D(
        16, 3, strides=2, padding="same", use_bias=False, name="conv"
    )(x)
    x = batch_norm("conv_bn")(x)
    x = activation(act, "conv_act")(x)

    for block_id, spec in enumerate(blocks):
        filters = make_divisible(spec.filters * alpha)
        x = bneck_block(x, spec, filters, block_id)

    last_conv_ch = make_divisible(x.shape[-1] * LAST_CONV_EXPANSION)
    if alpha > 1.0:
        last_point_ch = make_divisible(last_point_ch * alpha)
    x = layers.Conv2D(
        last_conv_ch, 1, padding="same", use_bias=False, name="conv_1"
    )(x)
    x = batch_norm("conv_1_bn")(x)
    x = activation(act, "conv_1_act")(x)

    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
        x = layers.Conv2D(
            last_point_ch, 1, padding="same", use_bias=True, name="conv_2"
        )(x)
        x = activation(act, "conv_2_act")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="dropout")(x)
        x = layers.Conv2D(classes, 1, padding="same", name="logits")(x)
        x = layers.Flatten(name="flatten")(x)
        x = layers.Activation(classifier_activation, name="predictions")(x)
    else:
        x = global_pool(x, pooling)

    return finish_model(
        img_input,
        x,
        input_tensor=input_tensor,
        name=name,
        builder=builder,
        weights=weights,
        include_top=include_top,
        weights_key=weights_key(model_type, alpha, minimalistic)
        if tag is not None
        else None,
    )


def MobileNetV3Large(
    input_shape=None,
    alpha=1.0,
    minimalistic=False,
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    classes=1000,
    pooling=None,
    dropout_rate=0.2,
    classifier_activation="softmax",
    include_preprocessing=True,
    name="MobileNetV3Large",
):
    """MobileNetV3-Large (Howard et al., ICCV 2019, arXiv:1905.02244, Table 1).

    | alpha | params (trainable / keras total) | MACs at 224 | top-1 |
    |---|---|---|---|
    | 1.0 | 5,483,032 / 5,507,432 | 219 M | 75.2 |
    | 0.75 | 3,993,528 / 4,012,616 | 155 M | 73.3 |
    | 1.0 minimalistic | 3,924,288 / 3,948,688 | 209 M | 72.3 |

    Pretrained ("imagenet": keras.applications, "tf_in1k": timm) for the
    three rows.

    Args: as keras.applications.MobileNetV3Large (input_shape, alpha,
        minimalistic, include_top, weights, input_tensor, classes, pooling,
        dropout_rate, classifier_activation, name; details in
        ``MobileNetV3``). ``weights``: None, "imagenet", "tf_in1k" or a path.
        include_preprocessing: bake the weights' normalisation into the
        model (raw RGB 0-255 in; the default); False: inputs in [-1, 1].

    Example:
        >>> model = kerasnets.MobileNetV3Large(weights="imagenet")
        >>> x = kerasnets.data.load_image(kerasnets.imagenet.sample_image(), "MobileNetV3Large")
        >>> kerasnets.imagenet.decode_predictions(model.predict(x[None]))
    """
    return MobileNetV3(
        LARGE_BLOCKS,
        LARGE_LAST_POINT_CHANNELS,
        input_shape=input_shape,
        alpha=alpha,
        model_type="large",
        minimalistic=minimalistic,
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        classes=classes,
        pooling=pooling,
        dropout_rate=dropout_rate,
        classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing,
        name=name,
    )


def MobileNetV3Small(
    input_shape=None,
    alpha=1.0,
    minimalistic=False,
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    classes=1000,
    pooling=None,
    dropout_rate=0.2,
    classifier_activation="softmax",
    include_preprocessing=True,
    name="MobileNetV3Small",
):
    """MobileNetV3-Small (Howard et al., ICCV 2019, arXiv:1905.02244, Table 2).

    | alpha | params (trainable / keras total) | MACs at 224 | top-1 |
    |---|---|---|---|
    | 1.0 | 2,542,856 / 2,554,968 | 66 M | 67.4 |
    | 0.75 | 2,041,872 / 2,051,552 | 44 M | 65.4 |
    | 1.0 minimalistic | 2,044,736 / 2,056,848 | 65 M | 61.9 |

    Pretrained ("imagenet": keras.applications, "tf_in1k": timm) for the
    three rows.

    Args: as keras.applications.MobileNetV3Small (input_shape, alpha,
        minimalistic, include_top, weights, input_tensor, classes, pooling,
        dropout_rate, classifier_activation, name; details in
        ``MobileNetV3``). ``weights``: None, "imagenet", "tf_in1k" or a path.
        include_preprocessing: bake the weights' normalisation into the
        model (raw RGB 0-255 in; the default); False: inputs in [-1, 1].

    Example:
        >>> model = kerasnets.MobileNetV3Small(weights="imagenet")
        >>> x = kerasnets.data.load_image(kerasnets.imagenet.sample_image(), "MobileNetV3Small")
        >>> kerasnets.imagenet.decode_predictions(model.predict(x[None]))
    """
    return MobileNetV3(
        SMALL_BLOCKS,
        SMALL_LAST_POINT_CHANNELS,
        input_shape=input_shape,
        alpha=alpha,
        model_type="small",
        minimalistic=minimalistic,
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        classes=classes,
        pooling=pooling,
        dropout_rate=dropout_rate,
        classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing,
        name=name,
    )


# ------------------------------------------------------ timm state dicts


def timm_layer_map(model):
    """Maps each weighted layer to timm's ``tf_mobilenetv3_*`` module prefix.

    timm groups the blocks into stages ``blocks.{stage}.{index}``: a new
    stage starts wherever the output width changes (every stride-2 block
    and the 80 -> 112 / 40 -> 48 steps), and the last 1x1 conv is a stage
    of its own (``ConvBnAct``). Block 0 is timm's depthwise-separable block
    (conv_dw, bn1, se, conv_pw, bn2); the others are inverted residuals
    (conv_pw, bn1, conv_dw, bn2, se, conv_pwl, bn3). The head's 1x1 conv is
    ``conv_head`` and the logits conv timm's Linear ``classifier``.
    """
    names = {layer.name for layer in model.layers}
    layer_map = {"conv": "conv_stem", "conv_bn": "bn1"}
    stage, index, width = -1, 0, None
    block_id = 0
    while True:
        prefix = f"expanded_conv_{block_id}_" if block_id else "expanded_conv_"
        if prefix + "project" not in names:
            break
        filters = model.get_layer(prefix + "project").filters
        if filters != width:
            stage, index, width = stage + 1, 0, filters
        else:
            index += 1
        timm = f"blocks.{stage}.{index}."
        parts = {
            "squeeze_excite_conv": "se.conv_reduce",
            "squeeze_excite_conv_1": "se.conv_expand",
        }
        if block_id == 0:
            parts.update(
                depthwise="conv_dw",
                depthwise_bn="bn1",
                project="conv_pw",
                project_bn="bn2",
            )
        else:
            parts.update(
                expand="conv_pw",
                expand_bn="bn1",
                depthwise="conv_dw",
                depthwise_bn="bn2",
                project="conv_pwl",
                project_bn="bn3",
            )
        for part, module in parts.items():
            if prefix + part in names:
                layer_map[prefix + part] = timm + module
        block_id += 1
    layer_map["conv_1"] = f"blocks.{stage + 1}.0.conv"
    layer_map["conv_1_bn"] = f"blocks.{stage + 1}.0.bn1"
    layer_map["conv_2"] = "conv_head"
    layer_map["logits"] = "classifier"
    return layer_map, ("conv_head", "classifier")


register_converter("MobileNetV3Large", timm_layer_map)
register_converter("MobileNetV3Small", timm_layer_map)


# ------------------------------------------------------- pre/post-processing


def preprocess_input(x, data_format=None):
    """The identity, as keras.applications.mobilenet_v3.preprocess_input.

    MobileNetV3 models rescale their inputs themselves (a ``Rescaling``
    layer, ``include_preprocessing=True``): pass 0-255 pixels. Models built
    with ``include_preprocessing=False`` expect ``x / 127.5 - 1``.
    """
    return x
