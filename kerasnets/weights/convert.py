"""Converting a source checkpoint into a Keras weights file or a whole model.

``convert(source, builder, output)`` builds ``builder`` with
``weights=source`` (strict loading: see ``kerasnets.weights.loading``),
checks it against the source's reference implementation where one is
installed, and saves it as ``.weights.h5`` (``model.save_weights``) or
``.keras`` (``model.save``). ``source`` is a checkpoint file (timm-layout
``.safetensors`` / ``.pth`` / ``.bin``, MXNet ``.params``, legacy keras
``.h5`` or ``.weights.h5``) or a registry tag (``"imagenet"``), downloaded
and cached as ``weights="imagenet"`` is. ``kerasnets convert`` is the
command-line face of it.

The parity check feeds the same random images to the converted model and
to the reference with the same weights and compares their logits (features
for ``include_top=False``): the maximum absolute difference, and that
difference over the logit spread (the mean over classes of the logits'
standard deviation across the images: what the images change), as the
parity tests do. References: timm (DenseNet, DPN, legacy SENet,
tf_mobilenetv3) and pytorchcv (IGCV3) for PyTorch checkpoints,
keras.applications for legacy keras ``.h5`` files (DenseNet121/169/201,
MobileNet v1/v2/v3, InceptionV3). MXNet checkpoints have none here.

PyTorch runs in a subprocess: imported after TensorFlow in one process it is
10-50x slower, and torchvision (imported by timm) crashes. The subprocess
loads this file directly, not the kerasnets package (which imports
TensorFlow), so this module imports only the standard library and numpy at
the top; everything else is imported where it is used. Where torch and the
reference library were imported before (a process that imported them ahead
of TensorFlow, like the test suite), the reference runs in-process, on one
torch thread.

The output is written under a temporary name in its folder and renamed into
place once complete, so a failed conversion (unreadable source, a mismatch,
a parity failure, a full disk) leaves no partial file.
"""

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np

OUTPUT_SUFFIXES = {".weights.h5": "Keras weights", ".keras": "whole Keras model"}
DEFAULT_TOLERANCE = 1e-3  # of the logit spread; float32 rounding in deep nets is 1e-5..5e-4
DEFAULT_IMAGES = 4

FORMAT_NAMES = {
    "keras": "Keras weights (.weights.h5)",
    "keras_h5": "legacy keras .h5 (keras.applications layout)",
    "safetensors": "PyTorch state dict (safetensors)",
    "pth": "PyTorch state dict (torch pickle, weights-only)",
    "mxnet_params": "MXNet checkpoint (.params)",
}

# Builder -> timm model with the same architecture and state-dict layout
# (the registry's timm entries say it only in their URLs, and a file passed
# by path has no entry). MobileNetV3 names come from mobilenet_v3.PRETRAINED.
TIMM_NAMES = {
    "DenseNet121": "densenet121",
    "DenseNet161": "densenet161",
    "DenseNet169": "densenet169",
    "DenseNet201": "densenet201",
    "DPN68": "dpn68",
    "DPN68b": "dpn68b",
    "DPN92": "dpn92",
    "DPN98": "dpn98",
    "DPN107": "dpn107",
    "DPN131": "dpn131",
    "SEResNet18": "legacy_seresnet18",
    "SEResNet34": "legacy_seresnet34",
    "SEResNet50": "legacy_seresnet50",
    "SEResNet101": "legacy_seresnet101",
    "SEResNet152": "legacy_seresnet152",
    "SEResNeXt26_32x4d": "legacy_seresnext26_32x4d",
    "SEResNeXt50_32x4d": "legacy_seresnext50_32x4d",
    "SEResNeXt101_32x4d": "legacy_seresnext101_32x4d",
    "SENet154": "legacy_senet154",
}
# IGCV3 reads pytorchcv's layout: alpha -> pytorchcv model.
PYTORCHCV_IGCV3 = {1.0: "igcv3_w1", 0.75: "igcv3_w3d4", 0.5: "igcv3_wd2", 0.25: "igcv3_wd4"}
# Builder -> keras.applications model that reads the same legacy .h5 files.
KERAS_REFERENCES = {
    "DenseNet121": "DenseNet121",
    "DenseNet169": "DenseNet169",
    "DenseNet201": "DenseNet201",
    "MobileNet": "MobileNet",
    "MobileNetV2": "MobileNetV2",
    "MobileNetV3Large": "MobileNetV3Large",
    "MobileNetV3Small": "MobileNetV3Small",
    "SEInceptionV3": "InceptionV3",  # with se_ratio=None, the only way its .h5 loads
}
# Builder options that leave inference unchanged or that the check handles
# itself (the input normalisation runs in Keras; the reference gets its
# output).
_NEUTRAL_OPTIONS = {"include_top", "pooling", "classes", "input_shape", "name",
                    "classifier_activation", "include_preprocessing", "dropout",
                    "dropout_rate"}


