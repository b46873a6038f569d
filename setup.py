"""The package's declared entry point (pyproject.toml names setuptools as its
build backend). Version and repository URL come from kerasnets/_version.py."""

import re
import runpy

from setuptools import find_packages, setup

ABOUT = runpy.run_path("kerasnets/_version.py")
REPOSITORY = ABOUT["REPOSITORY"]


def long_description():
    """README.md with its relative links made absolute (they point into the
    repository, which an index page is not)."""
    with open("README.md", encoding="utf-8") as f:
        text = f.read()
    return re.sub(
        r"(!?\[[^\]]*\])\((?!https?://|#)([^)\s]+)\)",
        lambda m: f"{m[1]}({REPOSITORY}/{'raw' if m[1][0] == '!' else 'blob'}/main/{m[2]})",
        text,
    )


setup(
    name="kerasnets",
    version=ABOUT["__version__"],
    description=(
        "Keras 3 applications: DenseNet, MobileNet v1/v2/v3, SENet, DPN and IGC "
        "with pretrained weights, proven against their reference implementations."
    ),
    long_description=long_description(),
    long_description_content_type="text/markdown",
    url=REPOSITORY,
    project_urls={
        "Source": REPOSITORY,
        "Documentation": f"{REPOSITORY}/tree/main/docs",
        "Changelog": f"{REPOSITORY}/blob/main/CHANGELOG.md",
        "Issues": f"{REPOSITORY}/issues",
    },
    license="Apache-2.0",
    license_files=["LICENSE"],
    python_requires=">=3.10",
    # kerasnets/resources holds data only (no __init__.py): named here so
    # that setuptools ships it as part of the package.
    packages=find_packages(include=["kerasnets", "kerasnets.*"]) + ["kerasnets.resources"],
    include_package_data=True,
    package_data={"kerasnets.resources": ["*.json", "*.jpg", "*.txt"]},
    install_requires=[
        "keras>=3.10",
        "wrapt",  # registers the layers with Keras when it is imported (kerasnets/__init__.py)
        "tensorflow>=2.16",
        "numpy",
        "h5py",
        "safetensors",
        "rich",
        "tensorflow-datasets",
        "matplotlib",
        "keras-tuner[bayesian]>=1.4",
    ],
    extras_require={
        "export": ["onnx", "onnxruntime", "tf2onnx"],
        # keras-hub's detection and segmentation tasks on kerasnets backbones
        # (pyramid_outputs); it pulls in tensorflow-text.
        "hub": ["keras-hub>=0.32"],
        "test": [
            "pytest>=7", "pytest-timeout", "pillow",
            "onnx", "onnxruntime", "tf2onnx",
            "keras-hub>=0.32",  # tests/test_hub.py: the hub extra's tasks
            "nbclient", "nbformat", "ipykernel",
            "jax[cpu]",  # kerasnets.benchmark on Keras' JAX backend
            "build", "twine",  # the release checks (tests/test_release.py, .ci/run)
        ],
        "parity": ["torch>=2.1", "torchvision", "timm>=1.0", "pytorchcv"],
    },
    entry_points={"console_scripts": ["kerasnets=kerasnets.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
