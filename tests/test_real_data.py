"""Training on real images: BatchNorm statistics that belong to the trained
weights (precise BN), held-out accuracy of a short run, the validation rule
shared by train and tune, and flips that can be turned off."""

import numpy as np
import pytest


def _conv_bn_model(momentum=0.999):
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(momentum=momentum, name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(5, 3, name="conv2")(x)
    x = keras.layers.BatchNormalization(momentum=momentum, name="bn2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def test_precise_batch_norm_estimates_population_statistics():
    import keras
    import tensorflow as tf

    from kerasnets.training import batchnorm

    model = _conv_bn_model()
    frozen = model.get_layer("bn2")
    frozen.trainable = False
    rng = np.random.default_rng(0)
    images = (rng.normal(size=(48, 8, 8, 3)) * 3 + 1).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(48))).batch(16)

    assert batchnorm.estimate(model, dataset, steps=3) == 1  # bn2 is frozen
    conv = keras.ops.convert_to_numpy(model.get_layer("conv1")(images)).astype(np.float64)
    bn1 = model.get_layer("bn1")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn1.moving_mean),
                               conv.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn1.moving_variance),
                               conv.var(axis=(0, 1, 2)), rtol=1e-4)
    assert bn1.momentum == 0.999  # restored
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(frozen.moving_mean), 0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(frozen.moving_variance), 1)


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    from tests.imagefolders import make_image_folder

    root = tmp_path_factory.mktemp("colours")
    make_image_folder(str(root), per_class=24)
    return "folder:" + str(root)


def test_short_run_is_evaluated_with_its_own_statistics(colours, tmp_path):
    """27 steps: far too few for moving averages to forget their start
    (momentum 0.99 keeps 76 % of it: held-out 0.75 while training reaches
    0.96), enough with precise BatchNorm statistics."""
    from kerasnets import training

    kwargs = {"depth": 7, "growth_rate": 4}
    run = training.train("DenseNetCIFAR", colours, output=str(tmp_path / "run"), epochs=3,
                         batch_size=8, image_size=32, optimizer="adamw", lr=0.01, seed=0,
                         train_split="train[:75%]", val_split="train[75%:]",
                         model_kwargs=kwargs, verbose=0)
    assert run.history["accuracy"][-1] >= 0.9
    assert run.history["val_accuracy"][-1] >= 0.95
    held_out = training.evaluate(weights=run.model_path, dataset=colours, split="train[75%:]",
                                 batch_size=8)
    assert held_out.top1 >= 0.95


# ------------------------------------------------- the validation rule


def test_train_and_tune_share_the_validation_rule(tmp_path, monkeypatch):
    from kerasnets import data, training, tuner
    from tests.imagefolders import make_image_folder

    plain = "folder:" + make_image_folder(str(tmp_path / "plain"), per_class=10)
    assert data.validation_splits(plain) == ("train[:90%]", "train[90%:]", True)
    tiny = "folder:" + make_image_folder(str(tmp_path / "tiny"), per_class=4)
    assert data.validation_splits(tiny) == ("train", None, False)  # nothing to hold out
    assert data.validation_splits(plain, val_split="none") == ("train", None, False)
    with pytest.raises(ValueError, match="is a slice already"):
        data.validation_splits(plain, "train[:50%]")
    split = str(tmp_path / "split")
    make_image_folder(split, per_class=2, split="train")
    make_image_folder(split, per_class=1, split="validation")
    assert data.validation_splits("folder:" + split) == ("train", "validation", False)

    class Rule(Exception):
        pass

    def rule(*args, **kwargs):
        raise Rule

    monkeypatch.setattr(data, "validation_splits", rule)
    with pytest.raises(Rule):
        training.train("MobileNetV2", plain, output=str(tmp_path / "run"), image_size=32)
    with pytest.raises(Rule):
        tuner.search("mobilenet_v2", plain, directory=str(tmp_path / "search"),
                     image_size=32)


# ------------------------------------------------------ the recipe


def test_flips_can_be_turned_off(tmp_path):
    from PIL import Image

    from kerasnets import data

    for cls in ("a", "b"):  # left half dark, right half bright
        (tmp_path / cls).mkdir()
        pixels = np.zeros((16, 16, 3), np.uint8)
        pixels[:, 8:] = 255
        Image.fromarray(pixels).save(tmp_path / cls / "x.png")
    folder = f"folder:{tmp_path}"
    kwargs = dict(image_size=16, batch_size=2, training=True, preprocessing=None,
                  scale=(1.0, 1.0), ratio=(1.0, 1.0), seed=0)
    halves = [(x[..., :8, :].numpy().mean(), x[..., 8:, :].numpy().mean())
              for x, _ in data.load(folder, flip=False, **kwargs).take(8)]
    assert all(left < right for left, right in halves)
    flipped = [x[..., :8, :].numpy().mean() > 128
               for x, _ in data.load(folder, **kwargs).unbatch().take(16)]
    assert any(flipped) and not all(flipped)