@dataclasses.dataclass
class ParityResult:
    """How the converted model compares with the reference implementation.

    ``status``: "ok" (within ``tolerance`` of the spread), "mismatch",
    "inconclusive" (the reference's outputs hardly depend on the input, so
    the ratio means nothing), or "skipped" (no reference: ``reason`` says why).
    """

    status: str
    reference: str = ""
    reason: str = ""
    images: int = 0
    image_size: tuple = ()
    max_abs_diff: float = None
    spread: float = None
    tolerance: float = DEFAULT_TOLERANCE
    what: str = "logits"

    @property
    def ratio(self):
        if self.max_abs_diff is None or not self.spread:
            return None
        return self.max_abs_diff / self.spread

    @property
    def failed(self):
        return self.status == "mismatch"

    def describe(self):
        if self.status == "skipped":
            return f"skipped: {self.reason}"
        size = "x".join(str(s) for s in self.image_size)
        text = (f"{self.reference}, {self.images} random images {size}: max |diff| "
                f"{self.max_abs_diff:.3g}")
        if self.status == "inconclusive":
            return (text + f"; inconclusive: the reference's {self.what} barely depend "
                    f"on the input (spread {self.spread:.3g})")
        noun = self.what[:-1]  # "logit" / "feature" spread
        return (text + f" = {self.ratio:.2g} of the {noun} spread {self.spread:.3g} "
                f"({'ok' if self.status == 'ok' else 'MISMATCH'}, tolerance {self.tolerance:g})")


@dataclasses.dataclass
class ConvertReport:
    """What ``convert`` did (``rows()`` is the CLI's table)."""

    builder: str
    model_name: str
    include_top: bool
    source: str
    source_path: str
    source_format: str
    source_tensors: int
    tensors_loaded: int
    unused: dict
    parameters: int
    trainable_parameters: int
    output: str
    output_kind: str
    output_bytes: int
    output_sha256: str
    parity: ParityResult
    seconds: float

    def rows(self):
        source = self.source_path
        if self.source != self.source_path:
            source = f"{self.source} -> {self.source_path}"
        unused = ", ".join(f"{n} {what}" for what, n in self.unused.items() if n)
        loaded = f"{self.tensors_loaded:,} of {self.source_tensors:,} in the source"
        return [
            ("model", f"{self.builder} ({self.model_name}"
                      f"{'' if self.include_top else ', include_top=False'})"),
            ("source", source),
            ("source format", FORMAT_NAMES.get(self.source_format, self.source_format)),
            ("tensors loaded", loaded + (f" (unused: {unused})" if unused else "")),
            ("parameters", f"{self.parameters:,} ({self.trainable_parameters:,} trainable)"),
            ("output", f"{self.output} ({self.output_kind})"),
            ("size", format_bytes(self.output_bytes)),
            ("sha256", self.output_sha256),
            ("parity", self.parity.describe()),
            ("time", f"{self.seconds:.1f} s"),
        ]


