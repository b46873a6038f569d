"""Every weights file is checked against the strongest hash its publisher
gives, and every pretrained URL and hash equals the publisher's own table in
the installed packages (timm's pretrained configurations, keras.applications'
constants, pytorchcv's model store)."""

import ast
import collections
import hashlib
import importlib
import inspect
import os
import subprocess

import pytest

from kerasnets import registry
from kerasnets.weights import PretrainedCfg, hashes, pretrained_cfgs
from tests.weights.test_cache import cached, home, sha256  # noqa: F401  (home: a fixture)
from tests.weights.test_loading import save_safetensors, serve_cfg, tiny_builder, tiny_state


def all_cfgs():
    for name in registry.list_models():
        registry.get(name)  # imports the family: registers its configurations
    return pretrained_cfgs()


def files(cfgs):
    """(url, check) of every published file (with and without classifier)."""
    for cfg in cfgs:
        yield cfg.url, cfg.check
        if cfg.notop_url:
            yield cfg.notop_url, cfg.notop_check


# ------------------------------------------------------------- the checks


def test_git_blob_id_is_gits(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"")
    assert hashes.file_digest(path, "git-blob") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    path.write_bytes(os.urandom(3000))
    try:
        git = subprocess.run(["git", "hash-object", str(path)], capture_output=True,
                             text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        git = hashlib.sha1(b"blob 3000\0" + path.read_bytes()).hexdigest()
    assert hashes.file_digest(path, "git-blob") == git


def test_check_kinds():
    release = "https://github.com/x/y/releases/download/v1/seresnet18-4bb0ce65.pth"
    assert hashes.check_for(release, None) == hashes.Check(hashes.PREFIX, "sha256", "4bb0ce65")
    assert hashes.check_for("https://x/a_9d60.h5", "9D60B8095A5708F2DCCE2BCA79D332C7") == \
        hashes.Check(hashes.FULL, "md5", "9d60b8095a5708f2dcce2bca79d332c7")
    assert hashes.check_for("https://huggingface.co/timm/a/resolve/main/model.safetensors",
                            "ab" * 32).kind == hashes.HEADER
    assert hashes.check_for("https://raw.githubusercontent.com/a/b/c/m.params",
                            "git-blob:" + "e1" * 20).kind == hashes.GIT_BLOB
    assert hashes.check_for("https://x/d18b4-0095.params", None).kind == hashes.FIRST_USE
    with pytest.raises(ValueError, match="git blob id"):
        PretrainedCfg("M", "t", url="https://x/m.params", format="mxnet_params",
                      file_hash="git-blob:123")


def test_every_file_gets_the_strongest_published_check():
    """GitHub release assets named by torch hub's rule: prefix; files at a
    pinned commit: git blob id; keras' listed hashes: full; the hub's files
    where no sha256 is recorded (none is installed here): first use."""
    counts = collections.Counter()
    for url, check in files(all_cfgs()):
        counts[check.kind] += 1
        if "/releases/download/" in url:
            assert check.kind == hashes.PREFIX, url
        elif url.startswith("https://raw.githubusercontent.com/"):
            assert check.kind == hashes.GIT_BLOB, url
        elif url.startswith("https://huggingface.co/"):
            assert check.kind in (hashes.HEADER, hashes.FIRST_USE), url
    print("files by check:", dict(counts))
    assert counts[hashes.PREFIX] == 9 and counts[hashes.GIT_BLOB] == 4


# -------------------------------------------------- the cache applies them


def serve_named(monkeypatch, tmp_path, state, name, file_hash=None):
    (tmp_path / "site").mkdir(exist_ok=True)
    path = save_safetensors(state, tmp_path / "site" / name)
    return path, serve_cfg(monkeypatch, PretrainedCfg(
        "TinyNet", "test_in1k", url="file://" + path, format="safetensors",
        file_hash=file_hash))


def test_download_failing_its_name_prefix_is_removed(home, tmp_path, monkeypatch):  # noqa: F811
    path, cfg = serve_named(monkeypatch, tmp_path, tiny_state(), "tiny-0123abcd.safetensors")
    with pytest.raises(ValueError) as info:
        tiny_builder(weights="test_in1k")
    message = str(info.value)
    assert "sha256 prefix" in message and "0123abcd" in message and sha256(path) in message
    assert "removed the download" in message and cfg.url in message
    assert cached(home) == []


def test_download_matching_its_name_prefix_loads(home, tmp_path, monkeypatch):  # noqa: F811
    (tmp_path / "draft").mkdir()
    draft = save_safetensors(tiny_state(), tmp_path / "draft" / "x.safetensors")
    name = f"tiny-{sha256(draft)[:8]}.safetensors"
    serve_named(monkeypatch, tmp_path, tiny_state(), name)
    tiny_builder(weights="test_in1k")
    assert f"TinyNet.test_in1k.{name}" in cached(home)


def test_hand_placed_file_failing_its_check_is_refused_and_kept(home, tmp_path,  # noqa: F811
                                                               monkeypatch):
    """The issue's case: a random-weights checkpoint placed in the cache
    under a release's name loaded silently; now it is refused, named, and
    left where the user put it."""
    (tmp_path / "draft").mkdir()
    draft = save_safetensors(tiny_state(), tmp_path / "draft" / "x.safetensors")
    name = f"tiny-{sha256(draft)[:8]}.safetensors"
    serve_named(monkeypatch, tmp_path, tiny_state(), name)
    home.mkdir(parents=True)
    placed = home / f"TinyNet.test_in1k.{name}"
    save_safetensors(tiny_state(seed=5), placed)
    with pytest.raises(ValueError) as info:
        tiny_builder(weights="test_in1k")
    message = str(info.value)
    assert str(placed) in message and sha256(draft)[:8] in message
    assert sha256(placed) in message and "Remove or replace" in message
    assert placed.exists() and sha256(placed) != sha256(draft)


def test_git_blob_id_is_checked(home, tmp_path, monkeypatch):  # noqa: F811
    (tmp_path / "draft").mkdir()
    draft = save_safetensors(tiny_state(), tmp_path / "draft" / "x.safetensors")
    blob = hashes.file_digest(draft, "git-blob")
    serve_named(monkeypatch, tmp_path, tiny_state(), "ok.safetensors", f"git-blob:{blob}")
    tiny_builder(weights="test_in1k")
    serve_named(monkeypatch, tmp_path, tiny_state(seed=2), "bad.safetensors",
                f"git-blob:{blob}")
    with pytest.raises(ValueError, match=f"git blob id.*expected {blob}, found [0-9a-f]{{40}}"):
        tiny_builder(weights="test_in1k")
    assert not [f for f in cached(home) if "bad" in f]


# ------------------------------------------------ the publishers' tables


def test_timm_files_are_timms():
    """Each timm file is the one timm's pretrained configuration names (its
    hub id or its release URL), with timm's classes and preprocessing."""
    timm_models = pytest.importorskip("timm.models")
    checked = 0
    for cfg in all_cfgs():
        if not (cfg.reference or "").startswith("timm:") and "huggingface.co/timm/" not in cfg.url:
            continue
        arch = cfg.reference.split(":", 1)[1]
        theirs = timm_models.get_arch_pretrained_cfgs(arch)
        if cfg.url.startswith("https://huggingface.co/"):
            hub_id = cfg.url.split("huggingface.co/", 1)[1].split("/resolve/")[0]
            match = [c for c in theirs.values() if c.hf_hub_id == hub_id]
            assert cfg.url == f"https://huggingface.co/{hub_id}/resolve/main/model.safetensors"
        else:
            match = [c for c in theirs.values() if c.url == cfg.url]
        assert match, f"{cfg.name}: {cfg.url} is none of timm's {arch} files"
        timm_cfg = match[0]
        assert timm_cfg.num_classes == cfg.classes, cfg.name
        assert timm_cfg.input_size[1] == cfg.input_size, cfg.name
        assert (timm_cfg.crop_pct, timm_cfg.interpolation) == (cfg.crop_pct, cfg.interpolation), \
            cfg.name
        if cfg.mean != (0.0, 0.0, 0.0):  # MobileNetV3: normalised inside the model
            assert cfg.mean == pytest.approx([255 * m for m in timm_cfg.mean]), cfg.name
            assert cfg.std == pytest.approx([255 * s for s in timm_cfg.std]), cfg.name
        assert cfg.check.kind in (hashes.PREFIX, hashes.HEADER, hashes.FIRST_USE)
        checked += 1
    assert checked == 27


def keras_published_files(module_name):
    """{url: hash or None} of keras.applications.``module_name``'s get_file
    calls whose origin is a module constant (DenseNet, InceptionV3)."""
    module = importlib.import_module(f"keras.src.applications.{module_name}")
    table = {}
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "get_file":
            origin = node.args[1] if len(node.args) > 1 else None
            if isinstance(origin, ast.Name) and hasattr(module, origin.id):
                file_hash = next((k.value.value for k in node.keywords
                                  if k.arg == "file_hash" and isinstance(k.value, ast.Constant)),
                                 None)
                table[getattr(module, origin.id)] = file_hash
    return module, table


def ours(family_prefix, cfgs):
    """{url: hash} of the keras files kerasnets registers for the URLs under ``family_prefix``."""
    return {url: check.expected if check.published else None
            for url, check in files(cfgs) if url.startswith(family_prefix)}


def test_keras_files_and_hashes_are_keras_applications():
    cfgs = all_cfgs()
    base = "https://storage.googleapis.com/tensorflow/keras-applications/"
    _, densenet = keras_published_files("densenet")
    assert ours(base + "densenet/", cfgs) == densenet and len(densenet) == 6
    _, inception = keras_published_files("inception_v3")
    assert ours(base + "inception_v3/", cfgs) == inception and len(inception) == 2

    v3 = importlib.import_module("keras.src.applications.mobilenet_v3")
    table = {}
    for key, (top, notop) in v3.WEIGHTS_HASHES.items():
        table[f"{v3.BASE_WEIGHT_PATH}weights_mobilenet_v3_{key}.h5"] = top
        table[f"{v3.BASE_WEIGHT_PATH}weights_mobilenet_v3_{key}_no_top_v2.h5"] = notop
    assert ours(v3.BASE_WEIGHT_PATH, cfgs) == table and len(table) == 12

    # MobileNet v1/v2: keras names the files per alpha and size and lists no hash.
    v1 = importlib.import_module("keras.src.applications.mobilenet")
    source = inspect.getsource(v1)
    assert '"mobilenet_%s_%d_tf.h5"' in source and '"mobilenet_%s_%d_tf_no_top.h5"' in source
    assert "file_hash" not in source
    text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}
    table = {}
    for alpha in text:
        for rows in (128, 160, 192, 224):
            stem = v1.BASE_WEIGHT_PATH + "mobilenet_%s_%d_tf" % (text[alpha], rows)
            table.update({stem + ".h5": None, stem + "_no_top.h5": None})
    assert ours(v1.BASE_WEIGHT_PATH, cfgs) == table

    v2 = importlib.import_module("keras.src.applications.mobilenet_v2")
    source = inspect.getsource(v2)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels" in source
    assert "file_hash" not in source
    table = {}
    for alpha in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4):
        for rows in (96, 128, 160, 192, 224):
            stem = (f"{v2.BASE_WEIGHT_PATH}mobilenet_v2_weights_tf_dim_ordering_tf_kernels_"
                    f"{float(alpha)}_{rows}")
            table.update({stem + ".h5": None, stem + "_no_top.h5": None})
    assert ours(v2.BASE_WEIGHT_PATH, cfgs) == table


def test_pytorchcv_files_are_its_model_stores():
    """No kerasnets file comes from pytorchcv's store today (IGCV3's is the
    authors' own); any that would must be the store's file and sha1."""
    store = pytest.importorskip("pytorchcv.models.common.model_store")
    table = store.get_model_metainfo_dict()
    assert "igcv3_w1" in table
    for cfg in all_cfgs():
        if not cfg.url.startswith(store.imgclsmob_repo_url):
            continue
        name = os.path.basename(cfg.url).split("-")[0]
        _, error, sha1, tag = table[name]
        assert cfg.url == (f"{store.imgclsmob_repo_url}/releases/download/{tag}/"
                           f"{name}-{error}-{sha1[:8]}.pth.zip")
