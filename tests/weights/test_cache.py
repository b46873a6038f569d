"""The weights cache, offline: file:// URLs stand in for the download sites."""

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasnets.weights import PretrainedCfg, cache, loading
from tests.weights.test_loading import save_safetensors, serve_cfg, tiny_builder, tiny_state

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
X = np.random.default_rng(3).normal(size=(2, 32, 32, 3)).astype("float32")


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "models" / "kerasnets"


@pytest.fixture
def published(tmp_path):
    """A source checkpoint "published" at a file:// URL."""
    (tmp_path / "site").mkdir()
    return save_safetensors(tiny_state(), tmp_path / "site" / "model.safetensors")


def serve(monkeypatch, path, file_hash="sha256", tag="test_in1k", **kwargs):
    if file_hash == "sha256":
        file_hash = sha256(path)
    return serve_cfg(monkeypatch, PretrainedCfg(
        "TinyNet", tag, url="file://" + os.fspath(path), format="safetensors",
        file_hash=file_hash, **kwargs))


def cached(home):
    """The cache's files, without the sha256 stamps kept beside sources."""
    return sorted(f for f in os.listdir(home) if not f.endswith(".stamp")) if home.exists() else []


def outputs(model):
    return keras.ops.convert_to_numpy(model(X))


def forbid(monkeypatch, *what):
    def refuse(*args, **kwargs):
        raise AssertionError("the second load touched the source")

    if "download" in what:
        monkeypatch.setattr(keras.utils, "get_file", refuse)
    if "source" in what:
        monkeypatch.setattr(loading, "read_state_dict", refuse)


def test_download_convert_once_then_read_converted(home, published, monkeypatch):
    cfg = serve(monkeypatch, published)
    expected = outputs(tiny_builder(weights=published, classifier_activation=None))
    model = tiny_builder(weights="test_in1k", classifier_activation=None)
    assert model.pretrained_cfg is cfg
    np.testing.assert_array_equal(outputs(model), expected)
    files = cached(home)
    converted = os.path.basename(cache.converted_path(cfg, model, sha256(published)))
    assert files == sorted(["TinyNet.test_in1k.model.safetensors", converted])
    assert converted.endswith(".weights.h5")
    assert sha256(home / "TinyNet.test_in1k.model.safetensors") == sha256(published)

    # Second load: the converted file only (no download, no safetensors read).
    forbid(monkeypatch, "download", "source")
    again = tiny_builder(weights="test_in1k", classifier_activation=None)
    np.testing.assert_array_equal(outputs(again), expected)
    assert cached(home) == files


def test_headless_model_gets_its_own_converted_file(home, published, monkeypatch):
    serve(monkeypatch, published)
    tiny_builder(weights="test_in1k")
    forbid(monkeypatch, "download")  # the source is cached: converted from it
    headless = tiny_builder(weights="test_in1k", include_top=False)
    files = cached(home)
    assert len([f for f in files if f.endswith(".weights.h5")]) == 2
    reference = tiny_builder(weights=published, include_top=False)
    for a, b in zip(headless.weights, reference.weights):
        np.testing.assert_array_equal(a, b)


