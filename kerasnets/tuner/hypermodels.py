"""The hypermodels: one search space per family, and one over several."""

import numbers
import os

import keras
import keras_tuner

from kerasnets import preprocessing, registry, training
from kerasnets.training import initialization

FAMILIES = ("densenet", "mobilenet", "senet", "dpn", "igc")
TUNERS = ("random", "bayesian", "hyperband")
# ``multiworker`` is not among them: spread trials over machines with
# keras-tuner's chief/worker mode instead (module docstring).
STRATEGIES = ("auto", "cpu", "mirrored", "tpu", "data-parallel")
OPTIMIZERS = ("adamw", "sgd")
BEST_MODEL_FILE = "best_model.keras"
SEARCH_FILE = "kerasnets_search.json"

# Learning-rate ranges (log-uniform) and defaults: from scratch, fine-tuning.
SCRATCH_LR = (1e-4, 1e-1, 1e-3)
FINETUNE_LR = (1e-5, 1e-2, 1e-4)
FREEZE_DEPTHS = (0.0, 0.5, 0.75, 1.0)
HEAD_DROPOUTS = (0.0, 0.2, 0.4)
AUGMENT_ROTATIONS = (0.0, 0.05, 0.1, 0.2)
AUGMENT_ZOOMS = (0.0, 0.1, 0.2)
AUGMENT_CONTRASTS = (0.0, 0.1, 0.2)

DEFAULT_BACKBONES = {
    "densenet": "DenseNet121",
    "mobilenet": "MobileNetV2",
    "senet": "SEResNet50",
    "dpn": "DPN68",
    "igc": "IGCV3",
}
# Backbones that need more than their family's 32 pixels.
_BACKBONE_MIN_SIZE = {"SEInceptionV3": 75}

SHARED_HYPERPARAMETERS = ("optimizer", "learning_rate")
FINETUNE_HYPERPARAMETERS = ("freeze_depth", "head_dropout")
AUGMENT_HYPERPARAMETERS = ("augment_rotation", "augment_zoom", "augment_contrast")

_SHARED_DOC = """
    Every hypermodel of this module also tunes:

    ==================  =======  =================================  ==========
    hyperparameter      type     values                             default
    ==================  =======  =================================  ==========
    optimizer           Choice   adamw, sgd (Nesterov, momentum     adamw
                                 0.9); decoupled weight decay
                                 0.05 / 5e-5, not on 1-D weights
    learning_rate       Float    1e-4 .. 0.1, log (fine-tuning:     1e-3
                                 1e-5 .. 0.01), constant            (1e-4)
    freeze_depth        Choice   0, 0.5, 0.75, 1: fraction of the   1.0
                                 backbone's layers, from the input,
                                 kept frozen (fine-tuning only)
    head_dropout        Choice   0, 0.2, 0.4: before the new        0.2
                                 classifier (fine-tuning only)
    augment_rotation    Choice   0, 0.05, 0.1, 0.2 (fraction of a   0.05
                                 full turn; augmentation=True)
    augment_zoom        Choice   0, 0.1, 0.2 (augmentation=True)    0.1
    augment_contrast    Choice   0, 0.1, 0.2 (augmentation=True)    0.1
    ==================  =======  =================================  ==========
"""

_ARGS_DOC = """
    Args:
        input_shape: ``(height, width, 3)``; one of ``input_shape`` or
            ``input_tensor`` is required.
        input_tensor: a Keras tensor (``keras.Input(...)`` or a layer's
            output) to use as the image input.
        classes: number of classes (at least 2); the model outputs their
            probabilities (float32, also under a mixed-precision policy).
        weights: None (search the architecture, trained from scratch), or a
            pretrained tag (``"imagenet"``) or weights file of ``backbone``:
            search a fine-tuning of it.
        backbone: the named builder to fine-tune (its family's; default
            ``{default}``); only with ``weights``.
        backbone_kwargs: more arguments of the backbone builder (e.g.
            ``{{"alpha": 0.5}}`` for MobileNet); only with ``weights``.
        augmentation: None; True for the tunable augmentation
            (``augment_*`` hyperparameters); a Keras layer or model applied
            to the inputs; or a ``keras_tuner.HyperModel`` whose ``build(hp)``
            returns one (its hyperparameters join the search).
        fixed: ``{{name: value}}``: hyperparameters held at one value of their
            range (``{{"optimizer": "sgd"}}``); the others are searched.
        label_smoothing: of the categorical cross-entropy.
        name, tunable: as ``keras_tuner.HyperModel``.

    Raises:
        ValueError: at construction, for bad ``classes``, an input shape the
            family cannot take, unknown weights or backbone, or ``fixed``
            values outside the space.
"""


