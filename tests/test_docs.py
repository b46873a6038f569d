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


# ------------------------------------------------------------ README and docs/ (issue 23)

DOC_PAGES = ("weights", "differences", "models", "backbones", "training", "export",
             "backends", "benchmarks", "safety", "development")


def _text(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def test_readme_is_short_and_links_every_docs_page():
    readme = _text("README.md")
    assert len(readme.splitlines()) <= 250
    for page in DOC_PAGES:
        assert f"(docs/{page}.md)" in readme, f"README does not link docs/{page}.md"
    for heading in ("## Install", "## Quick start", "## Models", "## Documentation",
                    "## Training", "## What kerasnets keeps safe", "## Notebooks", "## Tests"):
        assert re.search(rf"^{heading}$", readme, re.MULTILINE), heading


def test_relative_links_resolve():
    files = ["README.md"] + [os.path.join("docs", f"{page}.md") for page in DOC_PAGES]
    for name in files:
        folder = os.path.dirname(os.path.join(ROOT, name))
        for target in re.findall(r"\]\((?!https?://|#)([^)#\s]+)", _text(name)):
            assert os.path.exists(os.path.join(folder, target)), f"{name}: {target}"


def test_readme_first_block_is_what_ci_runs():
    """Its first block: the main job, which downloads weights once (offline
    it fails) and how to place the file by hand; the CPU-only torch beside the
    test command; the test command as .ci/run runs it."""
    block = re.search(r"```bash\n(.*?)```", _text("README.md"), re.DOTALL)[1]
    assert "kerasnets predict --model MobileNetV2" in block
    assert "downloaded once" in block and "offline" in block
    assert "kerasnets info MobileNetV2 --files" in block
    lines = block.splitlines()
    test_command = 'pip install -e ".[test,parity]" && python -m pytest -q'
    index = lines.index(test_command)
    assert lines[index - 1] == (
        "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu")
    ci = _text(".ci", "run")
    assert ('python -m pip install -q --disable-pip-version-check -e ".[test,parity]" '
            "&& python -m pytest -q") in ci


def test_offline_docs_name_the_real_cache_files():
    """docs/weights.md's example cache files are the ones `kerasnets info
    NAME --files` prints (the loader's names)."""
    from kerasnets.cli import catalog

    doc = _text("docs", "weights.md")
    examples = re.findall(r"cache file: ~/\.keras/models/kerasnets/(\w+)\.(\S+)", doc)
    assert len(examples) >= 2
    for model, rest in examples:
        names = [line.rsplit("/", 1)[1] for line in catalog.weights_files(model)
                 if "cache file:" in line]
        assert f"{model}.{rest}" in names
    assert "kerasnets info NAME --files" in doc


def test_moved_sections_kept_their_content():
    """Sections moved out of the README (nothing lost): a sentence of each."""
    for page, sentence in {
        "weights": "Loading is strict: every variable is assigned",
        "differences": "Deliberate\ndifferences, each with its reason",
        "models": "`kerasnets.layers` holds serializable layers",
        "backbones": "Every builder takes `features_only=True`",
        "training": "### Several machines",
        "export": "Exports go through Keras 3's own `Model.export`",
        "backends": "Which backend is fastest on CPU",
        "benchmarks": "**Training memory**",
        "safety": "A damaged backup is moved aside",
        "development": "## Adding a model",
    }.items():
        assert sentence in _text("docs", f"{page}.md"), f"docs/{page}.md: {sentence!r}"
