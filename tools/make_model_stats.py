"""Writes kerasnets/resources/model_stats.json: params and MACs per builder.

`kerasnets list` reads this table instead of building every model (minutes).
Each named builder is built with ``weights=None`` at its default input size;
"params" are trainable parameters (what the papers and timm count), "macs"
``kerasnets.utils.count_macs`` (convolutions and dense layers).

    python tools/make_model_stats.py [--only NAME ...] [--check]

``--check`` rebuilds the listed (or all) builders and exits non-zero when
the bundled numbers differ.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's kerasnets
OUTPUT = os.path.join(HERE, os.pardir, "kerasnets", "resources", "model_stats.json")


def measure(name):
    import keras

    from kerasnets import cli, utils

    model = cli.builders()[name](weights=None)
    size = model.input_shape[1] or 224  # free-size models: counted at 224
    result = {
        "params": utils.count_trainable_params(model),
        "macs": utils.count_macs(model, input_shape=(size, size, 3)),
        "input_size": int(size),
    }
    del model
    keras.backend.clear_session()
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    from kerasnets import cli

    names = args.only or sorted(
        n for n, b in cli.builders().items() if not cli._is_generic(b)
    )
    table = {}
    if os.path.exists(OUTPUT):
        with open(OUTPUT, encoding="utf-8") as f:
            table = json.load(f)
    failures = 0
    for name in names:
        row = measure(name)
        print(f"{name:24s} {row['params']:>12,} params {row['macs'] / 1e6:>10,.1f} M MACs",
              flush=True)
        if args.check and table.get(name) != row:
            print(f"  differs from the bundled {table.get(name)}")
            failures += 1
        table[name] = row
        if not args.check:  # write as we go: a long run keeps what it measured
            with open(OUTPUT, "w", encoding="utf-8") as f:
                json.dump(dict(sorted(table.items())), f, indent=1)
                f.write("\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
