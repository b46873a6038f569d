"""kerasnets: Keras 3 applications for DenseNet, MobileNet v1/v2/v3, SENet, DPN and IGC.

Builders (``kerasnets.DPN92``), the catalog (``list_models``,
``create_model``) and submodules (``kerasnets.data``, ``kerasnets.training``,
...) load on first use: ``import kerasnets`` imports neither TensorFlow nor
Keras. Once Keras is imported (before or after kerasnets), kerasnets' layers
are registered with it, so ``keras.saving.load_model`` reads a kerasnets
model after a plain ``import kerasnets``, as it does after ``import keras_hub``.
"""

import importlib as _importlib
import os as _os
import sys as _sys

# TensorFlow's oneDNN CPU kernels are 3-6x faster for grouped convolutions
# (and have their gradients); TensorFlow turns them on only on some Intel
# CPUs. Imported before TensorFlow, kerasnets turns them on unless the user
# chose otherwise (set TF_ENABLE_ONEDNN_OPTS=0 to keep them off).
if "tensorflow" not in _sys.modules:
    _os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import wrapt as _wrapt  # noqa: E402

from kerasnets import registry  # noqa: E402  (standard library only)
from kerasnets._version import __version__  # noqa: E402, F401
from kerasnets.registry import create_model, list_models  # noqa: E402, F401


@_wrapt.when_imported("keras")
def _register_layers(keras):
    """Registers kerasnets' serializable layers and its ``Backbone`` model
    class when Keras is (or has been) imported: Keras' deserializer finds
    custom classes only among the registered ones."""
    _importlib.import_module("kerasnets.layers")
    _importlib.import_module("kerasnets.models.backbone")

_SUBMODULES = (
    "benchmark", "cli", "convert", "data", "export", "imagenet", "layers", "models",
    "preprocessing", "training", "tuner", "utils", "weights",
)


def feature_info(name, **kwargs):
    """The feature maps of model ``name`` with ``features_only=True``: their
    channels and reductions (``kerasnets.models.common.feature_info``)."""
    from kerasnets.models.common import feature_info as _feature_info

    return _feature_info(name, **kwargs)


def __getattr__(name):
    if name in _SUBMODULES:
        return _importlib.import_module(f"kerasnets.{name}")
    if name[:1].isupper() and not name.startswith("__"):
        if name not in registry.all_names():
            registry._import_family_modules()  # a family the index does not know yet
        if name in registry.all_names():
            return registry.get(name).builder
    raise AttributeError(f"module 'kerasnets' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES) | set(registry.all_names()))
