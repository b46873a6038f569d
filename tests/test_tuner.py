"""kerasnets.tuner: hypermodels, search (resumable), the tune command, and
keras-tuner's chief/worker mode on the loopback interface.

The end-to-end searches use the smallest networks of their spaces (IGC L2 M2
depth 8 at 16 px, or a MobileNet 0.25 backbone that is mostly frozen) and a
few steps: the trace of each trial's training step dominates their time.
"""

import io
import json
import os
import socket
import subprocess
import sys
import time

import keras
import keras_tuner
import numpy as np
import pytest
from rich.console import Console

import kerasnets
from kerasnets import cli, tuner
from tests.imagefolders import make_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUBPROCESS_TIMEOUT = 240
# The tiniest IGC of the space, and plain SGD (its first step traces fastest).
TINY_IGC = {"L": 2, "M": 2, "depth": 8, "optimizer": "sgd"}
TINY_ARGS = ["--family", "igc", "--image-size", "16", "--batch-size", "8", "--epochs", "1",
             "--steps-per-epoch", "2", "--fix", "L=2", "--fix", "M=2", "--fix", "depth=8",
             "--fix", "optimizer=sgd", "--seed", "0"]


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """Four colour classes, 8 images each (the search holds out 2 per class)."""
    root = tmp_path_factory.mktemp("colours")
    make_image_folder(str(root), per_class=8, size=(20, 20))
    return "folder:" + str(root)


def render(table):
    console = Console(file=io.StringIO(), width=200)
    console.print(table)
    return console.file.getvalue()


def trial_files(project_dir):
    trials = {}
    for name in sorted(os.listdir(project_dir)):
        path = os.path.join(project_dir, name, "trial.json")
        if name.startswith("trial_") and os.path.exists(path):
            with open(path) as f:
                trials[name[len("trial_"):]] = json.load(f)
    return trials


def sample_batch(size, n=4):
    return np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype("float32")


# ------------------------------------------------------------ end to end


@pytest.mark.heavy
def test_random_search_fine_tunes_and_saves_the_best_model(colours, tmp_path):
    """A two-trial RandomSearch of a fine-tuning (a hypermodel instance), in
    mixed precision (bfloat16 on the CPU)."""
    backbone = kerasnets.MobileNet(alpha=0.25, include_top=False, weights=None,
                                   input_shape=(32, 32, 3))
    weights = str(tmp_path / "backbone.weights.h5")
    backbone.save_weights(weights)
    hypermodel = tuner.HyperMobileNet(
        input_shape=(32, 32, 3), classes=4, weights=weights, backbone="MobileNet",
        backbone_kwargs={"alpha": 0.25}, fixed={"freeze_depth": 0.75, "optimizer": "sgd"})
    with pytest.warns(UserWarning, match="Mixed precision on CPU"):
        result = tuner.search(hypermodel, colours, directory=str(tmp_path / "runs"),
                              project_name="finetune", max_trials=2, epochs=1, image_size=32,
                              batch_size=8, steps_per_epoch=2, mixed_precision=True, seed=0,
                              verbose=0)
    assert keras.config.dtype_policy().name == "float32"  # restored
    model = result.best_model
    assert model.layers[-1].name == "predictions_float32" and model.output.dtype == "float32"
    assert model.get_layer("predictions").compute_dtype == "bfloat16"
    assert result.ran_trials == ["0", "1"] and result.role is None
    assert result.project_dir == str(tmp_path / "runs" / "finetune")
    trials = trial_files(result.project_dir)
    assert sorted(trials) == ["0", "1"]
    assert all(t["status"] == "COMPLETED" for t in trials.values())
    best = max(trials.values(), key=lambda t: t["score"])
    assert result.best_hyperparameters.values == best["hyperparameters"]["values"]
    assert set(result.best_hyperparameters.values) == {
        "freeze_depth", "head_dropout", "optimizer", "learning_rate"}
    assert 1e-5 <= result.best_hyperparameters["learning_rate"] <= 1e-2
    # The backbone came from the file and its first 75% of layers stayed frozen.
    net = result.best_model.get_layer(backbone.name)
    np.testing.assert_array_equal(net.get_layer("conv1").kernel.numpy(),
                                  backbone.get_layer("conv1").kernel.numpy())
    assert not net.get_layer("conv1").trainable and net.layers[-1].trainable
    # best_model.keras loads safely (no Lambda layers) and predicts the same.
    assert result.model_path == os.path.join(result.project_dir, "best_model.keras")
    reloaded = keras.models.load_model(result.model_path, safe_mode=True)
    x = sample_batch(32)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0),
                               result.best_model.predict(x, verbose=0), atol=1e-5)
    text = render(tuner.trials_table(result.tuner))
    assert "val_accuracy" in text and "freeze_depth" in text and "* " in text
    assert "completed" in text
    text = render(tuner.hyperparameters_table(result.best_hyperparameters))
    assert "head_dropout" in text


