"""Reusable, serializable layers of kerasnets."""

from kerasnets.layers.activations import hard_sigmoid, hard_swish
from kerasnets.layers.batch_norm import BatchNormalization
from kerasnets.layers.channel_shuffle import ChannelShuffle
from kerasnets.layers.channel_split import ChannelSplit
from kerasnets.layers.checkpointed import (
    ConcatBatchNormalization,
    ConcatNormActConv2D,
    ConcatNormActGroupConv2D,
)
from kerasnets.layers.group_conv import GroupConv2D
from kerasnets.layers.image_normalization import ImageNormalization
from kerasnets.layers.interleaved_group_conv import InterleavedGroupConv
from kerasnets.layers.squeeze_excite import SEBlock

__all__ = [
    "BatchNormalization",
    "ChannelShuffle",
    "ChannelSplit",
    "ConcatBatchNormalization",
    "ConcatNormActConv2D",
    "ConcatNormActGroupConv2D",
    "GroupConv2D",
    "ImageNormalization",
    "InterleavedGroupConv",
    "SEBlock",
    "hard_sigmoid",
    "hard_swish",
]
