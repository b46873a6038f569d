"""``export_model``: write, reload, check, and only then move into place."""

import contextlib
import os
import time

import numpy as np

from kerasnets import extras
from kerasnets.files import partial_path, remove_stale_partials
from kerasnets.export.checks import (
    CHECK_SAMPLES,
    DEFAULT_MIN_AGREEMENT,
    DEFAULT_RTOL,
    KERAS_FORMATS,
    MAX_PROBABILITY_DIFF,
    NOISE_FACTOR,
    NOISE_SAMPLES,
    QUANTIZATIONS,
    SYNTHETIC,
    ExportError,
    ExportReport,
    _batched,
    _check_destination,
    _disk_size,
    _install,
    _on_cpu,
    _quiet_converters,
    _remove,
    check_backend_format,
    check_failure,
    compare,
    load_exported,
    resolve_format,
)
from kerasnets.export.sources import (
    _default_size,
    _preprocessing_text,
    _weights_text,
    calibration_images,
    exportable,
    resolve_model,
)


def export_model(
    model,
    path,
    format=None,
    *,
    weights="imagenet",
    image_size=None,
    quantize=None,
    calibration=None,
    calibration_split="train",
    calibration_samples=128,
    preprocessing=None,
    batch_size=16,
    rtol=DEFAULT_RTOL,
    min_agreement=DEFAULT_MIN_AGREEMENT,
    max_probability_diff=MAX_PROBABILITY_DIFF,
    opset=None,
    progress=None,
):
    """Exports ``model`` to ``path`` and checks the result against Keras.

    Args:
        model: a ``keras.Model``, a builder name or function, or a
            ``.keras`` file (see ``resolve_model``).
        path: a ``.tflite`` or ``.onnx`` file or a SavedModel directory. An
            existing export there is replaced once the new one has passed
            its check; the parent directory is created if needed.
        format: "savedmodel", "tflite" (LiteRT) or "onnx"; default from
            ``path``'s extension.
        weights: for a builder name, the weights to build with (tag, file,
            or None); otherwise the tag the model's weights came from (for
            its preprocessing).
        image_size: input height and width of the export (default: the
            model's, else the weights' input size, else 224).
        quantize: None, "float16" or "int8" (LiteRT only; int8 needs
            ``calibration``).
        calibration: images for int8 calibration and for the check:
            "synthetic", a tfds name, ``folder:PATH`` / a directory, a numpy
            batch or a ``tf.data`` dataset (see ``calibration_images``),
            preprocessed with the model's preprocessing. Default: the check
            runs on synthetic images.
        calibration_split: the dataset split to read.
        calibration_samples: how many images to calibrate with.
        preprocessing: overrides the model's preprocessing (a mode such as
            "torch", a (mean, std) pair or a ``Preprocessing``). Default:
            ``kerasnets.preprocessing.for_model(builder, weights)``; a
            ``.keras`` file from ``kerasnets train``: its run's; an unknown
            model: raw 0-255 pixels (int8 then needs it given).
        batch_size: batch size for reading images and running the check.
        rtol: float exports: limit of ``max_abs_diff`` over the logit scale.
        min_agreement: quantized exports: least top-1 agreement with Keras.
        max_probability_diff: quantized exports: the largest accepted
            change of the class probabilities (``ExportReport.probability_diff``).
        opset: ONNX opset (default: tf2onnx's).
        progress: called with a short text at each step (the command line
            shows it; exports take minutes).

    Returns:
        ``ExportReport``.

    Raises:
        ExportError: the converter failed, or the exported model does not
            run or disagrees with Keras (nothing is left at ``path``).
        ValueError: bad arguments, an unknown model or format.
    """
    import keras

    from kerasnets import data

    start = time.perf_counter()
    path = os.fspath(path)
    format = resolve_format(format, path)
    check_backend_format(format, keras.backend.backend())
    if format == "onnx":  # converted by tf2onnx on TensorFlow, checked by onnxruntime
        extras.require("export", "ONNX export", ("onnx", "onnxruntime") + (
            ("tf2onnx",) if keras.backend.backend() == "tensorflow" else ()))
    if quantize is not None:
        if quantize not in QUANTIZATIONS:
            raise ValueError(f"Unknown quantization {quantize!r}: expected "
                             f"{' or '.join(QUANTIZATIONS)}.")
        if format != "tflite":
            raise ValueError(f"Quantization ({quantize}) is for LiteRT exports "
                             f"(format tflite); received format {format}.")
        if keras.backend.backend() != "tensorflow":
            raise ValueError("Quantized LiteRT export needs the TensorFlow backend.")
    if quantize == "int8" and calibration is None:
        raise ValueError(
            "int8 quantization needs calibration images: pass calibration= a tfds name, "
            "folder:PATH or 'synthetic' (random images: a poor calibration, for tests)."
        )
    if not 0 < rtol < float("inf"):
        raise ValueError(f"rtol must be positive; received {rtol}.")
    if not 0.0 <= min_agreement <= 1.0:
        raise ValueError(f"min_agreement must be in [0, 1]; received {min_agreement}.")
    if not 0.0 <= max_probability_diff <= 1.0:
        raise ValueError(f"max_probability_diff must be in [0, 1]; received "
                         f"{max_probability_diff}.")
    _check_destination(path, format)

    say = progress or (lambda text: None)
    say("building the model")
    net, builder, weights, known_prep = resolve_model(model, weights, image_size)
    if len(net.inputs) != 1 or len(net.outputs) != 1:
        raise ValueError(f"{net.name} has {len(net.inputs)} inputs and "
                         f"{len(net.outputs)} outputs; export handles one of each.")
    _, height, width, channels = net.input_shape
    if image_size:
        if (height, width) not in ((None, None), (image_size, image_size)):
            raise ValueError(f"{net.name} takes {height}x{width} images; "
                             f"image size {image_size} does not fit.")
        height = width = int(image_size)
    elif height is None or width is None:
        height = width = _default_size(builder, weights)
    if preprocessing is not None:
        prep = data.get_preprocessing(preprocessing)
    elif known_prep is not None:
        prep = known_prep
    elif builder is not None:
        from kerasnets import weights as weights_lib

        tag = weights if isinstance(weights, str) and not weights_lib.is_path(weights) else None
        if tag is not None and tag not in weights_lib.tags(builder):
            tag = None  # a model built elsewhere: its family's preprocessing
        prep = data.preprocessing_for(builder, tag)
    elif quantize == "int8":
        raise ValueError(
            f"Cannot tell how {net.name} preprocesses its images; pass preprocessing= "
            "(--preprocessing: torch, tf, caffe, none, or a model name such as DPN92) for "
            "its calibration."
        )
    else:
        prep = data.get_preprocessing("none")
    if channels != 3 and isinstance(calibration, str):
        raise ValueError(f"{net.name} takes {channels}-channel images; calibration "
                         "datasets give RGB: pass a numpy batch.")

    # The images: calibration (int8: all of them; otherwise the first
    # CHECK_SAMPLES check the export), or synthetic ones for the check.
    if calibration is not None:
        say(f"reading {calibration_samples} calibration images")
        images = calibration_images(calibration, height, prep, calibration_samples,
                                    calibration_split, batch_size)
        if not isinstance(calibration, str):
            source = "given images"
        elif calibration == SYNTHETIC:
            source = SYNTHETIC
        else:
            source = f"{calibration}, {calibration_split}"
    elif channels == 3:
        images = calibration_images(SYNTHETIC, height, prep, CHECK_SAMPLES,
                                    batch_size=batch_size)
        source = SYNTHETIC
    else:
        images = np.random.default_rng(0).uniform(
            -1, 1, (CHECK_SAMPLES, height, width, channels)).astype(np.float32)
        source = SYNTHETIC
    if images.shape[1:] != (height, width, channels):
        raise ValueError(f"Calibration images have shape {images.shape[1:]}; "
                         f"{net.name} exports for {(height, width, channels)}.")
    check_images = images if quantize else images[:CHECK_SAMPLES]

    target, rewrites, float32_reference = exportable(net)
    reference = target if float32_reference else net

    def keras_outputs(x):
        # A tensor, not an array: a model whose inputs are a one-element list
        # (older kerasnets train runs) takes a tensor silently, an array with
        # a warning about the structure of its inputs.
        x = keras.ops.convert_to_tensor(x)
        return keras.ops.convert_to_numpy(reference(x, training=False))

    say("running the Keras model on the check images")
    with _on_cpu():  # float32 throughout: no TensorFloat-32 on GPUs
        expected = _batched(keras_outputs, check_images, batch_size)
        # Keras against itself: a few images one at a time (other kernels,
        # other rounding). A float export cannot be held closer than this.
        alone = None if quantize else _batched(keras_outputs, check_images[:NOISE_SAMPLES], 1)

    kwargs = {}
    if format == "tflite":
        import tensorflow as tf

        kwargs["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
        if quantize:
            kwargs["optimizations"] = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            kwargs["target_spec"]["supported_types"] = [tf.float16]
        if quantize == "int8":
            def representative_dataset():
                for i in range(0, len(images), batch_size):
                    yield [images[i:i + batch_size]]

            kwargs["representative_dataset"] = representative_dataset
    elif format == "onnx" and opset is not None:
        kwargs["opset_version"] = int(opset)
    signature = [keras.InputSpec(shape=(None, height, width, channels), dtype="float32",
                                 name=net.inputs[0].name)]

    parent = os.path.dirname(os.path.abspath(path))
    created = []
    probe = parent
    while not os.path.exists(probe):
        created.append(probe)
        probe = os.path.dirname(probe)
    os.makedirs(parent, exist_ok=True)
    suffix = {"tflite": ".tflite", "onnx": ".onnx", "savedmodel": ""}[format]
    remove_stale_partials(path)  # of an export that was killed
    tmp = partial_path(path, suffix)
    installed = False
    try:
        with _quiet_converters():
            say(f"converting to {format}" + (f" ({quantize})" if quantize else ""))
            try:
                target.export(tmp, format=KERAS_FORMATS[format], verbose=False,
                              input_signature=signature, **kwargs)
            except Exception as error:
                raise ExportError(
                    f"{format} export of {net.name} failed: {type(error).__name__}: "
                    f"{' '.join(str(error).split())[:600]}"
                ) from error
            say(f"loading the {format} export back and comparing it with Keras")
            try:
                run = load_exported(tmp, format)
                actual = _batched(run, check_images, batch_size)
                del run
            except ExportError:
                raise
            except Exception as error:
                raise ExportError(
                    f"The {format} export of {net.name} does not run: "
                    f"{type(error).__name__}: {' '.join(str(error).split())[:600]}"
                ) from error
        numbers = compare(expected, actual)
        noise = 0.0
        if alone is not None:
            own = compare(expected[:len(alone)], alone)["max_abs_diff"]
            noise = own / numbers["scale"]
        limit = max(rtol, NOISE_FACTOR * noise)
        failure = check_failure(numbers, quantize=quantize, limit=limit, noise=noise,
                                min_agreement=min_agreement,
                                max_probability_diff=max_probability_diff)
        if failure:
            what = f"{format} export of {net.name}" + (f" ({quantize})" if quantize else "")
            hint = ("; calibrate on more or real images (calibration=), check the "
                    "preprocessing, or relax min_agreement / max_probability_diff"
                    if quantize else "")
            raise ExportError(f"The {what} {failure}, on {len(check_images)} images{hint}.")
        size = _disk_size(tmp)
        _install(tmp, path)
        installed = True
    finally:
        if not installed:
            _remove(tmp)
            for directory in created:  # innermost first
                with contextlib.suppress(OSError):
                    os.rmdir(directory)
    return ExportReport(
        path=path, format=format, quantize=quantize,
        model=builder or net.name,
        weights=_weights_text(model, weights),
        input_shape=(None, height, width, channels),
        preprocessing=_preprocessing_text(prep), file_size=size,
        samples=len(check_images), sample_source=str(source),
        keras_noise=noise, rtol=None if quantize else limit,
        min_agreement=min_agreement if quantize else None,
        max_probability_diff=max_probability_diff if quantize else None,
        rewrites=rewrites, seconds=time.perf_counter() - start,
        **numbers,
    )