class ParityError(ValueError):
    """The converted model disagrees with the reference; ``report`` holds
    the details (nothing was written)."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


def format_bytes(count):
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024


def parse_model_args(items):
    """``["alpha=0.35", "pooling=avg"]`` -> ``{"alpha": 0.35, "pooling": "avg"}``
    (Python literals where they parse, strings otherwise)."""
    import ast

    options = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"model argument {item!r}: expected NAME=VALUE (alpha=0.35)")
        try:
            options[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options[key] = text
    return options


def output_kind(output):
    name = os.fspath(output).lower()
    for suffix, kind in OUTPUT_SUFFIXES.items():
        if name.endswith(suffix):
            return suffix, kind
    raise ValueError(
        f"Cannot tell what to write to {os.fspath(output)!r}: the output must end in "
        "'.weights.h5' (weights) or '.keras' (the whole model)."
    )


# ------------------------------------------------------------------ convert


def convert(source, builder, output, include_top=True, parity=True, *,
            model_kwargs=None, tolerance=DEFAULT_TOLERANCE, images=DEFAULT_IMAGES):
    """Converts ``source`` for ``builder`` and saves it to ``output``.

    Args:
        source: a checkpoint path (see ``kerasnets.weights.loading``) or a
            registry tag of ``builder`` ("imagenet", "tv_in1k", ...).
        builder: a builder name ("DPN68") or function (``kerasnets.DPN68``).
        output: ``*.weights.h5`` for the weights, ``*.keras`` for the model.
        include_top: build (and convert) the classifier.
        parity: compare with the reference implementation where installed.
        model_kwargs: further builder arguments (``alpha``, ``input_shape``,
            ``pooling``, ...).
        tolerance: largest accepted max-diff / logit-spread ratio.
        images: number of random images of the parity check.

    Returns:
        ``ConvertReport``. Raises ``ValueError`` when the source cannot be
        loaded strictly, ``ParityError`` when the converted model does not
        match the reference; in both cases ``output`` is left untouched.
    """
    start = time.perf_counter()
    name, build = _resolve_builder(builder)
    options = dict(model_kwargs or {})
    for reserved in ("weights", "include_top", "input_tensor"):
        if reserved in options:
            raise ValueError(
                f"`{reserved}` is set by convert itself (source / include_top), not a model "
                "argument."
            )
    if images < 2:
        raise ValueError(f"images={images}: the parity check needs at least 2 images (the "
                         "logit spread is measured across them).")
    suffix, kind = output_kind(output)
    output = os.path.abspath(os.fspath(output))
    source = os.fspath(source)

    from kerasnets.models.common import is_weights_path
    from kerasnets.weights import loading

    if is_weights_path(source):
        if not os.path.isfile(source):
            raise ValueError(f"The source checkpoint {source!r} does not exist.")
        if os.path.abspath(source) == output:
            raise ValueError("The output file would overwrite the source checkpoint.")
        source_format = loading.file_format(source)
        model = build(weights=source, include_top=include_top, **options)
        source_path = source
    else:
        model, source_path, source_format = _build_from_tag(
            name, build, source, include_top, options)

    names = _source_tensor_names(source_path, source_format, model)
    loaded = len(model.weights)  # strict loading: one tensor per variable
    bookkeeping = sum(1 for n in names if n.endswith("num_batches_tracked"))
    unused = {"BatchNorm step counters": bookkeeping,
              "classifier tensors (include_top=False)": len(names) - loaded - bookkeeping}

    if parity:
        check = check_parity(model, name, source_path, source_format,
                             include_top=include_top, options=options,
                             tolerance=tolerance, images=images)
    else:
        check = ParityResult("skipped", reason="not requested (--no-parity)")
    report = ConvertReport(
        builder=name, model_name=model.name, include_top=include_top, source=source,
        source_path=os.path.abspath(source_path), source_format=source_format,
        source_tensors=len(names), tensors_loaded=loaded, unused=unused,
        parameters=model.count_params(),
        trainable_parameters=sum(int(np.prod(w.shape)) for w in model.trainable_weights),
        output=output, output_kind=kind, output_bytes=0, output_sha256="", parity=check,
        seconds=0.0,
    )
    if check.failed:
        report.seconds = time.perf_counter() - start
        raise ParityError(
            f"The converted {name} does not match {check.reference}: max |diff| "
            f"{check.max_abs_diff:.3g} is {check.ratio or float('nan'):.3g} of the "
            f"{check.what[:-1]} spread "
            f"(tolerance {tolerance:g}); nothing was written to {output}. Pass "
            "parity=False (--no-parity) to write it anyway.",
            report,
        )
    _save(model, output, suffix)

    from kerasnets.weights.cache import file_digest

    report.output_bytes = os.path.getsize(output)
    report.output_sha256 = file_digest(output)
    report.seconds = time.perf_counter() - start
    return report


def _resolve_builder(builder):
    import inspect

    import kerasnets

    name = builder if isinstance(builder, str) else getattr(builder, "__name__", "")
    function = getattr(kerasnets, name, None)
    if not (name[:1].isupper() and inspect.isfunction(function)):
        raise ValueError(f"Unknown kerasnets builder {builder!r}.")
    return name, function


@contextlib.contextmanager
def _recording_weights_key(tag):
    """Records the registry key under which a builder loads ``tag`` (builders
    with one file per option choose it themselves: ``MobileNet_0.5_160``).

    Wraps ``kerasnets.weights.load_into`` (what ``finish_model`` calls) for
    the duration of one build, in this thread only.
    """
    import threading

    from kerasnets import weights as weights_lib

    original = weights_lib.load_into
    thread = threading.get_ident()
    keys = []

    def recording(model, weights, *, builder, key=None, include_top=True):
        if threading.get_ident() == thread and weights == tag:
            keys.append(key or builder)
        return original(model, weights, builder=builder, key=key, include_top=include_top)

    weights_lib.load_into = recording
    try:
        yield keys
    finally:
        weights_lib.load_into = original


def _build_from_tag(name, build, tag, include_top, options):
    """Builds with ``weights=tag`` (download, verify, convert, cache) and
    returns (model, path of the source file, its format)."""
    from kerasnets import weights as weights_lib

    # The builder validates the tag itself, before building anything (and
    # knows the tags of the configuration: SEInceptionV3(se_ratio=None)
    # has InceptionV3's).
    with _recording_weights_key(tag) as keys:
        model = build(weights=tag, include_top=include_top, **options)
    if not keys:
        raise ValueError(f"{name} did not load the {tag!r} weights.")
    path, entry = weights_lib.fetch(keys[-1], tag, include_top=include_top)
    return model, path, entry.format


def _source_tensor_names(path, fmt, model):
    """Names of the tensors the source file holds."""
    if fmt == "keras":
        return [v.path for v in model.weights]
    if fmt == "keras_h5":
        import h5py

        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "layer_names" not in f.attrs else f
            names = []
            for layer in group.attrs["layer_names"]:
                layer = layer.decode() if isinstance(layer, bytes) else layer
                names += [n.decode() if isinstance(n, bytes) else n
                          for n in group[layer].attrs["weight_names"]]
            return names
    if fmt == "safetensors":
        from safetensors import safe_open

        with safe_open(path, "np") as f:
            return list(f.keys())
    if fmt == "mxnet_params":
        from kerasnets.weights.mxnet import read_params

        return list(read_params(path))
    from kerasnets.weights.loading import read_state_dict

    return list(read_state_dict(path))


def _save(model, output, suffix):
    """Saves through a temporary name in the output's folder, then renames."""
    directory, base = os.path.split(output)
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(
        directory,
        f".{base[: -len(suffix)]}.part-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")
    try:
        if suffix == ".keras":
            model.save(temporary)
        else:
            model.save_weights(temporary)
        os.replace(temporary, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


# ------------------------------------------------------------------- parity


def check_parity(model, builder, source_path, source_format, *, include_top=True,
                 options=None, tolerance=DEFAULT_TOLERANCE, images=DEFAULT_IMAGES, seed=0):
    """Compares ``model`` (loaded from ``source_path``) with the reference
    implementation of ``builder`` loaded from the same file."""
    options = dict(options or {})
    what = "logits" if include_top else "features"
    if source_format in ("safetensors", "pth"):
        reference, reason = _torch_reference(builder, options)
    elif source_format == "keras_h5":
        reference, reason = _keras_reference(builder, options)
    elif source_format == "mxnet_params":
        import importlib.util

        reference = None
        reason = ("no reference installed (MXNet)" if importlib.util.find_spec("mxnet") is None
                  else f"no MXNet definition of {builder} is bundled to compare with")
    else:
        reference, reason = None, "the source is already a Keras weights file"
    if reference is None:
        return ParityResult("skipped", reason=reason, tolerance=tolerance, what=what)

    size, reason = _image_size(model, reference)
    if size is None:
        return ParityResult("skipped", reference=reference.label, reason=reason,
                            tolerance=tolerance, what=what)
    raw, normalized = _parity_images(model, images, size, seed)
    ours = _keras_outputs(model, raw, include_top)
    pooling = None if include_top else options.get("pooling")
    try:
        theirs = reference.outputs(source_path, normalized, include_top=include_top,
                                   classes=model.output_shape[-1], pooling=pooling)
    except _ReferenceUnavailable as error:
        return ParityResult("skipped", reference=reference.label, tolerance=tolerance,
                            what=what, reason=f"{reference.label} could not run: {error}")
    if ours.shape != theirs.shape:
        return ParityResult(
            "skipped", reference=reference.label, tolerance=tolerance, what=what,
            reason=f"{reference.label} gives {what} of shape {theirs.shape}, the model "
                   f"{ours.shape}: not comparable")
    ours = ours.reshape(len(ours), -1).astype("float64")
    theirs = theirs.reshape(len(theirs), -1).astype("float64")
    spread = float(theirs.std(axis=0).mean())
    diff = float(np.abs(ours - theirs).max())
    result = ParityResult("ok", reference=reference.label, images=images, image_size=size,
                          max_abs_diff=diff, spread=spread, tolerance=tolerance, what=what)
    if not np.isfinite(diff) or (spread > 0 and diff > tolerance * spread):
        result.status = "mismatch"
    elif spread <= 1e-3 * float(np.abs(theirs).mean() + 1e-12):
        result.status = "inconclusive"
    return result


class _ReferenceUnavailable(Exception):
    pass


def _image_size(model, reference):
    """(rows, cols) of the parity images (the model's, 224 where free), or
    (None, why not)."""
    shape = model.input_shape[1:3]
    fixed = reference.fixed_size
    if fixed:
        if any(s not in (None, fixed) for s in shape):
            return None, f"{reference.label} runs at {fixed}x{fixed} only; the model takes {shape}"
        return (fixed, fixed), ""
    return tuple(s or 224 for s in shape), ""


def _preprocessing_layers(model):
    """The normalisation layers the model starts with (include_preprocessing)."""
    import keras

    from kerasnets.layers import ImageNormalization

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if not isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization,
                                  ImageNormalization)):
            break
        found.append(layer)
    return found


