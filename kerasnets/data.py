"""Input pipelines: tensorflow-datasets and image folders, as ``tf.data``.

``load`` returns a batched, prefetched dataset of ``(images, labels)`` ready
for ``model.fit`` / ``model.evaluate``:

    >>> train = kerasnets.data.load("imagenette/320px", "train", image_size=224,
    ...                             batch_size=64, training=True,
    ...                             preprocessing=kerasnets.data.preprocessing_for(
    ...                                 "DPN68", "imagenet"))
    >>> val = kerasnets.data.load("folder:/data/flowers", "train[80%:]", 224, 64,
    ...                           training=False, preprocessing="torch")

Sources:
    - any tensorflow-datasets image classification name (``cifar10``,
      ``imagenette/320px``, ``imagenet2012``, ...), with tfds split syntax
      (``train[:90%]``); ``data_dir`` and ``try_gcs`` are passed to tfds;
    - ``folder:PATH``: a directory of class subfolders (``PATH/<class>/*.jpg``),
      or of split folders holding class subfolders (``PATH/train/<class>``,
      ``PATH/validation/<class>``). Without split folders, ``split`` may slice
      the folder per class with tfds' percent syntax (``train[:80%]``,
      ``train[80%:]``); the order is fixed, so such slices never overlap.
      Images are .jpg/.jpeg/.png/.bmp/.gif/.webp files; hidden files and
      folders (macOS' ``._x.jpg``) are skipped.

EXIF orientation: ``load_image`` (``kerasnets predict``) turns a photo
upright by it; the pipelines decode with ``tf.io``, which ignores it (as
``keras.utils.image_dataset_from_directory`` and torchvision's
``ImageFolder`` do), so a dataset's images are used as stored: rotate the
files themselves (e.g. ``PIL.ImageOps.exif_transpose``) where that matters.

Training images are decoded and cropped in one step where the file is a JPEG
(random resized crop, Inception style: area ``scale``, aspect ``ratio``),
flipped, and optionally passed through ``keras.layers.RandAugment`` and
``keras.layers.MixUp``. Evaluation images are resized so that the shorter
side is ``image_size / crop_pct``, with the weights' interpolation, and
center-cropped (timm's and keras.applications' evaluation transform).
Images stay RGB in [0, 255] through the augmentations and are normalised
last, by a ``Preprocessing`` (a mode name, a (mean, std) pair, or picked for
a builder and its weights by ``preprocessing_for``).

``batch_size`` is always the global batch. Given a ``tf.distribute``
strategy, ``load`` returns ``strategy.distribute_datasets_from_function``
input: every input pipeline (one per worker) reads its own shard and
batches ``batch_size / num_replicas`` examples per replica.
"""

import dataclasses
import os
import random
import re
import warnings
from typing import Optional, Tuple

import numpy as np

from kerasnets import preprocessing

AUTOTUNE = -1  # tf.data.AUTOTUNE, without importing TensorFlow at import time
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
FOLDER_PREFIX = "folder:"
# Split-folder names that stand for each other (``val`` is common on disk).
_SPLIT_ALIASES = {"validation": ("validation", "val", "valid"),
                  "val": ("val", "validation", "valid"),
                  "test": ("test",), "train": ("train",)}
_SPLIT_FOLDERS = ("train", "validation", "val", "valid", "test")
# Fixed order for slicing a folder into splits: independent of the training
# seed, so "train[:80%]" and "train[80%:]" never share an image.
_FOLDER_SPLIT_SEED = 20170707
# Evaluation crops: the longer side is first cut to at most this many times
# the shorter one (around the centre), so memory follows the output size.
MAX_ASPECT = 4


# ----------------------------------------------------------- preprocessing
# Defined below the models (kerasnets.preprocessing, derived from the weights'
# PretrainedCfg); re-exported here, where the pipelines use them.

Preprocessing = preprocessing.Preprocessing
get_preprocessing = preprocessing.get_preprocessing
preprocessing_for = preprocessing.for_model


