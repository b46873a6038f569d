#!/usr/bin/env python
"""Strips outputs from Jupyter notebooks before they are committed.

    python tools/strip_notebooks.py                 # every notebooks/*.ipynb, in place
    python tools/strip_notebooks.py a.ipynb b.ipynb
    python tools/strip_notebooks.py --check         # exit 1 if any notebook has outputs

Removes code cells' outputs and execution counts, the execution timing and
collapsed/scrolled state in cell metadata, and the widget state and kernel
run details Jupyter or Colab leave in the notebook metadata. Cell sources,
tags (``parameters``) and ids are kept. Files are written as nbformat 4
with Jupyter's own layout (1-space indent, trailing newline), so a
stripped notebook that Jupyter saves again does not change.
"""

import argparse
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CELL_METADATA_DROPPED = ("execution", "collapsed", "scrolled", "ExecuteTime", "outputId",
                         "executionInfo", "colab")
NOTEBOOK_METADATA_DROPPED = ("widgets", "papermill", "execution")


def strip(notebook):
    """Strips ``notebook`` (a dict, nbformat 4) in place; returns it."""
    for cell in notebook.get("cells", []):
        metadata = cell.get("metadata", {})
        for key in CELL_METADATA_DROPPED:
            metadata.pop(key, None)
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        else:
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    metadata = notebook.get("metadata", {})
    for key in NOTEBOOK_METADATA_DROPPED:
        metadata.pop(key, None)
    language = metadata.get("language_info")
    if isinstance(language, dict):  # the kernel's Python version etc.: keep the name only
        metadata["language_info"] = {"name": language.get("name", "python")}
    return notebook


def dumps(notebook):
    return json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def is_stripped(path):
    """Whether the file at ``path`` is exactly what ``strip`` would write."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return dumps(strip(json.loads(text))) == text


def strip_file(path):
    """Strips the notebook at ``path`` in place; returns whether it changed."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    stripped = dumps(strip(json.loads(text)))
    if stripped == text:
        return False
    with open(path, "w", encoding="utf-8") as f:
        f.write(stripped)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*",
                        help="notebooks (default: notebooks/*.ipynb of the repository)")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a notebook is not stripped")
    args = parser.parse_args(argv)
    paths = args.paths or sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
    dirty = []
    for path in paths:
        if args.check:
            if not is_stripped(path):
                dirty.append(path)
        elif strip_file(path):
            print(f"stripped {path}")
    if dirty:
        print("not stripped (run python tools/strip_notebooks.py):", *dirty, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
