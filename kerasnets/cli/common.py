"""What the commands share: console, names, errors, quiet TensorFlow."""

import argparse
import contextlib
import math
import os
import sys
import tempfile

from kerasnets import registry
from kerasnets.text import one_line, parse_assignments  # noqa: F401  (re-exported)


class UsageError(ValueError):
    """A bad command line (exit status 2)."""


def console():
    from rich.console import Console

    # Piped output (tests, `| less`) keeps full rows instead of 80 columns.
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def model_name(name):
    """The catalog spelling of a model name (case-insensitive); a UsageError
    naming the closest models otherwise."""
    canonical = registry.canonical_name(name)
    if canonical is None:
        raise UsageError(registry.unknown_model_message(name))
    return canonical


def named_model(name):
    """Like ``model_name``, refusing generic builders without arguments."""
    canonical = model_name(name)
    record = registry.indexed(canonical) or {}
    if record.get("generic"):
        raise UsageError(f"{canonical} is a generic builder; name a variant "
                         "(see `kerasnets list`)")
    return canonical


def assignments(items, what, scoped=False):
    """NAME=VALUE options (``kerasnets.text.parse_assignments``); a malformed
    one is a usage error."""
    try:
        return parse_assignments(items, what=what, scoped=scoped)
    except ValueError as error:
        raise UsageError(str(error)) from None


def at_least(value, minimum, option):
    """A usage error unless ``value`` (an option's) is at least ``minimum``."""
    if value is not None and value < minimum:
        raise UsageError(f"{option} must be at least {minimum}; received {value}")


def finite_float(text):
    """argparse type of a float option: a number, not nan or inf."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; received {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number; received {text!r}")
    return value


# Builder arguments that --model-arg does not set, and what to do instead:
# a command's own option sets them (commands add theirs with ``instead``).
SET_BY_THE_COMMAND = {
    "weights": "use --weights",
    "include_top": "this command builds the model with its classifier",
    "input_tensor": "a tensor cannot be given on the command line",
}


def model_with_args(name, items, instead=None):
    """(catalog name, checked ``--model-arg`` values): a generic builder needs
    its arguments; ``instead`` as in ``model_args``."""
    canonical = model_name(name)
    kwargs = model_args(items, canonical, instead)
    if (registry.indexed(canonical) or {}).get("generic") and not kwargs:
        raise UsageError(f"{canonical} is a generic builder; name a variant (see "
                         "`kerasnets list`) or pass its arguments with --model-arg")
    return canonical, kwargs


def model_args(items, name=None, instead=None):
    """``--model-arg`` values, checked against the builder of ``name`` (a
    word where a number belongs, an unknown argument: usage errors).
    Arguments the command sets itself (``SET_BY_THE_COMMAND``, updated with
    ``instead``: {argument: what to do instead}) are usage errors saying what
    to do."""
    kwargs = assignments(items, "--model-arg")
    refused = {**SET_BY_THE_COMMAND, **(instead or {})}
    for key in kwargs:
        if key in refused:
            raise UsageError(f"--model-arg {key}: {refused[key]}")
    shape = kwargs.get("input_shape")
    if shape is not None and not (
            isinstance(shape, (tuple, list)) and len(shape) == 3
            and all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
                    for d in shape)):
        raise UsageError("--model-arg input_shape is (height, width, channels), e.g. "
                         f"input_shape=(160,160,3); received {shape!r}")
    if name is not None and kwargs:
        load_tensorflow()  # the builder's module imports Keras
        try:
            registry.check_kwargs(name, kwargs)
        except ValueError as error:
            raise UsageError(f"--model-arg: {error}") from None
    return kwargs


# The library's words for the command line's options, in error messages.
_CLI_TERMS = (("pass the path of a weights file as `weights=`", "pass --weights PATH"),
              ("`weights=`", "--weights"), ("weights=None", "--weights none"),
              ("`include_top=False`", "--no-top"))


def cli_terms(message):
    """``message`` with the library's argument names as the CLI's options."""
    for library, cli in _CLI_TERMS:
        message = message.replace(library, cli)
    return message


def weights_arg(text):
    """``--weights`` text: None for "none", ``~`` expanded in paths."""
    if text is None or text.lower() == "none":
        return None
    return os.path.expanduser(text)


def quiet_libraries():
    """Hides TensorFlow's and absl's start-up messages (unless KERASNETS_DEBUG
    is set): TensorFlow prints them from C++ when it loads, before any log
    level applies, so the import runs with stderr captured; what it captured
    is shown if the import fails."""
    if os.environ.get("KERASNETS_DEBUG"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def captured_stderr():
    """File descriptor 2 redirected to a temporary file for the block; on an
    exception the captured text is written back to stderr."""
    if os.environ.get("KERASNETS_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def progress(first):
    """A one-line status on stderr for long steps (a terminal only): yields
    ``update(text)``."""
    if not sys.stderr.isatty():
        yield lambda text: None
        return
    from rich.console import Console

    with Console(stderr=True).status(f"{first}...") as status:
        yield lambda text: status.update(f"{text}...")


def load_tensorflow():
    """Imports TensorFlow and Keras quietly (see ``quiet_libraries``)."""
    if "keras" in sys.modules and "tensorflow" in sys.modules:
        return
    with captured_stderr():
        import keras  # noqa: F401  (imports the backend)

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")
    with contextlib.suppress(ImportError):
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
