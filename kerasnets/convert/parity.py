"""The parity check of a conversion: the converted model and its reference
implementation (timm, pytorchcv, keras.applications: the ``reference`` of
the model's ``PretrainedCfg`` for the source's layout) get the same random
images; their logits (features without the top) must agree to a tolerance
of their spread.

PyTorch runs in a subprocess: imported after TensorFlow in one process it is
10-50x slower, and torchvision (imported by timm) crashes. The subprocess
loads this file directly, not the kerasnets package (which imports
TensorFlow), so this module imports only the standard library and numpy at
the top; everything else is imported where it is used. Where torch and the
reference library were imported before (a process that imported them ahead
of TensorFlow, like the test suite), the reference runs in-process, on one
torch thread.
"""

import dataclasses
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

DEFAULT_TOLERANCE = 1e-3  # of the logit spread; float32 rounding in deep nets is 1e-5..5e-4
DEFAULT_IMAGES = 4
# Builder options that leave inference unchanged or that the check handles
# itself (the input normalisation runs in Keras; the reference gets its
# output).
_NEUTRAL_OPTIONS = {"include_top", "pooling", "classes", "input_shape", "name",
                    "classifier_activation", "include_preprocessing", "dropout",
                    "dropout_rate"}
_MISSING = object()


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


# ------------------------------------------------------------------- parity


def check_parity(model, builder, source_path, source_format, *, include_top=True,
                 options=None, tolerance=DEFAULT_TOLERANCE, images=DEFAULT_IMAGES, seed=0):
    """Compares ``model`` (loaded from ``source_path``) with the reference
    implementation of ``builder`` loaded from the same file."""
    options = dict(options or {})
    what = "logits" if include_top else "features"
    if source_format in ("safetensors", "pth"):
        reference, reason = _torch_reference(builder, options, source_format)
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
    status, diff, spread = compare_outputs(ours, theirs, tolerance)
    return ParityResult(status, reference=reference.label, images=images, image_size=size,
                        max_abs_diff=diff, spread=spread, tolerance=tolerance, what=what)


def compare_outputs(ours, theirs, tolerance):
    """(status, max |diff|, spread) of the model's outputs against the
    reference's (one row per image): "ok" within ``tolerance`` of the
    spread across images, "mismatch", or "inconclusive" (the reference's
    outputs barely depend on the input)."""
    ours = np.asarray(ours).reshape(len(ours), -1).astype("float64")
    theirs = np.asarray(theirs).reshape(len(theirs), -1).astype("float64")
    spread = float(theirs.std(axis=0).mean())
    diff = float(np.abs(ours - theirs).max())
    # "not <=": a NaN (difference, spread or tolerance) is a mismatch.
    if not (np.isfinite(diff) and np.isfinite(spread)) or (
            spread > 0 and not diff <= tolerance * spread):
        return "mismatch", diff, spread
    if spread <= 1e-3 * float(np.abs(theirs).mean() + 1e-12):
        return "inconclusive", diff, spread
    return "ok", diff, spread


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


def reference_cfg(builder, source_format, options):
    """The ``PretrainedCfg`` of ``builder`` whose file has the layout of
    ``source_format`` and fits the build ``options`` (the builder's defaults
    for the others): its ``reference`` names the implementation to compare
    with. None where no such configuration is registered."""
    import inspect

    from kerasnets import registry
    from kerasnets import weights as weights_lib
    from kerasnets.weights.config import SCHEMES

    entry = registry.get(builder)
    effective = {
        name: p.default for name, p in inspect.signature(entry.builder).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    effective.update(options)
    scheme = SCHEMES[source_format]
    for cfg in weights_lib.pretrained_cfgs(entry.name):
        if cfg.scheme == scheme and cfg.reference and cfg.matches(effective):
            return cfg
    return None


def _no_reference(builder, options, source_format):
    described = "".join(f", {k}={v!r}" for k, v in options.items()
                        if k not in _NEUTRAL_OPTIONS)
    layout = "keras.applications" if source_format == "keras_h5" else "PyTorch"
    return f"no {layout} reference implementation is registered for {builder}{described}"


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

    cfg = reference_cfg(builder, "keras_h5", options)
    if cfg is None or not cfg.reference.startswith("keras:"):
        return None, _no_reference(builder, options, "keras_h5")
    application = cfg.reference.split(":", 1)[1]
    accepted = inspect.signature(getattr(keras.applications, application)).parameters
    # The options that select this file (SEInceptionV3's se_ratio=None: it is
    # then InceptionV3) are what the reference is; the others must exist there.
    options = {k: v for k, v in options.items()
               if k in accepted or cfg.options.get(k, _MISSING) != v}
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


def _torch_reference(builder, options, source_format="safetensors"):
    import importlib.util

    from kerasnets import registry

    cfg = reference_cfg(builder, source_format, options)
    if cfg is not None:
        reference, selecting = cfg.reference, list(cfg.options)
    else:  # no published file of this layout: the catalog entry's reference
        find = registry.get(builder).references.get("torch")
        reference, selecting = (find(options) if find else None), list(options)
    if not reference or reference.split(":", 1)[0] not in ("timm", "pytorchcv"):
        return None, _no_reference(builder, options, source_format)
    library, name = reference.split(":", 1)
    # Options that select the file are the reference itself; timm's DPNs
    # take test_time_pool.
    allowed = selecting + (["test_time_pool"] if library == "timm" else [])
    reason = _unsupported(options, allowed, f"{library} {name}")
    if reason:
        return None, reason
    missing = [m for m in ("torch", library) if importlib.util.find_spec(m) is None]
    if missing:
        return None, (f"no reference installed ({', '.join(missing)}: "
                      'pip install "kerasnets[parity]")')
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
