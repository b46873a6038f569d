"""SE-Inception-v3: keras.applications' InceptionV3 with squeeze-and-excitation.

Reference:
    Jie Hu, Li Shen, Gang Sun, "Squeeze-and-Excitation Networks", CVPR 2018,
    https://arxiv.org/abs/1709.01507 (Fig. 2: SE-Inception module);
    Christian Szegedy et al., "Rethinking the Inception Architecture for
    Computer Vision", CVPR 2016, https://arxiv.org/abs/1512.00567.

``SEInceptionV3`` puts an ``SEBlock`` (``mixed{i}_se``) on the output of
each of the eleven Inception modules ``mixed0`` .. ``mixed10`` of
keras.applications' InceptionV3, whose topology, layer names (those keras
gives in a fresh session) and layer order it reproduces from the table
below. With ``se_ratio=None`` it is exactly keras' InceptionV3, and
keras.applications' ImageNet file is its "imagenet" weights (registered for
that configuration only: ``options={"se_ratio": None}``); no SE weights are
published.
"""

import keras
from keras import layers

from kerasnets import registry
from kerasnets.imagenet import decode_predictions  # noqa: F401  (offline, bundled index)
from kerasnets.layers import BatchNormalization
from kerasnets.models.common import (
    check_arguments,
    check_features,
    finish_model,
    image_input,
    preprocessing_layer,
)
from kerasnets.models.se_resnet import SE_RATIO, squeeze_excitation, valid_se_ratio
from kerasnets.weights import PretrainedCfg, register_pretrained
from kerasnets.weights.config import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INCEPTION_MEAN,
    INCEPTION_STD,
)

DEFAULT_SIZE = 299
MIN_SIZE = 75
BN_EPSILON = 1e-3  # keras' InceptionV3: BatchNormalization's default

# ---------------------------------------------------- pretrained configs

# keras.applications' InceptionV3 file: ``SEInceptionV3(se_ratio=None)`` is
# exactly that network and loads it by topology (mode "tf": x / 127.5 - 1).
INCEPTION_V3_BASE = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
    "inception_v3_weights_tf_dim_ordering_tf_kernels"
)
PRETRAINED_CFGS = register_pretrained(
    PretrainedCfg(
        "SEInceptionV3", "imagenet",
        url=f"{INCEPTION_V3_BASE}.h5",
        file_hash="9a0d58056eeedaa3f26cb7ebd46da564",
        notop_url=f"{INCEPTION_V3_BASE}_notop.h5",
        notop_hash="bcbd6486424b2319ff4ef7d526e38f63",
        format="keras_h5",
        options={"se_ratio": None},
        input_size=DEFAULT_SIZE,
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
        source="keras.applications",
        license="apache-2.0",
        top1=77.9,
        reference="keras:InceptionV3",
        bn_epsilon=BN_EPSILON,
    ),
)

register = registry.family("senet", mean=IMAGENET_MEAN, std=IMAGENET_STD)

# ------------------------------------------------------------------ modules

# keras.applications' InceptionV3, as a table. Each module is a list of
# branches; a branch is a list of steps: (filters, rows, cols[, strides,
# padding]) for conv + BN (no scale) + ReLU, ("avg",) for a 3x3/1 "same"
# average pool, ("max",) for a 3x3/2 "valid" max pool, and ("split", a, b)
# for two parallel convs whose outputs are concatenated (mixed9/10).
def _module_35x35(pool_filters):  # mixed0-2
    return [
        [(64, 1, 1)],
        [(48, 1, 1), (64, 5, 5)],
        [(64, 1, 1), (96, 3, 3), (96, 3, 3)],
        [("avg",), (pool_filters, 1, 1)],
    ]


def _module_17x17(channels_7x7):  # mixed4-7
    c = channels_7x7
    return [
        [(192, 1, 1)],
        [(c, 1, 1), (c, 1, 7), (192, 7, 1)],
        [(c, 1, 1), (c, 7, 1), (c, 1, 7), (c, 7, 1), (192, 1, 7)],
        [("avg",), (192, 1, 1)],
    ]


