"""Input normalisation and evaluation transform, derived from PretrainedCfgs.

``for_model(name, weights)`` is how a model wants its images: the
``PretrainedCfg`` of a tag gives mean, std, channel order, crop and
interpolation; weights of unknown origin (None, a path) use the model's
default configuration, or, for a model with no published weights, the
normalisation its family registers in the catalog. ``normalize`` applies one
to arrays or tensors with keras.applications' ``preprocess_input``
semantics, and every family's ``preprocess_input`` is built on it.

This module sits below the models: it imports the catalog and the weights
configurations, never a family module (the catalog imports those by name).
"""

import dataclasses
from typing import Optional, Tuple

import numpy as np

from kerasnets import registry
from kerasnets.weights import config as weights_config

DATA_FORMATS = ("channels_first", "channels_last")


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How a model wants its images: normalisation and evaluation transform.

    Attributes:
        mean, std: per channel, on 0-255 pixels, in the model's channel order
            (``(0, 0, 0)`` / ``(1, 1, 1)``: pixels pass unchanged).
        bgr: reverse RGB to BGR before normalising (Caffe-trained weights).
        crop_pct: evaluation crop fraction: resize the shorter side to
            ``size / crop_pct``, then center-crop ``size``.
        interpolation: resize method for evaluation ("bilinear", "bicubic",
            "area", "nearest", "lanczos3", ...: ``tf.image.resize`` names).
        mode: where this came from, for display (``"DPN92.mx_in1k"``,
            ``"torch"``).
        input_size: the weights' input size (None: not tied to weights).
    """

    mean: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    bgr: bool = False
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mode: Optional[str] = None
    input_size: Optional[int] = None

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def normalize(self, images):
        """Float RGB images in [0, 255] (numpy, TensorFlow or other tensors,
        channels last) -> model inputs, with the array type's own operators
        (usable inside ``tf.data``); non-float numpy arrays become float32."""
        if isinstance(images, np.ndarray) and not issubclass(images.dtype.type, np.floating):
            images = images.astype("float32")
        if self.bgr:
            images = images[..., ::-1]
        if self.mean != (0.0, 0.0, 0.0):
            images = images - np.asarray(self.mean, "float32")
        if self.std != (1.0, 1.0, 1.0):
            # 1/std rounded once to float32, as ImageNormalization does.
            images = images * np.asarray(1.0 / np.asarray(self.std, "float64"), "float32")
        return images

    @property
    def is_identity(self):
        return (not self.bgr and self.mean == (0.0, 0.0, 0.0)
                and self.std == (1.0, 1.0, 1.0))


# keras.applications' ``preprocess_input`` modes, for users who name them.
KERAS_MODES = {
    # x / 127.5 - 1
    "tf": Preprocessing(mean=weights_config.INCEPTION_MEAN,
                        std=weights_config.INCEPTION_STD, mode="tf"),
    # (x / 255 - ImageNet mean) / ImageNet std
    "torch": Preprocessing(mean=weights_config.IMAGENET_MEAN,
                           std=weights_config.IMAGENET_STD, mode="torch"),
    # RGB -> BGR, minus the ImageNet BGR mean, no scaling
    "caffe": Preprocessing(mean=(103.939, 116.779, 123.68), bgr=True, mode="caffe"),
    # 0-255 pixels as they are (models that rescale themselves: MobileNetV3)
    "none": Preprocessing(mode="none"),
}


def _scaled(values):
    return tuple(float(v) * 255.0 for v in values)


def get_preprocessing(preprocessing):
    """Resolves ``preprocessing`` to a ``Preprocessing``.

    Accepts a ``Preprocessing``; a keras.applications mode name (``"torch"``,
    ``"tf"``, ``"caffe"``) or ``"none"`` (``None`` is ``"none"``); a model
    name, or ``"MODEL:TAG"``, for that model's weights (``"DPN92"``,
    ``"DenseNet121:tv_in1k"``); or a ``(mean, std)`` pair of 3-tuples (or
    scalars), on 0-1 pixels as timm writes them
    (``((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))``) or on 0-255 pixels
    when any value exceeds 1.
    """
    if isinstance(preprocessing, Preprocessing):
        return preprocessing
    if preprocessing is None:
        return KERAS_MODES["none"]
    if isinstance(preprocessing, str):
        if preprocessing in KERAS_MODES:
            return KERAS_MODES[preprocessing]
        model, _, tag = preprocessing.partition(":")
        if registry.canonical_name(model) is not None:
            return for_model(model, tag or weights_config.DEFAULT_TAG)
        raise ValueError(
            f"Unknown preprocessing {preprocessing!r}: expected one of "
            f"{sorted(KERAS_MODES)}, a model name (MODEL or MODEL:TAG), a (mean, std) "
            "pair, or None."
        )
    try:
        mean, std = preprocessing
        mean = tuple(float(v) for v in np.broadcast_to(np.asarray(mean, float), (3,)))
        std = tuple(float(v) for v in np.broadcast_to(np.asarray(std, float), (3,)))
    except (TypeError, ValueError) as error:
        raise ValueError(
            "`preprocessing` must be a mode name, a model name, None, a Preprocessing "
            f"or a (mean, std) pair; received {preprocessing!r}."
        ) from error
    if max(mean + std) <= 1.0:
        mean, std = _scaled(mean), _scaled(std)
    if min(std) <= 0:
        raise ValueError(f"std must be positive; received {std}.")
    return Preprocessing(mean=mean, std=std)


def from_cfg(cfg):
    """The ``Preprocessing`` of a ``PretrainedCfg``."""
    return Preprocessing(mean=tuple(cfg.mean), std=tuple(cfg.std), bgr=cfg.bgr,
                         crop_pct=cfg.crop_pct, interpolation=cfg.interpolation,
                         mode=f"{cfg.model}.{cfg.tag}", input_size=cfg.input_size)


def _name(model):
    return model if isinstance(model, str) else model.__name__


def for_model(model, weights=weights_config.DEFAULT_TAG, options=None):
    """The ``Preprocessing`` of ``model`` (a name or builder) with ``weights``
    (a pretrained tag, None, or a path).

    A tag uses its ``PretrainedCfg`` (picked by ``options``, the builder's
    arguments, where a tag has one file per configuration). None or a path
    (weights of unknown origin) uses the weights published for that
    configuration (the builder's defaults for arguments not in ``options``),
    or the normalisation its family registers when there are none.

        >>> kerasnets.preprocessing.for_model("DPN68").mode
        'DPN68.mx_in1k'
    """
    entry = registry.get(_name(model))
    name = entry.name
    options = dict(entry.defaults, **(options or {}))
    from kerasnets.weights import is_path

    if isinstance(weights, str) and not is_path(weights):
        cfg = weights_config.pretrained_cfg(name, weights, options=options, strict=False)
        if cfg is None:  # another configuration: its tag's first file
            cfg = weights_config.pretrained_cfgs(name, weights)[0]
        return from_cfg(cfg)
    cfg = None
    if weights_config.default_tag(name) is not None:
        cfg = weights_config.pretrained_cfg(name, options=options, strict=False)
    if cfg is None and entry.mean is None and weights_config.default_tag(name) is not None:
        cfg = weights_config.pretrained_cfgs(name)[0]
    if cfg is not None:
        return from_cfg(cfg)
    if entry.mean is None:
        raise ValueError(f"{name} declares no input normalisation (no pretrained weights "
                         "and no mean/std in its catalog entry).")
    return Preprocessing(mean=tuple(entry.mean), std=tuple(entry.std), bgr=entry.bgr,
                         mode=f"{name} (family default)")


def normalize(x, preprocessing, data_format=None):
    """Applies ``preprocessing`` to RGB 0-255 images ``x`` as keras.applications'
    ``preprocess_input`` does: numpy arrays are normalised in place when they
    are floating point (other dtypes become ``floatx``; float64 stays
    float64), tensors with ``keras.ops``; ``data_format`` must be
    "channels_first", "channels_last" or None (Keras' setting).
    """
    import keras

    prep = get_preprocessing(preprocessing)
    if data_format is None:
        data_format = keras.config.image_data_format()
    elif data_format not in DATA_FORMATS:
        raise ValueError(
            "Expected data_format to be one of `channels_first` or "
            f"`channels_last`. Received: data_format={data_format}"
        )
    if isinstance(x, np.ndarray):
        if not issubclass(x.dtype.type, np.floating):
            x = x.astype(keras.config.floatx(), copy=False)
    else:
        x = keras.ops.convert_to_tensor(x)
        if not keras.backend.is_float_dtype(x.dtype):
            x = keras.ops.cast(x, keras.config.floatx())
    if prep.is_identity:
        return x
    axis = 1 if data_format == "channels_first" and len(x.shape) == 4 else (
        0 if data_format == "channels_first" else -1)
    shape = [1] * len(x.shape)
    shape[axis] = 3
    mean = np.reshape(np.asarray(prep.mean, "float64"), shape)
    std = np.reshape(np.asarray(prep.std, "float64"), shape)
    if isinstance(x, np.ndarray):
        if prep.bgr:
            x = np.flip(x, axis=axis)
        x -= mean.astype(x.dtype)
        x /= std.astype(x.dtype)
        return x
    if prep.bgr:
        x = keras.ops.flip(x, axis=axis)
    x = x - keras.ops.convert_to_tensor(mean, dtype=x.dtype)
    return x / keras.ops.convert_to_tensor(std, dtype=x.dtype)


def preprocess_function(model, doc=None):
    """A keras-style ``preprocess_input(x, data_format=None)`` for the default
    weights of ``model`` (a family module's public ``preprocess_input``)."""

    def preprocess_input(x, data_format=None):
        return normalize(x, for_model(model, None), data_format=data_format)

    preprocess_input.__doc__ = doc or (
        f"Normalises RGB 0-255 images for the default weights of {model} "
        "(keras.applications semantics: numpy in place, tensors with keras.ops)."
    )
    return preprocess_input


__all__ = [
    "KERAS_MODES",
    "Preprocessing",
    "for_model",
    "from_cfg",
    "get_preprocessing",
    "normalize",
    "preprocess_function",
]
