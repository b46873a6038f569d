"""Export models for inference: SavedModel, LiteRT (``.tflite``) and ONNX.

    >>> report = kerasnets.export.export_model("MobileNetV2", "mobilenet_v2.tflite")
    >>> report = kerasnets.export.export_model(
    ...     "DPN68", "dpn68_int8.tflite", quantize="int8",
    ...     calibration="imagenette/320px", calibration_split="validation")
    >>> report.max_abs_diff, report.agreement, report.file_size

Keras 3's own exporters write the files (``Model.export`` with
``"tf_saved_model"``, ``"litert"`` and ``"onnx"``; LiteRT quantization goes
through the TFLite converter options ``Model.export`` passes on). The
exported model takes the same inputs as the Keras model: float32 NHWC
images, already preprocessed the model's way (``report.preprocessing``),
with a free batch size and a fixed image size.

Every export checks itself before it reports success: the written file is
loaded back (``tf.saved_model.load``, the LiteRT interpreter, onnxruntime)
and run on a sample batch next to the Keras model.

- float exports: the largest absolute difference of the outputs must stay
  within ``rtol`` (default 1e-3) of the logit scale, the spread of the Keras
  outputs across the batch (mean over classes of their standard deviation,
  as the parity tests measure it). Softmax outputs are compared as
  log-probabilities (logits up to a constant per image). Measured on every
  family: 3e-6 to 5e-4 of the spread; a real conversion error (a wrong
  padding or epsilon) is of the order of 1. Where the Keras model differs
  from itself by more (the same images one at a time instead of batched: a
  chaotic, e.g. deep random, network), the limit is 4 times that.
- quantized exports (``float16``, ``int8``, LiteRT only): top-1 agreement
  with the float Keras model on the calibration images (float16 without
  any: the synthetic check images) must reach ``min_agreement`` (default
  0.8); outputs that are not class scores
  (``include_top=False``) use the RMS difference relative to the spread
  instead (at most 0.5).

A failed check raises ``ExportError`` (a ``ValueError``) with the
numbers, and nothing is left at the output path: the file is written under
a temporary name beside it and renamed into place only after the check.

Export-time rewrites (the check covers them too): Keras compiles
``Conv2D(groups > 1)`` with XLA on TensorFlow, which the ONNX converter sees
as an opaque function call, so such layers are exported as
``kerasnets.layers.GroupConv2D`` (same weights, ``tf.nn.convolution``);
layers under a mixed-precision policy are exported in float32 (the Keras
reference is then the float32 model).

int8 is full-integer post-training quantization (weights and activations
int8, ranges from the representative images; float32 input and output, float
kernels only where LiteRT has no int8 one). float16 stores the weights as
float16. LiteRT exports use the builtin op set only (no TensorFlow "Flex"
ops), so they run on any LiteRT runtime.
"""

import contextlib
import dataclasses
import inspect
import json
import logging
import math
import os
import shutil
import time
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
        keras_noise: how far the Keras model's own outputs move (over
            ``scale``) when a few images run one at a time instead of in a
            batch: the float32 rounding noise of the model itself.
        rtol: the float check's limit on ``relative_diff``: ``rtol``, or
            ``NOISE_FACTOR * keras_noise`` where larger (None: quantized).
        min_agreement: the quantized check's limit (None: float export).
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
            ("relative diff", f"{self.relative_diff:.2e}"
             + (f" (limit {self.rtol:.3g})" if self.rtol is not None else "")),
        ]
        if not self.quantize:
            rows.append(("Keras vs itself", f"{self.keras_noise:.2e} (images one at a time "
                                             "vs batched)"))
        if self.agreement is not None:
            rows.append(("top-1 agreement", f"{100 * self.agreement:.1f}%"
                         + (f" (limit {100 * self.min_agreement:g}%)"
                            if self.min_agreement is not None else "")))
        elif self.quantize:
            rows.append(("RMS diff", f"{self.rms_diff:.3g} (limit {MAX_QUANTIZED_RMS:g})"))
        if self.rewrites:
            rows.append(("rewritten", "; ".join(self.rewrites)))
        rows.append(("time", f"{self.seconds:.1f} s"))
        return rows


def _shape_text(shape):
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"


