"""SENet: Squeeze-and-Excitation Networks (the family; compatibility module).

Reference:
    Jie Hu, Li Shen, Gang Sun, "Squeeze-and-Excitation Networks", CVPR 2018,
    https://arxiv.org/abs/1709.01507 (journal version: TPAMI 2019).

A squeeze-and-excitation (SE) block recalibrates the channels of a feature
map U (H x W x C) from its global context (paper Sec. 3, Fig. 1):

    z = mean_hw(U)                                 squeeze: C numbers
    s = sigmoid(W2 relu(W1 z))                     excitation, W1: C -> C/r
    out = U * s                                    scale each channel

with reduction ratio r = 16. Both fully connected layers carry biases (the
released Caffe models; 1x1 convolutions on the pooled map here and in the
converted PyTorch models). ``kerasnets.layers.SEBlock`` is that block.

The family (catalog family "senet") lives in three modules, whose public
names this module re-exports (it registers nothing itself):

- ``kerasnets.models.se_resnet``: SE-ResNet / SE-ResNeXt / SENet-154, the
  generic ``SENet`` and its named variants, timm's ``legacy_*`` layer map
  and the released weights (``preprocess_input`` here is theirs);
- ``kerasnets.models.se_inception``: ``SEInceptionV3``, an SE block on each
  Inception module of keras.applications' InceptionV3 (paper Fig. 2);
- ``kerasnets.models.se_mobilenet``: ``SEMobileNet``, an SE block after each
  depthwise separable block of MobileNet v1 (paper Table 3).

Adding SE to your own model: an ``SEBlock`` goes on any 4-D feature map;
in a residual network put it on the residual branch before the addition::

    import keras
    from kerasnets.layers import SEBlock

    def my_se_block(x, filters, name):
        y = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_1_conv")(x)
        y = keras.layers.BatchNormalization(name=f"{name}_1_bn")(y)
        y = keras.layers.ReLU(name=f"{name}_1_relu")(y)
        y = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(y)
        y = keras.layers.BatchNormalization(name=f"{name}_2_bn")(y)
        y = SEBlock(ratio=16, name=f"{name}_se")(y)  # squeeze-and-excitation
        y = keras.layers.Add(name=f"{name}_add")([x, y])
        return keras.layers.ReLU(name=f"{name}_out")(y)

    inputs = keras.Input((32, 32, 64))
    outputs = my_se_block(inputs, 64, "block1")
    model = keras.Model(inputs, outputs)

(for a plain CNN, ``x = SEBlock(16)(x)`` after a stage or an Inception-style
module's concatenation is the whole recipe.)
"""

from kerasnets.models.se_inception import (
    INCEPTION_V3_MODULES,
    INCEPTION_V3_STEM,
    SEInceptionV3,
    inception_module,
)
from kerasnets.models.se_mobilenet import (
    SEMobileNet,
)
from kerasnets.models.se_resnet import (
    BLOCKS,
    BN_EPSILON,
    EXPANSION,
    MIN_SIZE,
    PRETRAINED_CFGS,
    SE_RATIO,
    STAGE_PLANES,
    STEMS,
    TIMM_RELEASES,
    VARIANTS,
    SENet,
    SENet154,
    SEResNet18,
    SEResNet34,
    SEResNet50,
    SEResNet101,
    SEResNet152,
    SEResNeXt26_32x4d,
    SEResNeXt50_32x4d,
    SEResNeXt101_32x4d,
    block_width,
    ceil_mode_max_pool,
    conv_bn,
    decode_predictions,
    preprocess_input,
    se_residual_block,
    se_stage,
    senet_stem,
    squeeze_excitation,
    timm_layer_map,
    timm_release,
    valid_se_ratio,
)

# se_inception.preprocess_input (mode "tf", keras' InceptionV3 weights) is not
# re-exported: ``preprocess_input`` here is the SE-ResNets' (ImageNet mean/std).

__all__ = [
    "BLOCKS",
    "BN_EPSILON",
    "EXPANSION",
    "INCEPTION_V3_MODULES",
    "INCEPTION_V3_STEM",
    "MIN_SIZE",
    "PRETRAINED_CFGS",
    "SE_RATIO",
    "STAGE_PLANES",
    "STEMS",
    "TIMM_RELEASES",
    "VARIANTS",
    "SEInceptionV3",
    "SEMobileNet",
    "SENet",
    "SENet154",
    "SEResNeXt26_32x4d",
    "SEResNeXt50_32x4d",
    "SEResNeXt101_32x4d",
    "SEResNet18",
    "SEResNet34",
    "SEResNet50",
    "SEResNet101",
    "SEResNet152",
    "block_width",
    "ceil_mode_max_pool",
    "conv_bn",
    "decode_predictions",
    "inception_module",
    "preprocess_input",
    "se_residual_block",
    "se_stage",
    "senet_stem",
    "squeeze_excitation",
    "timm_layer_map",
    "timm_release",
    "valid_se_ratio",
]