def _parity_images(model, count, size, seed):
    """Random images in the model's input space, and the same images as the
    reference takes them (after the model's own normalisation layers)."""
    import keras

    rng = np.random.default_rng(seed)
    layers = _preprocessing_layers(model)
    low, high = (0.0, 255.0) if layers else (-1.0, 1.0)
    raw = rng.uniform(low, high, (count,) + tuple(size) + (3,)).astype("float32")
    normalized = raw
    for layer in layers:
        normalized = keras.ops.convert_to_numpy(layer(normalized))
    return raw, np.ascontiguousarray(normalized, dtype="float32")


def _keras_outputs(model, images, include_top):
    """The model's logits (its classifier activation set aside) or features."""
    import keras

    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    linear = keras.activations.get(None)
    swap = include_top and activation is not None and activation is not linear
    if swap:
        last.activation = linear
    try:
        return keras.ops.convert_to_numpy(model(images, training=False))
    finally:
        if swap:
            last.activation = activation


def _unsupported(options, allowed, label):
    extra = sorted(set(options) - _NEUTRAL_OPTIONS - set(allowed))
    if extra:
        return f"{label} has no counterpart of the option(s) {', '.join(extra)}"
    return None


# --------------------------------------------------------- keras reference


@dataclasses.dataclass
class _KerasReference:
    application: str
    kwargs: dict
    fixed_size: int = None

    @property
    def label(self):
        return f"keras.applications.{self.application}"

    def outputs(self, path, images, *, include_top, classes, pooling):
        import keras

        constructor = getattr(keras.applications, self.application)
        kwargs = dict(self.kwargs, include_top=include_top, weights=None, classes=classes,
                      pooling=pooling, input_shape=images.shape[1:])
        if include_top:
            kwargs["classifier_activation"] = None
        if self.application.startswith("MobileNetV3"):
            kwargs["include_preprocessing"] = False  # the images are normalised already
        try:
            reference = constructor(**kwargs)
            reference.load_weights(path)
        except (ValueError, OSError, KeyError) as error:
            raise _ReferenceUnavailable(" ".join(str(error).split())[:300]) from error
        return keras.ops.convert_to_numpy(reference(images, training=False))


