"""Multi-scale backbones (issue 17): ``features_only=True`` gives the feature
maps at timm's points; with the same checkpoint (calibrated BatchNorm) they
equal timm's ``forward_intermediates``, for one model of every family timm
has; every builder takes the arguments."""

import numpy as np
import pytest

import keras

import kerasnets
from tests.parity import (
    assert_logits_close,
    calibrate_torch,
    random_images,
    save_state_dict,
)


def timm_features(model, images):
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        return [o.permute(0, 2, 3, 1).numpy()
                for o in model.forward_intermediates(x, intermediates_only=True)]


def assert_features_close(ours, theirs, tol):
    assert len(ours) == len(theirs)
    for level, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == b.shape, (level, a.shape, b.shape)
        # Each map compared like logits: relative to its spread across images.
        assert_logits_close(a.reshape(len(a), -1), b.reshape(len(b), -1), tol=tol)


# kerasnets model, timm model, checkpoint suffix, builder arguments, tolerance
TIMM_FAMILIES = [
    ("DPN68", "dpn68", ".safetensors", {}, 5e-4),
]


@pytest.mark.parametrize("name, timm_name, suffix, kwargs, tol", TIMM_FAMILIES,
                         ids=[f[0] for f in TIMM_FAMILIES])
@pytest.mark.parametrize("memory_efficient", [False, True])
def test_features_match_timm(timm, tmp_path, name, timm_name, suffix, kwargs, tol,
                             memory_efficient):
    reference = timm.create_model(timm_name, pretrained=False)
    calibrate_torch(reference, random_images(8, 64, seed=1), batches=2)
    path = save_state_dict(reference, tmp_path / f"{timm_name}{suffix}")
    extra = {"memory_efficient": True} if memory_efficient else {}
    backbone = kerasnets.create_model(name, weights=path, include_top=False,
                                      features_only=True, input_shape=(None, None, 3),
                                      **kwargs, **extra)
    images = random_images(2, 96, seed=2)
    ours = [keras.ops.convert_to_numpy(o) for o in backbone(images, training=False)]
    assert_features_close(ours, timm_features(reference, images), tol)
    info = kerasnets.feature_info(name, **kwargs)
    assert [f["reduction"] for f in info] == [2, 4, 8, 16, 32]
    assert [f["num_chs"] for f in info] == [o.shape[-1] for o in ours]
    assert backbone.feature_info == info


def test_out_indices_and_argument_checks():
    backbone = kerasnets.DPN68(weights=None, include_top=False, features_only=True,
                               out_indices=(1, -1), input_shape=(64, 64, 3))
    assert [o.shape for o in backbone.outputs] == [(None, 16, 16, 144), (None, 2, 2, 832)]
    assert [f["reduction"] for f in backbone.feature_info] == [4, 32]
    with pytest.raises(ValueError, match="include_top=False"):
        kerasnets.DPN68(weights=None, features_only=True)
    with pytest.raises(ValueError, match="pooling=None"):
        kerasnets.DPN68(weights=None, include_top=False, pooling="avg", features_only=True)
    with pytest.raises(ValueError, match="out_indices"):
        kerasnets.DPN68(weights=None, include_top=False, features_only=True, out_indices=(5,))
    with pytest.raises(ValueError, match="features_only=True"):
        kerasnets.DPN68(weights=None, include_top=False, out_indices=(1,))
