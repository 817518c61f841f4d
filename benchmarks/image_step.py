"""Image-classifier throughput: zoo's NASNet-A Mobile against keras.applications' NASNetMobile in training,
and the exported SavedModels' inference speed for every family, in one run.

    python benchmarks/image_step.py                                  # 224 px, batch 8, XLA off and on
    python benchmarks/image_step.py --image_size=96 --batch=16 --repeats=7 --output=/tmp/image_step.json
    python benchmarks/image_step.py --xla=off --serving=nasnet_a_mobile

Training: both networks with 1000 classes, logits out, the same batch, sparse cross-entropy and SGD with
momentum 0.9, each step a `tf.function` (XLA-compiled with --xla=on) written once for both. Ours also runs
ScheduledDropPath at --drop_path_rate (at full training progress), which keras.applications' network does not
have: the ratio is keras' step time over ours, so >= 1.00x means ours is as fast or faster despite it.

Serving: each --serving preset, full size at --image_size, wrapped in the recipe's `ImageClassifier` and
exported with the recipe's endpoints (`zoo.recipe_support.image_classification.serving_endpoints`); the
SavedModel is loaded back with `tf.saved_model.load` and its `serving_default` timed (images/s), next to
keras.applications' NASNetMobile exported by Keras' own `Model.export` for a reference point.

Timing: after --warmup untimed steps (tracing, compilation), --repeats rounds, each timing --steps calls
of every contender in turn (rotating the order, so load on the machine hits all alike); medians reported.
"""

import json
import os
import statistics
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402
from timing import interleaved_rounds  # noqa: E402  (benchmarks/timing.py)

flags.DEFINE_integer("image_size", 224, "Input side (NASNetMobile's default is 224).")
flags.DEFINE_integer("batch", 8, "Images per step.")
flags.DEFINE_list("xla", ["off", "on"], "XLA settings to time for training.")
flags.DEFINE_float("drop_path_rate", 0.3, "ScheduledDropPath rate of ours while timing training.")
flags.DEFINE_list("serving", ["nasnet_a_mobile", "pnasnet_5_mobile", "randwire_small"],
                  "Presets whose exported SavedModel is timed (empty: skip serving).")
flags.DEFINE_integer("steps", 2, "Timed calls per contender per round.")
flags.DEFINE_integer("repeats", 3, "Timing rounds; medians are reported.")
flags.DEFINE_integer("warmup", 1, "Untimed calls per contender first (tracing, compilation).")
flags.DEFINE_string("output", None, "Also write the results to this JSON file.")
FLAGS = flags.FLAGS


def rounds(fns):
    """{name: [seconds per call, one per round]} over FLAGS.repeats interleaved rounds."""
    return interleaved_rounds(fns, FLAGS.repeats, FLAGS.steps, FLAGS.warmup)


def train_step_fn(network, images, labels, xla, ours):
    import keras
    import tensorflow as tf

    from zoo.layers.drop_path import drop_path_progress

    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    optimizer.build(network.trainable_variables)

    @tf.function(jit_compile=xla)
    def step():
        with tf.GradientTape() as tape:
            if ours:
                with drop_path_progress(1.0):
                    logits = network(images, training=True)["logits"]
            else:
                logits = network(images, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        variables = network.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return lambda: float(step())


def time_training(xla):
    import keras
    import numpy as np
    import tensorflow as tf

    import zoo

    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(-1, 1, (FLAGS.batch, FLAGS.image_size, FLAGS.image_size, 3)).astype("float32"))
    labels = tf.constant(rng.integers(0, 1000, FLAGS.batch).astype("int32"))
    keras.utils.set_random_seed(0)
    ours = zoo.create_model("nasnet_a_mobile", image_size=FLAGS.image_size, drop_path_rate=FLAGS.drop_path_rate)
    theirs = keras.applications.NASNetMobile(input_shape=(FLAGS.image_size, FLAGS.image_size, 3), weights=None,
                                             classifier_activation=None)
    times = rounds({"zoo": train_step_fn(ours, images, labels, xla, True),
                    "keras": train_step_fn(theirs, images, labels, xla, False)})
    del ours, theirs
    keras.backend.clear_session()
    return times


def time_serving():
    import keras
    import numpy as np
    import tensorflow as tf

    import zoo
    from zoo.models.nas.image_classifier import ImageClassifier
    from zoo.recipe_support.image_classification import serving_endpoints
    from zoo.training.export import export_saved_model

    images = tf.constant(np.random.default_rng(0).uniform(
        -1, 1, (FLAGS.batch, FLAGS.image_size, FLAGS.image_size, 3)).astype("float32"))
    class_names = [f"class_{i}" for i in range(1000)]
    fns = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in FLAGS.serving:
            keras.utils.set_random_seed(0)
            model = ImageClassifier(zoo.create_model(name, image_size=FLAGS.image_size))
            path = export_saved_model(os.path.join(tmp, name), model, serving_endpoints(model, class_names))
            served = tf.saved_model.load(path).signatures["serving_default"]
            fns[name] = lambda served=served: served(images=images)["scores"].numpy()
        if "nasnet_a_mobile" in FLAGS.serving:
            reference = keras.applications.NASNetMobile(input_shape=(FLAGS.image_size, FLAGS.image_size, 3),
                                                        weights=None)
            reference.export(os.path.join(tmp, "keras_nasnet_mobile"), format="tf_saved_model", verbose=False)
            served = tf.saved_model.load(os.path.join(tmp, "keras_nasnet_mobile")).signatures["serving_default"]
            fns["keras.applications NASNetMobile"] = lambda served=served: [v.numpy() for v in
                                                                            served(images).values()]
        return rounds(fns)


def main(argv):
    del argv
    results = {"image_size": FLAGS.image_size, "batch": FLAGS.batch, "training": [], "serving": {}}
    print(f"{FLAGS.image_size}x{FLAGS.image_size}, batch {FLAGS.batch}, {FLAGS.repeats} interleaved rounds "
          f"(medians); ours with drop path {FLAGS.drop_path_rate}")
    print(f"{'training':10} {'xla':4} {'zoo ms':>9} {'keras ms':>9} {'keras/zoo':>9} {'zoo img/s':>9}")
    for xla in FLAGS.xla:
        times = time_training(xla == "on")
        ratio = statistics.median(k / z for z, k in zip(times["zoo"], times["keras"]))
        ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
        results["training"].append(dict(xla=xla, ms_per_step=ms, keras_over_zoo=ratio,
                                        zoo_images_per_s=FLAGS.batch * 1e3 / ms["zoo"],
                                        rounds_ms={k: [1e3 * t for t in v] for k, v in times.items()}))
        print(f"{'NASNet-A M':10} {xla:4} {ms['zoo']:9.0f} {ms['keras']:9.0f} {ratio:8.2f}x "
              f"{FLAGS.batch * 1e3 / ms['zoo']:9.1f}", flush=True)
    if FLAGS.serving:
        times = time_serving()
        print(f"{'served SavedModel':34} {'ms/batch':>9} {'images/s':>9}")
        for name, t in times.items():
            ms = 1e3 * statistics.median(t)
            results["serving"][name] = dict(ms_per_batch=ms, images_per_s=FLAGS.batch * 1e3 / ms)
            print(f"{name:34} {ms:9.1f} {FLAGS.batch * 1e3 / ms:9.1f}", flush=True)
    print("keras/zoo: keras.applications' step time over ours, median of per-round ratios (>= 1.00x: ours is as "
          "fast or faster, drop path included).")
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    app.run(main)