def _keras_reference(builder, options):
    import inspect

    import keras

    application = KERAS_REFERENCES.get(builder)
    if application is None:
        return None, f"keras.applications has no {builder}"
    if builder == "SEInceptionV3":
        options = {k: v for k, v in options.items() if k != "se_ratio"}
    accepted = inspect.signature(getattr(keras.applications, application)).parameters
    allowed = [k for k in options if k in accepted]
    reason = _unsupported(options, allowed, f"keras.applications.{application}")
    if reason:
        return None, reason
    # Architecture options (alpha, depth_multiplier, minimalistic, dropout)
    # pass through; the head and input are set by ``outputs``.
    handled = {"include_top", "pooling", "classes", "input_shape", "name",
               "classifier_activation", "include_preprocessing"}
    kwargs = {k: options[k] for k in allowed if k not in handled}
    return _KerasReference(application, kwargs), ""


# --------------------------------------------------------- torch reference


@dataclasses.dataclass
class _TorchReference:
    library: str  # "timm" or "pytorchcv"
    name: str
    test_time_pool: bool = False
    fixed_size: int = None

    @property
    def label(self):
        return f"{self.library} {self.name}"

    def loaded_here(self):
        """True when PyTorch and the reference library are imported in this
        process already (before TensorFlow, as the test suite does): nothing
        to import, so no subprocess is needed."""
        needed = ["torch", self.library] + (["torchvision"] if self.library == "timm" else [])
        return all(module in sys.modules for module in needed)

    def outputs(self, path, images, *, include_top, classes, pooling):
        spec = dict(library=self.library, name=self.name, path=os.path.abspath(path),
                    include_top=include_top, classes=classes, pooling=pooling,
                    test_time_pool=self.test_time_pool)
        if self.loaded_here():
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # beside TensorFlow's pools more threads are slower
            try:
                return _reference_outputs(spec, images)
            except Exception as error:
                raise _ReferenceUnavailable(f"{type(error).__name__}: {error}") from error
            finally:
                torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory(prefix="kerasnets-parity-") as folder:
            spec["images"] = os.path.join(folder, "images.npy")
            spec["outputs"] = os.path.join(folder, "outputs.npy")
            np.save(spec["images"], images)
            command = [sys.executable, "-c", _WORKER, os.path.abspath(__file__), json.dumps(spec)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=1800,
                                  env=dict(os.environ, PYTHONWARNINGS="ignore"))
            if done.returncode != 0:
                lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
                raise _ReferenceUnavailable(lines[-1] if lines else f"exit {done.returncode}")
            return np.load(spec["outputs"])


