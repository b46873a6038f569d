"""The builder contract shared by every family (mirrors keras.applications).

Every builder does the same four things, in this order:

1. ``check_arguments``: validate ``weights`` / ``include_top`` / ``classes`` /
   ``pooling`` / ``classifier_activation`` with keras.applications' messages,
   and resolve a pretrained tag to its ``PretrainedCfg``;
2. ``image_input``: resolve ``input_shape`` / ``input_tensor`` against the
   family's default and minimum sizes; ``preprocessing_layer`` bakes the
   weights' normalisation in when ``include_preprocessing=True``;
3. build the feature extractor, then ``classifier_top`` (GAP + Dense) or the
   ``pooling`` of a headless model;
4. ``finish_model``: wrap in a ``keras.Model`` and load ``weights`` (a
   pretrained configuration or a path, converted on load with the catalog
   entry's layer maps; see ``kerasnets.weights``).

``model_name`` is the catalog name whose weights a model loads (a generic
builder configured like a named variant uses that variant's).
"""

import math
import numbers
import os
import warnings

import keras
from keras import layers

from kerasnets import preprocessing, registry
from kerasnets import weights as weights_lib
from kerasnets.models.backbone import Backbone, pyramid_of
from kerasnets.text import short_repr

POOLING_MODES = (None, "avg", "max")

is_weights_path = weights_lib.is_path


def check_arguments(
    model_name,
    *,
    weights,
    include_top,
    classes,
    pooling,
    classifier_activation,
    options=None,
):
    """Validates the keras.applications arguments of ``model_name``.

    ``weights`` may be None, a pretrained tag of the model (see
    ``kerasnets.weights.available``) or a path to an existing file. Returns
    the tag's ``PretrainedCfg`` (picked by ``options``, the builder's
    arguments, where the tag has one file per configuration), else None.
    """
    builder = model_name
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            f"{builder} does not support the `channels_first` image data "
            "format. Switch to `channels_last` by editing your local "
            "config file at ~/.keras/keras.json"
        )
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "The `weights` argument should be either `None` (random "
            "initialization), a pretrained tag, or the path to the weights "
            f"file to be loaded. Received: weights={weights!r}"
        )
    pretrained = weights is not None
    cfg = None
    if pretrained and is_weights_path(weights):
        if not os.path.exists(os.path.expanduser(os.fspath(weights))):
            raise ValueError(
                f"The weights file {os.fspath(weights)!r} does not exist. "
                "Pass `None` (random initialization), a pretrained tag "
                f"({weights_lib.describe_tags(builder)}), or the path to an "
                "existing weights file."
            )
    elif pretrained:
        weights_lib.check_tag(builder, weights)
        cfg = weights_lib.pretrained_cfg(builder, weights, options=options)
        if include_top and classes != cfg.classes:
            raise ValueError(
                f'If using `weights` as `"{weights}"` with `include_top` '
                f"as true, `classes` should be {cfg.classes} (the pretrained "
                f"classifier has {cfg.classes} outputs). Received: classes={classes}. Use "
                "`include_top=False` and add your own classifier to train "
                "on other classes."
            )
    if include_top and not _is_int(classes, minimum=1):
        raise ValueError("`classes` must be a positive integer (the classifier's outputs). "
                         f"Received: classes={short_repr(classes)}")
    if pooling not in POOLING_MODES:
        raise ValueError(
            "The `pooling` argument should be one of None, 'avg' or 'max'. "
            f"Received: pooling={pooling!r}"
        )
    if include_top and pretrained:
        validate_activation(classifier_activation)
    return cfg


def _is_int(value, minimum=None):
    """An integer (not True/False), at least ``minimum`` where given."""
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and (minimum is None or value >= minimum))


