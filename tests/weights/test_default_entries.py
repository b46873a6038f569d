"""Every family's default weights entry (weights="imagenet"), offline.

The source file each entry points at is made here from the reference
implementation with random weights (keras.applications, timm, or the MXNet
writer of test_mxnet), served at a file:// URL with its real sha256 through
the entry itself (dataclasses.replace: format, key and preprocessing stay as
registered). The builder must fetch it, verify it, convert it, give the
reference's logits, and read only its converted cache the second time.
"""

import dataclasses
import hashlib
import inspect
import os
from pathlib import Path

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets import registry
from kerasnets import weights as weights_lib
from kerasnets.models import mobilenet_v3
from kerasnets.weights import config, loading, mxnet
from tests.models.mobilenet_common import keras_reference, save_legacy_h5
from tests.parity import (
    assert_logits_close,
    calibrate_torch,
    random_images,
    require,
    randomize_keras,
    save_state_dict,
    torch_logits,
)
from tests.weights.test_mxnet import _authors_layer_map, _to_mxnet, write_params

SIZE = 64  # where the builder takes any size with pretrained weights


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run(model, images):
    return keras.ops.convert_to_numpy(model(images, training=False))


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home" / "models" / "kerasnets"


def serve(monkeypatch, model, path, notop=None, **options):
    """Points ``model``'s "imagenet" configuration (for ``options``) at local
    files (real sha256); every other field stays as registered."""
    cfg = weights_lib.pretrained_cfg(model, "imagenet", options=options or None)
    served = dataclasses.replace(
        cfg,
        url="file://" + os.fspath(path),
        file_hash=sha256(path),
        notop_url=None if notop is None else "file://" + os.fspath(notop),
        notop_hash=None if notop is None else sha256(notop),
    )
    monkeypatch.setitem(config._CFGS, model,
                        [served if c is cfg else c for c in config._CFGS[model]])
    return cfg


def forbid_sources(monkeypatch):
    """No download, no reading of any source format."""

    def refuse(*args, **kwargs):
        raise AssertionError("the second build touched the source, not the converted cache")

    monkeypatch.setattr(keras.utils, "get_file", refuse)
    monkeypatch.setattr(loading, "read_state_dict", refuse)
    monkeypatch.setattr(loading, "_read_legacy_h5", refuse)
    monkeypatch.setattr(mxnet, "read_params", refuse)


def check_entry(home, build, images, expected, tol, **kwargs):
    """Builds with weights="imagenet" twice: the first fetches and converts
    (outputs within ``tol`` of ``expected``), the second reads the cache."""
    model = build(weights="imagenet", **kwargs)
    outputs = run(model, images)
    if kwargs.get("include_top", True):
        assert_logits_close(outputs, expected, tol=tol)
    else:
        np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=tol)
    cached = sorted(os.listdir(home))
    assert any(f.endswith(".weights.h5") for f in cached), cached
    with pytest.MonkeyPatch.context() as offline:
        forbid_sources(offline)
        again = build(weights="imagenet", **kwargs)
    np.testing.assert_array_equal(run(again, images), outputs)
    assert sorted(os.listdir(home)) == cached  # nothing new written
    return model


def assert_same_weights(model, reference):
    ours, theirs = model.get_weights(), reference.get_weights()
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------- keras.applications (.h5)