# ------------------------------------------------------------------ sources


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a pipeline needs to know about a source (and a model about it)."""

    name: str
    num_classes: int
    class_names: Tuple[str, ...]
    num_examples: Optional[int]  # of the requested split; None when unknown


def is_folder(dataset):
    return str(dataset).startswith(FOLDER_PREFIX)


def _parse_slice(split):
    """"train[10%:80%]" -> ("train", 0.1, 0.8); "train" -> ("train", 0.0, 1.0)."""
    match = re.fullmatch(r"(\w+)(?:\[(-?\d+%)?:(-?\d+%)?\])?", split.replace(" ", ""))
    if not match:
        raise ValueError(
            f"Cannot read split {split!r} for a folder dataset: use a split "
            "folder name, or percent slices such as 'train[:80%]'."
        )

    def fraction(text, default):
        if text is None:
            return default
        value = int(text[:-1]) / 100
        return value + 1.0 if value < 0 else value

    return match.group(1), fraction(match.group(2), 0.0), fraction(match.group(3), 1.0)


def _class_dirs(root):
    return sorted(
        d for d in os.listdir(root)
        if os.path.isdir(os.path.join(root, d)) and not d.startswith(".")
    )


def _image_files(directory):
    """The image files under ``directory``, sorted; hidden files and folders
    (macOS' ``._x.png`` AppleDouble files, ``.thumbnails/``) left out."""
    files = []
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(
            os.path.join(dirpath, f) for f in sorted(filenames)
            if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
        )
    return files


def split_folders(path):
    """The split folders (train, validation, val, valid, test) of a
    ``folder:`` dataset's root; empty for a folder of class folders."""
    root = os.path.expanduser(path[len(FOLDER_PREFIX):] if is_folder(path) else path)
    if not os.path.isdir(root):
        raise ValueError(f"Image folder {root!r} does not exist.")
    return [d for d in _class_dirs(root) if d in _SPLIT_FOLDERS]


def folder_files(path, split="train"):
    """Files, labels and class names of a ``folder:`` dataset split."""
    root = path[len(FOLDER_PREFIX):] if is_folder(path) else path
    root = os.path.expanduser(root)
    if not os.path.isdir(root):
        raise ValueError(f"Image folder {root!r} does not exist.")
    name, start, stop = _parse_slice(split)
    for candidate in _SPLIT_ALIASES.get(name, (name,)):
        if os.path.isdir(os.path.join(root, candidate)):
            split_root = os.path.join(root, candidate)
            # Class names from the train folder, so labels agree across splits.
            train_root = os.path.join(root, "train")
            classes = _class_dirs(train_root if os.path.isdir(train_root) else split_root)
            break
    else:
        subdirs = _class_dirs(root)
        split_like = [d for d in subdirs if d in _SPLIT_FOLDERS]
        if split_like:
            raise ValueError(
                f"Image folder {root!r} has no {name!r} split: its split folders "
                f"are {split_like}."
            )
        if name not in ("train", "all"):
            raise ValueError(
                f"Image folder {root!r} has no split folders; use split 'train' "
                "(all images) or percent slices such as 'train[:80%]' / "
                f"'train[80%:]'. Received {split!r}."
            )
        split_root, classes = root, subdirs
    if not classes:
        raise ValueError(
            f"Image folder {split_root!r} has no class subfolders "
            "(expected PATH/<class>/<image files>)."
        )
    files, labels = [], []
    for label, cls in enumerate(classes):
        class_dir = os.path.join(split_root, cls)
        class_files = _image_files(class_dir) if os.path.isdir(class_dir) else []
        if os.path.isdir(class_dir) and not class_files:
            raise ValueError(
                f"The class folder {class_dir!r} holds no images "
                f"({', '.join(IMAGE_EXTENSIONS)}): every subfolder is a class; remove it "
                "or add its images."
            )
        if (start, stop) != (0.0, 1.0):
            order = np.random.default_rng(_FOLDER_SPLIT_SEED).permutation(len(class_files))
            lo, hi = int(round(start * len(order))), int(round(stop * len(order)))
            class_files = [class_files[i] for i in sorted(order[lo:hi])]
        files.extend(class_files)
        labels.extend([label] * len(class_files))
    if not files:
        raise ValueError(
            f"No images ({', '.join(IMAGE_EXTENSIONS)}) in {split_root!r} for split {split!r}."
        )
    return files, labels, tuple(classes)


def unreadable_images(files):
    """The files of ``files`` that cannot be decoded as images (corrupt,
    truncated, not an image): one decoding pass over them."""
    import tensorflow as tf

    files = [os.fspath(f) for f in files]
    if not files:
        return []
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(files))
    ds = ds.map(lambda f: (f, tf.shape(_decode(tf.io.read_file(f)))[0]),
                num_parallel_calls=AUTOTUNE)
    ds = ds.ignore_errors()
    good = {f.numpy().decode() for f, _ in ds}
    return [f for f in files if f not in good]


