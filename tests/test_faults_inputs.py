"""Inputs that must not mislead or exhaust: image shapes and files, batch
sizes, and the classes and splits ``evaluate`` reads (issues 20 and 21)."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import kerasnets
from kerasnets import cli, data, training
from kerasnets.text import one_line
from tests.imagefolders import COLOURS, make_image_folder

MODEL_KWARGS = {"depth": 7, "growth_rate": 4}


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def save_model(directory, class_names=None, classes=2, favourite=1):
    """A tiny DenseNetCIFAR that always predicts class ``favourite``, saved as
    ``directory/model.keras`` (with a run config.json naming ``class_names``)."""
    model = kerasnets.DenseNetCIFAR(classes=classes, input_shape=(32, 32, 3), **MODEL_KWARGS)
    kernel, bias = model.layers[-1].get_weights()
    bias = np.zeros_like(bias)
    bias[favourite] = 20.0
    model.layers[-1].set_weights([np.zeros_like(kernel), bias])
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "model.keras")
    model.save(path)
    if class_names is not None:
        prep = kerasnets.preprocessing.get_preprocessing("torch")
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump({"model": "DenseNetCIFAR", "class_names": list(class_names),
                       "preprocessing": dataclasses.asdict(prep), "status": "complete"}, f)
    return path


def class_folder(root, names, per_class=2):
    """``root/<name>/*.png`` for each of ``names``."""
    make_image_folder(str(root), per_class=per_class, classes=COLOURS[:len(names)],
                      size=(12, 12))
    for i, name in enumerate(names):
        os.rename(root / f"c{i}", root / name)
    return f"folder:{root}"


@pytest.fixture(scope="module")
def cat_dog(tmp_path_factory):
    """A model of the classes (cat, dog) that always says dog, with and
    without its run's config.json."""
    root = tmp_path_factory.mktemp("models")
    return (save_model(str(root / "run"), ["cat", "dog"]),
            save_model(str(root / "bare")))


# ------------------------------------------------------------------ images


def test_evaluation_crop_work_is_bounded_by_the_output(tmp_path, monkeypatch):
    """Case 8: a 1x2000 strip was resized to 256 x 512000 before the crop
    (a 372-byte 1x100000 PNG asked for 256 x 25600000)."""
    from PIL import Image

    path = tmp_path / "strip.png"
    Image.fromarray(np.full((1, 2000, 3), 200, np.uint8)).save(path)
    resize, sizes = tf.image.resize, []

    def bounded_resize(images, size, **kwargs):
        sizes.append(tuple(int(v) for v in size))
        assert sizes[-1][0] * sizes[-1][1] <= 4 * 256 * 256, sizes[-1]  # MAX_ASPECT
        return resize(images, size, **kwargs)

    monkeypatch.setattr(tf.image, "resize", bounded_resize)
    image = data.load_image(path, image_size=224, preprocessing="none")
    assert image.shape == (224, 224, 3) and sizes == [(256, 1024)]
    np.testing.assert_allclose(image, 200.0, atol=1e-3)
    # A normal photo is cropped exactly as before (no pre-crop below MAX_ASPECT).
    photo = tf.random.stateless_uniform((30, 100, 3), (1, 2), 0, 255)
    sizes.clear()
    data.center_crop(photo, 24, 0.875)
    assert sizes == [(27, 90)]


def test_exif_orientation_is_honoured_by_load_image(tmp_path):
    from PIL import Image, ImageOps

    pixels = np.zeros((24, 48, 3), np.uint8)
    pixels[:12, :24] = (250, 0, 0)
    pixels[:12, 24:] = (0, 250, 0)
    pixels[12:, :24] = (0, 0, 250)
    pixels[12:, 24:] = (250, 250, 250)
    for orientation in range(1, 9):
        path = tmp_path / f"o{orientation}.jpg"
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(pixels).save(path, quality=100, exif=exif.tobytes())
        upright = tmp_path / f"o{orientation}.png"
        ImageOps.exif_transpose(Image.open(path)).save(upright)
        assert data.exif_orientation(path) == orientation
        got = data.load_image(path, image_size=16, preprocessing="none")
        want = data.load_image(upright, image_size=16, preprocessing="none")
        assert np.abs(got - want).mean() < 3.0, orientation


def test_webp_counted_and_dotfiles_skipped(tmp_path):
    from PIL import Image

    root = tmp_path / "images"
    make_image_folder(str(root), per_class=2, classes=COLOURS[:2], formats=("png", "webp"),
                      size=(12, 12))
    (root / "c0" / "._000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS
    (root / ".thumbnails").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "c1" / ".hidden.png")
    files, labels, classes = data.folder_files(f"folder:{root}")
    assert classes == ("c0", "c1")
    assert [os.path.basename(f) for f in files] == ["000.png", "001.webp"] * 2
    images, _ = next(iter(data.load(f"folder:{root}", "train", 16, 4,
                                    preprocessing="none")))
    assert images.shape == (4, 16, 16, 3)


def test_unknown_tfds_name_names_the_closest_few():
    with pytest.raises(ValueError) as info:
        data.info("cifar100x")
    message = str(info.value)
    assert len(message) < 300 and "cifar100" in message and "\n" not in message


# ------------------------------------------------------------- batch size


def test_training_batch_larger_than_the_data_is_refused(tmp_path):
    """Case 9: --batch-size 100000 on 16 images repeated them into one batch
    of 100000 (OOM-killed at 20 GB)."""
    dataset = class_folder(tmp_path / "images", ["a", "b"], per_class=8)
    with pytest.raises(ValueError, match="batch size .*100000 is larger than the 16 "
                                         "training images.*at most 16"):
        data.load(dataset, "train", 16, 100000, training=True)
    data.load(dataset, "train", 16, 16, training=True)  # all of them: fine


def test_cli_train_refuses_a_batch_larger_than_the_data(tmp_path, capsys):
    dataset = class_folder(tmp_path / "images", ["a", "b"], per_class=8)
    output = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--model", "DenseNetCIFAR", "--model-arg",
                           "depth=7", "--model-arg", "growth_rate=4", "--dataset", dataset,
                           "--image-size", "32", "--batch-size", "100000", "--val-split",
                           "none", "--output", output)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "batch size (--batch-size, batch_size) 100000 is larger than the 16" in err
    assert not (output / "model.keras").exists()


# ---------------------------------------------------------------- classes


def test_evaluate_refuses_classes_the_model_does_not_know(tmp_path, cat_dog, capsys):
    """Case 10: an extra bird/ was dropped silently; aardvark was scored as
    cat (sort order); three classes against two dumped a graph error."""
    dataset = class_folder(tmp_path / "bird", ["bird", "cat", "dog"])
    code, _, err = run_cli(capsys, "evaluate", "--model", "DenseNetCIFAR", "--weights",
                           cat_dog[0], "--dataset", dataset, "--split", "train")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert f"classes that {cat_dog[0]} does not predict: bird (it predicts cat, dog)" in err
    from kerasnets.training.evaluate import class_mapping

    with pytest.raises(ValueError, match="does not predict: aardvark"):
        class_mapping(["aardvark", "cat"], ["cat", "dog"], 2, "folder:x", "m")
    # Without class names: more classes than outputs is one clear line.
    with pytest.raises(ValueError, match="has 3 classes, more than the 2 that m predicts"):
        class_mapping(["bird", "cat", "dog"], None, 2, "folder:x", "m")


def test_evaluate_matches_classes_by_name_and_reports_a_subset(tmp_path, cat_dog):
    dataset = class_folder(tmp_path / "dogs", ["dog"])  # the model always says dog
    result = training.evaluate("DenseNetCIFAR", cat_dog[0], dataset, "train")
    assert result.top1 == 1.0  # in sort order, dog was class 0 (cat): 0 %
    from kerasnets.training.evaluate import class_mapping

    assert result.missing_classes == ("cat",) and result.num_classes == 2
    assert "1 of the model's 2 are in the data; no images of cat" in result.summary()
    assert class_mapping(["cat", "dog"], ["dog", "cat"], 2, "d", "m")[0] == [1, 0]
    # A model saved without names: in order, and the summary says so.
    indices, missing, how = class_mapping(["dog"], None, 2, "d", "m")
    assert indices is None and missing == () and "m came without class names" in how
    # ImageNet's 1000 classes without names: by WordNet id (ImageNet folders, tfds).
    wnids = kerasnets.imagenet.wordnet_ids()
    indices, missing, how = class_mapping([wnids[7], wnids[3]], None, 1000, "d", "m")
    assert indices == [7, 3] and len(missing) == 998 and how == "by name"


# ------------------------------------------------------ the .keras file alone


def test_evaluate_a_keras_file_alone_on_a_plain_class_folder(tmp_path, cat_dog, capsys):
    """Issue 21: --model was required, and the default split "validation"
    did not exist in a folder of class folders. Case 9: a batch larger than
    the data is cut to it, with a one-line warning."""
    from kerasnets.training.evaluate import default_split

    dataset = class_folder(tmp_path / "images", ["cat", "dog"])
    code, out, err = run_cli(capsys, "evaluate", "--weights", cat_dog[0], "--dataset", dataset,
                             "--batch-size", "100000")
    assert code == 0, err
    assert "top-1  50.00%" in out and "4 images in" in out
    assert "\x1b" not in out and "\b" not in out  # one line, no progress bar codes
    assert err == "kerasnets: The batch size 100000 is larger than the 4 images to evaluate: " \
                  "using 4.\n"
    # A folder with split folders: its validation split; --split picks another.
    assert default_split(dataset) == "train"  # a folder of class folders: all of it
    split_root = tmp_path / "splits"
    class_folder(split_root / "train", ["cat", "dog"], per_class=1)
    assert "name the split to evaluate (--split)" in one_line(
        pytest.raises(ValueError, default_split, f"folder:{split_root}").value)
    class_folder(split_root / "val", ["dog"], per_class=1)
    assert default_split(f"folder:{split_root}") == "val"


def test_model_named_beside_a_keras_file_must_match(tmp_path, cat_dog, capsys):
    dataset = class_folder(tmp_path / "images", ["cat", "dog"])
    code, _, err = run_cli(capsys, "evaluate", "--model", "MobileNetV2", "--weights",
                           cat_dog[0], "--dataset", dataset)
    assert code == 1 and "holds a DenseNetCIFAR" in err and "not a MobileNetV2" in err
    code, _, err = run_cli(capsys, "predict", "--model", "MobileNetV2", "--weights",
                           cat_dog[1])
    assert code == 1 and "holds a DenseNet (says its model name 'densenet7_k4')" in err
    code, out, err = run_cli(capsys, "predict", "--model", "densenetcifar", "--weights",
                             cat_dog[0], "--top", "1")
    assert code == 0 and "dog" in out, err


def test_predict_shows_unnamed_classes_by_index(cat_dog, capsys):
    code, out, err = run_cli(capsys, "predict", "--weights", cat_dog[1], "--top", "2")
    assert code == 0, err
    assert "have no names" in out and "class 1" in out.split("│ 1 │")[1].splitlines()[0]


def test_train_prints_one_line_per_epoch_off_a_terminal(tmp_path, capsys, monkeypatch):
    seen = {}

    def fake_train(config, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(training, "train", fake_train)
    dataset = class_folder(tmp_path / "images", ["a", "b"])
    run_cli(capsys, "train", "--model", "MobileNetV2", "--dataset", dataset,
            "--output", tmp_path / "run")
    assert seen.get("verbose") == 2
