"""kerasnets vs timm on this machine: inference and training images/s.

For every family's main variants: the kerasnets builder and its timm
counterpart, inference (batch of random images, inference mode) and a
training step (SGD with Nesterov momentum and weight decay, label-smoothed
cross-entropy), each measured in its own fresh process: in one process
TensorFlow's thread pools slow PyTorch 10-50x, and importing torchvision
after TensorFlow crashes. Runs alternate (kerasnets, timm, kerasnets, timm,
...) so that both libraries see the same machine state; each cell is the
median of ``--repeats`` processes. Prints a markdown table with the date and
the machine, ready for the README.

- kerasnets: ``kerasnets.benchmark.benchmark`` (the code of ``kerasnets
  benchmark``): ``predict_on_batch`` / ``train_on_batch`` after the
  ``kerasnets train`` compile recipe, on the Keras backends of
  ``--backends`` (default TensorFlow), each in its usual mode: TensorFlow
  graph without XLA, JAX ``jax.jit`` (XLA), PyTorch eager.
- timm: PyTorch eager, ``torch.inference_mode()`` / ``model.train()`` with
  ``torch.optim.SGD(momentum=0.9, nesterov=True, weight_decay=5e-5)`` and
  ``CrossEntropyLoss(label_smoothing=0.1)``.
- images/s = batch x steps / time of the timed steps (after warm-up steps),
  each step waiting for its result; float32 in both.
- Fairness: both get the same intra-op thread count (``--threads``, default
  all cores available to this process): ``torch.set_num_threads`` and
  TensorFlow's ``intra_op_parallelism_threads``. ``--device cpu`` (default)
  hides GPUs from both (CUDA_VISIBLE_DEVICES=""); ``--device gpu`` runs both
  on the first GPU.

timm counterparts: the same architecture (and parameter count) for
DenseNet, MobileNet v1/v2/v3, SENet and DPN. timm has no IGC networks: IGCV3
is compared with pytorchcv's igcv3_w1 (the same network: kerasnets' IGCV3
parity tests use it as their reference; "pytorchcv:" names) and IGC_L4M32
with a PyTorch IGC-L4M32 written for this comparison (tools/torch_peers.py,
the same layout and parameter count; "torch:" names).

    python tools/bench_vs_timm.py                          # all main variants, 224 px, batch 8
    python tools/bench_vs_timm.py --models DPN68 DPN92 --repeats 5 --threads 2
    python tools/bench_vs_timm.py --train-image-size 160   # training at 160 px
    python tools/bench_vs_timm.py --quick --models MobileNet   # smoke run: 64 px, batch 2
    python tools/bench_vs_timm.py --backends tensorflow jax torch  # which Keras backend

Workers are ordinary children in this script's process group (killing the
group, or Ctrl-C, ends them too); each has a --timeout.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# kerasnets builder: (timm model, how it relates).
PEERS = {
    "DenseNet121": ("densenet121", "same"),
    "MobileNet": ("mobilenetv1_100", "same"),
    "MobileNetV2": ("mobilenetv2_100", "same"),
    "MobileNetV3Large": ("tf_mobilenetv3_large_100", "same"),
    "SEResNet50": ("legacy_seresnet50", "same"),
    "SEResNeXt50_32x4d": ("legacy_seresnext50_32x4d", "same"),
    "DPN68": ("dpn68", "same"),
    "DPN92": ("dpn92", "same"),
    "IGCV3": ("pytorchcv:igcv3_w1", "same"),
    "IGC_L4M32": ("torch:igc_l4m32", "same"),
    # more, with --models
    "DenseNet161": ("densenet161", "same"),
    "DenseNet169": ("densenet169", "same"),
    "DenseNet201": ("densenet201", "same"),
    "MobileNetV3Small": ("tf_mobilenetv3_small_100", "same"),
    "SEResNet18": ("legacy_seresnet18", "same"),
    "SEResNet34": ("legacy_seresnet34", "same"),
    "SEResNet101": ("legacy_seresnet101", "same"),
    "SEResNet152": ("legacy_seresnet152", "same"),
    "SEResNeXt26_32x4d": ("legacy_seresnext26_32x4d", "same"),
    "SEResNeXt101_32x4d": ("legacy_seresnext101_32x4d", "same"),
    "SENet154": ("legacy_senet154", "same"),
    "DPN68b": ("dpn68b", "same"),
    "DPN98": ("dpn98", "same"),
    "DPN107": ("dpn107", "same"),
    "DPN131": ("dpn131", "same"),
}
DEFAULT_MODELS = ["DenseNet121", "MobileNet", "MobileNetV2", "MobileNetV3Large", "SEResNet50",
                  "SEResNeXt50_32x4d", "DPN68", "DPN92", "IGCV3", "IGC_L4M32"]
LIBRARIES = ("kerasnets", "timm")


def create_peer(name):
    """The PyTorch counterpart, randomly initialised: timm's model ``name``,
    pytorchcv's for ``"pytorchcv:NAME"``, tools/torch_peers.py's for
    ``"torch:NAME"``."""
    if name.startswith("torch:"):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import torch_peers

        return torch_peers.MODELS[name.split(":", 1)[1]]()
    if name.startswith("pytorchcv:"):
        import torch
        from pytorchcv.model_provider import get_model

        model = get_model(name.split(":", 1)[1], pretrained=False)
        # pytorchcv pools with a fixed 7x7 window (224 px only); global
        # average pooling is the same there and works at any size.
        if isinstance(getattr(model.features, "final_pool", None), torch.nn.AvgPool2d):
            model.features.final_pool = torch.nn.AdaptiveAvgPool2d(1)
        return model
    import timm

    return timm.create_model(name, pretrained=False, num_classes=1000)
MODES = ("infer", "train")
BACKENDS = ("tensorflow", "jax", "torch")  # Keras backends kerasnets can run on
BACKEND_LABELS = {"tensorflow": "TF", "jax": "JAX", "torch": "PyTorch"}
# Each backend's usual mode: XLA for JAX (eager JAX runs op by op), none for
# TensorFlow (its graph; XLA is slower on CPUs) and PyTorch (eager).
JIT_COMPILE = {"tensorflow": False, "jax": True, "torch": False}
QUICK = dict(batch_size=2, image_size=64, steps=2, warmup=1, repeats=1)
FULL = dict(batch_size=8, image_size=224, steps=10, warmup=3, repeats=3)


# ---------------------------------------------------------------- workers


def kerasnets_worker(args):
    """kerasnets on the Keras backend of this process (KERAS_BACKEND, set by
    ``measure``), in that backend's usual mode (``JIT_COMPILE``)."""
    sys.path.insert(0, ROOT)
    import kerasnets  # noqa: F401  (first: its oneDNN default applies)
    import keras

    from kerasnets import benchmark

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    elif backend == "torch":
        import torch

        torch.set_num_threads(args.threads)
    # JAX: the CPU affinity set by worker() bounds XLA's thread pool.
    result = benchmark.benchmark(args.model, args.mode, batch_size=args.batch_size,
                                 image_size=args.image_size, steps=args.steps,
                                 warmup=args.warmup, jit_compile=JIT_COMPILE[backend])
    return {"images_per_second": result.images_per_second,
            "latency_p50_ms": result.latency_p50_ms, "device": result.device_name,
            "version": f"{BACKEND_LABELS[backend]} {result.backend_version}"}


