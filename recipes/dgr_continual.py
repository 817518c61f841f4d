"""Deep Generative Replay (Shin et al., 2017) on a sequence of tasks, with its baselines, under any strategy.

    python recipes/dgr_continual.py                       # split 8×8 digits, 5 tasks, a few minutes on a CPU
    python recipes/dgr_continual.py --tasks=permuted --strategy=mirrored --model_dir=runs/dgr_permuted
    python recipes/dgr_continual.py --tasks=mnist_svhn --data_dir=~/tensorflow_datasets --global_batch_size=32 \
        --generator_steps=20000 --train_steps=4000 --learning_rate=3e-5 --replay_ratio=0.4
                                                          # the reference's MNIST -> SVHN run (preset "svhn")

Methods, trained one after the other in the same run (`--methods`):
- generative: each task's scholar (WGAN-GP generator + solver) learns from the current task mixed with
  samples of the previous scholar's generator labelled by the previous solver, weights r and 1 - r;
- exact: the same mixing with real data of all earlier tasks (the upper bound);
- none: fine-tuning on the current task alone.

Every task and role trains with the shared Trainer in <model_dir>/<method>/task_<k>/<generator|solver>/, so an
interrupted run resumes where it stopped. After each task the solver is tested on every task. Output:
<model_dir>/accuracy.csv and accuracy.png (and the table printed), generator sample sheets in
<model_dir>/samples/ and TensorBoard, and the final scholar of the first method exported to
<export_dir>/solver (serving_default: float images in [0, 1] -> class probabilities; classify_bytes:
JPEG/PNG bytes) and <export_dir>/generator (serving_default: N(0, 1) noise -> images; generate_png: PNG bytes).
The default run uses the small "digits" networks and --learning_rate=1e-3 with 300 generator / 200 solver
steps per task; the reference runs 3000 / 1000 iterations at 1e-4 with the 32×32 networks (preset "mnist").
"""

import os

from zoo import flags as zoo_flags
from zoo.flags import FREE, MODEL, Enum, Float, Int, List

METHODS = ("generative", "exact", "none")
SPEC = zoo_flags.declare(
    *zoo_flags.common(train_steps=200, global_batch_size=64, learning_rate=1e-3, model_dir="runs/dgr",
                      checkpoint_every=100, log_every=50),
    Enum("tasks", "split", ("split", "permuted", "mnist_svhn", "svhn_mnist"), "Task sequence: split, permuted "
         "(8×8 digits, offline), mnist_svhn or svhn_mnist (tensorflow-datasets mnist and svhn_cropped in "
         "--data_dir)."),
    Int("num_tasks", 5, "Tasks of the split or permuted digits sequences.", at_least=1),
    List("methods", list(METHODS), "Replay methods to run and compare: generative, exact, none. The first one is "
         "exported.", role=FREE, choices=METHODS),
    Enum("preset", None, ("digits", "mnist", "svhn"), "Network preset: digits, mnist or svhn (default: digits "
         "for the digit sequences, svhn for MNIST/SVHN)."),
    Int("generator_steps", 300, "Generator steps per task (each: --critic_steps critic updates, then one "
        "generator update). --train_steps is the solver's steps per task.", at_least=1),
    Float("replay_ratio", 0.3, "r: weight of the current task's loss; 1 - r goes to the replayed data.",
          role=MODEL, at_least=0, at_most=1),
    Int("critic_steps", 5, "Critic updates per generator update.", role=MODEL, at_least=1),
    Float("gradient_penalty", 10.0, "WGAN-GP penalty weight λ.", role=MODEL, at_least=0),
    Float("weight_decay", 1e-5, "Coupled L2 weight decay of all three optimizers (as PyTorch Adam's).", role=MODEL,
          at_least=0),
    Int("test_size", 1024, "Test examples per task for the accuracy table.", role=FREE, at_least=1),
    Int("sample_every", 100, "Generator steps between sample sheets (checked every --log_every steps).",
        role=FREE, at_least=1),
    checks=[lambda hp: None if len(set(hp.methods)) == len(hp.methods) > 0 else
            f"--methods={','.join(hp.methods)}: give distinct methods from {', '.join(METHODS)}"],
)


