"""Crafted weights files (issue 20, cases 6, 7, 11, 12): a weights file reads
only itself, declares nothing larger than the model before its data is
read, a tag is never taken for a path, and ``available`` answers from the
catalog."""

import os
import subprocess
import sys
import tracemalloc
import zipfile

import h5py
import numpy as np
import pytest

import keras

from kerasnets.weights import cache, loading
from tests.parity import require
from tests.weights.test_mxnet import encode_ndarray, write_ndarray_file

HUGE = (4096, 4096)  # 64 MiB of float32, declared by files of a few KB
BOUND = 16 << 20  # what a refusal may allocate, at most


@pytest.fixture(scope="module")
def model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="fc")(x), name="tiny")


def variables(model):
    return [np.array(v) for v in model.weights]


def legacy_weights(layer):
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def write_legacy_h5(path, model, crafted=None):
    """A legacy (keras.applications) .h5 of ``model``'s weights; the first
    layer's kernel is written by ``crafted(group, name, value)`` if given."""
    with h5py.File(path, "w") as f:
        owners = [layer for layer in model.layers if layer.weights]
        f.attrs["layer_names"] = [layer.name.encode() for layer in owners]
        for index, layer in enumerate(owners):
            group = f.create_group(layer.name)
            names = [f"{layer.name}/{v.name}:0" for v in legacy_weights(layer)]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for position, (name, variable) in enumerate(zip(names, legacy_weights(layer))):
                value = np.asarray(variable)
                if crafted and index == 0 and position == 0:
                    crafted(group, name, value)
                else:
                    group.create_dataset(name, data=value)
    return str(path)


