"""Pretrained-weight registry: for each (weights key, tag) where the file lives.

A *key* is the builder name (``"DenseNet121"``) or, where one builder has
several files, the builder plus its options (``"MobileNet_0.75_192"``).
Family modules register their entries at import time with ``register``.
"""

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class WeightsEntry:
    """One published weight file (with and without its classifier).

    Attributes:
        url: file with the classifier.
        notop_url: file without it (None: the full file serves both, the
            classifier tensors are skipped on load).
        file_hash / notop_hash: md5 or sha256 as published (None: unpublished).
        format: "keras_h5" (legacy keras.applications, loaded by topology),
            "safetensors" or "pth" (timm layout, converted on load).
        source: who publishes it; top1: the source's reported accuracy.
        preprocessing: normalisation mode (``kerasnets.data.MODES``).
        crop_pct, interpolation: the source's evaluation transform (resize
            the shorter side to ``input_size / crop_pct`` with
            ``interpolation``, center-crop ``input_size``); keras.applications'
            0.875 and bilinear unless the source says otherwise.
    """

    url: str
    format: str
    file_hash: Optional[str] = None
    notop_url: Optional[str] = None
    notop_hash: Optional[str] = None
    classes: int = 1000
    input_size: int = 224
    preprocessing: str = "torch"
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    source: str = ""
    license: str = ""
    top1: Optional[float] = None
    top5: Optional[float] = None


_REGISTRY = {}
_DEFAULT_TAG = "imagenet"


def register(key, tag, entry, default=False):
    tags = _REGISTRY.setdefault(key, {})
    tags[tag] = entry
    if default or _DEFAULT_TAG not in tags:
        tags[_DEFAULT_TAG] = entry


def tags_for(key):
    return dict(_REGISTRY.get(key, {}))


def all_keys():
    return sorted(_REGISTRY)
