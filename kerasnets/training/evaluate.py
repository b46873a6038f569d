"""Top-1 / top-5 accuracy and throughput of a model and its weights."""

import dataclasses
import os
import time
import warnings
from typing import Optional, Tuple

from kerasnets.training.distribute import (
    JaxDataParallel,
    device_kind,
    get_strategy,
)
from kerasnets.training.recipe import get_builder
from kerasnets.training.run import count_examples, read_run_config
from kerasnets.weights.loading import load_model_file

DEFAULT_BATCH_SIZE = 64


@dataclasses.dataclass
class Evaluation:
    top1: float
    top5: Optional[float]
    images_per_second: float
    num_examples: int
    seconds: float
    reported_top1: Optional[float] = None
    reported_top5: Optional[float] = None
    split: Optional[str] = None
    # The model's classes without images in the data (a subset evaluated),
    # and how the data's classes were matched to the model's.
    missing_classes: Tuple[str, ...] = ()
    num_classes: Optional[int] = None
    class_matching: str = "by name"

    def summary(self, compare=False):
        lines = [f"top-1 {100 * self.top1:6.2f}%"
                 + (f"   top-5 {100 * self.top5:6.2f}%" if self.top5 is not None else ""),
                 f"{self.num_examples} images in {self.seconds:.1f} s: "
                 f"{self.images_per_second:.1f} images/s"]
        if self.missing_classes:
            lines.append(f"classes: {self.num_classes - len(self.missing_classes)} of the "
                         f"model's {self.num_classes} are in the data; no images of "
                         f"{_some(self.missing_classes)}")
        if self.class_matching != "by name":
            lines.append(f"classes: {self.class_matching}")
        if compare:
            if self.reported_top1 is None and self.reported_top5 is None:
                lines.append("reported: no accuracy published for these weights")
            else:
                parts = []
                for name, ours, theirs in (("top-1", self.top1, self.reported_top1),
                                           ("top-5", self.top5, self.reported_top5)):
                    if theirs is not None and ours is not None:
                        parts.append(f"{name} {theirs:6.2f}% (ours {100 * ours - theirs:+.2f})")
                lines.append("reported: " + "   ".join(parts))
        return "\n".join(lines)


