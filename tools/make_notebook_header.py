#!/usr/bin/env python
"""Writes the first two cells every notebook starts with, from the project's
declared home (``REPOSITORY`` in kerasnets/_version.py):

1. an "Open in Colab" badge linking to the notebook in that repository;
2. the install cell: nothing when kerasnets is installed, ``pip install``
   of the checkout when the notebook lies in one, else of
   ``KERASNETS_SOURCE`` (the repository's git URL; set it, or the
   environment variable of that name, to a wheel's URL). Its decision is
   ``kerasnets.install.install_source``, copied in (the cell runs before
   kerasnets is installed).

    python tools/make_notebook_header.py            # every notebooks/*.ipynb, in place
    python tools/make_notebook_header.py --check    # exit 1 if one is out of date

The notebooks stay stripped (tools/strip_notebooks.py's layout).
"""

import argparse
import glob
import importlib.util
import inspect
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# By path: the checkout's files, whichever kerasnets is installed.
REPOSITORY = _load("_kerasnets_version", "kerasnets/_version.py").REPOSITORY
_install = _load("_kerasnets_install", "kerasnets/install.py")
_strip = _load("_strip_notebooks", "tools/strip_notebooks.py")

GIT_SOURCE = f"git+{REPOSITORY}.git"
COLAB = REPOSITORY.replace("https://github.com/", "https://colab.research.google.com/github/")


def colab_url(stem):
    """The Colab address of ``notebooks/<stem>.ipynb`` on the main branch."""
    return f"{COLAB}/blob/main/notebooks/{stem}.ipynb"


def badge(stem):
    return ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(stem)})")


INSTALL_CELL = f'''\
# Installs kerasnets unless it is installed: from this checkout when the notebook lies in one,
# else from KERASNETS_SOURCE, the project's git repository (or set it to a wheel's URL).
# Written by tools/make_notebook_header.py (its decision: kerasnets.install.install_source).
import importlib
import os
import subprocess
import sys

KERASNETS_SOURCE = os.environ.get("KERASNETS_SOURCE",
                                  "{GIT_SOURCE}")


{inspect.getsource(_install.install_source).rstrip()}


source = install_source(KERASNETS_SOURCE)
if source is None:
    print("kerasnets is installed")
else:
    print(f"installing kerasnets from {{source}}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)
    importlib.invalidate_caches()'''


def _lines(text):
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def with_header(notebook, stem):
    """``notebook`` (a dict) with the badge as its first cell and the install
    cell as its first code cell (each replaced where present)."""
    cells = notebook["cells"]
    if not (cells and cells[0]["cell_type"] == "markdown"
            and "colab-badge.svg" in "".join(cells[0]["source"])):
        cells.insert(0, {"cell_type": "markdown", "id": f"{stem[:2]}-badge", "metadata": {},
                         "source": []})
    cells[0]["source"] = _lines(badge(stem))
    code = next((c for c in cells if c["cell_type"] == "code"), None)
    if code is None or not any(word in "".join(code["source"])
                               for word in ("install_source", "pip install")):
        code = {"cell_type": "code", "execution_count": None, "id": f"{stem[:2]}-install",
                "metadata": {}, "outputs": [], "source": []}
        cells.insert(1, code)
    code["source"] = _lines(INSTALL_CELL)
    return notebook


def expected(path):
    """The text ``path`` should have."""
    with open(path, encoding="utf-8") as f:
        notebook = json.load(f)
    stem = os.path.splitext(os.path.basename(path))[0]
    return _strip.dumps(_strip.strip(with_header(notebook, stem)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a notebook's header is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path in sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb"))):
        text = expected(path)
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                continue
        if args.check:
            stale.append(path)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run python tools/make_notebook_header.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
