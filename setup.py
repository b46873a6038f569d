from setuptools import find_packages, setup

setup(
    name="kerasnets",
    version="0.1.0",
    description=(
        "Keras 3 applications: DenseNet, MobileNet v1/v2/v3, SENet, DPN and IGC "
        "with pretrained weights, proven against their reference implementations."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["kerasnets", "kerasnets.*"]),
    include_package_data=True,
    package_data={"kerasnets": ["resources/*.json", "resources/*.jpg", "resources/*.txt"]},
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
        "test": [
            "pytest>=7", "pytest-timeout", "pillow",
            "onnx", "onnxruntime", "tf2onnx",
            "nbclient", "nbformat", "ipykernel",
            "jax[cpu]",  # kerasnets.benchmark on Keras' JAX backend
        ],
        "parity": ["torch>=2.1", "torchvision", "timm>=1.0", "pytorchcv"],
    },
    entry_points={"console_scripts": ["kerasnets=kerasnets.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
