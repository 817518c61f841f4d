"""Per-step cost of the zoo optimizers, as ratios against references timed in the same process.

    python benchmarks/optimizer_step.py
    python benchmarks/optimizer_step.py --hidden=2048 --steps=200 --jit_compile

1. HeavyBall, Nesterov (FGM and constant momentum) and OGM against `keras.optimizers.SGD(momentum=0.9)`
   on an MLP 784-H-H-10 (H = --hidden; 1.9M parameters at the default): the optimizer update alone (fixed
   gradients) and a whole train step (forward, backward, update) on a batch of --batch_size.
2. SaddleFreeNewton's step as a multiple of one gradient evaluation (loss and gradients, same model and
   batch) for each --krylov_dims, with and without the damping line search.

Each timing is the median over --repeats rounds of --steps calls; rounds alternate between the methods so
that load on the machine affects them alike. Prints a table; --output also writes it as JSON.
"""

import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

flags.DEFINE_integer("hidden", 1024, "Width of the two hidden layers.")
flags.DEFINE_integer("batch_size", 128, "Examples per step.")
flags.DEFINE_integer("steps", 50, "Calls per timing round (first-order methods).")
flags.DEFINE_integer("repeats", 5, "Timing rounds; the median is reported.")
flags.DEFINE_list("krylov_dims", ["5", "10", "20"], "Krylov dimensions of saddle-free Newton to time.")
flags.DEFINE_bool("jit_compile", False, "Compile every timed function with XLA.")
flags.DEFINE_string("output", None, "Also write the results to this JSON file.")
FLAGS = flags.FLAGS


def _model(seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(FLAGS.hidden, activation="relu"),
        keras.layers.Dense(FLAGS.hidden, activation="relu"),
        keras.layers.Dense(10),
    ])


def _data():
    import numpy as np
    import tensorflow as tf

    rng = np.random.RandomState(0)
    return (tf.constant(rng.rand(FLAGS.batch_size, 784).astype("float32")),
            tf.constant(rng.randint(0, 10, FLAGS.batch_size)))


def _loss(model, x, y):
    import keras
    import tensorflow as tf

    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x, training=True), from_logits=True))


def _time(fn, calls):
    """Seconds per call of `fn` (which returns a tensor), after one warm-up call."""
    fn().numpy()
    start = time.perf_counter()
    for _ in range(calls):
        out = fn()
    out.numpy()
    return (time.perf_counter() - start) / calls


def _median_times(fns, calls):
    """{name: median seconds per call}, timing rounds interleaved across `fns`."""
    rounds = {name: [] for name in fns}
    for _ in range(FLAGS.repeats):
        for name, fn in fns.items():
            rounds[name].append(_time(fn, calls))
    return {name: statistics.median(times) for name, times in rounds.items()}


def _first_order_fns(optimizer, x, y):
    """(update with fixed gradients, whole train step) as tf.functions, on a fresh model."""
    import tensorflow as tf

    model = _model()
    variables = model.trainable_variables
    optimizer.build(variables)
    grads = [tf.random.normal(v.shape, stddev=1e-3, seed=1) for v in variables]

    def update():
        optimizer.apply(grads, variables)
        return optimizer.iterations.value

    def step():
        with tf.GradientTape() as tape:
            loss = _loss(model, x, y)
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    return tf.function(update, jit_compile=FLAGS.jit_compile), tf.function(step, jit_compile=FLAGS.jit_compile)


def first_order():
    import keras

    from zoo.optimizers import OGM, HeavyBall, Nesterov

    x, y = _data()
    total = 10 * (FLAGS.repeats * (FLAGS.steps + 1)) + 10
    makers = {
        "SGD(momentum=0.9)": lambda: keras.optimizers.SGD(0.01, momentum=0.9),
        "HeavyBall": lambda: HeavyBall(0.01, momentum=0.9),
        "Nesterov(FGM)": lambda: Nesterov(0.01),
        "Nesterov(momentum=0.9)": lambda: Nesterov(0.01, momentum=0.9),
        "OGM": lambda: OGM(0.01, total_steps=total),
    }
    updates, steps = {}, {}
    for name, make in makers.items():
        updates[name], steps[name] = _first_order_fns(make(), x, y)
    update_times = _median_times(updates, FLAGS.steps)
    step_times = _median_times(steps, FLAGS.steps)
    reference = "SGD(momentum=0.9)"
    return [
        {"method": name,
         "update_ms": 1e3 * update_times[name], "update_ratio": update_times[name] / update_times[reference],
         "step_ms": 1e3 * step_times[name], "step_ratio": step_times[name] / step_times[reference]}
        for name in makers
    ]


def _sfn_fn(optimizer, model, x, y):
    import tensorflow as tf

    optimizer.build(model.trainable_variables)  # learning_rate 0: the model stays put between calls

    def step():
        return optimizer.minimize(lambda: _loss(model, x, y), model.trainable_variables)

    return tf.function(step, jit_compile=FLAGS.jit_compile)


def saddle_free_newton():
    import tensorflow as tf

    from zoo.optimizers import SaddleFreeNewton

    x, y = _data()
    model = _model()

    def gradient():
        with tf.GradientTape() as tape:
            loss = _loss(model, x, y)
        grads = tape.gradient(loss, model.trainable_variables)
        return loss + tf.add_n([tf.reduce_sum(g) for g in grads]) * 0.0

    fns = {"gradient": tf.function(gradient, jit_compile=FLAGS.jit_compile)}
    for k in (int(k) for k in FLAGS.krylov_dims):
        for search in (None, (0.25, 1.0, 4.0)):
            name = f"SFN k={k}" + (" + line search" if search else "")
            fns[name] = _sfn_fn(SaddleFreeNewton(learning_rate=0.0, krylov_dim=k, damping=1.0, damping_search=search),
                                model, x, y)
    times = _median_times(fns, max(1, FLAGS.steps // 10))
    return [{"method": name, "step_ms": 1e3 * t, "gradient_evaluations": t / times["gradient"]}
            for name, t in times.items()]


def main(argv):
    del argv
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    params = 784 * FLAGS.hidden + FLAGS.hidden * FLAGS.hidden + FLAGS.hidden * 10 + 2 * FLAGS.hidden + 10
    print(f"MLP 784-{FLAGS.hidden}-{FLAGS.hidden}-10 ({params:,} parameters), batch {FLAGS.batch_size}, "
          f"XLA {'on' if FLAGS.jit_compile else 'off'}, {tf.config.list_physical_devices()[-1].device_type}")
    results = {"parameters": params, "first_order": first_order(), "saddle_free_newton": saddle_free_newton()}
    print(f"\n{'optimizer':24s} {'update ms':>10s} {'vs SGD':>7s} {'step ms':>9s} {'vs SGD':>7s}")
    for r in results["first_order"]:
        print(f"{r['method']:24s} {r['update_ms']:10.3f} {r['update_ratio']:7.2f} "
              f"{r['step_ms']:9.3f} {r['step_ratio']:7.2f}")
    print(f"\n{'saddle-free Newton':28s} {'step ms':>9s} {'× gradient':>11s}")
    for r in results["saddle_free_newton"]:
        print(f"{r['method']:28s} {r['step_ms']:9.2f} {r['gradient_evaluations']:11.1f}")
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    app.run(main)