def _torch_reference(builder, options):
    import importlib.util

    if builder == "IGCV3":
        library = "pytorchcv"
        name = PYTORCHCV_IGCV3.get(float(options.get("alpha", 1.0)))
        if name is None:
            return None, f"pytorchcv has no IGCV3 with alpha={options['alpha']}"
        allowed = ["alpha"]
    elif builder.startswith("MobileNetV3") and builder != "MobileNetV3":
        from kerasnets.models.mobilenet_v3 import PRETRAINED

        library = "timm"
        config = (builder[len("MobileNetV3"):].lower(), float(options.get("alpha", 1.0)),
                  bool(options.get("minimalistic", False)))
        if config not in PRETRAINED:
            return None, f"timm has no tf_mobilenetv3 model for {builder} {config[1:]}"
        name = PRETRAINED[config][2].split(".")[0]
        allowed = ["alpha", "minimalistic"]
    elif builder in TIMM_NAMES:
        library, name = "timm", TIMM_NAMES[builder]
        allowed = ["test_time_pool"]
    else:
        return None, f"no timm (or pytorchcv) model corresponds to {builder}"
    reason = _unsupported(options, allowed, f"{library} {name}")
    if reason:
        return None, reason
    missing = [m for m in ("torch", library) if importlib.util.find_spec(m) is None]
    if missing:
        return None, f"no reference installed ({', '.join(missing)}: pip install {library})"
    return _TorchReference(library, name, bool(options.get("test_time_pool", False)),
                           fixed_size=224 if library == "pytorchcv" else None), ""


