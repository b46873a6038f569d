"""Helpers shared by the MobileNet v1 and v2 tests (keras.applications parity)."""

import os

import h5py
import numpy as np

import keras

from tests.parity import calibrate_keras, randomize_keras

# Same graph, same weights: only float summation order may differ (the
# measured ratio is 0 on TF/CPU).
KERAS_TOL = 1e-5


def save_legacy_h5(model, path):
    """Writes ``model``'s weights in the legacy format of the published files.

    Keras 3.15's ``model.save_weights`` refuses file names that do not end in
    ``.weights.h5``, so the legacy writer is called directly.
    """
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return str(path)


def keras_reference(builder, images, **kwargs):
    """keras.applications model with random weights and calibrated BN."""
    model = builder(weights=None, classifier_activation=None, **kwargs)
    randomize_keras(model)
    calibrate_keras(model, images)
    return model


def weight_layer_names(model):
    return [layer.name for layer in model.layers if layer.weights]


def layer_signature(model):
    """(class, name) of every layer, in order; keras leaves input and global
    pooling layers auto-named, so only their class is compared."""
    signature = []
    for layer in model.layers:
        named = not isinstance(
            layer,
            (
                keras.layers.InputLayer,
                keras.layers.GlobalAveragePooling2D,
                keras.layers.GlobalMaxPooling2D,
            ),
        )
        signature.append((type(layer).__name__, layer.name if named else None))
    return signature


def assert_same_structure(ours, theirs):
    assert layer_signature(ours) == layer_signature(theirs)
    assert [
        [tuple(w.shape) for w in layer.weights] for layer in ours.layers
    ] == [[tuple(w.shape) for w in layer.weights] for layer in theirs.layers]
    assert ours.name == theirs.name
    assert ours.count_params() == theirs.count_params()


def trainable_params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def count_macs(model):
    """Multiply-adds of convolutions (incl. depthwise) and dense layers."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            kernel = layer.weights[0]
            total += int(np.prod(layer.output.shape[1:3])) * int(
                np.prod(kernel.shape)
            )
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return total


def fake_downloads(monkeypatch, path):
    """Makes keras.applications and kerasnets "download" ``path``.

    Returns {"keras": [urls], "kerasnets": [urls]}: the files each asked for.
    kerasnets' cache goes to a fresh ``KERAS_HOME`` beside ``path`` (no
    earlier conversion in the user's cache can answer instead).
    """
    requested = {"keras": [], "kerasnets": []}
    monkeypatch.setenv("KERAS_HOME", os.path.join(os.path.dirname(path), "keras_home"))

    def recorder(who):
        def get_file(fname=None, origin=None, **kwargs):
            requested[who].append(origin)
            return str(path)

        return get_file

    # keras.applications calls keras.src.utils.file_utils.get_file;
    # kerasnets.weights calls keras.utils.get_file.
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", recorder("keras"))
    monkeypatch.setattr(keras.utils, "get_file", recorder("kerasnets"))
    return requested


def forbid_downloads(monkeypatch):
    def get_file(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr("keras.src.utils.file_utils.get_file", get_file)
    monkeypatch.setattr(keras.utils, "get_file", get_file)
