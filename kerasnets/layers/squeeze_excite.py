"""Squeeze-and-excitation block (Hu et al., "Squeeze-and-Excitation
Networks", CVPR 2018, arXiv:1709.01507), usable on any 4-D feature map."""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerasnets")
class SEBlock(keras.layers.Layer):
    """Rescales each channel by a gate computed from the global context
    (Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018,
    arXiv:1709.01507).

    ``x * gate(expand(act(reduce(mean_hw(x)))))`` with 1x1 convolutions
    ``reduce`` (C -> squeeze channels) and ``expand`` (-> C), as in the
    paper's Fig. 2/3 (its FC layers are 1x1 convs on the pooled map).

    Args:
        ratio: reduction ratio r (squeeze channels = C // r); the paper's 16.
        squeeze_channels: explicit squeeze width (overrides ``ratio``).
        activation: between the two convolutions (paper: ReLU).
        gate_activation: the gate (paper: sigmoid; MobileNetV3: hard_sigmoid).
        use_bias: biases on both convolutions.

    Example (put SE into your own network):
        >>> inputs = keras.Input((32, 32, 3))
        >>> x = keras.layers.Conv2D(64, 3, padding="same")(inputs)
        >>> x = kerasnets.layers.SEBlock(ratio=16)(x)  # 64 -> 4 -> 64 gates
        >>> keras.Model(inputs, x).count_params()  # 1792 conv + 580 SE
        2372
    """

    def __init__(
        self,
        ratio=16,
        squeeze_channels=None,
        activation="relu",
        gate_activation="sigmoid",
        use_bias=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if squeeze_channels is None and not ratio:
            raise ValueError("SEBlock needs `ratio` or `squeeze_channels`.")
        self.ratio = ratio
        self.squeeze_channels = squeeze_channels
        self.activation = keras.activations.get(activation)
        self.gate_activation = keras.activations.get(gate_activation)
        self.use_bias = use_bias

    def build(self, input_shape):
        channels = input_shape[-1]
        squeeze = self.squeeze_channels or max(1, channels // self.ratio)
        self.reduce = layers.Conv2D(
            squeeze, 1, use_bias=self.use_bias, dtype=self.dtype_policy, name="reduce"
        )
        self.expand = layers.Conv2D(
            channels, 1, use_bias=self.use_bias, dtype=self.dtype_policy, name="expand"
        )
        self.reduce.build((None, 1, 1, channels))
        self.expand.build((None, 1, 1, squeeze))

    def gate(self, inputs):
        """The per-channel gates, shape ``(batch, 1, 1, channels)``: what
        ``call`` multiplies ``inputs`` by (the excitation of the paper's
        Fig. 6)."""
        context = ops.mean(inputs, axis=(1, 2), keepdims=True)
        return self.gate_activation(self.expand(self.activation(self.reduce(context))))

    def call(self, inputs):
        return inputs * self.gate(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "ratio": self.ratio,
            "squeeze_channels": self.squeeze_channels,
            "activation": keras.activations.serialize(self.activation),
            "gate_activation": keras.activations.serialize(self.gate_activation),
            "use_bias": self.use_bias,
        }