def check_positive(value, arg, integer=False):
    """A ValueError unless ``value`` (the builder argument ``arg``: a width
    multiplier such as ``alpha``, ``depth_multiplier``) is a finite positive
    number, an integer where ``integer`` (True/False are not numbers)."""
    if integer:
        valid = _is_int(value, minimum=1)
    else:
        valid = (isinstance(value, numbers.Real) and not isinstance(value, bool)
                 and math.isfinite(value) and value > 0)
    if not valid:
        kind = "a positive integer" if integer else "a positive number"
        raise ValueError(f"`{arg}` must be {kind}. Received: {arg}={short_repr(value)}")


def check_rate(value, arg):
    """A ValueError unless ``value`` (a dropout rate ``arg``) is in [0, 1)."""
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and 0 <= value < 1):
        raise ValueError(f"`{arg}` must be a number in [0, 1). Received: "
                         f"{arg}={short_repr(value)}")


def validate_activation(classifier_activation):
    activation = keras.activations.get(classifier_activation)
    if activation not in {
        keras.activations.get("softmax"),
        keras.activations.get(None),
    }:
        raise ValueError(
            "Only `None` and `softmax` activations are allowed "
            "for the `classifier_activation` argument when using "
            "pretrained weights, with `include_top=True`; Received: "
            f"classifier_activation={classifier_activation}"
        )


def check_input_shape(input_shape):
    """``input_shape`` as a tuple; a ValueError unless it is three positive
    integers (or None) in channels_last order: ``(3, 160, 160)`` is named as
    channels_first."""
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3
            or not all(d is None or _is_int(d, minimum=1) for d in input_shape)):
        raise ValueError("`input_shape` must be a tuple of three positive integers (height, "
                         f"width, channels). Received: input_shape={short_repr(input_shape)}")
    channels, height, width = input_shape = tuple(input_shape)
    if channels in (1, 3) and width not in (1, 3, None):
        raise ValueError(
            f"`input_shape={input_shape}` puts the channels first: kerasnets, like Keras "
            "by default, takes channels_last images (height, width, channels); pass "
            f"input_shape={(height, width, channels)}.")
    return input_shape


def obtain_input_shape(
    input_shape, *, default_size, min_size, require_flatten, pretrained
):
    """keras.applications' input-shape resolution (channels_last).

    ``require_flatten`` means the top needs a static shape (the classifier
    follows global pooling in every family here, so any size works, but a
    pretrained top keeps keras' default-size rule).
    """
    if input_shape is not None:
        input_shape = check_input_shape(input_shape)
    if not pretrained and input_shape and len(input_shape) == 3:
        if input_shape[-1] not in {1, 3}:
            warnings.warn(
                "This model usually expects 1 or 3 input channels. "
                "However, it was passed an input_shape "
                f"with {input_shape[-1]} input channels.",
                stacklevel=3,
            )
        default_shape = (default_size, default_size, input_shape[-1])
    else:
        default_shape = (default_size, default_size, 3)
    if input_shape is None:
        return default_shape if require_flatten else (None, None, 3)
    if input_shape[-1] != 3 and pretrained:
        raise ValueError(
            "The input must have 3 channels; Received "
            f"`input_shape={input_shape}`"
        )
    if any(d is not None and d < min_size for d in input_shape[:2]):
        raise ValueError(
            f"Input size must be at least {min_size}x{min_size}; Received: "
            f"input_shape={input_shape}"
        )
    return input_shape


def check_input_tensor(input_tensor):
    """A ValueError unless ``input_tensor`` is a Keras or backend tensor
    holding a batch of images (4-D)."""
    if not (keras.backend.is_keras_tensor(input_tensor) or keras.ops.is_tensor(input_tensor)):
        raise ValueError("`input_tensor` must be a Keras tensor (`keras.Input(shape=(224, 224, "
                         f"3))`) or a backend tensor. Received: input_tensor="
                         f"{short_repr(input_tensor)}")
    if len(input_tensor.shape) != 4:
        raise ValueError("`input_tensor` must be a batch of images (batch, height, width, "
                         f"channels). Received a tensor of shape {tuple(input_tensor.shape)}")


