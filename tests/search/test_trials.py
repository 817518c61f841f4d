"""The trial runner (zoo.search.trials) and the search report (zoo.search.report)."""

import json
import math
import os
import subprocess
import types

import keras_tuner
import numpy as np
import pytest

from zoo.errors import ZooError
from zoo.search import report, trials as trials_lib
from zoo.search.pnas_oracle import check_search, failure_reason
from zoo.search.trials import CellTrialRunner, build_network, count_mult_adds, default_hyperparameters

CELLS = ['{"blocks": [[0, 1, "sep_3x3", "identity", "add"]]}', '{"blocks": [[0, 0, "max_pool_3x3", "sep_3x3", "add"]]}']
ROWS = [
    {"trial": "0", "status": "COMPLETED", "cell": CELLS[0], "val_top1": 0.5, "params": 1000.0},
    {"trial": "1", "status": "FAILED", "cell": CELLS[1], "val_top1": "", "params": "", "reason": "diverged"},
    {"trial": "2", "status": "COMPLETED", "cell": CELLS[1], "val_top1": 0.7, "params": 3000.0},
    {"trial": "3", "status": "COMPLETED", "cell": CELLS[0], "val_top1": 0.6, "params": 5000.0},
]


def _full(rows):
    return [{**{c: "" for c in report.COLUMNS}, "blocks": 1, **r} for r in rows]


# === Fast ===


def test_hyperparameters_ranges_choices_and_fixed():
    hp = default_hyperparameters(learning_rate=(0.01, 0.1), filters=(8, 16), num_cells=2, weight_decay=1e-4,
                                 drop_path_rate=(0.0, 0.2))
    kinds = {p.name: type(p).__name__ for p in hp.space}
    assert kinds == {"learning_rate": "Float", "weight_decay": "Fixed", "drop_path_rate": "Float",
                     "filters": "Choice", "num_cells": "Fixed"}
    assert hp.values["num_cells"] == 2 and hp.values["weight_decay"] == pytest.approx(1e-4)


def test_trial_network_and_mult_adds():
    net = build_network({"cell": CELLS[0], "filters": 8, "num_cells": 2}, num_classes=10, image_size=32)
    assert net.stem == "cifar" and [c.name for c in net.cells] == ["cell_0", "cell_1"]
    assert net.cell["blocks"] == [[0, 1, "sep_3x3", "identity", "add"]]
    adds = count_mult_adds(net)
    # the stem conv alone: 32·32·8 outputs · 3·3·3 taps
    assert adds > 32 * 32 * 8 * 27 and adds < 10 ** 8


def test_pareto_front_and_best_so_far():
    assert [r["trial"] for r in report.pareto_front(ROWS)] == ["0", "2"]  # 3 is bigger and worse than 2
    curve = report.best_so_far([{"status": "FAILED", "val_top1": ""}] + ROWS)
    assert math.isnan(curve[0]) and curve[1:] == [0.5, 0.5, 0.7, 0.7]
    top2 = report.best_so_far(ROWS, k=2)  # the mean of the best 2 so far; nan until 2 completed
    assert all(math.isnan(v) for v in top2[:2]) and top2[2:] == [pytest.approx(0.6), pytest.approx(0.65)]


