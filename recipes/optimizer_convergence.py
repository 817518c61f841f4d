"""Convergence study: GD, heavy ball, Nesterov, OGM, Keras SGD(momentum), Adam, Newton and saddle-free Newton.

    python recipes/optimizer_convergence.py
    python recipes/optimizer_convergence.py --problems=rosenbrock,saddle --train_steps=500 --krylov_dim=2

Problems: ill-conditioned quadratics (κ = 100 and 1000, eigenvalues linspace(1, κ, 100), x_0 = ones),
Nesterov's worst function for 100 steps (L = 1, size 201, x_0 = 0), Rosenbrock from (−1.2, 1), the saddles
x² − y² from (1, 10⁻³) and x³ − 3xy² from (0.5, 0.2), and a 64-32-16-8-16-32-64 autoencoder on
scikit-learn's bundled 8×8 digits (full batch), where, as in Dauphin et al. (2014), one run also switches
from momentum SGD to saddle-free Newton halfway. Step sizes come from the theory where L and μ are known.

Writes <output_dir>/convergence.csv (problem, method, iteration, value), convergence.png (f − f*, or f
for the saddles and the autoencoder, per iteration, with the theoretical bounds dashed) and prints the
iterations each method needs to reach the tolerance. A saddle-free Newton or Newton iteration costs
about krylov_dim (resp. n) Hessian-vector products, a first-order one gradient.

Common flags honoured: --train_steps (first-order iterations), --learning_rate (first-order step on the
autoencoder, where L is unknown), --global_batch_size (autoencoder images), --strategy and
--mixed_precision (autoencoder), --jit_compile (one device), --seed. The others do not apply to a study
that trains no model to keep.
"""

import dataclasses
import math
import os
import tempfile

from absl import flags

from zoo import flags as zoo_flags
from zoo.flags import Float, Int, List, String

PROBLEMS = ("quadratic_100", "quadratic_1000", "nesterov_worst", "rosenbrock", "saddle", "monkey_saddle",
            "autoencoder")
METHODS = ("gd", "heavy_ball", "nesterov", "ogm", "sgd_momentum", "adam", "newton", "sfn")
SPEC = zoo_flags.declare(
    *zoo_flags.common(train_steps=2000, global_batch_size=1792, learning_rate=0.5, only=(  # the others do not
        "strategy", "tpu", "connect_timeout", "mixed_precision", "jit_compile", "train_steps", "global_batch_size", "learning_rate",
        "seed")),  # apply to a study that trains no model to keep
    String("output_dir", "runs/optimizer_convergence", "Where convergence.csv and convergence.png go."),
    List("problems", None, "Problems to run (default all): " + ", ".join(PROBLEMS) + ".", choices=PROBLEMS),
    List("methods", None, "Methods to run (default all): " + ", ".join(METHODS) + ".", choices=METHODS),
    Int("second_order_steps", 60, "Iterations of Newton and saddle-free Newton.", at_least=1),
    Int("krylov_dim", 20, "Krylov dimension of saddle-free Newton.", at_least=1),
    Float("adam_learning_rate", 0.01, "Adam's learning rate (it has no theory-given step).", above=0),
    Float("tolerance", 1e-8, "Relative gap (f − f*)/(f_0 − f*) that counts as converged.", above=0, below=1),
)
FLAGS = flags.FLAGS

CHUNK = 100  # first-order steps per tf.function call
WORST_STEPS = 100  # Nesterov's worst function is built for this many steps


@dataclasses.dataclass
class Problem:
    """A smooth test function of one float64 vector; `value(f)` is what gets plotted and tabulated."""

    name: str
    x0: object
    loss: object  # tensor or Keras variable -> scalar tensor
    L: float = None  # gradient Lipschitz constant, when known
    mu: float = 0.0
    f_star: float = None  # None: unbounded below, plot f itself
    lr: float = None  # first-order step where L is unknown
    escape: float = -1.0  # for saddles: f at or below this counts as escaped

    def value(self, f):
        return f - self.f_star if self.f_star is not None else f


