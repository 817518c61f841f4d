"""Image pipelines for unpaired translation, and the TF-op image codec used by serving signatures.

Domains (each a pair of `tf.data` datasets of float32 [S, S, 3] images in [0, 1]), via `load_domains`:
- "synthetic": built-in, offline: domain A = warm-coloured discs on a light background, domain B =
  cool-coloured squares on a dark background, object position and size varying independently in each;
  a translator must move shape, colours and background while keeping position and size.
- "cycle_gan/<config>" (e.g. cycle_gan/horse2zebra): tensorflow-datasets splits trainA/trainB, testA/testB.
- "celeb_a": CelebA split by attributes as SKTBrain/DiscoGAN does (style_a vs not style_a, or style_a
  vs style_b, optionally only images with `constraint` == `constraint_type`), whole 218x178 frame resized.
- "edges2shoes", "edges2handbags": pix2pix folders <data_dir>/<name>/{train,val}/*.jpg of side-by-side
  edge|photo images. As the official DiscoGAN code makes them unpaired: the sorted train list is cut in
  two, A = edge halves of the first half (edges thickened by a 3x3 dilation of the inverted image),
  B = photo halves of the second half; the test split uses val/ for both.
- "handbags2shoes": photo halves of all edges2handbags (A) and edges2shoes (B) images.

Codec helpers for export endpoints: `decode_image_batch`, `encode_png_batch`, `translation_endpoints`;
and `make_grid`, `write_png`, `sample_sheet_hook` for sample sheets.
"""

import os
import uuid

import numpy as np
import tensorflow as tf

from zoo.data import tfds_offline
from zoo.data.distribute import shard
from zoo.errors import ZooError

PIX2PIX = ("edges2shoes", "edges2handbags", "handbags2shoes")
SOURCES = ("synthetic", "celeb_a", "cycle_gan/<config>") + PIX2PIX
SYNTHETIC_SIZES = {"train": 1024, "test": 64}

# === Codec (TF ops, usable inside SavedModel signatures) ===


def decode_image_batch(encoded, height, width, channels=3):
    """Decodes a [batch] string tensor of JPEG/PNG/GIF/BMP bytes into float32 [batch, height, width,
    channels] images in [0, 1], each resized (bilinear) to height x width."""
    encoded = tf.convert_to_tensor(encoded, tf.string)

    def decode(data):
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
        image = tf.image.convert_image_dtype(image, tf.float32)
        image = tf.image.resize(image, (height, width), method="bilinear")
        return tf.ensure_shape(tf.clip_by_value(image, 0.0, 1.0), (height, width, channels))

    return tf.map_fn(decode, encoded, fn_output_signature=tf.TensorSpec((height, width, channels), tf.float32))


def _assert_non_empty(batch, name):
    return tf.debugging.assert_positive(tf.shape(batch)[0], message=f"{name}: send at least one image")


def check_image_batch(images, image_size, channels=3):
    """`images` after an in-graph check that it is a non-empty [batch, S, S, channels] batch (TF ops only:
    the message reaches TF Serving's client instead of a convolution or padding error)."""
    images = tf.convert_to_tensor(images)
    shape = tf.shape(images)
    ok = tf.reduce_all(tf.equal(shape[1:], [image_size, image_size, channels]))
    checks = [_assert_non_empty(images, "images"),
              tf.debugging.assert_equal(ok, True, message=f"images must be [batch, {image_size}, {image_size}, "
                                        f"{channels}] floats in [0, 1]; resize them to {image_size}x{image_size} "
                                        "or send encoded images to the translate_bytes signature")]
    with tf.control_dependencies(checks):
        return tf.identity(images)


def encode_png_batch(images):
    """Encodes float [batch, height, width, channels] images in [0, 1] as a [batch] string tensor of PNGs
    (values are clipped and rounded to 8 bits)."""
    images = tf.convert_to_tensor(images)
    pixels = tf.cast(tf.round(tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 1.0) * 255.0), tf.uint8)
    return tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.TensorSpec((), tf.string))


