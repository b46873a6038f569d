"""Subprocess side of tests/test_data_parallel.py: ``kerasnets train`` on
Keras' JAX backend over simulated devices.

    XLA_FLAGS=--xla_force_host_platform_device_count=4 KERAS_BACKEND=jax \\
        python -m tests.jax_worker DATA OUT

(JAX fixes its device count when it is imported: hence a process.) In one
process with four CPU devices it trains the same tiny network on the same
data with the same seed and global batch twice, each run killed in its second
epoch (after a backup) and run again, so that it resumes:

- ``one``: strategy "auto": JAX's default device, one device;
- ``four``: strategy "data-parallel": ``keras.distribution.DataParallel``
  over the four devices;

and first asks for a global batch the devices cannot share and for
per-device BatchNorm statistics, and evaluates over the mesh (each refused); last,
``kerasnets tune --strategy data-parallel`` runs a one-trial search. It
writes ``OUT.json`` (per run: statuses, histories, config.json, the files of
the run directory, the interruption's backup position; the refusal; the
search's exit status and files) and
``OUT.npz`` (per run: final ``weights``; ``four/outputs``: the trained
model's probabilities on ``images``, for a load of its ``model.keras``
elsewhere).
"""

import json
import os
import sys
import time

MODEL = "DenseNetCIFAR"
RECIPE = dict(image_size=32, epochs=2, batch_size=8, steps_per_epoch=3, optimizer="sgd",
              lr=0.05, weight_decay=0.0, label_smoothing=0.1, seed=7, deterministic=True,
              backup_every=2, verbose=0, model_kwargs={"depth": 7, "growth_rate": 4})
KILL_AT = (1, 1)  # (epoch, batch): in the second epoch, just after a backup


# tests/test_tuner.py's TINY_ARGS: a one-trial search of a tiny IGC network.
TUNE_ARGS = ["--family", "igc", "--image-size", "16", "--batch-size", "8", "--epochs", "1",
             "--steps-per-epoch", "2", "--fix", "L=2", "--fix", "M=2", "--fix", "depth=8",
             "--fix", "optimizer=sgd", "--seed", "0", "--max-trials", "1"]


def interrupted_then_resumed(data, output, strategy):
    """Trains until ``KILL_AT`` (KeyboardInterrupt), then again: the rerun
    resumes. Returns (first attempt's backup position, the rerun's result)."""
    import keras

    from kerasnets import training

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if (self.epoch, batch) == KILL_AT:
                raise KeyboardInterrupt("interrupted")

    try:
        training.train(MODEL, data, output=output, strategy=strategy,
                       callbacks=[Interrupt()], **RECIPE)
        raise AssertionError("the run was not interrupted")
    except KeyboardInterrupt:
        pass
    with open(os.path.join(output, "backup", "training_metadata.json")) as f:
        backup = json.load(f)
    keras.backend.clear_session()
    return backup, training.train(MODEL, data, output=output, strategy=strategy, **RECIPE)


def main(data, out):
    import jax
    import keras
    import numpy as np

    from kerasnets import training

    report = {"devices": jax.device_count(), "backend": keras.backend.backend(), "runs": {}}
    arrays = {}
    refused_dir = out + "-refused"
    try:
        training.train(MODEL, data, output=refused_dir, strategy="data-parallel",
                       **dict(RECIPE, batch_size=6))
        report["refused"] = None
    except ValueError as error:
        report["refused"] = str(error)
    report["refused_wrote"] = sorted(os.listdir(refused_dir)) if os.path.isdir(
        refused_dir) else []
    try:  # JAX's BatchNorm statistics are always the global batch's
        training.train(MODEL, data, output=refused_dir, strategy="data-parallel",
                       sync_batch_norm=False, **RECIPE)
        report["unsynced_refused"] = None
    except ValueError as error:
        report["unsynced_refused"] = str(error)
    keras.backend.clear_session()
    try:
        training.evaluate(MODEL, None, data, strategy="data-parallel")
        report["evaluate_refused"] = None
    except ValueError as error:
        report["evaluate_refused"] = str(error)
    for name, strategy in (("one", "auto"), ("four", "data-parallel")):
        start = time.perf_counter()
        output = f"{out}-{name}"
        backup, result = interrupted_then_resumed(data, output, strategy)
        with open(os.path.join(output, "config.json")) as f:
            config = json.load(f)
        report["runs"][name] = {
            "backup": backup, "status": result.status, "history": result.history,
            "config": {k: config.get(k) for k in ("strategy", "replicas", "status",
                                                  "completed_epochs")},
            "files": sorted(os.listdir(output)), "output": output,
            # The devices holding each weight (DataParallel: replicated on all).
            "weight_devices": sorted({len(v.value.sharding.device_set)
                                      for v in result.model.weights}),
            "seconds": round(time.perf_counter() - start, 1)}
        arrays[f"{name}/weights"] = np.concatenate(
            [np.asarray(w, np.float32).ravel() for w in result.model.get_weights()])
        if name == "four":
            images = np.load(os.path.join(os.path.dirname(out), "images.npy"))
            with training.activated(result.strategy):
                arrays["four/outputs"] = result.model.predict(images, verbose=0)
        keras.backend.clear_session()
    from kerasnets import cli

    report["tune_status"] = cli.main(["tune", *TUNE_ARGS, "--dataset", data, "--directory",
                                      out + "-tune", "--project", "dp", "--strategy",
                                      "data-parallel"])
    report["tune_files"] = sorted(os.listdir(os.path.join(out + "-tune", "dp")))
    np.savez(out + ".npz", **arrays)
    with open(out + ".json", "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main(*sys.argv[1:])
