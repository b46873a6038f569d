"""Interleaved group convolution (IGC v1 block).

Zhang, Qi, Xiao, Wang, "Interleaved Group Convolutions for Deep Neural
Networks", ICCV 2017, https://arxiv.org/abs/1707.02725 (section 3).

A regular convolution on C = L * M channels is replaced by two group
convolutions that complement each other:

1. primary group convolution: a k x k convolution with L partitions
   (groups) of M channels each (the spatial part);
2. permutation P: output channel ``b * L + a`` is primary channel
   ``a * M + b`` (a < L, b < M), so secondary partition b holds the b-th
   channel of every primary partition (a channel shuffle with L groups);
3. secondary group convolution: a 1 x 1 convolution with M partitions of L
   channels each;
4. permutation back P^T (a channel shuffle with M groups).

The block equals one convolution with kernel W = P W_d P^T W_p, the product
of two block-diagonal kernels (primary W_p, secondary W_d): every output
channel depends on every input channel (the complementary condition), with
k*k*L*M*M + L*L*M weights instead of k*k*L*L*M*M. No bias and no
normalisation inside: the networks put BatchNorm (and ReLU) after the block,
as the authors' MXNet code does.
"""

import keras
import numpy as np

from kerasnets.layers.channel_shuffle import ChannelShuffle
from kerasnets.layers.group_conv import GroupConv2D


def shuffle_indices(channels, groups):
    """Source index of each output channel of ``ChannelShuffle(groups)``:
    out[b * groups + a] = in[a * (channels // groups) + b]."""
    per_group = channels // groups
    return np.arange(channels).reshape(groups, per_group).T.reshape(-1)


def block_diagonal_kernel(kernel, groups):
    """Dense (kh, kw, C_in, C_out) kernel of a grouped (kh, kw, C_in/g, C_out)
    kernel: zero outside the diagonal blocks."""
    kernel = np.asarray(kernel)
    kh, kw, per_in, filters = kernel.shape
    per_out = filters // groups
    dense = np.zeros((kh, kw, per_in * groups, filters), dtype=kernel.dtype)
    for g in range(groups):
        dense[:, :, g * per_in:(g + 1) * per_in, g * per_out:(g + 1) * per_out] = (
            kernel[:, :, :, g * per_out:(g + 1) * per_out]
        )
    return dense