def test_densenet121_keras_h5(tmp_path, home, monkeypatch):
    reference = keras_reference(keras.applications.DenseNet121, random_images(8, SIZE, seed=1),
                                input_shape=(SIZE, SIZE, 3))
    path = save_legacy_h5(reference, tmp_path / "densenet121_weights_tf_dim_ordering_tf_kernels.h5")
    entry = serve(monkeypatch, "DenseNet121", path)
    assert entry.format == "keras_h5"
    images = random_images(2, SIZE, seed=2)
    model = check_entry(home, kerasnets.DenseNet121, images, run(reference, images),
                        tol=1e-4, input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    assert_same_weights(model, reference)


def test_mobilenet_keras_h5_with_and_without_top(tmp_path, home, monkeypatch):
    """alpha 1.0 at 224 (the rows pick the file); include_top=False fetches
    the configuration's no-top file."""
    reference = keras_reference(keras.applications.MobileNet, random_images(4, 224, seed=1))
    headless = keras.applications.MobileNet(include_top=False, weights=None, pooling="avg",
                                            input_shape=(224, 224, 3))
    headless.set_weights(reference.get_weights()[:-2])  # all but conv_preds
    top = save_legacy_h5(reference, tmp_path / "mobilenet_1_0_224_tf.h5")
    notop = save_legacy_h5(headless, tmp_path / "mobilenet_1_0_224_tf_no_top.h5")
    serve(monkeypatch, "MobileNet", top, notop, alpha=1.0)
    images = random_images(2, 224, seed=2)
    model = check_entry(home, kerasnets.MobileNet, images, run(reference, images),
                        tol=1e-4, classifier_activation=None)
    assert_same_weights(model, reference)
    check_entry(home, kerasnets.MobileNet, images, run(headless, images),
                tol=1e-4, include_top=False, pooling="avg", input_shape=(224, 224, 3))
    names = os.listdir(home)
    assert "MobileNet.imagenet.mobilenet_1_0_224_tf_no_top.h5" in names
    assert len([n for n in names if n.endswith(".weights.h5")]) == 2  # one per variant


def test_mobilenet_v2_keras_h5(tmp_path, home, monkeypatch):
    reference = keras_reference(keras.applications.MobileNetV2, random_images(4, 224, seed=1))
    path = save_legacy_h5(reference, tmp_path / "mobilenet_v2_1.0_224.h5")
    serve(monkeypatch, "MobileNetV2", path, alpha=1.0)
    images = random_images(2, 224, seed=2)
    model = check_entry(home, kerasnets.MobileNetV2, images, run(reference, images),
                        tol=1e-4, classifier_activation=None)
    assert_same_weights(model, reference)


@pytest.mark.parametrize("builder", ["MobileNetV3Small", "MobileNetV3Large"])
def test_mobilenet_v3_keras_h5(tmp_path, home, monkeypatch, builder):
    # Both take 0-255 pixels (Rescaling inside, include_preprocessing=True).
    pixels = lambda n, seed: (random_images(n, 224, seed=seed) + 1.0) * 127.5  # noqa: E731
    reference = keras_reference(getattr(keras.applications, builder), pixels(4, 1),
                                input_shape=(224, 224, 3))
    path = save_legacy_h5(reference, tmp_path / f"{builder}.h5")
    serve(monkeypatch, builder, path, alpha=1.0, minimalistic=False)
    images = pixels(2, 2)
    # The weights are the file's exactly; the logits agree to float32 rounding,
    # which the random hard-swish/SE network amplifies to ~2e-3 of the spread
    # (tests/models/test_mobilenet_v3.py checks the architecture in float64).
    model = check_entry(home, getattr(kerasnets, builder), images,
                        run(reference, images), tol=1e-2, input_shape=(224, 224, 3),
                        classifier_activation=None)
    assert_same_weights(model, reference)


# ------------------------------------------------------------------ timm


def timm_checkpoint(tmp_path, name, filename, size=SIZE):
    """timm model with random weights and calibrated BN, saved as ``filename``.

    Calibrated twice (as tests/models/test_senet.py does): the second pass
    recomputes the statistics under the random affine weights the first set,
    so activations stay normalised through the deep SE-ResNeXt."""
    torch = require("torch")
    timm = require("timm")
    torch.manual_seed(0)
    reference = timm.create_model(name, pretrained=False)
    images = random_images(8, size, seed=1)
    calibrate_torch(reference, images, batches=2)
    calibrate_torch(reference, images, batches=2)
    return reference, save_state_dict(reference, tmp_path / filename)


@pytest.mark.parametrize("builder, timm_name, filename", [
    pytest.param("DenseNet161", "densenet161", "model.safetensors", marks=pytest.mark.heavy),
    ("DPN68", "dpn68", "model.safetensors"),
    # timm's legacy SENet releases: torch pickles of a state dict
    pytest.param("SEResNet50", "legacy_seresnet50", "se_resnet50-ce0d4300.pth",
                 marks=pytest.mark.heavy),  # the same loader as SE-ResNeXt-50
    ("SEResNeXt50_32x4d", "legacy_seresnext50_32x4d", "legacy_se_resnext50_32x4d-f3651bad.pth"),
])
def test_timm_checkpoints(tmp_path, home, monkeypatch, builder, timm_name, filename):
    reference, path = timm_checkpoint(tmp_path, timm_name, filename)
    entry = serve(monkeypatch, builder, path)
    assert entry.format == ("pth" if filename.endswith(".pth") else "safetensors")
    images = random_images(2, SIZE, seed=2)
    check_entry(home, getattr(kerasnets, builder), images,
                torch_logits(reference, images), tol=1e-3, input_shape=(SIZE, SIZE, 3),
                classifier_activation=None)


# ----------------------------------------------------------------- MXNet


# Heavy (about 10 s each): the fast tier loads IGCV3's other checkpoint
# forms (tests/weights/test_convert.py) and builds every IGC.
@pytest.mark.parametrize("builder", [pytest.param("IGC_L4M32", marks=pytest.mark.heavy),
                                     pytest.param("IGCV3", marks=pytest.mark.heavy)])
def test_mxnet_checkpoints(tmp_path, home, monkeypatch, builder):
    """The authors' .params layout, written from a randomised kerasnets model
    by test_mxnet's independent writer; loading must restore every tensor."""
    build = getattr(kerasnets, builder)
    reference = build(weights=None, input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    randomize_keras(reference, seed=1)
    if builder == "IGCV3":
        from kerasnets.models.igc_v3 import mxnet_layer_map

        layer_map, _ = mxnet_layer_map(reference)
    else:
        layer_map = _authors_layer_map(reference)
    path = write_params(tmp_path / "model-0000.params", _to_mxnet(reference, layer_map))
    entry = serve(monkeypatch, builder, path)
    assert entry.format == "mxnet_params"
    images = random_images(2, SIZE, seed=2)
    model = check_entry(home, build, images, run(reference, images), tol=1e-5,
                        input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    assert_same_weights(model, reference)


# ------------------------------------------------------- every builder


# Generic builders need their architecture; these configurations are not a
# named variant's.
GENERIC_ARGS = {
    "DenseNet": dict(blocks=(2, 2, 2, 2)),
    "DenseNetCIFAR": dict(depth=40, growth_rate=12),
    "DPN": dict(k_r=32, groups=8, k_sec=(1, 1, 1, 1), inc_sec=(8, 8, 8, 8)),
    "IGCV1": dict(stem_filters=16, widths=(16, 32, 64, 128), primary_groups=(2, 2, 2, 2)),
    "IGCV1CIFAR": dict(L=2, M=2, depth=8),
    "SENet": dict(block="bottleneck", depths=(1, 1, 1, 1)),
    "MobileNetV3": dict(blocks=mobilenet_v3.SMALL_BLOCKS[:3], last_point_ch=128,
                        model_type="small", input_shape=(SIZE, SIZE, 3)),
}
# The formats the tests above serve, and the families they cover.
EXERCISED_FORMATS = {"keras_h5", "safetensors", "pth", "mxnet_params"}
EXERCISED_FAMILIES = {"densenet", "mobilenet", "mobilenet_v2", "mobilenet_v3", "senet", "dpn",
                      "igc", "igc_v3"}


def _refuses_imagenet(name, build):
    """None if ``build(weights="imagenet")`` raises the no-weights message."""
    required = {p for p, v in inspect.signature(build).parameters.items()
                if v.default is inspect.Parameter.empty and v.kind is not v.VAR_KEYWORD}
    if not required <= set(GENERIC_ARGS.get(name, {})):
        return f"{name}: add its arguments {sorted(required)} to GENERIC_ARGS"
    try:
        build(weights="imagenet", **GENERIC_ARGS.get(name, {}))
    except ValueError as error:
        message = str(error)
        wanted = (f"Unknown weights 'imagenet' for {name}",
                  f"{name} has no published pretrained weights",
                  "weights=None (random initialization) or the path to a weights file")
        if all(part in message for part in wanted):
            return None
        return f"{name}: unclear message: {message}"
    return f"{name}: built with weights='imagenet' although none are published"


def test_every_builder_has_imagenet_weights_or_says_none_are_published(home, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("tried to download weights")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    problems, refused = [], []
    for name in kerasnets.list_models(include_generic=True):
        build = registry.get(name).builder
        if "imagenet" in weights_lib.available(name):
            formats = {cfg.format for cfg in weights_lib.pretrained_cfgs(name, "imagenet")}
            if registry.get(name).family not in EXERCISED_FAMILIES \
                    or not formats <= EXERCISED_FORMATS:
                problems.append(f"{name}: default weights ({formats}) not exercised here")
            continue
        if name == "MobileNetV3":
            continue  # see the next test
        problem = _refuses_imagenet(name, build)
        if problem:
            problems.append(problem)
        else:
            refused.append(name)
    assert not problems, "\n".join(problems)
    assert {"DenseNet264", "IGCV2", "IGCV1CIFAR"} <= set(refused)


def test_inception_weights_only_for_the_plain_inception_configuration(home):
    """SEInceptionV3's "imagenet" file is keras' InceptionV3: it exists for
    se_ratio=None only, and the default (SE) configuration says so."""
    with pytest.raises(ValueError, match="se_ratio=None"):
        kerasnets.SEInceptionV3(weights="imagenet")
    cfg = weights_lib.pretrained_cfg("SEInceptionV3", options={"se_ratio": None})
    assert cfg.input_size == 299 and cfg.reference == "keras:InceptionV3"


def test_generic_mobilenet_v3_refuses_imagenet(home, monkeypatch):
    monkeypatch.setattr(keras.utils, "get_file",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    assert _refuses_imagenet("MobileNetV3", kerasnets.MobileNetV3) is None
