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


# ------------------------------------------------------- keras-hub's tasks
# One small member of every family at 64 px, 3 steps a task (eager: on CPU
# cheaper than tracing for so few steps); DenseNet memory-efficient (its maps
# are lists, concatenated by the pyramid). Each test: "pretrained" weights (a
# randomised backbone's, BatchNorm statistics off their defaults) saved to a
# file and loaded with ``weights=path`` into the encoder of a
# DeepLabV3ImageSegmenter, which trains with the encoder frozen; a
# RetinaNetObjectDetector fine-tunes the randomised backbone itself. Both
# losses fall; the tasks are saved, and the last test reloads them all in
# one fresh process.
HUB_MEMBERS = [
    ("densenet", "DenseNet", dict(blocks=[2, 4, 4, 2], growth_rate=16, memory_efficient=True)),
    ("dpn", "DPN68", {}),
    ("igc", "IGCV2", {"alpha": 0.5}),
    ("igc_v3", "IGCV3", {"alpha": 0.5}),
    ("mobilenet", "MobileNet", {"alpha": 0.25}),
    ("mobilenet_v2", "MobileNetV2", {"alpha": 0.35}),
    ("mobilenet_v3", "MobileNetV3Small", {}),
    ("senet", "SEResNet18", {}),
]
HUB_SIZE, HUB_STEPS, HUB_CLASSES = 64, 3, 3
_SAVED = {}  # family -> what the fresh process must reproduce


@pytest.fixture(scope="module")
def keras_hub():
    from tests.parity import IN_CI

    try:
        import keras_hub
    except ImportError as error:
        message = f"keras_hub is not importable: {error}"
        if IN_CI:
            pytest.fail(message + " (CI must install .[hub])", pytrace=False)
        pytest.skip(message)
    return keras_hub


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("hub")


def synthetic_scenes(seed):
    """Images with one bright square each (class 1 or 2 by its colour
    channel), its mask and its box (yxyx pixels)."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 0.3, (HUB_STEPS, HUB_SIZE, HUB_SIZE, 3)).astype("float32")
    masks = np.zeros(images.shape[:3], "int32")
    boxes, labels = [], []
    for i in range(len(images)):
        side = int(rng.integers(16, 32))
        y, x = (int(v) for v in rng.integers(0, HUB_SIZE - side, 2))
        cls = 1 + i % 2
        images[i, y:y + side, x:x + side, cls - 1] = 1.0
        masks[i, y:y + side, x:x + side] = cls
        boxes.append([[y, x, y + side, x + side]])
        labels.append([cls - 1])
    return images, masks, np.array(boxes, "float32"), np.array(labels, "float32")


def _values(model):
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


def _assert_same_values(model, expected, what):
    got = _values(model)
    assert len(got) == len(expected), what
    for variable, a, b in zip(model.weights, got, expected):
        np.testing.assert_array_equal(a, b, err_msg=f"{what}: {variable.path}")


def _outputs(task, images):
    out = task(images, training=False)
    if isinstance(out, dict):
        return {k: keras.ops.convert_to_numpy(v) for k, v in out.items()}
    return {"logits": keras.ops.convert_to_numpy(out)}


@pytest.mark.heavy
@pytest.mark.parametrize("family, name, kwargs", HUB_MEMBERS, ids=[m[1] for m in HUB_MEMBERS])
def test_keras_hub_tasks_train_and_save_on_a_kerasnets_backbone(keras_hub, hub_folder, family,
                                                                 name, kwargs):
    from tests.parity import randomize_keras

    started = time.time()
    builder = getattr(kerasnets, name)
    shape = (HUB_SIZE, HUB_SIZE, 3)
    folder = hub_folder / family
    folder.mkdir()
    source = builder(weights=None, include_top=False, input_shape=shape, **kwargs)
    randomize_keras(source)
    weights_path = str(folder / "pretrained.weights.h5")
    source.save_weights(weights_path)
    pretrained = _values(source)
    images, masks, boxes, labels = synthetic_scenes(seed=0)
    np.save(folder / "images.npy", images)
    record = {}

    # DeepLabV3+ on the pretrained encoder, frozen: the weights stay the file's
    encoder = builder(weights=weights_path, include_top=False, input_shape=shape, **kwargs)
    encoder.save(folder / "encoder.keras")
    encoder.trainable = False
    segmenter = keras_hub.models.DeepLabV3ImageSegmenter(
        backbone=keras_hub.models.DeepLabV3Backbone(
            image_encoder=encoder, spatial_pyramid_pooling_key="P5", upsampling_size=8,
            low_level_feature_key="P2", dilation_rates=[1, 2], image_shape=shape),
        num_classes=HUB_CLASSES)
    assert segmenter.backbone.image_encoder is encoder
    _assert_same_values(encoder, pretrained, f"{name} in DeepLabV3, built")
    segmenter.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=None, run_eagerly=True)
    history = segmenter.fit(images, masks[..., None], batch_size=len(images), epochs=HUB_STEPS,
                            verbose=0)
    record["DeepLabV3ImageSegmenter"] = losses = history.history["loss"]
    assert losses[-1] < losses[0], losses
    _assert_same_values(encoder, pretrained, f"{name} in DeepLabV3, trained (frozen)")
    segmenter.save(folder / "segmenter.keras")

    # RetinaNet fine-tuning the (randomised) backbone
    detector = keras_hub.models.RetinaNetObjectDetector(
        backbone=keras_hub.models.RetinaNetBackbone(
            image_encoder=source, min_level=3, max_level=5, use_p5=False, image_shape=shape),
        num_classes=2, bounding_box_format="yxyx")
    detector.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    history = detector.fit(images, {"boxes": boxes, "labels": labels}, batch_size=len(images),
                           epochs=HUB_STEPS, verbose=0)
    record["RetinaNetObjectDetector"] = losses = history.history["loss"]
    assert losses[-1] < losses[0], losses
    assert not np.array_equal(_values(source)[0], pretrained[0])  # fine-tuned
    detector.save(folder / "detector.keras")

    np.savez(folder / "expected.npz", pretrained=np.array(pretrained, dtype=object),
             encoder=_pyramid_arrays(encoder, images)["P5"],
             **{f"segmenter/{k}": v for k, v in _outputs(segmenter, images).items()},
             **{f"detector/{k}": v for k, v in _outputs(detector, images).items()})
    print(name, "losses:", json.dumps(record), f"{time.time() - started:.0f} s")
    _SAVED[family] = {"name": name, "losses": record}


RELOAD_WORKER = """
import json, sys
import numpy as np
import kerasnets, keras

