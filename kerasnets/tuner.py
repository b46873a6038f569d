"""Hyperparameter search with keras-tuner: hypermodels of every family.

Hypermodels in the style of ``keras_tuner.applications`` (``HyperResNet``,
``HyperEfficientNet``): each takes ``input_shape`` (or ``input_tensor``) and
``classes`` and its ``build(hp)`` returns a compiled model:

    =================  ======================================================
    HyperDenseNet      blocks, growth_rate, bottleneck, compression, dropout
    HyperMobileNet     version (v1/v2/v3), alpha, depth_multiplier,
                       model_type, minimalistic, dropout
    HyperSENet         depth, cardinality, se_ratio, dropout
    HyperDPN           k_r, groups, k_sec, inc_sec, small
    HyperIGC           L, M, depth, residual (IGC v1, CIFAR layout)
    HyperKerasNets     family, then that family's space (conditional scopes)
    =================  ======================================================

Every hypermodel also tunes the optimizer (AdamW or SGD with Nesterov
momentum, the training recipe's, with decoupled weight decay off 1-D
parameters) and a constant learning rate; with ``augmentation=True`` the
strength of a random rotation, zoom and contrast change. Each class
docstring tabulates its hyperparameters, their ranges and defaults. Every
value in a space builds (channel counts that the groups divide, enough
resolution for every stride), so no trial is lost to a bad combination.

With ``weights`` (a pretrained tag such as ``"imagenet"``, or a weights
file) a hypermodel searches a fine-tuning instead: it builds the pretrained
``backbone`` (a named builder of its family, ``DenseNet121`` by default for
DenseNet) without its classifier, adds a new head for ``classes``, and tunes
the learning rate, how much of the backbone stays frozen (``freeze_depth``)
and the head's dropout.

Models take RGB images with 0-255 pixels: each normalises its input itself
(an ``ImageNormalization`` layer with the mean and std of its weights, or of
its family's published weights when it trains from scratch), so one input
pipeline serves every family and a saved model needs no preprocessing.
Labels are one-hot (``kerasnets.data.load(..., one_hot=True)``).

    >>> import keras_tuner
    >>> from kerasnets.tuner import HyperMobileNet
    >>> hypermodel = HyperMobileNet(input_shape=(96, 96, 3), classes=10)
    >>> tuner = keras_tuner.RandomSearch(hypermodel, objective="val_accuracy",
    ...                                  max_trials=20, directory="runs")

``search`` does the whole job (data pipelines from ``kerasnets.data``, a
``tf.distribute`` strategy from ``kerasnets.training``, the tuner, the best
model saved as ``DIRECTORY/PROJECT/best_model.keras``); ``kerasnets tune`` is
its command line:

    >>> result = kerasnets.tuner.search("mobilenet", "folder:/data/flowers",
    ...                                 directory="runs", project_name="flowers",
    ...                                 tuner="hyperband", epochs=9, image_size=128)
    >>> result.best_hyperparameters.values

A search is resumable: run it again with the same directory and project and
it reloads the finished trials (keras-tuner's ``DIRECTORY/PROJECT/trial_*``
layout), reruns a trial that was interrupted, and continues up to
``max_trials`` (a larger ``max_trials`` continues a finished search).

Distributed tuning
------------------
keras-tuner's own chief/worker mode spreads the trials of one search over
processes and machines. The chief runs the oracle (it picks hyperparameters
and records results over gRPC, training nothing); every worker runs trials.
All of them run the same command, with three environment variables:

    # on the chief (10.0.0.1), and on each worker with its own id
    export KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000
    KERASTUNER_TUNER_ID=chief   kerasnets tune --family dpn --dataset cifar10 \\
        --directory /shared/tuning --project dpn ...
    KERASTUNER_TUNER_ID=tuner0  kerasnets tune --family dpn ... (same arguments)
    KERASTUNER_TUNER_ID=tuner1  kerasnets tune --family dpn ... (same arguments)

- ``KERASTUNER_TUNER_ID`` is ``chief`` for the chief and any other unique
  name (``tuner0``, ``tuner1``, ...) for a worker; the chief listens on
  ``KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT``, workers connect to it.
- ``--directory`` must be storage every process reads and writes (the same
  machine, NFS, a bucket): workers write each trial's checkpoint into its
  ``trial_*`` folder, the chief reads the best one at the end and writes
  ``best_model.keras`` (workers write no best model).
- The chief returns once every trial has ended and every worker has been
  told to stop (keras-tuner checks every 20 seconds); workers return when the
  oracle has no trial left for them. Restarting the chief with the same
  directory resumes the search, and reruns trials that were interrupted.
- Each worker trains with its own ``--strategy`` (``mirrored`` for all the
  GPUs of its machine); ``max_trials`` counts the trials of all workers.
"""

