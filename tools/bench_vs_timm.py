"""kerasnets vs timm on this machine: inference and training throughput.

For each model: inference at batch 8, 224 px, and an SGD training step at
batch 8, 160 px, in kerasnets (TensorFlow graph, no XLA) and in timm
(PyTorch eager), run alternately in one process so both see the same
machine state. Prints a markdown table of images/s and kerasnets/timm ratios.

    python tools/bench_vs_timm.py                      # DPN68, DPN92, SEResNeXt50_32x4d
    python tools/bench_vs_timm.py --models DPN68 --rounds 5 --threads 2
"""

import argparse
import os
import platform
import time

# torchvision (imported by timm) crashes when imported after TensorFlow.
import timm  # noqa: E402
import torch  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

import kerasnets  # noqa: E402

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


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["DPN68", "DPN92", "SEResNeXt50_32x4d"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--infer-size", type=int, default=224)
    parser.add_argument("--train-size", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--steps", type=int, default=3, help="timed calls per round")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)

    print(f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"{args.threads} threads, TF {tf.__version__}, Keras {keras.__version__}, "
          f"torch {torch.__version__}, timm {timm.__version__}; batch {args.batch}, "
          f"inference {args.infer_size} px, SGD training step {args.train_size} px; "
          "images/s (median of each round, best round)\n")
    print("| model | kerasnets infer | timm infer | ratio | kerasnets train | timm train | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        runners = {
            "kerasnets": keras_runners(name, args.batch, args.infer_size, args.train_size),
            "timm": timm_runners(name, args.batch, args.infer_size, args.train_size),
        }
        rates = {(lib, mode): 0.0 for lib in runners for mode in ("infer", "train")}
        for _ in range(args.rounds):
            for lib, (infer, train) in runners.items():
                for mode, fn in (("infer", infer), ("train", train)):
                    rates[lib, mode] = max(rates[lib, mode], best_rate(fn, args.batch, args.steps))
        ki, ti = rates["kerasnets", "infer"], rates["timm", "infer"]
        kt, tt = rates["kerasnets", "train"], rates["timm", "train"]
        print(f"| {name} | {ki:.1f} | {ti:.1f} | {ki / ti:.2f} | {kt:.1f} | {tt:.1f} | {kt / tt:.2f} |",
              flush=True)
        keras.backend.clear_session()


if __name__ == "__main__":
    main()
