"""What is exported: the model (a builder, a ``.keras`` file, a keras.Model),
its export-time rewrites, and the images it is calibrated and checked on."""

import math
import os

import numpy as np

from kerasnets import registry
from kerasnets.export.checks import SYNTHETIC
from kerasnets.training.run import read_run_config
from kerasnets.weights.loading import load_model_file


def builder_for(model_name):
    """The builder whose models are called ``model_name`` ("densenet121",
    "mobilenetv2_1.00_224", "se_mobilenet_1.00", "DPN68"), else None.

    Ignoring case, underscores and hyphens, the longest builder name that is
    the model name or begins it followed by a digit or a dot (a size or
    width suffix) wins.
    """
    def plain(text):
        return str(text).lower().replace("_", "").replace("-", "")

    name = plain(model_name)
    found = []
    for builder in registry.all_names():
        key = plain(builder)
        rest = name[len(key):]
        if name.startswith(key) and (not rest or rest[0].isdigit() or rest[0] == "."):
            found.append(builder)
    return max(found, key=len) if found else None


def resolve_model(model, weights="imagenet", image_size=None):
    """The Keras model to export and what is known about it.

    Args:
        model: a ``keras.Model``, a builder name ("MobileNetV2") or function,
            or the path of a ``.keras`` file.
        weights: for a builder, the weights to load (a tag, a file, or None
            for random); for a model or ``.keras`` file, the tag its weights
            came from (it only picks the preprocessing).
        image_size: the input size to build a builder at (default: the
            builder's or the weights' size).

    Returns:
        ``(keras_model, builder_name or None, weights, preprocessing or None)``;
        the preprocessing is known here only for a ``.keras`` file written by
        ``kerasnets train`` (its ``config.json``).
    """
    import keras

    if isinstance(model, keras.Model):
        return model, builder_for(model.name), weights, None
    if isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith(".keras"):
        path = os.path.expanduser(os.fspath(model))
        net = load_model_file(path)
        run = read_run_config(path)  # written beside it by `kerasnets train`
        prep, name = (run["preprocessing"], run["model"]) if run else (None, None)
        if name is not None and registry.canonical_name(name) is None:
            name = None
        return net, name or builder_for(net.name), None, prep
    if callable(model):
        builder, name = model, getattr(model, "__name__", str(model))
    else:
        entry = registry.get(str(model))
        builder, name = entry.builder, entry.name
        if entry.generic:
            raise ValueError(f"{name} is a generic builder; name a variant "
                             "(see `kerasnets list`), or pass a built keras.Model.")
    kwargs = {"weights": weights}
    if image_size:
        kwargs["input_shape"] = (int(image_size), int(image_size), 3)
    return builder(**kwargs), name, weights, None


def _weights_text(model, weights):
    import keras

    if isinstance(model, keras.Model):
        return "as given"
    if isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith(".keras"):
        return f"from {os.path.basename(os.fspath(model))}"
    return "random" if weights is None else os.fspath(weights)


def _default_size(builder, weights):
    from kerasnets import weights as weights_lib

    if builder and isinstance(weights, str) and not weights_lib.is_path(weights):
        cfg = weights_lib.pretrained_cfg(builder, weights, strict=False)
        if cfg is not None:
            return int(cfg.input_size)
    return 224


def _needs_rewrite(layer):
    import keras

    grouped = type(layer) is keras.layers.Conv2D and layer.groups > 1
    policy = getattr(layer, "dtype_policy", None)
    mixed = (policy is not None and not isinstance(layer, keras.layers.InputLayer)
             and policy.compute_dtype in ("float16", "bfloat16"))
    return grouped, mixed


def _graph_layers(model):
    """The layers ``keras.models.clone_model(recursive=True)`` clones one by
    one: those of a Functional or Sequential model and of such models nested
    in it (a custom layer's own sublayers are rebuilt by the custom layer)."""
    for layer in model.layers:
        if type(layer).__name__ in ("Functional", "Sequential", "Backbone"):
            yield from _graph_layers(layer)
        else:
            yield layer