import dataclasses
import inspect
import json
import numbers
import os
import warnings
from typing import Optional

import keras
import keras_tuner

from kerasnets import data, training

FAMILIES = ("densenet", "mobilenet", "senet", "dpn", "igc")
TUNERS = ("random", "bayesian", "hyperband")
# ``multiworker`` is not among them: spread trials over machines with
# keras-tuner's chief/worker mode instead (module docstring).
STRATEGIES = ("auto", "cpu", "mirrored", "tpu")
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

# Builder modules of each family: the named builders a fine-tuning search
# may use as its backbone.
FAMILY_MODULES = {
    "densenet": ("densenet",),
    "mobilenet": ("mobilenet", "mobilenet_v2", "mobilenet_v3"),
    "senet": ("senet",),
    "dpn": ("dpn",),
    "igc": ("igc", "igc_v3"),
}
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
    module = (getattr(builder, "__module__", "") or "").rsplit(".", 1)[-1]
    for family, modules in FAMILY_MODULES.items():
        if module in modules:
            return family
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
    required = [
        p.name for p in inspect.signature(builder).parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
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
    import kerasnets

    names = []
    for name, obj in vars(kerasnets).items():
        if inspect.isfunction(obj) and name[:1].isupper() and _family_of(obj) == family:
            params = inspect.signature(obj).parameters.values()
            if not any(p.default is inspect.Parameter.empty
                       and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
                names.append(name)
    return sorted(names)


def _dashed(text):
    return tuple(int(n) for n in text.split("-"))


# ------------------------------------------------------------ hypermodels


class _KerasNetsHyperModel(keras_tuner.HyperModel):
    """Shared machinery: input, augmentation, normalisation, head, compile."""

    FAMILY = None
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
        import kerasnets

        builder_name, kwargs = self._architecture(hp)
        builder = getattr(kerasnets, builder_name)
        x = self._normalize(x, data.preprocessing_for(builder_name, None))
        net = builder(
            **kwargs,
            include_top=True,
            weights=None,
            input_tensor=x,
            input_shape=self.input_shape,
            classes=self.classes,
            classifier_activation=None if self._float32_outputs() else "softmax",
        )
        return self._probabilities(net.output), net.name

    def _finetune(self, hp, x):
        builder = training.get_builder(self.backbone)
        x = self._normalize(x, data.preprocessing_for(self.backbone, self.weights))
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
        optimizer = self._choice(hp, "optimizer", OPTIMIZERS, "adamw")
        low, high, default = FINETUNE_LR if self.weights is not None else SCRATCH_LR
        lr = self._float(hp, "learning_rate", low, high, default)
        opt = training.make_optimizer(optimizer, lr)
        # No decay on biases and normalisation parameters (1-D variables).
        opt.exclude_from_weight_decay(
            var_list=[v for v in model.trainable_variables if len(v.shape) <= 1])
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        if self.classes > 5:
            metrics.append(keras.metrics.TopKCategoricalAccuracy(5, name="top5"))
        model.compile(
            optimizer=opt,
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=self.label_smoothing),
            metrics=metrics,
        )

    @property
    def pipeline_preprocessing(self):
        """Input pipeline preprocessing for this hypermodel: pixels unchanged
        (the model normalises), with its weights' evaluation crop."""
        none = data.MODES["none"]
        if self.weights is None:
            return none
        prep = data.preprocessing_for(self.backbone, self.weights)
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
        return data.MODES["none"]

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


# ------------------------------------------------------------------ tuners


class _TunerMixin:
    """Records the trials this process ran (``ran_trials``), and imports
    TensorBoard only for a search that has a TensorBoard callback
    (keras-tuner 1.4 imports it in every trial on the TensorFlow backend,
    and TensorFlow does not install it)."""

    def on_trial_begin(self, trial):
        self.__dict__.setdefault("ran_trials", []).append(trial.trial_id)
        super().on_trial_begin(trial)

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        if any(type(c).__name__ == "TensorBoard" for c in callbacks):
            super()._configure_tensorboard_dir(callbacks, trial, execution)

    def _build_hypermodel(self, hp):
        # keras-tuner clears the Keras session before each build, and with it
        # the global dtype policy: set the search's again.
        policy = getattr(self, "dtype_policy", None)
        if policy is not None:
            keras.config.set_dtype_policy(policy)
        return super()._build_hypermodel(hp)


class _RandomSearch(_TunerMixin, keras_tuner.RandomSearch):
    pass


class _BayesianOptimization(_TunerMixin, keras_tuner.BayesianOptimization):
    pass


class _Hyperband(_TunerMixin, keras_tuner.Hyperband):
    pass


def distributed_role():
    """"chief" or "worker" under keras-tuner's chief/worker mode (the
    ``KERASTUNER_*`` environment variables), else None."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    missing = [v for v in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID")
               if not os.environ.get(v)]
    if missing:
        raise RuntimeError(
            f"KERASTUNER_ORACLE_IP is set but {' and '.join(missing)} not: distributed "
            "tuning needs KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT and "
            "KERASTUNER_TUNER_ID ('chief' or a worker name) in every process.")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def make_tuner(hypermodel, kind="random", *, directory, project_name, max_trials=None,
               epochs=3, hyperband_factor=3, objective="val_accuracy", seed=None,
               distribution_strategy=None, overwrite=False, executions_per_trial=1,
               dtype_policy=None):
    """A keras-tuner tuner for ``hypermodel``: ``kind`` "random", "bayesian"
    or "hyperband" (``max_epochs=epochs``; ``max_trials``, if given, caps its
    trials). Reloads ``directory/project_name`` unless ``overwrite``; a
    reloaded search keeps its trials and continues up to ``max_trials``.
    ``dtype_policy`` (e.g. "mixed_float16") is set before every build."""
    if kind not in TUNERS:
        raise ValueError(f"Unknown tuner {kind!r}: expected one of {', '.join(TUNERS)}.")
    if max_trials is not None and (not _is_int(max_trials) or max_trials < 1):
        raise ValueError(f"max_trials must be a positive integer; received {max_trials!r}.")
    common = dict(objective=objective, seed=seed, directory=directory,
                  project_name=project_name, overwrite=overwrite,
                  distribution_strategy=distribution_strategy,
                  executions_per_trial=executions_per_trial)
    if kind == "random":
        tuner = _RandomSearch(hypermodel, max_trials=max_trials or 10, **common)
    elif kind == "bayesian":
        tuner = _BayesianOptimization(hypermodel, max_trials=max_trials or 10, **common)
    else:
        if not _is_int(hyperband_factor) or hyperband_factor < 2:
            raise ValueError(
                f"hyperband_factor must be an integer of at least 2; received "
                f"{hyperband_factor!r}.")
        tuner = _Hyperband(hypermodel, max_epochs=epochs, factor=hyperband_factor, **common)
    if max_trials is not None:
        tuner.oracle.max_trials = max_trials
    tuner.ran_trials = []
    tuner.dtype_policy = dtype_policy
    return tuner


# ------------------------------------------------------------------ search


@dataclasses.dataclass
class SearchResult:
    """What ``search`` returns.

    Attributes:
        tuner: the keras-tuner tuner (``tuner.oracle.trials`` on the chief).
        best_model: the best trial's model (its best epoch's weights), or
            None on a worker of a distributed search.
        best_hyperparameters: its ``keras_tuner.HyperParameters`` (None on a
            worker).
        model_path: where ``best_model`` was saved
            (``DIRECTORY/PROJECT/best_model.keras``), or None.
        ran_trials: ids of the trials this call ran (resumed searches skip
            finished ones).
        role: None, or "chief"/"worker" in keras-tuner's distributed mode.
        project_dir: ``DIRECTORY/PROJECT``.
        objective: the objective's name ("val_accuracy").
    """

    tuner: object
    best_model: Optional[object]
    best_hyperparameters: Optional[object]
    model_path: Optional[str]
    ran_trials: list
    role: Optional[str]
    project_dir: str
    objective: str


def _holdout_splits(train_split, val_split, dataset, data_dir, try_gcs):
    if val_split != "auto":
        return train_split, val_split
    val_split = training._default_val_split(dataset, data_dir, try_gcs)  # noqa: SLF001
    if val_split:
        return train_split, val_split
    if "[" in train_split:
        raise ValueError(
            f"{dataset} has no validation or test split: pass a validation split "
            f"(val_split / --val-split), e.g. a slice of {train_split.split('[')[0]!r}.")
    # Hold out the last 20% of each class (folders) or of the split (tfds).
    return f"{train_split}[:80%]", f"{train_split}[80%:]"


def _check_search_file(project_dir, settings, overwrite, role):
    path = os.path.join(project_dir, SEARCH_FILE)
    if os.path.exists(path) and not overwrite:
        with open(path) as f:
            previous = json.load(f)
        keys = ("hypermodel", "families", "classes", "input_shape", "weights", "backbone",
                "backbones", "dataset", "tuner")
        changed = [k for k in keys if previous.get(k) != settings.get(k)]
        if changed:
            details = ", ".join(f"{k} {previous.get(k)!r} (now {settings.get(k)!r})"
                                for k in changed)
            raise ValueError(
                f"{project_dir} holds another search ({details}); use another project "
                "name or directory, or overwrite it.")
        return
    if role == "worker":
        return  # the chief writes it
    os.makedirs(project_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(settings, f, indent=2)
    os.replace(tmp, path)


def search(
    hypermodel,
    dataset,
    *,
    directory,
    project_name="kerasnets",
    tuner="random",
    max_trials=None,
    epochs=3,
    image_size=224,
    batch_size=64,
    steps_per_epoch=None,
    validation_steps=None,
    train_split="train",
    val_split="auto",
    weights=None,
    backbone=None,
    augment=False,
    fixed=None,
    label_smoothing=0.1,
    hyperband_factor=3,
    objective="val_accuracy",
    executions_per_trial=1,
    strategy="auto",
    tpu=None,
    mixed_precision=False,
    seed=None,
    data_dir=None,
    try_gcs=False,
    cache=False,
    overwrite=False,
    callbacks=(),
    verbose="auto",
):
    """Searches hyperparameters on ``dataset`` and saves the best model.

    The Python form of ``kerasnets tune``. Running it again with the same
    ``directory`` and ``project_name`` resumes the search (see the module
    docstring, which also describes distributed tuning).

    Args:
        hypermodel: a family name (``"mobilenet"``), a list of family names
            (``HyperKerasNets`` over them), or a hypermodel of this module
            built for the dataset's classes and ``image_size``.
        dataset: tfds name or ``"folder:PATH"`` (see ``kerasnets.data``).
        directory, project_name: the search lives in
            ``directory/project_name`` (keras-tuner's layout: ``trial_*``,
            ``oracle.json``); the best model is saved there as
            ``best_model.keras``.
        tuner: "random", "bayesian" or "hyperband".
        max_trials: trials in all (default 10 for random and bayesian;
            Hyperband runs the trials its brackets need, capped by
            ``max_trials`` when given).
        epochs: per trial (Hyperband: the most any trial trains).
        image_size, batch_size (global): the usual.
        steps_per_epoch: default: training examples // batch_size.
        validation_steps: default: the whole validation split.
        train_split, val_split: splits; ``val_split="auto"`` takes the
            dataset's validation or test split, else holds out the last 20%
            of ``train_split``.
        weights, backbone: a pretrained tag or weights file (and a backbone
            builder name): search a fine-tuning (hypermodel docstrings).
        augment: the tunable augmentation (``augment_*`` hyperparameters).
        fixed: ``{name: value}``: hyperparameters held fixed.
        label_smoothing: of the loss.
        hyperband_factor: Hyperband's reduction factor.
        objective: metric to maximise/minimise ("val_accuracy", "val_loss").
        executions_per_trial: trainings averaged per trial.
        strategy: "auto", "cpu", "mirrored", "tpu" or a
            ``tf.distribute.Strategy``: each trial trains under it.
        tpu: TPU name or address (``strategy="tpu"``).
        mixed_precision: False, True (float16 on GPUs, bfloat16 on TPUs and
            CPUs) or a policy name.
        seed: seeds the oracle, the input pipeline and Keras.
        data_dir, try_gcs, cache: see ``kerasnets.data.load``.
        overwrite: start over, deleting ``directory/project_name`` (in a
            distributed search, the chief's does; workers' is ignored).
        callbacks: Keras callbacks for every trial (deep-copyable).
        verbose: of ``model.fit``, and of the tuner's progress display.

    Returns:
        ``SearchResult``.
    """
    import tensorflow as tf

    if isinstance(strategy, str) and strategy not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {strategy!r} for a search: expected one of "
            f"{', '.join(STRATEGIES)}. To spread trials over machines use keras-tuner's "
            "chief/worker mode (kerasnets.tuner's docstring).")
    if tuner not in TUNERS:
        raise ValueError(f"Unknown tuner {tuner!r}: expected one of {', '.join(TUNERS)}.")
    for arg, value in (("epochs", epochs), ("batch_size", batch_size),
                       ("image_size", image_size), ("executions_per_trial", executions_per_trial)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{arg} must be a positive integer; received {value!r}.")
    for arg, value in (("steps_per_epoch", steps_per_epoch),
                       ("validation_steps", validation_steps)):
        if value is not None and (not _is_int(value) or value < 1):
            raise ValueError(f"{arg} must be a positive integer; received {value!r}.")
    role = distributed_role()
    if not isinstance(strategy, tf.distribute.Strategy):
        strategy = training.get_strategy(strategy, tpu=tpu)
    if seed is not None:
        keras.utils.set_random_seed(seed)

    train_split, val_split = _holdout_splits(train_split, val_split, dataset, data_dir, try_gcs)
    info = data.info(dataset, train_split, data_dir, try_gcs)
    input_shape = (image_size, image_size, 3)
    if isinstance(hypermodel, _KerasNetsHyperModel):
        if weights is not None or backbone is not None or augment or fixed:
            raise ValueError(
                "weights, backbone, augment and fixed configure the hypermodel: pass "
                "them to its constructor, not to search().")
        if hypermodel.classes != info.num_classes:
            raise ValueError(
                f"The hypermodel classifies {hypermodel.classes} classes; {dataset} "
                f"has {info.num_classes}.")
        if hypermodel.input_shape != input_shape:
            raise ValueError(
                f"The hypermodel takes {hypermodel.input_shape} images; the pipeline "
                f"makes {input_shape} (image_size={image_size}).")
    else:
        hypermodel = get_hypermodel(
            hypermodel, input_shape, info.num_classes, weights=weights, backbone=backbone,
            augmentation=True if augment else None, fixed=fixed,
            label_smoothing=label_smoothing)

    kind = training.device_kind(strategy)
    if steps_per_epoch is None:
        steps_per_epoch = max(1, training.count_examples(
            dataset, train_split, data_dir, try_gcs) // batch_size)
    if validation_steps is None and kind == "tpu":
        validation_steps = max(1, training.count_examples(
            dataset, val_split, data_dir, try_gcs) // batch_size)
    common = dict(image_size=image_size, batch_size=batch_size,
                  preprocessing=hypermodel.pipeline_preprocessing, data_dir=data_dir,
                  try_gcs=try_gcs, seed=seed, cache=cache, num_classes=info.num_classes,
                  one_hot=True, strategy=strategy)
    train_ds = data.load(dataset, train_split, training=True, **common)
    val_ds = data.load(dataset, val_split, training=False,
                       repeat=validation_steps is not None,
                       drop_remainder=validation_steps is not None, **common)

    policy = training.requested_policy(mixed_precision, strategy)
    if role == "worker":
        overwrite = False  # only the chief starts a distributed search over
    project_dir = os.path.join(os.fspath(directory), project_name)
    settings = dict(hypermodel.describe(), dataset=dataset, tuner=tuner,
                    train_split=train_split, val_split=val_split, image_size=image_size)
    _check_search_file(project_dir, settings, overwrite, role)
    default_strategy = strategy is tf.distribute.get_strategy()

    previous_policy = keras.config.dtype_policy()
    try:
        if policy:
            keras.config.set_dtype_policy(policy)
        search_tuner = make_tuner(
            hypermodel, tuner, directory=os.fspath(directory), project_name=project_name,
            max_trials=max_trials, epochs=epochs, hyperband_factor=hyperband_factor,
            objective=objective, seed=seed, overwrite=overwrite,
            executions_per_trial=executions_per_trial, dtype_policy=policy,
            distribution_strategy=None if default_strategy else strategy)
        if overwrite:  # the tuner deleted the project folder with the settings file
            _check_search_file(project_dir, settings, False, role)
        with warnings.catch_warnings():
            # Checkpoints hold optimizer variables; models rebuilt to load
            # them (Hyperband's continued trials) start a new optimizer.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            try:
                search_tuner.search(
                    train_ds, validation_data=val_ds, epochs=epochs,
                    steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                    callbacks=list(callbacks), verbose=verbose, shuffle=False)
            except RuntimeError as error:
                raise _failed_trials_error(error, project_dir) from error
        ran = list(getattr(search_tuner, "ran_trials", []))
        objective_name = _objective_name(search_tuner)
        if role == "worker":
            return SearchResult(search_tuner, None, None, None, ran, role, project_dir,
                                objective_name)
        completed = [t for t in search_tuner.oracle.get_best_trials(1)
                     if t.status == "COMPLETED"]
        if not completed:
            failed = [t for t in search_tuner.oracle.trials.values() if t.message]
            cause = f"; the last failed with {_cause(failed[-1].message)}" if failed else ""
            raise RuntimeError(
                f"No trial of {project_dir} completed{cause} (tracebacks in its "
                "trial_*/trial.json files).")
        best_hp = completed[0].hyperparameters
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            best_model = search_tuner.get_best_models(1)[0]
        # Its optimizer's variables exist, so that the saved file loads whole.
        with strategy.scope():
            best_model.optimizer.build(best_model.trainable_variables)
        model_path = os.path.join(project_dir, BEST_MODEL_FILE)
        tmp = model_path[: -len(".keras")] + f".{os.getpid()}.tmp.keras"
        best_model.save(tmp)
        os.replace(tmp, model_path)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    return SearchResult(search_tuner, best_model, best_hp, model_path, ran, role,
                        project_dir, objective_name)


def _objective_name(tuner):
    objective = tuner.oracle.objective
    return getattr(objective, "name", str(objective))


def _cause(traceback_text):
    """The line of a trial's traceback that says what went wrong: its last
    line that is neither indented nor TensorFlow's ``[[node ...]]`` note."""
    lines = [line for line in traceback_text.splitlines()
             if line.strip() and not line[0].isspace() and not line.startswith("[[")]
    return lines[-1].strip() if lines else "an unknown error"


