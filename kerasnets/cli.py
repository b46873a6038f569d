"""The ``kerasnets`` command line (a thin layer over the library).

    kerasnets list               builders and their pretrained weight tags
    kerasnets info MODEL         docstring, parameter counts, weight tags
"""

import argparse
import inspect
import os
import sys


def builders():
    """Public builder functions of kerasnets, by name."""
    import kerasnets

    return {
        name: obj
        for name, obj in vars(kerasnets).items()
        if inspect.isfunction(obj) and name[:1].isupper()
    }


def _get_builder(name):
    table = builders()
    if name not in table:
        raise SystemExit(
            f"kerasnets: unknown model {name!r}. Known: {', '.join(sorted(table))}"
        )
    return table[name]


def cmd_list(args):
    from kerasnets import weights

    for name in sorted(builders()):
        tags = weights.available(name)
        print(f"{name:28s} {', '.join(tags) if tags else '(no published weights)'}")


def cmd_info(args):
    from kerasnets import weights

    builder = _get_builder(args.model)
    print(inspect.getdoc(builder) or "")
    required = [
        p.name for p in inspect.signature(builder).parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        print(f"\n{args.model} is a generic builder: it needs {', '.join(required)}.")
        return
    model = builder(weights=None)
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    print(f"\nparameters: {trainable:,} trainable, {model.count_params():,} in all")
    print(f"weights: {', '.join(weights.available(args.model)) or 'none published'}")


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(prog="kerasnets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="builders and weight tags").set_defaults(func=cmd_list)
    info = sub.add_parser("info", help="one builder: docstring and parameters")
    info.add_argument("model")
    info.set_defaults(func=cmd_info)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
