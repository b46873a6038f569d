"""Formats, the report, and the check of an exported model against Keras."""

import contextlib
import dataclasses
import logging
import os
import shutil
import uuid
import warnings
from typing import Optional, Tuple

import numpy as np

FORMATS = ("savedmodel", "tflite", "onnx")
KERAS_FORMATS = {"savedmodel": "tf_saved_model", "tflite": "litert", "onnx": "onnx"}
_FORMAT_ALIASES = {
    "tf_saved_model": "savedmodel", "saved_model": "savedmodel",
    "litert": "tflite", "tflite": "tflite", "onnx": "onnx", "savedmodel": "savedmodel",
}
QUANTIZATIONS = ("float16", "int8")
SYNTHETIC = "synthetic"
DEFAULT_RTOL = 1e-3
DEFAULT_MIN_AGREEMENT = 0.8
# Quantized exports of class scores: the limit of ``probability_diff`` (the
# largest change of a class probability, averaged over the images).
MAX_PROBABILITY_DIFF = 0.1
# Quantized exports of other outputs: the limit of ``rms_diff``.
MAX_QUANTIZED_RMS = 0.5
CHECK_SAMPLES = 16
# The float check's limit is at least NOISE_FACTOR times the Keras model's
# own variation between batch sizes (NOISE_SAMPLES images run one by one):
# a chaotic model (a deep random network, where an input change of 1e-6
# moves the logits by their whole spread) cannot be checked more tightly.
NOISE_SAMPLES = 4
NOISE_FACTOR = 4.0
# Probabilities below this are compared as this (float32 normals end at 1e-38).
PROBABILITY_FLOOR = 1e-30
# The scale of a check is at least this fraction of the outputs' RMS: a
# network whose outputs hardly depend on the input (random weights) is then
# held to float32 rounding of its outputs, not to a vanishing spread.
SCALE_FLOOR = 1e-2


