"""Image-classification input pipelines: (image float32 [S, S, 3] in [-1, 1], label int32) examples.

Sources (`open_dataset`):
- "embedded" (the default, offline): 10 classes of procedurally drawn shapes and patterns (disc, square,
  triangle, ring, cross, horizontal/vertical/diagonal stripes, checkerboard, dots) at 32x32, with random
  foreground and background colours, positions, sizes, phases and pixel noise, so colour alone cannot
  solve it; 2,000 training and 500 validation images, generated deterministically in about a second.
- tensorflow-datasets in `--data_dir`: "cifar10", "cifar100" (train/test), "imagenet2012", "imagenette"
  (train/validation), through `zoo.data.tfds_offline.load`, which fails at once offline.
- "folder": `<image_dir>/<class>/*.{jpg,jpeg,png}`, class names sorted (hidden folders skipped);
  `<image_dir>/train/<class>/` and `<image_dir>/validation/<class>/` (or `val/`) when present, else a
  deterministic hold-out of each class; no validation image at all is an error.

Augmentation (`preprocess_train`) follows the image size: up to 64 pixels the CIFAR recipe (resize to S if
needed, zero-pad 4, random S x S crop, random flip); above, the Inception crop (a random box of 8%-100% of
the area and aspect 3/4-4/3, `tf.image.stateless_sample_distorted_bounding_box`, resized to S, random
flip). Evaluation (`preprocess_eval`): resize to S up to 64 pixels; above, a central crop of 87.5% of the
side, then resize (slim's Inception evaluation). Random choices are stateless, seeded by `seed`, the input
pipeline (worker) and the example's position in its stream, so a resumed run sees the same batches. Training
reads the records still encoded (tfds, folders) and shuffles folder lists in full each pass.

Example:
    data = open_dataset("embedded")
    ds = train_dataset(data, image_size=32, global_batch_size=64, seed=0)   # repeating, per-replica batches
    images, labels = next(iter(ds))          # [64, 32, 32, 3] in [-1, 1], [64] int32
    data.class_names[:3]                     # ('disc', 'square', 'triangle')
"""

import dataclasses
import os
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from zoo.data import tfds_offline
from zoo.data.distribute import per_replica_batch_size, pipeline_id, shard, stream_seed
from zoo.errors import ZooError

TFDS = {"cifar10": ("train", "test"), "cifar100": ("train", "test"), "imagenet2012": ("train", "validation"),
        "imagenette": ("train", "validation")}
SOURCES = ("embedded", "folder") + tuple(TFDS)
SMALL_IMAGES = 64  # up to this side: CIFAR-style augmentation; above: the Inception crop
EXTENSIONS = (".jpg", ".jpeg", ".png")

EMBEDDED_CLASSES = ("disc", "square", "triangle", "ring", "cross", "horizontal_stripes", "vertical_stripes",
                    "diagonal_stripes", "checkerboard", "dots")
EMBEDDED_SIZES = {"train": 2000, "validation": 500}
EMBEDDED_SIDE = 32


@dataclasses.dataclass(frozen=True)
class ClassificationData:
    """A source of labelled images: `records(split, training, seed)` gives an ordered finite dataset of
    records that `decode(record)` turns into (image uint8 [h, w, 3], label int32)."""

    name: str
    class_names: tuple
    records: Callable
    decode: Callable = lambda *record: record
    sizes: dict = dataclasses.field(default_factory=dict)  # split -> examples, where known
    native_size: Optional[int] = None  # the side of every image, when they all have one

    @property
    def num_classes(self):
        return len(self.class_names)


# === Sources ===


def open_dataset(dataset="embedded", *, image_dir=None, data_dir=None, download=False, validation_fraction=0.1):
    """The `ClassificationData` of a source (see the module docstring); checks that it is there, with a
    one-line `ZooError` saying which flag to fix when it is not."""
    if image_dir:
        return _folder(image_dir, validation_fraction)
    if dataset == "embedded":
        return _embedded()
    if dataset in TFDS:
        return _tfds(dataset, data_dir, download)
    if dataset == "folder":
        raise ZooError("--dataset=folder reads --image_dir/<class>/*.jpg; pass --image_dir")
    raise ZooError(f"unknown --dataset={dataset!r}; choose one of: {', '.join(SOURCES)}")