def _failed_trials_error(error, project_dir):
    message = str(error)
    if not message.startswith("Number of consecutive failures"):
        return error
    first, _, rest = message.partition("\n")
    return RuntimeError(
        f"{first.strip().rstrip('.')}; the last failed with {_cause(rest)} (tracebacks in "
        f"{project_dir}/trial_*/trial.json).")


# ----------------------------------------------------------------- display


def _format(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def trials_table(tuner, title=None):
    """A ``rich.table.Table`` of a search's trials: status, score, epochs
    (Hyperband) and hyperparameter values, the best trial marked."""
    from rich.table import Table

    oracle = tuner.oracle
    trials = [oracle.trials[t] for t in sorted(oracle.trials, key=_trial_order)]
    objective = _objective_name(tuner)
    best = [t.trial_id for t in oracle.get_best_trials(1) if t.status == "COMPLETED"]
    names = []
    for trial in trials:
        for name in trial.hyperparameters.values:
            if name not in names and not name.startswith("tuner/"):
                names.append(name)
    hyperband = any("tuner/epochs" in t.hyperparameters.values for t in trials)
    table = Table(title=title or f"{len(trials)} trials of {tuner.project_dir}")
    table.add_column("trial", justify="right")
    table.add_column("status")
    table.add_column(objective, justify="right")
    if hyperband:
        table.add_column("epochs", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for trial in trials:
        values = trial.hyperparameters.values
        row = [("* " if trial.trial_id in best else "") + trial.trial_id,
               str(trial.status).lower(),
               "-" if trial.score is None else f"{trial.score:.4f}"]
        if hyperband:
            row.append(str(values.get("tuner/epochs", "-")))
        row += [_format(values[n]) if n in values else "-" for n in names]
        table.add_row(*row, style="bold" if trial.trial_id in best else None)
    return table


def _trial_order(trial_id):
    return (int(trial_id), trial_id) if str(trial_id).isdigit() else (float("inf"), trial_id)


def hyperparameters_table(hyperparameters, title="best hyperparameters"):
    """A ``rich.table.Table`` of one set of hyperparameter values."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("hyperparameter")
    table.add_column("value", justify="right")
    for name, value in hyperparameters.values.items():
        if not name.startswith("tuner/"):
            table.add_row(name, _format(value))
    return table


def parse_fixed(items):
    """``["alpha=0.5", "optimizer=sgd"]`` -> ``{"alpha": 0.5, "optimizer": "sgd"}``
    (integers, floats, true/false, else strings)."""
    fixed = {}
    for item in items or ():
        name, sep, text = str(item).partition("=")
        if not sep or not name.strip() or not text.strip():
            raise ValueError(f"--fix takes NAME=VALUE (e.g. alpha=0.5); received {item!r}.")
        text = text.strip()
        value = text
        if text.lower() in ("true", "false"):
            value = text.lower() == "true"
        else:
            for convert in (int, float):
                try:
                    value = convert(text)
                    break
                except ValueError:
                    continue
        fixed[name.strip()] = value
    return fixed


__all__ = [
    "FAMILIES",
    "HyperDenseNet",
    "HyperDPN",
    "HyperIGC",
    "HyperKerasNets",
    "HyperMobileNet",
    "HyperSENet",
    "SearchResult",
    "distributed_role",
    "freeze",
    "get_hypermodel",
    "hyperparameters_table",
    "make_tuner",
    "parse_fixed",
    "search",
    "trials_table",
]