class UnreadableImagesError(ValueError):
    """Images of a folder dataset that cannot be decoded (``files``)."""

    def __init__(self, dataset, files):
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        super().__init__(
            f"{len(files)} image file(s) of {dataset} cannot be decoded: {shown}. Remove "
            "or replace them, or skip them (--skip-bad-images, skip_unreadable=True)."
        )
        self.files = files


def check_images(dataset, split="train"):
    """Raises ``UnreadableImagesError`` naming the files of a folder dataset
    split that cannot be decoded (nothing for tfds datasets)."""
    if is_folder(dataset):
        files, _, _ = folder_files(dataset, split)
        bad = unreadable_images(files)
        if bad:
            raise UnreadableImagesError(dataset, bad)


def _tfds_builder(name, data_dir, try_gcs):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir, try_gcs=try_gcs)
    except tfds.core.registered.DatasetNotFoundError:
        pass  # its message lists every dataset (8 KB): the closest few instead
    from kerasnets import registry

    base = str(name).split("/")[0].split(":")[0]
    near = registry.closest(base, tfds.list_builders(with_community_datasets=False), n=3)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise ValueError(f"Unknown tensorflow-datasets dataset {name!r}{hint} "
                     "(tfds.list_builders() lists them; folder:PATH reads an image folder)")


def _tfds_keys(info):
    keys = info.supervised_keys
    if isinstance(keys, (tuple, list)) and len(keys) == 2 and all(isinstance(k, str) for k in keys):
        return keys
    return "image", "label"


# Without a validation split, train and tune hold out this much of the
# training split (the last part of each class of a folder).
HOLD_OUT = 0.1


def validation_splits(dataset, train_split="train", val_split="auto", data_dir=None,
                      try_gcs=False):
    """The training and validation splits of a run: the one rule of
    ``kerasnets train`` and ``kerasnets tune``.

    ``val_split="auto"``: the dataset's "validation" split, else its "test"
    split; a dataset with neither holds out the last ``HOLD_OUT`` (10 %) of the
    training split: ``train[:90%]`` / ``train[90%:]`` (per class for folders;
    a folder too small for that has no validation). None or "none": no
    validation. Anything else is taken as given.

    Returns ``(train_split, val_split, held_out)``; ``held_out`` says that the
    validation images were taken from the training split.
    """
    if val_split is None or str(val_split).lower() == "none":
        return train_split, None, False
    if val_split != "auto":
        return train_split, val_split, False
    for name in ("validation", "test"):
        if _has_split(dataset, name, data_dir, try_gcs):
            return train_split, name, False
    if "[" in train_split:
        raise ValueError(
            f"{dataset} has no validation or test split, and the training split "
            f"{train_split!r} is a slice already: name the validation images with "
            f"--val-split (val_split), e.g. another slice of {train_split.split('[')[0]!r}.")
    keep = round(100 * (1 - HOLD_OUT))
    held_out = f"{train_split}[{keep}%:]"
    if is_folder(dataset) and not _has_split(dataset, held_out, data_dir, try_gcs):
        return train_split, None, False  # too few images per class to hold any out
    return f"{train_split}[:{keep}%]", held_out, True


