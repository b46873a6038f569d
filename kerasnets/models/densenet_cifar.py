"""DenseNet for CIFAR and SVHN (32x32 inputs).

Reference:
    Gao Huang, Zhuang Liu, Laurens van der Maaten, Kilian Q. Weinberger,
    "Densely Connected Convolutional Networks", CVPR 2017,
    https://arxiv.org/abs/1608.06993, Section 4 and Table 2.

The dense blocks, transition layers and the final BN-ReLU are the ImageNet
networks' (``kerasnets.models.densenet``); the CIFAR networks differ in the
stem (one 3x3 convolution, no pooling), three dense blocks of equal depth on
32x32, 16x16 and 8x8 maps, and a depth L that fixes the layers per block.
Weights are always trained from scratch here (none are published).

Table 2 (paper's C10+ / C100+ error rates, with data augmentation):

| model        | L   | k  | C10+ / C100+ |
|--------------|-----|----|--------------|
| DenseNet     | 40  | 12 | 5.24 / 24.42 |
| DenseNet     | 100 | 12 | 4.10 / 20.20 |
| DenseNet-BC  | 100 | 12 | 4.51 / 22.27 |
| DenseNet-BC  | 250 | 24 | 3.62 / 17.60 |
| DenseNet-BC  | 190 | 40 | 3.46 / 17.18 |

(BC = ``bottleneck=True, compression=0.5``; parameters and MACs of a
configuration: ``kerasnets.utils.count_trainable_params(model)`` and
``kerasnets.utils.count_macs(model)``.)
"""

import numbers

from keras import layers

from kerasnets import registry
from kerasnets.models.common import (
    check_arguments,
    check_features,
    classifier_top,
    finish_model,
    image_input,
    preprocessing_layer,
)
from kerasnets.models.densenet import check_options, dense_stages
from kerasnets.weights.config import IMAGENET_MEAN, IMAGENET_STD

DEFAULT_SIZE = 32
MIN_SIZE = 8
STEM_FILTERS = 16  # 2k with DenseNet-BC

# No published weights and no foreign layout: Keras weights files only.
register = registry.family("densenet", default_size=DEFAULT_SIZE, min_size=MIN_SIZE,
                           mean=IMAGENET_MEAN, std=IMAGENET_STD)


@register(generic=True)
def DenseNetCIFAR(
    depth,
    growth_rate,
    bottleneck=False,
    compression=1.0,
    dropout_rate=0.0,
    classes=10,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classifier_activation="softmax",
    name=None,
    *,
    include_preprocessing=False,
    memory_efficient=False,
    features_only=False,
    out_indices=None,
):
    """Instantiates the CIFAR/SVHN DenseNet of Huang et al. (CVPR 2017).

    Reference: "Densely Connected Convolutional Networks",
    https://arxiv.org/abs/1608.06993, Section 4 and Table 2.

    Stem 3x3 conv with 16 channels (2k for DenseNet-BC), three dense blocks
    of n layers on 32x32, 16x16 and 8x8 maps with n = (depth - 4) / 3
    (DenseNet) or (depth - 4) / 6 (bottleneck layers count twice), transition
    layers BN-ReLU-Conv1x1-AvgPool2x2, then BN-ReLU, global average pooling
    and the classifier. Weights are always trained from scratch here (no
    published files). The paper's configurations and errors are tabled in
    ``kerasnets.models.densenet_cifar``.

    Args:
        depth: L, the number of conv and dense layers: 3n + 4, or 6n + 4
            with the bottleneck.
        growth_rate: k.
        bottleneck: 1x1 (4k) bottleneck in every layer (DenseNet-B).
        compression: theta of the transitions (DenseNet-C when < 1).
        dropout_rate: dropout after each conv (0.2 in the paper without
            data augmentation).
        classes: number of classes (10).
        include_top, weights, input_tensor, input_shape (default 32x32x3),
            pooling, classifier_activation: as in keras.applications;
            ``weights`` is None or a path to a Keras weights file.
        name: model name; default e.g. "densenet_bc100_k12", "densenet40_k12".
        include_preprocessing: bake the ImageNet mean/std normalisation
            (keras "torch" mode) into the model (raw RGB 0-255 in).
        memory_efficient: recompute concatenations and BN-ReLU outputs in
            the backward pass to save training memory (see ``DenseNet``).
        features_only: with ``include_top=False``, a backbone whose outputs
            are the feature maps at the strides this network has, 1, 2 and
            4 (no stride-2 stem): the first and second dense blocks'
            outputs before their transitions ("conv2_block{n}_concat",
            "conv3_block{n}_concat") and the final BN-ReLU ("relu", the
            ``include_top=False`` output), as ``DenseNet``'s points.
            ``out_indices`` picks some of them; the model's
            ``feature_info`` lists their channels and reductions (1, 2, 4).

    Returns:
        A ``keras.Model``.

    Example:
        >>> model = kerasnets.DenseNetCIFAR(100, 12, bottleneck=True, compression=0.5)
        >>> model.name, model.output_shape  # DenseNet-BC (L=100, k=12)
        ('densenet_bc100_k12', (None, 10))
    """
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral):
        raise ValueError(f"`depth` must be an integer. Received: depth={depth!r}")
    per_layer = 6 if bottleneck else 3
    if depth < 4 + per_layer or (depth - 4) % per_layer:
        form = "6n + 4 with `bottleneck=True`" if bottleneck else "3n + 4"
        raise ValueError(
            f"DenseNetCIFAR depth must be {form} with n >= 1 (3 dense blocks "
            f"of n layers plus the stem, two transitions and the classifier). "
            f"Received: depth={depth}"
        )
    check_options(growth_rate, compression, dropout_rate)
    num_layers = (depth - 4) // per_layer
    is_bc = bottleneck and compression < 1.0
    if name is None:
        form = ("b" if bottleneck else "") + ("c" if compression < 1.0 else "")
        name = f"densenet_{form}{depth}_k{growth_rate}" if form else (
            f"densenet{depth}_k{growth_rate}"
        )
    model_name = "DenseNetCIFAR"
    cfg = check_arguments(
        model_name,
        weights=weights,
        include_top=include_top,
        classes=classes,
        pooling=pooling,
        classifier_activation=classifier_activation,
    )
    features = check_features(features_only=features_only, out_indices=out_indices,
                              include_top=include_top, pooling=pooling)
    img_input = image_input(
        input_tensor,
        input_shape,
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        include_top=include_top,
        weights=weights,
        require_flatten=True,
    )
    x = preprocessing_layer(img_input, model_name=model_name, weights=weights,
                            include_preprocessing=include_preprocessing)
    x = layers.Conv2D(
        2 * growth_rate if is_bc else STEM_FILTERS,
        3,
        padding="same",
        use_bias=False,
        name="conv1_conv",
    )(x)
    x = dense_stages(
        x, [num_layers] * 3, growth_rate, bottleneck, compression, dropout_rate,
        memory_efficient=memory_efficient, features=features, reduction=1,
    )
    x = classifier_top(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
    )
    return finish_model(
        img_input,
        x,
        input_tensor=input_tensor,
        name=name,
        model_name=model_name,
        weights=weights,
        include_top=include_top,
        cfg=cfg,
        features=features,
        out_indices=out_indices,
    )


__all__ = ["DenseNetCIFAR"]