def secret_file(tmp_path, nbytes):
    path = tmp_path / "passwd"
    path.write_bytes((b"root:x:0:0:root:/root:/bin/bash\n" * (nbytes // 32 + 1))[:nbytes])
    return str(path)


def other_hdf5(tmp_path, shape):
    path = str(tmp_path / "other.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.ones(shape, "float32"))
    return path


def external_storage(tmp_path):
    def write(group, name, value):
        group.create_dataset(name, shape=value.shape, dtype="float32",
                             external=[(secret_file(tmp_path, value.nbytes), 0, value.nbytes)])
    return write


def external_link(tmp_path):
    def write(group, name, value):
        group[name] = h5py.ExternalLink(other_hdf5(tmp_path, value.shape), "/data")
    return write


def virtual_dataset(tmp_path):
    def write(group, name, value):
        layout = h5py.VirtualLayout(shape=value.shape, dtype="float32")
        layout[...] = h5py.VirtualSource(other_hdf5(tmp_path, value.shape), "data",
                                         shape=value.shape)
        group.create_virtual_dataset(name, layout)
    return write


CRAFTED = {
    "HDF5 external storage": (external_storage, r"stored in another file \('.*passwd'"),
    "external link": (external_link, r"is an external link to '.*other\.h5'"),
    "virtual dataset": (virtual_dataset, r"is a virtual dataset"),
}


# ------------------------------------------- case 6: a file reads only itself


@pytest.mark.parametrize("kind", list(CRAFTED))
def test_legacy_h5_reading_other_files_is_refused(model, tmp_path, kind):
    make, message = CRAFTED[kind]
    path = write_legacy_h5(tmp_path / "w.h5", model, make(tmp_path))
    before = variables(model)
    with pytest.raises(ValueError, match=r"Refusing the weights file '.*w\.h5': dataset|"
                                         r"Refusing the weights file '.*w\.h5': '/conv/conv"
                       ) as error:
        loading.load_file(model, path, layer_maps={})
    assert "conv/conv/kernel:0" in str(error.value)
    assert error.match(message)
    for old, new in zip(before, variables(model)):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("kind", list(CRAFTED))
def test_keras_weights_and_cache_reading_other_files_are_refused(model, tmp_path, kind):
    """``.weights.h5`` (the user's, and the converted cache, which is
    removed and converted again instead of read)."""
    make, message = CRAFTED[kind]
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    with h5py.File(path, "a") as f:
        name = "layers/conv2d/vars/0" if "layers/conv2d/vars/0" in f else None
        name = name or next(n for n in _datasets(f) if f[n].shape == (3, 3, 3, 4))
        value = np.asarray(f[name])
        parent, leaf = name.rsplit("/", 1)
        del f[name]
        make(tmp_path)(f[parent], leaf, value)
    with pytest.raises(ValueError, match=message):
        loading.load_file(model, path, layer_maps={})
    assert cache._load_converted(model, path) is False
    assert not os.path.exists(path)


def _datasets(f):
    found = []
    f.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None)
    return found


def test_convert_refuses_a_mobilenet_h5_stored_in_another_file(tmp_path):
    """The issue's case: ``convert`` of a MobileNet .h5 whose conv1/kernel
    lives in the password file exited 0, the output holding its bytes."""
    import kerasnets
    from kerasnets.convert import convert

    options = dict(alpha=0.25, input_shape=(32, 32, 3), include_top=False)
    net = kerasnets.MobileNet(weights=None, **options)
    path = write_legacy_h5(tmp_path / "mobilenet.h5", net, external_storage(tmp_path))
    output = tmp_path / "out.weights.h5"
    with pytest.raises(ValueError, match=r"dataset '/conv1/conv1/kernel:0' is stored in "
                                         r"another file \('.*passwd'"):
        convert(path, "MobileNet", output, include_top=False, parity=False,
                model_kwargs=dict(alpha=0.25, input_shape=(32, 32, 3)))
    assert not output.exists()


# --------------------------------- case 7: nothing larger than the model is read


def peak_while(call):
    """The peak of Python/numpy allocations while ``call`` raises ValueError;
    returns (peak bytes, the error)."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as error:
            call()
        return tracemalloc.get_traced_memory()[1], error.value
    finally:
        tracemalloc.stop()


def chunked(compression=None):
    def write(group, name, value):
        group.create_dataset(name, shape=HUGE, dtype="float32", chunks=(256, 256),
                             compression=compression)
    return write


def test_legacy_h5_declaring_gigabytes_is_refused_before_reading(model, tmp_path):
    path = write_legacy_h5(tmp_path / "w.h5", model, chunked())
    assert os.path.getsize(path) < 20_000
    peak, error = peak_while(lambda: loading.load_file(model, path, layer_maps={}))
    assert peak < BOUND
    assert "declares 4096x4096 float32 values (64.0 MiB) in a file of" in str(error)


def test_compressed_legacy_h5_is_checked_against_the_model_before_reading(model, tmp_path):
    path = write_legacy_h5(tmp_path / "w.h5", model, chunked("gzip"))
    peak, error = peak_while(lambda: loading.load_file(model, path, layer_maps={}))
    assert peak < BOUND
    assert "layer #0 'conv' expects weights of shapes [(3, 3, 3, 4), (4,)]" in str(error)
    assert "(4096, 4096)" in str(error)


@pytest.mark.parametrize("where, message", [
    ("kernel", "layer 'conv' expects (3, 3, 3, 4), the file holds (4096, 4096)"),
    ("layers/conv2d/vars/2", "its dataset 'layers/conv2d/vars/2' declares shape (4096, 4096), "
                             "larger than any variable"),
])
def test_keras_weights_declaring_a_shape_the_model_lacks_are_refused(model, tmp_path, where,
                                                                      message):
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    with h5py.File(path, "a") as f:
        if where == "kernel":
            where = next(n for n in _datasets(f) if f[n].shape == (3, 3, 3, 4))
            del f[where]
        f.create_dataset(where, shape=HUGE, dtype="float32", chunks=(256, 256),
                         compression="gzip")
    peak, error = peak_while(lambda: loading.load_file(model, path, layer_maps={}))
    assert peak < BOUND
    assert message in str(error)


MXNET_MAP = {"mxnet": lambda m: ({"conv": "conv", "bn": "bn", "fc": "fc"}, ("fc",))}


def test_mxnet_sparse_array_declaring_gigabytes_is_refused_before_reading(model, tmp_path):
    """A 148-byte .params declaring a 30000x30000 row_sparse array reached
    1.7 GB; its shape is now matched against the model first."""
    one_row = np.ones((1, HUGE[1]), "float32")[:, :1]  # one stored value
    record = encode_ndarray(one_row, sparse=("row_sparse", [0]), dense_shape=HUGE)
    path = write_ndarray_file(tmp_path / "w.params", [record], ["arg:conv_weight"])
    assert os.path.getsize(path) < 200
    peak, error = peak_while(
        lambda: loading.load_file(model, path, layer_maps=MXNET_MAP))
    assert peak < BOUND
    assert "parameter 'conv_weight' (4096, 4096) -> 'conv/kernel' expects (3, 3, 3, 4)" in str(
        error)


def test_headless_model_never_reads_an_unchecked_classifier(model, tmp_path):
    """The classifier a headless model skips is not read at all."""
    params = {"arg:conv_weight": np.zeros((4, 3, 3, 3), "float32"),
              "arg:conv_bias": np.zeros(4, "float32"),
              "arg:bn_gamma": np.ones(4, "float32"), "arg:bn_beta": np.zeros(4, "float32"),
              "aux:bn_moving_mean": np.zeros(4, "float32"),
              "aux:bn_moving_var": np.ones(4, "float32")}
    records = [encode_ndarray(v) for v in params.values()]
    records.append(encode_ndarray(np.ones((1, 1), "float32"), sparse=("row_sparse", [0]),
                                  dense_shape=HUGE))
    path = write_ndarray_file(tmp_path / "w.params", records, list(params) + ["arg:fc_weight"])
    headless = keras.Model(model.input, model.get_layer("bn").output)
    tracemalloc.start()
    try:
        loading.load_file(headless, path, layer_maps=MXNET_MAP, include_top=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < BOUND


def test_safetensors_shapes_are_checked_from_the_header(model, tmp_path):
    from safetensors.numpy import save_file

    path = str(tmp_path / "w.safetensors")
    save_file({"conv.weight": np.zeros((2048, 2048), "float32")}, path)  # 16 MiB
    layer_maps = {"torch": lambda m: ({"conv": "conv", "bn": "bn", "fc": "fc"}, ())}
    peak, error = peak_while(lambda: loading.load_file(model, path, layer_maps=layer_maps))
    assert peak < 4 << 20
    assert "tensor 'conv.weight' (2048, 2048) -> 'conv/kernel' expects" in str(error)


def test_compressed_torch_archive_is_refused(model, tmp_path):
    torch = require("torch")
    saved = str(tmp_path / "saved.pth")
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3)}, saved)
    path = str(tmp_path / "w.pth")
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(path, "w",
                                                           zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            target.writestr(member.filename, source.read(member))
    with pytest.raises(ValueError, match=r"Refusing the weights file '.*w\.pth': member "
                                         r"'.*' is compressed"):
        loading.read_state_dict(path)


# ------------------------------------- case 11: a tag is a tag, a path a path


def test_a_folder_named_like_a_tag_does_not_replace_the_weights(tmp_path, monkeypatch):
    from kerasnets import weights as weights_lib
    from kerasnets.models import common

    monkeypatch.chdir(tmp_path)
    (tmp_path / "imagenet").mkdir()
    (tmp_path / "tv_in1k").write_bytes(b"x")
    assert not weights_lib.is_path("imagenet")
    assert not weights_lib.is_path("tv_in1k")
    cfg = common.check_arguments("MobileNetV3Small", weights="imagenet", include_top=True,
                                 classes=1000, pooling=None, classifier_activation="softmax")
    assert cfg is not None and cfg.model == "MobileNetV3Small"
    for path in ("./imagenet", "models/imagenet", "~/w", "w.h5", "W.WEIGHTS.H5",
                 "w.safetensors", "w.pth", "w.params", ".hidden", os.path.join("a", "b")):
        assert weights_lib.is_path(path), path
    with pytest.raises(ValueError, match=r"write './tv_in1k' to load the file"):
        weights_lib.check_tag("MobileNetV3Small", "tv_in1k")


# ------------------------------- case 12: available() answers from the catalog


def test_available_answers_from_the_catalog_in_any_case():
    code = (
        "import sys, kerasnets.weights as w\n"
        "print(w.available('MobileNetV2'), w.available('dpn92'), w.available('DenseNet'))\n"
        "print(sorted(m for m in sys.modules if m.startswith('kerasnets.models')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.splitlines() == [
        "['imagenet'] ['imagenet', 'mx_in1k'] []", "[]"], done.stdout + done.stderr
    from kerasnets import weights as weights_lib

    with pytest.raises(ValueError, match=r"Unknown model 'MobileNetV4'; did you mean"):
        weights_lib.available("MobileNetV4")
