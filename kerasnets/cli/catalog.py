"""``kerasnets list`` and ``kerasnets info``: the catalog, without TensorFlow.

Everything shown comes from the generated index
(``kerasnets/resources/catalog.json``, ``tools/make_catalog.py``): names,
families, figures, docstrings and pretrained configurations.
"""

from kerasnets import registry
from kerasnets.cli import common
from kerasnets.text import format_count, format_macs, short_repr

DEFAULT_MARK = " (the default, weights=\"imagenet\")"


def add_parsers(sub):
    listing = sub.add_parser("list", help="models: params, MACs, weight tags, top-1")
    listing.add_argument("pattern", nargs="?", default=None,
                         help="only names matching this pattern (dpn*, *resnext*)")
    listing.add_argument("--family", default=None,
                         help="only this family (densenet, dpn, igc, mobilenet, senet, ...)")
    listing.add_argument("--pretrained", action="store_true",
                         help="only models with published weights")
    listing.add_argument("--generic", action="store_true",
                         help="also the family builders that need architecture arguments "
                              "(DenseNet, DPN, ...), as list_models(include_generic=True)")
    listing.set_defaults(func=cmd_list)
    info = sub.add_parser("info", help="one model: paper, parameters, weights, preprocessing")
    info.add_argument("model")
    info.add_argument("--files", action="store_true",
                      help="only the weights files: each URL and the cache file it is "
                           "kept as (place a file there by hand to work offline)")
    info.set_defaults(func=cmd_info)


def _default_cfg(name):
    return next((cfg for cfg in registry.index()["pretrained"]
                 if cfg["model"] == name and cfg.get("default")), None)


def _tags(name):
    tags = {cfg["tag"] for cfg in registry.index()["pretrained"] if cfg["model"] == name}
    return sorted(tags | {"imagenet"}) if tags else []


def cmd_list(args):
    from rich.table import Table

    family = None
    if args.family:
        try:
            family = registry.canonical_family(args.family)
        except ValueError as error:
            raise common.UsageError(str(error)) from None
    matching = dict(pattern=args.pattern, pretrained=args.pretrained, family=family)
    names = registry.list_models(**matching, include_generic=args.generic)
    generic = [] if args.generic else [
        name for name in registry.list_models(**matching, include_generic=True)
        if name not in names]
    hint = (f"; generic builders match ({', '.join(generic)}): --generic lists them"
            if generic else "")
    if not names:
        raise ValueError(f"no model matches {short_repr(args.pattern)}"
                         + (f" in family {family}" if family else "") + hint)
    out = Table(title="kerasnets models (params and MACs at the default input size)")
    for column, justify in (("model", "left"), ("family", "left"), ("params", "right"),
                            ("MACs", "right"), ("weights", "left"), ("top-1", "right")):
        out.add_column(column, justify=justify, no_wrap=column != "weights")
    records = registry.index()["models"]
    families = registry.families()
    names = sorted(names, key=lambda n: families.index(registry.family_of(n)))
    for name in names:
        record = records.get(name, {})
        if record.get("generic"):
            params = macs = "(generic)"
        else:
            params, macs = format_count(record.get("params")), format_macs(record.get("macs"))
        cfg = _default_cfg(name)
        top1 = cfg.get("top1") if cfg else None
        tags = _tags(name)
        out.add_row(name, registry.family_of(name), params, macs,
                    ", ".join(tags) if tags else "(none published)",
                    "-" if top1 is None else f"{top1:.1f}")
    common.console().print(out)
    if generic:
        print(f"{len(generic)} generic builders match too ({', '.join(generic)}): "
              "--generic lists them")


