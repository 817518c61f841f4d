"""Progressive NAS against random search at equal trials, over several search seeds.

    python benchmarks/search_vs_random.py                                  # the recipe's defaults, seeds 0-3
    python benchmarks/search_vs_random.py --seeds=0,1,2 -- \
        --ops=identity,sep_3x3,sep_5x5,max_pool_3x3,avg_pool_3x3 \
        --max_blocks=3 --max_trials=28  # a larger space: flags after -- go to the recipe
    python benchmarks/search_vs_random.py --quick                          # 1 seed, 6 trials of 5 steps: a smoke run

For each seed it runs `recipes/automl_search.py --seed=S --final_steps=0` (search and its random baseline only;
every other flag as given after `--`, else the recipe's defaults) in its own search folder, then reads each
trial's values.json and metrics.json back. Both searches of a seed draw the same hyper-parameters and training
seed for trial k (the oracles seed them by trial number), so they differ only in the cells they pick.

Printed per seed and as the mean over seeds, after every 5th trial: the best validation top-1 so far and the
mean of the best 5 so far (the PNAS paper's Figure 5 compares searches by the mean of the top-M models found
after k trained models); over all trials: the mean top-1, the mean of the best 5, and how many trials came
within 2 points of the best trial either search found for that seed; then PNAS's wins, ties (within 0.5
points) and losses in best top-1 at the last trial. --output writes everything as JSON.

Measured (2 idle CPU cores, the defaults: ops identity,sep_3x3,max_pool_3x3, B=2, 12 one-block cells then a
beam of 8, 20 trials of 50 steps each): see BUILD.md ("Architecture search: PNAS against random search").
"""

import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the report helpers import TensorFlow

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_string("seeds", "0,1,2,3", "Comma-separated search seeds.")
flags.DEFINE_string("trial_isolation", "none", "The recipe's --trial_isolation (none: about 4 s a trial faster; "
                    "the search's memory grows, which does not matter for a few dozen trials).")
flags.DEFINE_string("search_root", None, "Where each seed's search goes (default: a temporary folder, removed); "
                    "a seed whose folder holds a finished search is read, not run again.")
flags.DEFINE_bool("quick", False, "One seed, 6 trials of 5 steps with 2 validation batches: a smoke run.")
flags.DEFINE_string("output", None, "Also write the results here as JSON.")
FLAGS = flags.FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEAR = 0.02  # "near the best": within 2 points of top-1
TIE = 0.005


def read_trials(project_dir):
    """[(trial number, top-1 or None when it failed, number of blocks)] of a search folder, in trial order."""
    rows = []
    for name in os.listdir(project_dir) if os.path.isdir(project_dir) else []:
        if not name.startswith("trial_"):
            continue
        folder = os.path.join(project_dir, name)
        with open(os.path.join(folder, "values.json")) as f:
            blocks = len(json.loads(json.load(f)["cell"])["blocks"])
        metrics = os.path.join(folder, "metrics.json")
        top1 = None
        if os.path.exists(metrics):
            with open(metrics) as f:
                top1 = float(json.load(f)["val_top1"])
        rows.append((int(name.split("_")[1]), top1, blocks))
    return sorted(rows)


def summarize(trials, near_of):
    from zoo.search.report import best_so_far

    scores = [s for _, s, _ in trials]
    rows = [{"status": "FAILED" if s is None else "COMPLETED", "val_top1": "" if s is None else s} for s in scores]
    done = sorted((s for s in scores if s is not None), reverse=True)
    return {"trials": len(trials), "failed": len(scores) - len(done), "best_so_far": best_so_far(rows),
            "top5_so_far": best_so_far(rows, 5),
            "mean": float(np.mean(done)) if done else None, "mean_top5": float(np.mean(done[:5])) if done else None,
            "near_best": sum(s >= near_of - NEAR for s in done), "blocks": [b for _, _, b in trials]}


