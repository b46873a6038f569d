"""Pretrained weights: typed configurations, download, verification, loading.

Every builder's ``weights`` argument goes through ``load_weights``: a tag is
resolved to its ``PretrainedCfg`` (``pretrained_cfg``), fetched with
``keras.utils.get_file`` (cached under ``$KERAS_HOME/models/kerasnets``,
hash verified), converted to Keras weights once and cached converted
(``kerasnets.weights.cache``); a path is loaded according to its format
(``kerasnets.weights.loading``).

This package never imports the models: the catalog entry of a model (its
layer maps) is handed in by the builder.
"""

import os

from kerasnets.weights import cache, config, loading
from kerasnets.weights.config import (
    DEFAULT_TAG,
    PretrainedCfg,
    check_tag,
    default_tag,
    describe_tags,
    pretrained_cfg,
    pretrained_cfgs,
    register_pretrained,
    resolve_tag,
    tags,
)

CACHE_SUBDIR = cache.CACHE_SUBDIR


def available(name):
    """Tags of the pretrained weights published for model ``name`` (any case,
    as ``create_model``; "imagenet", standing for the default, among them),
    sorted; [] where none are published. Answered from the catalog index
    (no model module is imported) and the configurations registered since.
    ValueError naming the closest models for an unknown name."""
    from kerasnets import registry

    model = registry.canonical_name(name)
    if model is None and name not in config._CFGS:
        raise ValueError(registry.unknown_name_message("model", name, registry.all_names()))
    model = model or name
    names = {record["tag"] for record in registry.index()["pretrained"]
             if record["model"] == model}
    names.update(tags(model))
    if names:
        names.add(DEFAULT_TAG)
    return sorted(names)


# What makes a ``weights`` string a path: a tag is a bare word.
WEIGHTS_SUFFIXES = (".h5", ".hdf5", ".safetensors", ".pth", ".pt", ".bin", ".params",
                    ".keras")


def is_path(weights):
    """True if ``weights`` names a file rather than a pretrained tag.

    A path must look like one, whatever exists on disk: an ``os.PathLike``,
    or a string that contains a path separator (``models/w.h5``), starts
    with "~" or "." (``~/w``, ``./imagenet``), or ends in a weights-file
    suffix (``w.h5``, ``.weights.h5``, ``.hdf5``, ``.safetensors``,
    ``.pth``, ``.pt``, ``.bin``, ``.params``, ``.keras``; any case). Every
    other string is a tag: a folder or file named ``imagenet`` in the
    working directory never replaces the default weights (write
    ``./imagenet`` to load such a file).
    """
    if isinstance(weights, os.PathLike):
        return True
    if not isinstance(weights, str):
        return False
    separators = (os.sep, "/") + ((os.altsep,) if os.altsep else ())
    return (any(sep in weights for sep in separators) or weights.startswith(("~", "."))
            or weights.lower().endswith(WEIGHTS_SUFFIXES))


def bn_epsilon(weights, cfg, *, by_scheme, default, explicit=None):
    """The BatchNorm epsilon of a model built for ``weights``: ``explicit``
    where given; for a tag, its configuration's (``cfg.bn_epsilon``, the
    file's reference); for a file, that of the reference its format belongs
    to (``by_scheme``, e.g. ``{"keras": 1.001e-5, "torch": 1e-5}``: legacy
    ``.h5`` and ``.weights.h5`` are "keras", ``.safetensors``/``.pth`` "torch",
    ``.params`` "mxnet"); otherwise (``weights=None``) ``default``."""
    if explicit is not None:
        if isinstance(explicit, bool) or not isinstance(explicit, (int, float)) \
                or not 0 < explicit < 1:
            raise ValueError("`bn_epsilon` must be None (follow the weights) or a number "
                             f"in (0, 1). Received: bn_epsilon={explicit!r}")
        return float(explicit)
    if cfg is not None and cfg.bn_epsilon is not None:
        return cfg.bn_epsilon
    if weights is not None and is_path(weights):
        try:
            scheme = config.SCHEMES[loading.file_format(weights)]
        except ValueError:  # an unknown format: refused when loading
            return default
        return by_scheme.get("keras" if scheme.startswith("keras") else scheme, default)
    return default


def fetch(cfg, include_top=True):
    """The local path of ``cfg``'s file (downloaded and verified if needed)."""
    return cache.fetch(cfg, include_top=include_top)


def load_weights(model, weights, *, layer_maps, cfg=None, include_top=True):
    """Loads ``weights`` into ``model``, strictly.

    Args:
        weights: a file path, or a tag when ``cfg`` is given.
        layer_maps: ``{scheme: fn(model) -> (layer_map, classifier)}`` of
            the model's catalog entry (foreign layouts).
        cfg: the ``PretrainedCfg`` of a tag: goes through the cache
            (downloaded and converted once, then read from the converted
            ``.weights.h5``).
    """
    if cfg is None:
        return loading.load_file(model, weights, layer_maps=layer_maps,
                                 include_top=include_top)

    def load_file(model, path, fmt):
        loading.load_file(model, path, layer_maps=layer_maps, include_top=include_top,
                          fmt=fmt)

    return cache.load_pretrained(model, cfg, include_top=include_top, load_file=load_file)


__all__ = [
    "DEFAULT_TAG",
    "PretrainedCfg",
    "available",
    "bn_epsilon",
    "check_tag",
    "default_tag",
    "describe_tags",
    "fetch",
    "is_path",
    "load_weights",
    "pretrained_cfg",
    "pretrained_cfgs",
    "register_pretrained",
    "resolve_tag",
    "tags",
]