def _embedded():
    arrays = {split: embedded_images(split) for split in EMBEDDED_SIZES}

    def records(split, training=False, seed=0):
        return tf.data.Dataset.from_tensor_slices(arrays[split])

    return ClassificationData("embedded", EMBEDDED_CLASSES, records, sizes=dict(EMBEDDED_SIZES),
                              native_size=EMBEDDED_SIDE)


def embedded_images(split="train", seed=0):
    """(uint8 [N, 32, 32, 3] images, int32 [N] labels) of the embedded data set, deterministic."""
    count = EMBEDDED_SIZES[split]
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    labels = rng.permutation(np.arange(count) % len(EMBEDDED_CLASSES)).astype(np.int32)
    scale = 2  # supersampling for smooth edges
    side = EMBEDDED_SIDE * scale
    grid = (np.arange(side, dtype=np.float32) + 0.5) / side
    y, x = grid[None, :, None], grid[None, None, :]
    cx, cy = (rng.uniform(0.3, 0.7, (count, 1, 1)).astype(np.float32) for _ in range(2))
    r = rng.uniform(0.16, 0.3, (count, 1, 1)).astype(np.float32)
    period = rng.uniform(0.14, 0.3, (count, 1, 1)).astype(np.float32)
    phase = rng.uniform(0, 1, (count, 1, 1)).astype(np.float32)
    sign = rng.choice([-1.0, 1.0], (count, 1, 1)).astype(np.float32)
    mask = np.zeros((count, side, side), np.float32)
    for k in range(len(EMBEDDED_CLASSES)):
        pick = labels == k
        mask[pick] = _draw(k, x, y, cx[pick], cy[pick], r[pick], period[pick], phase[pick], sign[pick])
    mask = mask.reshape(count, EMBEDDED_SIDE, scale, EMBEDDED_SIDE, scale).mean((2, 4))[..., None]
    background = rng.uniform(0, 1, (count, 1, 1, 3)).astype(np.float32)
    foreground = rng.uniform(0, 1, (count, 1, 1, 3)).astype(np.float32)
    close = np.abs(foreground - background).mean(-1, keepdims=True) < 0.3  # keep the shape visible
    foreground = np.where(close, 1.0 - background, foreground)
    images = mask * foreground + (1.0 - mask) * background
    images += rng.normal(0, 0.06, images.shape).astype(np.float32)
    return np.round(np.clip(images, 0, 1) * 255).astype(np.uint8), labels


def _draw(k, x, y, cx, cy, r, period, phase, sign):
    """Class `k`'s shape (float mask [n, side, side]) for n images' parameters ([n, 1, 1] each)."""
    dx, dy = x - cx, y - cy
    d = np.sqrt(dx ** 2 + dy ** 2)
    box = np.maximum(np.abs(dx), np.abs(dy))

    def wave(t):
        return np.sin(2 * np.pi * (t / period + phase)) > 0

    def cells(t):
        return ((t + phase * period) / period) % 1 - 0.5

    shape = [
        lambda: d <= r,
        lambda: box <= r * 0.8,
        lambda: (dy >= -r) & (dy <= r * 0.8) & (np.abs(dx) <= (dy + r) * 0.6),
        lambda: (d <= r) & (d >= r * 0.55),
        lambda: ((np.abs(dx) <= r * 0.3) | (np.abs(dy) <= r * 0.3)) & (box <= r),
        lambda: wave(y + 0 * x),
        lambda: wave(x + 0 * y),
        lambda: wave((x + sign * y) / np.sqrt(2)),
        lambda: wave(x + 0 * y) ^ wave(y + 0 * x),
        lambda: cells(x) ** 2 + cells(y) ** 2 < 0.09,
    ][k]()
    return np.broadcast_to(shape, (len(cx), x.shape[-1], x.shape[-1]))


