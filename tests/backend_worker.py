"""Subprocess side of tests/test_backends.py: kerasnets on one Keras backend.

Keras fixes its backend once per process, so the TensorFlow test process
writes the fixtures (weights saved under TensorFlow, reference checkpoints,
images) and a JSON spec of tasks, and runs

    KERAS_BACKEND=jax   python -m tests.backend_worker SPEC.json OUT
    KERAS_BACKEND=torch python -m tests.backend_worker SPEC.json OUT

which runs every task, records each one's outcome (an error is recorded as
the task's traceback, and the next task runs) in ``OUT.json`` and its arrays
in ``OUT.npz`` (``"<task id>/<name>"``), for the test process to compare
with TensorFlow's and the reference implementations' numbers.

Task kinds (the dict's other keys are the task's arguments):

- ``predict``: ``builder(weights=path, **kwargs)`` on ``images`` (a .npy
  file): ``logits``.
- ``pretrained``: ``builder(weights=tag, **kwargs)`` twice, with
  ``keras.utils.get_file`` "downloading" the local file ``source`` into a
  fresh ``KERAS_HOME``: the download, hash and cache path, then a second
  load; ``logits`` of each (``first``, ``cached``) and how many times
  ``get_file`` was asked, after each load (``downloads``).
- ``load_keras``: ``kerasnets.weights.loading.load_model_file`` (a
  ``.keras`` file, ``safe_mode=True``) on ``images``: ``outputs``.
- ``train``: the model ``builder(**kwargs)`` with the weights ``weights``
  (saved under TensorFlow), compiled with plain SGD: one ``train_on_batch``
  on ``data`` (``x``, ``y``) gives ``step_loss`` and ``step_weights`` (every
  variable after the step, trainable and BatchNorm statistics, for a
  comparison with the same step under TensorFlow); then the ``kerasnets
  train`` recipe (``training.compile_model``) and ``fit`` for ``epochs``
  steps on that batch: ``losses``; then the model is saved as ``save``
  (``.keras``) and its inference ``outputs`` on ``images`` recorded.
- ``mixed_precision``: the ``train`` task's model under a dtype ``policy``
  (``mixed_bfloat16``, ``mixed_float16``): ``losses`` of a short ``fit`` and
  the ``dtype`` of the outputs.
"""

import contextlib
import json
import os
import sys
import time
import traceback

KINDS = ("predict", "pretrained", "load_keras", "train", "mixed_precision")  # in this order


def _builder(name):
    import kerasnets

    return getattr(kerasnets, name)


def _numpy(x):
    import keras
    import numpy as np

    return np.asarray(keras.ops.convert_to_numpy(x))


def flat(variables):
    """The values of ``variables`` as one flat float32 array."""
    import numpy as np

    return np.concatenate([_numpy(v).ravel() for v in variables])


def predict(task, arrays):
    import numpy as np

    images = np.load(task["images"])
    model = _builder(task["builder"])(weights=task["weights"], **task.get("kwargs", {}))
    arrays["logits"] = model.predict(images, verbose=0)
    return {"params": int(model.count_params())}


def pretrained(task, arrays):
    import tempfile

    import keras
    import numpy as np

    images = np.load(task["images"])
    requested = []

    def get_file(fname=None, origin=None, **kwargs):
        requested.append(origin)
        return task["source"]

    original, home = keras.utils.get_file, os.environ.get("KERAS_HOME")
    keras.utils.get_file = get_file
    os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="keras_home_")
    try:
        downloads = []
        for when in ("first", "cached"):
            model = _builder(task["builder"])(weights=task["tag"], **task.get("kwargs", {}))
            arrays[when] = model.predict(images, verbose=0)
            downloads.append(len(requested))
    finally:
        keras.utils.get_file = original
        if home is None:
            os.environ.pop("KERAS_HOME")
        else:
            os.environ["KERAS_HOME"] = home
    return {"downloads": downloads}


def load_keras(task, arrays):
    import numpy as np

    from kerasnets.weights import loading

    images = np.load(task["images"])
    model = loading.load_model_file(task["path"])
    arrays["outputs"] = model.predict(images, verbose=0)
    return {"layers": sorted({type(layer).__name__ for layer in model.layers})}


def _train_model(task):
    model = _builder(task["builder"])(weights=None, **task.get("kwargs", {}))
    model.load_weights(task["weights"])
    return model