def timm_worker(args):
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    cuda = args.device == "gpu"
    device = torch.device("cuda" if cuda else "cpu")
    model = create_peer(PEERS[args.model][0])
    model.to(device)
    size, batch = args.image_size, args.batch_size
    x = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    y = torch.randint(0, 1000, (batch,), device=device)
    if args.mode == "train":
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                                    nesterov=True, weight_decay=5e-5)
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            return loss.item()  # waits for the step
    else:
        model.eval()

        def step():
            with torch.inference_mode():
                out = model(x)
            if cuda:
                torch.cuda.synchronize()
            return out

    for _ in range(max(1, args.warmup)):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"images_per_second": batch * args.steps / float(np.sum(times)),
            "latency_p50_ms": 1000 * float(np.median(times)),
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "version": f"torch {torch.__version__}"}


def worker(args):
    """One measurement in this process: prints one JSON line."""
    if args.threads < available_cores() and hasattr(os, "sched_setaffinity"):
        # JAX has no thread-count setting: bound every library by CPU affinity.
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.threads])
    result = (timm_worker if args.worker == "timm" else kerasnets_worker)(args)
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------- driver


def worker_env(args, lib="timm"):
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if lib.startswith("kerasnets:"):
        env["KERAS_BACKEND"] = lib.split(":", 1)[1]
    if args.device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    # Also the thread count of the OpenMP / MKL pools both libraries use.
    env["OMP_NUM_THREADS"] = str(args.threads)
    return env