def describe_cfg(cfg, default=False):
    """Lines describing one pretrained configuration (an index record)."""
    options = ", ".join(f"{k}={v!r}" for k, v in cfg["options"].items())
    lines = [
        f"[bold]{cfg['tag']}[/bold]{DEFAULT_MARK if default else ''}"
        + (f" ({options})" if options else "")
        + f": {cfg['source'] or 'unknown source'}"
        + (f", licence {cfg['license']}" if cfg["license"] else ""),
        f"  file: {cfg['url']} ({cfg['format']}; "
        f"{describe_check(cfg['check'], cfg['url'])})",
    ]
    if cfg["notop_url"]:
        lines.append(f"  without classifier: {cfg['notop_url']} ("
                     f"{describe_check(cfg['notop_check'], cfg['notop_url'])})")
    accuracy = ", ".join(
        f"{label} {cfg[key]:.2f}" for label, key in (("top-1", "top1"), ("top-5", "top5"))
        if cfg[key] is not None
    )
    lines.append(f"  reported accuracy: {accuracy or 'not recorded'}")
    mean = ", ".join(f"{v:.3f}" for v in cfg["mean"])
    std = ", ".join(f"{v:.3f}" for v in cfg["std"])
    lines.append(
        f"  preprocessing (on 0-255 RGB): mean {mean}, std {std}"
        f"{', RGB->BGR' if cfg['bgr'] else ''}; input {cfg['input_size']}, "
        f"crop {cfg['crop_pct']}, {cfg['interpolation']}"
    )
    if cfg["reference"]:
        lines.append(f"  reference implementation (parity): {cfg['reference']}")
    if cfg.get("bn_epsilon") is not None:
        lines.append(f"  numerics of the reference (the model built for this file): "
                     f"BatchNorm epsilon {cfg['bn_epsilon']:g}")
    return lines


def describe_check(check, url):
    """How a file is verified (``kerasnets.weights.hashes``), in words."""
    kind, expected = check["kind"], check["expected"]
    if kind == "full hash":
        return f"checked against the published {check['algorithm']} {expected}"
    if kind == "hub header":
        return f"checked against the sha256 the hub serves, {expected}"
    if kind == "git blob id":
        return f"checked against the git blob id {expected} of the publisher's tree"
    if kind == "filename prefix":
        return f"checked against the sha256 prefix {expected} in its name, torch hub's rule"
    if "huggingface.co/" in url:
        return ("the hub serves its sha256 (X-Linked-Etag) but none is recorded here: "
                "sha256 recorded on first use")
    return "no published hash: sha256 recorded on first use"


def weights_files(name):
    """Lines naming each published file of ``name``: its URL and hash, and
    the cache file it is downloaded to (``kerasnets.weights.cache``)."""
    from types import SimpleNamespace

    from kerasnets.weights import cache

    lines = []
    for record in registry.index()["pretrained"]:
        if record["model"] != name:
            continue
        cfg = SimpleNamespace(**record)
        options = [f"{k}={v!r}" for k, v in cfg.options.items()]
        if options:
            options.append(f"input {cfg.input_size}")
        for include_top in (True, False):
            if not include_top and not cfg.notop_url:
                continue
            url, _, path = cache.source_location(cfg, include_top)
            digest = describe_check(record["check" if include_top else "notop_check"], url)
            what = ", ".join(options + ([] if include_top else ["without classifier"]))
            tag = cfg.tag + (' (weights="imagenet")'
                             if cfg.default and cfg.tag != "imagenet" else "")
            lines += [f"{tag}{f' ({what})' if what else ''}: {url}", f"  {digest}",
                      f"  cache file: {path}"]
    return lines


def cmd_info(args):
    name = common.model_name(args.model)
    if args.files:
        lines = weights_files(name)
        if not lines:
            raise ValueError(f"{name} has no published pretrained weights.")
        print("\n".join(lines))
        print("Without network, download a file elsewhere and place it at its cache file "
              "(KERAS_HOME moves the cache), or pass its path as --weights / weights=.")
        return
    record = registry.indexed(name)
    if record is None:  # registered at run time (a user's family): describe it live
        entry = registry.get(name)
        record = {"module": entry.module, "family": entry.family, "doc": entry.builder.__doc__,
                  "paper": "", "generic": entry.generic, "required": entry.required_args}
    console = common.console()
    console.print(f"[bold]{name}[/bold] ({record['module']}, family {record['family']})\n")
    if record.get("paper"):
        console.print(record["paper"], markup=False)
        console.print()
    console.print(record.get("doc") or "", markup=False)
    if record.get("generic"):
        console.print(f"\n{name} is a generic builder: it needs "
                      f"{', '.join(record.get('required', []))}.")
    elif record.get("params") is not None:
        size = record["stats_size"]
        console.print(
            f"\nparameters: {record['params']:,} trainable, {record['total_params']:,} in "
            f"all; MACs at {size}x{size}: {format_macs(record['macs'])}; "
            f"{record['layers']} layers; input at least {record['min_size']} px"
        )
    console.print("\n[bold]weights[/bold]")
    cfgs = [cfg for cfg in registry.index()["pretrained"] if cfg["model"] == name]
    for cfg in cfgs:
        for line in describe_cfg(cfg, default=cfg.get("default", False)):
            console.print(line, soft_wrap=True)
    if not cfgs:
        console.print(f"{name} has no published pretrained weights.")