def _quadratic(kappa):
    import numpy as np
    import tensorflow as tf

    eigenvalues = tf.constant(np.linspace(1.0, kappa, 100))
    return Problem(f"quadratic_{kappa}", np.ones(100),
                   lambda x: 0.5 * tf.reduce_sum(eigenvalues * tf.square(tf.convert_to_tensor(x))),
                   L=float(kappa), mu=1.0, f_star=0.0)


def _nesterov_worst():
    import numpy as np
    import tensorflow as tf

    n = 2 * WORST_STEPS + 1
    A = (2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)) / 4
    x_star = 1 - np.arange(1, n + 1) / (n + 1)
    a = tf.constant(A)

    def loss(x):
        x = tf.convert_to_tensor(x)
        return 0.5 * tf.tensordot(x, tf.linalg.matvec(a, x), 1) - x[0] / 4

    return Problem("nesterov_worst", np.zeros(n), loss, L=1.0, f_star=-(1 - 1 / (n + 1)) / 8), x_star


def make_problem(name):
    import numpy as np
    import tensorflow as tf

    if name.startswith("quadratic_"):
        return _quadratic(int(name.split("_")[1]))
    if name == "nesterov_worst":
        return _nesterov_worst()[0]
    if name == "rosenbrock":
        def loss(p):
            p = tf.convert_to_tensor(p)
            return 100 * tf.square(p[1] - tf.square(p[0])) + tf.square(1 - p[0])
        return Problem(name, np.array([-1.2, 1.0]), loss, f_star=0.0, lr=5e-4)
    if name == "saddle":
        def loss(p):
            p = tf.convert_to_tensor(p)
            return tf.square(p[0]) - tf.square(p[1])
        return Problem(name, np.array([1.0, 1e-3]), loss, lr=0.05)
    if name == "monkey_saddle":
        def loss(p):
            p = tf.convert_to_tensor(p)
            return p[0] ** 3 - 3 * p[0] * tf.square(p[1])
        return Problem(name, np.array([0.5, 0.2]), loss, lr=0.05)
    raise ValueError(name)


def first_order(method, problem, steps):
    """The optimizer for `method`, tuned by theory where (μ, L) are known."""
    import keras

    from zoo.optimizers import OGM, HeavyBall, Nesterov

    lr = 1.0 / problem.L if problem.L else problem.lr
    if method == "gd":
        return keras.optimizers.SGD(lr)
    if method == "heavy_ball":
        return HeavyBall.from_curvature(problem.mu, problem.L) if problem.mu else HeavyBall(lr, momentum=0.9)
    if method == "nesterov":
        return Nesterov.from_curvature(problem.mu, problem.L) if problem.L else Nesterov(lr)
    if method == "ogm":
        return OGM(lr, total_steps=steps)
    if method == "sgd_momentum":
        return keras.optimizers.SGD(lr, momentum=0.9)
    if method == "adam":
        return keras.optimizers.Adam(FLAGS.adam_learning_rate)
    raise ValueError(method)