class ExportError(ValueError):
    """The export failed, or the exported model does not reproduce Keras."""


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """What ``export_model`` wrote and how the written model compared.

    Attributes:
        path: the exported file (SavedModel: directory).
        format: "savedmodel", "tflite" or "onnx".
        quantize: None, "float16" or "int8".
        model: the model's name (builder name where known).
        weights: what the weights are: a tag or file (builder names),
            "random", "from FILE.keras", or "as given" (a keras.Model).
        input_shape: the exported input, ``(None, H, W, C)``.
        preprocessing: how inputs must be preprocessed (a mode or mean/std).
        file_size: bytes on disk (a SavedModel: all its files).
        samples: images the check ran on.
        sample_source: "synthetic" or the calibration dataset.
        compared: "logits", "log-probabilities" or "outputs".
        max_abs_diff: largest absolute difference to Keras (in ``compared``).
        scale: the logit scale the difference is measured against.
        relative_diff: ``max_abs_diff / scale``.
        rms_diff: RMS difference over ``scale``.
        agreement: top-1 agreement with Keras (None: not class scores).
        probability_diff: the largest absolute difference of a class
            probability (softmax of logits), averaged over the images (None:
            not class scores).
        keras_noise: how far the Keras model's own outputs move (over
            ``scale``) when a few images run one at a time instead of in a
            batch: the float32 rounding noise of the model itself.
        rtol: the float check's limit on ``relative_diff``: ``rtol``, or
            ``NOISE_FACTOR * keras_noise`` where larger (None: quantized).
        min_agreement: the quantized check's limit on ``agreement`` (None:
            float export).
        max_probability_diff: the quantized check's limit on
            ``probability_diff`` (None: float export).
        rewrites: export-time layer rewrites, e.g.
            ("Conv2D(groups>1) -> GroupConv2D: 3",).
        seconds: wall time of export and check.
    """

    path: str
    format: str
    quantize: Optional[str]
    model: str
    weights: str
    input_shape: Tuple
    preprocessing: str
    file_size: int
    samples: int
    sample_source: str
    compared: str
    max_abs_diff: float
    scale: float
    relative_diff: float
    rms_diff: float
    agreement: Optional[float]
    keras_noise: float
    rtol: Optional[float]
    min_agreement: Optional[float]
    probability_diff: Optional[float] = None
    max_probability_diff: Optional[float] = None
    rewrites: Tuple[str, ...] = ()
    seconds: float = 0.0

    def rows(self):
        """(label, text) pairs for display (``kerasnets export`` prints them)."""
        size = self.file_size / 1e6
        rows = [
            ("model", self.model),
            ("weights", self.weights),
            ("format", self.format + (f", {self.quantize} quantized" if self.quantize else "")),
            ("output", f"{self.path} ({size:,.2f} MB)"),
            ("input", (f"float32 {_shape_text(self.input_shape)}, preprocessed: "
                       f"{self.preprocessing}")),
            ("checked on", f"{self.samples} images ({self.sample_source}), {self.compared}"),
            ("max abs diff", f"{self.max_abs_diff:.3g} (logit scale {self.scale:.3g})"),
        ]
        if not self.quantize:
            rows += [
                ("relative diff", f"{self.relative_diff:.2e} (limit {self.rtol:.3g})"),
                ("Keras vs itself", f"{self.keras_noise:.2e} (images one at a time vs "
                                    f"batched; the limit is at least {NOISE_FACTOR:g}x this)"),
            ]
            if self.agreement is not None:
                rows.append(("top-1 agreement", f"{100 * self.agreement:.1f}% (no limit: "
                                                "the relative diff is the check)"))
        elif self.agreement is not None:
            rows += [
                ("relative diff", f"{self.relative_diff:.2e} (no limit: quantized scores are "
                                  "checked by top-1 agreement and probabilities)"),
                ("top-1 agreement", f"{100 * self.agreement:.1f}% (limit "
                                    f"{100 * self.min_agreement:g}%)"),
                ("probability diff", f"{self.probability_diff:.3g} (limit "
                                     f"{self.max_probability_diff:g}; largest change of a "
                                     "class probability, mean over the images)"),
            ]
        else:
            rows += [
                ("relative diff", f"{self.relative_diff:.2e} (no limit: quantized outputs "
                                  "are checked by the RMS diff)"),
                ("RMS diff", f"{self.rms_diff:.3g} (limit {MAX_QUANTIZED_RMS:g})"),
            ]
        if self.rewrites:
            rows.append(("rewritten", "; ".join(self.rewrites)))
        rows.append(("time", f"{self.seconds:.1f} s"))
        return rows


def _shape_text(shape):
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"


# ------------------------------------------------------------------ formats


# Formats Keras exports on each backend (Keras 3.15, measured: README
# "Backends"). ONNX on JAX goes through jax2onnx and LiteRT on PyTorch
# through litert-torch when they are installed; Keras' SavedModel export on
# PyTorch fails (torch.export's dynamic shapes), and its LiteRT export needs
# TensorFlow or PyTorch.
BACKEND_FORMATS = {
    "tensorflow": ("savedmodel", "tflite", "onnx"),
    "jax": ("savedmodel", "onnx"),
    "torch": ("onnx", "tflite"),
}


def check_backend_format(format, backend):
    """Refuses, before any work, a format Keras cannot export on ``backend``."""
    supported = BACKEND_FORMATS.get(backend, ())
    if format not in supported:
        others = [b for b, formats in BACKEND_FORMATS.items() if format in formats]
        raise ValueError(
            f"Keras cannot export {format} on the {backend} backend (it exports "
            f"{', '.join(supported) or 'nothing'} there): run the export with "
            f"KERAS_BACKEND={others[0]} (the same model and weights files work).")


