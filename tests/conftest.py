import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tests.parity import require  # noqa: E402


@pytest.fixture
def timm():
    require("torch")
    return require("timm")


@pytest.fixture
def torch():
    return require("torch")


@pytest.fixture(autouse=True)
def _clear_keras_session():
    yield
    import keras

    keras.backend.clear_session()