_MODULE_8X8 = [  # mixed9-10
    [(320, 1, 1)],
    [(384, 1, 1), ("split", (384, 1, 3), (384, 3, 1))],
    [(448, 1, 1), (384, 3, 3), ("split", (384, 1, 3), (384, 3, 1))],
    [("avg",), (192, 1, 1)],
]
INCEPTION_V3_MODULES = [
    ("mixed0", _module_35x35(32)),
    ("mixed1", _module_35x35(64)),
    ("mixed2", _module_35x35(64)),
    (
        "mixed3",
        [
            [(384, 3, 3, 2, "valid")],
            [(64, 1, 1), (96, 3, 3), (96, 3, 3, 2, "valid")],
            [("max",)],
        ],
    ),
    ("mixed4", _module_17x17(128)),
    ("mixed5", _module_17x17(160)),
    ("mixed6", _module_17x17(160)),
    ("mixed7", _module_17x17(192)),
    (
        "mixed8",
        [
            [(192, 1, 1), (320, 3, 3, 2, "valid")],
            [(192, 1, 1), (192, 1, 7), (192, 7, 1), (192, 3, 3, 2, "valid")],
            [("max",)],
        ],
    ),
    ("mixed9", _MODULE_8X8),
    ("mixed10", _MODULE_8X8),
]
INCEPTION_V3_STEM = [
    (32, 3, 3, 2, "valid"),
    (32, 3, 3, 1, "valid"),
    (64, 3, 3),
    ("max",),
    (80, 1, 1, 1, "valid"),
    (192, 3, 3, 1, "valid"),
    ("max",),
]


class _KerasNames:
    """keras' automatic layer names in a fresh session (``conv2d``,
    ``conv2d_1``, ...), given explicitly so they do not depend on what else
    the session built."""

    def __init__(self):
        self.counts = {}
        self.last = {}  # base -> the latest name given

    def __call__(self, base):
        index = self.counts.get(base, 0)
        self.counts[base] = index + 1
        self.last[base] = base if index == 0 else f"{base}_{index}"
        return self.last[base]


def _downsamples(step):
    """Whether a stem step (or any step of a module's branches) has stride 2."""
    if isinstance(step, list):  # a module: its branches
        return any(_downsamples(s) for branch in step for s in branch)
    return step[0] == "max" or (len(step) > 3 and step[3] == 2)


def _inception_step(x, step, names):
    if step[0] == "avg":
        return layers.AveragePooling2D(
            3, strides=1, padding="same", name=names("average_pooling2d")
        )(x)
    if step[0] == "max":
        return layers.MaxPooling2D(3, strides=2, name=names("max_pooling2d"))(x)
    filters, rows, cols, *rest = step
    strides, padding = rest if rest else (1, "same")
    x = layers.Conv2D(
        filters,
        (rows, cols),
        strides=strides,
        padding=padding,
        use_bias=False,
        name=names("conv2d"),
    )(x)
    # keras' InceptionV3: BN without scale, default epsilon (1e-3).
    x = BatchNormalization(scale=False, epsilon=BN_EPSILON,
                           name=names("batch_normalization"))(x)
    return layers.Activation("relu", name=names("activation"))(x)


def inception_module(x, branches, name, names, split_index):
    """One Inception module: branches run on ``x`` and are concatenated
    (``name``); ``split`` steps end in their own concatenation (mixed9/10:
    ``{name}_{split_index}`` for the first, ``concatenate*`` for the second,
    as keras names them)."""
    outputs = []
    for b, branch in enumerate(branches):
        y = x
        for step in branch:
            if step[0] == "split":
                parts = [_inception_step(y, s, names) for s in step[1:]]
                concat_name = (
                    f"mixed9_{split_index}" if b == 1 else names("concatenate")
                )
                y = layers.Concatenate(axis=-1, name=concat_name)(parts)
            else:
                y = _inception_step(y, step, names)
        outputs.append(y)
    return layers.Concatenate(axis=-1, name=name)(outputs)


# ----------------------------------------------------------------- builder