@pytest.mark.heavy
def test_small_hyperband_continues_the_best_trials(colours, tmp_path):
    result = tuner.search("igc", colours, directory=str(tmp_path), project_name="hb",
                          tuner="hyperband", epochs=2, hyperband_factor=2, max_trials=3,
                          image_size=16, batch_size=8, steps_per_epoch=2, fixed=TINY_IGC,
                          seed=0, verbose=0)
    trials = trial_files(result.project_dir)
    assert len(trials) == 3 and all(t["status"] == "COMPLETED" for t in trials.values())
    values = [t["hyperparameters"]["values"] for t in trials.values()]
    # Two 1-epoch trials, then the better one trained on to epoch 2.
    assert sorted(v["tuner/epochs"] for v in values) == [1, 1, 2]
    continued = [v for v in values if v["tuner/epochs"] == 2][0]
    assert continued["tuner/initial_epoch"] == 1 and continued["tuner/trial_id"] in trials
    first_round = [t for t in trials.values()
                   if t["hyperparameters"]["values"]["tuner/epochs"] == 1]
    best_first = max(first_round, key=lambda t: t["score"])
    assert continued["tuner/trial_id"] == best_first["trial_id"]
    assert os.path.exists(result.model_path)
    assert "epochs" in render(tuner.trials_table(result.tuner))


class Interrupt(keras.callbacks.Callback):
    """Stops the process's search the way Ctrl-C does, after one batch."""

    def on_train_batch_end(self, batch, logs=None):
        raise KeyboardInterrupt


@pytest.mark.heavy
def test_interrupted_search_resumes_and_only_runs_new_trials(colours, tmp_path):
    common = dict(directory=str(tmp_path), project_name="resume", epochs=1, image_size=16,
                  batch_size=8, steps_per_epoch=2, fixed=TINY_IGC, seed=0, verbose=0)
    first = tuner.search("igc", colours, max_trials=1, **common)
    assert first.ran_trials == ["0"]
    trial0 = trial_files(first.project_dir)["0"]
    # A larger max_trials continues; here the new trial is interrupted.
    with pytest.raises(KeyboardInterrupt):
        tuner.search("igc", colours, max_trials=2, callbacks=[Interrupt()], **common)
    assert trial_files(first.project_dir)["1"]["status"] == "RUNNING"
    resumed = tuner.search("igc", colours, max_trials=2, **common)
    assert resumed.ran_trials == ["1"]  # trial 0 is not run again
    trials = trial_files(first.project_dir)
    assert sorted(trials) == ["0", "1"] and trials["0"] == trial0
    assert trials["1"]["status"] == "COMPLETED"
    # Another search in the same project is refused before anything runs.
    with pytest.raises(ValueError, match="holds another search"):
        tuner.search(["igc"], colours, max_trials=2, **dict(common, fixed=None))


