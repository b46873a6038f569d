"""Peak training memory and step time with and without ``memory_efficient``.

For each model and each setting of ``memory_efficient`` a fresh Python
process builds the model (random weights, 1000 classes), compiles it with
SGD + momentum and sparse cross-entropy (``jit_compile`` left at Keras'
"auto": XLA on a GPU, none on a CPU) and runs training steps on one random
batch with ``train_on_batch`` (graph mode, as ``model.fit``). It reports:

- peak: the allocator's peak bytes in use over the training steps
  (``tf.config.experimental.get_memory_info(device)["peak"]``; on a CPU the
  process runs with ``TF_CPU_ALLOCATOR_USE_BFC=true``, without which
  TensorFlow keeps no CPU allocator statistics). Weights, gradients and
  optimizer slots are included; "before" is the memory in use before the
  first step (the weights).
- peak RSS: the process' peak resident set size (``ru_maxrss``), which also
  counts TensorFlow itself, the traced graphs and the allocator's pools.
- step: median seconds per training step after ``--warmup`` steps (the first
  one traces the graph).

Each configuration runs in its own process so that peaks do not carry over.
Prints a markdown table with the ratios memory_efficient / default.

    python tools/bench_memory.py                            # DenseNet264, DPN131; batch 16, 160 px
    python tools/bench_memory.py --models DenseNet121 --steps 3 --image-size 64 --batch-size 4
    python tools/bench_memory.py --device GPU:0             # on a GPU machine
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MARKER = "BENCH_MEMORY_RESULT "


def measure(name, memory_efficient, batch, size, steps, warmup, device):
    """Runs in the child process; returns a dict of measurements."""
    import resource

    import keras
    import numpy as np
    import tensorflow as tf

    import kerasnets

    builder = getattr(kerasnets, name)
    model = builder(weights=None, input_shape=(size, size, 3), classes=1000,
                    memory_efficient=memory_efficient)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, 1000, (batch,))
    model.optimizer.build(model.trainable_variables)
    before = tf.config.experimental.get_memory_info(device)["current"]
    tf.config.experimental.reset_memory_stats(device)
    times = []
    for _ in range(warmup + steps):
        start = time.perf_counter()
        loss = model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    info = tf.config.experimental.get_memory_info(device)
    return {
        "model": name,
        "memory_efficient": memory_efficient,
        "before": before,
        "peak": info["peak"],
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "step": float(np.median(times[warmup:])),
        "first_step": times[0],
        "loss": float(loss),
    }


def run_child(args, name, memory_efficient):
    env = dict(os.environ)
    if args.device.upper().startswith("CPU"):
        env["TF_CPU_ALLOCATOR_USE_BFC"] = "true"
        env["CUDA_VISIBLE_DEVICES"] = ""
    command = [
        sys.executable, os.path.abspath(__file__), "--child",
        "--models", name, "--batch-size", str(args.batch_size),
        "--image-size", str(args.image_size), "--steps", str(args.steps),
        "--warmup", str(args.warmup), "--device", args.device,
    ]
    if memory_efficient:
        command.append("--memory-efficient")
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    raise RuntimeError(
        f"{name} (memory_efficient={memory_efficient}) failed:\n"
        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )


def mib(n):
    return f"{n / 2**20:,.0f}"


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["DenseNet264", "DPN131"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed first steps (the first traces the graph)")
    parser.add_argument("--device", default="CPU:0", help='"CPU:0" or "GPU:0"')
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory-efficient", action="store_true",
                        help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = measure(args.models[0], args.memory_efficient, args.batch_size,
                         args.image_size, args.steps, args.warmup, args.device)
        print(MARKER + json.dumps(result), flush=True)
        return

    print(f"# Training memory, batch {args.batch_size}, {args.image_size} px, "
          f"{args.device}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; median of {args.steps} steps after "
          f"{args.warmup} warm-up\n")
    print("| model | memory_efficient | before (MiB) | peak (MiB) | peak RSS (MiB) "
          "| step (s) | peak ratio | peak - before ratio | step ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        base = run_child(args, name, False)
        efficient = run_child(args, name, True)
        for r in (base, efficient):
            ratios = ""
            if r is efficient:
                ratios = (
                    f"{r['peak'] / base['peak']:.2f} | "
                    f"{(r['peak'] - r['before']) / (base['peak'] - base['before']):.2f} | "
                    f"{r['step'] / base['step']:.2f}"
                )
            else:
                ratios = " | | "
            print(f"| {name} | {r['memory_efficient']} | {mib(r['before'])} | "
                  f"{mib(r['peak'])} | {mib(r['peak_rss'])} | {r['step']:.2f} | "
                  f"{ratios} |", flush=True)


if __name__ == "__main__":
    main()
