"""DPN: parameter counts, timm parity (calibrated BN), test-time pooling, errors."""

import numpy as np
import pytest

import keras

import kerasnets
from kerasnets.models import dpn
from tests.parity import (
    assert_logits_close,
    calibrate_torch,
    random_images,
    save_state_dict,
    torch_logits,
)

PARAMS = {  # REFERENCE section 1: (trainable, keras total)
    "DPN68": (12_611_602, 12_676_718),
    "DPN68b": (12_611_602, 12_676_718),
    "DPN92": (37_668_392, 37_793_608),
    "DPN98": (61_570_728, 61_735_624),
    "DPN107": (86_917_800, 87_131_624),
    "DPN131": (79_254_504, 79_477_864),
}


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("builder", [
    pytest.param(b, marks=pytest.mark.heavy) if b in ("DPN98", "DPN107", "DPN131") else b
    for b in sorted(PARAMS)])
def test_parameter_counts(builder):
    model = getattr(kerasnets, builder)(weights=None)
    assert (trainable(model), model.count_params()) == PARAMS[builder]


# timm name, checkpoint format, sizes checked
PARITY = [  # the deep ones in the heavy tier (pytest -m heavy)
    ("dpn68", ".safetensors", (224, 97)),
    pytest.param("dpn68b", ".pth", (224, 97), marks=pytest.mark.heavy),
    pytest.param("dpn92", ".safetensors", (224, 97), marks=pytest.mark.heavy),
    pytest.param("dpn98", ".pth", (224, 65), marks=pytest.mark.heavy),
    pytest.param("dpn107", ".safetensors", (224, 65), marks=pytest.mark.heavy),
    pytest.param("dpn131", ".safetensors", (224, 65), marks=pytest.mark.heavy),
]


@pytest.mark.parametrize("timm_name, suffix, sizes", PARITY)
def test_timm_parity(timm, tmp_path, timm_name, suffix, sizes):
    reference = timm.create_model(timm_name, pretrained=False)
    calibrate_torch(reference, random_images(8, 64, seed=1), batches=2)
    path = save_state_dict(reference, tmp_path / f"{timm_name}{suffix}")
    builder = getattr(kerasnets, {"dpn68b": "DPN68b"}.get(timm_name, timm_name.upper()))
    model = builder(weights=path, input_shape=(None, None, 3), classifier_activation=None)
    for size in sizes:
        images = random_images(2, size, seed=size)
        # float32 rounding grows with depth: 0.5-3.4e-4 of the spread here
        # (oneDNN's summation order varies), where an epsilon or padding bug
        # gives 1e-1 to 10.
        ratio = assert_logits_close(model.predict(images, verbose=0),
                                    torch_logits(reference, images), tol=1e-3)
        print(f"{timm_name} {size}px: max diff / logit spread = {ratio:.2e}")
    headless = builder(weights=path, include_top=False, pooling="avg")
    assert headless.output_shape == (None, reference.num_features)


@pytest.mark.heavy
def test_test_time_pool_matches_timm(timm, tmp_path):
    from timm.layers import apply_test_time_pool

    reference = timm.create_model("dpn68", pretrained=False)
    calibrate_torch(reference, random_images(8, 64, seed=2), batches=2)
    path = save_state_dict(reference, tmp_path / "dpn68.safetensors")
    pooled, applied = apply_test_time_pool(
        reference, {"input_size": (3, 256, 256)}, use_test_size=False)
    assert applied
    pooled.eval()
    model = kerasnets.DPN68(weights=path, input_shape=(256, 256, 3),
                            test_time_pool=True, classifier_activation=None)
    images = random_images(2, 256, seed=3)
    assert_logits_close(model.predict(images, verbose=0), torch_logits(pooled, images), tol=1e-3)
    # at 224 the 7x7 map pools to one position: the plain head
    plain = kerasnets.DPN68(weights=path, classifier_activation=None)
    ttp = kerasnets.DPN68(weights=path, test_time_pool=True, classifier_activation=None)
    images = random_images(2, 224, seed=4)
    np.testing.assert_allclose(ttp.predict(images, verbose=0),
                               plain.predict(images, verbose=0), rtol=1e-4, atol=1e-4)


def test_wrong_checkpoint_and_bad_configurations(timm, tmp_path):
    reference = timm.create_model("dpn92", pretrained=False)
    path = save_state_dict(reference, tmp_path / "dpn92.safetensors")
    with pytest.raises(ValueError, match=r"conv1_conv|features\.conv1_1"):
        kerasnets.DPN98(weights=path)
    with pytest.raises(ValueError, match="do not divide"):
        kerasnets.models.dpn.DPN(k_r=100, groups=32, k_sec=(1, 1, 1, 1),
                                 inc_sec=(16, 16, 16, 16))
    with pytest.raises(ValueError, match="at least 32x32"):
        kerasnets.DPN68(weights=None, include_top=False, input_shape=(31, 31, 3))
    with pytest.raises(ValueError, match="at least 224x224"):
        kerasnets.DPN68(weights=None, test_time_pool=True, input_shape=(160, 160, 3))
    with pytest.raises(ValueError, match="classes"):
        kerasnets.DPN68(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match="mx_in1k"):
        kerasnets.DPN68(weights="in22k")


def test_tags_and_preprocessing():
    assert kerasnets.weights.available("DPN68b") == ["imagenet", "mx_in1k", "ra_in1k"]
    x = np.full((1, 2, 2, 3), 255.0, "float32")
    expected = (255.0 - np.array(dpn.DPN_MEAN)) / np.array(dpn.DPN_STD)
    np.testing.assert_allclose(dpn.preprocess_input(x)[0, 0, 0], expected, rtol=1e-5)


def test_dpn_trains_and_roundtrips(tmp_path):
    model = dpn.DPN(k_r=32, groups=8, k_sec=(1, 2, 1, 1), inc_sec=(8, 8, 8, 8),
                    init_features=16, small=True, input_shape=(64, 64, 3), classes=4)
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = random_images(4, 64)
    model.fit(x, np.arange(4), epochs=1, verbose=0)
    path = str(tmp_path / "dpn.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("memory_efficient", [False, True])
def test_model_names(memory_efficient):
    model = kerasnets.DPN68(weights=None, input_shape=(64, 64, 3), memory_efficient=memory_efficient)
    assert model.name == "dpn68"
    generic = kerasnets.DPN(96, 32, (1, 1, 1, 1), (16, 32, 24, 128), weights=None,
                            input_shape=(64, 64, 3), memory_efficient=memory_efficient)
    assert generic.name == "dpn"