class Broken(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        raise ValueError("broken on purpose")


def test_failed_trials_are_reported_in_one_line(colours, tmp_path):
    with pytest.raises(RuntimeError, match=r"No trial of .*fail completed; the last failed "
                                           r"with ValueError: broken on purpose"):
        tuner.search("igc", colours, directory=str(tmp_path), project_name="fail",
                     max_trials=1, epochs=1, image_size=16, batch_size=8, steps_per_epoch=1,
                     fixed=TINY_IGC, callbacks=[Broken()], verbose=0)


# ---------------------------------------------------------- hypermodels


def sampled_hyperparameters(space, count, seed):
    """``count`` sets of values drawn from ``space`` (a HyperParameters) as
    keras-tuner's random oracle draws them: only active hyperparameters."""
    samples = []
    for i in range(count):
        hp = keras_tuner.HyperParameters()
        for parameter in space.space:
            hp.merge([parameter])
            if hp.is_active(parameter):
                hp.values[parameter.name] = parameter.random_sample(seed + 100 * i + len(hp.values))
        samples.append(hp)
    return samples


def check_model(model, classes):
    assert model.output_shape == (None, classes)
    assert model.optimizer is not None and model.compiled
    assert model.output.dtype == "float32"
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)


@pytest.mark.parametrize("cls", [
    pytest.param(tuner.HyperDenseNet, marks=pytest.mark.heavy), tuner.HyperMobileNet,
    pytest.param(tuner.HyperSENet, marks=pytest.mark.heavy),
    pytest.param(tuner.HyperDPN, marks=pytest.mark.heavy), tuner.HyperIGC])
@pytest.mark.heavy
def test_hypermodel_builds_with_defaults_and_sampled_values(cls):
    hypermodel = cls(input_shape=(32, 32, 3), classes=3)
    space = keras_tuner.HyperParameters()
    check_model(hypermodel.build(space), 3)
    # Every hyperparameter is declared in every build, active or not.
    assert {p.name for p in space.space} == set(hypermodel.hyperparameter_names)
    assert "=====" in cls.__doc__  # the documented table of the space
    for values in sampled_hyperparameters(space, 3, seed=11):
        keras.backend.clear_session()
        check_model(hypermodel.build(values), 3)


def test_hyperkerasnets_samples_families_and_their_spaces(tmp_path):
    """Sampled as a RandomSearch samples (its start builds every family once)."""
    hypermodel = tuner.HyperKerasNets(input_shape=(32, 32, 3), classes=3,
                                      families=["igc", "mobilenet"],
                                      fixed={"mobilenet/alpha": 0.25})
    search = keras_tuner.RandomSearch(hypermodel, objective="val_accuracy", max_trials=100,
                                      seed=3, directory=str(tmp_path), project_name="s")
    search.oracle.verbose = 0
    names = {p.name for p in search.oracle.get_space().space}
    assert {"family", "igc/L", "mobilenet/version", "mobilenet/minimalistic",
            "optimizer"} <= names
    families = set()
    for _ in range(4):
        trial = search.oracle.create_trial("sampler")
        search.oracle.ongoing_trials.clear()
        values = trial.hyperparameters.values
        family = values["family"]
        families.add(family)
        other = "mobilenet" if family == "igc" else "igc"
        assert not any(k.startswith(other + "/") for k in values)  # inactive: no value
        keras.backend.clear_session()
        model = search.hypermodel.build(trial.hyperparameters)
        check_model(model, 3)
    assert families == {"igc", "mobilenet"}


def test_igc_takes_small_images():
    # Stages of C, 2C and 4C channels with C = L x M: L divides them all.
    hypermodel = tuner.HyperIGC(input_shape=(8, 8, 3), classes=2)
    for L, M in ((24, 16), (2, 2)):
        hp = keras_tuner.HyperParameters()
        hp.Fixed("L", L)
        hp.Fixed("M", M)
        hp.Fixed("depth", 8)
        assert hypermodel.build(hp).output_shape == (None, 2)
        keras.backend.clear_session()


