"""kerasnets: Keras 3 applications for DenseNet, MobileNet v1/v2/v3, SENet, DPN and IGC."""

__version__ = "0.1.0"

import os as _os
import sys as _sys

# TensorFlow's oneDNN CPU kernels are 3-6x faster for grouped convolutions
# (and have their gradients); TensorFlow turns them on only on some Intel
# CPUs. Imported before TensorFlow, kerasnets turns them on unless the user
# chose otherwise (set TF_ENABLE_ONEDNN_OPTS=0 to keep them off).
if "tensorflow" not in _sys.modules:
    _os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from kerasnets import layers  # noqa: F401
from kerasnets import weights  # noqa: F401
from kerasnets import data, training  # noqa: F401
from kerasnets import imagenet, utils  # noqa: F401
from kerasnets.models.densenet import DenseNet, DenseNet121, DenseNet161, DenseNet169, DenseNet201, DenseNet264, DenseNetCIFAR  # noqa: F401
from kerasnets.models.mobilenet import MobileNet  # noqa: F401
from kerasnets.models.mobilenet_v2 import MobileNetV2  # noqa: F401
from kerasnets.models.mobilenet_v3 import MobileNetV3, MobileNetV3Large, MobileNetV3Small  # noqa: F401
from kerasnets.models.dpn import DPN, DPN68, DPN68b, DPN92, DPN98, DPN107, DPN131  # noqa: F401
from kerasnets.models.senet import SENet, SENet154, SEInceptionV3, SEMobileNet, SEResNet18, SEResNet34, SEResNet50, SEResNet101, SEResNet152, SEResNeXt26_32x4d, SEResNeXt50_32x4d, SEResNeXt101_32x4d  # noqa: F401
from kerasnets.models.igc import IGCV1, IGCV1CIFAR, IGCV2, IGCV3, IGC_L4M32, IGC_L16M16, IGC_L100M2  # noqa: F401
