"""The training recipe: the classifier built on a kerasnets network, the
optimizer, learning-rate schedule, loss and metrics (``kerasnets train`` and
the tuner's trials share it)."""

from kerasnets import registry

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")


def get_builder(model):
    """A kerasnets builder function from its catalog name (case-insensitive;
    an unknown name raises ValueError naming the closest) or the function
    itself."""
    if callable(model):
        return model
    return registry.get(str(model)).builder


# The builder arguments ``build_model`` sets itself.
BUILT_ARGUMENTS = ("weights", "include_top", "input_shape", "input_tensor", "classes",
                   "classifier_activation", "pooling")


def check_model_kwargs(model_kwargs):
    """ValueError for a builder argument that ``build_model`` sets itself."""
    taken = [key for key in BUILT_ARGUMENTS if key in (model_kwargs or {})]
    if taken:
        raise ValueError(f"model_kwargs may not set {', '.join(taken)}: the classifier is "
                         "built from weights, image_size and the number of classes.")


def is_keras_file(weights):
    """Whether ``weights`` names a whole ``.keras`` model (a run's model.keras)."""
    return isinstance(weights, str) and weights.lower().endswith(".keras")


def build_model(
    model,
    num_classes,
    image_size,
    *,
    weights=None,
    freeze_backbone=False,
    dropout=0.0,
    float32_outputs=None,
    **model_kwargs,
):
    """Builds a classifier for ``num_classes`` (call under the strategy scope
    and the dtype policy you train with).

    With pretrained ``weights`` (a tag or a path) and ``num_classes`` other
    than 1000, with ``freeze_backbone``, or with ``dropout`` > 0 (from scratch
    too), the builder's headless network
    (``include_top=False, pooling="avg"``) gets a new ``Dense`` classifier
    named ``predictions`` (after ``Dropout(dropout)`` when > 0);
    ``freeze_backbone`` freezes every layer but that head (frozen
    BatchNormalization layers run in inference mode). Otherwise the
    builder's own top is built with ``classes=num_classes``. From scratch,
    the BatchNorm ending each residual branch starts with gamma 0
    (``initialization.zero_init_residual_branches``).

    ``weights`` may also be a ``.keras`` model of the same builder (a
    previous run's model.keras: fine-tuning it further): its weights are
    copied layer by layer; its classifier too where it predicts
    ``num_classes`` classes, otherwise the model gets a new one as above.

    Under a mixed precision policy the classifier computes in the compute
    dtype and a float32 softmax (``Activation`` layer ``predictions_float32``)
    makes the outputs float32; ``float32_outputs`` forces it on or off.

    Returns the model; it outputs class probabilities.
    """
    import keras

    from kerasnets.training.initialization import zero_init_residual_branches

    builder = get_builder(model)
    check_model_kwargs(model_kwargs)
    if float32_outputs is None:
        float32_outputs = keras.config.dtype_policy().compute_dtype != "float32"

    def assemble(new_head, weights):
        activation = None if float32_outputs else "softmax"
        shape = (image_size, image_size, 3)
        if new_head:
            base = builder(include_top=False, weights=weights, input_shape=shape,
                           pooling="avg", **model_kwargs)
            x = base.output
            if dropout:
                x = keras.layers.Dropout(dropout, name="top_dropout")(x)
            x = keras.layers.Dense(num_classes, activation=activation, name="predictions")(x)
            head = {"top_dropout", "predictions"}
        else:
            base = builder(include_top=True, weights=weights, input_shape=shape,
                           classes=num_classes, classifier_activation=activation,
                           **model_kwargs)
            x = base.output
            weighted = [layer for layer in base.layers if layer.weights]
            head = {weighted[-1].name} if weighted else set()
        if float32_outputs:
            x = keras.layers.Activation("softmax", dtype="float32",
                                        name="predictions_float32")(x)
        # base.input, not base.inputs: a model of one input takes a tensor
        # (a list here makes Keras warn at every call with an array).
        return keras.Model(base.input, x, name=base.name), head

    if is_keras_file(weights):
        result, head = _from_keras_file(weights, assemble, num_classes, freeze_backbone)
    else:
        new_head = bool(dropout) or (weights is not None
                                     and (num_classes != 1000 or freeze_backbone))
        result, head = assemble(new_head, weights)
        if weights is None:  # from scratch: residual blocks start as identities
            zero_init_residual_branches(result)
    if freeze_backbone:
        for layer in result.layers:
            if layer.name not in head and layer.name != "predictions_float32":
                layer.trainable = False
    return result


