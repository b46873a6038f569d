"""Channel shuffle (ShuffleNet; the permutation of interleaved group convs)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasnets")
class ChannelShuffle(keras.layers.Layer):
    """Permutes channels so each of ``groups`` groups feeds every next group.

    With C = groups * M channels, output channel ``b * groups + a`` is input
    channel ``a * M + b`` (a < groups, b < M): the permutation P of IGC
    (Zhang et al., "Interleaved Group Convolutions", ICCV 2017) and of
    ShuffleNet (Zhang, Zhou, Lin, Sun, CVPR 2018, arXiv:1707.01083).

    Args:
        groups: number of channel groups (must divide the channels).
        inverse: apply P^-1 instead (a shuffle with M groups).

    Example:
        >>> ChannelShuffle(2)(keras.ops.reshape(keras.ops.arange(4.0), (1, 1, 1, 4)))
        # channels [0, 2, 1, 3]
    """

    def __init__(self, groups, inverse=False, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)
        self.inverse = bool(inverse)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.groups:
            raise ValueError(
                f"ChannelShuffle({self.groups}) needs a channel count "
                f"divisible by {self.groups}; received input_shape={input_shape}."
            )

    def call(self, inputs):
        channels = inputs.shape[-1]
        split = (self.groups, channels // self.groups)
        if self.inverse:
            split = split[::-1]
        shape = ops.shape(inputs)
        x = ops.reshape(inputs, (-1, shape[1], shape[2]) + split)
        x = ops.transpose(x, (0, 1, 2, 4, 3))
        return ops.reshape(x, (-1, shape[1], shape[2], channels))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "inverse": self.inverse}
