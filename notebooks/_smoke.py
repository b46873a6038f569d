"""Smoke mode of the notebooks: tiny, offline and fast (CI only; Colab never
imports this module).

``tests/test_notebooks.py`` runs every notebook with ``KERASNETS_SMOKE=1``;
each notebook's parameters cell then calls ``setup()``, which

- refuses network connections (anything but loopback), so a notebook that
  would download something fails instead of reaching the internet;
- points ``KERAS_HOME`` (the kerasnets weights cache) and ``TFDS_DATA_DIR`` at
  a temporary directory, leaving the user's caches alone;
- serves "pretrained" weights offline: whenever a builder is asked for a
  pretrained tag (``weights="imagenet"``), the model it has just built (random
  weights) is saved as a ``.weights.h5`` file, the registry entry of that tag
  is replaced by one whose URL is the file's ``file://`` URL with its sha256,
  and the normal loading path runs: ``keras.utils.get_file`` "downloads" it
  into the cache, checks the hash and loads it strictly. Preprocessing,
  input size, crop and interpolation of the entry stay the real ones;
- optionally mocks tensorflow-datasets (``tfds.testing.mock_data``): every
  ``tfds.load`` returns random examples with the dataset's real features
  (image shapes, class names), nothing is downloaded.

Predictions made with such weights are meaningless; the point is that every
cell runs.
"""

import atexit
import dataclasses
import hashlib
import os
import shutil
import socket
import tempfile

_STATE = {}


def setup(mock_tfds=False, num_examples=16):
    """Turns smoke mode on for this process (idempotent). Returns the
    temporary directory that holds its files."""
    if "root" in _STATE:
        if mock_tfds:
            _mock_tfds(num_examples)
        return _STATE["root"]
    root = tempfile.mkdtemp(prefix="kerasnets-smoke-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    _STATE["root"] = root
    os.environ["KERAS_HOME"] = os.path.join(root, "keras")
    os.environ["TFDS_DATA_DIR"] = os.path.join(root, "tensorflow_datasets")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _forbid_network()
    _serve_weights_offline(os.path.join(root, "published"))
    if mock_tfds:
        _mock_tfds(num_examples)
    return root


def temporary_directory(name):
    """A fresh directory under the smoke root (outputs of a notebook)."""
    path = os.path.join(_STATE["root"], name)
    os.makedirs(path, exist_ok=True)
    return path


# ----------------------------------------------------------------- network


def _forbid_network():
    original = socket.socket.connect

    def connect(self, address, *args, **kwargs):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"smoke mode: no network (connection to {address!r} refused)")
        return original(self, address, *args, **kwargs)

    socket.socket.connect = connect


# ----------------------------------------------------------------- weights


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _serve_weights_offline(directory):
    """Pretrained tags load locally made (random) Keras weights: each
    configuration a model asks for is served from a file:// URL."""
    import kerasnets.weights as weights_lib
    from kerasnets.weights import cache

    os.makedirs(directory, exist_ok=True)
    load_weights = weights_lib.load_weights

    def served(model, cfg, include_top):
        suffix = "" if include_top else ".notop"
        path = os.path.join(
            directory,
            f"{cfg.model}.{cfg.tag}.{cache.model_signature(model)}{suffix}.weights.h5")
        if not os.path.exists(path):
            model.save_weights(path)
        url = "file://" + os.path.abspath(path)
        fields = ({"url": url, "file_hash": _sha256(path)} if include_top
                  else {"notop_url": url, "notop_hash": _sha256(path)})
        return dataclasses.replace(cfg, format="keras", **fields)

    def offline_load_weights(model, weights, *, layer_maps, cfg=None, include_top=True):
        if cfg is not None:  # a pretrained tag, not a file
            cfg = served(model, cfg, include_top)
        return load_weights(model, weights, layer_maps=layer_maps, cfg=cfg,
                            include_top=include_top)

    weights_lib.load_weights = offline_load_weights


# -------------------------------------------------------------------- tfds


def _mock_tfds(num_examples):
    if "tfds" in _STATE:
        return
    import tensorflow_datasets as tfds

    context = tfds.testing.mock_data(num_examples=num_examples)
    context.__enter__()
    _STATE["tfds"] = context


def image_folder(name="images", classes=("cats", "dogs", "birds"), per_class=6, size=48):
    """A small ``folder:`` dataset of random JPEGs (class subfolders)."""
    import numpy as np
    import tensorflow as tf

    root = temporary_directory(name)
    rng = np.random.default_rng(0)
    for cls in classes:
        os.makedirs(os.path.join(root, cls), exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            tf.io.write_file(os.path.join(root, cls, f"{i}.jpg"),
                             tf.io.encode_jpeg(pixels))
    return "folder:" + root
