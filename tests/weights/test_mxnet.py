"""The MXNet .params reader and the IGC checkpoint loading.

Files come from two independent writers: ``write_ndarray_file`` below, built
from the format's specification (MXNet's NDArray::Save, not the reader's
code), and real MXNet 1.9.1 (``mx.nd.save``; fixtures in tests/data, made by
tests/data/make_mxnet_fixtures.py, so the suite never needs mxnet).
"""

import os
import struct

import numpy as np
import pytest

import keras

import kerasnets
from kerasnets.weights import loading
from kerasnets.weights.mxnet import read_ndarray_file, read_params
from tests.parity import assert_logits_close, randomize_keras

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")

# ------------------------------------------------ independent test writer

DTYPE_FLAGS = {"float32": 0, "float64": 1, "float16": 2, "uint8": 3, "int32": 4,
               "int8": 5, "int64": 6, "bool": 7, "int16": 8, "uint16": 9,
               "uint32": 10, "uint64": 11}
V1, V2, V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA


def _tshape(shape, legacy=False):
    if legacy:
        return struct.pack("<I", len(shape)) + b"".join(struct.pack("<I", d) for d in shape)
    return struct.pack("<i", len(shape)) + b"".join(struct.pack("<q", d) for d in shape)


def encode_ndarray(array, version=2, sparse=None, dense_shape=None):
    """One NDArray record: MXNet's NDArray::Save (v2/v3), its v1 form, or the
    pre-v1 legacy form. ``sparse`` = ("row_sparse", rows) or ("csr", indptr,
    indices) with ``array`` the stored values."""
    array = np.array(array, order="C")  # (ascontiguousarray would make scalars 1-d)
    context = struct.pack("<ii", 1, 0)  # cpu(0)
    dtype = struct.pack("<i", DTYPE_FLAGS[str(array.dtype)])
    if version == "legacy":
        return _tshape(array.shape, legacy=True) + context + dtype + array.astype(
            array.dtype.newbyteorder("<")).tobytes()
    if version == 1:
        return struct.pack("<I", V1) + _tshape(array.shape) + context + dtype + array.tobytes()
    magic = V3 if version == 3 else V2
    if sparse is None:
        return (struct.pack("<Ii", magic, 0) + _tshape(array.shape) + context + dtype
                + array.tobytes())
    kind, *aux = sparse
    stype = {"row_sparse": 1, "csr": 2}[kind]
    aux = [np.asarray(a, dtype="int64") for a in aux]
    record = struct.pack("<Ii", magic, stype) + _tshape(array.shape) + _tshape(dense_shape)
    record += context + dtype
    for a in aux:
        record += struct.pack("<i", DTYPE_FLAGS["int64"]) + _tshape(a.shape)
    return record + array.tobytes() + b"".join(a.tobytes() for a in aux)


def write_ndarray_file(path, records, names=None):
    """The list file: uint64 magic 0x112, uint64 0, uint64 count, records,
    uint64 name count, (uint64 length, utf-8 bytes) per name."""
    data = struct.pack("<QQQ", 0x112, 0, len(records)) + b"".join(records)
    names = names or []
    data += struct.pack("<Q", len(names))
    for name in names:
        raw = name.encode("utf-8")
        data += struct.pack("<Q", len(raw)) + raw
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def write_params(path, params):
    """A checkpoint {"arg:name" / "aux:name": array} in the v2 format."""
    return write_ndarray_file(path, [encode_ndarray(v) for v in params.values()], list(params))


# ------------------------------------------------------------- the reader


@pytest.mark.parametrize("version", [2, 3, 1, "legacy"])
def test_reads_every_dtype_and_version(tmp_path, version):
    rng = np.random.default_rng(0)
    arrays = {
        "arg:conv_weight": rng.normal(size=(8, 2, 3, 3)).astype("float32"),
        "arg:fc_bias": rng.normal(size=(5,)).astype("float64"),
        "half": rng.normal(size=(2, 3)).astype("float16"),
        "bytes": np.arange(7, dtype="uint8"),
        "ints": np.array([-(2 ** 40), 3], dtype="int64"),
        "i32": np.array([[1, -2]], dtype="int32"),
        "flags": np.array([True, False]),
        "名前": np.ones((1, 1, 1, 1, 2), "float32"),
    }
    path = write_ndarray_file(tmp_path / "a.params",
                              [encode_ndarray(a, version=version) for a in arrays.values()],
                              list(arrays))
    names, values = read_ndarray_file(path)
    assert names == list(arrays)
    for expected, actual in zip(arrays.values(), values):
        assert actual.dtype == expected.dtype and actual.shape == expected.shape
        np.testing.assert_array_equal(actual, expected)


