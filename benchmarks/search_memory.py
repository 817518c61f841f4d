"""Memory of an architecture search across trials: RSS after each trial of the real trial runner.

    python benchmarks/search_memory.py                          # 20 trials at the recipe's tiny defaults (~7 min)
    python benchmarks/search_memory.py --trial_isolation=none   # the same in one process (~4 min; memory grows)
    python benchmarks/search_memory.py --quick --output=/tmp/search_memory.json   # 6 trials of 5 steps (~2 min)

Runs --trials trials of `zoo.search.trials.CellTrialRunner` (the trainer of `recipes/automl_search.py`'s
search) on the embedded data, with the recipe's default search settings (ops identity,sep_3x3,max_pool_3x3,
B=2, F=8, N=2, 50 steps of batch 32, the whole validation split) and a random-search oracle over the same
space (--oracle=pnas: Progressive NAS as the recipe runs it, with 12 one-block cells or fewer so that even
--quick expands one; its surrogate also trains in this process). After each trial it records this process's
RSS (psutil when installed, else VmRSS of /proc/self/status) and, when trials run in subprocesses
(--trial_isolation=process), the trial process's peak RSS. Printed: a table per trial, the
slope of the parent's RSS in MiB per trial (least squares over trials 2..N: the first trial pays for
imports and tracing once) and the growth from trial 1 to trial N; --output writes them as JSON.

Measured on 2 idle CPU cores (20 trials, the defaults): in one process +9.6 MiB per trial (968 -> 1,138 MiB,
4.5 s a trial); with a process per trial +0.01 MiB per trial (874 MiB throughout; each trial process peaks
at 926-1,028 MiB), 9.2 s a trial: a fresh process costs about 5 s (TensorFlow's imports and first tracing)
per trial.
"""

import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_integer("trials", 20, "Trials to run.")
flags.DEFINE_integer("trial_steps", 50, "Training steps of each trial (the recipe's --trial_steps).")
flags.DEFINE_integer("trial_eval_steps", 0, "Validation batches per trial (0: the whole split).")
flags.DEFINE_integer("global_batch_size", 32, "Examples per step.")
flags.DEFINE_string("ops", "identity,sep_3x3,max_pool_3x3", "Operations of the space.")
flags.DEFINE_integer("max_blocks", 2, "Blocks of the largest cell.")
flags.DEFINE_integer("filters", 8, "F of every trial's network.")
flags.DEFINE_integer("num_cells", 2, "N of every trial's network.")
flags.DEFINE_enum("oracle", "random", ["random", "pnas"], "random: random search over the space; pnas: "
                  "Progressive NAS (first level 12, beam 8, as the recipe).")
flags.DEFINE_enum("trial_isolation", None, ["process", "none"], "Each trial in a fresh process, or in this one "
                  "(default: the trial runner's default).")
flags.DEFINE_string("strategy", "default", "Each trial's distribution strategy (zoo.training.strategy names).")
flags.DEFINE_integer("seed", 0, "Search seed.")
flags.DEFINE_string("search_dir", None, "Where the trials go (default: a temporary folder, removed).")
flags.DEFINE_bool("quick", False, "6 trials of 5 steps, 2 validation batches: a smoke run.")
flags.DEFINE_string("output", None, "Also write the results here as JSON.")
FLAGS = flags.FLAGS

MIB = 1024 * 1024


def rss_bytes():
    """This process's resident set size in bytes."""
    try:
        import psutil
    except ImportError:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no psutil and no VmRSS in /proc/self/status") from None
    return psutil.Process().memory_info().rss