def test_corrupted_download_leaves_nothing(home, published, tmp_path, monkeypatch):
    good_hash = sha256(published)
    data = bytearray(Path(published).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    Path(published).write_bytes(bytes(data))
    entry = serve(monkeypatch, published, file_hash=good_hash)
    with pytest.raises(ValueError) as info:
        tiny_builder(weights="test_in1k")
    message = str(info.value)
    assert entry.url in message
    assert os.path.join(str(home), "TinyNet.test_in1k.model.safetensors") in message
    assert "place it at" in message and "`weights=`" in message
    assert cached(home) == []


def test_truncated_unhashed_download_is_removed(home, published, monkeypatch):
    data = Path(published).read_bytes()
    Path(published).write_bytes(data[: len(data) // 2])
    entry = serve(monkeypatch, published, file_hash=None)
    with pytest.raises(ValueError) as info:
        tiny_builder(weights="test_in1k")
    message = str(info.value)
    assert entry.url in message and "truncated" in message
    assert os.path.join(str(home), "TinyNet.test_in1k.model.safetensors") in message
    assert cached(home) == []  # neither the file nor its recorded hash


def test_missing_url_raises_with_instructions(home, tmp_path, monkeypatch):
    entry = serve(monkeypatch, tmp_path / "nowhere.safetensors", file_hash=None)
    with pytest.raises(ValueError, match="place it at .*weights=") as info:
        tiny_builder(weights="test_in1k")
    assert entry.url in str(info.value)
    assert cached(home) == []


def test_unhashed_source_records_its_sha256(home, published, monkeypatch, capsys):
    serve(monkeypatch, published, file_hash=None)
    tiny_builder(weights="test_in1k")
    record = home / "TinyNet.test_in1k.model.safetensors.sha256"
    assert record.read_text().split()[0] == sha256(published)
    assert "publishes no hash" in capsys.readouterr().err
    # A cached source that no longer matches its recorded hash is refused,
    # named with both digests, and left in place (kerasnets did not write it).
    for name in cached(home):
        if name.endswith(".weights.h5"):
            os.remove(home / name)
    source = home / "TinyNet.test_in1k.model.safetensors"
    source.write_bytes(b"\0" * 100)
    with pytest.raises(ValueError) as info:
        tiny_builder(weights="test_in1k")
    message = str(info.value)
    assert str(source) in message and "recorded on first use" in message
    assert sha256(published) in message and sha256(source) in message
    assert source.read_bytes() == b"\0" * 100


def test_placed_by_hand_is_used(home, published, monkeypatch):
    serve(monkeypatch, published)
    home.mkdir(parents=True)
    (home / "TinyNet.test_in1k.model.safetensors").write_bytes(Path(published).read_bytes())
    forbid(monkeypatch, "download")
    tiny_builder(weights="test_in1k")


def test_damaged_converted_file_is_rebuilt(home, published, monkeypatch):
    cfg = serve(monkeypatch, published)
    model = tiny_builder(weights="test_in1k", classifier_activation=None)
    converted = cache.converted_path(cfg, model, sha256(published))
    Path(converted).write_bytes(os.urandom(2048))
    forbid(monkeypatch, "download")
    again = tiny_builder(weights="test_in1k", classifier_activation=None)
    np.testing.assert_array_equal(outputs(again), outputs(model))
    assert loading.file_format(converted) == "keras"
    tiny_builder(weights=converted)  # whole again


def test_republished_source_is_converted_anew(home, published, monkeypatch):
    """The converted file is keyed by the source's sha256: a new release (a
    new hash) is downloaded and converted, never served the old conversion."""
    serve(monkeypatch, published)
    first = outputs(tiny_builder(weights="test_in1k", classifier_activation=None))
    save_safetensors(tiny_state(seed=7), published)  # republished at the same URL
    serve(monkeypatch, published)  # with its new hash
    second = outputs(tiny_builder(weights="test_in1k", classifier_activation=None))
    expected = outputs(tiny_builder(weights=published, classifier_activation=None))
    np.testing.assert_array_equal(second, expected)
    assert not np.array_equal(first, second)


def test_source_placed_by_hand_replaces_an_old_conversion(home, published, tmp_path,
                                                         monkeypatch):
    serve(monkeypatch, published, file_hash=None)
    tiny_builder(weights="test_in1k")
    source = home / "TinyNet.test_in1k.model.safetensors"
    os.remove(source)
    os.remove(str(source) + ".sha256")  # a fresh start for this file, by hand
    other = save_safetensors(tiny_state(seed=9), tmp_path / "other.safetensors")
    source.write_bytes(Path(other).read_bytes())
    forbid(monkeypatch, "download")
    again = tiny_builder(weights="test_in1k", classifier_activation=None)
    expected = outputs(tiny_builder(weights=other, classifier_activation=None))
    np.testing.assert_array_equal(outputs(again), expected)
    assert len([f for f in cached(home) if f.endswith(".weights.h5")]) == 2


def test_file_lock_excludes_and_cleans_up(tmp_path):
    lock = str(tmp_path / "x.lock")
    events = []

    def contender():
        with cache.file_lock(lock):
            events.append("second")

    with cache.file_lock(lock):
        thread = threading.Thread(target=contender)
        thread.start()
        time.sleep(0.3)
        events.append("first done")
    thread.join(5)
    assert events == ["first done", "second"]
    assert not os.path.exists(lock)


def test_two_processes_share_one_download(home, published, tmp_path):
    env = dict(os.environ, KERAS_HOME=str(tmp_path / "home"), CUDA_VISIBLE_DEVICES="",
               TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    url = "file://" + os.fspath(published)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.weights.cache_worker", url, sha256(published),
             str(tmp_path / f"out{i}.npy")],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]
    results = [p.communicate(timeout=240) for p in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err[-3000:]
    assert sorted(out.strip().splitlines()[-1] for out, _ in results) == [
        "cached", "downloaded"]
    np.testing.assert_array_equal(np.load(tmp_path / "out0.npy"),
                                  np.load(tmp_path / "out1.npy"))
    files = cached(home)
    assert len(files) == 2, files
    assert sorted(f.rsplit(".", 2)[-2:][-1] for f in files) == ["h5", "safetensors"]
    assert sha256(home / "TinyNet.race_in1k.model.safetensors") == sha256(published)
