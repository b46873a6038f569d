"""Nothing lost, round two (issue 20), the command line's share: float options
that are not numbers, --model-arg values a command sets itself, convert's
tolerance, train from a .keras file, and how quantized exports are judged."""

import math
import warnings

import keras
import numpy as np
import pytest

from kerasnets import cli, export, training
from kerasnets.convert import parity
from kerasnets.training import recipe
from tests.imagefolders import make_image_folder
from tests.train_worker import MODEL, MODEL_KWARGS


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(code, err):
    """The one line of a usage error (exit status 2)."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("kerasnets: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_colours")
    make_image_folder(str(root), per_class=4, classes=((220, 40, 40), (40, 200, 40)))
    return "folder:" + str(root)


# ------------------------------------------------------------ float options


@pytest.mark.parametrize("option", ["--mixup", "--warmup-epochs", "--lr", "--weight-decay",
                                    "--label-smoothing", "--dropout"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_train_float_options_must_be_finite(capsys, tmp_path, colours, option, value):
    output = tmp_path / "run"
    line = usage_error(*run_cli(capsys, "train", "--model", MODEL, "--dataset", colours,
                                "--output", output, f"{option}={value}")[::2])
    assert f"argument {option}: expected a finite number; received '{value}'" in line
    assert not output.exists()


@pytest.mark.parametrize("argv, needle", [
    (["--tolerance", "nan"], "argument --tolerance: expected a finite number"),
    (["--tolerance", "-1"], "--tolerance must be at least 0"),
    (["--tolerance", "abc"], "argument --tolerance: expected a number; received 'abc'"),
])
def test_convert_tolerance_is_a_finite_number_of_at_least_0(capsys, tmp_path, argv, needle):
    output = tmp_path / "out.weights.h5"
    line = usage_error(*run_cli(capsys, "convert", "imagenet", "--model", "MobileNetV2",
                                "-o", output, *argv)[::2])
    assert needle in line and not output.exists()


@pytest.mark.parametrize("option", ["--min-agreement", "--max-probability-diff"])
@pytest.mark.parametrize("value, needle", [
    ("nan", "expected a finite number"), ("1.5", "is a fraction in [0, 1]")])
def test_export_limits_are_fractions(capsys, tmp_path, option, value, needle):
    output = tmp_path / "m.tflite"
    line = usage_error(*run_cli(capsys, "export", "MobileNetV2", "-o", output,
                                "--quantize", "float16", option, value)[::2])
    assert needle in line and not output.exists()


@pytest.mark.parametrize("field, value", [
    ("mixup", math.nan), ("warmup_epochs", math.nan), ("warmup_epochs", math.inf),
    ("weight_decay", math.nan), ("weight_decay", math.inf), ("momentum", math.nan),
    ("momentum", 1.5), ("label_smoothing", math.nan), ("dropout", math.inf),
    ("lr", math.nan), ("mixup", "0.2"), ("dropout", True)])
def test_train_config_refuses_non_finite_numbers(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be .*received"):
        training.TrainConfig(model=MODEL, dataset="folder:x", output="run", **{field: value})


# ----------------------------------------------------------------- --model-arg


@pytest.mark.parametrize("arg, needle", [
    ("input_shape=32", "--model-arg input_shape: use --image-size"),
    ("weights=imagenet", "--model-arg weights: use --weights"),
    ("include_top=false", "--model-arg include_top: train builds a classifier"),
    ("classes=3", "--model-arg classes: train takes the number of classes from the dataset"),
    ("pooling=max", "--model-arg pooling: train's classifier pools by average"),
    ("input_tensor=x", "--model-arg input_tensor: a tensor cannot be given"),
])
def test_train_model_args_set_by_options_say_which_option(capsys, tmp_path, colours, arg,
                                                          needle):
    output = tmp_path / "run"
    line = usage_error(*run_cli(capsys, "train", "--model", "MobileNetV2", "--dataset",
                                colours, "--output", output, "--model-arg", arg)[::2])
    assert needle in line and not output.exists()


@pytest.mark.parametrize("argv, needle", [
    (["predict", "--model", "MobileNetV2", "--weights", "none", "--model-arg",
      "input_shape=32"], "input_shape is (height, width, channels), e.g. "
                         "input_shape=(160,160,3); received 32"),
    (["predict", "--model", "MobileNetV2", "--weights", "none", "--model-arg",
      "input_shape=(0,32,3)"], "input_shape is (height, width, channels)"),
    (["predict", "--model", "MobileNetV2", "--model-arg", "weights=imagenet"],
     "--model-arg weights: use --weights"),
    (["predict", "--model", "MobileNetV2", "--model-arg", "include_top=false"],
     "--model-arg include_top: this command builds the model with its classifier"),
    (["convert", "imagenet", "--model", "MobileNetV2", "-o", "OUT", "--model-arg",
      "weights=imagenet"], "--model-arg weights: the weights are SOURCE"),
    (["convert", "imagenet", "--model", "MobileNetV2", "-o", "OUT", "--model-arg",
      "include_top=false"], "--model-arg include_top: use --no-top"),
    (["convert", "imagenet", "--model", "MobileNetV2", "-o", "OUT", "--model-arg",
      "input_shape=160"], "input_shape is (height, width, channels)"),
    (["benchmark", "--model", "MobileNetV2", "--model-arg", "input_shape=(64,64,3)"],
     "--model-arg input_shape: use --image-size"),
    (["benchmark", "--model", "MobileNetV2", "--model-arg", "classes=10"],
     "benchmark builds the model with its 1000-class classifier"),
])
def test_model_args_of_other_commands(capsys, tmp_path, argv, needle):
    argv = [str(tmp_path / "out.weights.h5") if a == "OUT" else a for a in argv]
    line = usage_error(*run_cli(capsys, *argv)[::2])
    assert needle in line
    assert not (tmp_path / "out.weights.h5").exists()


def test_the_library_refuses_builder_arguments_the_recipe_sets():
    with pytest.raises(ValueError, match="model_kwargs may not set input_shape"):
        training.TrainConfig(model=MODEL, dataset="folder:x", output="run",
                             model_kwargs={"input_shape": (32, 32, 3)})
    with pytest.raises(ValueError, match="model_kwargs may not set include_top, pooling"):
        recipe.build_model(MODEL, 2, 32, include_top=False, pooling="avg", **MODEL_KWARGS)


# -------------------------------------------------------------------- convert


def test_parity_never_passes_on_nan():
    rng = np.random.default_rng(0)
    theirs = rng.normal(0, 1, (4, 10))
    ours = theirs + 1e-7
    assert parity.compare_outputs(ours, theirs, 1e-3)[0] == "ok"
    assert parity.compare_outputs(ours, theirs, math.nan)[0] == "mismatch"
    assert parity.compare_outputs(theirs + 1.0, theirs, 1e-3)[0] == "mismatch"
    broken = theirs.copy()
    broken[0, 0] = math.nan
    assert parity.compare_outputs(ours, broken, 1e-3)[0] == "mismatch"  # NaN spread
    assert parity.compare_outputs(broken, theirs, 1e-3)[0] == "mismatch"


@pytest.mark.parametrize("tolerance", [math.nan, math.inf, -1e-3])
def test_convert_refuses_a_tolerance_that_is_not_a_finite_number(tmp_path, tolerance):
    from kerasnets import convert

    with pytest.raises(ValueError, match="tolerance=.*expected a finite number"):
        convert.convert(str(tmp_path / "missing.safetensors"), "MobileNetV2",
                        str(tmp_path / "out.weights.h5"), tolerance=tolerance)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------- train from .keras


def test_build_model_from_a_keras_file(tmp_path):
    """A run's model.keras as the starting weights: all of them with the same
    classes, the backbone and a new classifier with other classes."""
    keras.utils.set_random_seed(0)
    first = recipe.build_model(MODEL, 2, 32, **MODEL_KWARGS)
    path = str(tmp_path / "model.keras")
    first.save(path)
    again = recipe.build_model(MODEL, 2, 48, weights=path, **MODEL_KWARGS)
    for a, b in zip(first.weights, again.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)

    wider = recipe.build_model(MODEL, 3, 32, weights=path, freeze_backbone=True,
                               **MODEL_KWARGS)
    assert wider.output_shape == (None, 3)
    assert [layer.name for layer in wider.layers if layer.trainable_weights] == ["predictions"]
    copied = {layer.name: layer for layer in first.layers}
    backbone = [layer for layer in wider.layers if layer.weights and layer.name in copied
                and layer.name != "predictions"]
    assert len(backbone) == len([layer for layer in first.layers if layer.weights]) - 1
    for layer in backbone:
        for a, b in zip(layer.get_weights(), copied[layer.name].get_weights()):
            np.testing.assert_array_equal(a, b)

    with pytest.raises(ValueError, match="does not fit this model.*another model"):
        recipe.build_model(MODEL, 2, 32, weights=path, depth=7, growth_rate=6)


def test_build_model_takes_a_tensor_without_the_structure_warning():
    net = recipe.build_model(MODEL, 2, 32, **MODEL_KWARGS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net(np.zeros((1, 32, 32, 3), "float32"))


@pytest.mark.heavy
def test_train_fine_tunes_a_previous_runs_model_keras(capsys, tmp_path, colours):
    common = ["--model", MODEL, "--image-size", "32", "--batch-size", "4", "--epochs", "1",
              "--val-split", "none", "--seed", "1"]
    common += [a for k, v in MODEL_KWARGS.items() for a in ("--model-arg", f"{k}={v}")]
    first = tmp_path / "first"
    code, out, err = run_cli(capsys, "train", *common, "--dataset", colours, "--output", first)
    assert code == 0, err
    three = tmp_path / "three"
    make_image_folder(str(three), per_class=4)
    code, out, err = run_cli(capsys, "train", *common, "--dataset", f"folder:{three}",
                             "--output", tmp_path / "second", "--weights",
                             first / "model.keras")
    assert code == 0, err
    model = keras.saving.load_model(tmp_path / "second" / "model.keras")
    assert model.output_shape == (None, 4)


# --------------------------------------------------------------------- export


def numbers(**changes):
    base = dict(compared="logits", max_abs_diff=3.1, scale=0.043, relative_diff=72.5,
                rms_diff=9.0, agreement=0.977, probability_diff=0.02)
    return dict(base, **changes)


def test_quantized_exports_are_judged_by_agreement_and_probabilities():
    # Logits 72x their scale apart, the classes and probabilities the same:
    # a good int8 export.
    assert export.check_failure(numbers(), quantize="int8") is None
    failure = export.check_failure(numbers(agreement=0.5), quantize="int8")
    assert "on the top-1 class of 50.0% of the images (limit 80%)" in failure
    failure = export.check_failure(numbers(probability_diff=0.4), quantize="float16")
    assert "moves the class probabilities" in failure and "limit 0.1" in failure
    assert export.check_failure(numbers(probability_diff=math.nan), quantize="int8")
    assert export.check_failure(numbers(agreement=None, rms_diff=0.1), quantize="int8") is None
    assert "by an RMS of" in export.check_failure(numbers(agreement=None), quantize="int8")
    # Float exports: the relative difference, and NaN never passes.
    assert "does not match Keras" in export.check_failure(numbers(), quantize=None)
    assert export.check_failure(numbers(relative_diff=1e-5), quantize=None) is None
    assert export.check_failure(numbers(relative_diff=math.nan), quantize=None)


def test_compare_measures_how_far_the_probabilities_move():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (16, 10))
    same = export.compare(logits, logits + 1e-6)
    assert same["probability_diff"] < 1e-5
    # Every top-1 kept, but the scores flattened: the probabilities moved.
    flat = export.compare(logits, 0.05 * logits)
    assert flat["agreement"] == 1.0 and flat["probability_diff"] > 0.3
    assert export.check_failure(flat, quantize="int8")
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert export.compare(probs, probs)["probability_diff"] < 1e-12
    assert export.compare(np.ones((4, 1)), np.ones((4, 1)))["probability_diff"] is None


def report(**changes):
    values = dict(path="m.tflite", format="tflite", quantize="int8", model="MobileNetV2",
                  weights="imagenet", input_shape=(None, 224, 224, 3),
                  preprocessing="tf", file_size=4_000_000, samples=128,
                  sample_source="imagenette, train", keras_noise=0.0, rtol=None,
                  min_agreement=0.8, max_probability_diff=0.1, **numbers())
    values.update(changes)
    return export.ExportReport(**values)


@pytest.mark.parametrize("changes", [
    {}, {"quantize": "float16"}, {"agreement": None},
    {"quantize": None, "rtol": 1e-3, "min_agreement": None, "max_probability_diff": None,
     "relative_diff": 2e-5}])
def test_every_figure_of_the_report_states_its_limit(changes):
    rows = dict(report(**changes).rows())
    figures = {"relative diff", "top-1 agreement", "probability diff", "RMS diff",
               "Keras vs itself"} & set(rows)
    assert "relative diff" in figures
    for label in figures:
        assert "limit" in rows[label], (label, rows[label])
    if changes.get("quantize", "int8"):
        assert "no limit" in rows["relative diff"]
        if "agreement" not in changes:
            assert rows["top-1 agreement"].startswith("97.7% (limit 80%)")
            assert rows["probability diff"].startswith("0.02 (limit 0.1")
    else:
        assert rows["relative diff"] == "2.00e-05 (limit 0.001)"


@pytest.mark.heavy
def test_export_of_a_one_element_list_input_model_does_not_warn(tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model([inputs], keras.layers.Dense(3, activation="softmax")(x))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export.export_model(model, tmp_path / "m", weights=None)
    assert not [w for w in caught if "structure of `inputs`" in str(w.message)]
