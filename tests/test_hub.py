"""keras-hub's tasks on kerasnets backbones (issue 24).

Every headless builder (``include_top=False``) returns a ``Backbone`` whose
``pyramid_outputs`` (``{"P1": map, ...}``, stride 2**k) are the
``feature_info`` maps, kept through ``.keras`` save/load and
``keras.models.clone_model`` (fast tier). The heavy tier builds keras-hub's
``DeepLabV3ImageSegmenter`` and ``RetinaNetObjectDetector`` on one small
member of every family, trains them a few steps on synthetic data, saves them
and reloads them in a fresh process.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import keras

import kerasnets
from kerasnets.models.backbone import Backbone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One small configuration of every family module (fast checks at 32 px).
SMALL = {
    "densenet": ("DenseNet", dict(blocks=[1, 1, 1, 1], growth_rate=4)),
    "densenet_cifar": ("DenseNetCIFAR", dict(depth=10, growth_rate=4, bottleneck=True,
                                             compression=0.5)),
    "dpn": ("DPN", dict(k_r=32, groups=8, k_sec=(1, 1, 1, 1), inc_sec=(4, 4, 4, 4),
                        small=True, init_features=8)),
    "igc": ("IGCV1", dict(stem_filters=16, widths=(16, 16, 32, 32), primary_groups=(4, 4, 4, 4),
                          blocks=(1, 1, 1, 1))),
    "igc_cifar": ("IGCV1CIFAR", dict(L=2, M=2, depth=8)),
    "igcv2": ("IGCV2", dict(alpha=0.25)),
    "igc_v3": ("IGCV3", dict(alpha=0.25)),
    "mobilenet": ("MobileNet", dict(alpha=0.25)),
    "mobilenet_v2": ("MobileNetV2", dict(alpha=0.35)),
    "mobilenet_v3": ("MobileNetV3Small", dict(alpha=0.75)),
    "senet": ("SENet", dict(block="basic", depths=(1, 1, 1, 1))),
    "se_mobilenet": ("SEMobileNet", dict(alpha=0.25)),
}


def _level(reduction):
    return f"P{reduction.bit_length() - 1}"


def _pyramid_arrays(model, images):
    outputs = keras.Model(model.input, model.pyramid_outputs)(images, training=False)
    return {level: keras.ops.convert_to_numpy(x) for level, x in outputs.items()}


# The fast tier: three (a list of maps, strides 1-4); the heavy tier the others.
FAST_FAMILIES = ("densenet_cifar", "dpn", "mobilenet_v3")


@pytest.mark.parametrize("family", [
    f if f in FAST_FAMILIES else pytest.param(f, marks=pytest.mark.heavy)
    for f in sorted(SMALL) + ["se_inception"]])
def test_every_headless_builder_carries_the_feature_maps_as_its_pyramid(family):
    """``pyramid_outputs`` of the plain headless model (and of a pooled one)
    are the ``features_only`` maps, keyed P<k> by their stride 2**k."""
    name, kwargs = SMALL.get(family, ("SEInceptionV3", {}))
    builder = getattr(kerasnets, name)
    size = 75 if family == "se_inception" else 32
    shape = (size, size, 3)
    headless = builder(weights=None, include_top=False, input_shape=shape, **kwargs)
    features = builder(weights=None, include_top=False, input_shape=shape, features_only=True,
                       **kwargs)
    assert isinstance(headless, Backbone) and isinstance(features, Backbone)
    info = features.feature_info
    levels = [_level(f["reduction"]) for f in info]
    assert list(headless.pyramid_outputs) == levels == list(features.pyramid_outputs)
    for f, level, output in zip(info, levels, features.outputs):
        assert f["reduction"] == 2 ** int(level[1:])
        assert features.pyramid_outputs[level] is output
        assert tuple(headless.pyramid_outputs[level].shape) == tuple(output.shape)
        assert output.shape[-1] == f["num_chs"]
        if family != "se_inception":  # (valid padding)
            assert output.shape[1:3] == (size // f["reduction"],) * 2
    pooled = builder(weights=None, include_top=False, input_shape=shape, pooling="avg",
                     **kwargs)
    assert list(pooled.pyramid_outputs) == levels and len(pooled.output_shape) == 2
    classifier = builder(weights=None, input_shape=shape, classes=3, **kwargs)
    assert not hasattr(classifier, "pyramid_outputs")  # the classifier: a keras.Model


@pytest.mark.parametrize("name, kwargs", [
    # the memory-efficient maps: lists concatenated outside the network
    pytest.param("DPN", dict(SMALL["dpn"][1], memory_efficient=True),
                 id="DPN-memory_efficient"),
    pytest.param("MobileNetV2", dict(alpha=0.35, features_only=True, out_indices=(1, -1)),
                 id="MobileNetV2-out_indices", marks=pytest.mark.heavy),
])
def test_pyramid_survives_save_load_and_clone(tmp_path, name, kwargs):
    model = getattr(kerasnets, name)(weights=None, include_top=False, input_shape=(64, 64, 3),
                                     **kwargs)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    expected = _pyramid_arrays(model, images)
    assert len(expected) == (2 if "out_indices" in kwargs else 5)
    path = str(tmp_path / "backbone.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for copy in (loaded, clone):
        assert type(copy) is Backbone
        assert copy.pyramid == model.pyramid
        assert getattr(copy, "feature_info", None) == getattr(model, "feature_info", None)
        got = _pyramid_arrays(copy, images)
        assert list(got) == list(expected)
        for level in expected:
            np.testing.assert_allclose(got[level], expected[level], rtol=1e-5, atol=1e-5)
    # keras.Model.from_config, as keras-hub's tasks revive their image_encoder
    revived = keras.layers.deserialize(keras.layers.serialize(model))
    assert list(revived.pyramid_outputs) == list(expected)


def test_kerasnets_never_imports_keras_hub():
    """keras-hub (and tensorflow-text) stay optional: no module of the
    package imports them (``import kerasnets`` imports no Keras at all:
    tests/test_catalog.py)."""
    import ast

    offenders = []
    for folder, _, files in os.walk(os.path.join(ROOT, "kerasnets")):
        for file in files:
            if file.endswith(".py"):
                path = os.path.join(folder, file)
                for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
                    names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                             else [node.module or ""] if isinstance(node, ast.ImportFrom)
                             else [])
                    offenders += [f"{path}: {n}" for n in names if n.startswith("keras_hub")]
    assert not offenders


@pytest.mark.heavy  # a fresh process: 10-20 s
def test_a_saved_backbone_loads_in_a_fresh_process_without_keras_hub(tmp_path):
    """After a plain ``import kerasnets`` (the Backbone class registers with
    Keras as the layers do); kerasnets never imports keras_hub."""
    path = tmp_path / "backbone.keras"
    kerasnets.MobileNetV3Small(weights=None, include_top=False, alpha=0.75,
                               input_shape=(32, 32, 3)).save(path)
    code = ("import sys, kerasnets, keras; "
            f"m = keras.saving.load_model({str(path)!r}, safe_mode=True); "
            "print(type(m).__name__, sorted(m.pyramid_outputs), 'keras_hub' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.stdout.split() == ["Backbone", "['P1',", "'P2',", "'P3',", "'P4',", "'P5']",
                                  "False"], out.stdout + out.stderr[-3000:]


def test_a_pyramid_naming_a_missing_layer_is_refused():
    name, kwargs = SMALL["densenet_cifar"]
    model = getattr(kerasnets, name)(weights=None, include_top=False, input_shape=(32, 32, 3),
                                     **kwargs)
    for pyramid, message in (({"P3": [["no_such_layer", 0]]}, "no_such_layer"),
                             ({"3": [["relu", 0]]}, "P<k>"),
                             ({"P3": "relu"}, "output index")):
        config = model.get_config()  # (from_config takes the graph out of its config)
        config["pyramid"] = pyramid
        with pytest.raises(ValueError, match=message):
            Backbone.from_config(config)
