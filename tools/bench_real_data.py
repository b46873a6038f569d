"""Training on real images with the CLI's defaults: scikit-learn's digits.

Builds class folders of PNGs from scikit-learn's 8x8 handwritten digits
(1,797 scanned images, 10 classes; upscaled to 32x32 RGB), 1,437 for training
and 360 held out (stratified, fixed seed), then for each model runs

    kerasnets train --model M --dataset folder:WORK/train --image-size 32 \\
        --epochs E --output WORK/runs/M
    kerasnets evaluate --weights WORK/runs/M/model.keras --dataset folder:WORK/held_out

(every other setting the CLI's default) and prints a markdown table: model,
epochs, minutes, train accuracy (the training images evaluated in inference
mode, no augmentation), held-out top-1. Not a test: it takes minutes per model
on a CPU.

    python tools/bench_real_data.py                           # the default models, 10 epochs
    python tools/bench_real_data.py --models DenseNetCIFAR --epochs 3
    python tools/bench_real_data.py --train-arg=--no-flip     # extra train options
"""

import argparse
import re
import os
import subprocess
import sys
import tempfile
import time

# One small member per family, with the builder arguments that make it small.
MODELS = {
    "DenseNetCIFAR": ["depth=22", "growth_rate=12"],
    "MobileNetV2": ["alpha=0.35"],
    "MobileNet": ["alpha=0.25"],
    "MobileNetV3Small": [],
    "DenseNet121": [],
    "DPN68": [],
    "SEResNet18": [],
    "SEMobileNet": [],
    "IGCV2": [],
    "IGCV3": [],
}
DEFAULT_MODELS = ("DenseNetCIFAR", "MobileNetV2")


def make_digits_folders(root, held_out=360, size=32, seed=0):
    """``root/train/<digit>/*.png`` (1,437 images) and ``root/held_out/...``
    (360) from scikit-learn's digits, upscaled to ``size`` px. Returns the two
    folders."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).round().astype(np.uint8)
    indices = np.arange(len(images))
    train_idx, test_idx = train_test_split(indices, test_size=held_out, random_state=seed,
                                           stratify=digits.target)
    folders = {}
    for split, idx in (("train", train_idx), ("held_out", test_idx)):
        folder = os.path.join(root, split)
        folders[split] = folder
        if os.path.isdir(folder):
            continue
        partial = folder + ".partial"
        for i in idx:
            class_dir = os.path.join(partial, str(digits.target[i]))
            os.makedirs(class_dir, exist_ok=True)
            image = Image.fromarray(images[i], mode="L").resize((size, size), Image.BILINEAR)
            image.convert("RGB").save(os.path.join(class_dir, f"{i:04d}.png"))
        os.replace(partial, folder)
    return folders["train"], folders["held_out"]


def kerasnets(*args):
    """Runs the CLI; returns its stdout (raises with its output on failure)."""
    command = [sys.executable, "-m", "kerasnets", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n"
                           f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def top1(model_path, folder):
    out = kerasnets("evaluate", "--weights", model_path, "--dataset", f"folder:{folder}")
    return float(re.search(r"top-1\s+([\d.]+)%", out).group(1)) / 100


def run(name, model_args, train_dir, held_out_dir, work, epochs, image_size, extra):
    output = os.path.join(work, "runs", f"{name}-{epochs}ep")
    args = ["train", "--model", name, "--dataset", f"folder:{train_dir}",
            "--image-size", str(image_size), "--epochs", str(epochs), "--output", output,
            *[f"--model-arg={a}" for a in model_args], *extra]
    start = time.perf_counter()
    kerasnets(*args)
    minutes = (time.perf_counter() - start) / 60
    model_path = os.path.join(output, "model.keras")
    return dict(model=" ".join([name, *model_args]), epochs=epochs, minutes=minutes,
                train=top1(model_path, train_dir), held_out=top1(model_path, held_out_dir))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                        help=f"from {', '.join(MODELS)}, or 'all'")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--work", help="folder for the images and runs (default: a "
                        "temporary one); reruns reuse finished runs")
    parser.add_argument("--train-arg", action="append", default=[],
                        help="extra option for kerasnets train (repeatable)")
    args = parser.parse_args(argv)
    names = list(MODELS) if args.models == ["all"] else args.models
    work = args.work or tempfile.mkdtemp(prefix="kerasnets-digits-")
    train_dir, held_out_dir = make_digits_folders(work, size=args.image_size)
    print(f"scikit-learn digits: {work} (train 1437, held out 360), {args.image_size} px, "
          f"{args.epochs} epochs, CLI defaults {' '.join(args.train_arg)}", flush=True)
    print("| model | epochs | minutes | train accuracy | held-out top-1 |")
    print("|---|---:|---:|---:|---:|", flush=True)
    for name in names:
        try:
            row = run(name, MODELS.get(name, []), train_dir, held_out_dir, work, args.epochs,
                      args.image_size, args.train_arg)
        except RuntimeError as error:
            print(f"| {name} | {args.epochs} | failed: {str(error).splitlines()[-1]} | | |",
                  flush=True)
            continue
        print(f"| {row['model']} | {row['epochs']} | {row['minutes']:.1f} | "
              f"{row['train']:.1%} | {row['held_out']:.1%} |", flush=True)


if __name__ == "__main__":
    main()
