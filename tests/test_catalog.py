"""The model catalog (issue 14): one contract for every registered builder,
the generated index kept current, the catalog API, and imports that only
point downward."""

import ast
import inspect
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets import registry, utils
from kerasnets import weights as weights_lib
from kerasnets.weights.config import FORMATS, SCHEMES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "kerasnets")

KERAS_ARGS = ["include_top", "weights", "input_tensor", "input_shape", "pooling", "classes",
              "classifier_activation", "name"]
# Builders keras.applications has too: the same arguments in the same order.
KERAS_APPLICATIONS = {
    "DenseNet121": "DenseNet121", "DenseNet169": "DenseNet169", "DenseNet201": "DenseNet201",
    "MobileNet": "MobileNet", "MobileNetV2": "MobileNetV2",
    "MobileNetV3Large": "MobileNetV3Large", "MobileNetV3Small": "MobileNetV3Small",
}
PAPER = ("arXiv", "CVPR", "ICCV", "NeurIPS", "BMVC", "ECCV", "et al.")

NAMES = kerasnets.list_models()


def _lightest_per_module():
    """The model with the fewest MACs of each family module: the fast tier
    builds these, the heavy tier every model."""
    lightest = {}
    for name in NAMES:
        record = registry.indexed(name)
        module = record["module"]
        if module not in lightest or record["macs"] < registry.indexed(lightest[module])["macs"]:
            lightest[module] = name
    return set(lightest.values())


LIGHTEST = _lightest_per_module()
TIERED_NAMES = [name if name in LIGHTEST else pytest.param(name, marks=pytest.mark.heavy)
                for name in NAMES]


def test_catalog_lists_every_family():
    assert len(NAMES) >= 30
    assert set(registry.families()) >= {"densenet", "dpn", "igc", "igc_v3", "mobilenet",
                                        "mobilenet_v2", "mobilenet_v3", "senet"}
    assert NAMES == registry.sort_names(NAMES)
    assert NAMES.index("DPN68") < NAMES.index("DPN107")  # natural order


def test_list_models_pattern_pretrained_family():
    assert kerasnets.list_models("dpn*") == ["DPN68", "DPN68b", "DPN92", "DPN98", "DPN107",
                                             "DPN131"]
    assert kerasnets.list_models("*RESNEXT*") == ["SEResNeXt26_32x4d", "SEResNeXt50_32x4d",
                                                  "SEResNeXt101_32x4d"]
    pretrained = kerasnets.list_models(pretrained=True)
    assert "DPN92" in pretrained and "DenseNet264" not in pretrained
    assert "IGCV2" not in pretrained and "SEInceptionV3" not in pretrained
    assert kerasnets.list_models(family="IGC") == ["IGC_L4M32", "IGC_L16M16", "IGC_L100M2",
                                                   "IGCV2"]
    assert "DPN" not in NAMES and "DPN" in kerasnets.list_models(include_generic=True)
    with pytest.raises(ValueError, match="did you mean dpn"):
        kerasnets.list_models(family="dnp")


def test_create_model_is_case_insensitive_and_suggests():
    model = kerasnets.create_model("mobilenetv3small", weights=None, input_shape=(32, 32, 3),
                                   classes=7)
    assert model.output_shape == (None, 7)
    with pytest.raises(ValueError, match="did you mean .*DPN92"):
        kerasnets.create_model("DPN93")
    with pytest.raises(ValueError, match="has no argument 'alpah'; did you mean 'alpha'"):
        kerasnets.create_model("MobileNet", alpah=0.5)
    with pytest.raises(ValueError, match="alpha takes a number; received 'half'"):
        kerasnets.create_model("MobileNet", alpha="half")
    with pytest.raises(AttributeError):
        kerasnets.dpn92  # attributes keep their exact spelling  # noqa: B018


