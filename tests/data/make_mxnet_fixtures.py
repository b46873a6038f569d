"""Writes the MXNet fixtures of tests/weights/test_mxnet.py with real MXNet.

Not run by the test suite (CI never needs mxnet). To regenerate:

    python -m venv /tmp/mxvenv
    /tmp/mxvenv/bin/pip install "numpy<1.24" mxnet==1.9.1
    /tmp/mxvenv/bin/python tests/data/make_mxnet_fixtures.py

Files:
- igc_cifar_l2m2_d8.params: ``mx.nd.save`` of a checkpoint (arg:/aux:
  names) of the authors' CIFAR network ``network/resnet_igc.py`` with L=2,
  M=2, depth 8, 10 classes, random weights and BN statistics;
- igc_cifar_l2m2_d8_io.npz: an input batch (NCHW, 16x16) and the logits
  MXNet computes for it (inference mode);
- igc_cifar_l2m2_d8_calibrated.params / _io64.npz: the same network with
  BN statistics calibrated in MXNet (200 training-mode passes on a batch,
  momentum 0.9: the moving statistics become the batch statistics; random
  gamma/beta), and the logits MXNet computes in float64 for another batch
  (the float32 checkpoint's values, cast): the float64 parity reference of
  tests/models/test_float64_parity.py;
- mxnet_misc.params: arrays of several dtypes and storage types
  (float16, int64, uint8, row_sparse, csr);
- mxnet_np_shape.params: version-3 arrays (NumPy shape semantics: a scalar,
  a 0-size array, float64).

The authors' ``Reorder`` operator is not in stock MXNet; its forward pass
(src/reorder-inl.h, branch factor B on C channels: out[b*B + a] =
in[a*(C/B) + b]) is written here with reshape / swapaxes / reshape.
"""

import os

import mxnet as mx
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def reorder(data, branch_factor):
    data = mx.sym.reshape(data, shape=(0, -4, branch_factor, -1, -2))
    data = mx.sym.swapaxes(data, 1, 2)
    return mx.sym.reshape(data, shape=(0, -3, -2))


# The authors' resnet_igc.py, with Python 3 integer division.
def get_conv(name, data, kout, kernel, stride, pad, num_group, relu=True):
    data = mx.sym.Convolution(name=name + "_conv", data=data, num_filter=kout, kernel=kernel,
                              stride=stride, pad=pad, no_bias=True, num_group=num_group)
    data = mx.sym.BatchNorm(name=name + "_bn", data=data, fix_gamma=False, momentum=0.9, eps=2e-5)
    if relu:
        data = mx.sym.Activation(name=name + "_relu", data=data, act_type="relu")
    return data


def get_igc(name, data, kout, kernel, stride, pad, primary, secondary, relu=True):
    data = mx.sym.Convolution(name=name + "_conv1", data=data, num_filter=kout, kernel=kernel,
                              stride=stride, pad=pad, no_bias=True, num_group=primary)
    data = reorder(data, primary)
    data = mx.sym.Convolution(name=name + "_conv2", data=data, num_filter=kout, kernel=(1, 1),
                              stride=(1, 1), pad=(0, 0), no_bias=True, num_group=secondary)
    data = reorder(data, secondary)
    data = mx.sym.BatchNorm(name=name + "_bn", data=data, fix_gamma=False, momentum=0.9, eps=2e-5)
    if relu:
        data = mx.sym.Activation(name=name + "_relu", data=data, act_type="relu")
    return data


def get_fusion(name, data, kin, kout, primary):
    shortcut = data
    if kin != kout:
        shortcut = get_conv(name + "_p0_line", data, kout, (1, 1), (2, 2), (0, 0), primary,
                            relu=False)
    stride = (1, 1) if kin == kout else (2, 2)
    two = get_igc(name + "_p2_two1", data, kout, (3, 3), stride, (1, 1), primary, kin // primary)
    two = get_igc(name + "_p2_two2", two, kout, (3, 3), (1, 1), (1, 1), primary, kout // primary,
                  relu=False)
    return mx.sym.Activation(name=name + "_relu", data=shortcut + two, act_type="relu")


def get_symbol(num_classes, depth, L, M):
    blocks = (depth - 2) // 6
    C = L * M
    widths = [C, C, 2 * C, 4 * C]
    data = mx.sym.Variable("data")
    data = get_conv("g0", data, C, (3, 3), (1, 1), (1, 1), 1)
    for stage in range(1, 4):
        kin = widths[stage - 1]
        for b in range(blocks):
            data = get_fusion(f"g{stage}_b{b + 1}", data, kin, widths[stage], L)
            kin = widths[stage]
    data = mx.sym.Pooling(name="pool", data=data, kernel=(8, 8), pool_type="avg", global_pool=True)
    data = mx.sym.Flatten(name="flatten", data=data)
    return mx.sym.FullyConnected(name="fc", data=data, num_hidden=num_classes)


def igc_fixture():
    rng = np.random.default_rng(0)
    sym = get_symbol(10, 8, 2, 2)
    shape = (2, 3, 16, 16)
    arg_shapes, _, aux_shapes = sym.infer_shape(data=shape)
    args, auxs = {}, {}
    for name, s in zip(sym.list_arguments(), arg_shapes):
        if name == "data":
            continue
        if name.endswith("_gamma"):
            value = rng.uniform(0.5, 1.5, s)
        elif name.endswith(("_beta", "_bias")):
            value = rng.normal(0.0, 0.2, s)
        else:
            fan_in = int(np.prod(s[1:]))
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), s)
        args[name] = mx.nd.array(value, dtype="float32")
    for name, s in zip(sym.list_auxiliary_states(), aux_shapes):
        value = rng.uniform(0.5, 1.5, s) if name.endswith("_var") else rng.normal(0, 0.2, s)
        auxs[name] = mx.nd.array(value, dtype="float32")
    images = rng.uniform(-1, 1, shape).astype("float32")
    executor = sym.bind(mx.cpu(), {"data": mx.nd.array(images), **args}, aux_states=auxs,
                        grad_req="null")
    logits = executor.forward(is_train=False)[0].asnumpy()
    save = {f"arg:{k}": v for k, v in args.items()}
    save.update({f"aux:{k}": v for k, v in auxs.items()})
    mx.nd.save(os.path.join(HERE, "igc_cifar_l2m2_d8.params"), save)
    np.savez(os.path.join(HERE, "igc_cifar_l2m2_d8_io.npz"), images=images, logits=logits)


