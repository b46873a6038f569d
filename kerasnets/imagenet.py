"""ImageNet-1k class names, bundled: ``decode_predictions`` works offline.

``kerasnets/resources/imagenet_class_index.json`` is byte-identical to the
class index keras.applications downloads (md5
c2c37ea517e94d9795004a39431a14cb); it is generated from the class lists timm
ships by ``tools/make_class_index.py``: class ``i`` is the i-th WordNet id in
sorted order, named by its synset's first lemma with spaces replaced by
underscores (``"great_white_shark"``).

    >>> preds = model.predict(images)                      # (batch, 1000)
    >>> kerasnets.imagenet.decode_predictions(preds, top=3)[0]
    [('n02123045', 'tabby', 0.61), ('n02123159', 'tiger_cat', 0.23), ...]
"""

import functools
import json
from importlib import resources

import numpy as np

NUM_CLASSES = 1000
CLASS_INDEX_FILE = "resources/imagenet_class_index.json"
SAMPLE_IMAGE_FILE = "resources/sample_cat.jpg"


@functools.cache
def class_index():
    """{"0": ["n01440764", "tench"], ...}: keras.applications' class index."""
    text = resources.files("kerasnets").joinpath(CLASS_INDEX_FILE).read_text("utf-8")
    return json.loads(text)


def class_names():
    """The 1000 class names, in class order (``class_names()[2]`` is
    ``"great_white_shark"``)."""
    index = class_index()
    return [index[str(i)][1] for i in range(NUM_CLASSES)]


def wordnet_ids():
    """The 1000 WordNet ids (``"n01440764"``...), in class order."""
    index = class_index()
    return [index[str(i)][0] for i in range(NUM_CLASSES)]


def sample_image():
    """Path of the bundled sample photo (a tabby cat, 451x300 JPEG; "Chelsea
    the cat" by Stefan van der Walt, CC0, from scikit-image's data).

        >>> image = kerasnets.data.load_image(kerasnets.imagenet.sample_image(),
        ...                                   "MobileNetV2")
    """
    return str(resources.files("kerasnets").joinpath(SAMPLE_IMAGE_FILE))


def decode_predictions(preds, top=5):
    """Decodes a batch of ImageNet predictions (keras.applications semantics).

    Args:
        preds: array-like (numpy, tensor) of shape ``(samples, 1000)``:
            probabilities or logits.
        top: how many classes to return per sample; 0 returns all of them,
            as keras.applications' does (a negative ``top`` is an error here,
            where keras returns an arbitrary slice).

    Returns:
        One list per sample of ``(wordnet_id, class_name, score)`` tuples,
        highest score first.

    Raises:
        ValueError: ``preds`` is not a 2-D batch of 1000 scores, or ``top`` is
            negative.
    """
    if isinstance(top, bool) or int(top) != top or top < 0:
        raise ValueError(f"`top` must be a non-negative integer (0: all classes); "
                         f"received top={top!r}")
    if not isinstance(preds, np.ndarray):
        import keras

        preds = keras.ops.convert_to_numpy(preds)
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != NUM_CLASSES:
        raise ValueError(
            "`decode_predictions` expects a batch of predictions (i.e. a 2D "
            f"array of shape (samples, {NUM_CLASSES})). Received array with "
            f"shape: {preds.shape}"
        )
    index = class_index()
    results = []
    for pred in preds:
        best = pred.argsort()[-top:][::-1]  # top=0: every class, as keras
        decoded = [tuple(index[str(i)]) + (pred[i],) for i in best]
        decoded.sort(key=lambda item: item[2], reverse=True)
        results.append(decoded)
    return results


__all__ = ["class_index", "class_names", "decode_predictions", "sample_image", "wordnet_ids"]