@register(default_size=DEFAULT_SIZE, min_size=MIN_SIZE)
def SEInceptionV3(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    *,
    se_ratio=SE_RATIO,
    include_preprocessing=False,
    features_only=False,
    out_indices=None,
):
    """Instantiates SE-Inception-v3: InceptionV3 with an SE block on the
    output of each Inception module (Hu et al., "Squeeze-and-Excitation
    Networks", CVPR 2018, arXiv:1709.01507, Fig. 2).

    The topology, layer names and layer order are those of
    ``keras.applications.InceptionV3`` (Szegedy et al., CVPR 2016); an
    ``SEBlock`` named ``mixed{i}_se`` follows each of the eleven modules
    ``mixed0`` .. ``mixed10``. The paper applies this recipe to BN-Inception
    (Table 2: SE-BN-Inception top-1 error 24.23 vs 25.38) and
    Inception-ResNet-v2; here it is applied to keras' Inception v3, for
    which no SE weights are published.

    With ``se_ratio=None`` the model is exactly keras' InceptionV3 (same
    layer names in a fresh session, same order), so keras.applications'
    ``inception_v3_weights_tf_dim_ordering_tf_kernels*.h5`` load by
    topology; ``weights="imagenet"`` then fetches them (preprocess with
    ``kerasnets.models.se_inception.preprocess_input``, mode "tf"). With SE
    blocks, ``weights="imagenet"`` raises: no such file exists.

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation: as in keras.applications.InceptionV3
            (default input 299x299, at least 75x75). ``weights``: None, a
            path (keras ``.h5`` / ``.weights.h5``), or "imagenet" with
            ``se_ratio=None``.
        name: the model's name (default "se_inception_v3", or
            "inception_v3" without SE).
        se_ratio: SE reduction ratio (16), or None for no SE blocks.
        include_preprocessing: bake the weights' normalisation into the
            model (raw RGB 0-255 in).
        features_only: with ``include_top=False``, a backbone whose outputs
            are the feature maps at reductions 2, 4, 8, 16, 32, the points
            of keras.applications' InceptionV3 (and timm's ``inception_v3``):
            the last activation before each stride change (``activation_2``,
            64 channels; ``activation_4``, 192), the modules ``mixed2``
            (288) and ``mixed7`` (768), and ``mixed10`` (2048), each module
            after its SE block (``mixed2_se`` ...), each named after its
            layer; ``out_indices`` picks some of them. Its
            ``feature_info`` lists their channels and reductions (the
            reductions are nominal: "valid" convolutions make the maps a
            little smaller).

    Returns:
        A ``keras.Model``.

    Example:
        >>> model = kerasnets.SEInceptionV3()  # random initialization
        >>> model.output_shape
        (None, 1000)
        >>> inception = kerasnets.SEInceptionV3(weights="imagenet", se_ratio=None)
    """
    if not valid_se_ratio(se_ratio):
        raise ValueError(
            "`se_ratio` must be None (keras' InceptionV3) or a positive "
            f"reduction ratio. Received: se_ratio={se_ratio!r}"
        )
    options = {"se_ratio": se_ratio}
    cfg = check_arguments("SEInceptionV3", weights=weights, include_top=include_top,
                          classes=classes, pooling=pooling,
                          classifier_activation=classifier_activation, options=options)
    features = check_features(features_only=features_only, out_indices=out_indices,
                              include_top=include_top, pooling=pooling)
    img_input = image_input(input_tensor, input_shape, default_size=DEFAULT_SIZE,
                            min_size=MIN_SIZE, include_top=include_top, weights=weights,
                            require_flatten=True)
    x = preprocessing_layer(img_input, model_name="SEInceptionV3", weights=weights,
                            include_preprocessing=include_preprocessing, options=options)
    names = _KerasNames()
    # Feature maps: the last map of each stride level (before the step that
    # downsamples it), then mixed10.
    reduction = 1
    for step in INCEPTION_V3_STEM:
        if _downsamples(step):
            if reduction > 1:
                features.add(x, reduction, names.last["activation"])
            reduction *= 2
        x = _inception_step(x, step, names)
    split_index = 0
    previous = None
    for module_name, branches in INCEPTION_V3_MODULES:
        if _downsamples(branches):
            features.add(x, reduction, previous)
            reduction *= 2
        x = inception_module(x, branches, module_name, names, split_index)
        if module_name in ("mixed9", "mixed10"):
            split_index += 1
        x = squeeze_excitation(x, se_ratio, module_name)
        previous = f"{module_name}_se" if se_ratio else module_name
    features.add(x, reduction, previous)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name=names("global_average_pooling2d"))(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name=names("global_max_pooling2d"))(x)
    return finish_model(img_input, x, input_tensor=input_tensor,
                        name=name or ("se_inception_v3" if se_ratio else "inception_v3"),
                        model_name="SEInceptionV3", weights=weights,
                        include_top=include_top, cfg=cfg, features=features,
                        out_indices=out_indices)


# ---------------------------------------------------------- pre/post


def preprocess_input(x, data_format=None):
    """Scales to [-1, 1] (x / 127.5 - 1), as keras.applications' InceptionV3
    weights (``SEInceptionV3(se_ratio=None, weights="imagenet")``) expect
    (keras.applications mode "tf")."""
    return keras.applications.imagenet_utils.preprocess_input(
        x, data_format=data_format, mode="tf"
    )