def resolve_format(format, path):
    """The export format: given, or read from the path (``.tflite``,
    ``.onnx``, a name without an extension: a SavedModel directory; other
    extensions are refused); checks they agree."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if format is None:
        if ext not in ("", ".tflite", ".onnx"):
            raise ValueError(
                f"Cannot tell the export format of {path!r} from its extension {ext!r}: "
                "use .tflite (LiteRT), .onnx, or a directory name without an extension "
                "(SavedModel), or pass the format (--format savedmodel).")
        format = {".tflite": "tflite", ".onnx": "onnx"}.get(ext, "savedmodel")
    key = str(format).lower()
    if key not in _FORMAT_ALIASES:
        raise ValueError(
            f"Unknown export format {format!r}: expected one of {', '.join(FORMATS)}."
        )
    format = _FORMAT_ALIASES[key]
    if format == "tflite" and ext != ".tflite":
        raise ValueError(f"A LiteRT export is a .tflite file; received the path {path!r}.")
    if format == "onnx" and ext != ".onnx":
        raise ValueError(f"An ONNX export is a .onnx file; received the path {path!r}.")
    if format == "savedmodel" and ext in (".tflite", ".onnx", ".keras", ".h5"):
        raise ValueError(
            f"A SavedModel is a directory; {path!r} names a {ext} file "
            "(choose the format that matches, or a directory name)."
        )
    return format


def _check_destination(path, format):
    if format == "savedmodel":
        if os.path.isfile(path):
            raise ValueError(f"{path!r} is a file; a SavedModel is written as a directory.")
        if (os.path.isdir(path) and os.listdir(path)
                and not os.path.exists(os.path.join(path, "saved_model.pb"))):
            raise ValueError(
                f"{path!r} is a directory that holds no SavedModel; refusing to replace it."
            )
    elif os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory; a {format} export is a file.")


def _disk_size(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, f))
                   for root, _, files in os.walk(path) for f in files)
    return os.path.getsize(path)


# ---------------------------------------------------------------- running


@contextlib.contextmanager
def _quiet_converters():
    """tf2onnx logs every step at INFO; keep its warnings only."""
    loggers = [logging.getLogger(name) for name in ("tf2onnx", "absl")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def _on_cpu():
    """Runs TensorFlow on the CPU: GPUs compute float32 convolutions with
    TensorFloat-32 by default (10-bit mantissas), which would dwarf the
    differences the check looks for."""
    import keras

    if keras.backend.backend() != "tensorflow":
        yield
        return
    import tensorflow as tf

    with tf.device("/CPU:0"):
        yield


def _tflite_interpreter(path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        return Interpreter(model_path=path)


def load_exported(path, format=None):
    """A function running the exported model at ``path`` on a float32 numpy
    batch and returning its outputs as numpy (SavedModel: its ``serve``
    endpoint; LiteRT: the interpreter, resized to the batch; ONNX:
    onnxruntime on the CPU)."""
    path = os.fspath(path)
    format = resolve_format(format, path)
    if format == "savedmodel":
        import tensorflow as tf

        loaded = tf.saved_model.load(path)
        serve = getattr(loaded, "serve", None) or loaded.signatures["serving_default"]

        def run(x):
            with tf.device("/CPU:0"):  # float32 (no TensorFloat-32), as the reference
                out = serve(tf.constant(x))
            if isinstance(out, dict):
                out = next(iter(out.values()))
            return np.asarray(out)

        run.loaded = loaded  # keeps the variables alive
        return run
    if format == "tflite":
        interpreter = _tflite_interpreter(path)
        index = interpreter.get_input_details()[0]["index"]
        state = {"shape": None}

        def run(x):
            x = np.ascontiguousarray(x, np.float32)
            if state["shape"] != x.shape:
                interpreter.resize_tensor_input(index, x.shape)
                interpreter.allocate_tensors()
                state["shape"] = x.shape
            interpreter.set_tensor(index, x)
            interpreter.invoke()
            return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()

        return run
    import onnx
    import onnxruntime

    graph = onnx.load(path, load_external_data=False).graph
    foreign = sorted({f"{node.op_type} ({node.name})" for node in graph.node
                      if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type)})
    if foreign:
        raise ExportError(
            f"The ONNX export kept operations ONNX does not define: {', '.join(foreign[:5])}"
            + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            + " (the converter could not translate them; see kerasnets.export)."
        )
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x):
        return session.run(None, {name: np.asarray(x, np.float32)})[0]

    return run


def _batched(fn, images, batch_size):
    return np.concatenate([np.asarray(fn(images[i:i + batch_size]))
                           for i in range(0, len(images), batch_size)])


def compare(expected, actual):
    """Numbers of the check: dict with compared, max_abs_diff, scale,
    relative_diff, rms_diff, agreement (see ``ExportReport``)."""
    expected = np.asarray(expected, np.float64)
    actual = np.asarray(actual, np.float64)
    if expected.shape != actual.shape:
        raise ExportError(
            f"The exported model returns shape {actual.shape}; Keras {expected.shape}."
        )
    if not np.isfinite(actual).all():
        raise ExportError("The exported model returns NaN or infinite values.")
    classes = expected.ndim == 2 and expected.shape[-1] > 1
    probabilities = (classes and expected.min() >= 0
                     and np.allclose(expected.sum(-1), 1.0, atol=1e-3))
    if probabilities:
        expected = np.log(np.maximum(expected, PROBABILITY_FLOOR))
        actual = np.log(np.maximum(actual, PROBABILITY_FLOOR))
        compared = "log-probabilities"
    else:
        compared = "logits" if classes else "outputs"
    diff = np.abs(actual - expected)
    spread = float(expected.std(axis=0).mean()) if len(expected) > 1 else 0.0
    rms = float(np.sqrt(np.mean(np.square(expected))))
    scale = max(spread, SCALE_FLOOR * rms) or 1.0
    agreement = (float(np.mean(actual.argmax(-1) == expected.argmax(-1)))
                 if classes else None)
    probability_diff = None
    if classes:
        # From the log-probabilities or the logits: softmax either way.
        change = np.abs(_softmax(actual) - _softmax(expected)).max(-1)
        probability_diff = float(change.mean())
    return {
        "compared": compared,
        "max_abs_diff": float(diff.max()),
        "scale": scale,
        "relative_diff": float(diff.max()) / scale,
        "rms_diff": float(np.sqrt(np.mean(np.square(diff)))) / scale,
        "agreement": agreement,
        "probability_diff": probability_diff,
    }


def _softmax(logits):
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def check_failure(numbers, *, quantize, limit=DEFAULT_RTOL, noise=0.0,
                  min_agreement=DEFAULT_MIN_AGREEMENT,
                  max_probability_diff=MAX_PROBABILITY_DIFF):
    """Why an export with these ``compare`` numbers fails its check (a phrase
    that follows "the export of MODEL"), or None where it passes. Float
    exports: ``relative_diff`` at most ``limit``. Quantized ones, whose
    logits move by design: class scores by top-1 agreement (at least
    ``min_agreement``) and ``probability_diff`` (at most
    ``max_probability_diff``); other outputs by ``rms_diff``."""
    if not quantize:
        if not numbers["relative_diff"] <= limit:
            return (f"does not match Keras: max abs diff {numbers['max_abs_diff']:.3g} is "
                    f"{numbers['relative_diff']:.3g} of the logit scale "
                    f"{numbers['scale']:.3g} (limit {limit:.3g}; Keras differs from itself "
                    f"by {noise:.3g} between batch sizes)")
        return None
    if numbers["agreement"] is None:
        if not numbers["rms_diff"] <= MAX_QUANTIZED_RMS:
            return (f"differs from Keras by an RMS of {numbers['rms_diff']:.3g} of the "
                    f"output spread (limit {MAX_QUANTIZED_RMS:g})")
        return None
    if not numbers["agreement"] >= min_agreement:
        return (f"agrees with the float Keras model on the top-1 class of "
                f"{100 * numbers['agreement']:.1f}% of the images (limit "
                f"{100 * min_agreement:g}%)")
    if not numbers["probability_diff"] <= max_probability_diff:
        return (f"moves the class probabilities of the float Keras model by "
                f"{numbers['probability_diff']:.3g} (largest change per image, mean over "
                f"the images; limit {max_probability_diff:g})")
    return None


def _install(tmp, path):
    """Moves the checked export into place (replacing an older one)."""
    if os.path.isdir(tmp) and os.path.exists(path):
        old = os.path.join(os.path.dirname(path) or ".",
                           f".{os.path.basename(path)}.old-{uuid.uuid4().hex[:8]}")
        os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.replace(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)
