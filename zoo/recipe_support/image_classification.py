"""What recipes/image_classify.py is made of beyond flags: the network check, slim's optimizers and schedules,
the final evaluation's output (table, confusion matrix PNG, example predictions), serving signatures and
RandWire wiring pictures.

    network = build_network("nasnet_a_cifar", num_classes=10, image_size=32, size="cpu")
    optimizer = make_optimizer("nesterov", make_schedule("cosine", 0.025, train_steps=1000))
    results, confusion = final_results(trainer.train())   # the trainer's last evaluation
    export_saved_model(export_dir, model.network, serving_endpoints(model, class_names), assets=...)
"""

import io
import json
import os

import numpy as np
import tensorflow as tf

from zoo.errors import ZooError

OPTIMIZERS = ("momentum", "nesterov", "rmsprop")
SCHEDULES = ("cosine", "exponential")


def parse_overrides(text):
    """`--model_overrides`: a JSON object of create_model arguments, as a dict."""
    try:
        overrides = json.loads(text)
    except ValueError as e:
        raise ZooError(f"--model_overrides is not JSON ({e}); write e.g. '{{\"num_cells\": 6}}'") from None
    if not isinstance(overrides, dict):
        raise ZooError("--model_overrides must be a JSON object of create_model arguments, e.g. '{\"num_cells\": 6}'")
    return overrides


def check_model(name):
    """Raises a one-line `ZooError` unless `name` is a registered image classifier."""
    from zoo.models.nas.image_classifier import image_classifier_names
    from zoo.registry import list_models

    names = image_classifier_names()
    if name not in names:
        what = f"--model={name} is not an image classifier" if name in list_models() else f"unknown --model={name!r}"
        raise ZooError(f"{what}; choose one of: {', '.join(names)}")


# Per family: a network of the real cells small enough to train in minutes on a CPU (`--size=cpu`).
CPU_CONFIGS = {
    "nasnet": dict(penultimate_filters=96, num_blocks=1, stem_filters=16),
    "pnasnet": dict(num_cells=3, filters=12, stem_multiplier=0.5),
    "randwire": dict(channels=8, num_nodes=10),
}
SIZES = ("cpu", "small", "full")


def build_network(name, *, num_classes, image_size, size="full", overrides=None):
    """`zoo.create_model(name, ...)` for a registered image classifier (NASNet-A, PNASNet-5, RandWire).

    `size`: "full" (the preset), "small" (the registry's `small` test config) or "cpu" (`CPU_CONFIGS` of the
    family). The reduced sizes use BatchNorm momentum 0.9, so that the short runs they are for evaluate
    with statistics that keep up with the weights. `overrides` (a dict) come last."""
    from zoo.registry import model_info

    check_model(name)
    info = model_info(name)
    config = {"full": {}, "small": dict(info.small), "cpu": dict(CPU_CONFIGS[info.family.name])}[size]
    if size != "full":
        config["bn_momentum"] = 0.9
    config.update(overrides or {})
    config.update(num_classes=num_classes, image_size=image_size)
    try:
        network = info.create(**config)
    except TypeError as e:  # an override the network does not take
        raise ZooError(f"{name} does not take these arguments ({e}); check --model_overrides") from None
    # The networks pass unknown keyword arguments on to keras.Model, which ignores them: a misspelt override
    # would train the preset silently.
    known = network.get_config()
    unknown = sorted(set(overrides or {}) - set(known))
    if unknown:
        takes = ", ".join(sorted(set(known) - {"name", "trainable", "dtype", "num_classes", "image_size"}))
        raise ZooError(f"{name} has no argument {', '.join(unknown)}; it takes {takes} (check --model_overrides)")
    return network


def make_schedule(kind, learning_rate, *, train_steps, decay_steps=None, decay_rate=0.97):
    """`cosine`: cosine decay to 0 over `train_steps`; `exponential`: slim's staircase decay by `decay_rate`
    every `decay_steps` (NASNet/PNASNet ImageNet: 0.97 every 2.4 epochs)."""
    import keras

    if kind == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=train_steps, alpha=0.0)
    if kind == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(learning_rate, decay_steps=max(1, int(decay_steps)),
                                                           decay_rate=decay_rate, staircase=True)
    raise ZooError(f"unknown --lr_schedule={kind!r}; choose one of: {', '.join(SCHEDULES)}")


def make_optimizer(kind, schedule, momentum=0.9):
    """slim's optimizers: `momentum`, `nesterov` (SGD with momentum 0.9) or `rmsprop` (decay 0.9, momentum 0.9,
    epsilon 1.0, the NASNet/PNASNet ImageNet setting; Keras starts the mean square at 0 where TF1 started
    it at 1, which only changes the first steps)."""
    import keras

    if kind in ("momentum", "nesterov"):
        return keras.optimizers.SGD(schedule, momentum=momentum, nesterov=kind == "nesterov")
    if kind == "rmsprop":
        return keras.optimizers.RMSprop(schedule, rho=0.9, momentum=momentum, epsilon=1.0)
    raise ZooError(f"unknown --optimizer={kind!r}; choose one of: {', '.join(OPTIMIZERS)}")


# === Final evaluation ===


