import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from zoo.data import images
from zoo.errors import ZooError

# === Synthetic domains and pipelines ===


def test_synthetic_domains_are_deterministic_and_distinct():
    a1, b1 = images.sample_images("synthetic", 32, 4, seed=3)
    a2, b2 = images.sample_images("synthetic", 32, 4, seed=3)
    np.testing.assert_array_equal(a1, a2)
    assert a1.shape == b1.shape == (4, 32, 32, 3) and a1.dtype == np.float32
    assert 0.0 <= a1.min() and a1.max() <= 1.0
    # A: light background, B: dark background (corners), with an object in between.
    assert a1[:, 0, 0].mean() > 0.8 and b1[:, 0, 0].mean() < 0.3
    assert not np.array_equal(a1, images.sample_images("synthetic", 32, 4, seed=4)[0])


def test_unpaired_batches_group_and_shard():
    ds_a, ds_b = images.load_domains("synthetic", "train", 16, seed=0)
    batch = next(iter(images.unpaired_batches(ds_a, ds_b, 4, group=3)))
    assert batch["a"].shape == batch["b"].shape == (3, 4, 16, 16, 3)
    spec = images.unpaired_batches(ds_a, ds_b, 4).element_spec
    assert spec["a"].shape == (4, 16, 16, 3)  # static shapes
    shards = [next(iter(images.load_domains("synthetic", "train", 16, seed=0,
                                            input_context=tf.distribute.InputContext(2, i, 2))[0]))
              for i in range(2)]
    assert not np.array_equal(shards[0].numpy(), shards[1].numpy())


def test_crop_and_flip_are_seeded():
    first = [x.numpy() for x in images.load_domains("synthetic", "train", 12, load_size=16, flip=True, seed=1)[0]
             .take(3)]
    again = [x.numpy() for x in images.load_domains("synthetic", "train", 12, load_size=16, flip=True, seed=1)[0]
             .take(3)]
    assert first[0].shape == (12, 12, 3)
    np.testing.assert_array_equal(np.stack(first), np.stack(again))


def test_bad_requests_are_clear():
    with pytest.raises(ZooError, match="unknown image dataset 'nope'"):
        images.load_domains("nope", "train", 32)
    with pytest.raises(ZooError, match="load_size"):
        images.load_domains("synthetic", "train", 32, load_size=16)
    with pytest.raises(ZooError, match="splits"):
        images.load_domains("synthetic", "validation", 32)
    with pytest.raises(ZooError, match="--data_dir"):
        images.load_domains("cycle_gan/horse2zebra", "train", 32)
    with pytest.raises(ZooError, match="not present in --data_dir"):
        images.load_domains("cycle_gan/horse2zebra", "train", 32, data_dir="/nonexistent/tfds")


# === tensorflow-datasets sources (faked with tfds.testing.mock_data) ===


def test_cycle_gan_tfds_domains():
    with tfds.testing.mock_data(num_examples=5):
        ds_a, ds_b = images.load_domains("cycle_gan/horse2zebra", "train", 24, load_size=28, flip=True,
                                         download=True)
        a = next(iter(ds_a))
        assert a.shape == (24, 24, 3) and 0.0 <= float(tf.reduce_min(a)) and float(tf.reduce_max(a)) <= 1.0
        assert images.domain_sizes("cycle_gan/horse2zebra", "test", download=True) == (5, 5)


def test_celeb_a_attribute_domains():
    with tfds.testing.mock_data(num_examples=12):
        male = [bool(x["attributes"]["Male"]) for x in tfds.load("celeb_a", split="train")]
        young = [bool(x["attributes"]["Young"]) for x in tfds.load("celeb_a", split="train")]
        ds_a, ds_b = images.load_domains("celeb_a", "train", 16, download=True, training=False, style_a="Male")
        assert (len(list(ds_a)), len(list(ds_b))) == (sum(male), len(male) - sum(male))
        ds_a, ds_b = images.load_domains("celeb_a", "train", 16, download=True, training=False, style_a="Male",
                                         constraint="Young", constraint_type=-1)
        assert len(list(ds_a)) == sum(m and not y for m, y in zip(male, young))
        assert next(iter(ds_b)).shape == (16, 16, 3)
        with pytest.raises(ZooError, match="not a CelebA attribute"):
            images.load_domains("celeb_a", "train", 16, download=True, style_a="Male", style_b="Bald_Head")
        with pytest.raises(ZooError, match="--style_a"):
            images.load_domains("celeb_a", "train", 16, download=True)


# === pix2pix folders ===


def _side_by_side(path, edge_dot, photo_value):
    """An 8x16 A|B image: white left half with one black pixel at `edge_dot`, right half of `photo_value`."""
    image = np.full((8, 16, 3), 255, np.uint8)
    image[edge_dot] = 0
    image[:, 8:] = photo_value
    tf.io.write_file(path, tf.io.encode_png(image))


