"""Writes the model tables of README.md and docs/models.md, and docs/accuracy_vs_macs.png.

The table (between the ``<!-- gallery:start -->`` / ``<!-- gallery:end -->``
markers of README.md) has one row per named builder: trainable parameters and
MACs at the default input size (the catalog index kerasnets/resources/catalog.json,
made by tools/make_catalog.py), the default weights' reported top-1, and every
weights tag; a second table (between ``<!-- configurations:start -->`` /
``<!-- configurations:end -->`` in docs/models.md) lists the other configurations with published
weights (widths, input sizes). The plot shows top-1 against MACs for the builders whose
default weights report a top-1.

    python tools/make_gallery.py [--check]

``--check`` exits non-zero when README.md or docs/models.md is not up to date.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # this checkout's kerasnets
README = os.path.join(ROOT, "README.md")
MODELS_DOC = os.path.join(ROOT, "docs", "models.md")
PLOT = os.path.join(ROOT, "docs", "accuracy_vs_macs.png")
START, END = "<!-- gallery:start -->", "<!-- gallery:end -->"
CONFIG_START, CONFIG_END = "<!-- configurations:start -->", "<!-- configurations:end -->"


def gallery_rows():
    """[(family, name, params, macs, top1, tags, source, default tag)] for the
    named models, from the catalog index (kerasnets/resources/catalog.json)."""
    from kerasnets import registry

    index = registry.index()
    rows = []
    for name in registry.list_models():
        record = index["models"][name]
        cfgs = [c for c in index["pretrained"] if c["model"] == name]
        default = next((c for c in cfgs if c.get("default")), None)
        tags = sorted({c["tag"] for c in cfgs} | {"imagenet"}) if cfgs else []
        default_tag = default["tag"] if default else (cfgs[0]["tag"] if cfgs else None)
        if default:
            source = default.get("source", "")
        elif cfgs:  # weights for another configuration only (e.g. SEInceptionV3 without SE)
            first = cfgs[0]
            options = ", ".join(f"{k}={v!r}" for k, v in sorted(first["options"].items()))
            source = f"{first.get('source', '')}, for {options}" if options else first.get(
                "source", "")
        else:
            source = ""
        rows.append((record["family"], name, record.get("params"), record.get("macs"),
                     default["top1"] if default else None, tags, source, default_tag))
    return sorted(rows, key=lambda r: (r[0], r[3] or 0, r[1]))


def markdown_table(rows):
    from kerasnets.text import format_macs

    lines = [
        "| model | family | params | MACs | top-1 | weights tags (source of the default) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for family, name, params, macs, top1, tags, source, default in rows:
        others = [t for t in tags if t not in ("imagenet", default)]
        if not tags:
            tag_text = "none published"
        else:
            tag_text = "imagenet" + (f" = {default}" if default != "imagenet" else "")
            tag_text += f" ({source})" + (f"; also {', '.join(others)}" if others else "")
        lines.append(
            f"| {name} | {family} | {params:,} | {format_macs(macs)} | "
            f"{'-' if top1 is None else f'{top1:.1f}'} | {tag_text} |"
        )
    return "\n".join(lines)


def configurations_table():
    """The configurations with published weights other than each model's
    default (catalog index ``configurations``)."""
    from kerasnets import registry
    from kerasnets.text import format_macs

    lines = [
        "| model | configuration | input sizes | params | MACs | top-1 | weights tags |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    rows = registry.index().get("configurations", [])
    for row in sorted(rows, key=lambda r: (registry.sort_names([r["model"]])[0],
                                           json.dumps(r["options"], sort_keys=True))):
        options = ", ".join(f"{k}={v!r}" for k, v in row["options"].items())
        sizes = ", ".join(str(s) for s in row["input_sizes"])
        macs = f"{format_macs(row['macs'])} at {row['stats_size']}"
        top1 = "-" if row["top1"] is None else f"{row['top1']:.1f}"
        lines.append(f"| {row['model']} | {options} | {sizes} | {row['params']:,} | {macs} | "
                     f"{top1} | {', '.join(row['tags'])} |")
    return "\n".join(lines)


def replace_between(text, start, end, body, name="README.md"):
    if start not in text or end not in text:
        raise SystemExit(f"{name} lacks the {start} / {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    families = sorted({r[0] for r in rows})
    colors = dict(zip(families, plt.cm.tab10.colors))
    for family in families:
        points = [(r[3] / 1e9, r[4], r[1]) for r in rows
                  if r[0] == family and r[3] and r[4] is not None]
        if not points:
            continue
        xs, ys, names = zip(*points)
        ax.scatter(xs, ys, label=family, color=colors[family], s=30)
        for x, y, name in points:
            ax.annotate(name, (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("MACs at the default input size (G, log scale)")
    ax.set_ylabel("ImageNet top-1 (%) reported by the weights' source")
    ax.set_title("kerasnets pretrained models: accuracy vs compute")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    rows = gallery_rows()
    tables = {README: (START, END, markdown_table(rows)),
              MODELS_DOC: (CONFIG_START, CONFIG_END, configurations_table())}
    updates = {}
    for path, (start, end, body) in tables.items():
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new = replace_between(text, start, end, body, os.path.relpath(path, ROOT))
        if new != text:
            updates[path] = new
    if args.check:
        for path in updates:
            print(f"{os.path.relpath(path, ROOT)} is out of date: "
                  "run python tools/make_gallery.py")
        return 1 if updates else 0
    for path, new in updates.items():
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    plot(rows, PLOT)
    print(f"wrote the gallery ({len(rows)} rows) into README.md, docs/models.md and {PLOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