def test_import_is_lazy():
    code = ("import sys, kerasnets; kerasnets.list_models(); "
            "print(sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("order", ["kerasnets first",
                                   pytest.param("keras first", marks=pytest.mark.heavy)])
def test_keras_reads_kerasnets_models_after_import_kerasnets(tmp_path, order):
    """keras.saving.load_model finds kerasnets' layers after a plain
    ``import kerasnets`` (the layers register when Keras is imported), in a
    fresh process, whichever of the two is imported first."""
    path = tmp_path / "tiny.keras"
    model = kerasnets.IGCV1CIFAR(weights=None, L=2, M=2, depth=8, input_shape=(16, 16, 3))
    model.save(path)
    imports = "import kerasnets, keras" if order == "kerasnets first" else "import keras, kerasnets"
    code = (f"{imports}; m = keras.saving.load_model({str(path)!r}, safe_mode=True); "
            "print(sorted({type(l).__module__.split('.')[0] for l in m.layers}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.stdout.strip() == "['keras', 'kerasnets']", out.stdout + out.stderr[-3000:]


def test_index_is_current():
    result = subprocess.run([sys.executable, os.path.join("tools", "make_catalog.py"),
                             "--check"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


# ---------------------------------------------------------------- contract


def _signature(builder):
    return list(inspect.signature(builder).parameters.values())


@pytest.mark.parametrize("name", NAMES)
def test_builder_contract(name):
    entry = registry.get(name)
    builder = getattr(kerasnets, name)
    assert builder is entry.builder
    params = _signature(builder)
    # keras.applications' arguments, in its order; kerasnets' own after them,
    # keyword-only.
    if name in KERAS_APPLICATIONS:
        reference = _signature(getattr(keras.applications, KERAS_APPLICATIONS[name]))
        assert [p.name for p in params[:len(reference)]] == [p.name for p in reference]
        for ours, theirs in zip(params, reference):
            if ours.name not in ("name",):
                assert ours.default == theirs.default, (ours, theirs)
        rest = params[len(reference):]
    else:
        assert [p.name for p in params[:len(KERAS_ARGS)]] == KERAS_ARGS
        rest = params[len(KERAS_ARGS):]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in rest), rest
    assert all(p.default is not inspect.Parameter.empty for p in params)

    doc = entry.doc
    assert any(word in doc for word in PAPER), "docstring lacks the paper"
    assert "Args" in doc and ">>> " in doc

    module = sys.modules[entry.module]
    assert callable(module.preprocess_input) and callable(module.decode_predictions)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype("uint8")
    assert np.asarray(module.preprocess_input(pixels)).shape == pixels.shape

    # Every advertised tag has its configurations, and the catalog can read them.
    for tag in weights_lib.available(name):
        cfgs = weights_lib.pretrained_cfgs(name, tag)
        assert cfgs, tag
        for cfg in cfgs:
            assert cfg.model == name and cfg.format in FORMATS
            assert cfg.url.startswith("https://")
            assert SCHEMES[cfg.format] in ("keras", "keras_h5") or \
                SCHEMES[cfg.format] in entry.layer_maps, cfg.name
            assert cfg.reference is None or cfg.reference.split(":")[0] in (
                "timm", "pytorchcv", "keras")


@pytest.mark.parametrize("name", TIERED_NAMES)
def test_builds_with_keras_arguments(name):
    """Every model builds headless at a small size with keras' arguments, and
    with its top at the default size (not run: the shape is all we need)."""
    record = registry.indexed(name)
    small = max(record["min_size"], 32)
    headless = kerasnets.create_model(name, weights=None, include_top=False, pooling="avg",
                                      input_shape=(small + 1, small, 3))
    assert len(headless.output_shape) == 2 and headless.pretrained_cfg is None


@pytest.mark.heavy
@pytest.mark.parametrize("name", TIERED_NAMES)
def test_every_builder_is_a_backbone(name):
    """``features_only=True``: one map per ``feature_info`` entry, with its
    channels and about its stride (valid padding loses a few pixels), the
    last one shaped as the ``include_top=False`` output."""
    record = registry.indexed(name)
    size = max(record["min_size"], 64)
    info = kerasnets.feature_info(name)
    backbone = kerasnets.create_model(name, weights=None, include_top=False,
                                      features_only=True, input_shape=(size, size, 3))
    assert backbone.feature_info == info
    assert [i["index"] for i in info] == list(range(len(info)))
    reductions = [i["reduction"] for i in info]
    assert reductions == sorted(reductions) and reductions[-1] == 32, reductions
    for shape, item in zip(backbone.output_shape, info):
        assert shape[3] == item["num_chs"], (shape, item)
        # valid padding (SE-Inception-v3) loses up to 48 pixels of the input
        assert (size - 48) / item["reduction"] <= shape[1] <= -(-size // item["reduction"])
    headless = kerasnets.create_model(name, weights=None, include_top=False,
                                      input_shape=(size, size, 3))
    assert backbone.output_shape[-1] == headless.output_shape
    picked = kerasnets.create_model(name, weights=None, include_top=False, features_only=True,
                                    out_indices=(1, len(info) - 1),
                                    input_shape=(size, size, 3))
    assert [o[1:] for o in picked.output_shape] == [
        backbone.output_shape[1][1:], backbone.output_shape[-1][1:]]


@pytest.mark.heavy
@pytest.mark.parametrize("name", NAMES)
def test_figures_match_the_built_model(name):
    record = registry.indexed(name)
    model = kerasnets.create_model(name, weights=None)
    size = record["stats_size"]
    # keras' default size with the top (keras' MobileNetV3 takes any size)
    free = name.startswith("MobileNetV3")
    assert model.input_shape == ((None, None, None, 3) if free else (None, size, size, 3))
    assert model.pretrained_cfg is None
    assert utils.count_trainable_params(model) == record["params"]
    assert model.count_params() == record["total_params"]
    assert utils.count_macs(model, input_shape=(size, size, 3)) == record["macs"]


# ---------------------------------------------------------------- layering

# Lower layers never import higher ones (shared/DESIGN.md, Layout); a module
# may import its own layer.
LAYERS = [
    {"registry", "text", "files", "imagenet", "_version", "extras", "install"},
    {"layers"},
    {"weights"},
    {"preprocessing"},
    {"models"},
    {"data", "training", "tuner", "export", "benchmark", "convert", "utils"},
    {"cli"},
]


def _layer(module):
    top = module.split(".")[1] if module.count(".") else None
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    return None


def _imports(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "kerasnets":
                yield from (f"kerasnets.{alias.name}" for alias in node.names)
            else:
                yield node.module


def _package_modules():
    for folder, _, files in os.walk(PACKAGE):
        for file in files:
            if file.endswith(".py"):
                path = os.path.join(folder, file)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                yield rel.removesuffix(".__init__"), path


def test_imports_point_downward():
    problems = []
    for module, path in _package_modules():
        rank = _layer(module)
        if rank is None:  # kerasnets/__init__.py, __main__: the package facade
            continue
        for imported in _imports(path):
            if not imported.startswith("kerasnets."):
                continue
            other = _layer(imported)
            if other is not None and other > rank:
                problems.append(f"{module} imports {imported}")
    assert not problems, problems


def test_tools_never_import_the_cli():
    tools = os.path.join(ROOT, "tools")
    offenders = [name for name in os.listdir(tools) if name.endswith(".py")
                 and any(i.startswith("kerasnets.cli")
                         for i in _imports(os.path.join(tools, name)))]
    assert not offenders


def test_layering_test_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from kerasnets import training\nimport kerasnets.cli.common\n")
    imported = list(_imports(str(bad)))
    assert [_layer(i) for i in imported] == [5, 6]
    assert _layer("kerasnets.weights.cache") < _layer("kerasnets.models.dpn")