def slope(values):
    """Least-squares slope of `values` against 0, 1, 2, ... (0 for fewer than 2 values)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    return (sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
            / sum((i - mean_x) ** 2 for i in range(n)))


def main(argv):
    del argv
    if FLAGS.quick:
        FLAGS.trials, FLAGS.trial_steps, FLAGS.trial_eval_steps = 6, 5, 2
    import keras_tuner

    from zoo.data.image_classification import open_dataset
    from zoo.search import PNASOracle, SearchSpace, random_search_oracle
    from zoo.search.trials import CellTrialRunner, default_hyperparameters

    start_rss = rss_bytes()
    rows = []

    class Runner(CellTrialRunner):
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            child = self.last_process or {}
            rows.append({"trial": len(rows) + 1, "status": trial.status, "rss_mib": rss_bytes() / MIB,
                         "child_peak_mib": child.get("peak_rss_mib"),
                         "seconds": time.time() - state["start"]})
            state["start"] = time.time()
            row = rows[-1]
            peak = f"{row['child_peak_mib']:9.0f}" if row["child_peak_mib"] else f"{'-':>9}"
            print(f"{row['trial']:5d} {row['status']:>9} {row['rss_mib']:9.0f} {peak} {row['seconds']:8.1f}",
                  flush=True)

    space = SearchSpace(ops=FLAGS.ops.split(",") if FLAGS.ops else None, max_blocks=FLAGS.max_blocks)
    hps = default_hyperparameters(learning_rate=(0.02, 0.1), filters=FLAGS.filters, num_cells=FLAGS.num_cells,
                                  weight_decay=(1e-5, 1e-3), drop_path_rate=0.0)
    objective = keras_tuner.Objective("val_top1", "max")
    if FLAGS.oracle == "pnas":
        oracle = PNASOracle(space, objective, max_trials=FLAGS.trials, beam=8, hyperparameters=hps, seed=FLAGS.seed,
                            first_level=max(1, min(12, FLAGS.trials - 1)), surrogate={"kind": "mixed"})
    else:
        oracle = random_search_oracle(space, objective, FLAGS.trials, hyperparameters=hps, seed=FLAGS.seed)
    data = open_dataset("embedded")
    isolation = {} if FLAGS.trial_isolation is None else {"trial_isolation": FLAGS.trial_isolation}
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(oracle, data=data, strategy=FLAGS.strategy, trial_steps=FLAGS.trial_steps,
                        global_batch_size=FLAGS.global_batch_size, eval_steps=FLAGS.trial_eval_steps or None,
                        seed=FLAGS.seed, directory=FLAGS.search_dir or tmp, project_name="memory", overwrite=True,
                        **isolation)
        print(f"{FLAGS.trials} trials of {FLAGS.trial_steps} steps (batch {FLAGS.global_batch_size}, "
              f"F={FLAGS.filters}, N={FLAGS.num_cells}, {FLAGS.oracle} oracle, trial isolation "
              f"{runner.trial_isolation}); RSS before the first trial {start_rss / MIB:.0f} MiB")
        print(f"{'trial':>5} {'status':>9} {'RSS MiB':>9} {'trial MiB':>9} {'seconds':>8}")
        state = {"start": time.time()}
        runner.search(verbose=False)
    values = [r["rss_mib"] for r in rows]
    later = values[1:]
    result = {
        "trials": len(rows), "trial_steps": FLAGS.trial_steps, "global_batch_size": FLAGS.global_batch_size,
        "oracle": FLAGS.oracle, "trial_isolation": runner.trial_isolation, "strategy": FLAGS.strategy,
        "rss_before_mib": start_rss / MIB, "rows": rows,
        "slope_mib_per_trial": slope(later),
        "growth_mib": (values[-1] - values[0]) if values else 0.0,
        "first_trial_mib": (values[0] - start_rss / MIB) if values else 0.0,
        "seconds_per_trial": sum(r["seconds"] for r in rows[1:]) / max(1, len(rows) - 1),
    }
    print(f"RSS: {result['first_trial_mib']:+.0f} MiB for the first trial, then {result['slope_mib_per_trial']:+.2f} "
          f"MiB per trial over trials 2..{len(rows)} (least squares); {result['growth_mib']:+.0f} MiB from trial 1 "
          f"to trial {len(rows)}; {result['seconds_per_trial']:.1f} s per trial after the first")
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    app.run(main)
