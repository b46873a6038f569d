"""kerasnets.data: preprocessing modes, folder and tfds pipelines."""

import os

import keras
import numpy as np

import kerasnets
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from kerasnets import data
from tests.imagefolders import COLOURS, make_image_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    make_image_folder(str(root), per_class=8, formats=("png", "jpg", "bmp"))
    return "folder:" + str(root)


def _batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


# ----------------------------------------------------------- preprocessing


def test_modes_equal_the_families_preprocess_input():
    from kerasnets.models import dpn, igc, igc_v3

    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    imagenet_utils = keras.applications.imagenet_utils
    expected = {
        "tf": imagenet_utils.preprocess_input(images.copy(), mode="tf"),
        "torch": imagenet_utils.preprocess_input(images.copy(), mode="torch"),
        "caffe": imagenet_utils.preprocess_input(images.copy(), mode="caffe"),
        "none": images,
        # A model name stands for its default weights' preprocessing.
        "DPN68": dpn.preprocess_input(images.copy()),
        "IGC_L4M32": igc.preprocess_input(images.copy()),
        "IGCV3": igc_v3.preprocess_input(images.copy()),
        "DenseNet121:tv_in1k": imagenet_utils.preprocess_input(images.copy(), mode="torch"),
    }
    assert set(expected) >= set(kerasnets.preprocessing.KERAS_MODES)
    for mode, want in expected.items():
        got = data.get_preprocessing(mode).normalize(tf.constant(images)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4, err_msg=mode)


