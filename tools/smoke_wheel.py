#!/usr/bin/env python
"""The release smoke suite, run by .ci/run on the built distributions.

    python tools/smoke_wheel.py --sdist dist/kerasnets-X.tar.gz   # every tracked file is in it
    python tools/smoke_wheel.py --save DIR    # the checkout's kerasnets saves a .keras file
    VENV/bin/python /path/tools/smoke_wheel.py --load DIR         # in the wheel's environment

``--load`` runs in a fresh virtual environment holding the installed wheel,
from a directory outside the checkout: it checks that ``kerasnets`` is that
environment's copy (not the checkout's), its version, licence and resources,
the ``kerasnets`` command (``--version``, ``list``, ``info``), one model of
every family built and run on an array, and the ``.keras`` file ``--save``
wrote with the editable install (loaded with ``safe_mode=True``, the same
outputs). Every check prints one line; the first failure raises.
"""

import argparse
import os
import subprocess
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESOURCES = ("catalog.json", "imagenet_class_index.json", "sample_cat.jpg",
             "SAMPLE_IMAGE_LICENSE.txt")
SAVED_MODEL = ("IGCV2", 32, 10)  # grouped, interleaved and shuffled convolutions
IMAGE_SIZE, CLASSES = 32, 10


def ok(text):
    print(f"ok: {text}", flush=True)


def check_sdist(path):
    """Every file git tracks (but .gitignore) is in the sdist at ``path``."""
    with tarfile.open(path) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    missing = [name for name in tracked if name not in names and name != ".gitignore"]
    assert not missing, f"the sdist lacks {', '.join(missing)} (MANIFEST.in)"
    assert "LICENSE" in names and "PKG-INFO" in names
    ok(f"sdist holds all {len(tracked) - 1} tracked files and LICENSE")


def _inputs():
    import numpy as np

    return np.random.default_rng(0).uniform(
        0, 255, (2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")


def save(directory):
    """The checkout's kerasnets saves a model and its outputs into ``directory``."""
    import numpy as np

    import kerasnets

    os.makedirs(directory, exist_ok=True)
    name, size, classes = SAVED_MODEL
    model = kerasnets.create_model(name, weights=None, input_shape=(size, size, 3),
                                   classes=classes)
    model.save(os.path.join(directory, "model.keras"))
    np.save(os.path.join(directory, "outputs.npy"), model.predict(_inputs(), verbose=0))
    ok(f"saved {name} with kerasnets {kerasnets.__version__} from {kerasnets.__file__}")


def _command(*args):
    script = os.path.join(os.path.dirname(sys.executable), "kerasnets")
    result = subprocess.run([script, *args], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, f"kerasnets {' '.join(args)}: {result.stderr.strip()}"
    return result.stdout


def load(directory):
    """The installed wheel's checks (see the module docstring)."""
    from importlib import metadata, resources

    import kerasnets

    where = os.path.realpath(kerasnets.__file__)
    assert where.startswith(os.path.realpath(sys.prefix) + os.sep) and not where.startswith(
        ROOT + os.sep), f"kerasnets comes from {where}, not from this environment's wheel"
    ok(f"kerasnets {kerasnets.__version__} from {os.path.dirname(where)}")
    assert metadata.version("kerasnets") == kerasnets.__version__
    files = [str(f) for f in metadata.files("kerasnets")]
    assert any(f.endswith("LICENSE") for f in files), "no LICENSE in the wheel"
    assert not any(".egg-link" in f or "__editable__" in f for f in files)
    ok("metadata version and LICENSE")
    for name in RESOURCES:
        assert resources.files("kerasnets.resources").joinpath(name).is_file(), name
    ok(f"resources: {', '.join(RESOURCES)}")

    assert _command("--version").strip() == f"kerasnets {kerasnets.__version__}"
    listing = _command("list")
    assert all(name in listing for name in ("DenseNet121", "DPN92", "IGCV3", "SENet154"))
    assert "cache file:" in _command("info", "MobileNetV2", "--files")
    assert "MobileNetV2" in _command("info", "MobileNetV2")
    ok("kerasnets --version, list, info, info --files")

    import keras
    import numpy as np

    from kerasnets import registry

    x = _inputs()
    records = registry.index()["models"]
    for family in registry.families():
        name = min(registry.list_models(family=family), key=lambda n: records[n]["params"])
        model = kerasnets.create_model(name, weights=None, classes=CLASSES,
                                       input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
        y = keras.ops.convert_to_numpy(model(x, training=False))
        assert y.shape == (2, CLASSES) and np.isfinite(y).all(), name
        ok(f"{family}: {name} built and run")
    image = kerasnets.data.load_image(kerasnets.imagenet.sample_image(), "MobileNetV2")
    assert image.shape == (224, 224, 3)
    ok("the sample photo loads")

    model = keras.saving.load_model(os.path.join(directory, "model.keras"), safe_mode=True)
    expected = np.load(os.path.join(directory, "outputs.npy"))
    outputs = keras.ops.convert_to_numpy(model(x, training=False))
    difference = float(np.abs(outputs - expected).max())
    assert difference < 1e-5, f"the saved model's outputs moved by {difference}"
    ok(f"{SAVED_MODEL[0]} .keras saved by the checkout loads (safe_mode) with its outputs")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--sdist", metavar="FILE")
    group.add_argument("--save", metavar="DIR")
    group.add_argument("--load", metavar="DIR")
    args = parser.parse_args(argv)
    if args.sdist:
        check_sdist(args.sdist)
    elif args.save:
        save(args.save)
    else:
        load(args.load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
