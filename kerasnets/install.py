"""Where a notebook installs kerasnets from: the decision of every notebook's
first cell, which runs before kerasnets is installed and so holds a copy of
``install_source``'s source (written by ``tools/make_notebook_header.py``;
``tests/test_release.py`` checks that the copies agree). Standard library
only."""


def install_source(source, start="."):
    """What the notebooks' first cell passes to ``pip install``: None when
    kerasnets can be imported already (installed, or on ``sys.path``); the
    root of the kerasnets checkout that holds ``start`` (a folder with
    setup.py and kerasnets/_version.py); otherwise ``source``, the project's
    git URL or a wheel's URL."""
    import importlib.util
    import os

    if importlib.util.find_spec("kerasnets") is not None:
        return None
    folder = os.path.abspath(start)
    while True:
        if (os.path.isfile(os.path.join(folder, "setup.py"))
                and os.path.isfile(os.path.join(folder, "kerasnets", "_version.py"))):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return source
        folder = parent
