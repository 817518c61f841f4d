"""Image-classification pipelines: the embedded shapes, an image folder, tensorflow-datasets (mocked), and
the augmentation's shapes and ranges."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from zoo.data import image_classification as ic
from zoo.errors import ZooError


@pytest.fixture(scope="module")
def embedded():
    return ic.open_dataset("embedded")


def test_embedded_data_is_deterministic_and_balanced():
    images, labels = ic.embedded_images("validation")
    again, labels_again = ic.embedded_images("validation")
    assert images.shape == (500, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, labels_again)
    assert np.bincount(labels).tolist() == [50] * 10
    # Colour alone cannot tell the classes apart: every class's mean colour is close to the overall one.
    means = np.stack([images[labels == k].mean((0, 1, 2)) for k in range(10)])
    assert np.abs(means - images.mean((0, 1, 2))).max() < 25


def test_train_batches_small_images(embedded):
    ds = ic.train_dataset(embedded, 32, 16, seed=3)
    images, labels = next(iter(ds))
    assert images.shape == (16, 32, 32, 3) and images.dtype == tf.float32 and labels.dtype == tf.int32
    assert -1.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
    again, _ = next(iter(ic.train_dataset(embedded, 32, 16, seed=3)))  # seeded: a resumed run sees the same
    np.testing.assert_array_equal(images.numpy(), again.numpy())
    other, _ = next(iter(ic.train_dataset(embedded, 32, 16, seed=4)))
    assert not np.array_equal(images.numpy(), other.numpy())


def test_per_replica_batches(embedded):
    ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=4)
    images, _ = next(iter(ic.train_dataset(embedded, 32, 16, ctx)))
    assert images.shape == (4, 32, 32, 3)
    assert sum(int(y.shape[0]) for _, y in ic.eval_dataset(embedded, 32, 16, ctx)) == 250
    with pytest.raises(ZooError, match="--global_batch_size=18 must be a multiple of the 4 replicas; use e.g. 16"):
        ic.train_dataset(embedded, 32, 18, ctx)


def test_inception_crop_and_central_crop():
    image = tf.constant(np.random.default_rng(0).integers(0, 256, (150, 200, 3)), tf.uint8)
    crops = [ic.preprocess_train(image, 96, tf.constant([0, i])) for i in range(4)]
    assert all(c.shape == (96, 96, 3) for c in crops)
    assert all(-1.0 <= float(tf.reduce_min(c)) and float(tf.reduce_max(c)) <= 1.0 for c in crops)
    assert not np.allclose(crops[0], crops[1])  # different boxes
    evaluated = ic.preprocess_eval(image, 96)
    expected = tf.image.resize(tf.image.central_crop(tf.image.convert_image_dtype(image, tf.float32), 0.875), (96, 96))
    np.testing.assert_allclose(evaluated.numpy(), np.clip(expected.numpy(), 0, 1) * 2 - 1, atol=1e-6)
    small = ic.preprocess_eval(tf.zeros((40, 40, 3), tf.uint8), 32)  # small images are only resized
    assert small.shape == (32, 32, 3) and float(tf.reduce_max(small)) == -1.0


def _write_images(folder, counts, size=(20, 24)):
    for name, count in counts.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = np.full(size + (3,), 40 * i % 256, np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i}.{'png' if i % 2 else 'jpg'}")


def test_image_folder_with_hold_out(tmp_path):
    _write_images(tmp_path, {"zebra": 5, "ant": 4, "cat": 1})
    data = ic.open_dataset(image_dir=str(tmp_path), validation_fraction=0.25)
    assert data.class_names == ("ant", "cat", "zebra")
    assert data.sizes == {"train": 8, "validation": 2}  # one held out of 4 and of 5, none of 1
    again = ic.open_dataset(image_dir=str(tmp_path), validation_fraction=0.25)
    assert [x.numpy() for x, _ in data.records("validation")] == [x.numpy() for x, _ in again.records("validation")]
    images, labels = next(iter(ic.train_dataset(data, 16, 4, seed=0)))
    assert images.shape == (4, 16, 16, 3) and set(labels.numpy()) <= {0, 1, 2}
    labels = [int(y) for _, ys in ic.eval_dataset(data, 16, 2) for y in ys]
    assert sorted(labels) == [0, 2]


def test_image_folder_with_train_and_validation(tmp_path):
    _write_images(tmp_path / "train", {"b": 2, "a": 3})
    _write_images(tmp_path / "validation", {"a": 1})
    data = ic.open_dataset(image_dir=str(tmp_path))
    assert data.class_names == ("a", "b") and data.sizes == {"train": 5, "validation": 1}
    _write_images(tmp_path / "validation", {"c": 1})
    with pytest.raises(ZooError, match="classes that .* lacks"):
        ic.open_dataset(image_dir=str(tmp_path))


def test_image_folder_errors(tmp_path):
    _write_images(tmp_path, {"ant": 2})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZooError) as error:
        ic.open_dataset(image_dir=str(tmp_path))
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "empty") in message and "--image_dir" in message
    (tmp_path / "empty").rmdir()
    (tmp_path / ".ipynb_checkpoints").mkdir()  # hidden folders are not classes
    with pytest.raises(ZooError, match=r"leaves no validation images \(--validation_fraction=0.0\)"):
        ic.open_dataset(image_dir=str(tmp_path), validation_fraction=0.0)
    with pytest.raises(ZooError, match="not a directory"):
        ic.open_dataset(image_dir=str(tmp_path / "missing"))
    with pytest.raises(ZooError, match="unknown --dataset"):
        ic.open_dataset("mnist")


def test_tfds_source_mocked():
    with tfds.testing.mock_data(num_examples=10):
        data = ic.open_dataset("cifar10", download=True)
        assert data.num_classes == 10 and data.native_size == 32
        images, labels = next(iter(ic.train_dataset(data, 32, 4, seed=0)))
        assert images.shape == (4, 32, 32, 3) and labels.dtype == tf.int32
        assert sum(int(y.shape[0]) for _, y in ic.eval_dataset(data, 32, 4)) == 10
        # Records hold the encoded image (decoded after sharding, and not held decoded in the shuffle buffer).
        encoded, label = next(iter(data.records("train", training=True)))
        assert encoded.dtype == tf.string and label.dtype == tf.int64
        image, label = data.decode(encoded, label)
        assert image.dtype == tf.uint8 and image.shape == (32, 32, 3) and label.dtype == tf.int32


def test_tfds_imagenette_mocked_decodes_full_size_images():
    with tfds.testing.mock_data(num_examples=4):
        data = ic.open_dataset("imagenette", download=True)
        assert data.native_size is None and data.num_classes == 10
        encoded, label = next(iter(data.records("validation")))
        assert encoded.dtype == tf.string and data.decode(encoded, label)[0].shape[-1] == 3
        images, labels = next(iter(ic.train_dataset(data, 72, 2, seed=0)))
        assert images.shape == (2, 72, 72, 3) and labels.dtype == tf.int32


def test_tfds_missing_from_data_dir(tmp_path):
    with pytest.raises(ZooError, match="not present in --data_dir"):
        ic.open_dataset("cifar100", data_dir=str(tmp_path))


def _constant_source(count=64):
    """A source whose images are all the same gradient: what differs between examples is the augmentation."""
    image = np.tile((np.arange(32, dtype=np.uint8) * 8)[None, :, None], (32, 1, 3))
    arrays = (np.stack([image] * count), np.arange(count, dtype=np.int32))
    return ic.ClassificationData("constant", tuple(map(str, range(count))),
                                 lambda split, training=False, seed=0: tf.data.Dataset.from_tensor_slices(arrays),
                                 sizes={"train": count})


def test_workers_get_disjoint_shards_and_their_own_augmentation():
    data = _constant_source()
    batches = []
    for pipeline in (0, 1):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2)
        batches.append([(x.numpy(), y.numpy()) for x, y in ic.train_dataset(data, 32, 32, ctx, seed=0).take(2)])
    labels = [np.concatenate([y for _, y in b]) for b in batches]
    assert sorted(np.concatenate(labels).tolist()) == list(range(64))  # one pass: disjoint shards, all seen
    # The same positions in the two workers' streams: different crops/flips, and not paired examples.
    assert not np.array_equal(batches[0][0][0], batches[1][0][0])
    assert not np.array_equal(labels[1], labels[0] + 1)  # shards are the even and odd records
    again = [x.numpy() for x, _ in ic.train_dataset(data, 32, 32, ctx, seed=0).take(1)]
    np.testing.assert_array_equal(again[0], batches[1][0][0])  # still seeded: a resumed worker sees the same


def test_image_folder_training_order_is_shuffled(tmp_path):
    _write_images(tmp_path / "train", {"a": 6, "b": 6, "c": 6}, size=(8, 8))
    _write_images(tmp_path / "val", {"a": 1}, size=(8, 8))  # ImageNet's name for the held-out folder
    data = ic.open_dataset(image_dir=str(tmp_path))
    # shuffle_buffer=1: the order of the records themselves, which are sorted by class on disk
    epochs = [[int(y) for _, ys in ic.train_dataset(data, 8, 6, seed=0, shuffle_buffer=1).take(3) for y in ys]
              for _ in range(2)]
    assert sorted(epochs[0]) == [0] * 6 + [1] * 6 + [2] * 6
    assert epochs[0] != sorted(epochs[0]) and epochs[0] == epochs[1]  # shuffled, and the same each run
    assert [int(y) for _, y in data.records("validation")] == [0]