def _from_keras_file(path, assemble, num_classes, freeze_backbone):
    """(model, head) built by ``assemble(new_head, None)`` with the weights of
    the ``.keras`` model at ``path``, copied by layer name: the builder's own
    top or a new classifier, whichever the file's layers fit (a new
    classifier where the file predicts other classes); ValueError naming the
    layers that do not fit."""
    from kerasnets.weights.loading import load_model_file

    source = load_model_file(path)
    layers = {layer.name: layer for layer in source.layers if layer.weights}
    same_classes = int(source.output_shape[-1]) == num_classes
    unfit = None
    for new_head in ((False, True) if same_classes and not freeze_backbone else (True,)):
        net, head = assemble(new_head, None)
        pairs, missing = [], []
        for layer in net.layers:
            if not layer.weights:
                continue
            found = layers.get(layer.name)
            if found is not None and ([tuple(w.shape) for w in found.weights]
                                      == [tuple(w.shape) for w in layer.weights]):
                pairs.append((layer, found))
            elif not (new_head and layer.name in head):
                missing.append(layer.name)
        if not missing:
            for layer, found in pairs:
                layer.set_weights(found.get_weights())
            return net, head
        unfit = unfit or missing
    raise ValueError(
        f"The model file {path} does not fit this model: {len(unfit)} of the model's "
        f"layers are missing from it or of other shapes ({', '.join(unfit[:3])}"
        f"{', ...' if len(unfit) > 3 else ''}); was it trained with another model or "
        "other model arguments?")


def use_synchronized_batch_norm(model):
    """Makes every BatchNormalization layer of ``model`` use the batch
    statistics of all replicas (as one device would with the global batch)."""
    import keras

    count = 0
    for layer in model._flatten_layers(include_self=False):  # noqa: SLF001
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            count += 1
    return count


# ---------------------------------------------------------------- recipe


def default_learning_rate(optimizer, batch_size, pretrained=False):
    """Linear scaling (Goyal et al., 2017). SGD: 0.2 per 256 images from
    scratch (He et al.'s CIFAR rate, 0.1 at batch 128: short runs on small
    datasets need it; safe with the residual branches zero-initialised and a
    warm-up epoch), 0.1 per 256 from pretrained weights. AdamW: 1e-3 per 512."""
    if optimizer == "sgd":
        return (0.1 if pretrained else 0.2) * batch_size / 256
    return 1e-3 * batch_size / 512


def default_warmup_epochs(epochs):
    """One epoch of linear warm-up, at most a tenth of the run."""
    return min(1.0, epochs / 10)


def learning_rate_schedule(lr, schedule, total_steps, warmup_steps=0):
    """Cosine decay to 0 (after a linear warm-up), step decay (x0.1 at 30%,
    60% and 90% of training), or "constant" (``lr`` throughout)."""
    import keras

    total_steps = max(int(total_steps), 1)
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        warmup_steps = min(int(warmup_steps), total_steps - 1)
        if warmup_steps:
            return keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=0.0,
                decay_steps=total_steps - warmup_steps,
                warmup_target=lr,
                warmup_steps=warmup_steps,
            )
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=total_steps)
    if schedule == "step":
        boundaries = sorted({max(1, int(total_steps * f)) for f in (0.3, 0.6, 0.9)})
        values = [lr * 0.1**i for i in range(len(boundaries) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    raise ValueError(f"Unknown schedule {schedule!r}: expected one of {SCHEDULES}.")


def default_weight_decay(optimizer):
    """5e-5 for SGD, 0.05 for AdamW (decoupled)."""
    return 5e-5 if optimizer == "sgd" else 0.05


def make_optimizer(name, learning_rate, *, weight_decay=None, momentum=0.9):
    """SGD (Nesterov momentum) or AdamW, with decoupled weight decay
    (defaults: 5e-5 for SGD, 0.05 for AdamW; 0 turns it off)."""
    import keras

    wd = default_weight_decay(name) if weight_decay is None else weight_decay
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=True,
                                    weight_decay=wd or None)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=wd)
    raise ValueError(f"Unknown optimizer {name!r}: expected one of {OPTIMIZERS}.")


def compile_model(model, *, optimizer="sgd", lr=None, batch_size=64, schedule="cosine",
                  total_steps=1000, warmup_steps=0, weight_decay=None, momentum=0.9,
                  label_smoothing=0.1, steps_per_execution=1):
    """Compiles ``model`` (probability outputs, one-hot labels) with the
    recipe's optimizer, schedule, loss and top-1/top-5 metrics."""
    import keras

    lr = default_learning_rate(optimizer, batch_size) if lr is None else lr
    opt = make_optimizer(optimizer, learning_rate_schedule(lr, schedule, total_steps,
                                                           warmup_steps),
                         weight_decay=weight_decay, momentum=momentum)
    # No decay on biases and normalisation parameters (1-D variables).
    opt.exclude_from_weight_decay(
        var_list=[v for v in model.trainable_variables if len(v.shape) <= 1]
    )
    model.compile(
        optimizer=opt,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")]
        + ([keras.metrics.TopKCategoricalAccuracy(5, name="top5")]
           if model.output_shape[-1] > 5 else []),
        steps_per_execution=steps_per_execution,
    )
    return model