@pytest.fixture()
def pix2pix_dir(tmp_path):
    for name in ("edges2shoes", "edges2handbags"):
        for split in ("train", "val"):
            os.makedirs(tmp_path / name / split)
        for i in range(4):  # file names sort as 0..3
            _side_by_side(str(tmp_path / name / "train" / f"{i}_AB.png"), (4, 4), 40 * (i + 1))
        _side_by_side(str(tmp_path / name / "val" / "0_AB.png"), (2, 2), 7)
    return str(tmp_path)


def test_pix2pix_unpaired_split_as_official_code(pix2pix_dir):
    ds_a, ds_b = images.load_domains("edges2shoes", "train", 8, data_dir=pix2pix_dir, training=False)
    a, b = np.stack(list(ds_a)), np.stack(list(ds_b))
    assert a.shape == b.shape == (2, 8, 8, 3)
    # A: edge halves of the first two files, the dot thickened to 3x3 by the dilation of the inverted image.
    dark = a[0, :, :, 0] < 0.5
    assert dark.sum() == 9 and dark[3:6, 3:6].all()
    # B: photo halves of the last two files (values 120 and 160).
    np.testing.assert_allclose(sorted(b[:, 0, 0, 0] * 255), [120, 160], atol=1)
    val_a, val_b = (np.stack(list(d)) for d in images.load_domains("edges2shoes", "test", 8,
                                                                    data_dir=pix2pix_dir, training=False))
    assert len(val_a) == len(val_b) == 1 and val_a[0, 2, 2, 0] < 0.5 and abs(val_b[0, 0, 0, 0] * 255 - 7) < 1
    hb_a, hb_b = images.load_domains("handbags2shoes", "train", 8, data_dir=pix2pix_dir, training=False)
    assert len(list(hb_a)) == len(list(hb_b)) == 4  # photo halves of every file of both sets
    train_a, _ = images.load_domains("edges2handbags", "train", 8, data_dir=pix2pix_dir, seed=0)
    assert next(iter(train_a)).shape == (8, 8, 3)


def test_pix2pix_missing_folder_names_the_flag(tmp_path):
    with pytest.raises(ZooError, match="--data_dir"):
        images.load_domains("edges2shoes", "train", 64)
    with pytest.raises(ZooError, match="edges2handbags.tar.gz.*--data_dir"):
        images.load_domains("edges2handbags", "train", 64, data_dir=str(tmp_path))


def test_pix2pix_damaged_image_is_named(pix2pix_dir):
    bad = os.path.join(pix2pix_dir, "edges2shoes", "train", "2_AB.png")
    with open(bad, "wb") as f:
        f.write(b"not an image")
    with pytest.raises(ZooError, match=r"2_AB.png is not a valid PNG image"):
        images.load_domains("edges2shoes", "train", 8, data_dir=pix2pix_dir, training=False)


# === Codec and sample sheets ===


def test_png_round_trip_and_jpeg_decode():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 6, 5, 3)).astype(np.float32) / 255.0
    encoded = images.encode_png_batch(pixels)
    assert encoded.shape == (2,) and encoded.dtype == tf.string
    decoded = images.decode_image_batch(encoded, 6, 5).numpy()
    np.testing.assert_allclose(decoded, pixels, atol=1e-6)
    jpeg = tf.io.encode_jpeg(tf.fill([20, 30, 3], tf.constant(200, tf.uint8)))
    resized = images.decode_image_batch(tf.stack([jpeg, encoded[0]]), 8, 8).numpy()
    assert resized.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(resized[0], 200 / 255.0, atol=2 / 255.0)
    gray = images.decode_image_batch(encoded, 6, 5, channels=1)
    assert gray.shape == (2, 6, 5, 1)


def test_grid_and_atomic_png(tmp_path):
    rows = [np.zeros((3, 4, 5, 3)), np.ones((3, 4, 5, 3))]
    sheet = images.make_grid(rows, padding=1)
    assert sheet.shape == (2 * 5 + 1, 3 * 6 + 1, 3) and sheet.dtype == np.uint8
    assert sheet[1, 1, 0] == 0 and sheet[6, 1, 0] == 255
    path = images.write_png(str(tmp_path / "sheets" / "s.png"), sheet)
    assert os.listdir(tmp_path / "sheets") == ["s.png"]
    np.testing.assert_array_equal(tf.io.decode_png(tf.io.read_file(path)).numpy(), sheet)


def test_served_translation_checks_its_inputs(tmp_path):
    """Wrong sizes and empty batches get a message that says what was expected, in the SavedModel itself."""
    from zoo.training.export import export_saved_model

    layer = keras.layers.Rescaling(1.0)
    layer.build((None, 8, 8, 3))
    path = export_saved_model(str(tmp_path), layer, images.translation_endpoints(layer, 8))
    served = tf.saved_model.load(path)
    ok = served.signatures["serving_default"](images=tf.fill([2, 8, 8, 3], 0.5))["images"]
    np.testing.assert_allclose(ok.numpy(), 0.5)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must be \[batch, 8, 8, 3\] floats"):
        served.signatures["serving_default"](images=tf.zeros([1, 9, 8, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="images: send at least one image"):
        served.signatures["serving_default"](images=tf.zeros([0, 8, 8, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="image_bytes: send at least one image"):
        served.signatures["translate_bytes"](image_bytes=tf.zeros([0], tf.string))
