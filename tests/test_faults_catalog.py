"""Nothing lost, round two (issue 20): what `tune --overwrite` may delete,
damaged tuner files, the catalog's names and the builders' arguments. Each
test is one fault: what kerasnets must refuse, keep or say."""

import hashlib
import json
import os

import keras
import keras_tuner
import pytest

import kerasnets
from kerasnets import cli, tuner
from kerasnets.tuner.hypermodels import SEARCH_FILE


def snapshot(directory):
    """{relative path: sha256} of every file under ``directory``."""
    result = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                result[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return result


def write(path, text="keep me"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def search_folder(project):
    """The files a finished kerasnets search leaves (keras-tuner's layout)."""
    write(os.path.join(project, SEARCH_FILE), json.dumps({"hypermodel": "HyperIGC"}))
    write(os.path.join(project, "oracle.json"), "{}")
    write(os.path.join(project, "tuner0.json"), "{}")
    write(os.path.join(project, "best_model.keras"), "model")
    for name in ("trial.json", "build_config.json", "checkpoint.weights.h5"):
        write(os.path.join(project, "trial_0", name), "{}")


def tune(tmp_path, *args):
    return cli.main(["tune", "--family", "igc", "--dataset", f"folder:{tmp_path}/nodata",
                     "--directory", str(tmp_path / "runs"), *args])


def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("kerasnets: error: "), err
    return err


# ------------------------------------------------------ tune --overwrite


def test_tune_project_must_stay_inside_directory(tmp_path, capsys):
    write(str(tmp_path / "runs" / "notes.txt"))
    write(str(tmp_path / "sibling" / "data.txt"))
    before = snapshot(tmp_path)
    for project in ("..", ".", str(tmp_path / "sibling"), "a/../..", "../sibling"):
        assert tune(tmp_path, "--project", project, "--overwrite") == 2, project
        err = one_line_error(capsys)
        assert f"--project {project!r} is not a folder inside" in err, err
    assert snapshot(tmp_path) == before
    with pytest.raises(ValueError, match="project_name '..' is not a folder inside"):
        tuner.search("igc", "folder:nodata", directory=str(tmp_path / "runs"),
                     project_name="..", overwrite=True)
    assert snapshot(tmp_path) == before


def test_tune_overwrite_refuses_a_folder_no_search_wrote(tmp_path, capsys):
    write(str(tmp_path / "runs" / "mine" / "notes.txt"))
    before = snapshot(tmp_path)
    assert tune(tmp_path, "--project", "mine", "--overwrite") == 1
    err = one_line_error(capsys)
    assert f"{tmp_path / 'runs' / 'mine'} was not written by a kerasnets search" in err, err
    assert snapshot(tmp_path) == before


def test_tune_overwrite_refuses_files_that_are_not_the_search(tmp_path, capsys):
    project = tmp_path / "runs" / "p"
    search_folder(str(project))
    # A training run and a user's notes in the same folder; a file of the
    # user's inside a trial folder.
    write(str(project / "model.keras"))
    write(str(project / "checkpoints" / "last.weights.h5"))
    write(str(project / "notes.txt"))
    before = snapshot(tmp_path)
    assert tune(tmp_path, "--project", "p", "--overwrite") == 1
    err = one_line_error(capsys)
    for name in ("checkpoints", "model.keras", "notes.txt"):
        assert str(project / name) in err, err
    assert "overwrite deletes only a search's own files" in err
    assert snapshot(tmp_path) == before
    for name in ("model.keras", "notes.txt", "checkpoints/last.weights.h5"):
        os.remove(project / name)
    os.rmdir(project / "checkpoints")
    write(str(project / "trial_0" / "my_plot.png"))
    assert tune(tmp_path, "--project", "p", "--overwrite") == 1
    assert str(project / "trial_0") in one_line_error(capsys)
    assert os.path.exists(project / "trial_0" / "my_plot.png")


def tiny_hypermodel(hp):
    hp.Choice("units", [2, 4])
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    return model


def test_make_tuner_overwrite_deletes_only_the_search_files(tmp_path):
    project = tmp_path / "p"
    search_folder(str(project))
    write(str(project / "best_model.123.tmp.keras"))
    write(str(project / "kerasnets.lock"), "4242")  # a lock is its owner's
    search_tuner = tuner.make_tuner(tiny_hypermodel, directory=str(tmp_path), project_name="p",
                                    overwrite=True, objective="loss")
    assert isinstance(search_tuner, keras_tuner.RandomSearch)
    assert not search_tuner.oracle.trials
    left = sorted(os.listdir(project))
    assert "trial_0" not in left and "oracle.json" not in left and "best_model.keras" not in left
    assert "best_model.123.tmp.keras" not in left
    assert SEARCH_FILE in left and "kerasnets.lock" in left  # the marker stays
    # An empty folder is no one's work: overwriting it is fine.
    os.makedirs(tmp_path / "empty")
    tuner.make_tuner(tiny_hypermodel, directory=str(tmp_path), project_name="empty",
                     overwrite=True, objective="loss")
    with pytest.raises(ValueError, match="not a folder inside"):
        tuner.make_tuner(tiny_hypermodel, directory=str(tmp_path / "p"), project_name="..",
                         overwrite=True, objective="loss")
    assert os.path.exists(project / SEARCH_FILE)


# ------------------------------------------------------ damaged tuner files


@pytest.mark.parametrize("damaged", ["oracle.json", "trial_0/trial.json", SEARCH_FILE])
def test_damaged_tuner_json_is_named(tmp_path, capsys, damaged):
    project = tmp_path / "runs" / "p"
    search_folder(str(project))
    write(str(project / damaged), '{"trial_id": "0", "hyperpara')  # a killed write
    before = snapshot(tmp_path)
    assert tune(tmp_path, "--project", "p") == 1
    err = one_line_error(capsys)
    assert f"{project / damaged} is damaged" in err, err
    assert "restore the file, or start the search over with overwrite (--overwrite)" in err
    assert snapshot(tmp_path) == before
    write(str(project / damaged), "[1, 2]")
    with pytest.raises(ValueError, match=r"trial.json is damaged \(a JSON list, not an object\)"
                       if "trial_0" in damaged else "is damaged"):
        tuner.search("igc", "folder:nodata", directory=str(tmp_path / "runs"), project_name="p")


# ------------------------------------------------------------- the catalog


def test_list_and_list_models_follow_one_rule_for_generic_builders(capsys):
    assert kerasnets.list_models("*cifar*") == []
    assert cli.main(["list", "*cifar*"]) == 1
    err = one_line_error(capsys)
    assert "generic builders match (DenseNetCIFAR, IGCV1CIFAR): --generic lists them" in err
    assert cli.main(["list", "*cifar*", "--generic"]) == 0
    out = capsys.readouterr().out
    assert "DenseNetCIFAR" in out and "IGCV1CIFAR" in out
    assert kerasnets.list_models("*cifar*", include_generic=True) == ["DenseNetCIFAR",
                                                                       "IGCV1CIFAR"]
    assert cli.main(["list", "mobilenetv3*"]) == 0
    out = capsys.readouterr().out
    rows = [line.split("│")[1].strip() for line in out.splitlines() if line.count("│") > 4]
    assert rows == kerasnets.list_models("mobilenetv3*")
    assert "1 generic builders match too (MobileNetV3): --generic lists them" in out


def test_suggestions_build_when_followed(capsys):
    with pytest.raises(ValueError, match="did you mean MobileNetV3Large, MobileNetV3Small"):
        kerasnets.create_model("MobileNetV4")
    assert cli.main(["info", "MobileNetV4"]) == 2
    err = one_line_error(capsys)
    suggested = err.split("did you mean ")[1].split("?")[0].split(", ")
    assert "MobileNetV3" not in suggested and suggested
    for name in suggested:  # each builds as suggested, with no arguments
        assert name in kerasnets.list_models()
    # A generic builder without its arguments says what to pass.
    with pytest.raises(ValueError, match=r"MobileNetV3 is a generic builder: pass its blocks, "
                       r"last_point_ch, or name one of its family's models "
                       r"\(MobileNetV3Large, MobileNetV3Small\)"):
        kerasnets.create_model("MobileNetV3")


def test_names_that_are_not_strings_or_absurdly_long():
    with pytest.raises(ValueError, match="A model name is a non-empty string .* received None"):
        kerasnets.create_model(None)
    with pytest.raises(ValueError) as error:
        kerasnets.create_model("x" * 100_000)
    assert len(str(error.value)) < 300 and "(100,000 characters)" in str(error.value)
    with pytest.raises(ValueError) as error:
        kerasnets.create_model("MobileNetV2", **{"y" * 100_000: 1})
    assert len(str(error.value)) < 500


# ------------------------------------------------------- builder arguments


@pytest.mark.parametrize("name", ["MobileNet", "MobileNetV2", "MobileNetV3Small", "SEMobileNet",
                                  "IGCV2", "IGCV3"])
@pytest.mark.parametrize("alpha", [-1, 0, float("nan"), float("inf"), True, "wide"])
def test_width_multiplier_is_checked_in_every_family(name, alpha):
    builder = getattr(kerasnets, name)
    with pytest.raises(ValueError, match=r"`alpha` must be a positive number. Received: alpha="):
        builder(weights=None, alpha=alpha)


@pytest.mark.parametrize("kwargs, message", [
    (dict(classes=True), r"`classes` must be a positive integer .* Received: classes=True"),
    (dict(classes=0), r"`classes` must be a positive integer .* Received: classes=0"),
    (dict(classes=2.5), r"Received: classes=2.5"),
    (dict(include_top=False, features_only=True, out_indices=(True,)),
     r"`out_indices` must be a list of feature-map indices, e.g. \(1, 2, 3\). "
     r"Received: out_indices=\(True,\)"),
    (dict(include_top=False, features_only=True, out_indices=3), r"Received: out_indices=3"),
    (dict(include_top=False, features_only=True, out_indices=()), r"Received: out_indices=\(\)"),
    (dict(input_tensor="foo"), r"`input_tensor` must be a Keras tensor .* input_tensor='foo'"),
    (dict(input_shape=(3, 160, 160)),
     r"puts the channels first: kerasnets, like Keras by default, takes channels_last images "
     r"\(height, width, channels\); pass input_shape=\(160, 160, 3\)"),
    (dict(input_shape=32), r"`input_shape` must be a tuple of three positive integers"),
    (dict(input_shape=(64, 64, -3)), r"Received: input_shape=\(64, 64, -3\)"),
])
@pytest.mark.parametrize("name", ["MobileNetV2", "DenseNet121", "DPN68", "SEResNet18", "IGCV3"])
def test_shared_arguments_are_checked_in_every_family(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        getattr(kerasnets, name)(weights=None, **kwargs)


def test_input_tensor_must_be_a_batch_of_images():
    with pytest.raises(ValueError, match=r"batch of images .* shape \(None, 32, 3\)"):
        kerasnets.MobileNetV2(weights=None, input_tensor=keras.Input((32, 3)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(depth_multiplier=0), "`depth_multiplier` must be a positive integer"),
    (dict(depth_multiplier=1.5), "`depth_multiplier` must be a positive integer"),
    (dict(dropout=1.0), r"`dropout` must be a number in \[0, 1\)"),
])
@pytest.mark.parametrize("name", ["MobileNet", "SEMobileNet"])
def test_mobilenet_knobs(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        getattr(kerasnets, name)(weights=None, **kwargs)