def test_mean_std_pairs_on_either_scale():
    images = tf.constant(np.random.default_rng(1).uniform(0, 255, (1, 4, 4, 3)), tf.float32)
    timm_style = data.get_preprocessing(((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
    pixel_style = data.get_preprocessing(((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)))
    torch_mode = data.get_preprocessing("torch")
    for prep in (timm_style, pixel_style):
        np.testing.assert_allclose(prep.normalize(images), torch_mode.normalize(images),
                                   rtol=1e-5, atol=1e-5)
    scalar = data.get_preprocessing((0.5, 0.5))
    np.testing.assert_allclose(scalar.normalize(images), images / 127.5 - 1, atol=1e-5)
    assert data.get_preprocessing(None).mode == "none"
    with pytest.raises(ValueError, match="Unknown preprocessing 'pytorch'"):
        data.get_preprocessing("pytorch")
    with pytest.raises(ValueError, match="mean, std"):
        data.get_preprocessing(3.0)
    with pytest.raises(ValueError, match="positive"):
        data.get_preprocessing(((0.5,) * 3, (0.0,) * 3))


def test_preprocessing_for_weights_and_families():
    dpn = data.preprocessing_for("DPN68", "imagenet")  # = mx_in1k
    assert (dpn.mode, dpn.interpolation, dpn.crop_pct) == ("DPN68.mx_in1k", "bicubic", 0.875)
    assert dpn.mean == (124.0, 117.0, 104.0)
    ra = data.preprocessing_for("DPN68b", "ra_in1k")
    assert ra.crop_pct == 0.95 and ra.mean == data.get_preprocessing("torch").mean
    # keras.applications files: one per alpha/resolution, mode "tf", bilinear.
    v2 = data.preprocessing_for("MobileNetV2", "imagenet")
    tf_mode = data.get_preprocessing("tf")
    assert (v2.mean, v2.std, v2.interpolation) == (tf_mode.mean, tf_mode.std, "bilinear")
    assert data.preprocessing_for("MobileNetV3Large", "imagenet").is_identity
    assert data.preprocessing_for("DenseNet121", "tv_in1k").interpolation == "bicubic"
    # No weights, or a file of unknown origin: the model's default weights.
    assert data.preprocessing_for("DPN92", None).mode == "DPN92.mx_in1k"
    assert data.preprocessing_for("MobileNetV2", None).mean == tf_mode.mean
    # A builder without published weights: its family's normalisation.
    torch_mode = data.get_preprocessing("torch")
    cifar = data.preprocessing_for("DenseNetCIFAR", None)
    assert (cifar.mean, cifar.std) == (torch_mode.mean, torch_mode.std)
    assert data.preprocessing_for("mobilenetv2", None).mean == tf_mode.mean  # any case
    import kerasnets

    assert data.preprocessing_for(kerasnets.DPN68, None).mode == "DPN68.mx_in1k"
    with pytest.raises(ValueError, match="Unknown weights 'nope' for DPN68"):
        data.preprocessing_for("DPN68", "nope")


# ------------------------------------------------------------------ folders


def test_folder_info_and_percent_splits(folder):
    info = data.info(folder)
    assert info.num_classes == len(COLOURS) and info.class_names == ("c0", "c1", "c2", "c3")
    assert info.num_examples == 8 * len(COLOURS)
    train, _, _ = data.folder_files(folder, "train[:75%]")
    val, _, _ = data.folder_files(folder, "train[75%:]")
    everything, _, _ = data.folder_files(folder, "train")
    assert len(train) == 24 and len(val) == 8
    assert not set(train) & set(val) and set(train) | set(val) == set(everything)
    # The slices are fixed (not the training seed's), and stratified per class.
    assert data.folder_files(folder, "train[75%:]")[0] == val
    assert sorted(os.path.basename(os.path.dirname(f)) for f in val) == sorted(
        ["c0", "c1", "c2", "c3"] * 2)
    assert len(data.folder_files(folder, "train[-25%:]")[0]) == 8
    with pytest.raises(ValueError, match="no split folders"):
        data.folder_files(folder, "validation")
    with pytest.raises(ValueError, match="percent"):
        data.folder_files(folder, "train[:80]")


def test_folder_split_folders_share_the_train_classes(tmp_path):
    make_image_folder(str(tmp_path), per_class=2, split="train")
    make_image_folder(str(tmp_path), per_class=1, split="val", classes=COLOURS[2:])
    files, labels, classes = data.folder_files(f"folder:{tmp_path}", "validation")
    assert classes == ("c0", "c1", "c2", "c3") and len(files) == 2
    # val/ has only c0 and c1 folders (named after their own colours), and
    # they keep the train folder's label numbers.
    assert labels == [0, 1]
    with pytest.raises(ValueError, match="has no 'test' split"):
        data.folder_files(f"folder:{tmp_path}", "test")
    with pytest.raises(ValueError, match="does not exist"):
        data.folder_files(f"folder:{tmp_path}/missing", "train")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no class subfolders"):
        data.folder_files(f"folder:{empty}", "train")


def test_evaluation_pipeline_keeps_images_with_their_labels(folder):
    ds = data.load(folder, "train", image_size=24, batch_size=5, training=False,
                   preprocessing=None)
    batches = _batches(ds)
    assert [len(y) for _, y in batches] == [5] * 6 + [2]  # in order, last batch partial
    images = np.concatenate([x for x, _ in batches])
    labels = np.concatenate([y for _, y in batches])
    assert images.shape == (32, 24, 24, 3) and images.dtype == np.float32
    np.testing.assert_array_equal(labels, np.repeat(np.arange(4), 8))
    # Each image's mean colour is its class's colour (noise averages out;
    # JPEG and BMP files decode like the PNGs).
    means = images.mean(axis=(1, 2))
    nearest = np.argmin(np.abs(means[:, None, :] - np.asarray(COLOURS)[None]).sum(-1), 1)
    np.testing.assert_array_equal(nearest, labels)


def test_center_crop_matches_pil_resize_and_torchvision_crop():
    from PIL import Image

    yy, xx = np.mgrid[0:90, 0:121]
    image = np.stack([xx * 2, yy * 2.5, xx + yy], -1).clip(0, 255).astype(np.uint8)
    size, crop_pct = 64, 0.875
    for interpolation, method in (("bilinear", Image.BILINEAR), ("bicubic", Image.BICUBIC)):
        ours = data.center_crop(tf.constant(image), size, crop_pct, interpolation).numpy()
        scale = int(size / crop_pct)  # 73: shorter side
        new_w = int(scale * 121 / 90)  # torchvision truncates the longer side
        resized = np.asarray(Image.fromarray(image).resize((new_w, scale), method), float)
        top, left = int(round((scale - size) / 2)), int(round((new_w - size) / 2))
        expected = resized[top:top + size, left:left + size]
        assert ours.shape == (size, size, 3)
        assert np.abs(ours - expected).max() <= 1.5, interpolation  # PIL rounds to uint8


def test_random_resized_crop_decodes_jpeg_inside_the_crop_like_other_formats():
    yy, xx = np.mgrid[0:60, 0:80]
    image = np.stack([xx * 3, yy * 4, 255 - xx * 3], -1).clip(0, 255).astype(np.uint8)
    jpeg = tf.io.encode_jpeg(image, quality=100)
    png = tf.io.encode_png(image)
    seed = tf.constant([3, 4], tf.int64)
    a = data.random_resized_crop(jpeg, 32, seed).numpy()
    b = data.random_resized_crop(png, 32, seed).numpy()
    assert a.shape == b.shape == (32, 32, 3)
    assert np.abs(a - b).mean() < 3.0  # same box; JPEG is lossy
    c = data.random_resized_crop(png, 32, seed + 1).numpy()
    assert np.abs(c - b).mean() > 5.0  # another seed, another crop
    assert a.min() >= 0 and a.max() <= 255


def test_training_pipeline_is_seeded_and_reshuffles_every_epoch(folder):
    def first_batches(seed, n=8):
        ds = data.load(folder, "train", image_size=16, batch_size=4, training=True,
                       preprocessing="tf", seed=seed)
        return [x for x, _ in _batches(ds.take(n))]

    a, b, other = first_batches(1), first_batches(1), first_batches(2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, other))
    # 8 batches of 4 = one epoch of 32 images; the next epoch differs (new crops).
    ds = data.load(folder, "train", image_size=16, batch_size=4, training=True,
                   preprocessing="tf", seed=1)
    epochs = [x for x, _ in _batches(ds.take(16))]
    assert not np.array_equal(np.concatenate(epochs[:8]), np.concatenate(epochs[8:]))
    assert ds.element_spec[0].shape.as_list() == [4, 16, 16, 3]  # static: drop_remainder
    assert -1.0 <= epochs[0].min() and epochs[0].max() <= 1.0


def test_mixup_and_randaugment_give_soft_labels(folder):
    ds = data.load(folder, "train", image_size=16, batch_size=8, training=True,
                   preprocessing="torch", seed=0, randaugment=2, mixup=0.8)
    x, y = next(iter(ds))
    assert x.shape == (8, 16, 16, 3) and y.shape == (8, 4)
    np.testing.assert_allclose(y.numpy().sum(-1), 1.0, rtol=1e-5)
    assert ((y.numpy() > 0.01) & (y.numpy() < 0.99)).any()  # mixed
    with pytest.raises(ValueError, match="one_hot"):
        data.load(folder, "train", 16, 8, training=True, mixup=0.2, one_hot=False)


def test_caching_and_input_context_sharding(folder, tmp_path):
    ds = data.load(folder, "train", 16, 4, training=False, preprocessing="tf",
                   cache=str(tmp_path / "cache" / "eval"))
    first = _batches(ds)
    assert os.listdir(tmp_path / "cache")  # the file cache was written
    for (x1, y1), (x2, y2) in zip(first, _batches(ds)):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    # Two input pipelines (workers) of one replica each: per-replica batches
    # of half the global batch, disjoint shards covering the split.
    shards = []
    for i in range(2):
        context = tf.distribute.InputContext(2, i, 2)
        batches = _batches(data.load(folder, "train", 16, 8, training=False,
                                     preprocessing="tf", input_context=context))
        assert max(len(y) for _, y in batches) == 4
        shards.append(np.concatenate([x for x, _ in batches]).reshape(-1, 16 * 16 * 3))
    assert len(shards[0]) + len(shards[1]) == 32
    assert not any((np.abs(shards[0] - row).max(axis=1) == 0).any() for row in shards[1])


def test_strategy_input_is_distributed_per_replica(folder):
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    ds = data.load(folder, "train", 16, 4, training=True, preprocessing="tf", seed=0,
                   strategy=strategy)
    x, y = next(iter(ds))
    assert x.shape == (4, 16, 16, 3) and y.shape == (4,)

    class ThreeReplicas:
        num_replicas_in_sync = 3

    with pytest.raises(ValueError, match="not divisible by the 3 replicas"):
        data.load(folder, "train", 16, 4, strategy=ThreeReplicas())


# --------------------------------------------------------------------- tfds


def test_tfds_pipelines_with_mock_data():
    with tfds.testing.mock_data(num_examples=12):
        info = data.info("cifar10", "train")
        assert info.num_classes == 10
        train = data.load("cifar10", "train", image_size=24, batch_size=4, training=True,
                          preprocessing=data.preprocessing_for("DPN68"), seed=0,
                          one_hot=True)
        x, y = next(iter(train))
        assert x.shape == (4, 24, 24, 3) and y.shape == (4, 10)
        np.testing.assert_array_equal(y.numpy().sum(-1), 1.0)
        # Variable-size JPEGs (imagenette) resized and cropped to one size.
        val = data.load("imagenette/320px", "validation", image_size=32, batch_size=5,
                        training=False, preprocessing="torch")
        batches = _batches(val)
        assert sum(len(y) for _, y in batches) == 12
        assert all(x.shape[1:] == (32, 32, 3) for x, _ in batches)
        assert all(((0 <= y) & (y < 10)).all() for _, y in batches)


def test_synthetic_dataset():
    ds = data.synthetic(image_size=8, batch_size=2, num_classes=5, steps=2,
                        preprocessing="tf")
    batches = _batches(ds.take(4))
    np.testing.assert_array_equal(batches[0][0], batches[2][0])  # repeats
    assert batches[0][0].shape == (2, 8, 8, 3) and batches[0][0].max() <= 1.0
    assert all(((0 <= y) & (y < 5)).all() for _, y in batches)