def image_input(
    input_tensor,
    input_shape,
    *,
    default_size,
    min_size,
    include_top,
    weights,
    require_flatten=False,
):
    """Returns the model's image input (a Keras tensor)."""
    if input_tensor is not None:
        check_input_tensor(input_tensor)
    if input_tensor is not None and input_shape is None:
        input_shape = tuple(input_tensor.shape)[1:]
    input_shape = obtain_input_shape(
        input_shape,
        default_size=default_size,
        min_size=min_size,
        require_flatten=require_flatten and include_top,
        pretrained=weights is not None,
    )
    if input_tensor is None:
        return layers.Input(shape=input_shape)
    if not keras.backend.is_keras_tensor(input_tensor):
        return layers.Input(tensor=input_tensor, shape=input_shape)
    return input_tensor


def preprocessing_layer(img_input, *, model_name, weights, include_preprocessing,
                        options=None):
    """``img_input``, normalised in the model when ``include_preprocessing``.

    The normalisation is that of ``weights`` (its ``PretrainedCfg``; for None
    or a path, the model's default weights: ``kerasnets.preprocessing``), so
    the model takes RGB 0-255 pixels and needs no ``preprocess_input``.
    """
    if not include_preprocessing:
        return img_input
    from kerasnets.layers import ImageNormalization

    tag = weights if isinstance(weights, str) and not is_weights_path(weights) else None
    prep = preprocessing.for_model(model_name, tag, options=options)
    return ImageNormalization(prep.mean, prep.std, bgr=prep.bgr,
                              name="preprocessing")(img_input)


