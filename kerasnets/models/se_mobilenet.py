"""SE-MobileNet: MobileNet v1 with squeeze-and-excitation.

Reference:
    Jie Hu, Li Shen, Gang Sun, "Squeeze-and-Excitation Networks", CVPR 2018,
    https://arxiv.org/abs/1709.01507 (Table 3: SE-MobileNet);
    Andrew G. Howard et al., "MobileNets: Efficient Convolutional Neural
    Networks for Mobile Vision Applications", arXiv:1704.04861.

``SEMobileNet`` adds an ``SEBlock`` (``conv_se_{i}``) after each of the
thirteen depthwise separable blocks (``conv_pw_{i}``) of MobileNet v1 as
``kerasnets.models.mobilenet`` builds it (keras.applications' MobileNet:
same layers, names and numerics). With ``se_ratio=None`` it is keras'
MobileNet, weight for weight. No SE-MobileNet weights are published; inputs
are normalised like the SE-ResNets' (ImageNet mean/std, ``preprocess_input``).
"""

from kerasnets import registry
from kerasnets.imagenet import decode_predictions  # noqa: F401  (offline, bundled index)
from kerasnets.layers import SEBlock
from kerasnets.models import mobilenet
from kerasnets.models.common import (
    check_arguments,
    check_features,
    check_positive,
    check_rate,
    finish_model,
    image_input,
    preprocessing_layer,
)
from kerasnets.models.se_resnet import (  # noqa: F401  (preprocess_input: the family's)
    SE_RATIO,
    preprocess_input,
    valid_se_ratio,
)
from kerasnets.weights.config import IMAGENET_MEAN, IMAGENET_STD

DEFAULT_SIZE = 224
MIN_SIZE = mobilenet.MIN_SIZE

register = registry.family("senet", default_size=DEFAULT_SIZE, min_size=MIN_SIZE,
                           mean=IMAGENET_MEAN, std=IMAGENET_STD)


@register
def SEMobileNet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    *,
    alpha=1.0,
    depth_multiplier=1,
    dropout=1e-3,
    se_ratio=SE_RATIO,
    include_preprocessing=False,
    features_only=False,
    out_indices=None,
):
    """Instantiates SE-MobileNet: MobileNet v1 with an SE block after each
    depthwise separable block (Hu et al., "Squeeze-and-Excitation Networks",
    CVPR 2018, arXiv:1709.01507, Table 3).

    The blocks, names and numerics are ``kerasnets.models.mobilenet``'s
    (keras.applications' MobileNet: BN eps 1e-3, ReLU6, TF "same" padding,
    1x1 conv classifier ``conv_preds``); an ``SEBlock`` ``conv_se_{i}``
    follows block ``conv_pw_{i}`` (i = 1 .. 13). The paper reports top-1
    74.7 vs 71.6 for its MobileNet baseline. No weights are published.

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation: as in keras.applications (default input
            224x224, at least 32x32). ``weights``: None or a Keras weights
            file.
        name: the model's name (default ``se_mobilenet_{alpha:.2f}``).
        alpha, depth_multiplier, dropout: keyword-only, as in
            keras.applications.MobileNet (``alpha``: 1.0, 0.75, 0.5, 0.25, or
            any positive value).
        se_ratio: SE reduction ratio (16), or None (keras' MobileNet).
        include_preprocessing: bake the normalisation into the model (raw
            RGB 0-255 in; ImageNet mean/std, as ``preprocess_input``).
        features_only: with ``include_top=False``, a backbone whose outputs
            are the feature maps at reductions 2, 4, 8, 16, 32, MobileNet's
            points (``kerasnets.MobileNet``; timm's ``mobilenetv1_100``
            stages): the output of blocks 1, 3, 5, 11 and 13, the last of
            each stride level, after its SE block (``conv_se_{i}``; with
            ``se_ratio=None`` ``conv_pw_{i}_relu``, as MobileNet), each
            named after its layer; ``out_indices`` picks some of them. Its
            ``feature_info`` lists their channels and reductions.

    Returns:
        A ``keras.Model``.

    Example:
        >>> model = kerasnets.SEMobileNet(input_shape=(160, 160, 3), alpha=0.5)
        >>> model.output_shape
        (None, 1000)
    """
    check_positive(alpha, "alpha")
    check_positive(depth_multiplier, "depth_multiplier", integer=True)
    check_rate(dropout, "dropout")
    if not valid_se_ratio(se_ratio):
        raise ValueError(
            "`se_ratio` must be None (plain MobileNet) or a positive "
            f"reduction ratio. Received: se_ratio={se_ratio!r}"
        )
    cfg = check_arguments("SEMobileNet", weights=weights, include_top=include_top,
                          classes=classes, pooling=pooling,
                          classifier_activation=classifier_activation)
    features = check_features(features_only=features_only, out_indices=out_indices,
                              include_top=include_top, pooling=pooling)
    img_input = image_input(input_tensor, input_shape, default_size=DEFAULT_SIZE,
                            min_size=MIN_SIZE, include_top=include_top, weights=weights,
                            require_flatten=True)
    x = preprocessing_layer(img_input, model_name="SEMobileNet", weights=weights,
                            include_preprocessing=include_preprocessing)
    x = mobilenet.conv_bn(x, int(mobilenet.STEM_FILTERS * alpha), "conv1", kernel_size=3,
                          strides=2)
    # Feature maps: the last layer of each stride level (before each
    # stride-2 block, and the network's last), as MobileNet's.
    reduction, level_end = 2, "conv1_relu"
    for block_id, (filters, strides) in enumerate(mobilenet.BLOCKS, start=1):
        if strides == 2:
            features.add(x, reduction, level_end)
            reduction *= 2
        x = mobilenet.depthwise_separable_block(x, filters, strides, alpha=alpha,
                                                depth_multiplier=depth_multiplier,
                                                block_id=block_id)
        level_end = f"conv_pw_{block_id}_relu"
        if se_ratio:
            x = SEBlock(ratio=se_ratio, name=f"conv_se_{block_id}")(x)
            level_end = f"conv_se_{block_id}"
    features.add(x, reduction, level_end)
    x = mobilenet.mobilenet_top(x, include_top, pooling, classes, dropout,
                                classifier_activation)
    return finish_model(img_input, x, input_tensor=input_tensor,
                        name=name or f"se_mobilenet_{alpha:0.2f}", model_name="SEMobileNet",
                        weights=weights, include_top=include_top, cfg=cfg,
                        features=features, out_indices=out_indices)
