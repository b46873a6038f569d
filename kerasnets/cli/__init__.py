"""The ``kerasnets`` command line: argparse over the library's workflows.

    kerasnets --version
    kerasnets list [PATTERN] [--family F] [--pretrained]   the catalog
    kerasnets info MODEL         paper, architecture, weights sources, preprocessing
    kerasnets predict [IMAGE...] --model MODEL [--weights TAG|PATH|none] [--top 5]
    kerasnets predict [IMAGE...] --weights run/model.keras
    kerasnets train ...          train or fine-tune on a tfds dataset or an image folder
    kerasnets evaluate ...       top-1/top-5 accuracy and images/s of a model and weights
    kerasnets tune ...           keras-tuner search over a family (or several)
    kerasnets convert SOURCE --model MODEL -o OUT   checkpoint -> .weights.h5 / .keras
    kerasnets export MODEL -o OUT [--format savedmodel|tflite|onnx]
    kerasnets benchmark --model MODEL --mode infer|train

Model and family names are case-insensitive. ``--help``, ``list`` and ``info``
read the generated catalog and never import TensorFlow. Errors are one line
on stderr (exit 1; usage errors exit 2); TensorFlow's start-up messages are
hidden unless KERASNETS_DEBUG=1 (which also shows tracebacks).
"""

import argparse
import os
import sys

from kerasnets._version import __version__
from kerasnets.cli import catalog, common, modeling, tools


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (exit status 2)."""

    def error(self, message):
        raise common.UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser():
    parser = _Parser(prog="kerasnets", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"kerasnets {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in (catalog, modeling, tools):
        module.add_parsers(sub)
    return parser


def main(argv=None):
    common.quiet_libraries()
    try:
        args = build_parser().parse_args(argv)
    except common.UsageError as error:
        print(f"kerasnets: error: {error}", file=sys.stderr)
        return 2
    # Errors are one line and an exit status, not a traceback
    # (KERASNETS_DEBUG=1 shows the traceback).
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("kerasnets: interrupted", file=sys.stderr)
        return 130
    except common.UsageError as error:
        print(f"kerasnets: error: {common.one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        if os.environ.get("KERASNETS_DEBUG"):
            raise
        print(f"kerasnets: error: {common.cli_terms(common.one_line(error))}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