@keras.saving.register_keras_serializable(package="kerasnets")
class InterleavedGroupConv(keras.layers.Layer):
    """Interleaved group convolution: primary group conv, permutation,
    secondary 1x1 group conv, permutation back (IGC v1; Zhang et al.,
    "Interleaved Group Convolutions for Deep Neural Networks", ICCV 2017,
    arXiv:1707.02725, Sec. 3).

    Args:
        filters: output channels C (a multiple of ``primary_groups``).
        primary_groups: L, the number of primary partitions; each has
            ``filters // L`` output channels (M) and ``input_channels // L``
            input channels.
        kernel_size: spatial size of the primary convolution (int or pair).
        strides: strides of the primary convolution.
        secondary_groups: partitions of the secondary 1x1 convolution. The
            default, ``filters // L`` = M, is the paper's block (M partitions
            of L channels, and the permutation back is exactly P^T). The
            permutation back is always a channel shuffle with
            ``secondary_groups`` groups, as the authors' ``Reorder`` operator
            does; their CIFAR networks pass M_in (not M_out) in the first
            block of a down-sampling stage, which this reproduces.
        padding: "same" or "valid" (of the primary convolution; use
            ``ZeroPadding2D`` + "valid" for MXNet/PyTorch symmetric padding on
            stride-2 convolutions).
        dilation_rate: of the primary convolution.
        kernel_initializer, kernel_regularizer, kernel_constraint: for both
            convolutions.

    Sub-layers ``primary`` and ``secondary`` are ``GroupConv2D`` (fast grouped
    convolution on every backend); their kernels keep Conv2D's layout.

    Example:
        >>> igc = InterleavedGroupConv(128, primary_groups=4)  # L=4, M=32
        >>> igc(keras.ops.ones((1, 56, 56, 128))).shape
        (1, 56, 56, 128)
        >>> igc.count_params()  # 3*3*4*32*32 + 4*4*32
        37376
        >>> W = igc.equivalent_kernel()  # (3, 3, 128, 128), dense
    """

    def __init__(
        self,
        filters,
        primary_groups,
        kernel_size=3,
        strides=1,
        secondary_groups=None,
        padding="same",
        dilation_rate=1,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        kernel_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.primary_groups = int(primary_groups)
        if self.primary_groups < 1 or self.filters % self.primary_groups:
            raise ValueError(
                f"InterleavedGroupConv: filters={filters} must be a positive "
                f"multiple of primary_groups={primary_groups} (C = L * M)."
            )
        if secondary_groups is None:
            secondary_groups = self.filters // self.primary_groups
        self.secondary_groups = int(secondary_groups)
        if self.secondary_groups < 1 or self.filters % self.secondary_groups:
            raise ValueError(
                f"InterleavedGroupConv: filters={filters} must be a multiple "
                f"of secondary_groups={secondary_groups}."
            )
        self.kernel_size = _pair(kernel_size)
        self.strides = _pair(strides)
        self.padding = padding
        self.dilation_rate = _pair(dilation_rate)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        common = dict(
            use_bias=False,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            kernel_constraint=self.kernel_constraint,
            dtype=self.dtype_policy,
        )
        self.primary = GroupConv2D(
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding=padding,
            dilation_rate=self.dilation_rate,
            groups=self.primary_groups,
            name="primary",
            **common,
        )
        self.permute = ChannelShuffle(self.primary_groups, name="permute")
        self.secondary = GroupConv2D(
            self.filters, 1, groups=self.secondary_groups, name="secondary", **common
        )
        self.permute_back = ChannelShuffle(self.secondary_groups, name="permute_back")

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.primary_groups:
            raise ValueError(
                f"InterleavedGroupConv {self.name!r}: the input has {channels} "
                f"channels, which primary_groups={self.primary_groups} does not "
                "divide. The primary group convolution needs a channel count "
                "divisible by L."
            )
        self.primary.build(input_shape)
        shape = self.primary.compute_output_shape(input_shape)
        self.permute.build(shape)
        self.secondary.build(shape)
        self.permute_back.build(shape)

    def call(self, inputs):
        x = self.primary(inputs)
        x = self.permute(x)
        x = self.secondary(x)
        return self.permute_back(x)

    def compute_output_shape(self, input_shape):
        return self.primary.compute_output_shape(input_shape)

    # --------------------------------------------------------- analysis

    def equivalent_kernel(self):
        """The dense kernel W = P W_d P^T W_p of this block, in Conv2D layout
        ``(kh, kw, input_channels, filters)``: ``Conv2D(filters, kernel_size,
        strides, padding, use_bias=False)`` with this kernel gives the same
        output as the block (up to float rounding)."""
        if not self.built:
            raise ValueError(f"{self.name}: build the layer before asking for its kernel.")
        primary = block_diagonal_kernel(
            keras.ops.convert_to_numpy(self.primary.kernel), self.primary_groups
        )
        secondary = block_diagonal_kernel(
            keras.ops.convert_to_numpy(self.secondary.kernel), self.secondary_groups
        )[0, 0]
        # z = y[perm] feeds the secondary conv; out = u[perm_back].
        perm = shuffle_indices(self.filters, self.primary_groups)
        perm_back = shuffle_indices(self.filters, self.secondary_groups)
        inverse = np.argsort(perm)
        mixing = secondary[inverse][:, perm_back]  # (C, C): primary out -> block out
        return np.einsum("hwij,jo->hwio", primary, mixing)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "primary_groups": self.primary_groups,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "secondary_groups": self.secondary_groups,
            "padding": self.padding,
            "dilation_rate": self.dilation_rate,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
        }


def _pair(value):
    if isinstance(value, int):
        return (value, value)
    return tuple(int(v) for v in value)
