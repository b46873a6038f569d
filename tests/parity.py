"""Helpers for numerical parity tests (see shared/DESIGN.md, Tests).

Before comparing logits, BatchNorm statistics are calibrated on random images
and the BN affine weights randomised: with default or random statistics a
random deep network's logits hardly depend on its input, and padding or
epsilon bugs slip through.
"""

import os

import numpy as np
import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(module_name):
    """Imports a reference package; skips locally, fails under CI=true."""
    try:
        return __import__(module_name)
    except ImportError as error:
        message = f"reference package {module_name!r} is not importable: {error}"
        if IN_CI:
            pytest.fail(message + " (CI must install .[parity])", pytrace=False)
        pytest.skip(message)


def random_images(n, size, seed=0):
    rng = np.random.default_rng(seed)
    h, w = (size, size) if isinstance(size, int) else size
    return rng.uniform(-1.0, 1.0, (n, h, w, 3)).astype("float32")


def calibrate_keras(model, images, seed=0):
    """Sets every BN's moving statistics to training-mode batch statistics of
    ``images``, then randomises gamma/beta."""
    import keras

    rng = np.random.default_rng(seed)
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    model(images, training=True)
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
        bn.gamma.assign(rng.uniform(0.5, 1.5, bn.gamma.shape).astype("float32"))
        bn.beta.assign(rng.normal(0.0, 0.2, bn.beta.shape).astype("float32"))


def calibrate_torch(model, images, batches=2, seed=0):
    """Cumulative-average BN statistics over train-mode passes on ``images``
    (NHWC numpy), then random affine weights; leaves the model in eval mode."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        for chunk in torch.chunk(x, batches):
            model(chunk)
        for bn in bns:
            bn.weight.copy_(torch.rand(bn.weight.shape, generator=gen) + 0.5)
            bn.bias.copy_(torch.randn(bn.bias.shape, generator=gen) * 0.2)
    model.eval()
    return model


def torch_logits(model, images):
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        return model(x).numpy()


def save_state_dict(model, path):
    """Saves a torch model's state dict as .safetensors or .pth."""
    path = str(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    else:
        import torch

        torch.save(model.state_dict(), path)
    return path


def assert_logits_close(actual, expected, tol=1e-4):
    """max |actual - expected| <= tol * the input-dependent logit spread.

    The spread is the mean over classes of the std of the expected logits
    across the batch; the check also asserts that spread is not negligible
    next to the logits themselves (i.e. the network really reads its input).
    """
    actual = np.asarray(actual, dtype="float64")
    expected = np.asarray(expected, dtype="float64")
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    spread = float(expected.std(axis=0).mean())
    assert spread > 1e-3 * float(np.abs(expected).mean() + 1e-12), (
        f"logits barely depend on the input (spread {spread:.3g}): calibrate BN"
    )
    diff = float(np.abs(actual - expected).max())
    assert diff <= tol * spread, (
        f"max abs diff {diff:.3g} > {tol:g} x logit spread {spread:.3g} "
        f"(ratio {diff / spread:.3g})"
    )
    return diff / spread


def randomize_keras(model, seed=0):
    """Random values for every weight (kernels scaled to keep activations
    finite) so two models that share a file must agree for the right reason."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        name = v.path.rsplit("/", 1)[-1]
        shape = tuple(v.shape)
        if name == "moving_variance":
            value = rng.uniform(0.5, 1.5, shape)
        elif name in ("gamma",):
            value = rng.uniform(0.5, 1.5, shape)
        elif name in ("beta", "bias", "moving_mean"):
            value = rng.normal(0.0, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else shape[0]
            if "depthwise" in name or len(shape) == 4 and shape[-1] == 1:
                fan_in = int(np.prod(shape[:2]))
            value = rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape)
        v.assign(value.astype("float32"))
