"""The release's version and the project's home: written here once, read by
setup.py (the package metadata), ``kerasnets --version``, the notebooks'
install cell and their "Open in Colab" badges (``tools/make_notebook_header.py``).
Standard library only: setup.py executes this file without importing kerasnets."""

__version__ = "0.1.0"
REPOSITORY = "https://github.com/kerasnets/kerasnets"