# ------------------------------------------------------------ validation


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_classes(owner, classes):
    if not _is_int(classes) or classes < 2:
        raise ValueError(
            f"{owner}: `classes` must be an integer of at least 2 (the number of "
            f"classes to tell apart); received classes={classes!r}."
        )
    return int(classes)


def _check_image_shape(owner, input_shape, input_tensor, min_size):
    """The static (height, width, 3) image shape of the input."""
    if input_shape is None and input_tensor is None:
        raise ValueError(f"{owner}: pass `input_shape` (height, width, 3) or `input_tensor`.")
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor):
            raise ValueError(
                f"{owner}: `input_tensor` must be a Keras tensor (keras.Input or "
                f"a layer's output); received {input_tensor!r}."
            )
        shape = tuple(input_tensor.shape)
        if len(shape) != 4:
            raise ValueError(
                f"{owner}: `input_tensor` must be a batch of images (batch, height, "
                f"width, 3); received shape {shape}."
            )
        tensor_shape = shape[1:]
        if input_shape is not None and tuple(input_shape) != tensor_shape:
            raise ValueError(
                f"{owner}: input_shape={tuple(input_shape)} does not match the "
                f"input_tensor's shape {tensor_shape}."
            )
        input_shape = tensor_shape
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if (
        shape is None
        or len(shape) != 3
        or not all(_is_int(d) for d in shape)
        or shape[2] != 3
    ):
        raise ValueError(
            f"{owner}: `input_shape` must be (height, width, 3) with static "
            f"integer sizes (RGB images); received {input_shape!r}."
        )
    if min(shape[:2]) < min_size:
        raise ValueError(
            f"{owner}: images must be at least {min_size}x{min_size} pixels for "
            f"this search space; received input_shape={shape}."
        )
    return tuple(int(d) for d in shape)


def _family_of(builder):
    """The search family (a key of ``HYPERMODELS``) whose backbones include
    ``builder``'s catalog family, or None."""
    family = registry.get(builder.__name__).family
    for name, hypermodel in HYPERMODELS.items():
        if family in hypermodel.CATALOG_FAMILIES:
            return name
    return None


def _check_backbone(owner, family, backbone, weights):
    """The backbone builder's name, checked against ``family`` and ``weights``."""
    from kerasnets import weights as weights_lib

    try:
        builder = training.get_builder(backbone)
    except ValueError as error:
        raise ValueError(f"{owner}: {error}") from None
    name = builder.__name__
    if _family_of(builder) != family:
        choices = _named_builders(family)
        raise ValueError(
            f"{owner}: backbone {name!r} is not a {family} network; use one of "
            f"{', '.join(choices)}."
        )
    required = registry.get(name).required_args
    if required:
        raise ValueError(
            f"{owner}: {name} is a generic builder (it needs {', '.join(required)}); "
            f"fine-tune a named one: {', '.join(_named_builders(family))}."
        )
    if isinstance(weights, (str, os.PathLike)) and os.path.exists(weights):
        return name
    if not isinstance(weights, str):
        raise ValueError(
            f"{owner}: `weights` must be None, a pretrained tag or the path of a "
            f"weights file; received {weights!r}."
        )
    from kerasnets.models.common import is_weights_path

    if is_weights_path(weights):
        raise ValueError(f"{owner}: the weights file {weights!r} does not exist.")
    try:
        weights_lib.check_tag(name, weights)
    except ValueError as error:
        raise ValueError(f"{owner}: {error}") from None
    return name


def _named_builders(family):
    """The named networks of search family ``family`` (catalog order)."""
    return [name for catalog_family in HYPERMODELS[family].CATALOG_FAMILIES
            for name in registry.list_models(family=catalog_family)]


def _dashed(text):
    return tuple(int(n) for n in text.split("-"))


# ------------------------------------------------------------ hypermodels


