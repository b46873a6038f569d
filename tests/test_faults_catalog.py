"""Nothing lost, round two (issue 20): what `tune --overwrite` may delete,
damaged tuner files, the catalog's names and the builders' arguments. Each
test is one fault: what kerasnets must refuse, keep or say."""

import hashlib
import json
import os

import keras
import keras_tuner
import pytest

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