def test_report_files(tmp_path):
    rows = _full(ROWS)
    random_rows = [dict(r, val_top1=r["val_top1"] - 0.1 if r["val_top1"] != "" else "") for r in rows]
    paths = report.write_report(str(tmp_path), {"PNAS": rows, "random": random_rows}, top=2, extra_lines=["x"])
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["trials.csv", "report.md", "accuracy_vs_params.png", "best_so_far.png", "cell_pnas_1.png", "cell_pnas_2.png",
         "cell_random_1.png", "cell_random_2.png"])
    text = open(paths["markdown"]).read()
    assert "## PNAS: 4 trials, 3 completed, 1 failed" in text and "| 1 | FAILED |" in text and "diverged" in text
    assert "- PNAS: 50.0%, 50.0%, 70.0%, 70.0%" in text
    lines = open(paths["csv"]).read().splitlines()
    assert lines[0].startswith("search,trial,status") and len(lines) == 9
    for png in paths["cells"] + [paths["accuracy"], paths["best_so_far"]]:
        with open(png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


EMBEDDED = types.SimpleNamespace(name="embedded", native_size=32, num_classes=10)  # what the runner reads


def _light_runner(tmp_path, data=EMBEDDED, **kwargs):
    hp = default_hyperparameters(filters=4, num_cells=1, learning_rate=0.05, drop_path_rate=0.0)
    hp.Choice("cell", CELLS)
    oracle = keras_tuner.oracles.RandomSearchOracle(objective=keras_tuner.Objective("val_top1", "max"),
                                                   max_trials=1, hyperparameters=hp, seed=1)
    return CellTrialRunner(oracle, data=data, directory=str(tmp_path), project_name="light", **kwargs)


def test_isolation_arguments_are_checked(tmp_path):
    with pytest.raises(ZooError, match=r"^--trial_isolation='thread' must be one of: process, none$"):
        _light_runner(tmp_path, trial_isolation="thread")
    with pytest.raises(ZooError, match=r"^--trial_isolation=process builds each trial's strategy"):
        _light_runner(tmp_path, strategy=object())
    with pytest.raises(ZooError, match=r"^--trial_isolation=process needs the arguments that open 'photos'"):
        _light_runner(tmp_path, data=types.SimpleNamespace(name="photos", native_size=None, num_classes=2))
    runner = _light_runner(tmp_path, strategy="mirrored", tpu=None, connect_timeout=5.0)
    assert runner.trial_isolation == "process" and runner.data_args == {"dataset": "embedded"}
    assert runner.strategy_args == {"name": "mirrored", "tpu": None, "connect_timeout": 5.0}


def test_a_search_killed_in_its_first_trial_still_refuses_other_settings(tmp_path):
    """A local tuner's file is first written when a trial ends: the runner reloads the oracle whenever its
    oracle.json exists, so other flags are refused instead of overwriting trial 0; resumed locally, trials left
    running by another tuner id are this tuner's."""
    from zoo.search import PNASOracle, SearchSpace
    from zoo.search.pnas_oracle import SettingsError

    def runner(beam):
        oracle = PNASOracle(SearchSpace(["identity", "sep_3x3"], max_blocks=2), max_trials=12, beam=beam,
                            hyperparameters=default_hyperparameters(filters=4, num_cells=1), num_surrogates=1,
                            settings={"trial_steps": 50})
        return CellTrialRunner(oracle, data=EMBEDDED, directory=str(tmp_path), project_name="pnas")

    first = runner(beam=2)
    trial = first.oracle.create_trial("tuner1")                    # killed while it trains (a distributed run's)
    assert not os.path.exists(first._get_tuner_fname())
    with pytest.raises(SettingsError, match=r"other settings \(beam: beam was 2, now 3\)"):
        runner(beam=3)
    again = runner(beam=2)
    assert again.oracle.create_trial(again.tuner_id).trial_id == trial.trial_id   # run locally, tuner0 takes it
    again.settings = {**again.oracle.settings, "trial_steps": 999}  # a worker started with other flags
    with pytest.raises(SettingsError, match=r"trial_steps was 50, now 999.*a worker: the chief's flags"):
        again._check_chief_settings()


@pytest.mark.parametrize("code, log, reason", [
    (-9, "Killed\n", "the trial process was killed by SIGKILL (out of memory?): Killed"),
    (3, "some noise\nValueError: bad\n\n", "the trial process exited with code 3: ValueError: bad"),
])
def test_a_dead_trial_process_fails_the_trial_with_its_reason(tmp_path, monkeypatch, code, log, reason):
    runner = _light_runner(tmp_path)
    trial_dir = tmp_path / "trial_x"
    trial_dir.mkdir()
    calls = []

    def run(command, stdout, stderr, **kwargs):
        calls.append(command)
        stderr.write(log)
        stderr.flush()
        return subprocess.CompletedProcess(command, code)

    monkeypatch.setattr(trials_lib.subprocess, "run", run)
    with pytest.raises(keras_tuner.errors.FailedTrialError) as error:
        runner._run_in_process({"trial_dir": str(trial_dir), "values": {}})
    assert str(error.value) == reason and (trial_dir / "failure.txt").read_text() == reason + "\n"
    assert calls[0][1:3] == ["-m", "zoo.search.trial_process"] and runner.last_process["exit_code"] == code
    request = json.loads((trial_dir / "request.json").read_text())
    assert request["data_args"] == {"dataset": "embedded"} and request["strategy_args"]["name"] == "default"


def test_failed_trial_is_one_line_without_a_traceback(tmp_path, capsys):
    runner = _light_runner(tmp_path)
    trial = runner.oracle.create_trial("tuner0")

    def fail(*args, **kwargs):
        raise keras_tuner.errors.FailedTrialError("ZooError: training diverged by step 2")

    runner._run_and_update_trial = fail
    runner._try_run_and_update_trial(trial)
    assert trial.status == "FAILED" and trial.message == "FailedTrialError: ZooError: training diverged by step 2"
    assert failure_reason(trial) == "ZooError: training diverged by step 2"
    assert "Traceback" not in capsys.readouterr().err
    from keras_tuner.src import config as tuner_config

    assert tuner_config.DEBUG  # KerasTuner's global setting is left alone


def test_a_finished_search_is_not_run_again_unless_its_budget_grows(tmp_path, monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(CellTrialRunner, "run_trial",
                        lambda self, trial, *args, **kwargs: ran.append(trial.trial_id) or {"val_top1": 0.5})
    assert _runner(tmp_path, 2).search() == {"trials": 2, "max_trials": 2, "completed": 2}
    record = json.loads((tmp_path / "p" / trials_lib.DONE_FILE).read_text())
    assert record == {"trials": 2, "max_trials": 2, "completed": 2} and len(ran) == 2
    capsys.readouterr()
    assert _runner(tmp_path, 2).search() == record and len(ran) == 2  # restarted: nothing runs again
    assert "p: the search had finished" in capsys.readouterr().out
    assert _runner(tmp_path, 3).search() == {"trials": 3, "max_trials": 3, "completed": 3}  # a larger budget
    assert len(ran) == 3 and len(set(ran)) == 3


# === Slow: real trials ===


def _runner(tmp_path, max_trials, nan_trials=(), name="p", trial_isolation="process"):
    from zoo.data.image_classification import open_dataset

    hp = default_hyperparameters(filters=4, num_cells=1, learning_rate=0.05, drop_path_rate=0.0)
    hp.Choice("cell", CELLS)
    oracle = keras_tuner.oracles.RandomSearchOracle(objective=keras_tuner.Objective("val_top1", "max"),
                                                   max_trials=max_trials, hyperparameters=hp, seed=1)
    return CellTrialRunner(oracle, data=open_dataset("embedded"), trial_steps=2, global_batch_size=4, eval_steps=1,
                           nan_trials=nan_trials, directory=str(tmp_path), project_name=name,
                           trial_isolation=trial_isolation)


@pytest.mark.slow
@pytest.mark.parametrize("isolation", ["process", "none"])
def test_failing_trial_is_recorded_and_the_search_goes_on(tmp_path, isolation):
    runner = _runner(tmp_path, 2, nan_trials=[0], trial_isolation=isolation)
    runner.search()
    trials = [runner.oracle.trials[t] for t in sorted(runner.oracle.trials)]
    assert [t.status for t in trials] == ["FAILED", "COMPLETED"]
    reason = failure_reason(trials[0], runner.get_trial_dir(trials[0].trial_id))
    assert reason.startswith("ZooError: training diverged by step 2: non-finite"), reason
    metrics = json.load(open(os.path.join(runner.get_trial_dir(trials[1].trial_id), "metrics.json")))
    assert set(metrics) == {"val_top1", "params", "seconds", "mult_adds"} and 0 <= metrics["val_top1"] <= 1
    assert metrics["params"] > 0 and np.isfinite(metrics["mult_adds"])
    if isolation == "process":  # each trial ran in a process of its own, which reported its peak memory
        pids = {json.load(open(os.path.join(runner.get_trial_dir(t.trial_id), "process.json")))["pid"]
                for t in trials}
        assert len(pids) == 2 and os.getpid() not in pids and runner.last_process["peak_rss_mib"] > 100
    check_search(runner.oracle)  # one completed: fine
    trials[1].status = "FAILED"  # as if every trial had failed: one clear line
    with pytest.raises(ZooError, match=r"^all 2 trials failed; first error \(trial 0\): ZooError: training diverged"
                       r".*run again with a new --search_dir$"):
        check_search(runner.oracle)
    trials[1].status = "COMPLETED"
    rows = report.trial_rows(runner.oracle, runner.project_dir)
    assert rows[0]["reason"].startswith("ZooError: training diverged") and rows[1]["val_top1"] == metrics["val_top1"]