def measure(lib, model, mode, size, args):
    """images/s of one fresh worker process, or None (the error goes to stderr).
    ``lib`` is "timm" or "kerasnets:BACKEND"."""
    command = [
        sys.executable, os.path.abspath(__file__), "--worker", lib.split(":", 1)[0],
        "--model", model,
        "--mode", mode, "--batch-size", str(args.batch_size), "--image-size", str(size),
        "--steps", str(args.steps), "--warmup", str(args.warmup),
        "--threads", str(args.threads), "--device", args.device,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              env=worker_env(args, lib),
                              timeout=args.timeout, cwd=ROOT, check=False)
    except subprocess.TimeoutExpired:
        print(f"  {lib} {model} {mode}: no result within {args.timeout} s", file=sys.stderr)
        return None
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
    print(f"  {lib} {model} {mode} failed (exit {done.returncode}):\n{tail}", file=sys.stderr)
    return None


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def versions():
    from importlib import metadata

    parts = []
    for label, dist in (("TF", "tensorflow"), ("JAX", "jax"), ("Keras", "keras"),
                        ("torch", "torch"), ("timm", "timm")):
        try:
            parts.append(f"{label} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{label} (not installed)")
    return ", ".join(parts)


def gpu_name():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=False).stdout
        return out.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "GPU"


def header(args):
    if args.device == "gpu":
        machine = f"{gpu_name()} (host: {_cpu_name()})"
    else:
        machine = f"{_cpu_name()}, {available_cores()} cores"
    sizes = (f"{args.image_size} px" if args.train_image_size == args.image_size else
             f"inference {args.image_size} px, training {args.train_image_size} px")
    processes = "process" if args.repeats == 1 else "processes"
    return (f"Measured {time.strftime('%Y-%m-%d')} on {machine} ({platform.system()}); "
            f"{versions()}.\n\n"
            f"{args.device.upper()}, float32, batch {args.batch_size}, {sizes}; "
            f"{args.threads} intra-op threads in both libraries (torch.set_num_threads, "
            f"TF intra_op_parallelism_threads{', JAX: CPU affinity' if 'jax' in args.backends else ''}). "
            f"images/s: median of {args.repeats} fresh "
            f"{processes} per cell, each {args.steps} timed steps after {args.warmup} "
            f"warm-up; kerasnets and timm runs alternate. kerasnets (`kerasnets benchmark`) "
            f"on {', '.join(BACKEND_DESCRIPTIONS[b] for b in args.backends)}; timm: PyTorch "
            "eager. Training step: SGD (Nesterov momentum, weight decay), label-smoothed "
            "cross-entropy.")


BACKEND_DESCRIPTIONS = {"tensorflow": "TF graph without XLA", "jax": "JAX with jax.jit (XLA)",
                        "torch": "PyTorch eager (Keras' torch backend)"}


def cell(value):
    return "failed" if value is None else f"{value:.1f}"