def _cut(values, problem):
    """`values` up to where a run ends early: diverged (dropped), escaped a saddle far, or hit the float64 floor."""
    import numpy as np

    values = np.asarray(values, np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        values = values[: bad[0]]
    if problem.f_star is None:
        done = np.flatnonzero(values < -1e8)
    else:
        done = np.flatnonzero(values <= 1e-15 * max(abs(values[0]), 1e-300))
    return values[: done[0] + 1] if done.size else values


def run_analytic(problem, method):
    """f − f* (or f) at x_0 .. x_N for one method; Nesterov's curve follows y_k, the iterate its bounds are about."""
    import keras
    import tensorflow as tf

    from zoo.optimizers import Nesterov, SaddleFreeNewton

    x = keras.Variable(problem.x0, dtype="float64")
    values = [float(problem.value(problem.loss(x)))]
    if method in ("newton", "sfn"):
        if method == "sfn":
            optimizer = SaddleFreeNewton(krylov_dim=min(FLAGS.krylov_dim, x.shape[0]), damping=1e-3)
            step = tf.function(lambda: optimizer.minimize(lambda: problem.loss(x), [x]),
                               jit_compile=FLAGS.jit_compile)
        else:
            step = tf.function(lambda: _newton_step(problem, x), jit_compile=FLAGS.jit_compile)
        for _ in range(FLAGS.second_order_steps):
            step()
            values.append(float(problem.value(problem.loss(x))))
            if len(_cut(values, problem)) < len(values):
                break
        return _cut(values, problem)

    optimizer = first_order(method, problem, FLAGS.train_steps)
    optimizer.build([x])
    point = optimizer.primary_iterate(x) if isinstance(optimizer, Nesterov) else x

    @tf.function(jit_compile=FLAGS.jit_compile)
    def chunk(n):
        out = tf.TensorArray(tf.float64, size=n)
        for i in tf.range(n):
            with tf.GradientTape() as tape:
                f = problem.loss(x.value)
            optimizer.apply([tape.gradient(f, x.value)], [x])
            out = out.write(i, problem.value(problem.loss(point.value)))
        return out.stack()

    done = 0
    while done < FLAGS.train_steps and len(_cut(values, problem)) == len(values):
        n = min(CHUNK, FLAGS.train_steps - done)
        values.extend(chunk(tf.constant(n)).numpy().tolist())
        done += n
    return _cut(values, problem)


def _newton_step(problem, x):
    import tensorflow as tf

    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            f = problem.loss(x.value)
        g = inner.gradient(f, x.value)
    hessian = outer.jacobian(g, x.value)
    x.assign_sub(tf.linalg.solve(hessian, g[:, None])[:, 0])


def bounds(problem, steps):
    """Theoretical curves for f − f*, by name (k = 1..steps)."""
    import numpy as np

    k = np.arange(1, steps + 1, dtype=np.float64)
    if problem.L is None:
        return {}
    L, mu = problem.L, problem.mu
    x0 = np.asarray(problem.x0, np.float64)
    f0 = problem.value(float(problem.loss(x0)))
    if problem.name == "nesterov_worst":
        _, x_star = _nesterov_worst()
        r2 = float(np.sum((x0 - x_star) ** 2))
    else:
        r2 = float(np.sum(x0**2))
    theta = np.ones(steps + 1)
    for i in range(1, steps + 1):
        theta[i] = (1 + np.sqrt(1 + 4 * theta[i - 1] ** 2)) / 2
    ogm_last = (1 + np.sqrt(1 + 8 * theta[:-1] ** 2)) / 2  # θ_N of an N-step OGM
    curves = {
        "GD L R²/(4k+2)": L * r2 / (4 * k + 2),
        "FGM 2LR²/(k+1)²": 2 * L * r2 / (k + 1) ** 2,
        "OGM LR²/(2θ_k²)": L * r2 / (2 * ogm_last**2),
    }
    if mu > 0:
        root = math.sqrt(L / mu)
        curves["HB ρ^2k f₀ (asymptotic)"] = ((root - 1) / (root + 1)) ** (2 * k) * f0
        curves["Nesterov (1−1/√κ)^k"] = (1 - 1 / root) ** k * (f0 + mu * r2 / 2)
    elif problem.name == "nesterov_worst":
        curves["lower 3LR²/(32(k+1)²)"] = np.where(k <= WORST_STEPS, 3 * L * r2 / (32 * (k + 1) ** 2), np.nan)
    return curves


def iterations_to_target(values, target):
    """The first iteration whose value is at or below `target`, or None."""
    import numpy as np

    hits = np.flatnonzero(np.asarray(values) <= target)
    return int(hits[0]) if hits.size else None


def target(problem, values):
    """Converged: relative gap <= --tolerance; for saddles, escaped to f <= -1."""
    return problem.escape if problem.f_star is None else FLAGS.tolerance * values[0]


# === The autoencoder ===


def run_autoencoder(method, strategy, images):
    """Full-batch reconstruction loss per iteration, under `strategy`; `images` is [batch, 64]."""
    import keras
    import numpy as np
    import tensorflow as tf

    from zoo.ops import weighted_mean
    from zoo.optimizers import SaddleFreeNewton

    replicas = strategy.num_replicas_in_sync
    per_replica = images.reshape(replicas, -1, images.shape[-1])
    data = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(per_replica[ctx.replica_id_in_sync_group]))
    with strategy.scope():
        keras.utils.set_random_seed(FLAGS.seed)
        model = keras.Sequential([keras.Input((64,))] + [
            keras.layers.Dense(units, activation=None if units == 8 else "sigmoid") for units in (32, 16, 8, 16, 32, 64)
        ])
        second = SaddleFreeNewton(krylov_dim=FLAGS.krylov_dim, damping=1e-2)
        base = "sgd_momentum" if method == "msgd_then_sfn" else method
        first = None
        if base != "sfn":
            first = first_order(base, Problem("autoencoder", None, None, lr=FLAGS.learning_rate), FLAGS.train_steps)
            if FLAGS.mixed_precision == "mixed_float16":
                first = keras.optimizers.LossScaleOptimizer(first)
            first.build(model.trainable_variables)

    def share(x):
        error = tf.reduce_mean(tf.square(tf.cast(model(x, training=True), tf.float32) - x), axis=-1)
        return weighted_mean(error)

    def first_step(x):
        with tf.GradientTape() as tape:
            loss, total = share(x)
            loss = first.scale_loss(loss)
        first.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return total

    def second_step(x):
        return second.minimize(lambda: share(x)[0], model.trainable_variables)

    def local(value):
        return strategy.experimental_local_results(value)[0]

    @tf.function(jit_compile=FLAGS.jit_compile)
    def first_chunk(n):
        out = tf.TensorArray(tf.float32, size=n)
        for i in tf.range(n):
            out = out.write(i, local(strategy.run(first_step, args=(data,))))
        return out.stack()

    second_fn = tf.function(lambda: local(strategy.run(second_step, args=(data,))), jit_compile=FLAGS.jit_compile)
    values = []
    first_steps = {"sfn": 0, "msgd_then_sfn": FLAGS.train_steps // 2}.get(method, FLAGS.train_steps)
    done = 0
    while done < first_steps:
        n = min(CHUNK, first_steps - done)
        values.extend(first_chunk(tf.constant(n)).numpy().tolist())
        done += n
    if method in ("sfn", "msgd_then_sfn"):
        for _ in range(FLAGS.second_order_steps):
            values.append(float(second_fn()))
    values.append(float(local(strategy.run(lambda x: share(x)[1], args=(data,)))))
    return np.array(values)


def load_images(count, seed):
    import numpy as np

    from zoo.data.digits import load_digits

    (train, _), (test, _) = load_digits(seed=seed)
    images = np.concatenate([train, test]).reshape(-1, 64)
    images = images[np.random.RandomState(seed).permutation(len(images))]
    return images[:count].astype("float32")


# === Output ===


def write_outputs(curves, all_bounds, output_dir):
    """convergence.csv and convergence.png, each written to a temporary file and renamed into place."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    os.makedirs(output_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output_dir, suffix=".csv.tmp")
    with os.fdopen(fd, "w") as f:
        f.write("problem,method,iteration,value\n")
        for (problem, method), values in curves.items():
            for i, v in enumerate(values):
                f.write(f"{problem},{method},{i},{v!r}\n")
    os.replace(tmp, os.path.join(output_dir, "convergence.csv"))

    problems = list(dict.fromkeys(p for p, _ in curves))
    cols = min(4, len(problems))
    rows = math.ceil(len(problems) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4 * rows), squeeze=False)
    styles = ["--", ":", "-.", (0, (5, 1)), (0, (1, 3))]
    colors = dict(zip(METHODS + ("msgd_then_sfn",), plt.get_cmap("tab10").colors))
    for ax, problem in zip(axes.flat, problems):
        unbounded = problem in ("saddle", "monkey_saddle")
        gap = not unbounded and problem != "autoencoder"
        top = 0.0
        for (p, method), values in curves.items():
            if p == problem:  # rounding can put f a hair below f*
                ax.plot(np.arange(len(values)), np.maximum(values, 1e-16) if gap else values, label=method, lw=1.2,
                        color=colors[method])
                top = max(top, float(np.nanmax(values)))
        for style, (name, curve) in zip(styles, all_bounds.get(problem, {}).items()):
            ax.plot(np.arange(1, len(curve) + 1), curve, linestyle=style, lw=0.9, color="black", alpha=0.6, label=name)
        ax.set_xscale("symlog", linthresh=10)
        if unbounded:
            ax.set_yscale("symlog", linthresh=1e-3)
        else:
            ax.set_yscale("log")
            if gap:
                ax.set_ylim(1e-16, 10 * top)
        ax.set_title(problem)
        ax.set_xlabel("iteration")
        ax.set_ylabel("f" if unbounded else ("f − f*" if gap else "loss"))
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(problems):]:
        ax.axis("off")
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=output_dir, suffix=".png.tmp")
    os.close(fd)
    fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    os.replace(tmp, os.path.join(output_dir, "convergence.png"))


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    from zoo.errors import ZooError
    from zoo.training import precision, strategy as strategies

    SPEC.values()  # validated (zoo_flags.run does it before main too); FLAGS holds the same values
    problems = FLAGS.problems or list(PROBLEMS)
    methods = FLAGS.methods or list(METHODS)
    tf.get_logger().setLevel("ERROR")  # one tf.function per method: the retracing warnings are expected
    strategy = strategies.from_flag(FLAGS.strategy, FLAGS.tpu, FLAGS.connect_timeout)
    if FLAGS.jit_compile and strategy.num_replicas_in_sync > 1:
        raise ZooError("--jit_compile compiles the step on one device; drop it or use --strategy=default")

    curves, all_bounds, table = {}, {}, []
    for name in problems:
        if name == "autoencoder":
            continue
        problem = make_problem(name)
        longest = max(FLAGS.train_steps, FLAGS.second_order_steps)
        all_bounds[name] = bounds(problem, longest)
        for method in methods:
            values = run_analytic(problem, method)
            curves[(name, method)] = values
            table.append((name, method, iterations_to_target(values, target(problem, values)), len(values) - 1,
                          values[-1]))
            print(f"{name:15s} {method:13s} final {values[-1]: .3e}", flush=True)

    if "autoencoder" in problems:
        precision.set_policy(FLAGS.mixed_precision)
        batch = FLAGS.global_batch_size
        if batch % strategy.num_replicas_in_sync:
            raise ZooError(f"--global_batch_size={batch} must divide by the {strategy.num_replicas_in_sync} replicas")
        images = load_images(batch, FLAGS.seed)
        if len(images) < batch:
            raise ZooError(f"--global_batch_size={batch} exceeds the {len(images)} digits images")
        rows = [m for m in methods if m != "newton"]
        if "sgd_momentum" in methods and "sfn" in methods:
            rows.append("msgd_then_sfn")
        for method in rows:
            curves[("autoencoder", method)] = run_autoencoder(method, strategy, images)
            print(f"{'autoencoder':15s} {method:13s} final {curves[('autoencoder', method)][-1]: .3e}", flush=True)
        best = min(float(np.nanmin(curves[("autoencoder", m)])) for m in rows)
        for method in rows:
            values = curves[("autoencoder", method)]
            table.append(("autoencoder", method, iterations_to_target(values, 1.1 * best), len(values) - 1, values[-1]))

    write_outputs(curves, all_bounds, FLAGS.output_dir)
    print("\nIterations to tolerance (relative gap <= %g; saddles: f <= -1; autoencoder: loss <= 1.1 x best)"
          % FLAGS.tolerance)
    print(f"{'problem':15s} {'method':13s} {'iterations':>10s} {'final':>11s}")
    for problem, method, hit, ran, final in table:
        shown = str(hit) if hit is not None else f">{ran}"
        print(f"{problem:15s} {method:13s} {shown:>10s} {final:11.3e}")
    print(f"\nwrote {os.path.join(FLAGS.output_dir, 'convergence.csv')} and convergence.png")


if __name__ == "__main__":
    zoo_flags.run(main)