# ------------------------------------------------------------------ formats


def resolve_format(format, path):
    """The export format: given, or read from the path (``.tflite``,
    ``.onnx``, anything else a SavedModel directory); checks they agree."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if format is None:
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


# ------------------------------------------------------------------- models


def _builders():
    import kerasnets

    return {n: o for n, o in vars(kerasnets).items()
            if inspect.isfunction(o) and n[:1].isupper()}


def _is_generic(builder):
    return any(p.default is inspect.Parameter.empty
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               for p in inspect.signature(builder).parameters.values())


def builder_for(model_name):
    """The builder whose models are called ``model_name`` ("densenet121",
    "mobilenetv2_1.00_224", "se_mobilenet_1.00", "DPN68"), else None.

    Ignoring case, underscores and hyphens, the longest builder name that is
    the model name or begins it followed by a digit or a dot (a size or
    width suffix) wins.
    """
    def plain(text):
        return str(text).lower().replace("_", "").replace("-", "")

    name = plain(model_name)
    found = []
    for builder in _builders():
        key = plain(builder)
        rest = name[len(key):]
        if name.startswith(key) and (not rest or rest[0].isdigit() or rest[0] == "."):
            found.append(builder)
    return max(found, key=len) if found else None


def resolve_model(model, weights="imagenet", image_size=None):
    """The Keras model to export and what is known about it.

    Args:
        model: a ``keras.Model``, a builder name ("MobileNetV2") or function,
            or the path of a ``.keras`` file.
        weights: for a builder, the weights to load (a tag, a file, or None
            for random); for a model or ``.keras`` file, the tag its weights
            came from (it only picks the preprocessing).
        image_size: the input size to build a builder at (default: the
            builder's or the weights' size).

    Returns:
        ``(keras_model, builder_name or None, weights, preprocessing or None)``;
        the preprocessing is known here only for a ``.keras`` file written by
        ``kerasnets train`` (its ``config.json``).
    """
    import keras

    from kerasnets import data

    if isinstance(model, keras.Model):
        return model, builder_for(model.name), weights, None
    if isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith(".keras"):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise ValueError(f"No such model file: {path}")
        net = keras.models.load_model(path, compile=False)
        prep, name = None, None
        config_path = os.path.join(os.path.dirname(path), "config.json")
        if os.path.isfile(config_path):  # written beside it by `kerasnets train`
            try:
                with open(config_path) as f:
                    config = json.load(f)
                prep = data.Preprocessing(**{
                    k: tuple(v) if isinstance(v, list) else v
                    for k, v in config["preprocessing"].items()})
                name = config["model"] if config.get("model") in _builders() else None
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                prep, name = None, None  # some other program's config.json
        return net, name or builder_for(net.name), None, prep
    if callable(model):
        builder, name = model, getattr(model, "__name__", str(model))
    else:
        name = str(model)
        builder = _builders().get(name)
        if builder is None:
            raise ValueError(
                f"Unknown model {name!r}: expected a builder name "
                f"({', '.join(sorted(_builders()))}) or a .keras file."
            )
    if _is_generic(builder):
        raise ValueError(f"{name} is a generic builder; name a variant "
                         "(see `kerasnets list`), or pass a built keras.Model.")
    kwargs = {"weights": weights}
    if image_size:
        kwargs["input_shape"] = (int(image_size), int(image_size), 3)
    return builder(**kwargs), name, weights, None


def _weights_text(model, weights):
    import keras

    if isinstance(model, keras.Model):
        return "as given"
    if isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith(".keras"):
        return f"from {os.path.basename(os.fspath(model))}"
    return "random" if weights is None else os.fspath(weights)


def _default_size(builder, weights):
    from kerasnets import data

    if builder and isinstance(weights, str) and not os.path.exists(weights):
        found = data._weights_entry(builder, weights)  # noqa: SLF001
        if found and found[1].input_size:
            return int(found[1].input_size)
    return 224


def _needs_rewrite(layer):
    import keras

    grouped = type(layer) is keras.layers.Conv2D and layer.groups > 1
    policy = getattr(layer, "dtype_policy", None)
    mixed = (policy is not None and not isinstance(layer, keras.layers.InputLayer)
             and policy.compute_dtype in ("float16", "bfloat16"))
    return grouped, mixed


def _graph_layers(model):
    """The layers ``keras.models.clone_model(recursive=True)`` clones one by
    one: those of a Functional or Sequential model and of such models nested
    in it (a custom layer's own sublayers are rebuilt by the custom layer)."""
    for layer in model.layers:
        if type(layer).__name__ in ("Functional", "Sequential"):
            yield from _graph_layers(layer)
        else:
            yield layer


def exportable(model):
    """``model`` with the export-time rewrites applied, and what was
    rewritten: ``Conv2D(groups > 1)`` -> ``GroupConv2D`` (same config and
    weights) and mixed-precision layers -> float32. Returns ``(model, notes,
    float32_reference)``; the model is the same object when nothing needs a
    rewrite. Only Functional and Sequential models can be rewritten."""
    import keras

    from kerasnets.layers import GroupConv2D

    found = [_needs_rewrite(layer) for layer in _graph_layers(model)]
    grouped = sum(g for g, _ in found)
    mixed = sum(m for _, m in found)
    if not grouped and not mixed:
        return model, (), False

    def clone(layer):
        is_grouped, is_mixed = _needs_rewrite(layer)
        config = layer.get_config()
        if is_mixed:
            config["dtype"] = "float32"
        cls = GroupConv2D if is_grouped else layer.__class__
        return cls.from_config(config)

    try:
        rewritten = keras.models.clone_model(model, clone_function=clone, recursive=True)
    except ValueError as error:
        raise ValueError(
            f"{model.name} has {grouped} Conv2D(groups>1) and {mixed} mixed-precision "
            "layers, which export needs to rewrite, but it is a subclassed model that "
            "cannot be cloned; build it with GroupConv2D and a float32 policy."
        ) from error
    rewritten.set_weights(model.get_weights())
    notes = []
    if grouped:
        notes.append(f"Conv2D(groups>1) -> GroupConv2D: {grouped}")
    if mixed:
        notes.append(f"mixed precision -> float32: {mixed} layers")
    return rewritten, tuple(notes), bool(mixed)


# ------------------------------------------------------------- calibration


def _preprocessing_text(prep):
    if prep.mode:
        return prep.mode
    mean = ", ".join(f"{v:.2f}" for v in prep.mean)
    std = ", ".join(f"{v:.2f}" for v in prep.std)
    return f"mean ({mean}), std ({std}) on 0-255{', BGR' if prep.bgr else ''}"


def calibration_images(calibration, image_size, preprocessing, samples=128,
                       split="train", batch_size=16, seed=0):
    """Preprocessed float32 images ``(N, S, S, 3)`` for calibration and checks.

    ``calibration``: "synthetic" (``kerasnets.data.synthetic``: uniform
    noise), a tensorflow-datasets name, ``folder:PATH`` or a directory of
    class subfolders (read with ``kerasnets.data.load``, evaluation
    transform), a numpy array of preprocessed images, or a ``tf.data``
    dataset of such images (or ``(images, labels)``). Folders contribute
    images of every class (a per-class percent slice of ``split``, shuffled
    with ``seed``); tfds datasets their first ``samples`` examples.
    """
    import tensorflow as tf

    from kerasnets import data

    samples = int(samples)
    if samples < 1:
        raise ValueError(f"calibration samples must be at least 1; received {samples}.")
    if isinstance(calibration, np.ndarray):
        images = np.asarray(calibration, np.float32)[:samples]
    elif isinstance(calibration, tf.data.Dataset):
        chunks, count = [], 0
        for element in calibration:
            chunk = element[0] if isinstance(element, (tuple, list)) else element
            chunk = np.asarray(chunk, np.float32)
            if chunk.ndim == 3:
                chunk = chunk[None]
            chunks.append(chunk)
            count += len(chunk)
            if count >= samples:
                break
        if not chunks:
            raise ValueError("The calibration dataset is empty.")
        images = np.concatenate(chunks)[:samples]
    elif calibration == SYNTHETIC:
        steps = math.ceil(samples / batch_size)
        ds = data.synthetic(image_size, batch_size, steps=steps,
                            preprocessing=preprocessing, seed=seed)
        images = np.concatenate([x.numpy() for x, _ in ds.take(steps)])[:samples]
    else:
        source = str(calibration)
        if not data.is_folder(source) and os.path.isdir(os.path.expanduser(source)):
            source = data.FOLDER_PREFIX + source
        load_split = split
        if data.is_folder(source) and "[" not in split:
            available = data.info(source, split).num_examples or 0
            if available > samples:
                load_split = f"{split}[:{min(100, math.ceil(100 * samples / available) + 1)}%]"
        ds = data.load(source, load_split, image_size, batch_size, training=False,
                       preprocessing=preprocessing, repeat=False, drop_remainder=False)
        chunks, count = [], 0
        for x, _ in ds:
            chunks.append(x.numpy())
            count += len(chunks[-1])
            if count >= samples and not data.is_folder(source):
                break
        if not chunks:
            raise ValueError(f"No images in {calibration!r} (split {split!r}).")
        images = np.concatenate(chunks)
        if data.is_folder(source):
            images = images[np.random.default_rng(seed).permutation(len(images))]
        images = images[:samples]
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"Calibration images must be a batch (N, H, W, C); "
                         f"received shape {images.shape}.")
    return images


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
    return {
        "compared": compared,
        "max_abs_diff": float(diff.max()),
        "scale": scale,
        "relative_diff": float(diff.max()) / scale,
        "rms_diff": float(np.sqrt(np.mean(np.square(diff)))) / scale,
        "agreement": agreement,
    }


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