def _has_split(dataset, name, data_dir, try_gcs):
    if is_folder(dataset):
        try:
            folder_files(dataset, name)
            return True
        except ValueError:
            return False
    try:
        return name in _tfds_builder(dataset, data_dir, try_gcs).info.splits
    except Exception:  # noqa: BLE001 - unprepared, mocked
        return False


def info(dataset, split="train", data_dir=None, try_gcs=False):
    """``DatasetInfo`` of a tfds name or ``folder:PATH`` (and split)."""
    if is_folder(dataset):
        files, _, classes = folder_files(dataset, split)
        return DatasetInfo(dataset, len(classes), classes, len(files))
    builder = _tfds_builder(dataset, data_dir, try_gcs)
    image_key, label_key = _tfds_keys(builder.info)
    label = builder.info.features[label_key]
    if not hasattr(label, "num_classes"):
        raise ValueError(
            f"{dataset!r} is not an image classification dataset: its "
            f"{label_key!r} feature is not a ClassLabel."
        )
    try:
        num_examples = builder.info.splits[split].num_examples or None
    except (KeyError, ValueError):
        num_examples = None  # not prepared yet, or mocked: counted by load
    names = tuple(label.names) if getattr(label, "names", None) else tuple(
        str(i) for i in range(label.num_classes)
    )
    return DatasetInfo(dataset, label.num_classes, names, num_examples)


def _encoded_source(dataset, split, *, data_dir, try_gcs, training, seed,
                    input_context, download, skip_unreadable=False):
    """Dataset of (encoded image bytes, int64 label), sharded for the input
    pipeline of ``input_context``; ``skip_unreadable`` drops the folder
    images that cannot be decoded (naming them in a warning)."""
    import tensorflow as tf

    if is_folder(dataset):
        files, labels, _ = folder_files(dataset, split)
        if skip_unreadable:
            bad = set(unreadable_images(files))
            if bad:
                warnings.warn(f"Skipping {len(bad)} unreadable image(s) of {dataset}: "
                              f"{', '.join(sorted(bad))}", stacklevel=3)
                kept = [(f, y) for f, y in zip(files, labels) if f not in bad]
                if not kept:
                    raise UnreadableImagesError(dataset, sorted(bad))
                files, labels = (list(t) for t in zip(*kept))
        ds = tf.data.Dataset.from_tensor_slices(
            (tf.constant(files), tf.constant(labels, tf.int64))
        )
        if input_context and input_context.num_input_pipelines > 1:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        return ds.map(lambda f, y: (tf.io.read_file(f), y), num_parallel_calls=AUTOTUNE)

    import tensorflow_datasets as tfds

    builder = _tfds_builder(dataset, data_dir, try_gcs)
    image_key, label_key = _tfds_keys(builder.info)
    shard_examples = False
    read_config = tfds.ReadConfig(shuffle_seed=seed, try_autocache=False)
    if input_context and input_context.num_input_pipelines > 1:
        try:
            shards = builder.info.splits[split].num_shards
        except (KeyError, ValueError, AttributeError):
            shards = 0
        if shards and shards >= input_context.num_input_pipelines:
            read_config = tfds.ReadConfig(
                shuffle_seed=seed, try_autocache=False, input_context=input_context
            )
        else:  # too few files to give each pipeline its own: shard examples
            shard_examples = True
    ds = tfds.load(
        dataset,
        split=split,
        data_dir=data_dir,
        try_gcs=try_gcs,
        download=download,
        shuffle_files=training,
        decoders={image_key: tfds.decode.SkipDecoding()},
        read_config=read_config,
    )
    if shard_examples:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return ds.map(
        lambda ex: (ex[image_key], tf.cast(ex[label_key], tf.int64)),
        num_parallel_calls=AUTOTUNE,
    )


# ----------------------------------------------------------------- transforms