def evaluate(solver, tests, batch_size=256):
    """The solver's accuracy (inference mode) on each (images, labels) test set."""
    import numpy as np

    images = np.concatenate([x for x, _ in tests])
    labels = np.concatenate([y for _, y in tests])
    pad = -len(labels) % batch_size
    images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
    predicted = np.concatenate([np.argmax(solver(images[i:i + batch_size], training=False), -1)
                                for i in range(0, len(images), batch_size)])
    hits = predicted[:len(labels)] == labels
    bounds = np.cumsum([0] + [len(y) for _, y in tests])
    return [float(np.mean(hits[a:b])) if b > a else 0.0 for a, b in zip(bounds[:-1], bounds[1:])]


def write_table(path, tasks, table):
    """Writes the accuracy CSV atomically and returns it as text."""
    import tensorflow as tf

    header = ["method", "after_task"] + [f"task_{i + 1}" for i in range(len(tasks))] + ["mean_seen"]
    lines = [",".join(header)]
    for method, rows in table.items():
        for k, row in enumerate(rows):
            mean_seen = sum(row[:k + 1]) / (k + 1)
            lines.append(",".join([method, str(k + 1)] + [f"{a:.4f}" for a in row] + [f"{mean_seen:.4f}"]))
    text = "\n".join(lines) + "\n"
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)
    return text