def _some(names, n=8):
    shown = ", ".join(names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")


@dataclasses.dataclass
class ModelFile:
    """A ``.keras`` model with what is known about it: its builder's catalog
    name, preprocessing and class names (None where unknown)."""

    model: object
    name: Optional[str]
    preprocessing: object
    class_names: Optional[Tuple[str, ...]]


def keras_model_file(path, model=None, model_kwargs=None):
    """Loads a ``.keras`` model (``safe_mode``) and what its run's
    ``config.json`` beside it (``kerasnets train``) says: builder,
    preprocessing, class names. Without one, the builder is told by the
    model's name.

    ``model``: the builder the caller expects (a catalog name): a file of
    another builder is refused; for a file that tells none, it picks the
    preprocessing.
    """
    from kerasnets import preprocessing, registry
    from kerasnets.export.sources import builder_for

    def family(name):
        return (registry.indexed(name) or {}).get("family", name)

    def refuse_other(name, how):
        # The run's config.json says the builder; a model's name only its
        # family (a DenseNetCIFAR is called "densenet40_k12", like a DenseNet).
        if expected and name and (expected != name if run else family(expected) != family(name)):
            raise ValueError(f"{path} holds a {name} (says {how}), not a {expected}: leave "
                             "out the model name (--model) or name the right one.")

    path = os.path.expanduser(os.fspath(path))
    expected = getattr(model, "__name__", model)
    expected = (registry.canonical_name(expected) or expected) if expected else None
    run = read_run_config(path)
    if run is not None:  # checked before the model is loaded
        name = registry.canonical_name(run["model"])
        refuse_other(name, "its run's config.json")
    net = load_model_file(path)
    if run is None:
        name = registry.canonical_name(builder_for(net.name) or "")
        refuse_other(name, f"its model name {net.name!r}")
    name = expected or name
    if run is not None:
        prep = run["preprocessing"]
    elif name is not None:
        prep = preprocessing.for_model(name, None, options=model_kwargs)
    else:
        raise ValueError(f"Cannot tell how {path} preprocesses its images (no run "
                         "config.json beside it, and its name is no kerasnets model): "
                         "name its builder (--model, model=).")
    names = run.get("class_names") if run else None
    return ModelFile(net, name, prep, tuple(str(c) for c in names) if names else None)


def default_split(dataset, data_dir=None, try_gcs=False):
    """The split ``evaluate`` reads when none is named: "validation", else
    "test"; a folder of class folders (no split folders) as a whole."""
    from kerasnets import data

    if data.is_folder(dataset):
        folders = data.split_folders(dataset)
        if not folders:
            return "train"  # a folder without split folders: all its images
        for split in ("validation", "val", "valid", "test"):
            if split in folders:
                return split
        raise ValueError(f"{dataset} has the split folders {', '.join(folders)} and no "
                         "validation or test folder: name the split to evaluate (--split).")
    builder = data._tfds_builder(dataset, data_dir, try_gcs)  # noqa: SLF001
    try:
        splits = list(builder.info.splits.keys())
    except Exception:  # noqa: BLE001 - unprepared, mocked
        splits = []
    return next((s for s in ("validation", "test") if s in splits), "validation")


def class_mapping(data_names, model_names, num_classes, dataset, label):
    """How the data's labels become the model's: ``(indices or None (the
    same), the model's classes missing from the data, how they were
    matched)``. By name with the model's class names; a model without names
    and 1000 outputs has ImageNet's (by WordNet id, as ImageNet folders and
    tfds name them); else in order, said so. A class the model does not know
    is refused."""
    from kerasnets import imagenet

    data_names = [str(c) for c in data_names]
    how = "by name"
    if model_names is None and num_classes == imagenet.NUM_CLASSES:
        wnids = imagenet.wordnet_ids()
        if set(data_names) <= set(wnids):
            model_names = wnids
    if model_names is None:
        if len(data_names) > num_classes:
            raise ValueError(f"{dataset} has {len(data_names)} classes, more than the "
                             f"{num_classes} that {label} predicts.")
        order = ", ".join(f"{c}={i}" for i, c in enumerate(data_names[:5]))
        how = (f"{label} came without class names: the data's classes are taken in order "
               f"as its classes ({order}{', ...' if len(data_names) > 5 else ''})")
        return None, (), how
    model_names = [str(c) for c in model_names]
    if len(model_names) != num_classes:
        raise ValueError(f"{label} predicts {num_classes} classes but its config.json names "
                         f"{len(model_names)}: it does not belong to this model.")
    unknown = [c for c in data_names if c not in model_names]
    if unknown:
        raise ValueError(f"{dataset} has classes that {label} does not predict: "
                         f"{_some(unknown)} (it predicts {_some(model_names)}); evaluate a "
                         "folder of its classes only.")
    indices = [model_names.index(c) for c in data_names]
    missing = tuple(c for c in model_names if c not in data_names)
    return (None if indices == list(range(len(indices))) else indices), missing, how


def evaluate(
    model=None,
    weights="imagenet",
    dataset="imagenet2012",
    split=None,
    *,
    image_size=None,
    batch_size=None,
    preprocessing=None,
    data_dir=None,
    try_gcs=False,
    strategy="auto",
    tpu=None,
    max_examples=None,
    verbose=0,
    model_kwargs=None,
):
    """Top-1 / top-5 accuracy and throughput of ``model`` with ``weights``.

    ``weights``: a pretrained tag, a weights file, or a ``.keras`` model
    written by ``train`` (its ``config.json`` beside it gives the
    preprocessing and class names; ``model`` may then be left out, and
    must match). ``split``: default "validation", else "test"; a folder of
    class folders is evaluated whole. The data's classes are matched to the
    model's by name (``class_mapping``): a class the model does not know is
    refused, a subset of its classes is evaluated and reported
    (``missing_classes``). ``image_size``: default the weights' input size
    (``.keras``: the model's). ``preprocessing``: default the weights'.
    ``batch_size``: default 64; one larger than the data is cut to the
    data's size (with a warning when it was asked for).
    Images/s counts the whole evaluation after one warm-up batch.
    Returns an ``Evaluation`` with the weights' reported accuracy.
    """
    import keras
    import tensorflow as tf

    from kerasnets import data
    from kerasnets import weights as weights_lib

    if not isinstance(strategy, tf.distribute.Strategy):
        strategy = get_strategy(strategy, tpu=tpu)
    if isinstance(strategy, JaxDataParallel):
        raise ValueError(
            "evaluate counts every image, and a JAX device mesh takes whole batches only: "
            "evaluate on one device (strategy='auto').")
    cfg, class_names = None, None
    keras_file = isinstance(weights, (str, os.PathLike)) and os.fspath(weights).endswith(".keras")
    if keras_file:
        with strategy.scope():
            loaded = keras_model_file(weights, model, model_kwargs)
        net, name, class_names = loaded.model, loaded.name, loaded.class_names
        label = os.fspath(weights)
        if preprocessing is None:
            preprocessing = loaded.preprocessing
    else:
        if model is None:
            raise ValueError("evaluate needs a model (a catalog name or builder) unless "
                             "weights is a .keras model file.")
        builder = get_builder(model)
        name = label = builder.__name__
        if isinstance(weights, str) and not weights_lib.is_path(weights):
            cfg = weights_lib.pretrained_cfg(name, weights, options=model_kwargs,
                                             input_size=image_size, strict=False)
        if preprocessing is None:
            preprocessing = data.preprocessing_for(name, weights, options=model_kwargs)
        with strategy.scope():
            size = image_size or (cfg.input_size if cfg else 224)
            net = builder(weights=weights, input_shape=(size, size, 3),
                          **(model_kwargs or {}))
    preprocessing = data.get_preprocessing(preprocessing)
    image_size = image_size or int(net.input_shape[1] or 224)
    num_classes = int(net.output_shape[-1])
    if split is None:
        split = default_split(dataset, data_dir, try_gcs)
    info = data.info(dataset, split, data_dir, try_gcs)
    indices, missing, matching = class_mapping(info.class_names, class_names, num_classes,
                                               dataset, label)
    with strategy.scope():
        net.compile(loss=keras.losses.SparseCategoricalCrossentropy(), metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="top1"),
            keras.metrics.SparseTopKCategoricalAccuracy(min(5, num_classes), name="top5"),
        ])
    n = count_examples(dataset, split, data_dir, try_gcs)
    if max_examples:
        n = min(n, int(max_examples))
    if batch_size is None:
        batch_size = min(DEFAULT_BATCH_SIZE, n)
    elif batch_size > n:
        warnings.warn(f"The batch size {batch_size} is larger than the {n} images to evaluate: "
                      f"using {n}.", stacklevel=2)
        batch_size = n
    ds = data.load(dataset, split, image_size, batch_size, training=False,
                   preprocessing=preprocessing, data_dir=data_dir, try_gcs=try_gcs,
                   drop_remainder=device_kind(strategy) == "tpu")
    if max_examples:
        ds = ds.unbatch().take(n).batch(batch_size)
    if indices is not None:
        to_model = tf.constant(indices, tf.int64)
        ds = ds.map(lambda x, y: (x, tf.gather(to_model, y)))
    net.evaluate(ds.take(1), verbose=0)  # trace and warm up
    start = time.perf_counter()
    results = net.evaluate(ds, verbose=verbose, return_dict=True)
    seconds = time.perf_counter() - start
    return Evaluation(
        top1=float(results["top1"]),
        top5=float(results["top5"]) if num_classes > 5 else None,
        images_per_second=n / seconds if seconds > 0 else float("inf"),
        num_examples=n,
        seconds=seconds,
        reported_top1=getattr(cfg, "top1", None),
        reported_top5=getattr(cfg, "top5", None),
        split=split,
        missing_classes=missing,
        num_classes=num_classes,
        class_matching=matching,
    )
