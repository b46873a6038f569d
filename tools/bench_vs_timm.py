"""kerasnets vs timm on this machine: inference and training throughput.

For each model: inference at batch 8, 224 px, and an SGD training step at
batch 8, 160 px, in kerasnets (TensorFlow graph, no XLA) and in timm
(PyTorch eager). Each measurement runs in its own short-lived process (in one
process TensorFlow's thread pools slow PyTorch 10-50x), and the two libraries
alternate round by round so both see the same machine state. Prints a
markdown table of images/s and kerasnets/timm ratios.

    python tools/bench_vs_timm.py                      # DPN68, DPN92, SEResNeXt50_32x4d
    python tools/bench_vs_timm.py --models DPN68 --rounds 5 --threads 2
"""

import argparse
import os
import platform
import time

import subprocess
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TIMM_NAMES = {
    "DPN68": "dpn68",
    "DPN68b": "dpn68b",
    "DPN92": "dpn92",
    "DPN98": "dpn98",
    "DPN131": "dpn131",
    "DPN107": "dpn107",
    "SEResNet50": "legacy_seresnet50",
    "SEResNeXt50_32x4d": "legacy_seresnext50_32x4d",
    "SEResNeXt101_32x4d": "legacy_seresnext101_32x4d",
    "SENet154": "legacy_senet154",
    "DenseNet121": "densenet121",
    "DenseNet161": "densenet161",
    "MobileNetV2": "mobilenetv2_100",
    "MobileNetV3Large": "tf_mobilenetv3_large_100",
    "MobileNetV3Small": "tf_mobilenetv3_small_100",
}


def keras_runners(name, batch, infer_size, train_size):
    import kerasnets  # before TensorFlow: turns on its oneDNN kernels
    import keras
    import tensorflow as tf

    builder = getattr(kerasnets, name)
    infer_model = builder(weights=None, input_shape=(infer_size, infer_size, 3))
    train_model = builder(weights=None, input_shape=(train_size, train_size, 3),
                          classifier_activation=None)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    x_infer = tf.random.uniform((batch, infer_size, infer_size, 3))
    x_train = tf.random.uniform((batch, train_size, train_size, 3))
    y_train = tf.random.uniform((batch,), maxval=1000, dtype=tf.int32)

    @tf.function(jit_compile=False)
    def infer(x):
        return infer_model(x, training=False)

    @tf.function(jit_compile=False)
    def train(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, train_model(x, training=True))
        grads = tape.gradient(loss, train_model.trainable_variables)
        optimizer.apply(grads, train_model.trainable_variables)
        return loss

    return (lambda: infer(x_infer).numpy()), (lambda: train(x_train, y_train).numpy())


def timm_runners(name, batch, infer_size, train_size):
    import timm
    import torch

    infer_model = timm.create_model(TIMM_NAMES[name], pretrained=False).eval()
    train_model = timm.create_model(TIMM_NAMES[name], pretrained=False).train()
    optimizer = torch.optim.SGD(train_model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    x_infer = torch.rand(batch, 3, infer_size, infer_size)
    x_train = torch.rand(batch, 3, train_size, train_size)
    y_train = torch.randint(0, 1000, (batch,))

    def infer():
        with torch.inference_mode():
            return infer_model(x_infer)

    def train():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(train_model(x_train), y_train)
        loss.backward()
        optimizer.step()
        return loss.item()

    return infer, train


def best_rate(fn, batch, steps):
    """Images/s of the best of ``steps`` timed calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return batch / float(np.median(times))


def worker(args):
    """One measurement in this process: prints images/s."""
    if args.worker == "timm":
        import torch

        torch.set_num_threads(args.threads)
        runners = timm_runners
    else:
        import kerasnets  # noqa: F401
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        runners = keras_runners
    infer, train = runners(args.models[0], args.batch, args.infer_size, args.train_size)
    fn = infer if args.mode == "infer" else train
    print(best_rate(fn, args.batch, args.steps))


def measure(lib, name, mode, args):
    command = [
        sys.executable, __file__, "--worker", lib, "--mode", mode, "--models", name,
        "--batch", str(args.batch), "--infer-size", str(args.infer_size),
        "--train-size", str(args.train_size), "--steps", str(args.steps),
        "--threads", str(args.threads),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def versions():
    code = ("import torch, timm, tensorflow as tf, keras; "
            "print(f'TF {tf.__version__}, Keras {keras.__version__}, "
            "torch {torch.__version__}, timm {timm.__version__}')")
    return subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True).stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["DPN68", "DPN92", "SEResNeXt50_32x4d"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--infer-size", type=int, default=224)
    parser.add_argument("--train-size", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--steps", type=int, default=5, help="timed calls per measurement")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--worker", choices=["kerasnets", "timm"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["infer", "train"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    print(f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, {args.threads} threads, {versions()}; batch {args.batch}, "
          f"inference {args.infer_size} px, SGD training step {args.train_size} px; "
          "images/s (median of each measurement, best of the rounds)\n")
    print("| model | kerasnets infer | timm infer | ratio | kerasnets train | timm train | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        rates = {}
        for _ in range(args.rounds):
            for lib in ("kerasnets", "timm"):
                for mode in ("infer", "train"):
                    rate = measure(lib, name, mode, args)
                    rates[lib, mode] = max(rates.get((lib, mode), 0.0), rate)
        ki, ti = rates["kerasnets", "infer"], rates["timm", "infer"]
        kt, tt = rates["kerasnets", "train"], rates["timm", "train"]
        print(f"| {name} | {ki:.1f} | {ti:.1f} | {ki / ti:.2f} | {kt:.1f} | {tt:.1f} | {kt / tt:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
