"""Training speed of kerasnets' timm counterparts on the GPU: the timm side
of ``tools/gpu_check.sh``.

One kerasnets builder name a run; its timm counterpart comes from
``tools/bench_vs_timm.py``'s ``PEERS`` table (one table for both scripts;
note that it maps SEResNeXt50_32x4d to ``legacy_seresnext50_32x4d``, the
architecture kerasnets ports, not timm's ResNet-based ``seresnext50_32x4d``).
The model has random weights (``pretrained=False``) and a 1000-class top,
and trains as ``kerasnets benchmark --mode train --mixed-precision`` does:

- PyTorch eager (no ``torch.compile``), ``channels_last``;
- ``torch.autocast`` float16 with a ``GradScaler`` on the GPU;
- SGD with Nesterov momentum 0.9, weight decay 5e-5, learning rate
  0.1 x batch / 256, ``CrossEntropyLoss(label_smoothing=0.1)``;
- random images in [-1, 1) and random labels, already on the device;
- ``warmup`` untimed steps, then ``steps`` timed steps, each between two
  ``torch.cuda.synchronize()``: images/s = batch x steps / their time.

Prints one JSON line (fields as ``kerasnets benchmark --json`` where they
mean the same) with images/s, latencies and the peak memory
(``torch.cuda.max_memory_allocated``, reset before building the model).
Without a GPU it stops (exit 3) unless ``--allow-cpu`` (or ALLOW_CPU=1):
then it runs on the CPU in float32, without autocast, to test the script.

    python tools/gpu_timm.py --model DPN92 --batch-size 64 --image-size 224
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vs_timm import PEERS, create_peer  # imports only the standard library (no TensorFlow)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, choices=sorted(PEERS),
                        help="kerasnets builder name; its timm counterpart is trained")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--allow-cpu", action="store_true",
                        default=bool(os.environ.get("ALLOW_CPU")),
                        help="without a GPU, run on the CPU in float32 (to test the script)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.image_size < 1:
        parser.error("--steps, --batch-size and --image-size must be at least 1")
    args.warmup = max(1, args.warmup)
    return args


def measure(args):
    import numpy as np
    import timm
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print("gpu_timm: PyTorch sees no GPU (pass --allow-cpu to run on the CPU)",
              file=sys.stderr)
        raise SystemExit(3)
    device = torch.device("cuda" if cuda else "cpu")
    peer, relation = PEERS[args.model]
    torch.manual_seed(args.seed)
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats()

    start = time.perf_counter()
    model = create_peer(peer)
    model = model.to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1 * args.batch_size / 256,
                                momentum=0.9, nesterov=True, weight_decay=5e-5)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    shape = (args.batch_size, 3, args.image_size, args.image_size)
    x = (torch.rand(shape, generator=generator, device=device) * 2 - 1).contiguous(
        memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (args.batch_size,), generator=generator, device=device)
    build_seconds = time.perf_counter() - start

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    sync()
    start = time.perf_counter()
    step()
    sync()
    first_step_seconds = time.perf_counter() - start
    for _ in range(args.warmup - 1):
        step()
    sync()
    latencies = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        sync()
        latencies.append(time.perf_counter() - start)

    ms = np.asarray(latencies) * 1000.0
    return {
        "model": args.model, "timm_model": peer, "relation": relation, "mode": "train",
        "batch_size": args.batch_size, "image_size": args.image_size, "steps": args.steps,
        "warmup": args.warmup, "precision": "float16 autocast" if cuda else "float32",
        "jit_compile": False, "backend": "torch", "channels_last": True,
        "device": "gpu" if cuda else "cpu",
        "device_name": torch.cuda.get_device_name(0) if cuda else "cpu",
        "images_per_second": args.batch_size * args.steps / float(np.sum(latencies)),
        "latency_p50_ms": float(np.percentile(ms, 50)),
        "latency_p95_ms": float(np.percentile(ms, 95)),
        "latency_mean_ms": float(np.mean(ms)),
        "first_step_seconds": first_step_seconds, "build_seconds": build_seconds,
        "peak_memory_bytes": int(torch.cuda.max_memory_allocated()) if cuda else None,
        "memory_source": ("torch.cuda.max_memory_allocated (reset before building)"
                          if cuda else "not measured on the CPU"),
        "params": sum(p.numel() for p in model.parameters()),
        "backend_version": torch.__version__, "timm_version": timm.__version__,
        "latencies_ms": [float(v) for v in ms],
    }


def main(argv=None):
    print(json.dumps(measure(parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