def igc_calibrated_float64_fixture():
    rng = np.random.default_rng(1)
    sym = get_symbol(10, 8, 2, 2)
    shape = (4, 3, 16, 16)
    arg_shapes, _, aux_shapes = sym.infer_shape(data=shape)
    args, auxs = {}, {}
    for name, s in zip(sym.list_arguments(), arg_shapes):
        if name == "data":
            continue
        if name.endswith("_gamma"):
            value = rng.uniform(0.5, 1.5, s)
        elif name.endswith(("_beta", "_bias")):
            value = rng.normal(0.0, 0.2, s)
        else:
            value = rng.normal(0.0, np.sqrt(2.0 / int(np.prod(s[1:]))), s)
        args[name] = mx.nd.array(value, dtype="float32")
    for name, s in zip(sym.list_auxiliary_states(), aux_shapes):
        auxs[name] = mx.nd.array(np.ones(s) if name.endswith("_var") else np.zeros(s),
                                 dtype="float32")
    calibration = rng.uniform(-1, 1, shape).astype("float32")
    executor = sym.bind(mx.cpu(), {"data": mx.nd.array(calibration), **args},
                        aux_states=auxs, grad_req="null")
    for _ in range(200):
        executor.forward(is_train=True)
    auxs = {k: v.copyto(mx.cpu()) for k, v in executor.aux_dict.items()}
    save = {f"arg:{k}": v for k, v in args.items()}
    save.update({f"aux:{k}": v for k, v in auxs.items()})
    mx.nd.save(os.path.join(HERE, "igc_cifar_l2m2_d8_calibrated.params"), save)

    images = rng.uniform(-1, 1, (3, 3, 16, 16))
    as64 = {k: v.astype("float64") for k, v in args.items()}
    executor = sym.bind(mx.cpu(), {"data": mx.nd.array(images, dtype="float64"), **as64},
                        aux_states={k: v.astype("float64") for k, v in auxs.items()},
                        grad_req="null")
    logits = executor.forward(is_train=False)[0]
    assert logits.dtype == np.float64
    np.savez(os.path.join(HERE, "igc_cifar_l2m2_d8_io64.npz"), images=images,
             logits=logits.asnumpy())


def misc_fixture():
    arrays = {
        "float16": mx.nd.array([[1.5, -2.25, 65504.0]], dtype="float16"),
        "int64": mx.nd.array([0, -1, 2 ** 40], dtype="int64"),
        "uint8": mx.nd.array(np.arange(6).reshape(1, 2, 3), dtype="uint8"),
        "row_sparse": mx.nd.sparse.row_sparse_array(
            (np.array([[1.0, 2.0], [3.0, 4.0]], "float32"), [0, 2]), shape=(4, 2)),
        "csr": mx.nd.sparse.csr_matrix(
            (np.array([5.0, 6.0, 7.0], "float32"), np.array([1, 0, 2]), np.array([0, 1, 1, 3])),
            shape=(3, 3)),
    }
    mx.nd.save(os.path.join(HERE, "mxnet_misc.params"), arrays)
    # NumPy shape semantics: version-3 arrays, where () is a scalar and 0 a size.
    with mx.util.np_shape(True):
        arrays = {
            "scalar": mx.nd.array(np.array(2.5, "float32")),
            "empty": mx.nd.zeros((0, 4)),
            "matrix": mx.nd.array(np.arange(6, dtype="float64").reshape(2, 3), dtype="float64"),
        }
        mx.nd.save(os.path.join(HERE, "mxnet_np_shape.params"), arrays)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--float64"]:  # only the calibrated float64 fixture
        igc_calibrated_float64_fixture()
    else:
        igc_fixture()
        igc_calibrated_float64_fixture()
        misc_fixture()
