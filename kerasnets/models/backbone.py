"""``Backbone``: the functional model every headless builder returns
(``include_top=False``), with keras-hub's ``pyramid_outputs``.

keras-hub's tasks (``DeepLabV3Backbone``, ``RetinaNetBackbone``, ...) take an
``image_encoder`` and read ``image_encoder.pyramid_outputs``: a dict
``{"P1": map, ..., "P5": map}`` keyed by level (the map's stride is 2**level).
A Python attribute of a plain ``keras.Model`` is lost when the model is saved
and loaded or cloned, so the pyramid lives in the model's config here (level
-> the layer whose output is the map) and is derived again from
the layers whenever the model is built: by a builder, ``from_config``
(``.keras`` files, keras-hub's ``from_config`` of the task) or
``keras.models.clone_model`` (which builds the copy from the original's
class without its config: the pyramid then comes from the original).

A map of a memory-efficient DenseNet/DPN block is a list of maps (never
concatenated inside the headless network): its entry names the layer (and
output index) of every map of the list, and ``pyramid_outputs`` concatenates
them outside the model (``Concatenate`` has no weights).
"""

import sys
import warnings

import keras

_LEVEL_PREFIX = "P"


@keras.saving.register_keras_serializable(package="kerasnets")
class Backbone(keras.Model):
    """A functional ``keras.Model`` with keras-hub's ``pyramid_outputs``.

    ``pyramid``: ``{"P2": [[layer name, output index]], ...}``, the map of each
    level (several: concatenated); ``feature_info``: timm's description of
    the ``features_only`` outputs. Both are kept in the config, so saving,
    loading and cloning keep them. Built by the kerasnets builders.
    """

    def __init__(self, *args, pyramid=None, feature_info=None, **kwargs):
        super().__init__(*args, **kwargs)
        source = None
        if pyramid is None and feature_info is None:
            source = _clone_source()
            if source is not None:
                pyramid, feature_info = source.pyramid, getattr(source, "feature_info", None)
        self.pyramid = _check_pyramid(pyramid or {}, self.name)
        if feature_info is not None:
            self.feature_info = [dict(info) for info in feature_info]
        try:
            self.pyramid_outputs = {level: self._level_output(level, maps)
                                    for level, maps in self.pyramid.items()}
        except ValueError as error:
            if source is None:
                raise
            # a clone_function that renamed layers: a copy without the pyramid
            warnings.warn(f"clone_model: {error} The copy has no pyramid_outputs.",
                          stacklevel=2)
            self.pyramid, self.pyramid_outputs = {}, {}

    def _level_output(self, level, maps):
        tensors = []
        for name, index in maps:
            try:
                outputs = self.get_layer(name).output
            except ValueError:
                raise ValueError(f"The pyramid of {self.name!r} names the layer {name!r}, "
                                 "which the model does not have: rebuild the backbone with "
                                 "its kerasnets builder.") from None
            tensors.append(outputs[index] if isinstance(outputs, (list, tuple))
                           else outputs)
        if len(tensors) == 1:
            return tensors[0]
        return keras.layers.Concatenate(name=f"{self.name}_{level}_concat")(tensors)

    def get_config(self):
        config = super().get_config()
        config["pyramid"] = {level: [list(m) for m in maps]
                             for level, maps in self.pyramid.items()}
        info = getattr(self, "feature_info", None)
        if info is not None:
            config["feature_info"] = [dict(entry) for entry in info]
        return config


def _check_pyramid(pyramid, model_name):
    checked = {}
    for level, maps in pyramid.items():
        if not (isinstance(level, str) and level.startswith(_LEVEL_PREFIX)
                and level[1:].isdigit()):
            raise ValueError(f"A pyramid level is named P<k> (stride 2**k); received "
                             f"{level!r} in the pyramid of {model_name!r}.")
        if (not isinstance(maps, (list, tuple)) or not maps
                or not all(isinstance(m, (list, tuple)) and len(m) == 2
                           and isinstance(m[0], str) and isinstance(m[1], int) for m in maps)):
            raise ValueError(f"Pyramid level {level} of {model_name!r} must list "
                             f"[layer name, output index] pairs; received {maps!r}.")
        checked[level] = [(str(name), int(index)) for name, index in maps]
    return checked


def _clone_source():
    """The Backbone ``keras.models.clone_model`` is copying, if it is the
    caller: it builds the copy as ``model.__class__(inputs, outputs,
    name=model.name)``, without the config, so the pyramid comes from the
    original (the copy's layers have the same names)."""
    frame = sys._getframe(2)
    for _ in range(3):
        if frame is None:
            return None
        if frame.f_code.co_name == "_clone_functional_model":
            source = frame.f_locals.get("model")
            return source if isinstance(source, Backbone) else None
        frame = frame.f_back
    return None


def pyramid_of(taps, chosen=None):
    """keras-hub's pyramid of ``taps`` (``FeatureTaps.taps``, or the
    ``chosen`` ones of ``features_only``): ``{"P<k>": [[layer, output
    index], ...]}`` for every map whose reduction is a power of two 2**k
    (the last map of a level wins), in level order."""
    pyramid = {}
    for tap in taps if chosen is None else chosen:
        reduction = tap["reduction"]
        if reduction < 1 or reduction & (reduction - 1):
            continue
        tensors = tap["tensor"] if isinstance(tap["tensor"], (list, tuple)) else [tap["tensor"]]
        pyramid[f"{_LEVEL_PREFIX}{reduction.bit_length() - 1}"] = [
            [t._keras_history.operation.name, t._keras_history.tensor_index] for t in tensors]
    return dict(sorted(pyramid.items(), key=lambda item: int(item[0][1:])))
