"""Benchmark GroupConv2D against stock keras Conv2D(groups) (forward and
forward+backward), in graph mode, on this machine.

    python tools/bench_group_conv.py [--batch 8 --size 56 --channels 256 --groups 32]
    TF_ENABLE_ONEDNN_OPTS=0 python tools/bench_group_conv.py   # TensorFlow's Eigen kernels
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import kerasnets  # noqa: E402, F401  (first: its oneDNN default applies)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.util import _pywrap_util_port  # noqa: E402

from kerasnets.layers import GroupConv2D  # noqa: E402


def timed(fn, x, repeats):
    fn(x)  # trace / compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(x)
        np.asarray(out[0] if isinstance(out, (list, tuple)) else out)
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=56)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--groups", type=int, nargs="+", default=[32, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stock-backward-repeats", type=int, default=1)
    args = parser.parse_args()
    x = tf.constant(
        np.random.default_rng(0)
        .normal(size=(args.batch, args.size, args.size, args.channels))
        .astype("float32")
    )
    onednn = "on" if _pywrap_util_port.IsMklEnabled() else "off"
    print(f"input {tuple(x.shape)}, 3x3 conv, {args.channels} filters, oneDNN {onednn}, "
          "ms (best of runs)")
    print("| groups | layer | forward | forward+backward |")
    print("|---|---|---|---|")
    for groups in args.groups:
        for cls in (GroupConv2D, keras.layers.Conv2D):
            layer = cls(args.channels, 3, groups=groups, padding="same", use_bias=False)
            layer.build(x.shape)

            @tf.function
            def forward(x):
                return layer(x)

            @tf.function
            def backward(x):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    loss = tf.reduce_sum(layer(x))
                return tape.gradient(loss, [x, layer.kernel])

            stock = cls is keras.layers.Conv2D
            fwd = timed(forward, x, args.repeats)
            bwd = timed(backward, x, args.stock_backward_repeats if stock else args.repeats)
            print(f"| {groups} | {cls.__name__} | {fwd:.1f} | {bwd:.1f} |")


if __name__ == "__main__":
    main()
