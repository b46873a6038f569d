"""Writes kerasnets/resources/catalog.json, the catalog's generated index.

The index lets ``kerasnets list`` / ``info`` / ``--help`` and the lazy
``kerasnets.<Builder>`` attributes answer without importing TensorFlow. It
holds, for every registered builder, its family, module, sizes, docstring,
paper and required arguments; for the named ones the figures measured on the
built model (trainable and total parameters, MACs at the default input size,
layers: ``--figures``); every ``PretrainedCfg``; and the figures of each
configuration with published weights (MobileNet's widths, ...).

    python tools/make_catalog.py              # everything but the figures
    python tools/make_catalog.py --figures [--only NAME ...]   # also measure
    python tools/make_catalog.py --check      # exit 1 if the index is stale

The figures are kept from the existing index unless measured again (building
all models takes minutes); tests/test_catalog.py checks them against the
built models.
"""

import argparse
import inspect
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's kerasnets
OUTPUT = os.path.join(HERE, os.pardir, "kerasnets", "resources", "catalog.json")
FIGURES = ("params", "total_params", "macs", "stats_size", "layers")


def paper(module):
    """The module docstring's title and reference paragraphs."""
    doc = inspect.getdoc(sys.modules[module]) or ""
    paragraphs = [p.strip() for p in doc.split("\n\n") if p.strip()]
    keep = [p for i, p in enumerate(paragraphs)
            if i == 0 or "Reference" in p or "arxiv" in p.lower()]
    return "\n\n".join(keep[:3])


def measure(entry):
    import keras

    from kerasnets import utils

    model = entry.builder(weights=None)
    size = model.input_shape[1] or entry.default_size
    figures = {
        "params": utils.count_trainable_params(model),
        "total_params": int(model.count_params()),
        "macs": int(utils.count_macs(model, input_shape=(size, size, 3))),
        "stats_size": int(size),
        "layers": len(model.layers),
    }
    del model
    keras.backend.clear_session()
    return figures


def measure_configuration(name, options, size):
    import keras

    from kerasnets import registry, utils

    model = registry.get(name).builder(weights=None, input_shape=(size, size, 3), **options)
    figures = {"params": utils.count_trainable_params(model),
               "macs": int(utils.count_macs(model, input_shape=(size, size, 3)))}
    del model
    keras.backend.clear_session()
    return figures


def configurations(previous, measure_names=()):
    """One row per model configuration with published weights other than the
    default one (MobileNet's widths, MobileNetV3's minimalistic, ...):
    options, input sizes, tags, reported top-1 at the largest size, and the
    figures at that size."""
    from kerasnets import weights as weights_lib

    groups = {}
    for cfg in weights_lib.pretrained_cfgs():
        if cfg.options:
            key = (cfg.model, json.dumps(dict(cfg.options), sort_keys=True))
            groups.setdefault(key, []).append(cfg)
    old = {(r["model"], json.dumps(r["options"], sort_keys=True)): r
           for r in previous.get("configurations", [])}
    rows = []
    for (name, key), cfgs in groups.items():
        size = max(c.input_size for c in cfgs)
        largest = [c for c in cfgs if c.input_size == size]
        row = {"model": name, "options": json.loads(key),
               "input_sizes": sorted({c.input_size for c in cfgs}),
               "tags": sorted({c.tag for c in cfgs}),
               "top1": next((c.top1 for c in largest if c.top1 is not None), None),
               "stats_size": size}
        if name in measure_names:
            row.update(measure_configuration(name, row["options"], size))
        else:
            row.update({k: old.get((name, key), {}).get(k) for k in ("params", "macs")})
        rows.append(row)
    return rows


def build_index(previous, measure_names=()):
    from kerasnets import registry
    from kerasnets import weights as weights_lib

    models = {}
    for entry in registry.entries(include_generic=True):
        record = {
            "family": entry.family,
            "module": entry.module,
            "generic": entry.generic,
            "default_size": entry.default_size,
            "min_size": entry.min_size,
            "required": entry.required_args,
            "doc": entry.doc,
            "paper": paper(entry.module),
        }
        if not entry.generic:
            old = previous.get("models", {}).get(entry.name, {})
            if entry.name in measure_names:
                figures = measure(entry)
                print(f"{entry.name:24s} {figures['params']:>12,} params "
                      f"{figures['macs'] / 1e6:>10,.1f} M MACs", flush=True)
            else:
                figures = {k: old.get(k) for k in FIGURES}
            record.update(figures)
        models[entry.name] = record
    pretrained = []
    for cfg in weights_lib.pretrained_cfgs():
        record = cfg.to_dict()
        # The configuration weights="imagenet" loads with the builder's defaults.
        record["default"] = cfg is weights_lib.pretrained_cfg(cfg.model, options={},
                                                              strict=False)
        pretrained.append(record)
    return {"models": dict(sorted(models.items())), "pretrained": pretrained,
            "configurations": configurations(previous, measure_names)}


def dumps(index):
    return json.dumps(index, indent=1, sort_keys=True) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figures", action="store_true",
                        help="build the models and measure their figures")
    parser.add_argument("--only", nargs="*", default=None,
                        help="with --figures: only these models")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the index differs (figures excluded)")
    args = parser.parse_args(argv)
    previous = {}
    if os.path.exists(OUTPUT):
        with open(OUTPUT, encoding="utf-8") as f:
            previous = json.load(f)
    from kerasnets import registry

    names = [e.name for e in registry.entries()]
    measure_names = set(args.only or names) if args.figures else set()
    index = build_index(previous, measure_names)
    if args.check:
        if dumps(index) != dumps(previous):
            stale = sorted(n for n in set(index["models"]) | set(previous.get("models", {}))
                           if index["models"].get(n) != previous.get("models", {}).get(n))
            print("kerasnets/resources/catalog.json is stale"
                  + (f" (models: {', '.join(stale)})" if stale else " (pretrained configs)")
                  + "; run python tools/make_catalog.py")
            return 1
        missing = [n for n in names if index["models"][n].get("params") is None]
        missing += [r["model"] for r in index["configurations"] if r["params"] is None]
        if missing:
            print(f"no figures for {', '.join(missing)}: run python tools/make_catalog.py "
                  f"--figures --only {' '.join(missing)}")
            return 1
        return 0
    with open(OUTPUT, "w", encoding="utf-8") as f:
        f.write(dumps(index))
    return 0


if __name__ == "__main__":
    sys.exit(main())