def plot_table(path, tasks, table):
    """One panel per task (its accuracy after each task) and one for the mean over the tasks seen so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tensorflow as tf

    n = len(tasks)
    fig, axes = plt.subplots(1, n + 1, figsize=(2.6 * (n + 1), 2.8), sharey=True, squeeze=False)
    steps = list(range(1, n + 1))
    for method, rows in table.items():
        for i in range(n):
            xs = [k + 1 for k in range(len(rows)) if k >= i]
            axes[0, i].plot(xs, [rows[k - 1][i] for k in xs], marker="o", label=method)
        axes[0, n].plot(range(1, len(rows) + 1), [sum(r[:k + 1]) / (k + 1) for k, r in enumerate(rows)], marker="o",
                        label=method)
    for i, ax in enumerate(axes[0]):
        ax.set_title(tasks[i].name if i < n else "mean over seen tasks", fontsize=9)
        ax.set_xticks(steps)
        ax.set_xlabel("after task")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("test accuracy")
    axes[0, n].legend(fontsize=8)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def main(argv):
    del argv
    import keras
    import numpy as np
    import tensorflow as tf

    from zoo import create_model
    from zoo.data import digits, images
    from zoo.errors import ZooError
    from zoo.models.continual import dgr_serving
    from zoo import recipe_support
    from zoo.training.export import export_saved_model
    from zoo.training.trainer import Trainer

    hp = SPEC.values()
    methods = hp.methods
    strategy, chief = recipe_support.setup(hp, seed=False)

    tasks = digits.task_sequence(hp.tasks, num_tasks=hp.num_tasks, seed=hp.seed, data_dir=hp.data_dir,
                                 download=hp.download)
    preset = hp.preset or ("digits" if hp.tasks in ("split", "permuted") else "svhn")
    probe = create_model("dgr_solver", preset=preset)
    if tuple(probe.input_shape[1:]) != tasks[0].image_shape:
        raise ZooError(f"--preset={preset} takes {probe.input_shape[1:]} images but --tasks={hp.tasks} has "
                       f"{tasks[0].image_shape}; leave --preset unset to pick the matching one")
    tests = [digits.test_arrays(t, hp.test_size) for t in tasks]
    run_config = hp.run_config(preset=preset)  # the preset picked, when --preset is not given

    def build(method, task, previous):
        generative = method == "generative"
        replay = dict(replay_generator=previous.generator, replay_solver=previous.solver) if (
            generative and previous is not None) else {}
        with strategy.scope():
            scholar = create_model("dgr", **hp.model_args(preset=preset, with_generator=generative,
                                                          seed=hp.seed * 1000 + task, **replay))
            scholar.compile(learning_rate=hp.learning_rate)
            if previous is not None:
                scholar.continue_from(previous)
        return scholar

    def sample_sheet(scholar, seed=0):
        rows = [scholar.sample(10, seed=seed + i)[0].numpy() for i in range(4)]
        scale = max(1, 32 // rows[0].shape[1])  # 8×8 digits are shown 4× larger
        return images.make_grid([np.repeat(np.repeat(r, scale, 1), scale, 2) for r in rows])

    def train_role(scholar, method, k, role, steps):
        scholar.role = role
        directory = os.path.join(hp.model_dir, method, f"task_{k + 1}", role)
        replay_tasks = tasks[:k] if method == "exact" else ()

        def dataset_fn(ctx):
            return digits.train_dataset(tasks[k], ctx, hp.global_batch_size, seed=hp.seed * 1000 + k,
                                        replay_tasks=replay_tasks)

        hooks = []
        if role == "generator":
            last = {"step": 0}

            def write_samples(step, logs):
                if step - last["step"] < hp.sample_every and step != steps:
                    return
                last["step"] = step
                sheet = sample_sheet(scholar)
                images.write_png(os.path.join(hp.model_dir, "samples", f"task_{k + 1}_step_{step:06d}.png"), sheet)
                with trainer.summary_writer.as_default(step=step):
                    tf.summary.image("samples", sheet[None])

            hooks.append(write_samples)
        if chief:
            print(f"\n== {method}: task {k + 1}/{len(tasks)} ({tasks[k].name}), {role}", flush=True)
        trainer = Trainer(
            scholar, strategy=strategy, model_dir=directory, dataset_fn=dataset_fn,
            config={**run_config, "method": method, "task": k + 1, "role": role}, hooks=hooks,
            **{**hp.trainer_args(), "train_steps": steps})
        return trainer.train()

    table, finals = {}, {}
    for method in methods:
        keras.utils.set_random_seed(hp.seed)  # every method starts from the same networks
        previous, rows = None, []
        for k in range(len(tasks)):
            scholar = build(method, k, previous)
            if method == "generative":
                train_role(scholar, method, k, "generator", hp.generator_steps)
            train_role(scholar, method, k, "solver", hp.train_steps)
            rows.append(evaluate(scholar.solver, tests))
            if chief:
                print(f"{method} after task {k + 1}: " + ", ".join(f"{a:.3f}" for a in rows[-1]), flush=True)
            previous = scholar
        table[method], finals[method] = rows, previous

    if chief:
        tf.io.gfile.makedirs(hp.model_dir)
        text = write_table(os.path.join(hp.model_dir, "accuracy.csv"), tasks, table)
        plot_table(os.path.join(hp.model_dir, "accuracy.png"), tasks, table)
        print("\nTest accuracy on every task after each task (" + ", ".join(
            f"task_{i + 1} = {t.name}" for i, t in enumerate(tasks)) + "):\n" + text.replace(",", "\t"), flush=True)
        print(f"wrote {os.path.join(hp.model_dir, 'accuracy.csv')} and accuracy.png", flush=True)

    if hp.export_dir:
        scholar = finals[methods[0]]
        endpoints = dgr_serving.solver_endpoints(scholar.solver, images.decode_image_batch)
        path = export_saved_model(os.path.join(hp.export_dir, "solver"), scholar.solver, endpoints,
                                  strategy=strategy)
        if chief:
            print(f"exported {path}", flush=True)
        if scholar.generator is not None:
            endpoints = dgr_serving.generator_endpoints(scholar, images.encode_png_batch)
            path = export_saved_model(os.path.join(hp.export_dir, "generator"), scholar.generator, endpoints,
                                      strategy=strategy)
            if chief:
                print(f"exported {path}", flush=True)


if __name__ == "__main__":
    zoo_flags.run(main)
