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
parity tests do. The reference is the ``reference`` of the model's
``PretrainedCfg`` for the source's layout: timm (DenseNet, DPN, legacy
SENet, tf_mobilenetv3) and pytorchcv (IGCV3) for PyTorch checkpoints,
keras.applications for legacy keras ``.h5`` files (DenseNet121/169/201,
MobileNet v1/v2/v3, InceptionV3). MXNet checkpoints have none here.

The parity check (``kerasnets.convert.parity``) runs PyTorch references in a
subprocess where TensorFlow came first.

The output is written under a temporary name in its folder and renamed into
place once complete, so a failed conversion (unreadable source, a mismatch,
a parity failure, a full disk) leaves no partial file.
"""

from kerasnets.convert.converter import (  # noqa: F401
    FORMAT_NAMES,
    OUTPUT_SUFFIXES,
    ConvertReport,
    ParityError,
    convert,
    output_kind,
)
from kerasnets.convert.parity import (  # noqa: F401
    DEFAULT_IMAGES,
    DEFAULT_TOLERANCE,
    ParityResult,
    check_parity,
    reference_cfg,
)
from kerasnets.text import parse_assignments as parse_model_args  # noqa: F401

__all__ = [
    "ConvertReport",
    "ParityError",
    "ParityResult",
    "check_parity",
    "convert",
    "parse_model_args",
    "reference_cfg",
]
