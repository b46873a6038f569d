"""Top-1 / top-5 accuracy and throughput of a model and its weights."""

import dataclasses
import os
import time
from typing import Optional

from kerasnets.training.distribute import device_kind, get_strategy
from kerasnets.training.recipe import get_builder
from kerasnets.training.run import count_examples, read_run_config
from kerasnets.weights.loading import load_model_file


@dataclasses.dataclass
class Evaluation:
    top1: float
    top5: Optional[float]
    images_per_second: float
    num_examples: int
    seconds: float
    reported_top1: Optional[float] = None
    reported_top5: Optional[float] = None

    def summary(self, compare=False):
        lines = [f"top-1 {100 * self.top1:6.2f}%"
                 + (f"   top-5 {100 * self.top5:6.2f}%" if self.top5 is not None else ""),
                 f"{self.num_examples} images in {self.seconds:.1f} s: "
                 f"{self.images_per_second:.1f} images/s"]
        if compare:
            if self.reported_top1 is None and self.reported_top5 is None:
                lines.append("reported: no accuracy published for these weights")
            else:
                parts = []
                for name, ours, theirs in (("top-1", self.top1, self.reported_top1),
                                           ("top-5", self.top5, self.reported_top5)):
                    if theirs is not None and ours is not None:
                        parts.append(f"{name} {theirs:6.2f}% (ours {100 * ours - theirs:+.2f})")
                lines.append("reported: " + "   ".join(parts))
        return "\n".join(lines)


def evaluate(
    model,
    weights="imagenet",
    dataset="imagenet2012",
    split="validation",
    *,
    image_size=None,
    batch_size=64,
    preprocessing=None,
    data_dir=None,
    try_gcs=False,
    strategy="auto",
    tpu=None,
    max_examples=None,
    verbose=0,
    model_kwargs=None,
):
    """Top-1 / top-5 accuracy and throughput of ``model`` with ``weights``.

    ``weights``: a pretrained tag, a weights file, or a ``.keras`` model
    written by ``train`` (its ``config.json`` beside it gives the
    preprocessing). ``image_size``: default the weights' input size
    (``.keras``: the model's). ``preprocessing``: default the weights'.
    Images/s counts the whole evaluation after one warm-up batch.
    Returns an ``Evaluation`` with the weights' reported accuracy.
    """
    import keras
    import tensorflow as tf

    from kerasnets import data
    from kerasnets import weights as weights_lib

    if not isinstance(strategy, tf.distribute.Strategy):
        strategy = get_strategy(strategy, tpu=tpu)
    builder = get_builder(model)
    name = builder.__name__
    cfg = None
    keras_file = isinstance(weights, (str, os.PathLike)) and os.fspath(weights).endswith(".keras")
    if keras_file:
        run = read_run_config(weights)
        if preprocessing is None and run is not None:
            preprocessing = run["preprocessing"]
    elif isinstance(weights, str) and not weights_lib.is_path(weights):
        cfg = weights_lib.pretrained_cfg(name, weights, options=model_kwargs,
                                         input_size=image_size, strict=False)
    if preprocessing is None:
        preprocessing = data.preprocessing_for(name, None if keras_file else weights,
                                               options=model_kwargs)
    preprocessing = data.get_preprocessing(preprocessing)
    with strategy.scope():
        if keras_file:
            net = load_model_file(weights)
        else:
            size = image_size or (cfg.input_size if cfg else 224)
            net = builder(weights=weights, input_shape=(size, size, 3),
                          **(model_kwargs or {}))
    image_size = image_size or int(net.input_shape[1] or 224)
    num_classes = int(net.output_shape[-1])
    with strategy.scope():
        net.compile(loss=keras.losses.SparseCategoricalCrossentropy(), metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="top1"),
            keras.metrics.SparseTopKCategoricalAccuracy(min(5, num_classes), name="top5"),
        ])
    n = count_examples(dataset, split, data_dir, try_gcs)
    if max_examples:
        n = min(n, int(max_examples))
    ds = data.load(dataset, split, image_size, batch_size, training=False,
                   preprocessing=preprocessing, data_dir=data_dir, try_gcs=try_gcs,
                   drop_remainder=device_kind(strategy) == "tpu")
    if max_examples:
        ds = ds.unbatch().take(n).batch(batch_size)
    net.evaluate(ds.take(1), verbose=0)  # trace and warm up
    start = time.perf_counter()
    results = net.evaluate(ds, verbose=verbose, return_dict=True)
    seconds = time.perf_counter() - start
    return Evaluation(
        top1=float(results["top1"]),
        top5=float(results["top5"]) if num_classes > 5 else None,
        images_per_second=n / seconds if seconds > 0 else float("inf"),
        num_examples=n,
        seconds=seconds,
        reported_top1=getattr(cfg, "top1", None),
        reported_top5=getattr(cfg, "top5", None),
    )