class _KerasNetsHyperModel(keras_tuner.HyperModel):
    """Shared machinery: input, augmentation, normalisation, head, compile."""

    FAMILY = None
    # Catalog families (``kerasnets.list_models(family=...)``) whose named
    # networks are this search family's fine-tuning backbones.
    CATALOG_FAMILIES = ()
    MIN_SIZE = 32
    # Architecture hyperparameters of the from-scratch space, in build order.
    HYPERPARAMETERS = ()

    def __init__(
        self,
        input_shape=None,
        input_tensor=None,
        classes=None,
        *,
        weights=None,
        backbone=None,
        backbone_kwargs=None,
        augmentation=None,
        fixed=None,
        label_smoothing=0.1,
        name=None,
        tunable=True,
    ):
        super().__init__(name=name, tunable=tunable)
        owner = type(self).__name__
        self.classes = _check_classes(owner, classes)
        self.weights = weights
        if weights is None:
            if backbone is not None or backbone_kwargs:
                raise ValueError(
                    f"{owner}: `backbone` and `backbone_kwargs` choose the pretrained "
                    "network of a fine-tuning search; pass `weights` too (a tag "
                    "such as 'imagenet' or a weights file)."
                )
            self.backbone = None
            self.backbone_kwargs = {}
            min_size = self.MIN_SIZE
        else:
            self.backbone = _check_backbone(
                owner, self.FAMILY, backbone or DEFAULT_BACKBONES[self.FAMILY], weights)
            self.backbone_kwargs = dict(backbone_kwargs or {})
            min_size = _BACKBONE_MIN_SIZE.get(self.backbone, 32)
        self.input_shape = _check_image_shape(owner, input_shape, input_tensor, min_size)
        self.input_tensor = input_tensor
        if not (
            augmentation is None
            or augmentation is True
            or isinstance(augmentation, (keras.layers.Layer, keras_tuner.HyperModel))
        ):
            raise ValueError(
                f"{owner}: `augmentation` must be None, True (the tunable "
                "augmentation), a Keras layer or model, or a keras_tuner.HyperModel; "
                f"received {augmentation!r}."
            )
        self.augmentation = augmentation
        if not isinstance(label_smoothing, numbers.Real) or not 0 <= label_smoothing < 1:
            raise ValueError(
                f"{owner}: `label_smoothing` must be in [0, 1); received {label_smoothing!r}.")
        self.label_smoothing = float(label_smoothing)
        self.fixed = self._check_fixed_names(owner, fixed)

    # -- hyperparameter names and fixed values

    @property
    def hyperparameter_names(self):
        """Names of the hyperparameters this hypermodel may declare."""
        names = list(SHARED_HYPERPARAMETERS)
        if self.augmentation is True:
            names += AUGMENT_HYPERPARAMETERS
        return tuple(names) + self._network_names()

    def _network_names(self):
        return FINETUNE_HYPERPARAMETERS if self.weights is not None else self.HYPERPARAMETERS

    def _check_fixed_names(self, owner, fixed):
        fixed = dict(fixed or {})
        known = self.hyperparameter_names
        unknown = sorted(set(fixed) - set(known))
        if unknown:
            raise ValueError(
                f"{owner}: no hyperparameter named {', '.join(map(repr, unknown))} in "
                f"this search space; its hyperparameters are {', '.join(known)}."
            )
        return fixed

    def _fixed_value(self, name, allowed, describe):
        value = self.fixed[name]
        for candidate in allowed:
            if type(value) is bool or type(candidate) is bool:
                if type(value) is type(candidate) and value == candidate:
                    return candidate
            elif value == candidate:
                return candidate
        raise ValueError(
            f"{type(self).__name__}: fixed {name}={value!r} is outside its search "
            f"space ({describe})."
        )

    def _choice(self, hp, name, values, default):
        if name in self.fixed:
            value = self._fixed_value(name, values, "one of " + ", ".join(map(str, values)))
            return hp.Fixed(name, value)
        return hp.Choice(name, list(values), default=default)

    def _boolean(self, hp, name, default):
        if name in self.fixed:
            return hp.Fixed(name, self._fixed_value(name, (True, False), "true or false"))
        return hp.Boolean(name, default=default)

    def _float(self, hp, name, low, high, default, sampling="log"):
        if name in self.fixed:
            value = self.fixed[name]
            if (not isinstance(value, numbers.Real) or isinstance(value, bool)
                    or not low <= value <= high):
                raise ValueError(
                    f"{type(self).__name__}: fixed {name}={value!r} is outside its "
                    f"search space ({low:g} .. {high:g})."
                )
            return hp.Fixed(name, float(value))
        return hp.Float(name, low, high, sampling=sampling, default=default)

    # -- the model

    def build(self, hp):
        if self.input_tensor is not None:
            inputs = keras.utils.get_source_inputs(self.input_tensor)
            x = self.input_tensor
        else:
            inputs = keras.Input(shape=self.input_shape, name="image")
            x = inputs
        x = self._augment(hp, x)
        outputs, name = self._network(hp, x)
        model = keras.Model(inputs, outputs, name=self.name or name)
        self._compile(model, hp)
        return model

    def _augment(self, hp, x):
        augmentation = self.augmentation
        if augmentation is None:
            return x
        if augmentation is True:
            layers = []
            rotation = self._choice(hp, "augment_rotation", AUGMENT_ROTATIONS, 0.05)
            zoom = self._choice(hp, "augment_zoom", AUGMENT_ZOOMS, 0.1)
            contrast = self._choice(hp, "augment_contrast", AUGMENT_CONTRASTS, 0.1)
            if rotation:
                layers.append(keras.layers.RandomRotation(rotation, name="random_rotation"))
            if zoom:
                layers.append(keras.layers.RandomZoom(zoom, name="random_zoom"))
            if contrast:
                layers.append(keras.layers.RandomContrast(contrast, value_range=(0, 255),
                                                          name="random_contrast"))
            if not layers:
                return x
            augmentation = keras.Sequential(layers, name="augmentation")
        elif isinstance(augmentation, keras_tuner.HyperModel):
            augmentation = augmentation.build(hp)
        return augmentation(x)

    def _network(self, hp, x):
        """(outputs, model name) for the images ``x`` (0-255 pixels)."""
        if self.weights is None:
            return self._scratch(hp, x)
        return self._finetune(hp, x)

    def _architecture(self, hp):
        """(builder name, builder keyword arguments) of a sampled network."""
        raise NotImplementedError

    @staticmethod
    def _normalize(x, preprocessing):
        from kerasnets.layers import ImageNormalization

        if (preprocessing.mean == (0.0, 0.0, 0.0) and preprocessing.std == (1.0, 1.0, 1.0)
                and not preprocessing.bgr):
            return x  # the network rescales its input itself (MobileNetV3)
        return ImageNormalization(preprocessing.mean, preprocessing.std,
                                  bgr=preprocessing.bgr, name="normalization")(x)

    @staticmethod
    def _float32_outputs():
        return keras.config.dtype_policy().compute_dtype != "float32"

    def _probabilities(self, x):
        if self._float32_outputs():
            x = keras.layers.Activation("softmax", dtype="float32",
                                        name="predictions_float32")(x)
        return x

    def _scratch(self, hp, x):
        builder_name, kwargs = self._architecture(hp)
        builder = registry.get(builder_name).builder
        x = self._normalize(x, preprocessing.for_model(builder_name, None, options=kwargs))
        net = builder(
            **kwargs,
            include_top=True,
            weights=None,
            input_tensor=x,
            input_shape=self.input_shape,
            classes=self.classes,
            classifier_activation=None if self._float32_outputs() else "softmax",
        )
        # As kerasnets train: residual blocks start as identities.
        initialization.zero_init_residual_branches(net)
        return self._probabilities(net.output), net.name

    def _finetune(self, hp, x):
        builder = training.get_builder(self.backbone)
        x = self._normalize(x, preprocessing.for_model(self.backbone, self.weights,
                                                       options=self.backbone_kwargs))
        base = builder(include_top=False, weights=self.weights, input_shape=self.input_shape,
                       pooling="avg", **self.backbone_kwargs)
        freeze_depth = self._choice(hp, "freeze_depth", FREEZE_DEPTHS, 1.0)
        dropout = self._choice(hp, "head_dropout", HEAD_DROPOUTS, 0.2)
        freeze(base, freeze_depth)
        x = base(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="head_dropout")(x)
        x = keras.layers.Dense(self.classes, name="predictions",
                               activation=None if self._float32_outputs() else "softmax")(x)
        return self._probabilities(x), f"{base.name}_finetuned"

    def _compile(self, model, hp):
        """The training recipe's compile (``kerasnets.training``), with a
        constant learning rate."""
        optimizer = self._choice(hp, "optimizer", OPTIMIZERS, "adamw")
        low, high, default = FINETUNE_LR if self.weights is not None else SCRATCH_LR
        lr = self._float(hp, "learning_rate", low, high, default)
        training.compile_model(model, optimizer=optimizer, lr=lr, schedule="constant",
                               label_smoothing=self.label_smoothing)

    @property
    def pipeline_preprocessing(self):
        """Input pipeline preprocessing for this hypermodel: pixels unchanged
        (the model normalises), with its weights' evaluation crop."""
        none = preprocessing.KERAS_MODES["none"]
        if self.weights is None:
            return none
        prep = preprocessing.for_model(self.backbone, self.weights,
                                       options=self.backbone_kwargs)
        return none.replace(crop_pct=prep.crop_pct, interpolation=prep.interpolation)

    def describe(self):
        """What the search settings file records to recognise this search."""
        return {
            "hypermodel": type(self).__name__,
            "classes": self.classes,
            "input_shape": list(self.input_shape),
            "weights": None if self.weights is None else os.fspath(self.weights),
            "backbone": self.backbone,
            "families": None,
            "backbones": None,
        }