def test_train_help_shows_the_defaults_and_the_run_prints_its_recipe(capsys):
    from kerasnets import cli
    from kerasnets.training import TrainConfig

    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for needle in ("--epochs EPOCHS passes over the training images (default: 10)",
                   "(default: 64)", "(default: 224)", "(default: sgd)",
                   "sgd 0.2 x B/256 from scratch", "(default: cosine)", "default: 1 epoch", "of the cross-entropy (default: 0.1)",
                   "ImageNet-length runs use 0.08) (default: 1.0)", "--no-flip", "last 10%"):
        assert needle in text, needle
    config = TrainConfig(model="MobileNetV2", dataset="folder:x", output="o", image_size=32,
                         model_kwargs={"alpha": 0.35}, flip=False)
    recipe = config.recipe("train[:90%]", "train[90%:]", 20)
    assert "\n" not in recipe
    for needle in ("MobileNetV2(alpha=0.35) from scratch", "10 epochs x 20 steps of 64",
                   "at 32 px", "lr 0.05", "cosine after 1 warm-up epoch,",
                   "label smoothing 0.1",
                   "random resized crop (area 100%)", "validation: train[90%:]", "BatchNorm"):
        assert needle in recipe, needle
    assert "flip" not in recipe
    fine_tuning = TrainConfig(model="MobileNetV2", dataset="folder:x", output="o", epochs=5,
                              weights="imagenet").recipe("train", None, 20)
    assert "lr 0.025, cosine after 0.5 warm-up epochs," in fine_tuning  # a tenth of 5


def test_residual_branches_start_as_identities():
    """From scratch, the BatchNorm ending each residual branch starts with
    gamma 0 (Goyal et al. 2017), through an SE block (SE-ResNeXt), never a
    shortcut's projection. Left alone: SE-ResNet-18's BN-ReLU-SE branches
    (a zero gamma would get no gradient through the ReLU: the network
    trained to 32 %), DPN's pre-activation blocks, networks without
    additions."""
    import keras

    from kerasnets.training import initialization, recipe

    def gammas(model):
        return {layer.name: float(np.abs(keras.ops.convert_to_numpy(layer.gamma)).max())
                for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}

    net = recipe.build_model("MobileNetV2", 10, 32, alpha=0.35)
    zeroed = {name for name, value in gammas(net).items() if value == 0}
    adds = [layer.name for layer in net.layers if isinstance(layer, keras.layers.Add)]
    assert zeroed == {name.replace("_add", "_project_BN") for name in adds}
    assert len(zeroed) == 10 and "block_1_project_BN" not in zeroed  # block 1: no shortcut
    inputs = keras.Input((32, 32, 3))
    nested = keras.Model(inputs, net(inputs))  # found inside a nested model too
    assert {norm.name for norm in initialization.residual_branch_norms(nested)} == zeroed

    se = recipe.build_model("SEResNeXt26_32x4d", 10, 32)
    zeroed = {name for name, value in gammas(se).items() if value == 0}
    assert len(zeroed) == 8 and "conv2_block1_3_bn" in zeroed
    assert not any(name.endswith("_0_bn") or name.endswith("_1_bn") for name in zeroed)
    for name in ("SEResNet18", "DPN68", "MobileNet"):
        assert initialization.residual_branch_norms(
            recipe.build_model(name, 10, 32)) == [], name


@pytest.mark.heavy
def test_fine_tuning_from_a_checkpoint_with_a_frozen_backbone(colours, tmp_path, capsys):
    """The real-data path: a checkpoint of another task, a new 4-class head,
    a frozen backbone whose BatchNorm statistics stay the checkpoint's."""
    import keras

    import kerasnets
    from kerasnets import cli, training

    model_args = ["--model-arg", "depth=7", "--model-arg", "growth_rate=4"]
    backbone = kerasnets.DenseNetCIFAR(depth=7, growth_rate=4, include_top=False,
                                       pooling="avg", input_shape=(32, 32, 3))
    checkpoint = str(tmp_path / "backbone.weights.h5")
    backbone.save_weights(checkpoint)
    output = str(tmp_path / "run")
    assert cli.main(["train", "--model", "DenseNetCIFAR", *model_args, "--dataset", colours,
                     "--weights", checkpoint, "--freeze-backbone", "--image-size", "32",
                     "--epochs", "4", "--batch-size", "8", "--optimizer", "adamw",
                     "--lr", "0.01", "--seed", "0", "--output", output]) == 0
    out = capsys.readouterr().out
    assert f"from {checkpoint}, backbone frozen" in out
    model = keras.saving.load_model(f"{output}/model.keras")
    assert model.output_shape == (None, 4)
    for layer in (layer for layer in backbone.layers if layer.weights):
        for ours, theirs in zip(model.get_layer(layer.name).weights, layer.weights):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours),
                                          keras.ops.convert_to_numpy(theirs))
    held_out = training.evaluate("DenseNetCIFAR", f"{output}/model.keras", colours,
                                 "train[90%:]", batch_size=8)
    assert held_out.top1 > 0.5  # well above chance (0.25) with a random frozen backbone