def random_resized_crop(encoded, size, seed, *, scale=(0.08, 1.0),
                        ratio=(3 / 4, 4 / 3), interpolation="bilinear"):
    """Random area/aspect crop of an encoded image, resized to ``size``.

    Inception-style (``tf.image.stateless_sample_distorted_bounding_box``, 10
    attempts, the whole image when none fits). JPEGs are decoded only inside
    the crop. ``seed``: a stateless seed (shape [2] int). Returns float32
    RGB in [0, 255].
    """
    import tensorflow as tf

    def crop_box(shape):
        begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
            shape,
            bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
            seed=seed,
            min_object_covered=0.0,
            aspect_ratio_range=ratio,
            area_range=scale,
            max_attempts=10,
            use_image_if_no_bounding_boxes=True,
        )
        return begin[0], begin[1], crop_size[0], crop_size[1]

    def jpeg():
        y, x, h, w = crop_box(tf.io.extract_jpeg_shape(encoded, output_type=tf.int32))
        return tf.io.decode_and_crop_jpeg(encoded, tf.stack([y, x, h, w]), channels=3)

    def other():
        image = _decode(encoded)
        y, x, h, w = crop_box(tf.shape(image, out_type=tf.int32))
        return tf.image.crop_to_bounding_box(image, y, x, h, w)

    image = tf.cond(tf.io.is_jpeg(encoded), jpeg, other)
    image = tf.image.resize(image, (size, size), method=interpolation, antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0)


