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
- quantized exports (``float16``, ``int8``, LiteRT only), whose logits move
  by design (the relative diff is reported, not judged): on the calibration
  images (float16 without any: the synthetic check images) the top-1
  agreement with the float Keras model must reach ``min_agreement``
  (default 0.8), and the class probabilities (softmax) may change by at
  most 0.1 (the largest change per image, averaged over the images:
  ``probability_diff``); outputs that are not class scores
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

from kerasnets.export.checks import (  # noqa: F401
    DEFAULT_MIN_AGREEMENT,
    DEFAULT_RTOL,
    FORMATS,
    MAX_PROBABILITY_DIFF,
    QUANTIZATIONS,
    SYNTHETIC,
    ExportError,
    ExportReport,
    check_failure,
    compare,
    load_exported,
    resolve_format,
)
from kerasnets.export.exporter import export_model  # noqa: F401
from kerasnets.export.sources import (  # noqa: F401
    builder_for,
    calibration_images,
    exportable,
    resolve_model,
)

__all__ = [
    "FORMATS",
    "QUANTIZATIONS",
    "ExportError",
    "ExportReport",
    "builder_for",
    "calibration_images",
    "check_failure",
    "compare",
    "export_model",
    "exportable",
    "load_exported",
    "resolve_format",
    "resolve_model",
]