def _tfds(name, data_dir, download):
    import tensorflow_datasets as tfds

    for split in TFDS[name]:  # fails at once, naming --data_dir / --download, when a split is missing
        tfds_offline.load(name, split, data_dir=data_dir, download=download)
    info = tfds.builder(name, data_dir=data_dir).info
    class_names = tuple(info.features["label"].names)
    sizes = {}
    for ours, theirs in zip(("train", "validation"), TFDS[name]):
        try:
            sizes[ours] = int(info.splits[theirs].num_examples) or None
        except (KeyError, ValueError, TypeError):
            sizes[ours] = None

    native = 32 if name.startswith("cifar") else None

    def records(split, training=False, seed=0):
        # Records keep the encoded image: a worker decodes only its own shard, and the training shuffle
        # buffer holds JPEG/PNG bytes, not decoded ImageNet-size images (gigabytes at 10,000 of them).
        theirs = TFDS[name][0 if split == "train" else 1]
        return tfds_offline.load(name, theirs, data_dir=data_dir, download=download, as_supervised=True,
                                 shuffle_files=training, decoders={"image": tfds.decode.SkipDecoding()},
                                 read_config=tfds.ReadConfig(shuffle_seed=seed))

    def decode(encoded, label):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image = tf.ensure_shape(image, (native, native, 3))
        return image, tf.cast(label, tf.int32)

    return ClassificationData(name, class_names, records, decode, sizes, native)


def _class_files(folder, image_dir):
    """{class name: sorted image paths} of the class folders in `folder`."""
    classes = sorted(n for n in os.listdir(folder)
                     if os.path.isdir(os.path.join(folder, n)) and not n.startswith("."))  # no .ipynb_checkpoints
    if not classes:
        raise ZooError(f"{folder} has no class folders; lay images out as --image_dir/<class>/*.jpg "
                       f"(--image_dir={image_dir})")
    files = {}
    for name in classes:
        path = os.path.join(folder, name)
        files[name] = sorted(os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(EXTENSIONS))
        if not files[name]:
            raise ZooError(f"class folder {path} holds no .jpg/.jpeg/.png images; add images or remove the folder "
                           f"from --image_dir={image_dir}")
    return files


def _folder(image_dir, validation_fraction):
    if not os.path.isdir(image_dir):
        raise ZooError(f"--image_dir={image_dir} is not a directory; point it at <dir>/<class>/*.jpg")
    train_dir = os.path.join(image_dir, "train")
    val_dir = next((os.path.join(image_dir, n) for n in ("validation", "val")
                    if os.path.isdir(os.path.join(image_dir, n))), os.path.join(image_dir, "validation"))
    if os.path.isdir(train_dir):
        train = _class_files(train_dir, image_dir)
        class_names = tuple(train)
        if os.path.isdir(val_dir):
            validation = _class_files(val_dir, image_dir)
            unknown = sorted(set(validation) - set(train))
            if unknown:
                raise ZooError(f"{val_dir} has classes that {train_dir} lacks ({', '.join(unknown[:5])}); the "
                               f"two must name the same classes (--image_dir={image_dir})")
        else:
            train, validation = _hold_out(train, validation_fraction)
    else:
        files = _class_files(image_dir, image_dir)
        class_names = tuple(files)
        train, validation = _hold_out(files, validation_fraction)
    if not sum(len(v) for v in validation.values()):
        raise ZooError(f"--image_dir={image_dir} leaves no validation images (--validation_fraction="
                       f"{validation_fraction}); raise --validation_fraction, add images, or add a validation/ folder")
    index = {name: i for i, name in enumerate(class_names)}
    lists = {}
    for split, files in (("train", train), ("validation", validation)):
        pairs = [(path, index[name]) for name in sorted(files) for path in files[name]]
        lists[split] = ([p for p, _ in pairs], np.array([k for _, k in pairs], np.int32))

    def records(split, training=False, seed=0):
        paths, labels = lists[split]
        ds = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string), labels))
        if training and paths:  # the lists are sorted by class: shuffle all paths (cheap), anew each pass
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        return ds

    def decode(path, label):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return tf.ensure_shape(image, (None, None, 3)), label

    return ClassificationData("folder", class_names, records, decode,
                              {split: len(lists[split][0]) for split in lists})


def _hold_out(files, fraction):
    """Splits each class's files into (train, validation): a seeded permutation, `fraction` held out (at
    least one image when the class has two or more, never all of them)."""
    train, validation = {}, {}
    for name, paths in files.items():
        order = np.random.default_rng(0).permutation(len(paths))
        n = min(len(paths) - 1, max(1 if fraction > 0 else 0, int(round(fraction * len(paths)))))
        validation[name] = sorted(paths[i] for i in order[:n])
        train[name] = sorted(paths[i] for i in order[n:])
    return train, validation


# === Preprocessing (TF ops; also used inside serving signatures) ===