def translation_endpoints(translate, image_size, channels=3):
    """Endpoints for `zoo.training.export.export_saved_model` of an image-to-image function.

    `translate` maps float32 [batch, S, S, channels] images in [0, 1] to images in [0, 1].
    - `serving_default`: `images` (float32 [batch, S, S, channels] in [0, 1]) -> `images`.
    - `translate_bytes`: `image_bytes` ([batch] JPEG/PNG strings, any size; resized to S x S) ->
      `png_bytes` (the translations as PNG; TF Serving's REST API base64-encodes `*_bytes` outputs).
    """

    def serve(images):
        return {"images": tf.cast(translate(check_image_batch(images, image_size, channels)), tf.float32)}

    def serve_bytes(image_bytes):
        with tf.control_dependencies([_assert_non_empty(image_bytes, "image_bytes")]):
            images = decode_image_batch(image_bytes, image_size, image_size, channels)
        return {"png_bytes": encode_png_batch(translate(images))}

    return {
        # Any height and width pass the signature, so a wrong size meets the check's message (TF Serving
        # does not check shapes against the signature) instead of a convolution's shape error.
        "serving_default": (serve, [tf.TensorSpec([None, None, None, channels], tf.float32, name="images")]),
        "translate_bytes": (serve_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")]),
    }


# === Sample sheets ===


def make_grid(rows, padding=2):
    """Lays out rows of images ([n, h, w, c] arrays in [0, 1], equal shapes) as one uint8 [H, W, c] sheet."""
    rows = [np.clip(np.asarray(r, np.float32), 0.0, 1.0) for r in rows]
    n, h, w, c = rows[0].shape
    sheet = np.ones((len(rows) * (h + padding) + padding, n * (w + padding) + padding, c), np.float32)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            top, left = padding + i * (h + padding), padding + j * (w + padding)
            sheet[top:top + h, left:left + w] = image
    return np.round(sheet * 255.0).astype(np.uint8)


def write_png(path, image):
    """Writes a uint8 [H, W, C] image as a PNG, atomically (temporary file, then rename)."""
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(tf.io.encode_png(tf.convert_to_tensor(image, tf.uint8)).numpy())
    tf.io.gfile.rename(tmp, path, overwrite=True)
    return path


def sample_sheet_hook(translate, sample_a, sample_b, directory, every, final_step, summary_writer):
    """A trainer hook `hook(step, logs)` that writes translation sheets of fixed test images.

    Rows: A, A->B, A->B->A, B, B->A, B->A->B, from `translate(a, b)` -> {"ab", "aba", "ba", "bab"}. A sheet
    goes to <directory>/step_NNNNNN.png and to TensorBoard (`summary_writer()` returns the writer, which
    the trainer creates when training starts) at the first call, then once `every` steps have passed, and
    at `final_step`.
    """
    last = []

    def hook(step, logs):
        if last and step - last[-1] < every and step != final_step:
            return
        last.append(step)
        out = {k: np.asarray(v) for k, v in translate(sample_a, sample_b).items()}
        sheet = make_grid([sample_a, out["ab"], out["aba"], sample_b, out["ba"], out["bab"]])
        path = write_png(os.path.join(directory, f"step_{step:06d}.png"), sheet)
        with summary_writer().as_default(step=step):
            tf.summary.image("samples", sheet[None])
        print(f"\nsamples: {path}", flush=True)

    return hook


# === Built-in synthetic domains ===


def _hsv_to_rgb(h, s, v):
    i = np.floor(h * 6.0).astype(int) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = np.zeros(h.shape + (3,), np.float32)
    for k, (r, g, b) in enumerate(choices):
        mask = i == k
        rgb[mask] = np.stack([r[mask], g[mask], b[mask]], -1)
    return rgb


def synthetic_images(domain, count, image_size, seed):
    """`count` uint8 [count, S, S, 3] images of domain "a" (discs) or "b" (squares), from `seed`."""
    rng = np.random.default_rng([seed, 0 if domain == "a" else 1])
    centers = rng.uniform(0.3, 0.7, (count, 2)).astype(np.float32)
    sizes = rng.uniform(0.12, 0.24, count).astype(np.float32)
    hue_range = (0.0, 0.15) if domain == "a" else (0.5, 0.7)
    colors = _hsv_to_rgb(rng.uniform(*hue_range, count), np.full(count, 0.85), np.full(count, 0.95))
    background = np.array([0.93, 0.91, 0.86] if domain == "a" else [0.08, 0.10, 0.22], np.float32)
    scale = 2  # supersampling for smooth edges
    grid = (np.arange(image_size * scale, dtype=np.float32) + 0.5) / (image_size * scale)
    ys, xs = grid[None, :, None], grid[None, None, :]
    dy, dx = ys - centers[:, 1, None, None], xs - centers[:, 0, None, None]
    r = sizes[:, None, None]
    inside = (dx ** 2 + dy ** 2 <= r ** 2) if domain == "a" else ((np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85))
    inside = inside.reshape(count, image_size, scale, image_size, scale).mean((2, 4))[..., None]
    images = inside * colors[:, None, None, :] + (1.0 - inside) * background
    return np.round(images * 255.0).astype(np.uint8)


def _synthetic(split, image_size, seed):
    if split not in SYNTHETIC_SIZES:
        raise ZooError(f"the synthetic domains have splits {', '.join(SYNTHETIC_SIZES)}, not {split!r}")
    split_seed = seed * 2 + (0 if split == "train" else 1)
    return [
        tf.data.Dataset.from_tensor_slices(synthetic_images(d, SYNTHETIC_SIZES[split], image_size, split_seed))
        .map(lambda x: tf.cast(x, tf.float32) / 255.0)
        for d in ("a", "b")
    ], SYNTHETIC_SIZES[split]


# === Datasets from --data_dir ===


def _resize(image, size, method="bilinear"):
    image = tf.image.convert_image_dtype(image, tf.float32)
    return tf.clip_by_value(tf.image.resize(image, (size, size), method=method), 0.0, 1.0)


def _tfds_kwargs(training, seed):
    import tensorflow_datasets as tfds

    return {"shuffle_files": training, "read_config": tfds.ReadConfig(shuffle_seed=seed)}


def _cycle_gan(name, split, size, data_dir, download, read):
    if split not in ("train", "test"):
        raise ZooError(f"{name} has splits train and test (trainA/B, testA/B), not {split!r}")
    domains = [
        tfds_offline.load(name, f"{split}{d}", data_dir=data_dir, download=download, **read)
        .map(lambda x: _resize(x["image"], size, "bicubic"), num_parallel_calls=tf.data.AUTOTUNE)
        for d in ("A", "B")
    ]
    return domains


def _celeb_a(split, size, data_dir, download, read, style_a, style_b, constraint, constraint_type):
    if not style_a:
        raise ZooError("celeb_a needs --style_a (a CelebA attribute such as Male or Blond_Hair)")
    if constraint and int(constraint_type) not in (1, -1):
        raise ZooError(f"--constraint_type must be 1 or -1, got {constraint_type!r}")
    ds = tfds_offline.load("celeb_a", split, data_dir=data_dir, download=download, **read)
    names = set(ds.element_spec["attributes"])
    for flag, attr in (("style_a", style_a), ("style_b", style_b), ("constraint", constraint)):
        if attr and attr not in names:
            raise ZooError(f"--{flag}={attr!r} is not a CelebA attribute; choose one of: {', '.join(sorted(names))}")
    if constraint:
        wanted = int(constraint_type) == 1
        ds = ds.filter(lambda x: tf.equal(x["attributes"][constraint], wanted))
    in_a = ds.filter(lambda x: x["attributes"][style_a])
    in_b = ds.filter(lambda x: x["attributes"][style_b]) if style_b else ds.filter(
        lambda x: tf.logical_not(x["attributes"][style_a]))
    return [d.map(lambda x: _resize(x["image"], size), num_parallel_calls=tf.data.AUTOTUNE) for d in (in_a, in_b)]


def _pix2pix_files(name, split, data_dir):
    if not data_dir:
        raise ZooError(f"{name} reads the pix2pix folder <data_dir>/{name}/ (train/, val/); pass --data_dir")
    folder = os.path.join(data_dir, name, "val" if split == "test" else "train")
    files = sorted(tf.io.gfile.glob(os.path.join(folder, "*.jpg")) + tf.io.gfile.glob(os.path.join(folder, "*.png")))
    if not files:
        raise ZooError(
            f"no pix2pix images in {folder}; unpack http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{name}.tar.gz "
            f"into --data_dir (giving {os.path.join(data_dir, name)}/train and /val) or point --data_dir at it")
    for path in files:  # a damaged file would otherwise fail deep inside tf.data, without its name
        with tf.io.gfile.GFile(path, "rb") as f:
            head = f.read(8)
        if not head.startswith(_IMAGE_MAGIC[path.rsplit(".", 1)[-1].lower()]):
            raise ZooError(f"{path} is not a valid {path.rsplit('.', 1)[-1].upper()} image (damaged or mislabelled); "
                           "replace or remove it")
    return files


_IMAGE_MAGIC = {"jpg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}


def _pix2pix_half(path, half, size):
    """Reads an A|B side-by-side image; `half` "edges" (left, dilated) or "photo" (right)."""
    image = tf.image.convert_image_dtype(tf.io.decode_image(tf.io.read_file(path), 3, expand_animations=False),
                                         tf.float32)
    width = tf.shape(image)[1] // 2
    if half == "edges":
        image = image[:, :width]
        # 255 - dilate(255 - x, 3x3) of the official code: a 3x3 minimum filter (thickens dark edges).
        image = -tf.nn.max_pool2d(-image[None], 3, 1, "SAME")[0]
    else:
        image = image[:, width:]
    return tf.clip_by_value(tf.image.resize(image, (size, size), method="bilinear"), 0.0, 1.0)


def _pix2pix(name, split, size, data_dir, training, seed, input_context):
    if split not in ("train", "test"):
        raise ZooError(f"{name} has splits train (train/) and test (val/), not {split!r}")
    if name == "handbags2shoes":
        lists = [_pix2pix_files(n, split, data_dir) for n in ("edges2handbags", "edges2shoes")]
        halves = ("photo", "photo")
    else:
        files = _pix2pix_files(name, split, data_dir)
        lists = [files, files] if split == "test" else [files[:len(files) // 2], files[len(files) // 2:]]
        halves = ("edges", "photo")
    domains = []
    for k, (files, half) in enumerate(zip(lists, halves)):
        ds = tf.data.Dataset.from_tensor_slices(files)
        if training:  # shuffle the file names, not the decoded images
            ds = shard(ds, input_context).shuffle(len(files), seed=seed * 2 + k, reshuffle_each_iteration=True)
            ds = ds.repeat()
        domains.append(ds.map(lambda p, h=half: _pix2pix_half(p, h, size), num_parallel_calls=tf.data.AUTOTUNE))
    return domains


# === Pipelines ===


def load_domains(source, split, image_size, *, data_dir=None, download=False, load_size=None, flip=False,
                 training=True, seed=0, input_context=None, shuffle_buffer=2048, style_a=None, style_b=None,
                 constraint=None, constraint_type=1):
    """The two domains of `source` as datasets of float32 [image_size, image_size, 3] images in [0, 1].

    Args:
        source: "synthetic", "celeb_a", "cycle_gan/<config>", "edges2shoes", "edges2handbags" or
            "handbags2shoes".
        split: "train" or "test".
        image_size: side of the images produced.
        data_dir, download: where tensorflow-datasets data and pix2pix folders live (`--data_dir`).
        load_size: resize to this side first, then crop `image_size` (randomly when training, centre
            otherwise), CycleGAN's `resize_and_crop` (286 -> 256); None resizes straight to image_size.
        flip: random horizontal flips when training (CycleGAN).
        training: shard by `input_context`, shuffle (seeded, reshuffled each pass) and repeat; else one
            ordered pass.
        seed: seed of the shuffles, crops and flips (and of the synthetic images).
        shuffle_buffer: shuffle buffer of the tensorflow-datasets sources (the synthetic sets are shuffled
            whole, pix2pix by file name).
        style_a, style_b, constraint, constraint_type: celeb_a's domains (see the module docstring).
    """
    if not isinstance(image_size, int) or image_size < 1:
        raise ZooError(f"image_size must be a positive integer, got {image_size!r}")
    if load_size is not None and load_size < image_size:
        raise ZooError(f"--load_size={load_size} must be at least --image_size={image_size}")
    size = load_size or image_size
    buffer = shuffle_buffer
    if source == "synthetic":
        (ds_a, ds_b), buffer = _synthetic(split, size, seed)
    elif source == "celeb_a":
        ds_a, ds_b = _celeb_a(split, size, data_dir, download, _tfds_kwargs(training, seed), style_a, style_b,
                              constraint, constraint_type)
    elif source.startswith("cycle_gan/"):
        ds_a, ds_b = _cycle_gan(source, split, size, data_dir, download, _tfds_kwargs(training, seed))
    elif source in PIX2PIX:  # sharded, shuffled (by file name) and repeated already
        ds_a, ds_b = _pix2pix(source, split, size, data_dir, training, seed, input_context)
    else:
        raise ZooError(f"unknown image dataset {source!r}; choose one of: {', '.join(SOURCES)}")

    domains = []
    for k, ds in enumerate((ds_a, ds_b)):
        if training and source not in PIX2PIX:
            ds = shard(ds, input_context).shuffle(buffer, seed=seed * 2 + k, reshuffle_each_iteration=True).repeat()
        ds = ds.enumerate().map(
            lambda i, x, k=k: _crop_flip(x, image_size, training, flip, tf.stack([seed * 2 + k, tf.cast(i, tf.int32)])),
            num_parallel_calls=tf.data.AUTOTUNE)
        domains.append(ds)
    return tuple(domains)


def _crop_flip(image, size, training, flip, seed):
    if image.shape[0] != size:
        if training:
            image = tf.image.stateless_random_crop(image, (size, size, 3), seed)
        else:
            offset = (tf.shape(image)[0] - size) // 2
            image = image[offset:offset + size, offset:offset + size]
    if training and flip:
        image = tf.image.stateless_random_flip_left_right(image, seed + 1)
    return tf.ensure_shape(image, (size, size, 3))


def unpaired_batches(ds_a, ds_b, batch_size, group=None):
    """Zips two domain datasets into {"a", "b"} batches of `batch_size` (static shapes); with `group`, stacks
    `group` consecutive batches into [group, batch, ...] (DiscoGAN's one-batch-per-iteration steps)."""
    ds = tf.data.Dataset.zip(ds_a, ds_b).batch(batch_size, drop_remainder=True)
    if group:
        ds = ds.batch(group, drop_remainder=True)
    return ds.map(lambda a, b: {"a": a, "b": b}).prefetch(tf.data.AUTOTUNE)


def domain_sizes(source, split, **kwargs):
    """(|A|, |B|) of a split (for epoch lengths); `kwargs` as for `load_domains`."""
    kwargs.pop("image_size", None)
    ds_a, ds_b = load_domains(source, split, 1, training=False, **{**kwargs, "load_size": None})
    sizes = tuple(int(ds.cardinality()) for ds in (ds_a, ds_b))
    if min(sizes) < 0:
        raise ZooError(f"the size of {source} {split} is not known up front (it is filtered); pass --steps_per_epoch")
    return sizes


def sample_images(source, image_size, count, **kwargs):
    """The first `count` test images of each domain as numpy arrays (fixed inputs for sample sheets)."""
    ds_a, ds_b = load_domains(source, "test", image_size, training=False, **kwargs)
    a = [x.numpy() for x in ds_a.take(count)]
    b = [x.numpy() for x in ds_b.take(count)]
    if len(a) < count or len(b) < count:
        raise ZooError(f"{source} has fewer than {count} test images per domain; lower --num_samples")
    return np.stack(a), np.stack(b)
