"""Pretrained weights: registry lookup, download, verification and loading.

``weights`` arguments of every builder go through ``load_into``: a tag is
looked up in the registry, fetched with ``keras.utils.get_file`` (cached
under ``$KERAS_HOME/models/kerasnets``, hash verified), converted to Keras
weights once and cached converted (``kerasnets.weights.cache``); a path is
loaded according to its format (see ``kerasnets.weights.loading``).
"""

import os

from kerasnets.weights import cache, loading
from kerasnets.weights.registry import WeightsEntry, register, tags_for

CACHE_SUBDIR = cache.CACHE_SUBDIR

# Converters for source state dicts, per builder family: a callable
# (model) -> (layer_map, classifier_prefixes). Family modules fill this.
STATE_DICT_CONVERTERS = {}


def register_converter(builder, converter):
    STATE_DICT_CONVERTERS[builder] = converter


def _builder_tags(builder):
    prefix = builder + "_"
    tags = set(tags_for(builder))
    from kerasnets.weights.registry import all_keys

    for key in all_keys():
        if key.startswith(prefix):
            tags.update(tags_for(key))
    return sorted(tags)


def available(builder):
    """Tags of the pretrained weights published for ``builder``."""
    return _builder_tags(builder)


def describe_tags(builder):
    tags = _builder_tags(builder)
    if not tags:
        return f"{builder} has no published pretrained weights"
    return "one of " + ", ".join(repr(t) for t in tags)


def check_tag(builder, tag):
    tags = _builder_tags(builder)
    if not tags:
        raise ValueError(
            f"Unknown weights {tag!r} for {builder}: {describe_tags(builder)}. "
            "Pass weights=None (random initialization) or the path to a weights file."
        )
    if tag not in tags:
        raise ValueError(
            f"Unknown weights {tag!r} for {builder}: expected None, a path to "
            f"a weights file, or a pretrained tag ({describe_tags(builder)})."
        )


def _entry(key, tag):
    tags = tags_for(key)
    if tag not in tags:
        raise ValueError(
            f"No {tag!r} weights are published for {key}. Available: "
            f"{sorted(tags) or 'none'}."
        )
    return tags[tag]


def fetch(key, tag, include_top=True):
    """Downloads (or finds in the cache) the file for ``key``/``tag``.

    Returns ``(path, entry)``. See ``kerasnets.weights.cache``.
    """
    entry = _entry(key, tag)
    return cache.fetch(key, tag, entry, include_top=include_top), entry


def _load_file(model, path, fmt, *, builder, include_top):
    """Loads the file at ``path`` (format ``fmt``) into ``model``, strictly."""
    if fmt == "keras":
        loading.load_keras_weights(model, path)
    elif fmt == "keras_h5":
        loading.load_legacy_h5(model, path, include_top=include_top)
    elif fmt == "mxnet_params":
        from kerasnets.weights import mxnet

        mxnet.load_params_into(model, path, builder=builder, include_top=include_top)
    else:
        if builder not in STATE_DICT_CONVERTERS:
            raise ValueError(
                f"{builder} cannot read PyTorch checkpoints ({os.fspath(path)!r}): "
                "no converter from a reference layout is defined for it. Use a "
                "Keras weights file."
            )
        layer_map, classifier = STATE_DICT_CONVERTERS[builder](model)
        state = loading.read_state_dict(path)
        loading.assign_state_dict(
            model,
            state,
            layer_map,
            path,
            classifier=() if include_top else classifier,
        )
    return model


def load_into(model, weights, *, builder, key=None, include_top=True):
    """Loads ``weights`` (a registry tag or a file path) into ``model``.

    A tag goes through the cache (``kerasnets.weights.cache``): downloaded
    and converted once, then read from the converted ``.weights.h5``.
    """
    key = key or builder
    if os.path.exists(weights):
        return _load_file(model, weights, loading.file_format(weights),
                          builder=builder, include_top=include_top)

    def load_file(model, path, fmt):
        _load_file(model, path, fmt or loading.file_format(path),
                   builder=builder, include_top=include_top)

    return cache.load_pretrained(model, key, weights, _entry(key, weights),
                                 include_top=include_top, load_file=load_file)


__all__ = [
    "WeightsEntry",
    "available",
    "check_tag",
    "fetch",
    "load_into",
    "register",
    "register_converter",
]
