"""Documentation (issue 8): every public builder and layer has a docstring
with the paper reference, its arguments and a runnable-looking example, and
the README's model gallery is up to date."""

import inspect
import os
import re
import subprocess
import sys

import pytest

import kerasnets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PAPER = re.compile(r"arXiv|CVPR|ICCV|NeurIPS|BMVC|ECCV|et al\.")
ARGS = re.compile(r"^\s*Args\b[^\n]*:|as keras\.applications", re.MULTILINE)
EXAMPLE = re.compile(r"^\s*Examples?\b[^\n]*:\s*\n(?:\s*\n)*\s*>>> ", re.MULTILINE)


def _layer_doc(name):
    """The docstring of ``kerasnets.layers.<name>``; for an object re-exported
    from Keras (``hard_sigmoid``, ``hard_swish``: Keras' own functions, whose
    docstrings are Keras'), the docstring of the kerasnets module that
    exports it."""
    obj = getattr(kerasnets.layers, name)
    if (getattr(obj, "__module__", "") or "").startswith("kerasnets."):
        return inspect.getdoc(obj) or ""
    modules = [
        module for module_name, module in sorted(sys.modules.items())
        if module_name.startswith("kerasnets.layers.")
        and getattr(module, name, None) is obj
    ]
    assert modules, f"kerasnets.layers.{name}: no kerasnets module exports it"
    return inspect.getdoc(modules[0]) or ""


def _check(doc):
    missing = []
    if not PAPER.search(doc):
        missing.append("paper reference")
    if not ARGS.search(doc):
        missing.append("Args section")
    if not EXAMPLE.search(doc):
        missing.append("Example with >>>")
    return missing


@pytest.mark.parametrize("name", kerasnets.list_models(include_generic=True))
def test_builder_docstring(name):
    doc = inspect.getdoc(getattr(kerasnets, name)) or ""
    missing = _check(doc)
    assert not missing, f"{name} docstring lacks: {', '.join(missing)}"


@pytest.mark.parametrize("name", sorted(kerasnets.layers.__all__))
def test_layer_docstring(name):
    missing = _check(_layer_doc(name))
    assert not missing, f"kerasnets.layers.{name} docstring lacks: {', '.join(missing)}"


def test_gallery_is_up_to_date():
    result = subprocess.run(
        [sys.executable, os.path.join("tools", "make_gallery.py"), "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
