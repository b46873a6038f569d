"""Optional features and the setup.py extra that installs them.

A feature whose libraries are missing is refused before any work, with the
command that installs them (``pip install "kerasnets[export]"``) instead of
a ``ModuleNotFoundError`` after the model has been built. Standard library
only.
"""

import importlib.util

# extra -> the modules it installs (setup.py's extras_require, by import name)
EXTRAS = {
    "export": ("onnx", "onnxruntime", "tf2onnx"),
    "parity": ("torch", "torchvision", "timm", "pytorchcv"),
}


class MissingExtraError(ImportError):
    """An optional feature's libraries are not installed."""


def install_hint(extra):
    return f'pip install "kerasnets[{extra}]"'


def require(extra, feature, modules=None):
    """Raises ``MissingExtraError`` naming ``feature`` and the pip command of
    ``extra`` unless ``modules`` (default: all the extra's) can be imported."""
    missing = [m for m in (modules or EXTRAS[extra]) if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtraError(
            f"{feature} needs {', '.join(missing)}, not installed: {install_hint(extra)}")