# ----------------------------------------------------------------- export


def export_model(
    model,
    path,
    format=None,
    *,
    weights="imagenet",
    image_size=None,
    quantize=None,
    calibration=None,
    calibration_split="train",
    calibration_samples=128,
    preprocessing=None,
    batch_size=16,
    rtol=DEFAULT_RTOL,
    min_agreement=DEFAULT_MIN_AGREEMENT,
    opset=None,
):
    """Exports ``model`` to ``path`` and checks the result against Keras.

    Args:
        model: a ``keras.Model``, a builder name or function, or a
            ``.keras`` file (see ``resolve_model``).
        path: a ``.tflite`` or ``.onnx`` file or a SavedModel directory. An
            existing export there is replaced once the new one has passed
            its check; the parent directory is created if needed.
        format: "savedmodel", "tflite" (LiteRT) or "onnx"; default from
            ``path``'s extension.
        weights: for a builder name, the weights to build with (tag, file,
            or None); otherwise the tag the model's weights came from (for
            its preprocessing).
        image_size: input height and width of the export (default: the
            model's, else the weights' input size, else 224).
        quantize: None, "float16" or "int8" (LiteRT only; int8 needs
            ``calibration``).
        calibration: images for int8 calibration and for the check:
            "synthetic", a tfds name, ``folder:PATH`` / a directory, a numpy
            batch or a ``tf.data`` dataset (see ``calibration_images``),
            preprocessed with the model's preprocessing. Default: the check
            runs on synthetic images.
        calibration_split: the dataset split to read.
        calibration_samples: how many images to calibrate with.
        preprocessing: overrides the model's preprocessing (a mode such as
            "torch", a (mean, std) pair or a ``Preprocessing``). Default:
            ``kerasnets.data.preprocessing_for(builder, weights)``; a
            ``.keras`` file from ``kerasnets train``: its run's; an unknown
            model: raw 0-255 pixels (int8 then needs it given).
        batch_size: batch size for reading images and running the check.
        rtol: float exports: limit of ``max_abs_diff`` over the logit scale.
        min_agreement: quantized exports: least top-1 agreement with Keras.
        opset: ONNX opset (default: tf2onnx's).

    Returns:
        ``ExportReport``.

    Raises:
        ExportError: the converter failed, or the exported model does not
            run or disagrees with Keras (nothing is left at ``path``).
        ValueError: bad arguments, an unknown model or format.
    """
    import keras

    from kerasnets import data

    start = time.perf_counter()
    path = os.fspath(path)
    format = resolve_format(format, path)
    if quantize is not None:
        if quantize not in QUANTIZATIONS:
            raise ValueError(f"Unknown quantization {quantize!r}: expected "
                             f"{' or '.join(QUANTIZATIONS)}.")
        if format != "tflite":
            raise ValueError(f"Quantization ({quantize}) is for LiteRT exports "
                             f"(format tflite); received format {format}.")
        if keras.backend.backend() != "tensorflow":
            raise ValueError("Quantized LiteRT export needs the TensorFlow backend.")
    if quantize == "int8" and calibration is None:
        raise ValueError(
            "int8 quantization needs calibration images: pass calibration= a tfds name, "
            "folder:PATH or 'synthetic' (random images: a poor calibration, for tests)."
        )
    if not rtol > 0:
        raise ValueError(f"rtol must be positive; received {rtol}.")
    if not 0.0 <= min_agreement <= 1.0:
        raise ValueError(f"min_agreement must be in [0, 1]; received {min_agreement}.")
    _check_destination(path, format)

    net, builder, weights, known_prep = resolve_model(model, weights, image_size)
    if len(net.inputs) != 1 or len(net.outputs) != 1:
        raise ValueError(f"{net.name} has {len(net.inputs)} inputs and "
                         f"{len(net.outputs)} outputs; export handles one of each.")
    _, height, width, channels = net.input_shape
    if image_size:
        if (height, width) not in ((None, None), (image_size, image_size)):
            raise ValueError(f"{net.name} takes {height}x{width} images; "
                             f"image size {image_size} does not fit.")
        height = width = int(image_size)
    elif height is None or width is None:
        height = width = _default_size(builder, weights)
    if preprocessing is not None:
        prep = data.get_preprocessing(preprocessing)
    elif known_prep is not None:
        prep = known_prep
    elif builder is not None:
        tag = weights if isinstance(weights, str) and not os.path.exists(weights) else None
        if tag is not None and data._weights_entry(builder, tag) is None:  # noqa: SLF001
            tag = None  # a model built elsewhere: its family's preprocessing
        prep = data.preprocessing_for(builder, tag)
    elif quantize == "int8":
        raise ValueError(
            f"Cannot tell how {net.name} preprocesses its images; pass preprocessing= "
            "(--preprocessing: torch, tf, caffe, dpn, igc or none) for its calibration."
        )
    else:
        prep = data.MODES["none"]
    if channels != 3 and isinstance(calibration, str):
        raise ValueError(f"{net.name} takes {channels}-channel images; calibration "
                         "datasets give RGB: pass a numpy batch.")

    # The images: calibration (int8: all of them; otherwise the first
    # CHECK_SAMPLES check the export), or synthetic ones for the check.
    if calibration is not None:
        images = calibration_images(calibration, height, prep, calibration_samples,
                                    calibration_split, batch_size)
        if not isinstance(calibration, str):
            source = "given images"
        elif calibration == SYNTHETIC:
            source = SYNTHETIC
        else:
            source = f"{calibration}, {calibration_split}"
    elif channels == 3:
        images = calibration_images(SYNTHETIC, height, prep, CHECK_SAMPLES,
                                    batch_size=batch_size)
        source = SYNTHETIC
    else:
        images = np.random.default_rng(0).uniform(
            -1, 1, (CHECK_SAMPLES, height, width, channels)).astype(np.float32)
        source = SYNTHETIC
    if images.shape[1:] != (height, width, channels):
        raise ValueError(f"Calibration images have shape {images.shape[1:]}; "
                         f"{net.name} exports for {(height, width, channels)}.")
    check_images = images if quantize else images[:CHECK_SAMPLES]

    target, rewrites, float32_reference = exportable(net)
    reference = target if float32_reference else net

    def keras_outputs(x):
        return keras.ops.convert_to_numpy(reference(x, training=False))

    with _on_cpu():  # float32 throughout: no TensorFloat-32 on GPUs
        expected = _batched(keras_outputs, check_images, batch_size)
        # Keras against itself: a few images one at a time (other kernels,
        # other rounding). A float export cannot be held closer than this.
        alone = None if quantize else _batched(keras_outputs, check_images[:NOISE_SAMPLES], 1)

    kwargs = {}
    if format == "tflite":
        import tensorflow as tf

        kwargs["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
        if quantize:
            kwargs["optimizations"] = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            kwargs["target_spec"]["supported_types"] = [tf.float16]
        if quantize == "int8":
            def representative_dataset():
                for i in range(0, len(images), batch_size):
                    yield [images[i:i + batch_size]]

            kwargs["representative_dataset"] = representative_dataset
    elif format == "onnx" and opset is not None:
        kwargs["opset_version"] = int(opset)
    signature = [keras.InputSpec(shape=(None, height, width, channels), dtype="float32",
                                 name=net.inputs[0].name)]

    parent = os.path.dirname(os.path.abspath(path))
    created = []
    probe = parent
    while not os.path.exists(probe):
        created.append(probe)
        probe = os.path.dirname(probe)
    os.makedirs(parent, exist_ok=True)
    suffix = {"tflite": ".tflite", "onnx": ".onnx", "savedmodel": ""}[format]
    tmp = os.path.join(parent, f".{os.path.basename(path)}.partial-{uuid.uuid4().hex[:8]}{suffix}")
    installed = False
    try:
        with _quiet_converters():
            try:
                target.export(tmp, format=KERAS_FORMATS[format], verbose=False,
                              input_signature=signature, **kwargs)
            except Exception as error:
                raise ExportError(
                    f"{format} export of {net.name} failed: {type(error).__name__}: "
                    f"{' '.join(str(error).split())[:600]}"
                ) from error
            try:
                run = load_exported(tmp, format)
                actual = _batched(run, check_images, batch_size)
                del run
            except ExportError:
                raise
            except Exception as error:
                raise ExportError(
                    f"The {format} export of {net.name} does not run: "
                    f"{type(error).__name__}: {' '.join(str(error).split())[:600]}"
                ) from error
        numbers = compare(expected, actual)
        noise = 0.0
        if alone is not None:
            own = compare(expected[:len(alone)], alone)["max_abs_diff"]
            noise = own / numbers["scale"]
        limit = max(rtol, NOISE_FACTOR * noise)
        what = f"{format} export of {net.name}" + (f" ({quantize})" if quantize else "")
        if not quantize and numbers["relative_diff"] > limit:
            raise ExportError(
                f"{what} does not match Keras: max abs diff {numbers['max_abs_diff']:.3g} "
                f"is {numbers['relative_diff']:.3g} of the logit scale "
                f"{numbers['scale']:.3g} (limit {limit:.3g}; Keras differs from itself by "
                f"{noise:.3g} between batch sizes), on {len(check_images)} images."
            )
        if quantize and numbers["agreement"] is not None and numbers["agreement"] < min_agreement:
            raise ExportError(
                f"{what}: top-1 agreement with the float Keras model is "
                f"{100 * numbers['agreement']:.1f}% on {len(check_images)} calibration "
                f"images (limit {100 * min_agreement:g}%); calibrate on more or real "
                "images (calibration=), check the preprocessing, or lower min_agreement."
            )
        if quantize and numbers["agreement"] is None and numbers["rms_diff"] > MAX_QUANTIZED_RMS:
            raise ExportError(
                f"{what}: RMS difference to Keras is {numbers['rms_diff']:.3g} of the "
                f"output spread (limit {MAX_QUANTIZED_RMS:g}) on {len(check_images)} images."
            )
        size = _disk_size(tmp)
        _install(tmp, path)
        installed = True
    finally:
        if not installed:
            _remove(tmp)
            for directory in created:  # innermost first
                with contextlib.suppress(OSError):
                    os.rmdir(directory)
    return ExportReport(
        path=path, format=format, quantize=quantize,
        model=builder or net.name,
        weights=_weights_text(model, weights),
        input_shape=(None, height, width, channels),
        preprocessing=_preprocessing_text(prep), file_size=size,
        samples=len(check_images), sample_source=str(source),
        keras_noise=noise, rtol=None if quantize else limit,
        min_agreement=min_agreement if quantize else None,
        rewrites=rewrites, seconds=time.perf_counter() - start,
        **numbers,
    )


__all__ = [
    "FORMATS",
    "QUANTIZATIONS",
    "ExportError",
    "ExportReport",
    "builder_for",
    "calibration_images",
    "compare",
    "export_model",
    "exportable",
    "load_exported",
    "resolve_format",
    "resolve_model",
]
