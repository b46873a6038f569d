"""``convert``: a source checkpoint (or a pretrained tag) built into a
kerasnets model, checked against its reference, saved atomically."""

import dataclasses
import os
import time

import numpy as np

from kerasnets import registry
from kerasnets.convert.parity import (
    DEFAULT_IMAGES,
    DEFAULT_TOLERANCE,
    ParityResult,
    check_parity,
)
from kerasnets.files import partial_path, remove, remove_stale_partials
from kerasnets.text import format_bytes

OUTPUT_SUFFIXES = {".weights.h5": "Keras weights", ".keras": "whole Keras model"}
FORMAT_NAMES = {
    "keras": "Keras weights (.weights.h5)",
    "keras_h5": "legacy keras .h5 (keras.applications layout)",
    "safetensors": "PyTorch state dict (safetensors)",
    "pth": "PyTorch state dict (torch pickle, weights-only)",
    "mxnet_params": "MXNet checkpoint (.params)",
}


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


def output_kind(output):
    name = os.fspath(output).lower()
    for suffix, kind in OUTPUT_SUFFIXES.items():
        if name.endswith(suffix):
            return suffix, kind
    raise ValueError(
        f"Cannot tell what to write to {os.fspath(output)!r}: the output must end in "
        "'.weights.h5' (weights) or '.keras' (the whole model)."
    )


def convert(source, builder, output, include_top=True, parity=True, *,
            model_kwargs=None, tolerance=DEFAULT_TOLERANCE, images=DEFAULT_IMAGES,
            progress=None):
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
        progress: called with a short text at each step.

    Returns:
        ``ConvertReport``. Raises ``ValueError`` when the source cannot be
        loaded strictly, ``ParityError`` when the converted model does not
        match the reference; in both cases ``output`` is left untouched.
    """
    say = progress or (lambda text: None)
    start = time.perf_counter()
    entry = registry.get(builder if isinstance(builder, str)
                         else getattr(builder, "__name__", str(builder)))
    name, build = entry.name, entry.builder
    options = dict(model_kwargs or {})
    for reserved in ("weights", "include_top", "input_tensor"):
        if reserved in options:
            raise ValueError(
                f"`{reserved}` is set by convert itself (source / include_top), not a model "
                "argument."
            )
    if not (isinstance(tolerance, (int, float)) and 0 <= tolerance < float("inf")):
        raise ValueError(f"tolerance={tolerance!r}: expected a finite number of at least 0 "
                         "(the largest accepted max |diff| / logit spread).")
    if images < 2:
        raise ValueError(f"images={images}: the parity check needs at least 2 images (the "
                         "logit spread is measured across them).")
    suffix, kind = output_kind(output)
    output = os.path.abspath(os.fspath(output))
    source = os.fspath(source)

    from kerasnets import weights as weights_lib
    from kerasnets.weights import loading

    say(f"building {name} with {os.path.basename(source)}")
    if weights_lib.is_path(source):
        if not os.path.isfile(source):
            raise ValueError(f"The source checkpoint {source!r} does not exist.")
        if os.path.abspath(source) == output:
            raise ValueError("The output file would overwrite the source checkpoint.")
        source_format = loading.file_format(source)
        model = build(weights=source, include_top=include_top, **options)
        source_path = source
    else:
        # The builder validates the tag and picks its file (MobileNet: per
        # alpha and input size); the model records the configuration.
        model = build(weights=source, include_top=include_top, **options)
        cfg = model.pretrained_cfg
        source_path = weights_lib.fetch(cfg, include_top=include_top)
        source_format = cfg.format

    names = _source_tensor_names(source_path, source_format, model)
    loaded = len(model.weights)  # strict loading: one tensor per variable
    bookkeeping = sum(1 for n in names if n.endswith("num_batches_tracked"))
    unused = {"BatchNorm step counters": bookkeeping,
              "classifier tensors (include_top=False)": len(names) - loaded - bookkeeping}

    if parity:
        say("running the reference implementation (parity check)")
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
    say(f"writing {os.path.basename(output)}")
    _save(model, output, suffix)

    from kerasnets.weights.cache import file_digest

    report.output_bytes = os.path.getsize(output)
    report.output_sha256 = file_digest(output)
    report.seconds = time.perf_counter() - start
    return report


def _source_tensor_names(path, fmt, model):
    """Names of the tensors the source file holds."""
    if fmt == "keras":
        return [v.path for v in model.weights]
    if fmt == "keras_h5":
        from kerasnets.weights.guard import open_hdf5

        with open_hdf5(path) as f:
            group = f["model_weights"] if "layer_names" not in f.attrs else f
            names = []
            for layer in group.attrs["layer_names"]:
                layer = layer.decode() if isinstance(layer, bytes) else layer
                names += [n.decode() if isinstance(n, bytes) else n
                          for n in group[layer].attrs["weight_names"]]
            return names
    from kerasnets.weights.loading import tensor_shapes

    return list(tensor_shapes(path, fmt))  # declared names only: no data read


def _save(model, output, suffix):
    """Saves through a temporary name in the output's folder, then renames
    (the partial files of a killed conversion are removed first)."""
    os.makedirs(os.path.dirname(output), exist_ok=True)
    remove_stale_partials(output)
    temporary = partial_path(output, suffix)
    try:
        if suffix == ".keras":
            model.save(temporary)
        else:
            model.save_weights(temporary)
        os.replace(temporary, output)
    except BaseException:
        remove(temporary)
        raise
