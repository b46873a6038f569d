"""Split a feature map into consecutive channel groups (DPN's residual and
densely connected paths), a serializable alternative to a Lambda slice."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasnets")
class ChannelSplit(keras.layers.Layer):
    """Returns ``[x[..., :s0], x[..., s0:s0+s1], ...]`` for ``sizes``.

    DPN's split of each block's output into the residual and the densely
    connected path (Chen et al., "Dual Path Networks", NeurIPS 2017,
    arXiv:1707.01629); ShuffleNet V2's "channel split" (Ma et al., ECCV
    2018, arXiv:1807.11164) is ``ChannelSplit([c, -1])``.

    Args:
        sizes: channels of each part; the last may be -1 (the remaining
            channels). The sizes must add up to the input's channels.

    Example:
        >>> x = keras.ops.ones((1, 7, 7, 320))
        >>> residual, dense = ChannelSplit([256, -1])(x)  # 256 and 64 channels
    """

    def __init__(self, sizes, **kwargs):
        super().__init__(**kwargs)
        self.sizes = [int(s) for s in sizes]

    def _resolved(self, channels):
        sizes = list(self.sizes)
        if sizes[-1] == -1:
            sizes[-1] = channels - sum(sizes[:-1])
        if min(sizes) <= 0 or sum(sizes) != channels:
            raise ValueError(
                f"ChannelSplit({self.sizes}) cannot split {channels} channels: "
                "the sizes must be positive and add up to the channel count."
            )
        return sizes

    def build(self, input_shape):
        self._resolved(input_shape[-1])

    def call(self, inputs):
        sizes = self._resolved(inputs.shape[-1])
        bounds = [sum(sizes[:i]) for i in range(1, len(sizes))]
        return ops.split(inputs, bounds, axis=-1)

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape[:-1]) + (s,) for s in self._resolved(input_shape[-1])]

    def get_config(self):
        return {**super().get_config(), "sizes": self.sizes}
