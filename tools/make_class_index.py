"""Writes kerasnets/resources/imagenet_class_index.json from timm's class lists.

The file has keras.applications' format and content:
``{"0": ["n01440764", "tench"], "1": ["n01443537", "goldfish"], ...}``:
ImageNet-1k class ``i`` is the i-th WordNet id in sorted order (timm's
``imagenet_synsets.txt``), named by the first lemma of its synset
(``imagenet_synset_to_lemma.txt``) with spaces replaced by underscores, case
and punctuation kept ("great_white_shark", "Eskimo_dog", "jack-o'-lantern").
That is the convention of keras' published ``imagenet_class_index.json``: the
file written here is byte-identical to it (md5 c2c37ea517e94d9795004a39431a14cb,
the hash keras.applications.imagenet_utils checks), including its two repeated
names (134/517 "crane", 638/639 "maillot").

    python tools/make_class_index.py [--timm-info DIR] [--output FILE] [--check]

``--check`` exits non-zero when the bundled file differs from what the
sources give (no file is written).
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(
    HERE, os.pardir, "kerasnets", "resources", "imagenet_class_index.json"
)


def timm_info_dir():
    import timm.data

    return os.path.join(os.path.dirname(timm.data.__file__), "_info")


def class_index(info_dir):
    """{str(i): [wnid, name]} for the 1000 ImageNet-1k classes."""
    with open(os.path.join(info_dir, "imagenet_synsets.txt"), encoding="utf-8") as f:
        wnids = [line.strip() for line in f if line.strip()]
    lemmas = {}
    with open(os.path.join(info_dir, "imagenet_synset_to_lemma.txt"), encoding="utf-8") as f:
        for line in f:
            wnid, _, names = line.rstrip("\n").partition("\t")
            lemmas[wnid] = names
    if len(wnids) != 1000 or wnids != sorted(wnids):
        raise SystemExit(f"{info_dir}: expected the 1000 sorted ImageNet-1k synsets")
    index = {}
    for i, wnid in enumerate(wnids):
        first = lemmas[wnid].split(",")[0].strip()
        index[str(i)] = [wnid, first.replace(" ", "_")]
    return index


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timm-info", default=None, help="timm/data/_info folder")
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = json.dumps(class_index(args.timm_info or timm_info_dir()))  # no newline, as keras'
    if args.check:
        with open(args.output, encoding="utf-8") as f:
            same = f.read() == text
        print(f"{args.output}: {'up to date' if same else 'DIFFERS'}")
        return 0 if same else 1
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.normpath(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