def test_v3_scalar_and_empty_arrays(tmp_path):
    path = write_ndarray_file(
        tmp_path / "np.params",
        [encode_ndarray(np.array(2.5, "float32"), version=3),
         encode_ndarray(np.zeros((0, 4), "float32"), version=3)],
        ["scalar", "empty"])
    _, (scalar, empty) = read_ndarray_file(path)
    assert scalar.shape == () and scalar == 2.5
    assert empty.shape == (0, 4)


def test_sparse_arrays_are_densified(tmp_path):
    rows = np.array([[1.0, 2.0], [3.0, 4.0]], "float32")
    csr_values = np.array([5.0, 6.0, 7.0], "float32")
    path = write_ndarray_file(
        tmp_path / "sparse.params",
        [encode_ndarray(rows, sparse=("row_sparse", [0, 2]), dense_shape=(4, 2)),
         encode_ndarray(csr_values, sparse=("csr", [0, 1, 1, 3], [1, 0, 2]), dense_shape=(3, 3))],
        ["rs", "csr"])
    _, (rs, csr) = read_ndarray_file(path)
    np.testing.assert_array_equal(rs, [[1, 2], [0, 0], [3, 4], [0, 0]])
    np.testing.assert_array_equal(csr, [[0, 5, 0], [0, 0, 0], [6, 0, 7]])


def test_reads_genuine_mxnet_files():
    names, values = read_ndarray_file(os.path.join(DATA, "mxnet_misc.params"))
    got = dict(zip(names, values))
    assert got["float16"].dtype == np.float16
    np.testing.assert_array_equal(got["float16"], [[1.5, -2.25, 65504.0]])
    np.testing.assert_array_equal(got["int64"], [0, -1, 2 ** 40])
    np.testing.assert_array_equal(got["uint8"], np.arange(6).reshape(1, 2, 3))
    np.testing.assert_array_equal(got["row_sparse"], [[1, 2], [0, 0], [3, 4], [0, 0]])
    np.testing.assert_array_equal(got["csr"], [[0, 5, 0], [0, 0, 0], [6, 0, 7]])
    names, values = read_ndarray_file(os.path.join(DATA, "mxnet_np_shape.params"))
    got = dict(zip(names, values))
    assert got["scalar"].shape == () and float(got["scalar"]) == 2.5
    assert got["empty"].shape == (0, 4)
    np.testing.assert_array_equal(got["matrix"], np.arange(6.0).reshape(2, 3))
    params = read_params(os.path.join(DATA, "igc_cifar_l2m2_d8.params"))
    assert params["g1_b1_p2_two1_conv1_weight"].shape == (4, 2, 3, 3)  # L=2 groups
    assert params["g2_b1_p0_line_conv_weight"].shape == (8, 2, 1, 1)
    assert "g0_bn_moving_var" in params and "fc_bias" in params  # prefixes stripped


def test_read_params_prefixes(tmp_path):
    one = np.ones(2, "float32")
    params = read_params(write_ndarray_file(
        tmp_path / "p.params", [encode_ndarray(one)] * 3, ["arg:w", "aux:bn_moving_mean", "plain"]))
    assert sorted(params) == ["bn_moving_mean", "plain", "w"]
    with pytest.raises(ValueError, match="'w' twice"):
        read_params(write_ndarray_file(tmp_path / "d.params", [encode_ndarray(one)] * 2,
                                       ["arg:w", "aux:w"]))
    with pytest.raises(ValueError, match="unnamed arrays"):
        read_params(write_ndarray_file(tmp_path / "l.params", [encode_ndarray(one)]))


def test_truncated_and_corrupt_files_name_the_file(tmp_path):
    good = write_ndarray_file(
        tmp_path / "good.params",
        [encode_ndarray(np.arange(6, dtype="float32").reshape(2, 3)),
         encode_ndarray(np.ones(3, "int64"))],
        ["arg:a", "aux:b"])
    data = open(good, "rb").read()
    bad = str(tmp_path / "bad.params")
    for cut in range(len(data)):  # every truncation fails, never loads partially
        with open(bad, "wb") as f:
            f.write(data[:cut])
        with pytest.raises(ValueError, match="bad.params"):
            read_ndarray_file(bad)

    def corrupt(offset, value, match):
        blob = bytearray(data)
        blob[offset:offset + len(value)] = value
        with open(bad, "wb") as f:
            f.write(bytes(blob))
        with pytest.raises(ValueError, match=match):
            read_ndarray_file(bad)

    corrupt(0, b"\x13", "bad file magic")
    corrupt(24, struct.pack("<I", 0xDEADBEEF), "bad NDArray magic")
    corrupt(28, struct.pack("<i", 7), "unknown storage type")
    corrupt(24 + 4 + 4 + 4 + 16 + 8, struct.pack("<i", 99), "unknown dtype flag")
    corrupt(24 + 4 + 4 + 4, struct.pack("<q", -3), "negative dimension")
    with open(bad, "wb") as f:
        f.write(data + b"\0")
    with pytest.raises(ValueError, match="trailing bytes"):
        read_ndarray_file(bad)
    with open(bad, "wb") as f:  # 1 name for 2 arrays
        f.write(data[:data.rindex(struct.pack("<Q", 2))] + struct.pack("<Q", 1) + b"")
    with pytest.raises(ValueError, match="bad.params"):
        read_ndarray_file(bad)
    with pytest.raises(ValueError, match="missing.params"):
        read_ndarray_file(tmp_path / "missing.params")