def warn_if_busy(args):
    """A busy machine makes the numbers meaningless (torch's OpenMP threads
    suffer most: 20x slower with 2 threads at load 7 on 2 cores)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return
    if args.device == "cpu" and load > 0.5 * available_cores():
        print(f"warning: load average {load:.1f} on {available_cores()} cores: other work "
              "is running, and these numbers will not be reliable (torch least of all)",
              file=sys.stderr, flush=True)


def run(args):
    warn_if_busy(args)
    print(header(args))
    print()
    several = len(args.backends) > 1
    libs = [f"kerasnets:{b}" for b in args.backends] + ["timm"]
    if several:
        columns = " | ".join(f"{BACKEND_LABELS[b]} img/s" for b in args.backends)
        print(f"| model | timm model | mode | batch | size | {columns} | timm img/s | "
              "fastest backend |")
        print("|---|---|---|---:|---:|" + "---:|" * (len(args.backends) + 1) + "---|")
    else:
        print("| model | timm model | mode | batch | size | kerasnets img/s | timm img/s | "
              "ratio |")
        print("|---|---|---|---:|---:|---:|---:|---:|")
    sys.stdout.flush()
    for model in args.models:
        peer, relation = PEERS[model]
        peer_text = peer if relation == "same" else f"{peer} (closest)"
        for mode in args.modes:
            size = args.image_size if mode == "infer" else args.train_image_size
            rates = {lib: [] for lib in libs}
            for round_ in range(args.repeats):
                for lib in libs:
                    print(f"  [{model} {mode} round {round_ + 1}/{args.repeats}] {lib}",
                          file=sys.stderr, flush=True)
                    result = measure(lib, model, mode, size, args)
                    if result is not None:
                        rates[lib].append(result["images_per_second"])
            medians = {lib: statistics.median(rates[lib]) if rates[lib] else None
                       for lib in libs}
            theirs = medians["timm"]
            if several:
                ours = {b: medians[f"kerasnets:{b}"] for b in args.backends}
                measured = {b: v for b, v in ours.items() if v}
                fastest = max(measured, key=measured.get) if measured else None
                best = (f"{BACKEND_LABELS[fastest]}"
                        + (f" ({measured[fastest] / theirs:.2f}x timm)" if theirs else "")
                        if fastest else "-")
                cells = " | ".join(cell(ours[b]) for b in args.backends)
                print(f"| {model} | {peer_text} | {mode} | {args.batch_size} | {size} | "
                      f"{cells} | {cell(theirs)} | {best} |", flush=True)
            else:
                ours = medians[libs[0]]
                ratio = f"{ours / theirs:.2f}" if ours and theirs else "-"
                print(f"| {model} | {peer_text} | {mode} | {args.batch_size} | {size} | "
                      f"{cell(ours)} | {cell(theirs)} | {ratio} |", flush=True)
    print()
    if several:
        print("fastest backend: the Keras backend with the most images/s for kerasnets "
              "(in brackets: its images/s over timm's).", flush=True)
    else:
        print("ratio = kerasnets / timm (above 1: kerasnets is faster).", flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                        help=f"kerasnets builders (default: {' '.join(DEFAULT_MODELS)}; "
                             f"known: {' '.join(PEERS)})")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"default {FULL['batch_size']} ({QUICK['batch_size']} with --quick)")
    parser.add_argument("--image-size", type=int, default=None,
                        help=f"default {FULL['image_size']} ({QUICK['image_size']} with --quick)")
    parser.add_argument("--train-image-size", type=int, default=None,
                        help="training image size (default: --image-size)")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"processes per cell and library, alternating (default "
                             f"{FULL['repeats']}, {QUICK['repeats']} with --quick)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"timed steps per process (default {FULL['steps']})")
    parser.add_argument("--warmup", type=int, default=None,
                        help=f"untimed steps first (default {FULL['warmup']})")
    parser.add_argument("--threads", type=int, default=available_cores(),
                        help="intra-op threads of both libraries (default: all cores)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=["tensorflow"],
                        help="Keras backends to run kerasnets on (default tensorflow; "
                             "several: one column each)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds per worker process")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 64 px, batch 2, 2 steps, 1 repeat (numbers "
                             "meaningless)")
    parser.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.train_image_size is None:
        args.train_image_size = args.image_size
    if args.worker is None:
        args.models = args.models or DEFAULT_MODELS
        unknown = [m for m in args.models if m not in PEERS]
        if unknown:
            parser.error(f"no timm counterpart for {', '.join(unknown)}; "
                         f"known: {', '.join(PEERS)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    try:
        run(args)
    except KeyboardInterrupt:  # subprocess.run has ended the running worker
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
