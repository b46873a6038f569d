"""Small generated image datasets for the data and training tests."""

import os

import numpy as np

# Clearly separable classes: each is a colour (plus noise), so a small
# network learns them in a few dozen steps.
COLOURS = ((220, 40, 40), (40, 200, 40), (40, 40, 220), (220, 220, 40))


def make_image_folder(root, *, per_class=24, size=(36, 40), classes=COLOURS,
                      formats=("png",), noise=30.0, seed=0, split=None):
    """Writes ``root/[split/]c<i>/<n>.<fmt>`` images and returns ``root``.

    Image ``n`` of a class has ``size`` plus ``n % 3`` rows (varied shapes),
    format ``formats[n % len(formats)]``.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = os.path.join(root, split) if split else root
    for label, colour in enumerate(classes):
        directory = os.path.join(base, f"c{label}")
        os.makedirs(directory, exist_ok=True)
        for n in range(per_class):
            shape = (size[0] + n % 3, size[1], 3)
            pixels = rng.normal(0.0, noise, shape) + np.asarray(colour, float)
            image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
            fmt = formats[n % len(formats)]
            lossy = {"quality": 95} if fmt in ("jpg", "jpeg", "webp") else {}
            image.save(os.path.join(directory, f"{n:03d}.{fmt}"), **lossy)
    return root