def freeze(model, depth):
    """Freezes the first ``depth`` fraction (0 to 1) of ``model``'s layers,
    from the input; 1 freezes all of them. Frozen BatchNormalization layers
    run in inference mode. Returns the number of layers frozen."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    count = len(layers) if depth >= 1 else int(round(depth * len(layers)))
    for i, layer in enumerate(layers):
        layer.trainable = i >= count
    return count


DENSENET_BLOCKS = ("3-6-12-8", "6-12-24-16", "6-12-32-32", "6-12-48-32")


class HyperDenseNet(_KerasNetsHyperModel):
    """A DenseNet hypermodel (``kerasnets.DenseNet``, Huang et al. 2017).

    ==============  =======  ======================================  ===========
    hyperparameter  type     values                                  default
    ==============  =======  ======================================  ===========
    blocks          Choice   layers per dense block: 3-6-12-8,       6-12-24-16
                             6-12-24-16 (DenseNet-121),
                             6-12-32-32 (-169), 6-12-48-32 (-201)
    growth_rate     Choice   12, 24, 32, 48 (k)                      32
    bottleneck      Boolean  1x1 bottleneck of 4k maps (-B)          True
    compression     Choice   0.5, 0.75, 1.0 (theta, -C when < 1)     0.5
    dropout_rate    Choice   0, 0.1, 0.2 (after each convolution)    0
    ==============  =======  ======================================  ===========

    The ImageNet layout (7x7/2 stem, max pool, four dense blocks): inputs of
    at least 32x32 pixels. Fine-tuning backbones: DenseNet121 (default), 161,
    169, 201.
    """

    FAMILY = "densenet"
    CATALOG_FAMILIES = ("densenet",)
    HYPERPARAMETERS = ("blocks", "growth_rate", "bottleneck", "compression", "dropout_rate")

    def _architecture(self, hp):
        blocks = self._choice(hp, "blocks", DENSENET_BLOCKS, "6-12-24-16")
        growth_rate = self._choice(hp, "growth_rate", (12, 24, 32, 48), 32)
        bottleneck = self._boolean(hp, "bottleneck", True)
        compression = self._choice(hp, "compression", (0.5, 0.75, 1.0), 0.5)
        dropout = self._choice(hp, "dropout_rate", (0.0, 0.1, 0.2), 0.0)
        return "DenseNet", dict(blocks=list(_dashed(blocks)), growth_rate=growth_rate,
                                bottleneck=bottleneck, compression=compression,
                                dropout_rate=dropout)


MOBILENET_ALPHAS = (0.25, 0.35, 0.5, 0.75, 1.0, 1.4)


class HyperMobileNet(_KerasNetsHyperModel):
    """A MobileNet hypermodel: v1, v2 and v3 (Howard et al. 2017, Sandler et
    al. 2018, Howard et al. 2019).

    ================  =======  ====================================  =======
    hyperparameter    type     values                                default
    ================  =======  ====================================  =======
    version           Choice   v1, v2, v3                            v2
    alpha             Choice   0.25, 0.35, 0.5, 0.75, 1.0, 1.4       1.0
                               (width multiplier)
    depth_multiplier  Choice   1, 2 (v1 only)                        1
    model_type        Choice   large, small (v3 only)                large
    minimalistic      Boolean  3x3 kernels, ReLU, no SE (v3 only)    False
    dropout           Choice   0, 0.2, 0.5: before the classifier    0.2
                               (v1 and v3, whose heads have one)
    ================  =======  ====================================  =======

    Inputs of at least 32x32 pixels. Fine-tuning backbones: MobileNetV2
    (default), MobileNet, MobileNetV3Large, MobileNetV3Small (and their
    ``alpha`` through ``backbone_kwargs``).
    """

    FAMILY = "mobilenet"
    CATALOG_FAMILIES = ("mobilenet", "mobilenet_v2", "mobilenet_v3")
    HYPERPARAMETERS = ("version", "alpha", "depth_multiplier", "model_type",
                       "minimalistic", "dropout")

    def _architecture(self, hp):
        version = self._choice(hp, "version", ("v1", "v2", "v3"), "v2")
        alpha = self._choice(hp, "alpha", MOBILENET_ALPHAS, 1.0)
        with hp.conditional_scope("version", ["v1"]):
            depth_multiplier = self._choice(hp, "depth_multiplier", (1, 2), 1)
        with hp.conditional_scope("version", ["v3"]):
            model_type = self._choice(hp, "model_type", ("large", "small"), "large")
            minimalistic = self._boolean(hp, "minimalistic", False)
        with hp.conditional_scope("version", ["v1", "v3"]):
            dropout = self._choice(hp, "dropout", (0.0, 0.2, 0.5), 0.2)
        if version == "v1":
            return "MobileNet", dict(alpha=alpha, depth_multiplier=depth_multiplier,
                                     dropout=dropout)
        if version == "v2":
            return "MobileNetV2", dict(alpha=alpha)
        builder = "MobileNetV3Large" if model_type == "large" else "MobileNetV3Small"
        return builder, dict(alpha=alpha, minimalistic=minimalistic, dropout_rate=dropout)


# depth: (block, blocks per stage), as in the SE-ResNet / SE-ResNeXt tables.
SENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    26: ("bottleneck", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
SENET_CARDINALITIES = (1, 8, 16, 32, 64)
RESNEXT_WIDTH = 128  # cardinality x width per group of the first stage


class HyperSENet(_KerasNetsHyperModel):
    """A Squeeze-and-Excitation network hypermodel (``kerasnets.SENet``, Hu et
    al. 2018).

    ==============  =======  ========================================  =======
    hyperparameter  type     values                                    default
    ==============  =======  ========================================  =======
    depth           Choice   18, 34 (basic blocks), 26, 50, 101, 152   50
                             (bottleneck blocks)
    cardinality     Choice   1, 8, 16, 32, 64 (bottleneck depths       1
                             only): groups C of the 3x3 convolutions;
                             C > 1 is SE-ResNeXt with C x (128/C)d,
                             the paper's 32x4d at every C
    se_ratio        Choice   4, 8, 16, 32 (reduction ratio r)          16
    dropout_rate    Choice   0, 0.2 (before the classifier)            0
    ==============  =======  ========================================  =======

    Inputs of at least 32x32 pixels. Fine-tuning backbones: SEResNet50
    (default), SEResNet18/34/101/152, SEResNeXt26/50/101_32x4d, SENet154.
    """

    FAMILY = "senet"
    CATALOG_FAMILIES = ("senet",)
    HYPERPARAMETERS = ("depth", "cardinality", "se_ratio", "dropout_rate")

    def _architecture(self, hp):
        depth = self._choice(hp, "depth", tuple(SENET_DEPTHS), 50)
        block, depths = SENET_DEPTHS[depth]
        bottleneck_depths = [d for d, (b, _) in SENET_DEPTHS.items() if b == "bottleneck"]
        with hp.conditional_scope("depth", bottleneck_depths):
            cardinality = self._choice(hp, "cardinality", SENET_CARDINALITIES, 1)
        se_ratio = self._choice(hp, "se_ratio", (4, 8, 16, 32), 16)
        dropout = self._choice(hp, "dropout_rate", (0.0, 0.2), 0.0)
        kwargs = dict(block=block, depths=depths, se_ratio=se_ratio, dropout_rate=dropout)
        if block == "bottleneck" and cardinality > 1:
            kwargs.update(block="resnext", groups=cardinality,
                          width_per_group=RESNEXT_WIDTH // cardinality)
        return "SENet", kwargs


DPN_K_SEC = ("3-4-12-3", "3-4-20-3", "3-6-20-3", "4-8-20-3", "4-8-28-3")
DPN_INC_SEC = ("16-32-32-64", "16-32-24-128", "16-32-32-128", "20-64-64-128")
DPN_K_R = (64, 96, 128, 160, 192)
DPN_GROUPS = (16, 32)


class HyperDPN(_KerasNetsHyperModel):
    """A Dual Path Network hypermodel (``kerasnets.DPN``, Chen et al. 2017).

    ==============  =======  ========================================  ============
    hyperparameter  type     values                                    default
    ==============  =======  ========================================  ============
    k_r             Choice   64, 96, 128, 160, 192: width of the       96
                             grouped 3x3 convolutions (x1, 2, 4, 8
                             per stage)
    groups          Choice   16, 32 (G; both divide every k_r, so      32
                             every stage's width)
    k_sec           Choice   blocks per stage: 3-4-12-3 (DPN-68),      3-4-20-3
                             3-4-20-3 (-92), 3-6-20-3 (-98),
                             4-8-20-3 (-107), 4-8-28-3 (-131)
    inc_sec         Choice   dense-path increments per stage:          16-32-24-128
                             16-32-32-64, 16-32-24-128,
                             16-32-32-128, 20-64-64-128
    small           Boolean  DPN-68's layout: 3x3 stem of 10           False
                             channels, residual widths 64 .. 512
                             (else 7x7 stem of 64, 256 .. 2048)
    ==============  =======  ========================================  ============

    The defaults are DPN-92. Inputs of at least 32x32 pixels. Fine-tuning
    backbones: DPN68 (default), DPN68b, 92, 98, 107, 131.
    """

    FAMILY = "dpn"
    CATALOG_FAMILIES = ("dpn",)
    HYPERPARAMETERS = ("k_r", "groups", "k_sec", "inc_sec", "small")

    def _architecture(self, hp):
        k_r = self._choice(hp, "k_r", DPN_K_R, 96)
        groups = self._choice(hp, "groups", DPN_GROUPS, 32)
        k_sec = self._choice(hp, "k_sec", DPN_K_SEC, "3-4-20-3")
        inc_sec = self._choice(hp, "inc_sec", DPN_INC_SEC, "16-32-24-128")
        small = self._boolean(hp, "small", False)
        return "DPN", dict(k_r=k_r, groups=groups, k_sec=_dashed(k_sec),
                           inc_sec=_dashed(inc_sec), small=small,
                           init_features=10 if small else 64)


class HyperIGC(_KerasNetsHyperModel):
    """An Interleaved Group Convolution network hypermodel
    (``kerasnets.IGCV1CIFAR``, Zhang et al. 2017).

    ==============  =======  ========================================  =======
    hyperparameter  type     values                                    default
    ==============  =======  ========================================  =======
    L               Choice   2, 4, 8, 16, 24: primary partitions       4
    M               Choice   2, 4, 8, 16: secondary partitions of the  8
                             first stage; stages have C, 2C, 4C
                             channels with C = L x M, which L always
                             divides
    depth           Choice   8, 20, 38                                 20
    residual        Boolean  +Ident. residual blocks (else plain)      True
    ==============  =======  ========================================  =======

    The paper's CIFAR network (3x3 stem at full resolution, three stages):
    for small images, at least 8x8 pixels (it runs on larger ones, at a cost
    that grows with their area). Fine-tuning backbones (ImageNet networks):
    IGCV3 (default), IGC_L4M32, IGC_L16M16, IGC_L100M2.
    """

    FAMILY = "igc"
    CATALOG_FAMILIES = ("igc", "igc_v3")
    MIN_SIZE = 8
    HYPERPARAMETERS = ("L", "M", "depth", "residual")

    def _architecture(self, hp):
        L = self._choice(hp, "L", (2, 4, 8, 16, 24), 4)  # noqa: N806 - the paper's name
        M = self._choice(hp, "M", (2, 4, 8, 16), 8)  # noqa: N806
        depth = self._choice(hp, "depth", (8, 20, 38), 20)
        residual = self._boolean(hp, "residual", True)
        return "IGCV1CIFAR", dict(L=L, M=M, depth=depth, residual=residual)


HYPERMODELS = {
    "densenet": HyperDenseNet,
    "mobilenet": HyperMobileNet,
    "senet": HyperSENet,
    "dpn": HyperDPN,
    "igc": HyperIGC,
}

for _cls in HYPERMODELS.values():
    _cls.__doc__ += _SHARED_DOC + _ARGS_DOC.format(default=DEFAULT_BACKBONES[_cls.FAMILY])


class HyperKerasNets(_KerasNetsHyperModel):
    """A hypermodel over several families: which network, then its shape.

    ==============  =======  ========================================  =============
    hyperparameter  type     values                                    default
    ==============  =======  ========================================  =============
    family          Choice   the ``families`` given (densenet,         the first
                             mobilenet, senet, dpn, igc)
    FAMILY/NAME     ...      the hyperparameters of that family's      (theirs)
                             hypermodel (``mobilenet/alpha``,
                             ``dpn/k_r``, ...), active only when
                             ``family`` is FAMILY
    ==============  =======  ========================================  =============

    plus the shared hyperparameters below (one optimizer and learning rate
    for all families). With ``weights`` every family fine-tunes a pretrained
    backbone (``backbones`` names them, default: DenseNet121, MobileNetV2,
    SEResNet50, DPN68, IGCV3) and ``FAMILY/freeze_depth`` and
    ``FAMILY/head_dropout`` are searched per family: the search picks the
    best backbone for the data.

    Args:
        families: the family names to search (default: all five).
        backbones: ``{family: builder name}`` (fine-tuning only).
        input_shape, input_tensor, classes, weights, augmentation, fixed
            (with ``FAMILY/NAME`` keys for a family's hyperparameters),
            label_smoothing, name, tunable: as for the family hypermodels.
    """

    __doc__ += _SHARED_DOC

    def __init__(
        self,
        input_shape=None,
        input_tensor=None,
        classes=None,
        families=FAMILIES,
        *,
        weights=None,
        backbones=None,
        augmentation=None,
        fixed=None,
        label_smoothing=0.1,
        name=None,
        tunable=True,
    ):
        owner = type(self).__name__
        if isinstance(families, str):
            families = (families,)
        families = tuple(families or ())
        if not families or any(f not in HYPERMODELS for f in families):
            raise ValueError(
                f"{owner}: `families` must name one or more of {', '.join(FAMILIES)}; "
                f"received {list(families)!r}."
            )
        if len(set(families)) != len(families):
            raise ValueError(f"{owner}: `families` lists a family twice: {list(families)!r}.")
        backbones = dict(backbones or {})
        if backbones and weights is None:
            raise ValueError(
                f"{owner}: `backbones` choose the pretrained networks of a fine-tuning "
                "search; pass `weights` too.")
        if set(backbones) - set(families):
            raise ValueError(
                f"{owner}: `backbones` names families that are not searched: "
                f"{sorted(set(backbones) - set(families))}.")
        if weights is not None and len(families) > 1 and (
                not isinstance(weights, str) or os.path.exists(weights)):
            raise ValueError(
                f"{owner}: a weights file fits one network; with several families "
                "pass a pretrained tag (e.g. 'imagenet').")
        self.families = families
        fixed = dict(fixed or {})
        self._members = {}
        for family in families:
            prefix = family + "/"
            self._members[family] = HYPERMODELS[family](
                input_shape=input_shape,
                input_tensor=input_tensor,
                classes=classes,
                weights=weights,
                backbone=backbones.get(family),
                fixed={k[len(prefix):]: v for k, v in fixed.items() if k.startswith(prefix)},
            )
        self.MIN_SIZE = max(m.MIN_SIZE for m in self._members.values())
        member_keys = {k for k in fixed if "/" in k}
        super().__init__(
            input_shape=input_shape,
            input_tensor=input_tensor,
            classes=classes,
            augmentation=augmentation,
            fixed={k: v for k, v in fixed.items() if k not in member_keys},
            label_smoothing=label_smoothing,
            name=name,
            tunable=tunable,
        )
        unknown = sorted(k for k in member_keys if k.split("/", 1)[0] not in families)
        if unknown:
            raise ValueError(
                f"{owner}: no hyperparameter named {', '.join(map(repr, unknown))} in this "
                f"search space; its hyperparameters are {', '.join(self.hyperparameter_names)}."
            )
        self.weights = weights
        self.backbones = {f: m.backbone for f, m in self._members.items()}
        self.backbone = None

    def _network_names(self):
        names = ["family"]
        for family, member in getattr(self, "_members", {}).items():
            names += [f"{family}/{n}" for n in member._network_names()]
        return tuple(names)

    def _network(self, hp, x):
        family = self._choice(hp, "family", self.families, self.families[0])
        result = None
        for name, member in self._members.items():
            with hp.conditional_scope("family", [name]), hp.name_scope(name):
                if name == family:
                    result = member._network(hp, x)
        return result

    @property
    def pipeline_preprocessing(self):
        members = list(self._members.values())
        if len(members) == 1:
            return members[0].pipeline_preprocessing
        return preprocessing.KERAS_MODES["none"]

    def describe(self):
        result = super().describe()
        result.update(families=list(self.families), backbones=self.backbones)
        return result


def get_hypermodel(family, input_shape, classes, **kwargs):
    """A hypermodel by family name (``"dpn"``), or ``HyperKerasNets`` for a
    list of family names; ``kwargs`` go to its constructor (``backbone`` is
    ``backbones={family: backbone}`` for a list of one)."""
    if isinstance(family, str):
        if family not in HYPERMODELS:
            raise ValueError(
                f"Unknown family {family!r}: expected one of {', '.join(FAMILIES)}.")
        return HYPERMODELS[family](input_shape=input_shape, classes=classes, **kwargs)
    families = tuple(family)
    backbone = kwargs.pop("backbone", None)
    if backbone is not None:
        if len(families) != 1:
            raise ValueError(
                "`backbone` names one network; for several families pass "
                "backbones={family: name} to HyperKerasNets.")
        kwargs["backbones"] = {families[0]: backbone}
    return HyperKerasNets(input_shape=input_shape, classes=classes, families=families,
                          **kwargs)