folder, families = sys.argv[1], json.loads(sys.argv[2])
arrays = {family: {} for family in families}
for family in families:  # the encoders alone: no keras_hub needed
    encoder = keras.saving.load_model(f"{folder}/{family}/encoder.keras", safe_mode=True)
    images = np.load(f"{folder}/{family}/images.npy")
    pyramid = keras.Model(encoder.input, encoder.pyramid_outputs)(images, training=False)
    arrays[family]["encoder"] = keras.ops.convert_to_numpy(pyramid["P5"])
assert "keras_hub" not in sys.modules
import keras_hub

for family in families:
    images = np.load(f"{folder}/{family}/images.npy")
    for task in ("segmenter", "detector"):
        model = keras.saving.load_model(f"{folder}/{family}/{task}.keras", safe_mode=True)
        out = model(images, training=False)
        out = out if isinstance(out, dict) else {"logits": out}
        arrays[family].update({f"{task}/{k}": keras.ops.convert_to_numpy(v)
                               for k, v in out.items()})
        encoder = model.backbone.image_encoder
        arrays[family][f"{task}/encoder_weights"] = np.array(
            [keras.ops.convert_to_numpy(v) for v in encoder.weights], dtype=object)
        arrays[family][f"{task}/encoder_class"] = np.array(type(encoder).__name__)
    np.savez(f"{folder}/{family}/reloaded.npz", **arrays[family])
print("reloaded", len(families))
"""


@pytest.mark.heavy
def test_saved_tasks_reload_in_a_fresh_process(keras_hub, hub_folder):
    """The same outputs in a new process (``import kerasnets`` registers the
    Backbone; the encoders alone load without keras_hub); the frozen encoder
    of the segmenter still holds the pretrained file's weights."""
    if not _SAVED:
        pytest.skip("runs after test_keras_hub_tasks_train_and_save_on_a_kerasnets_backbone")
    families = sorted(_SAVED)
    out = subprocess.run([sys.executable, "-c", RELOAD_WORKER, str(hub_folder),
                          json.dumps(families)], capture_output=True, text=True, cwd=ROOT,
                         timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.returncode == 0, out.stdout + out.stderr[-4000:]
    for family in families:
        expected = np.load(hub_folder / family / "expected.npz", allow_pickle=True)
        reloaded = np.load(hub_folder / family / "reloaded.npz", allow_pickle=True)
        for key in expected.files:
            if key != "pretrained":
                np.testing.assert_allclose(reloaded[key], expected[key], rtol=1e-5, atol=1e-5,
                                           err_msg=f"{family}: {key}")
        for task in ("segmenter", "detector"):
            assert str(reloaded[f"{task}/encoder_class"]) == "Backbone"
        for a, b in zip(reloaded["segmenter/encoder_weights"], expected["pretrained"],
                        strict=True):
            np.testing.assert_array_equal(a, b, err_msg=family)
    print({family: _SAVED[family]["losses"] for family in families})
