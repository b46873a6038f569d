"""Precise BatchNorm statistics: the population mean and variance of every
BatchNormalization layer, re-estimated over training images.

A BatchNormalization layer normalises with its batch's statistics while
training and with moving averages of them at inference. The moving averages
start at mean 0 / variance 1 and forget slowly: with Keras' momentum 0.99 the
start still weighs 11 % after 220 steps, with the 0.999 of keras.applications'
MobileNets 80 %. A run of a few hundred steps (ten epochs of a small dataset)
is then evaluated with statistics that belong to no network at all, and its
held-out accuracy sits at chance while its training accuracy is high.

``PreciseBatchNorm`` (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021,
section 3; pycls' precise BN) replaces the moving averages with the exact
statistics of the current weights, averaged over up to ``max_images`` training
images, before each validation and at the end of every epoch, so every
evaluation, checkpoint and ``model.keras`` carries statistics of its own
weights, whatever the momentum and the run's length. The images go through
the evaluation transform (resize and centre crop, no augmentation): the
statistics are those of the images the model is evaluated on. Frozen layers
(``trainable=False``, e.g. ``freeze_backbone``) keep theirs.
"""

import itertools
import math

import numpy as np

# pycls' default: 8192 images give statistics within noise of the full set.
MAX_IMAGES = 8192


def batch_norm_layers(model):
    """The trainable BatchNormalization layers of ``model``, nested ones too."""
    import keras

    return [layer for layer in model._flatten_layers(include_self=False)  # noqa: SLF001
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
            and not layer.renorm]


def forward_pass(model, strategy=None):
    """A function running ``model`` in training mode on one (per-replica)
    batch of images: compiled on TensorFlow (through ``strategy.run`` when
    there is one), eager elsewhere (on JAX under data parallelism, the batch
    split over the mesh as ``fit`` splits it: statistics of the global
    batch)."""
    import keras

    if keras.backend.backend() != "tensorflow":  # tf.data batches in
        distribute = getattr(strategy, "distribute_batch", None)
        if distribute is not None:  # distribute.JaxDataParallel
            return lambda images: model(distribute(images), training=True)
        return lambda images: model(np.asarray(images), training=True)
    import tensorflow as tf

    def step(images):
        model(images, training=True)

    if strategy is None:
        return tf.function(step, reduce_retracing=True)
    return tf.function(lambda images: strategy.run(step, args=(images,)),
                       reduce_retracing=True)


def estimate(model, dataset, steps, strategy=None, forward=None):
    """Sets every trainable BatchNormalization layer's moving statistics to
    the population statistics of ``steps`` batches of ``dataset`` (batches of
    ``(images, labels)``, or a distributed dataset with ``strategy``).

    Each batch's mean and (biased) variance are read with momentum 0 and
    averaged; the variance is the population's (law of total variance: the
    mean of the batch variances plus the variance of the batch means).
    ``forward``: a function from ``forward_pass`` (reused across calls: one
    trace). Returns the number of layers updated.
    """
    import keras

    layers = batch_norm_layers(model)
    if not layers or steps < 1:
        return 0
    momenta = [layer.momentum for layer in layers]
    sums = [[0.0, 0.0, 0.0] for _ in layers]  # mean, mean^2, variance
    count = 0
    try:
        for layer in layers:
            layer.momentum = 0.0  # moving statistics = the batch's
            layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, "float32"))
            layer.moving_variance.assign(np.ones(layer.moving_variance.shape, "float32"))
        forward = forward or forward_pass(model, strategy)
        for images, _ in itertools.islice(dataset, steps):  # tf.data or distributed
            forward(images)
            for layer, total in zip(layers, sums):
                mean = keras.ops.convert_to_numpy(layer.moving_mean.value).astype(np.float64)
                var = keras.ops.convert_to_numpy(layer.moving_variance.value).astype(
                    np.float64)
                total[0] = total[0] + mean
                total[1] = total[1] + mean * mean
                total[2] = total[2] + var
            count += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if not count:
        raise ValueError("No batch to estimate the BatchNorm statistics from: the training "
                         "data is empty.")
    for layer, (mean_sum, square_sum, var_sum) in zip(layers, sums):
        mean = mean_sum / count
        variance = var_sum / count + np.maximum(square_sum / count - mean * mean, 0.0)
        layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
    return len(layers)


def steps_for(batch_size, steps_per_epoch, max_images=MAX_IMAGES):
    """Batches for one estimate: ``max_images`` images, at most an epoch."""
    return max(1, min(int(steps_per_epoch), math.ceil(max_images / batch_size)))


def precise_batch_norm(dataset, steps, strategy=None):
    """A Keras callback re-estimating the BatchNorm statistics (``estimate``)
    before each validation and at the end of each epoch, whenever the
    weights changed since the last estimate. Put it before the callbacks
    that save the model."""
    import keras

    class PreciseBatchNorm(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.stale = False
            self.forward = None

        def _estimate(self):
            if self.stale:
                self.forward = self.forward or forward_pass(self.model, strategy)
                estimate(self.model, dataset, steps, strategy, self.forward)
                self.stale = False

        def on_train_batch_end(self, batch, logs=None):
            self.stale = True

        def on_test_begin(self, logs=None):  # fit's validation
            self._estimate()

        def on_epoch_end(self, epoch, logs=None):
            self._estimate()

        def __deepcopy__(self, memo):  # keras-tuner copies callbacks per trial
            return precise_batch_norm(dataset, steps, strategy)

    return PreciseBatchNorm()
