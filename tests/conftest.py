import os

# torchvision (imported by timm) crashes with a segmentation fault when it is
# imported after TensorFlow; importing the reference stack first avoids it.
for _module in ("torch", "torchvision", "timm", "triton"):
    # triton too: torch._dynamo loads it lazily, and it must precede TF.
    try:
        __import__(_module)
    except ImportError:
        pass
try:
    import torch

    # TensorFlow's thread pools slow torch's own 10-50x in one process.
    torch.set_num_threads(1)
except ImportError:
    pass

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as `import kerasnets` does
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tests.parity import require  # noqa: E402


@pytest.fixture
def timm():
    require("torch")
    return require("timm")


@pytest.fixture
def torch():
    return require("torch")


_TESTS_RUN = [0]


@pytest.fixture(autouse=True)
def _clear_keras_session():
    yield
    import gc

    import keras

    # Keras' own gc.collect() costs about a second per test in a process
    # that has built many models: collect every tenth test instead.
    keras.backend.clear_session(free_memory=False)
    _TESTS_RUN[0] += 1
    if _TESTS_RUN[0] % 10 == 0:
        gc.collect()