def test_input_tensor_augmentation_and_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((32, 32, 3))
        hypermodel = tuner.HyperMobileNet(input_tensor=inputs, classes=3, augmentation=True,
                                          fixed={"version": "v3", "alpha": 0.25})
        hp = keras_tuner.HyperParameters()
        model = hypermodel.build(hp)
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.inputs[0] is inputs
    assert model.layers[-1].name == "predictions_float32" and model.output.dtype == "float32"
    augmentation = model.get_layer("augmentation")
    assert [layer.name for layer in augmentation.layers] == [
        "random_rotation", "random_zoom", "random_contrast"]
    assert {"augment_rotation", "augment_zoom", "augment_contrast"} <= set(hp.values)

    class Flip(keras_tuner.HyperModel):
        def build(self, hp):
            mode = hp.Choice("flip", ["horizontal", "vertical"])
            return keras.Sequential([keras.layers.RandomFlip(mode)], name="flip")

    hp = keras_tuner.HyperParameters()
    model = tuner.HyperIGC(input_shape=(16, 16, 3), classes=3, augmentation=Flip()).build(hp)
    assert hp.values["flip"] == "horizontal" and model.get_layer("flip")
    model = tuner.HyperIGC(input_shape=(16, 16, 3), classes=3,
                           augmentation=keras.layers.RandomFlip(name="my_flip")).build(
        keras_tuner.HyperParameters())
    assert model.get_layer("my_flip")
    # Each network normalises its 0-255 input with its family's statistics.
    layer = model.get_layer("normalization")
    assert layer.mean == kerasnets.preprocessing.for_model("IGCV1CIFAR", None).mean


def test_fine_tuning_space_freezes_the_backbone(tmp_path):
    backbone = kerasnets.MobileNet(alpha=0.25, include_top=False, weights=None,
                                   input_shape=(32, 32, 3))
    path = str(tmp_path / "mobilenet.weights.h5")
    backbone.save_weights(path)
    for depth, trainable in ((1.0, ["predictions/kernel", "predictions/bias"]), (0.0, None)):
        hypermodel = tuner.HyperMobileNet(input_shape=(32, 32, 3), classes=5, weights=path,
                                          backbone="MobileNet",
                                          backbone_kwargs={"alpha": 0.25},
                                          fixed={"freeze_depth": depth, "head_dropout": 0.2})
        assert hypermodel.hyperparameter_names == (
            "optimizer", "learning_rate", "freeze_depth", "head_dropout")
        hp = keras_tuner.HyperParameters()
        model = hypermodel.build(hp)
        check_model(model, 5)
        paths = [w.path for w in model.trainable_weights]
        if trainable:
            assert paths == trainable
        else:
            assert len(paths) > 50
        assert model.get_layer("head_dropout").rate == 0.2
        assert hp.values["learning_rate"] == tuner.FINETUNE_LR[2]
        keras.backend.clear_session()
    # Several families with a tag: each fine-tunes its default backbone.
    hypermodel = tuner.HyperKerasNets(input_shape=(64, 64, 3), classes=5,
                                      families=["mobilenet", "igc"], weights="imagenet",
                                      backbones={"mobilenet": "MobileNetV3Small"})
    assert hypermodel.backbones == {"mobilenet": "MobileNetV3Small", "igc": "IGCV3"}
    assert "igc/freeze_depth" in hypermodel.hyperparameter_names
    assert tuner.freeze(backbone, 0.5) == round(0.5 * (len(backbone.layers) - 1))


