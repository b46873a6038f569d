"""Training throughput: kerasnets (model.fit) vs timm (plain PyTorch loop),
and the input pipeline alone.

For each model: images/s of training steps at the given batch and size in
kerasnets (``training.build_model`` + ``compile_model`` + ``model.fit`` on
``kerasnets.data.synthetic``, the recipe of ``kerasnets train``) and in
timm (SGD, cross-entropy, random tensors, ``model.train()``). Then the
``kerasnets.data.load`` pipeline alone on a generated folder of JPEGs:
training (decode-and-crop, resize, flip) and evaluation (resize, center crop).
Prints a markdown table.

    python tools/bench_training.py                        # MobileNetV2, DPN68; 160 px, batch 32
    python tools/bench_training.py --models DPN68 --steps 20 --threads 2
    python tools/bench_training.py --image-size 32 --batch-size 4 --steps 2 --warmup 1 \\
        --pipeline-images 64                             # smoke run
"""

import argparse
import os
import platform
import shutil
import tempfile
import time

# torchvision (imported by timm) crashes when imported after TensorFlow.
try:
    import timm  # noqa: E402
    import torch  # noqa: E402
except ImportError:  # timm comparison skipped
    timm = torch = None

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402

TIMM_NAMES = {
    "MobileNetV2": "mobilenetv2_100",
    "DPN68": "dpn68",
    "DPN68b": "dpn68b",
    "DPN92": "dpn92",
    "DenseNet121": "densenet121",
    "MobileNetV3Large": "tf_mobilenetv3_large_100",
    "SEResNeXt50_32x4d": "legacy_seresnext50_32x4d",
}


def bench_kerasnets(name, batch, size, steps, warmup):
    import keras

    from kerasnets import data, training

    keras.backend.clear_session()
    model = training.build_model(name, 1000, size)
    training.compile_model(model, optimizer="sgd", lr=0.01, batch_size=batch,
                           total_steps=(warmup + steps) * 2)
    ds = data.synthetic(size, batch, num_classes=1000, steps=4,
                        preprocessing=data.preprocessing_for(name, None), one_hot=True)

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    timer = Timer()
    model.fit(ds, epochs=1, steps_per_epoch=warmup, verbose=0, shuffle=False)  # warm-up
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False,
              callbacks=[timer])
    return steps * batch / timer.seconds


def bench_timm(name, batch, size, steps, warmup):
    model = timm.create_model(TIMM_NAMES[name], pretrained=False, num_classes=1000)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    x = torch.rand(batch, 3, size, size)
    y = torch.randint(0, 1000, (batch,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def bench_pipeline(batch, size, images, repeats=2):
    """images/s of kerasnets.data.load over a folder of 320x240-ish JPEGs."""
    from PIL import Image

    from kerasnets import data

    root = tempfile.mkdtemp(prefix="kerasnets-bench-")
    try:
        rng = np.random.default_rng(0)
        for i in range(images):
            directory = os.path.join(root, f"class{i % 10}")
            os.makedirs(directory, exist_ok=True)
            h, w = 240 + 8 * (i % 5), 320 + 8 * (i % 7)
            pixels = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).resize((w, h), Image.BILINEAR).save(
                os.path.join(directory, f"{i}.jpg"), quality=90)
        results = {}
        for training in (True, False):
            ds = data.load(f"folder:{root}", "train", size, batch, training=training,
                           preprocessing="torch", seed=0, repeat=True)
            iterator = iter(ds)
            for _ in range(2):
                next(iterator)
            n_batches = max(1, repeats * images // batch)
            start = time.perf_counter()
            for _ in range(n_batches):
                next(iterator)
            results["train" if training else "eval"] = (
                n_batches * batch / (time.perf_counter() - start))
        return results
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["MobileNetV2", "DPN68"],
                        help="builders to train (none: the input pipeline only)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--pipeline-images", type=int, default=512)
    parser.add_argument("--skip-timm", action="store_true")
    args = parser.parse_args()

    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)
    use_timm = torch is not None and not args.skip_timm
    cpu = platform.processor() or platform.machine()
    print(f"# Training images/s, batch {args.batch_size}, {args.image_size} px, "
          f"{args.steps} steps after {args.warmup} warm-up; {cpu}, "
          f"{os.cpu_count()} cores, TF {tf.__version__}"
          + (f", torch {torch.__version__}, timm {timm.__version__}" if use_timm else ""))
    print()
    if args.models:
        print("| model | kerasnets img/s | timm img/s | kerasnets / timm |")
        print("|---|---|---|---|")
    for name in args.models:
        ours = bench_kerasnets(name, args.batch_size, args.image_size, args.steps, args.warmup)
        theirs = (bench_timm(name, args.batch_size, args.image_size, args.steps, args.warmup)
                  if use_timm and name in TIMM_NAMES else None)
        ratio = f"{ours / theirs:.2f}" if theirs else "-"
        print(f"| {name} | {ours:.1f} | {f'{theirs:.1f}' if theirs else '-'} | {ratio} |",
              flush=True)
    if args.pipeline_images:
        rates = bench_pipeline(args.batch_size, args.image_size, args.pipeline_images)
        print()
        print(f"Input pipeline alone (kerasnets.data.load, folder of JPEGs about 320x240, "
              f"{args.image_size} px, batch {args.batch_size}): "
              f"training {rates['train']:.0f} img/s, evaluation {rates['eval']:.0f} img/s")


if __name__ == "__main__":
    main()
