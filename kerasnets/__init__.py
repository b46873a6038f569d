"""kerasnets: Keras 3 applications for DenseNet, MobileNet v1/v2/v3, SENet, DPN and IGC."""

__version__ = "0.1.0"

from kerasnets import layers  # noqa: F401
from kerasnets import weights  # noqa: F401