def _decode(encoded):
    import tensorflow as tf

    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def center_crop(image, size, crop_pct=0.875, interpolation="bilinear"):
    """Resize the shorter side to ``floor(size / crop_pct)``, center-crop
    ``size`` x ``size`` (timm's evaluation transform, with torchvision's
    rounding: the longer side truncated, the crop offset rounded half to
    even). Antialiased like PIL. A side longer than ``MAX_ASPECT`` times the
    other is first cut to its centre, which the crop never leaves, so the
    work is bounded by the output size. Returns float32 RGB in [0, 255]."""
    import tensorflow as tf

    scale_size = int(np.floor(size / crop_pct))
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    short = tf.minimum(h, w)
    # A 1x100000 strip would otherwise be resized to 256x25600000 first.
    keep = short * MAX_ASPECT
    crop_h, crop_w = tf.minimum(h, keep), tf.minimum(w, keep)
    image = image[(h - crop_h) // 2:(h - crop_h) // 2 + crop_h,
                  (w - crop_w) // 2:(w - crop_w) // 2 + crop_w]
    h, w = crop_h, crop_w
    # Integer arithmetic: int(scale * long / short), as torchvision's Resize.
    new_h = tf.where(h == short, scale_size, (scale_size * h) // short)
    new_w = tf.where(w == short, scale_size, (scale_size * w) // short)
    new_h, new_w = tf.maximum(new_h, size), tf.maximum(new_w, size)
    image = tf.image.resize(image, tf.stack([new_h, new_w]), method=interpolation,
                            antialias=True)
    top = tf.cast(tf.round(tf.cast(new_h - size, tf.float32) / 2), tf.int32)
    left = tf.cast(tf.round(tf.cast(new_w - size, tf.float32) / 2), tf.int32)
    image = image[top:top + size, left:left + size]
    image.set_shape([size, size, 3])
    return tf.clip_by_value(image, 0.0, 255.0)


# EXIF orientation (tag 0x0112) -> (mirror left-right first, then quarter
# turns counter-clockwise): what shows the photo upright.
_EXIF_ORIENTATIONS = {2: (True, 0), 3: (False, 2), 4: (True, 2), 5: (True, 1),
                      6: (False, 3), 7: (True, 3), 8: (False, 1)}


def exif_orientation(path):
    """The EXIF orientation of an image file (1 to 8; 1, upright, where it
    has none or Pillow is not installed)."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            return int(image.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - no Pillow, no or damaged EXIF: as stored
        return 1


def load_image(path, builder=None, weights="imagenet", image_size=None, normalize=True,
               preprocessing=None):
    """Reads one image file the way ``builder``'s ``weights`` were evaluated.

    Decodes ``path`` (JPEG, PNG, BMP, GIF, WebP), turns it upright by its
    EXIF orientation (a phone's portrait photo; needs Pillow, which
    matplotlib installs), resizes the shorter side to
    ``image_size / crop_pct`` with the weights' interpolation and
    center-crops ``image_size`` (the weights' ``input_size`` by default), then
    normalises with the weights' mean/std unless ``normalize=False`` (for a
    model built with ``include_preprocessing=True``, which takes 0-255
    pixels). ``preprocessing`` (a ``Preprocessing`` or anything
    ``get_preprocessing`` takes) replaces the builder's.

    Returns:
        float32 numpy array ``(image_size, image_size, 3)``.

    Example:
        >>> x = kerasnets.data.load_image("cat.jpg", "DPN68")  # 0.875, bicubic
        >>> model.predict(x[None])
    """
    import tensorflow as tf

    if preprocessing is not None:
        prep = get_preprocessing(preprocessing)
    elif builder is None:
        raise ValueError("load_image needs a builder (its weights' preprocessing) or "
                         "preprocessing=.")
    else:
        prep = preprocessing_for(builder, weights)
    if image_size is None:
        image_size = prep.input_size or 224
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"No such image file: {path}")
    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3,
                                   expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        raise ValueError(
            f"{path} is not a readable image (JPEG, PNG, BMP, GIF or WebP expected)."
        ) from error
    mirror, quarter_turns = _EXIF_ORIENTATIONS.get(exif_orientation(path), (False, 0))
    if mirror:
        image = tf.image.flip_left_right(image)
    image = tf.image.rot90(image, quarter_turns)
    image = center_crop(image, int(image_size), prep.crop_pct, prep.interpolation)
    if normalize:
        image = prep.normalize(image)
    return np.asarray(image, dtype="float32")


# ------------------------------------------------------------------ pipeline


def load(
    dataset,
    split="train",
    image_size=224,
    batch_size=32,
    training=False,
    preprocessing="torch",
    *,
    data_dir=None,
    try_gcs=False,
    download=True,
    seed=None,
    deterministic=None,
    cache=False,
    shuffle_buffer=None,
    shuffle=None,
    repeat=None,
    drop_remainder=None,
    scale=(0.08, 1.0),
    ratio=(3 / 4, 4 / 3),
    flip=True,
    randaugment=None,
    mixup=0.0,
    num_classes=None,
    one_hot=None,
    strategy=None,
    input_context=None,
    skip_unreadable=False,
):
    """A batched, prefetched ``tf.data.Dataset`` of ``(images, labels)``.

    Args:
        dataset: a tensorflow-datasets name (``"cifar10"``,
            ``"imagenette/320px"``, ``"imagenet2012"``) or ``"folder:PATH"``.
        split: tfds split (``"train"``, ``"validation"``, ``"train[:90%]"``);
            for folders a split folder or a percent slice.
        image_size: output height and width.
        batch_size: global batch size (split over replicas under a strategy).
        training: augment (random resized crop, flip, RandAugment, mixup),
            shuffle and repeat; otherwise resize + center crop, in order.
        preprocessing: a keras mode (``"torch"``, ``"tf"``, ``"caffe"``),
            ``"none"``/None, a model name (``"DPN92"``), a (mean, std) pair, or
            a ``Preprocessing`` (``preprocessing_for(builder, weights)``); its
            ``crop_pct`` and ``interpolation`` drive evaluation resizing.
        data_dir, try_gcs, download: passed to ``tfds.load``.
        seed: makes shuffling, augmentation and file order reproducible
            (and the pipeline deterministic unless ``deterministic=False``).
        deterministic: keep element order under parallel maps (default: True
            for evaluation or with a seed; False otherwise: faster).
        cache: False; True to cache in memory; or a file path prefix. Training
            caches the encoded images (before random augmentation), evaluation
            the cropped ones.
        shuffle: shuffle the examples (default: ``training``); evaluation
            pipelines shuffle before the transform (BatchNorm statistics).
        shuffle_buffer: default min(10000, split size).
        repeat: repeat forever (default: ``training``); use ``steps_per_epoch``.
        drop_remainder: default ``training`` (static batch shape; TPUs need it).
        scale, ratio: random resized crop ranges (area fraction, aspect).
        flip: random horizontal flip when training.
        randaugment: None/0, or the number of ops of ``keras.layers.RandAugment``
            (magnitude 0.5 of its range), or a RandAugment layer.
        mixup: alpha of ``keras.layers.MixUp`` (0: off); needs one-hot labels.
        num_classes: class count for one-hot labels (default: from the source).
        one_hot: labels one-hot float32 (default: when mixup is on); otherwise
            int64 class indices.
        strategy: a ``tf.distribute.Strategy``: returns its
            ``distribute_datasets_from_function`` input, sharded per worker.
        input_context: a ``tf.distribute.InputContext`` (from inside your own
            ``distribute_datasets_from_function``): shard and batch per replica.
        skip_unreadable: folder datasets: leave out the images that cannot be
            decoded (one decoding pass first; a warning names them). Without
            it, ``check_images`` names them when reading fails.

    Returns:
        ``tf.data.Dataset`` (or a distributed dataset with ``strategy``) of
        float32 images ``(batch, image_size, image_size, 3)`` and labels.
    """
    if strategy is not None:
        replicas = strategy.num_replicas_in_sync
        if batch_size % replicas:
            raise ValueError(
                f"batch_size {batch_size} is not divisible by the "
                f"{replicas} replicas of {type(strategy).__name__}: use a multiple of "
                f"{replicas}."
            )
        kwargs = dict(locals())
        del kwargs["strategy"], kwargs["input_context"], kwargs["replicas"]

        def dataset_fn(context):
            return load(**kwargs, input_context=context)

        return strategy.distribute_datasets_from_function(dataset_fn)

    import tensorflow as tf

    prep = get_preprocessing(preprocessing)
    if deterministic is None:
        deterministic = seed is not None or not training
    repeat = training if repeat is None else repeat
    shuffle = training if shuffle is None else shuffle
    drop_remainder = training if drop_remainder is None else drop_remainder
    one_hot = bool(mixup) if one_hot is None else one_hot
    if mixup and not one_hot:
        raise ValueError("mixup mixes labels: it needs one_hot=True.")
    if one_hot and num_classes is None:
        num_classes = info(dataset, split, data_dir, try_gcs).num_classes
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    base_seed = seed if seed is not None else random.SystemRandom().randrange(2**31)

    ds = _encoded_source(
        dataset, split, data_dir=data_dir, try_gcs=try_gcs, training=training,
        seed=base_seed, input_context=input_context, download=download,
        skip_unreadable=skip_unreadable,
    )
    size = int(ds.cardinality())
    if training:
        if 0 < size < batch_size:
            _refuse_batch(dataset, split, batch_size, size, input_context)
        ds = _cache(ds, cache)
    if shuffle:
        if shuffle_buffer is None:
            shuffle_buffer = min(10000, size) if size > 0 else 10000
        ds = ds.shuffle(shuffle_buffer, seed=base_seed, reshuffle_each_iteration=True)
    if training:
        if repeat:
            ds = ds.repeat()
        # A stateless seed per element: reproducible under parallel maps and
        # different in every epoch (the index runs on through the repeats).
        ds = ds.enumerate()

        def augment(index, example):
            encoded, label = example
            s = tf.stack([tf.constant(base_seed, tf.int64), index])
            image = random_resized_crop(encoded, image_size, s, scale=scale, ratio=ratio)
            if flip:
                image = tf.image.stateless_random_flip_left_right(image, s + 1)
            return image, label

        ds = ds.map(augment, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    else:
        def transform(encoded, label):
            image = center_crop(_decode(encoded), image_size, prep.crop_pct,
                                prep.interpolation)
            return image, label

        ds = ds.map(transform, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
        ds = _cache(ds, cache)
        if repeat:
            ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder,
                  num_parallel_calls=AUTOTUNE, deterministic=deterministic)

    if one_hot:
        ds = ds.map(lambda x, y: (x, tf.one_hot(y, num_classes, dtype=tf.float32)),
                    num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    if training and (randaugment or mixup):
        ds = ds.map(_batch_augmenter(randaugment, mixup, base_seed),
                    num_parallel_calls=None)  # stateful Keras layers: in order
    ds = ds.map(lambda x, y: (prep.normalize(x), y), num_parallel_calls=AUTOTUNE,
                deterministic=deterministic)
    options = tf.data.Options()
    options.deterministic = deterministic
    options.experimental_optimization.map_parallelization = True
    if input_context is not None:
        # Already sharded per input pipeline above.
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF
        )
    return ds.with_options(options).prefetch(AUTOTUNE)


def _refuse_batch(dataset, split, batch_size, size, input_context):
    """A training batch larger than the data would repeat its images within
    each batch and hold them all in memory (100000 images for 16). Refused,
    not clamped: the batch size also sets the recipe's learning rate."""
    where = f"{dataset} split {split!r}"
    if input_context is not None and input_context.num_input_pipelines > 1:
        where = f"this worker's shard of {where}"
    if input_context is not None and input_context.num_replicas_in_sync > 1:
        batch = (f"{batch_size * input_context.num_replicas_in_sync} "
                 f"({batch_size} per replica)")
    else:
        batch = str(batch_size)
    raise ValueError(f"The batch size (--batch-size, batch_size) {batch} is larger than the "
                     f"{size} training images of {where}: use at most {size}.")


def _cache(ds, cache):
    if cache is True:
        return ds.cache()
    if cache:
        os.makedirs(os.path.dirname(os.path.abspath(str(cache))), exist_ok=True)
        return ds.cache(str(cache))
    return ds


def _batch_augmenter(randaugment, mixup, seed):
    import keras

    layers = []
    if randaugment:
        if isinstance(randaugment, keras.layers.Layer):
            layers.append(("images", randaugment))
        else:
            layers.append(("images", keras.layers.RandAugment(
                value_range=(0, 255), num_ops=int(randaugment), factor=0.5, seed=seed)))
    if mixup:
        layers.append(("both", keras.layers.MixUp(alpha=float(mixup), seed=seed + 1)))

    def apply(images, labels):
        for kind, layer in layers:
            if kind == "images":
                images = layer(images)
            else:
                out = layer({"images": images, "labels": labels})
                images, labels = out["images"], out["labels"]
        return images, labels

    return apply


def synthetic(image_size=224, batch_size=32, num_classes=1000, steps=None,
              preprocessing="none", one_hot=False, seed=0):
    """Random images as a repeated, prefetched dataset (benchmarks, smoke
    tests): ``steps`` distinct batches (default 1), repeated forever."""
    import tensorflow as tf

    steps = steps or 1
    prep = get_preprocessing(preprocessing)
    images = tf.random.stateless_uniform(
        (steps * batch_size, image_size, image_size, 3), (seed, 1), 0, 255
    )
    labels = tf.random.stateless_uniform(
        (steps * batch_size,), (seed, 2), 0, num_classes, dtype=tf.int64
    )
    ds = tf.data.Dataset.from_tensor_slices((prep.normalize(images), labels))
    ds = ds.batch(batch_size, drop_remainder=True)
    if one_hot:
        ds = ds.map(lambda x, y: (x, tf.one_hot(y, num_classes)))
    return ds.cache().repeat().prefetch(AUTOTUNE)


__all__ = [
    "DatasetInfo",
    "Preprocessing",
    "UnreadableImagesError",
    "check_images",
    "center_crop",
    "load_image",
    "folder_files",
    "get_preprocessing",
    "info",
    "load",
    "preprocessing_for",
    "random_resized_crop",
    "synthetic",
    "unreadable_images",
]
