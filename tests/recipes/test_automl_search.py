"""automl_search.py end to end in subprocesses (slow): search + baseline + retrain + export + report, failing
searches, resume after SIGKILL, and KerasTuner's chief/worker mode on loopback."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.recipe_run import ENV, ROOT, assert_one_line_error, files, run_recipe, start_recipe
from tests.tf_only import run_tf_only

# A tiny search: PNAS trains 1 one-block cell, then 1 two-block expansion; 2 random trials; 2 steps each.
TINY = ["--max_trials=2", "--first_level=1", "--beam=1", "--max_blocks=2", "--trial_steps=2", "--trial_eval_steps=1",
        "--global_batch_size=4", "--filters=4", "--num_cells=1", "--ops=sep_3x3,max_pool_3x3"]


def run(*args, timeout=300):
    return run_recipe("automl_search.py", *args, timeout=timeout)


def trial_runs(project_dir):
    """{trial dir: number of times it was started} of a KerasTuner project directory."""
    runs = {}
    for name in files(project_dir):
        if name.startswith("trial_") and os.path.exists(os.path.join(project_dir, name, "runs.log")):
            with open(os.path.join(project_dir, name, "runs.log")) as f:
                runs[name] = len(f.read().splitlines())
    return runs


@pytest.mark.slow
def test_all_trials_failing_stop_with_one_line(tmp_path):
    result = run(f"--search_dir={tmp_path / 's'}", "--nan_trials=0,1", "--max_blocks=1", "--first_level=2",
                 "--max_trials=2", "--trial_steps=1", "--trial_eval_steps=1", "--global_batch_size=4", "--filters=4",
                 "--num_cells=1", "--ops=sep_3x3")
    assert_one_line_error(result, "all 2 trials failed", "training diverged", "new --search_dir")
    assert not (tmp_path / "s" / "random").exists()  # stopped before the baseline


@pytest.mark.slow
@pytest.mark.parametrize("flags, fragments", [
    (["--max_trials=5"], ["--max_trials=5 is used up by the first level's 12", "lower --first_level"]),
    (["--ops=sep_3x3,conv_9x9"], ["unknown operation(s) conv_9x9", "--ops"]),
    (["--learning_rates=0.1,0.02"], ["is high,low: write low,high (--learning_rates=0.02,0.1)"]),
    (["--drop_path_rates=0,1.5"], ["--drop_path_rates='0,1.5': every value must be at least 0.0 and below 1.0"]),
    (["--weight_decays=0,1e-3"], ["--weight_decays='0,1e-3': every value must be above 0.0"]),
])
def test_bad_search_flags_are_one_line_errors(tmp_path, flags, fragments):
    result = run(f"--search_dir={tmp_path / 's'}", *flags)
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "s").exists()  # refused before anything was written


@pytest.mark.slow
def test_resuming_with_other_settings_is_refused(tmp_path):
    args = [f"--search_dir={tmp_path / 's'}", "--final_steps=0", "--nobaseline", *TINY]
    first = run(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    again = run(*args)  # a finished search is read back, not served or run again
    assert again.returncode == 0 and "pnas: the search had finished" in again.stdout, again.stderr[-3000:]
    assert trial_runs(tmp_path / "s" / "pnas") == {"trial_0": 1, "trial_1": 1}
    result = run(*[a for a in args if not a.startswith("--trial_steps")], "--trial_steps=3")
    assert_one_line_error(result, "holds a search with other settings (trial_steps: trial_steps was 2, now 3)",
                          "run with the same flags")


@pytest.mark.slow
def test_raising_max_trials_extends_a_finished_search(tmp_path):
    args = [f"--search_dir={tmp_path / 's'}", "--final_steps=0", "--nobaseline", "--max_blocks=1", "--first_level=2",
            *[a for a in TINY if not a.startswith(("--max_trials", "--first_level", "--max_blocks"))]]
    first = run(*args, "--max_trials=1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert trial_runs(tmp_path / "s" / "pnas") == {"trial_0": 1}
    more = run(*args, "--max_trials=2")
    assert more.returncode == 0 and "the search had finished" not in more.stdout, more.stderr[-3000:]
    assert trial_runs(tmp_path / "s" / "pnas") == {"trial_0": 1, "trial_1": 1}


@pytest.mark.slow
def test_killed_search_resumes_then_retrains_exports_and_reports(tmp_path):
    """SIGKILL once the first trial is recorded; the same command again finishes without re-running it, then
    retrains, exports (TF-only loadable) and writes the whole report."""
    search_dir = tmp_path / "search"
    args = [f"--search_dir={search_dir}", "--final_steps=2", "--final_filters=4", "--final_cells=1", *TINY]
    process = start_recipe("automl_search.py", *args)
    first = search_dir / "pnas" / "trial_0" / "trial.json"
    try:
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            if first.exists() and json.loads(first.read_text()).get("status") == "COMPLETED":
                break
            time.sleep(0.2)
        assert process.poll() is None, "the search ended before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
    before = trial_runs(search_dir / "pnas")
    finished = {name for name in before if (search_dir / "pnas" / name / "metrics.json").exists()}
    assert "trial_0" in finished
    result = run(*args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    after = trial_runs(search_dir / "pnas")
    assert sorted(after) == ["trial_0", "trial_1"], after
    # finished trials are never run again; one killed while running is started again (from its checkpoint)
    assert all(after[name] == 1 for name in finished), (before, after)
    assert all(after[name] == before.get(name, 0) + 1 for name in after if name not in finished), (before, after)
    assert trial_runs(search_dir / "random") == {"trial_0": 1, "trial_1": 1}

    for phase in ("phase 1: search", "phase 2: baseline", "phase 3: retrain", "phase 4: evaluate", "phase 5: export",
                  "phase 6: report"):
        assert phase in result.stdout
    names = files(search_dir / "report")
    for name in ("trials.csv", "report.md", "accuracy_vs_params.png", "accuracy_vs_mult_adds.png", "best_so_far.png",
                 "cell_pnas_1.png", "cell_random_1.png", "summary.json"):
        assert name in names, names
    text = (search_dir / "report" / "report.md").read_text()
    assert "## PNAS: 2 trials, 2 completed, 0 failed" in text and "- final network (F=4, N=1" in text
    assert len((search_dir / "report" / "trials.csv").read_text().splitlines()) == 5  # header, 2 PNAS, 2 random
    summary = json.loads((search_dir / "report" / "summary.json").read_text())
    assert json.loads(summary["best_values"]["cell"])["blocks"]
    export = search_dir / "export" / "1"
    assert (export / "assets" / "labels.txt").read_text().splitlines()[0] == "disc"
    out = run_tf_only(f"""
        import json, numpy as np, tensorflow as tf
        m = tf.saved_model.load({str(export)!r})
        r = m.signatures["serving_default"](images=tf.zeros([2, 32, 32, 3]))
        png = tf.io.encode_png(tf.zeros([40, 40, 3], tf.uint8))
        b = m.signatures["classify_bytes"](image_bytes=tf.stack([png]))
        print(json.dumps({{"p": r["probabilities"].shape.as_list(), "names": b["class_names"].shape.as_list()}}))
    """)
    assert out == {"p": [2, 10], "names": [1, 5]}


def _free_ports():
    """A free port P on 127.0.0.1 whose P + 1 is free too (the baseline's oracle listens there)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports on 127.0.0.1")


@pytest.mark.slow
def test_distributed_chief_and_two_workers(tmp_path):
    search_dir = tmp_path / "search"
    port = _free_ports()
    args = [f"--search_dir={search_dir}", "--final_steps=0", "--max_trials=3", "--first_level=2", *TINY[2:]]
    command = [sys.executable, os.path.join("recipes", "automl_search.py"), *args]
    processes = []
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = {**ENV, "KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": "127.0.0.1",
               "KERASTUNER_ORACLE_PORT": str(port)}
        log = open(tmp_path / f"{tuner_id}.log", "w")
        processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        codes = [p.wait(240) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    logs = {t: (tmp_path / f"{t}.log").read_text()[-3000:] for t in ("chief", "tuner0", "tuner1")}
    assert codes == [0, 0, 0], logs
    for search in ("pnas", "random"):  # the baseline's oracle served on port + 1, as many trials as PNAS ran
        runs = trial_runs(search_dir / search)
        assert runs == {"trial_0": 1, "trial_1": 1, "trial_2": 1}, (search, runs)  # every trial ran exactly once
        workers = {open(search_dir / search / name / "runs.log").read().split()[0] for name in runs}
        assert workers <= {"tuner0", "tuner1"}
    chief_log = (tmp_path / "chief.log").read_text()
    assert "chief (oracle only)" in chief_log and "report:" in chief_log
    text = (search_dir / "report" / "report.md").read_text()
    assert "## PNAS: 3 trials, 3 completed, 0 failed" in text and "## random: 3 trials, 3 completed" in text
    names = files(search_dir / "report")
    for name in ("cell_pnas_1.png", "cell_random_1.png", "accuracy_vs_params.png", "accuracy_vs_mult_adds.png",
                 "best_so_far.png", "trials.csv", "summary.json"):
        assert name in names, names
    # restarted after the search (e.g. the chief killed while retraining): neither waits for a finished search
    for tuner_id in ("chief", "tuner0"):
        env = {**ENV, "KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": "127.0.0.1",
               "KERASTUNER_ORACLE_PORT": str(port)}
        again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
        assert "pnas: the search had finished" in again.stdout and "random: the search had finished" in again.stdout
    assert trial_runs(search_dir / "pnas") == {"trial_0": 1, "trial_1": 1, "trial_2": 1}