# Runs in a fresh interpreter: loads this file by path (not the package, which
# imports TensorFlow) and calls _reference_main.
_WORKER = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('_kerasnets_convert_worker', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "module._reference_main(sys.argv[2])\n"
)


def _load_torch_state(path):
    """A state dict read as ``kerasnets.weights.loading.read_state_dict``
    does: safetensors, or a weights-only torch pickle, wrappers removed."""
    import torch

    if path.lower().endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _reference_main(spec_json):
    """The PyTorch side of the parity check, in its own process: reads the
    images from and writes the outputs to the .npy files the spec names."""
    spec = json.loads(spec_json)
    np.save(spec["outputs"], _reference_outputs(spec, np.load(spec["images"])))


def _reference_outputs(spec, images):
    """Logits (or features, NHWC or pooled) of the reference model loaded
    from ``spec["path"]`` on NHWC ``images``."""
    import torch

    state = _load_torch_state(spec["path"])
    if spec["library"] == "timm":
        import timm

        model = timm.create_model(spec["name"], pretrained=False)
        classifier = model.pretrained_cfg.get("classifier", "classifier") + ".weight"
        classes = spec["classes"]
        if not spec["include_top"]:  # the checkpoint's own classifier, if it has one
            classes = int(state[classifier].shape[0]) if classifier in state else 0
        model.reset_classifier(classes)
    else:
        from pytorchcv.model_provider import get_model

        classes = spec["classes"] if spec["include_top"] else int(state["output.weight"].shape[0])
        model = get_model(spec["name"], pretrained=False, num_classes=classes)
    model.load_state_dict(state, strict=True)
    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        if spec["include_top"]:
            if spec["test_time_pool"]:
                from timm.layers import apply_test_time_pool

                model, _ = apply_test_time_pool(model, {"input_size": tuple(x.shape[1:])})
                model.eval()
            return model(x).float().numpy()
        if spec["library"] == "timm":
            out = model.forward_features(x)
        else:
            out = x
            for child, module in model.features.named_children():
                if child == "final_pool":
                    break
                out = module(out)
        out = out.permute(0, 2, 3, 1)
        if spec["pooling"] == "avg":
            out = out.mean(dim=(1, 2))
        elif spec["pooling"] == "max":
            out = out.amax(dim=(1, 2))
        return out.float().numpy()