def test_params_suffix_is_the_mxnet_format():
    assert loading.file_format("/x/resnet_gcwf_noshare_imagenet_d18b4-0095.params") == "mxnet_params"


# --------------------------------------------------- IGC checkpoint loading


def test_genuine_mxnet_checkpoint_reproduces_mxnet_logits():
    """Authors' CIFAR network in real MXNet (random weights and BN statistics,
    inference mode) vs IGCV1CIFAR loaded from the same .params file."""
    io = np.load(os.path.join(DATA, "igc_cifar_l2m2_d8_io.npz"))
    model = kerasnets.IGCV1CIFAR(2, 2, 8, weights=os.path.join(DATA, "igc_cifar_l2m2_d8.params"),
                                 input_shape=(16, 16, 3), classifier_activation=None)
    logits = model.predict(io["images"].transpose(0, 2, 3, 1), verbose=0)
    ratio = assert_logits_close(logits, io["logits"], tol=1e-4)
    print(f"IGC L2M2 d8 vs MXNet 1.9.1: max diff / logit spread = {ratio:.2e}")
    headless = kerasnets.IGCV1CIFAR(2, 2, 8, weights=os.path.join(DATA, "igc_cifar_l2m2_d8.params"),
                                    include_top=False, pooling="avg", input_shape=(16, 16, 3))
    assert headless.output_shape == (None, 16)


def _to_mxnet(model, layer_map):
    """Keras weights -> {arg:/aux: MXNet name: array} in MXNet's layouts
    (conv (O, I/g, kh, kw), FC (out, in)), written out independently of the
    loader."""
    suffixes = {"gamma": "arg:{}_gamma", "beta": "arg:{}_beta",
                "moving_mean": "aux:{}_moving_mean", "moving_variance": "aux:{}_moving_var",
                "bias": "arg:{}_bias", "kernel": "arg:{}_weight"}
    params = {}
    for layer in model.layers:
        for variable in layer.weights:
            parts = variable.path.split("/")
            prefix = layer_map[layer.name]
            if isinstance(prefix, dict):
                prefix = prefix[parts[-2]]
            value = keras.ops.convert_to_numpy(variable)
            if isinstance(layer, keras.layers.DepthwiseConv2D):  # (kh, kw, C, 1) -> (C, 1, kh, kw)
                value = value.transpose(2, 3, 0, 1)
            elif parts[-1] == "kernel":
                value = value.T if value.ndim == 2 else value.transpose(3, 2, 0, 1)
            params[suffixes[parts[-1]].format(prefix)] = np.ascontiguousarray(value)
    return params


def _authors_layer_map(model):
    """The authors' names, spelled out here (not the package's map)."""
    mapping = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        if type(layer).__name__ == "InterleavedGroupConv":
            mapping[layer.name] = {"primary": layer.name + "_conv1", "secondary": layer.name + "_conv2"}
        else:
            mapping[layer.name] = "fc_score" if layer.name == "predictions" else layer.name
    return mapping


