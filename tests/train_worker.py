"""Subprocess entry points for tests/test_training.py.

Each mode runs in a fresh process (TensorFlow's device and cluster setup
happens once per process):

    python -m tests.train_worker mirrored   DATA RESULT
    python -m tests.train_worker worker     DATA OUTPUT RESULT      (TF_CONFIG set)
    python -m tests.train_worker resume     DATA OUTPUT RESULT [--kill-at E:B]
    python -m tests.train_worker cli RESULT [--pause-at E:B] -- train ARGS...

RESULT is an .npz file of the final weights (and a JSON of the history).
"""

import argparse
import json
import os
import signal
import sys
import time

if sys.argv[1:2] != ["cli"]:  # the command line quiets TensorFlow its own way
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# The tiny network of these tests: DenseNet-CIFAR with one layer per block.
MODEL = "DenseNetCIFAR"
MODEL_KWARGS = {"depth": 7, "growth_rate": 4}
RECIPE = dict(image_size=32, optimizer="sgd", lr=0.05, weight_decay=0.0,
              label_smoothing=0.1, seed=7, deterministic=True, verbose=0,
              val_split=None, model_kwargs=MODEL_KWARGS)


def save_result(path, model, history):
    import numpy as np

    np.savez(path, *[np.asarray(w) for w in model.get_weights()])
    with open(path + ".json", "w") as f:
        json.dump(history, f)


def mirrored(args):
    """One device vs MirroredStrategy over two logical CPUs, same seed."""
    import keras
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    from kerasnets import training

    results = {}
    # One MirroredStrategy for both two-replica runs: a second instance over
    # the same devices would reuse the first one's collective-op keys.
    two_cpus = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for name, strategy, sync in (
        ("one", tf.distribute.OneDeviceStrategy("/cpu:0"), None),
        ("two", two_cpus, None),  # synchronized BatchNorm (the default)
        ("unsynced", two_cpus, False),
    ):
        keras.backend.clear_session()
        out = os.path.join(os.path.dirname(args.result), f"run-{name}")
        run = training.train(MODEL, args.data, output=out, epochs=2, batch_size=8,
                             steps_per_epoch=3, strategy=strategy, sync_batch_norm=sync,
                             **RECIPE)
        assert run.strategy.num_replicas_in_sync == (1 if name == "one" else 2)
        results[name] = [np.asarray(w) for w in run.model.get_weights()]
        results[name + "_loss"] = run.history["loss"]
    np.savez(args.result, *results["one"])
    np.savez(args.result + ".two.npz", *results["two"])
    unsynced = max(float(np.abs(a - b).max())
                   for a, b in zip(results["one"], results["unsynced"]))
    with open(args.result + ".json", "w") as f:
        json.dump({"one": results["one_loss"], "two": results["two_loss"],
                   "unsynced_diff": unsynced}, f)


def pause_callback(at, marker):
    """A callback that, after batch B of epoch E (``at`` = "E:B", from 0),
    writes ``marker`` (its pid and the time) and stops there, for a test to
    kill the process mid-epoch; the other workers of a cluster wait in the
    next step's collectives."""
    import keras

    epoch, batch = (int(v) for v in at.split(":"))

    class Pause(keras.callbacks.Callback):
        def on_epoch_begin(self, e, logs=None):
            self.epoch = e

        def on_train_batch_end(self, b, logs=None):
            if self.epoch == epoch and b == batch:
                with open(marker + ".tmp", "w") as f:
                    json.dump({"pid": os.getpid(), "time": time.time()}, f)
                os.replace(marker + ".tmp", marker)
                time.sleep(3600)

    return Pause()


def worker(args):
    """One worker of a MultiWorkerMirroredStrategy cluster (TF_CONFIG)."""
    from kerasnets import training

    strategy = training.get_strategy("multiworker")  # first, before other TF work
    run = training.train(MODEL, args.data, output=args.output, epochs=2, batch_size=8,
                         steps_per_epoch=3, strategy=strategy, **RECIPE)
    save_result(args.result, run.model, run.history)
    chief = training.is_chief(strategy)
    print(json.dumps({"chief": chief, "write_dir": training.write_dir(args.output, strategy),
                      "replicas": strategy.num_replicas_in_sync}))


def resume(args):
    """Training with a backup every 2 steps; optionally killed (SIGKILL) at
    epoch E, batch B."""
    import keras

    from kerasnets import training

    callbacks = []
    if args.kill_at:
        epoch, batch = (int(v) for v in args.kill_at.split(":"))

        class Kill(keras.callbacks.Callback):
            def on_epoch_begin(self, e, logs=None):
                self.epoch = e

            def on_train_batch_end(self, b, logs=None):
                if self.epoch == epoch and b == batch:
                    sys.stdout.flush()
                    os.kill(os.getpid(), signal.SIGKILL)

        callbacks.append(Kill())
    run = training.train(MODEL, args.data, output=args.output, epochs=3, batch_size=8,
                         steps_per_epoch=4, backup_every=2, strategy="cpu",
                         callbacks=callbacks, **RECIPE)
    save_result(args.result, run.model, run.history)


def cli(argv):
    """``kerasnets`` command line ``argv`` (after ``--``), run by
    ``kerasnets.cli.main`` with two test callbacks added to training: the
    final weights saved to RESULT (.npz), and ``--pause-at E:B``
    (``pause_callback``, marker RESULT.paused). Exits with main's status."""
    split = argv.index("--")
    parser = argparse.ArgumentParser()
    parser.add_argument("result")
    parser.add_argument("--pause-at")
    args = parser.parse_args(argv[:split])

    from kerasnets import cli as kerasnets_cli
    from kerasnets.training import run

    make_callbacks = run.make_callbacks

    def with_test_callbacks(*a, **kw):
        import keras

        class SaveWeights(keras.callbacks.Callback):
            def on_train_end(self, logs=None):
                save_result(args.result, self.model, {})

        extra = [SaveWeights()]
        if args.pause_at:
            extra.append(pause_callback(args.pause_at, args.result + ".paused"))
        return make_callbacks(*a, **kw) + extra

    run.make_callbacks = with_test_callbacks
    sys.exit(kerasnets_cli.main(argv[split + 1:]))


def main():
    if sys.argv[1:2] == ["cli"]:
        cli(sys.argv[2:])
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["mirrored", "worker", "resume"])
    parser.add_argument("data")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--kill-at")
    args = parser.parse_args()
    if args.mode == "mirrored":
        args.result = args.paths[0]
    else:
        args.output, args.result = args.paths
    {"mirrored": mirrored, "worker": worker, "resume": resume}[args.mode](args)


if __name__ == "__main__":
    main()