def _to_float(image):
    return tf.image.convert_image_dtype(image, tf.float32)  # uint8 -> [0, 1]


def _resize(image, size):
    return tf.clip_by_value(tf.image.resize(image, (size, size), method="bilinear"), 0.0, 1.0)


def preprocess_train(image, image_size, seed):
    """Training augmentation of one uint8 [h, w, 3] image (see the module docstring) -> float32
    [S, S, 3] in [-1, 1]; `seed` is an int32 [2] tensor."""
    image = _to_float(image)
    seed = tf.convert_to_tensor(seed, tf.int32)
    if image_size <= SMALL_IMAGES:
        if image.shape[0] != image_size or image.shape[1] != image_size:
            image = _resize(image, image_size)
        image = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
        image = tf.image.stateless_random_crop(image, (image_size, image_size, 3), seed)
    else:
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(image), tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed, min_object_covered=0.1,
            aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0), max_attempts=10,
            use_image_if_no_bounding_boxes=True)
        image = _resize(tf.slice(image, begin, size), image_size)
    image = tf.image.stateless_random_flip_left_right(image, seed + 1)
    return tf.ensure_shape(image * 2.0 - 1.0, (image_size, image_size, 3))


def preprocess_eval(image, image_size):
    """Evaluation preprocessing of one uint8 (or [0, 1] float) [h, w, 3] image -> float32 [S, S, 3] in
    [-1, 1]: resize up to 64 pixels; above, central crop 0.875 then resize."""
    image = _to_float(image)
    if image_size > SMALL_IMAGES:
        image = tf.image.central_crop(image, 0.875)
    if image_size > SMALL_IMAGES or image.shape[0] != image_size or image.shape[1] != image_size:
        image = _resize(image, image_size)
    return tf.ensure_shape(image * 2.0 - 1.0, (image_size, image_size, 3))


def preprocess_encoded(encoded, image_size):
    """A [batch] string tensor of JPEG/PNG bytes -> float32 [batch, S, S, 3] in [-1, 1], each image
    decoded and given `preprocess_eval` (serving's bytes signature)."""
    def one(data):
        return preprocess_eval(tf.io.decode_image(data, channels=3, expand_animations=False), image_size)

    return tf.map_fn(one, tf.convert_to_tensor(encoded, tf.string),
                     fn_output_signature=tf.TensorSpec((image_size, image_size, 3), tf.float32))


# === Pipelines ===


def train_dataset(data, image_size, global_batch_size, input_context=None, seed=0, shuffle_buffer=10_000):
    """Repeating, shuffled (seeded, reshuffled each pass), augmented per-replica batches of `data`'s train
    split: (float32 [b, S, S, 3] in [-1, 1], int32 [b]), b = this replica's share of the global batch."""
    # Every pipeline reads the records in the same order (so that the shards are disjoint), but shuffles its
    # shard and draws its augmentation with a seed of its own: otherwise the examples at the same position
    # in every worker's stream would get the same crop and flip, and the same shuffle.
    ds = shard(data.records("train", training=True, seed=seed), input_context)
    seed_of_stream = stream_seed(seed, pipeline_id(input_context))
    buffer = data.sizes.get("train") or shuffle_buffer
    ds = ds.shuffle(min(buffer, shuffle_buffer), seed=seed_of_stream, reshuffle_each_iteration=True).repeat()

    def prepare(index, record):
        image, label = data.decode(*record)
        step_seed = tf.stack([tf.constant(seed_of_stream, tf.int32), tf.cast(index % (2 ** 31 - 1), tf.int32)])
        return preprocess_train(image, image_size, step_seed), label

    ds = ds.enumerate().map(lambda i, record: prepare(i, record), num_parallel_calls=tf.data.AUTOTUNE)
    batch = per_replica_batch_size(global_batch_size, input_context)
    return ds.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def eval_dataset(data, image_size, global_batch_size, input_context=None, split="validation"):
    """One ordered pass over `data`'s validation split in per-replica batches (the last one may be short),
    preprocessed by `preprocess_eval`."""
    ds = shard(data.records(split), input_context)

    def prepare(*record):
        image, label = data.decode(*record)
        return preprocess_eval(image, image_size), label

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(per_replica_batch_size(global_batch_size, input_context)).prefetch(tf.data.AUTOTUNE)