def test_validation_errors_are_early_and_clear(tmp_path, monkeypatch):
    shape = (32, 32, 3)
    cases = [
        (dict(input_shape=shape, classes=1), "classes` must be an integer of at least 2"),
        (dict(input_shape=shape, classes="10"), "classes"),
        (dict(input_shape=shape, classes=None), "classes"),
        (dict(input_shape=shape, classes=True), "classes"),
        (dict(classes=3), "input_shape"),
        (dict(input_shape=(16, 16, 3), classes=3), "at least 32x32"),
        (dict(input_shape=(32, 32), classes=3), r"\(height, width, 3\)"),
        (dict(input_shape=(32, 32, 1), classes=3), r"\(height, width, 3\)"),
        (dict(input_shape=(None, None, 3), classes=3), "static"),
        (dict(input_shape=shape, classes=3, fixed={"bogus": 1}), "no hyperparameter named 'bogus'"),
        (dict(input_shape=shape, classes=3, backbone="DenseNet121"), "pass `weights` too"),
        (dict(input_shape=shape, classes=3, weights="nope"), "Unknown weights 'nope'"),
        (dict(input_shape=shape, classes=3, weights="missing.weights.h5"), "does not exist"),
        (dict(input_shape=shape, classes=3, weights="imagenet", backbone="DPN68"),
         "not a densenet network"),
        (dict(input_shape=shape, classes=3, weights="imagenet", backbone="DenseNet"),
         "generic builder"),
        (dict(input_shape=shape, classes=3, weights="imagenet", backbone="NoSuchNet"),
         "Unknown model"),
        (dict(input_shape=shape, classes=3, augmentation="flip"), "augmentation"),
        (dict(input_shape=shape, classes=3, label_smoothing=1.5), "label_smoothing"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            tuner.HyperDenseNet(**kwargs)
    with pytest.raises(ValueError, match="at least 8x8"):
        tuner.HyperIGC(input_shape=(4, 4, 3), classes=3)
    dummy = tmp_path / "inception.weights.h5"
    dummy.write_bytes(b"")  # checked for existence only: the size check comes first
    with pytest.raises(ValueError, match="at least 75x75"):
        tuner.HyperSENet(input_shape=(64, 64, 3), classes=3, weights=str(dummy),
                         backbone="SEInceptionV3")
    with pytest.raises(ValueError, match="does not match"):
        tuner.HyperIGC(input_shape=(16, 16, 3), input_tensor=keras.Input((32, 32, 3)),
                       classes=3)
    # Fixed values must lie in the space (every sampled network builds).
    for fixed, message in (({"groups": 24}, "groups=24 is outside"),
                           ({"small": 1}, "true or false"),
                           ({"learning_rate": 2.0}, r"0.0001 \.\. 0.1")):
        with pytest.raises(ValueError, match=message):
            tuner.HyperDPN(input_shape=shape, classes=3, fixed=fixed).build(
                keras_tuner.HyperParameters())
    # Across families.
    for kwargs, message in ((dict(families=[]), "one or more of"),
                            (dict(families=["resnet"]), "one or more of"),
                            (dict(families=["dpn", "dpn"]), "twice"),
                            (dict(families=["dpn"], fixed={"senet/depth": 50}),
                             "'senet/depth'"),
                            (dict(families=["dpn"], fixed={"dpn/depth": 50}), "'depth'"),
                            (dict(families=["dpn"], backbones={"dpn": "DPN92"}),
                             "pass `weights` too"),
                            (dict(families=["dpn", "igc"], weights=__file__),
                             "weights file fits one network")):
        with pytest.raises(ValueError, match=message):
            tuner.HyperKerasNets(input_shape=shape, classes=3, **kwargs)
    # search() arguments.
    with pytest.raises(ValueError, match="Unknown tuner"):
        tuner.search("igc", "folder:x", directory=str(tmp_path), tuner="grid")
    with pytest.raises(ValueError, match="chief/worker mode"):
        tuner.search("igc", "folder:x", directory=str(tmp_path), strategy="multiworker")
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        tuner.search("igc", "folder:x", directory=str(tmp_path), epochs=0)
    with pytest.raises(ValueError, match="Unknown family"):
        tuner.get_hypermodel("resnet", shape, 3)
    with pytest.raises(ValueError, match="max_trials"):
        tuner.make_tuner(tuner.HyperIGC(input_shape=(8, 8, 3), classes=2), "random",
                         directory=str(tmp_path), project_name="p", max_trials=0)
    # Distributed mode needs all three variables.
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.delenv("KERASTUNER_ORACLE_PORT", raising=False)
    monkeypatch.delenv("KERASTUNER_TUNER_ID", raising=False)
    with pytest.raises(RuntimeError, match="KERASTUNER_ORACLE_PORT and KERASTUNER_TUNER_ID"):
        tuner.distributed_role()
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner3")
    assert tuner.distributed_role() == "worker"
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    assert tuner.distributed_role() == "chief"


def test_search_checks_a_hypermodel_instance_against_the_data(colours, tmp_path):
    hypermodel = tuner.HyperIGC(input_shape=(16, 16, 3), classes=3)
    with pytest.raises(ValueError, match="classifies 3 classes; .* has 4"):
        tuner.search(hypermodel, colours, directory=str(tmp_path), image_size=16)
    hypermodel = tuner.HyperIGC(input_shape=(16, 16, 3), classes=4)
    with pytest.raises(ValueError, match=r"takes \(16, 16, 3\) images"):
        tuner.search(hypermodel, colours, directory=str(tmp_path), image_size=32)
    with pytest.raises(ValueError, match="pass them to its constructor"):
        tuner.search(hypermodel, colours, directory=str(tmp_path), image_size=16, augment=True)
    with pytest.raises(ValueError, match="is a slice already: name the validation images"):
        tuner.search("igc", colours, directory=str(tmp_path), train_split="train[:50%]")


def test_parse_fixed():
    assert tuner.parse_fixed(["alpha=0.5", "L=2", "bottleneck=true", "version=v1",
                              "blocks=6-12-24-16", "dpn/k_r = 96"]) == {
        "alpha": 0.5, "L": 2, "bottleneck": True, "version": "v1", "blocks": "6-12-24-16",
        "dpn/k_r": 96}
    for bad in ("alpha", "=1", "alpha="):
        with pytest.raises(ValueError, match="NAME=VALUE"):
            tuner.parse_fixed([bad])


# ------------------------------------------------------------------- CLI


@pytest.mark.heavy
def test_cli_tune_end_to_end(colours, tmp_path, capsys):
    args = ["tune", "--dataset", colours, "--tuner", "bayesian", "--max-trials", "2",
            "--augment", "--strategy", "cpu", "--directory", str(tmp_path),
            "--project", "cli", *TINY_ARGS]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    model_path = os.path.join(str(tmp_path), "cli", "best_model.keras")
    assert f"best model: {model_path}" in out
    assert "best hyperparameters" in out and "augment_rotation" in out
    assert "2 trials of" in out and "val_accuracy" in out
    model = keras.models.load_model(model_path, safe_mode=True)
    assert model.output_shape == (None, 4)
    with open(os.path.join(str(tmp_path), "cli", "kerasnets_search.json")) as f:
        settings = json.load(f)
    assert (settings["hypermodel"], settings["tuner"], settings["input_shape"]) == (
        "HyperIGC", "bayesian", [16, 16, 3])
    # Run again: resumed, finished, nothing new.
    assert cli.main(args) == 0
    assert "Reloading Tuner" in capsys.readouterr().out
    assert len(trial_files(os.path.join(str(tmp_path), "cli"))) == 2


def test_cli_tune_errors_are_one_line(colours, tmp_path, capsys):
    for extra, needle in ((["--family", "dpn", "--image-size", "16"], "at least 32x32"),
                          (["--family", "igc", "--fix", "bogus=1"], "no hyperparameter named"),
                          (["--family", "igc", "--weights", "nope"], "Unknown weights 'nope'")):
        code = cli.main(["tune", "--dataset", colours, "--directory", str(tmp_path), *extra])
        err = capsys.readouterr().err
        assert code == 1 and "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kerasnets: error: "), err
        assert needle in lines[0], lines[0]
    # Usage errors: exit status 2, one line; family names in any case.
    for extra, needle in ((["--family", "igc", "--fix", "L"], "NAME=VALUE"),
                          (["--family", "resnet"], "Unknown family 'resnet'"),
                          (["--family", "igc", "--families", "dpn"], "not allowed with")):
        code = cli.main(["tune", "--dataset", colours, *extra])
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and needle in lines[0], err
    code = cli.main(["tune", "--dataset", colours, "--family", "IGC", "--fix", "bogus=1"])
    assert code == 1 and "no hyperparameter named" in capsys.readouterr().err  # IGC = igc
    with pytest.raises(SystemExit):
        cli.main(["tune", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    # The command's literal choices are the library's.
    assert ", ".join(tuner.FAMILIES) in help_text
    assert "{" + ",".join(tuner.TUNERS) + "}" in help_text
    assert "{" + ",".join(tuner.STRATEGIES) + "}" in help_text


# ----------------------------------------------------------- distributed


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.heavy
def test_distributed_chief_and_two_workers_on_loopback(colours, tmp_path):
    """keras-tuner's chief/worker mode: one oracle, two processes training."""
    port = str(free_port())
    args = [sys.executable, "-m", "kerasnets", "tune", "--dataset", colours,
            "--max-trials", "2", "--directory", str(tmp_path), "--project", "dist", *TINY_ARGS]
    procs, logs = {}, {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2",
                   KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP="127.0.0.1",
                   KERASTUNER_ORACLE_PORT=port)
        env.pop("TF_CONFIG", None)
        logs[tuner_id] = (tmp_path / f"{tuner_id}.out", tmp_path / f"{tuner_id}.err")
        with open(logs[tuner_id][0], "w") as out, open(logs[tuner_id][1], "w") as err:
            procs[tuner_id] = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=err)
    # Workers wait for the chief and the chief for the workers: a process that
    # fails would leave the others waiting, so stop all at the first failure.
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT
    try:
        while any(p.poll() is None for p in procs.values()) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs.values()):
                break
            time.sleep(0.5)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    outputs = {}
    for tuner_id, proc in procs.items():
        proc.wait()
        out, err = (path.read_text() for path in logs[tuner_id])
        assert proc.returncode == 0, (
            f"{tuner_id} ended with {proc.returncode}:\n{out[-3000:]}\n{err[-5000:]}")
        outputs[tuner_id] = out
    ran = {}
    for worker in ("tuner0", "tuner1"):
        line = [x for x in outputs[worker].splitlines() if x.startswith(f"worker {worker}")]
        assert line, outputs[worker][-2000:]
        ids = line[0].split("ran trials ")[1].split(";")[0]
        ran[worker] = [] if ids == "none" else ids.split(", ")
    # Every trial ran exactly once, and both workers took part.
    assert sorted(ran["tuner0"] + ran["tuner1"]) == ["0", "1"], ran
    assert ran["tuner0"] and ran["tuner1"], ran
    project = os.path.join(str(tmp_path), "dist")
    trials = trial_files(project)
    assert sorted(trials) == ["0", "1"]
    assert all(t["status"] == "COMPLETED" for t in trials.values())
    # Only the chief saved the best model and printed the results.
    best_line = f"best model: {os.path.join(project, 'best_model.keras')}"
    assert best_line in outputs["chief"] and "2 trials of" in outputs["chief"]
    assert "best model:" not in outputs["tuner0"] + outputs["tuner1"]
    assert keras.models.load_model(os.path.join(project, "best_model.keras")).output_shape == (
        None, 4)