@pytest.mark.heavy
def test_full_imagenet_checkpoint_loads_into_igc_l4m32(tmp_path, monkeypatch):
    reference = kerasnets.IGC_L4M32(weights=None, input_shape=(64, 64, 3),
                                    classifier_activation=None)
    randomize_keras(reference, seed=1)
    params = _to_mxnet(reference, _authors_layer_map(reference))
    symbols = __import__("json").load(open(os.path.join(DATA, "igc_imagenet_symbols.json")))
    expected = {f"arg:{n}" for n in symbols["IGC_L4M32"]["params"]}
    expected |= {f"aux:{layer[1]}_{s}" for layer in symbols["IGC_L4M32"]["layers"]
                 if layer[0] == "BatchNorm" for s in ("moving_mean", "moving_var")}
    assert set(params) == expected  # exactly the released checkpoint's names
    path = write_params(tmp_path / "resnet_gcwf_noshare_imagenet_d18b4-0095.params", params)
    model = kerasnets.IGC_L4M32(weights=path, input_shape=(64, 64, 3), classifier_activation=None)
    images = np.random.default_rng(2).uniform(-2, 2, (2, 64, 64, 3)).astype("float32")
    ratio = assert_logits_close(model.predict(images, verbose=0),
                                reference.predict(images, verbose=0), tol=1e-5)
    assert ratio < 1e-5
    # weights="imagenet" (the registry entry, format mxnet_params) is served
    # through the download path in test_default_entries. Here: a file placed
    # by hand where the download goes that is not the publisher's (its git
    # blob id differs) is refused by name and left where it is.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    cache = tmp_path / "keras_home" / "models" / "kerasnets"
    cache.mkdir(parents=True)
    placed = cache / ("IGC_L4M32.imagenet." + os.path.basename(path))
    os.link(path, placed)
    with pytest.raises(ValueError, match="does not match its git blob id") as refused:
        kerasnets.IGC_L4M32(weights="imagenet", input_shape=(64, 64, 3),
                            classifier_activation=None)
    assert str(placed) in str(refused.value) and "Remove or replace" in str(refused.value)
    assert placed.exists()
    # include_top=False: the classifier's tensors may stay unused.
    headless = kerasnets.IGC_L4M32(weights=path, include_top=False, input_shape=(64, 64, 3))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(headless.get_layer("g4_b2_conv2").secondary.kernel),
        keras.ops.convert_to_numpy(reference.get_layer("g4_b2_conv2").secondary.kernel))


@pytest.mark.heavy
def test_igcv3_mxnet_checkpoint(tmp_path):
    """IGCV3 under the released symbol's names (depthwise (C, 1, 3, 3) kernels)."""
    reference = kerasnets.IGCV3(weights=None, input_shape=(64, 64, 3), classifier_activation=None)
    randomize_keras(reference, seed=2)
    from kerasnets.models.igc_v3 import mxnet_layer_map

    layer_map, _ = mxnet_layer_map(reference)
    path = write_params(tmp_path / "igcv3-0000.params", _to_mxnet(reference, layer_map))
    model = kerasnets.IGCV3(weights=path, input_shape=(64, 64, 3), classifier_activation=None)
    images = np.random.default_rng(4).uniform(-2, 2, (2, 64, 64, 3)).astype("float32")
    assert_logits_close(model.predict(images, verbose=0), reference.predict(images, verbose=0),
                        tol=1e-5)


def _small_checkpoint(tmp_path, model):
    return _to_mxnet(model, _authors_layer_map(model))


def test_wrong_checkpoints_are_rejected_naming_the_tensor(tmp_path):
    model = kerasnets.IGCV1CIFAR(2, 2, 8, residual=False, input_shape=(16, 16, 3))
    params = _small_checkpoint(tmp_path, model)

    def load(params, name):
        path = write_params(tmp_path / name, params)
        return kerasnets.IGCV1CIFAR(2, 2, 8, residual=False, weights=path, input_shape=(16, 16, 3))

    load(params, "ok.params")  # the plain network's authors' names load
    missing = dict(params)
    del missing["aux:g2_b1_bn_moving_var"]
    with pytest.raises(ValueError, match="missing.params' has no parameter 'g2_b1_bn_moving_var'"):
        load(missing, "missing.params")
    extra = dict(params, **{"arg:g9_conv_weight": np.zeros((1, 1, 1, 1), "float32")})
    with pytest.raises(ValueError, match="first 'g9_conv_weight'"):
        load(extra, "extra.params")
    wrong = dict(params)
    wrong["arg:g1_b1_conv2_weight"] = np.zeros((4, 4, 1, 1), "float32")  # dense, not 2 groups
    with pytest.raises(ValueError, match="'g1_b1_conv2_weight' \\(4, 4, 1, 1\\)"):
        load(wrong, "shape.params")
    with pytest.raises(ValueError, match="igc_l4m32"):  # another configuration
        kerasnets.IGC_L4M32(weights=write_params(tmp_path / "cifar.params", params),
                            input_shape=(64, 64, 3))
    with open(tmp_path / "trunc.params", "wb") as f:
        f.write(open(tmp_path / "ok.params", "rb").read()[:500])
    with pytest.raises(ValueError, match="trunc.params.*truncated or corrupt"):
        kerasnets.IGCV1CIFAR(2, 2, 8, residual=False, weights=str(tmp_path / "trunc.params"),
                             input_shape=(16, 16, 3))


def test_builders_without_an_mxnet_map_refuse_params_files(tmp_path):
    path = write_params(tmp_path / "x.params", {"arg:w": np.zeros(1, "float32")})
    with pytest.raises(ValueError, match="cannot read MXNet checkpoints"):
        kerasnets.IGCV2(weights=path, alpha=0.25, input_shape=(32, 32, 3))