def run_seed(seed, folder, recipe_args):
    done = all(os.path.exists(os.path.join(folder, p, "oracle.json")) for p in ("pnas", "random"))
    if not (done and os.path.exists(os.path.join(folder, "report", "summary.json"))):
        command = [sys.executable, os.path.join(ROOT, "recipes", "automl_search.py"), f"--seed={seed}",
                   "--final_steps=0", f"--search_dir={folder}", f"--trial_isolation={FLAGS.trial_isolation}",
                   *recipe_args]
        start = time.time()
        with open(os.path.join(folder + ".log"), "w") as log:
            result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        if result.returncode:
            sys.exit(f"seed {seed}: the search failed (exit {result.returncode}); see {folder}.log")
        print(f"seed {seed}: searched in {time.time() - start:.0f} s", flush=True)
    pnas, rand = read_trials(os.path.join(folder, "pnas")), read_trials(os.path.join(folder, "random"))
    top = max([s for _, s, _ in pnas + rand if s is not None], default=0.0)
    return {"seed": seed, "PNAS": summarize(pnas, top), "random": summarize(rand, top)}


def _at(curve, k):
    return curve[min(k, len(curve)) - 1] if curve else float("nan")


def main(argv):
    recipe_args = list(argv[1:])
    seeds = [int(s) for s in FLAGS.seeds.split(",") if s.strip()]
    if FLAGS.quick:
        seeds, recipe_args = seeds[:1], ["--max_trials=6", "--trial_steps=5", "--trial_eval_steps=2",
                                          "--first_level=4", "--beam=2", *recipe_args]
    with tempfile.TemporaryDirectory() as tmp:
        root = FLAGS.search_root or tmp
        os.makedirs(root, exist_ok=True)
        results = [run_seed(seed, os.path.join(root, f"seed_{seed}"), recipe_args) for seed in seeds]
    trials = max(r[m]["trials"] for r in results for m in ("PNAS", "random"))
    marks = sorted({*range(5, trials + 1, 5), trials})
    print(f"\nrecipe flags: {' '.join(recipe_args) or '(defaults)'}; seeds {seeds}")
    for curve, title in (("best_so_far", "best top-1 so far"), ("top5_so_far", "mean top-1 of the best 5 so far")):
        print(f"\n{title}, after k trials; then over all trials: mean, mean of the best 5, trials within "
              f"{NEAR * 100:.0f} points of the seed's best, failed")
        print(f"{'seed':>4} {'search':>7} " + " ".join(f"{'@' + str(k):>6}" for k in marks)
              + f" {'mean':>6} {'top5':>6} {'near':>5} {'failed':>6}")
        for r in results + [None]:
            for m in ("PNAS", "random"):
                if r is None:  # the mean over seeds
                    curves = [x[m][curve] for x in results]
                    cells = [float(np.mean([_at(c, k) for c in curves])) for k in marks]
                    rest = [float(np.mean([x[m][key] for x in results if x[m][key] is not None] or [np.nan]))
                            for key in ("mean", "mean_top5", "near_best", "failed")]
                    label = "mean"
                else:
                    cells = [_at(r[m][curve], k) for k in marks]
                    rest = [r[m]["mean"], r[m]["mean_top5"], r[m]["near_best"], r[m]["failed"]]
                    label = str(r["seed"])
                print(f"{label:>4} {m:>7} " + " ".join(f"{c:6.1%}" for c in cells)
                      + f" {rest[0]:6.1%} {rest[1]:6.1%} {rest[2]:5.3g} {rest[3]:6.3g}")
    finals = [(_at(r["PNAS"]["best_so_far"], trials), _at(r["random"]["best_so_far"], trials)) for r in results]
    wins = sum(p > q + TIE for p, q in finals)
    losses = sum(q > p + TIE for p, q in finals)
    gap = float(np.mean([p - q for p, q in finals]))
    print(f"best after {trials} trials, PNAS - random: {gap * 100:+.2f} points on average; PNAS wins {wins}, ties "
          f"{len(finals) - wins - losses} (within {TIE * 100:.1f} points), loses {losses} of {len(finals)} seeds")
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump({"recipe_args": recipe_args, "seeds": seeds, "results": results, "final_gap": gap,
                       "wins": wins, "losses": losses}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
