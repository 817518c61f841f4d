"""What recipes/long_term_dependency.py needs beyond the flags: the resumable sweep over (task, model, T), its
CSV, the plots and the table.

    lengths = parse_lengths(["10", "50", "100"])                       # [10, 50, 100]
    rows = read_results(os.path.join(model_dir, RESULTS_FILE))      # finished runs, kept on resume
    row, norms = train_one(spec, strategy=strategy, chief=True, trainer_args={...})
    plot_metric_vs_length(rows, "adding", "/tmp/adding_vs_length.png")

Each (task, model, T) trains in its own `<model_dir>/runs/<task>_<model>_T<T>/` with `zoo.training.Trainer`, so a
killed sweep resumes the unfinished run from its checkpoint; finished runs are rows of `results.csv` and are
skipped.
"""

import csv
import dataclasses
import io
import json
import os

import numpy as np

from zoo.errors import ZooError
from zoo.paths import write_file_atomically

RESULTS_FILE = "results.csv"
SWEEP_CONFIG = "config.json"
COLUMNS = ("task", "model", "T", "params", "hidden_size", "steps", "metric", "value", "baseline", "loss",
           "baseline_loss", "seconds")
PLOT_ORDER = ("simple_rnn", "lstm", "gru", "transformer")


def parse_lengths(values):
    """`--lengths` as sorted distinct ints, each at least 2; a one-line ZooError otherwise."""
    if not values:
        raise ZooError("--lengths is empty; give sequence lengths, e.g. --lengths=10,50,100")
    lengths = []
    for value in values:
        try:
            length = int(str(value).strip())
        except ValueError:
            raise ZooError(f"--lengths holds {value!r}, not an integer; give e.g. --lengths=10,50,100") from None
        if length < 2:
            raise ZooError(f"--lengths holds {length}; every length must be at least 2")
        lengths.append(length)
    return sorted(set(lengths))


def check_sweep_config(model_dir, config):
    """Records `config` in `<model_dir>/config.json`, or refuses (one line) a directory holding a sweep with
    another one."""
    import tensorflow as tf

    path = os.path.join(model_dir, SWEEP_CONFIG)
    config = json.loads(json.dumps(config))
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            try:
                saved = json.load(f)
            except ValueError:
                raise ZooError(f"{path} is damaged (not JSON); use a new --model_dir") from None
        diffs = [f"{k}: {saved.get(k)!r} in the sweep, {config.get(k)!r} now"
                 for k in sorted(set(saved) | set(config)) if saved.get(k) != config.get(k)]
        if diffs:
            raise ZooError(f"--model_dir={model_dir} holds a sweep with a different config ({'; '.join(diffs)}); use a "
                           "new --model_dir, or the flags of that sweep to resume it")
        return
    write_file_atomically(path, json.dumps(config, indent=2, sort_keys=True))