def final_results(logs):
    """The final evaluation out of `Trainer.train()`'s logs (`eval/loss`, `eval/top1`, `eval/top5`,
    `eval/confusion`): ({"loss", "top1", "top5": float}, confusion matrix as an int64 numpy [K, K], rows =
    true class)."""
    missing = [k for k in ("loss", "top1", "top5", "confusion") if f"eval/{k}" not in logs]
    if missing:
        raise ZooError(f"the training logs lack eval/{missing[0]}; train with evaluation data (eval_dataset_fn)")
    results = {k: float(logs[f"eval/{k}"]) for k in ("loss", "top1", "top5")}
    return results, np.round(np.asarray(logs["eval/confusion"])).astype(np.int64)


def results_table(results, confusion, class_names, top_k, dataset):
    """The final evaluation as printable lines: top-1, top-k, loss against chance, then per-class accuracy."""
    k, n = len(class_names), int(confusion.sum())
    lines = [f"final evaluation: {n:,} {dataset} validation images, {k} classes",
             f"  {'metric':<14}{'value':>9}{'chance':>9}",
             f"  {'top-1':<14}{results['top1']:>9.2%}{1 / k:>9.2%}",
             f"  {f'top-{top_k}':<14}{results['top5']:>9.2%}{top_k / k:>9.2%}",
             f"  {'cross-entropy':<14}{results['loss']:>9.4f}{np.log(k):>9.4f}"]
    if k <= 30:
        support = np.maximum(confusion.sum(1), 1)
        width = max(len(c) for c in class_names)
        lines.append("  per class (recall):")
        lines += [f"    {name:<{width}}  {confusion[i, i] / support[i]:6.1%}  of {confusion[i].sum()}"
                  for i, name in enumerate(class_names)]
    return lines


def write_confusion_png(path, confusion, class_names, title):
    """Draws the confusion matrix (rows true, columns predicted; colour = row-normalised share) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(class_names)
    shares = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    side = min(4 + 0.45 * k, 30)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    if k <= 40:
        ax.set_xticks(range(k), class_names, rotation=90)
        ax.set_yticks(range(k), class_names)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())
    return path


def example_predictions(model, eval_dataset, class_names, count=8):
    """Lines "true -> predicted (probability)" for the first `count` evaluation images."""
    lines = []
    for images, labels in eval_dataset:
        probabilities, classes, scores = model.predict_top_k(images, 1)
        for label, cls, score in zip(labels.numpy(), classes.numpy()[:, 0], scores.numpy()[:, 0]):
            mark = "ok " if label == cls else "   "
            lines.append(f"  {mark} {class_names[label]:>20} -> {class_names[cls]} ({score:.2f})")
            if len(lines) == count:
                return lines
    return lines


# === Export ===


def check_images(images, image_size):
    """`images` after an in-graph check that it is a non-empty float [batch, S, S, 3] batch."""
    images = tf.convert_to_tensor(images, tf.float32)
    shape = tf.shape(images)
    checks = [tf.debugging.assert_positive(shape[0], message="images: send at least one image"),
              tf.debugging.assert_equal(tf.reduce_all(tf.equal(shape[1:], [image_size, image_size, 3])), True,
                                        message=f"images must be [batch, {image_size}, {image_size}, 3] floats in "
                                        f"[-1, 1]; resize them, or send encoded images to classify_bytes")]
    with tf.control_dependencies(checks):
        return tf.identity(images)


def serving_endpoints(model, class_names, top_k=5):
    """Endpoints for `zoo.training.export.export_saved_model` of an `ImageClassifier`.

    - `serving_default`: `images` (float32 [batch, S, S, 3] in [-1, 1]) -> `probabilities` [batch, K],
      `classes` (int32 [batch, k], best first) and `scores` [batch, k].
    - `classify_bytes`: `image_bytes` ([batch] JPEG/PNG strings, any size; decoded, centre-cropped above
      64 pixels and resized as in evaluation) -> `class_names` (string [batch, k]), `classes`, `scores`.
    """
    from zoo.data.image_classification import preprocess_encoded

    size, k = model.network.image_size, min(top_k, len(class_names))
    names = list(class_names)

    def serve(images):
        probabilities, classes, scores = model.predict_top_k(check_images(images, size), k)
        return {"probabilities": probabilities, "classes": classes, "scores": scores}

    def serve_bytes(image_bytes):
        nonempty = tf.debugging.assert_positive(tf.shape(image_bytes)[0], message="image_bytes: send at least one")
        with tf.control_dependencies([nonempty]):
            images = preprocess_encoded(image_bytes, size)
        _, classes, scores = model.predict_top_k(images, k)
        return {"class_names": tf.gather(tf.constant(names), classes), "classes": classes, "scores": scores}

    return {
        "serving_default": (serve, [tf.TensorSpec([None, None, None, 3], tf.float32, name="images")]),
        "classify_bytes": (serve_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")]),
    }


def write_class_names(path, class_names):
    """One class name a line (the export's `assets/labels.txt`; line i = class i)."""
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("".join(f"{name}\n" for name in class_names))
    return path


def draw_wiring(network, model_dir):
    """For a RandWire network, writes each stage's wiring PNG to <model_dir>/wiring/<stage>.png; returns the
    paths ([] for other families)."""
    if type(network).__name__ != "RandWire":
        return []
    from zoo.models.nas.graph_plot import draw_stage_graphs

    return draw_stage_graphs(network, os.path.join(model_dir, "wiring", ""))