def exportable(model):
    """``model`` with the export-time rewrites applied, and what was
    rewritten: ``Conv2D(groups > 1)`` -> ``GroupConv2D`` (same config and
    weights) and mixed-precision layers -> float32. Returns ``(model, notes,
    float32_reference)``; the model is the same object when nothing needs a
    rewrite. Only Functional and Sequential models can be rewritten."""
    import keras

    from kerasnets.layers import GroupConv2D

    found = [_needs_rewrite(layer) for layer in _graph_layers(model)]
    grouped = sum(g for g, _ in found)
    mixed = sum(m for _, m in found)
    if not grouped and not mixed:
        return model, (), False

    def clone(layer):
        is_grouped, is_mixed = _needs_rewrite(layer)
        config = layer.get_config()
        if is_mixed:
            config["dtype"] = "float32"
        cls = GroupConv2D if is_grouped else layer.__class__
        return cls.from_config(config)

    try:
        rewritten = keras.models.clone_model(model, clone_function=clone, recursive=True)
    except ValueError as error:
        raise ValueError(
            f"{model.name} has {grouped} Conv2D(groups>1) and {mixed} mixed-precision "
            "layers, which export needs to rewrite, but it is a subclassed model that "
            "cannot be cloned; build it with GroupConv2D and a float32 policy."
        ) from error
    rewritten.set_weights(model.get_weights())
    notes = []
    if grouped:
        notes.append(f"Conv2D(groups>1) -> GroupConv2D: {grouped}")
    if mixed:
        notes.append(f"mixed precision -> float32: {mixed} layers")
    return rewritten, tuple(notes), bool(mixed)


# ------------------------------------------------------------- calibration


def _preprocessing_text(prep):
    if prep.mode:
        return prep.mode
    mean = ", ".join(f"{v:.2f}" for v in prep.mean)
    std = ", ".join(f"{v:.2f}" for v in prep.std)
    return f"mean ({mean}), std ({std}) on 0-255{', BGR' if prep.bgr else ''}"


def calibration_images(calibration, image_size, preprocessing, samples=128,
                       split="train", batch_size=16, seed=0):
    """Preprocessed float32 images ``(N, S, S, 3)`` for calibration and checks.

    ``calibration``: "synthetic" (``kerasnets.data.synthetic``: uniform
    noise), a tensorflow-datasets name, ``folder:PATH`` or a directory of
    class subfolders (read with ``kerasnets.data.load``, evaluation
    transform), a numpy array of preprocessed images, or a ``tf.data``
    dataset of such images (or ``(images, labels)``). Folders contribute
    images of every class (a per-class percent slice of ``split``, shuffled
    with ``seed``); tfds datasets their first ``samples`` examples.
    """
    import tensorflow as tf

    from kerasnets import data

    samples = int(samples)
    if samples < 1:
        raise ValueError(f"calibration samples must be at least 1; received {samples}.")
    if isinstance(calibration, np.ndarray):
        images = np.asarray(calibration, np.float32)[:samples]
    elif isinstance(calibration, tf.data.Dataset):
        chunks, count = [], 0
        for element in calibration:
            chunk = element[0] if isinstance(element, (tuple, list)) else element
            chunk = np.asarray(chunk, np.float32)
            if chunk.ndim == 3:
                chunk = chunk[None]
            chunks.append(chunk)
            count += len(chunk)
            if count >= samples:
                break
        if not chunks:
            raise ValueError("The calibration dataset is empty.")
        images = np.concatenate(chunks)[:samples]
    elif calibration == SYNTHETIC:
        steps = math.ceil(samples / batch_size)
        ds = data.synthetic(image_size, batch_size, steps=steps,
                            preprocessing=preprocessing, seed=seed)
        images = np.concatenate([x.numpy() for x, _ in ds.take(steps)])[:samples]
    else:
        source = str(calibration)
        if not data.is_folder(source) and os.path.isdir(os.path.expanduser(source)):
            source = data.FOLDER_PREFIX + source
        load_split = split
        if data.is_folder(source) and "[" not in split:
            available = data.info(source, split).num_examples or 0
            if available > samples:
                load_split = f"{split}[:{min(100, math.ceil(100 * samples / available) + 1)}%]"
        ds = data.load(source, load_split, image_size, batch_size, training=False,
                       preprocessing=preprocessing, repeat=False, drop_remainder=False)
        chunks, count = [], 0
        try:
            for x, _ in ds:
                chunks.append(x.numpy())
                count += len(chunks[-1])
                if count >= samples and not data.is_folder(source):
                    break
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
            data.check_images(source, load_split)  # names the files it could not decode
            raise
        if not chunks:
            raise ValueError(f"No images in {calibration!r} (split {split!r}).")
        images = np.concatenate(chunks)
        if data.is_folder(source):
            images = images[np.random.default_rng(seed).permutation(len(images))]
        images = images[:samples]
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"Calibration images must be a batch (N, H, W, C); "
                         f"received shape {images.shape}.")
    return images