def read_results(path):
    """The rows of `results.csv` ({column: str}), [] when there is none."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_results(path, rows):
    """Writes `rows` (sorted by task, model order, T) to `path` atomically."""
    order = {m: i for i, m in enumerate(PLOT_ORDER)}
    rows = sorted(rows, key=lambda r: (r["task"], order.get(r["model"], 99), int(r["T"])))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows({k: row.get(k, "") for k in COLUMNS} for row in rows)
    write_file_atomically(path, text.getvalue())


def finished(rows, task, model, length, steps):
    """The row of (task, model, T) when it trained at least `steps` steps, else None."""
    for row in rows:
        if (row["task"], row["model"], int(row["T"])) == (task, model, length) and int(row["steps"]) >= steps:
            return row
    return None


def run_dir(model_dir, task, model, length):
    """The model_dir of one run of the sweep: `<model_dir>/runs/<task>_<model>_T<length>`."""
    return os.path.join(model_dir, "runs", f"{task}_{model}_T{length}")


@dataclasses.dataclass
class RunSpec:
    """One cell of the sweep and what it is trained with."""

    task: str
    model: str
    length: int
    model_dir: str  # the sweep's --model_dir
    param_budget: int
    learning_rate: float
    clip_norm: float
    seed: int
    num_symbols: int
    copy_length: int
    eval_examples: int
    config: dict  # the sweep's run_config, extended per run

    @property
    def run_dir(self):
        return run_dir(self.model_dir, self.task, self.model, self.length)

    def examples(self, indices, split):
        from zoo.data import synthetic_sequences as data

        return data.examples(self.task, indices, self.length, self.seed, split, self.num_symbols, self.copy_length)


def build_probe(spec):
    """The compiled, built `SequenceProbe` of `spec` (call inside the strategy's scope), seeded so that the
    initial weights are the same in every (re)start."""
    import keras

    from zoo.data.synthetic_sequences import EVAL
    from zoo.models.sequence.sequence_probe import SequenceProbe, solve_hidden_size

    keras.utils.set_random_seed(spec.seed)
    hidden, ffn = solve_hidden_size(spec.task, spec.model, spec.param_budget, spec.num_symbols)
    model = SequenceProbe(task=spec.task, cell=spec.model, hidden_size=hidden, ffn_size=ffn,
                          num_symbols=spec.num_symbols, clip_norm=spec.clip_norm or None)
    model(spec.examples([0], EVAL)[0])
    model.compile(optimizer=keras.optimizers.Adam(spec.learning_rate))
    return model


def train_one(spec, *, strategy, chief, trainer_args, gradient_examples=0, verbose=True):
    """Trains (or resumes) one run of the sweep and evaluates it. Returns `(row, model, norms)`: the CSV row,
    the trained model, and ({"init": [T'], "trained": [T']} of ||dL/dx_t|| on `gradient_examples` evaluation
    examples, or None when 0)."""
    import time

    from zoo.data import synthetic_sequences as data
    from zoo.models.sequence.sequence_probe import gradient_norms
    from zoo.training.trainer import Trainer

    started = time.monotonic()
    with strategy.scope():
        model = build_probe(spec)
    norms = None
    if gradient_examples:
        batch = spec.examples(np.arange(gradient_examples), data.EVAL)
        norms = {"init": gradient_norms(model, *batch).tolist()}
    global_batch_size = trainer_args["global_batch_size"]
    common = dict(seed=spec.seed, num_symbols=spec.num_symbols, copy_length=spec.copy_length)

    def dataset_fn(ctx):
        return data.train_dataset(spec.task, spec.length, global_batch_size, input_context=ctx, **common)

    def eval_dataset_fn(ctx):
        return data.eval_dataset(spec.task, spec.length, global_batch_size, spec.eval_examples, input_context=ctx,
                                 **common)

    config = dict(spec.config, task=spec.task, model=spec.model, T=spec.length, hidden_size=model.hidden_size,
                  ffn_size=model.ffn_size)
    trainer = Trainer(model, strategy=strategy, model_dir=spec.run_dir, dataset_fn=dataset_fn, config=config,
                      eval_dataset_fn=eval_dataset_fn, verbose=verbose, **trainer_args)
    logs = trainer.train()
    if norms is not None:
        norms["trained"] = gradient_norms(model, *batch).tolist()
        if chief:
            write_file_atomically(os.path.join(spec.run_dir, "gradient_norms.json"), json.dumps(norms))
    baseline_loss = 1 / 6 if spec.task == "adding" else data.baseline_cross_entropy(spec.num_symbols)
    row = dict(task=spec.task, model=spec.model, T=spec.length, params=model.count_params(),
               hidden_size=model.hidden_size, steps=int(trainer.step.numpy()), metric=model.metric_name,
               value=f"{logs['eval/' + model.metric_name]:.6g}",
               baseline=f"{data.baseline(spec.task, spec.num_symbols):.6g}", loss=f"{logs['eval/loss']:.6g}",
               baseline_loss=f"{baseline_loss:.6g}", seconds=f"{time.monotonic() - started:.1f}")
    return row, model, norms


def load_norms(directory):
    """The gradient norms saved in a run's directory ({"init": [...], "trained": [...]}), or None."""
    path = os.path.join(directory, "gradient_norms.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def serving_endpoints(model):
    """`serving_default` of a trained probe: adding, `inputs` [B, T, 2] float32 -> `prediction` [B];
    copy, `tokens` [B, T] int32 -> `logits` [B, T, V] and `symbols` [B, T] (argmax)."""
    import tensorflow as tf

    if model.task == "adding":
        def serve(inputs):
            return {"prediction": model(inputs, training=False)[:, 0]}

        return {"serving_default": (serve, [tf.TensorSpec([None, None, 2], tf.float32, name="inputs")])}

    def serve_copy(tokens):
        logits = model(tokens, training=False)
        return {"logits": logits, "symbols": tf.argmax(logits, axis=-1, output_type=tf.int32)}

    return {"serving_default": (serve_copy, [tf.TensorSpec([None, None], tf.int32, name="tokens")])}


def has_export(path):
    """Whether `path` holds an integer version directory already."""
    return os.path.isdir(path) and any(n.isdigit() for n in os.listdir(path))


def format_table(rows, tasks, models, lengths):
    """Markdown lines: per task, the metric of every model at every T, and the baseline."""
    lines = []
    for task in tasks:
        cells = {(r["model"], int(r["T"])): r for r in rows if r["task"] == task}
        if not cells:
            continue
        some = next(iter(cells.values()))
        better = "lower" if some["metric"] == "mse" else "higher"
        lines.append(f"{task}: eval {some['metric']} ({better} is better; baseline {float(some['baseline']):.4g})")
        params = {r["model"]: r["params"] for r in cells.values()}
        lines.append("| T | " + " | ".join(f"{m} ({params.get(m, '?')} p)" for m in models) + " |")
        lines.append("|---" * (len(models) + 1) + "|")
        for length in lengths:
            values = [f"{float(cells[(m, length)]['value']):.4f}" if (m, length) in cells else "-" for m in models]
            lines.append(f"| {length} | " + " | ".join(values) + " |")
    return lines


def plot_metric_vs_length(rows, task, path):
    """PNG of `task`'s metric against T (one line per model, the baseline dashed); False when no rows."""
    rows = [r for r in rows if r["task"] == task]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    models = [m for m in PLOT_ORDER if any(r["model"] == m for r in rows)]
    for model in models:
        points = sorted((int(r["T"]), float(r["value"])) for r in rows if r["model"] == model)
        params = next(r["params"] for r in rows if r["model"] == model)
        ax.plot(*zip(*points), marker="o", label=f"{model} ({params} params)")
    lengths = sorted({int(r["T"]) for r in rows})
    ax.plot([lengths[0], lengths[-1]], [float(rows[0]["baseline"])] * 2, "k--", label="memoryless baseline")
    ax.set_xscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel(f"eval {rows[0]['metric']}")
    ax.set_title(f"{task} task, {rows[0]['steps']} steps")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_gradient_norms(norms_by_model, task, length, path):
    """PNG of ||dL/dx_t|| against t (log scale) per model, at initialisation and after training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, phase in zip(axes, ("init", "trained")):
        for model in [m for m in PLOT_ORDER if m in norms_by_model]:
            values = np.maximum(np.asarray(norms_by_model[model][phase]), 1e-30)
            ax.plot(np.arange(len(values)), values, label=model)
        ax.set_yscale("log")
        ax.set_xlabel("input step t")
        ax.set_title(f"{task}, T={length}: {'at initialisation' if phase == 'init' else 'after training'}")
    axes[0].set_ylabel("||dL/dx_t||")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