@contextlib.contextmanager
def counting_recomputation(counts):
    """Counts the calls of the backend's rematerialisation, which the
    memory-efficient layers use (jax.checkpoint, torch.utils.checkpoint)."""
    import keras

    if keras.backend.backend() == "jax":
        import jax as module

        name = "checkpoint"
    elif keras.backend.backend() == "torch":
        import torch.utils.checkpoint as module

        name = "checkpoint"
    else:
        yield
        return
    original = getattr(module, name)

    def counted(*args, **kwargs):
        counts.append(1)
        return original(*args, **kwargs)

    setattr(module, name, counted)
    try:
        yield
    finally:
        setattr(module, name, original)


def train(task, arrays):
    import keras
    import numpy as np

    from kerasnets import training

    data = np.load(task["data"])
    x, y = data["x"], data["y"]
    model = _train_model(task)
    model.compile(optimizer=keras.optimizers.SGD(task["lr"]),
                  loss=keras.losses.CategoricalCrossentropy())
    recomputations = []
    with counting_recomputation(recomputations):
        step_loss = model.train_on_batch(x, y)
    arrays["step_trainable"] = flat(model.trainable_weights)
    arrays["step_statistics"] = flat(model.non_trainable_weights)
    training.compile_model(model, optimizer="sgd", lr=task["lr"], batch_size=len(x),
                           schedule="constant", total_steps=task["epochs"])
    history = model.fit(x, y, batch_size=len(x), epochs=task["epochs"], verbose=0,
                        shuffle=False)
    model.save(task["save"])
    arrays["outputs"] = model.predict(np.load(task["images"]), verbose=0)
    return {"step_loss": float(step_loss), "recomputations": len(recomputations),
            "losses": [float(v) for v in history.history["loss"]]}


def mixed_precision(task, arrays):
    import keras
    import numpy as np

    from kerasnets import training

    data = np.load(task["data"])
    x, y = data["x"], data["y"]
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(task["policy"])
    try:
        model = training.build_model(task["builder"], y.shape[-1], x.shape[1],
                                     **task.get("kwargs", {}))
        training.compile_model(model, optimizer="sgd", lr=task["lr"], batch_size=len(x),
                               schedule="constant", total_steps=task["epochs"])
        history = model.fit(x, y, batch_size=len(x), epochs=task["epochs"], verbose=0,
                            shuffle=False)
        outputs = model.predict(x, verbose=0)
    finally:
        keras.config.set_dtype_policy(previous)
    conv_dtypes = sorted({str(layer.compute_dtype) for layer in model.layers
                          if isinstance(layer, keras.layers.Conv2D)})
    return {"losses": [float(v) for v in history.history["loss"]],
            "output_dtype": str(outputs.dtype), "conv_compute_dtypes": conv_dtypes,
            "finite": bool(np.all(np.isfinite(outputs)))}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    spec_path, out = argv
    with open(spec_path) as f:
        spec = json.load(f)
    import keras
    import numpy as np

    report = {"backend": keras.backend.backend(), "keras": keras.__version__, "tasks": {}}
    arrays = {}
    for task in spec["tasks"]:
        start = time.perf_counter()
        task_arrays = {}
        try:
            info = globals()[task["kind"]](task, task_arrays)
            entry = {"ok": True, **(info or {})}
        except Exception:  # noqa: BLE001  (recorded; the test reports it)
            entry = {"ok": False, "error": traceback.format_exc()[-4000:]}
        entry["seconds"] = round(time.perf_counter() - start, 2)
        # Whether TensorFlow is imported by now: kerasnets' builders, layers
        # and loaders never import it off its backend (Keras' own saving
        # does, where it is installed: `model.save` checks for tf.TensorShape).
        entry["tensorflow_imported"] = "tensorflow" in sys.modules
        report["tasks"][task["id"]] = entry
        for name, value in task_arrays.items():
            arrays[f"{task['id']}/{name}"] = np.asarray(value)
        keras.backend.clear_session()
        print(f"{task['id']}: {'ok' if entry['ok'] else 'FAILED'} "
              f"({entry['seconds']} s)", file=sys.stderr, flush=True)
    np.savez(out + ".npz", **arrays)
    with open(out + ".json", "w") as f:
        json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