def classifier_top(
    x,
    *,
    include_top,
    pooling,
    classes,
    classifier_activation,
    dropout_rate=0.0,
    name="predictions",
):
    """keras.applications' head: GAP + Dense, or the requested pooling."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        return layers.Dense(classes, activation=classifier_activation, name=name)(
            x
        )
    return global_pool(x, pooling)


def global_pool(x, pooling):
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


# ----------------------------------------------------------- feature maps


class FeatureTaps:
    """The multi-scale feature maps a builder marks as it builds them (timm's
    ``feature_info``): ``add(x, reduction)`` at each point, in order. They
    are the outputs of ``features_only=True`` (``enabled``) and the
    ``pyramid_outputs`` of every headless model (``Backbone``). A list of maps
    (memory-efficient DenseNet/DPN) is concatenated here for the feature
    output only: otherwise the network is unchanged (the pyramid concatenates
    it outside the model).
    """

    def __init__(self, enabled):
        self.enabled = enabled
        self.taps = []

    def add(self, x, reduction, name):
        if isinstance(x, (list, tuple)):
            x = (layers.Concatenate(name=f"{name}_features")(list(x)) if self.enabled
                 else list(x))
        self.taps.append({"tensor": x, "reduction": int(reduction), "name": name})


def check_features(*, features_only, out_indices, include_top, pooling):
    """A ``FeatureTaps`` for the builder; ValueError for arguments that do not
    go together (features come without the classifier and pooling)."""
    if out_indices is not None and (
            not isinstance(out_indices, (list, tuple)) or not out_indices
            or not all(_is_int(i) for i in out_indices)):
        raise ValueError("`out_indices` must be a list of feature-map indices, e.g. (1, 2, 3). "
                         f"Received: out_indices={short_repr(out_indices)}")
    if not features_only:
        if out_indices is not None:
            raise ValueError("`out_indices` selects feature maps: pass it with "
                             "`features_only=True`.")
        return FeatureTaps(False)
    if include_top:
        raise ValueError("`features_only=True` returns feature maps: pass `include_top=False` "
                         "(a classifier has no place in a backbone).")
    if pooling is not None:
        raise ValueError("`features_only=True` returns the feature maps unpooled: pass "
                         f"`pooling=None`. Received: pooling={pooling!r}")
    return FeatureTaps(True)


def _select_features(taps, out_indices):
    count = len(taps.taps)
    indices = list(range(count)) if out_indices is None else list(out_indices)
    if not indices or any(not isinstance(i, int) or not -count <= i < count for i in indices):
        raise ValueError(f"`out_indices` must name feature maps 0 .. {count - 1} (or "
                         f"-{count} .. -1); received {out_indices!r}.")
    return [taps.taps[i % count] for i in indices]


def finish_model(
    img_input,
    outputs,
    *,
    input_tensor,
    name,
    model_name,
    weights,
    include_top,
    cfg=None,
    features=None,
    out_indices=None,
):
    """Creates the model and loads ``weights`` into it: ``cfg``, the
    ``PretrainedCfg`` of a tag (from ``check_arguments``), or a path read
    with the layer maps of ``model_name``'s catalog entry. The model's
    ``pretrained_cfg`` attribute is that configuration (None for random
    weights or a file). A headless model (``include_top=False``) is a
    ``Backbone``: keras-hub's ``pyramid_outputs`` at the ``features`` taps
    (the chosen ones with ``features_only``)."""
    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    else:
        inputs = img_input
    features_only = features is not None and features.enabled
    if include_top or features_only or features is None:
        model = keras.Model(inputs, outputs, name=name)
    else:  # a headless network: keras-hub's pyramid at the feature taps
        model = Backbone(inputs, outputs, name=name, pyramid=pyramid_of(features.taps))
    if weights is not None:
        if cfg is None and not is_weights_path(weights):
            cfg = weights_lib.pretrained_cfg(model_name, weights)
        weights_lib.load_weights(
            model,
            weights,
            cfg=cfg,
            layer_maps=registry.get(model_name).layer_maps,
            include_top=include_top,
        )
    if features_only:
        # The whole headless network loaded its weights above; the backbone
        # shares its layers up to the last requested map.
        chosen = _select_features(features, out_indices)
        model = Backbone(inputs, [tap["tensor"] for tap in chosen], name=name,
                         pyramid=pyramid_of(features.taps, chosen), feature_info=[
            {"index": features.taps.index(tap), "num_chs": int(tap["tensor"].shape[-1]),
             "reduction": tap["reduction"], "name": tap["name"]} for tap in chosen])
    # Where the weights came from, as timm's ``model.pretrained_cfg`` (None:
    # random or a file).
    model.pretrained_cfg = cfg
    return model


def feature_info(name, **kwargs):
    """The feature maps of ``name`` with ``features_only=True`` (every one, or
    ``out_indices``): ``[{"index", "num_chs", "reduction", "name"}]``, as
    timm's ``model.feature_info`` (builds the backbone once, without weights).

        >>> kerasnets.feature_info("DPN92")[-1]
        {'index': 4, 'num_chs': 2688, 'reduction': 32, 'name': 'conv5_3'}
    """
    kwargs.setdefault("input_shape", (None, None, 3))
    model = registry.create_model(name, weights=None, include_top=False, features_only=True,
                                  **kwargs)
    return model.feature_info


def make_divisible(value, divisor=8, min_value=None):
    """Rounds channel counts as the MobileNet/IGCV3 reference code does."""
    if min_value is None:
        min_value = divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def tf_same_padding(x, kernel_size, name):
    """ZeroPadding2D that reproduces TF "same" for a stride-2 conv."""
    size = x.shape[1:3]
    k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    if size[0] is None:
        adjust = (1, 1)
    else:
        adjust = (1 - size[0] % 2, 1 - size[1] % 2)
    correct = (k[0] // 2, k[1] // 2)
    padding = (
        (correct[0] - adjust[0], correct[0]),
        (correct[1] - adjust[1], correct[1]),
    )
    return layers.ZeroPadding2D(padding=padding, name=name)(x)
