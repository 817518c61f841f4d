"""PNASOracle driven with a synthetic objective (no network training): levels, beam, uniqueness, resume,
failing trials, and PNAS against random search at equal trials."""

import json
import os
import zlib

import keras_tuner
import numpy as np
import pytest

from zoo.errors import ZooError
from zoo.search import PNASOracle, SearchSpace, check_search, random_search_oracle
from zoo.search.pnas_oracle import SURROGATE_FILE

OPS = ["identity", "sep_3x3", "max_pool_3x3", "avg_pool_3x3"]
OBJECTIVE = keras_tuner.Objective("val_top1", "max")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")   # KerasTuner's threading.currentThread
# a cheap surrogate for the tests of the level logic (tracing the default 5 LSTMs costs seconds)
SMALL = dict(num_surrogates=2, surrogate={"kind": "mlp", "hidden": 16, "steps": 100})


def synthetic_score(cell):
    """Separable ops and blocks reading block outputs score higher; a deterministic per-cell jitter."""
    ops = [op for block in cell for op in block[2:]]
    deep = sum(i >= 2 for block in cell for i in block[:2])
    jitter = (zlib.crc32(json.dumps(cell).encode()) % 1000) / 1000 * 0.01
    return 0.2 + 0.1 * sum(op.startswith("sep") for op in ops) + 0.03 * deep + jitter


def hps():
    hp = keras_tuner.HyperParameters()
    hp.Float("learning_rate", 1e-3, 1e-1, sampling="log")
    hp.Fixed("filters", 8)
    return hp


def drive(oracle, directory, fail=lambda cell: False, stop_after=None):
    """Runs trials one at a time like a single KerasTuner worker; returns the trials it ran (in order)."""
    oracle._set_project_dir(str(directory), "search")
    oracle.verbose = 0
    if os.path.exists(os.path.join(str(directory), "search", "oracle.json")):
        oracle.reload()
    ran = []
    while stop_after is None or len(ran) < stop_after:
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        assert trial.status == "RUNNING", trial.status          # one worker never waits
        cell = oracle.space.from_json(trial.hyperparameters.values["cell"])
        assert 1e-3 <= trial.hyperparameters.values.get("learning_rate", 1e-2) <= 1e-1
        if fail(cell):
            trial.status, trial.message = "FAILED", "Traceback ...\nResourceExhaustedError: OOM when allocating"
        else:
            oracle.update_trial(trial.trial_id, {"val_top1": synthetic_score(cell)})
            trial.status = "COMPLETED"
        oracle.end_trial(trial)
        ran.append((trial.trial_id, cell))
    return ran


def best_so_far(ran, budget):
    scores = [synthetic_score(cell) for _, cell in ran[:budget]]
    return max(scores) if scores else 0.0


def test_levels_beam_unique_and_resume(tmp_path):
    space = SearchSpace(OPS, max_blocks=3)
    level_1 = space.num_cells(1)                                        # 8 sides → 36 cells
    budget = level_1 + 2 * 4
    oracle = PNASOracle(space, OBJECTIVE, max_trials=budget, beam=4, hyperparameters=hps(), seed=0, **SMALL)
    first = drive(oracle, tmp_path, stop_after=level_1 + 2)            # "killed" early in level 2
    assert [len(cell) for _, cell in first] == [1] * level_1 + [2, 2]
    assert os.path.exists(tmp_path / "search" / SURROGATE_FILE)

    resumed = PNASOracle(space, OBJECTIVE, max_trials=budget, beam=4, hyperparameters=hps(), seed=0, **SMALL)
    rest = drive(resumed, tmp_path)
    assert resumed.surrogate is not None and resumed.level == 3
    ran = first + rest
    sizes = [len(cell) for _, cell in ran]
    assert sizes == [1] * level_1 + [2] * 4 + [3] * 4                   # levels in order, beam K = 4 each
    assert len({space.key(cell) for _, cell in ran}) == len(ran) == budget   # unique, nothing re-run
    assert len({tid for tid, _ in ran}) == budget
    # every level-3 cell extends one of the level-2 cells (the beam)
    level_2 = {cell for _, cell in ran if len(cell) == 2}
    assert all(cell[:2] in level_2 for _, cell in ran if len(cell) == 3)
    assert set(resumed.predictions) >= {space.to_json(cell) for _, cell in ran if len(cell) > 1}
    best = check_search(resumed)[0]
    assert best.score == max(synthetic_score(cell) for _, cell in ran)


@pytest.mark.parametrize("change, fragment", [
    (dict(beam=3), "beam was 4, now 3"),
    (dict(settings={"trial_steps": 60}), "trial_steps was 50, now 60"),
    (dict(space=SearchSpace(OPS[:3], max_blocks=3)), "space was"),
    (dict(hyperparameters="wider"), "hyperparameters was"),
])
def test_resuming_with_other_settings_is_refused(tmp_path, change, fragment):
    """The saved settings are checked before KerasTuner would restore the old ranges over the new flags."""
    def make(space=SearchSpace(OPS, max_blocks=3), hyperparameters=None, beam=4, settings=None):
        if hyperparameters == "wider":
            hyperparameters = hps()
            hyperparameters.Float("weight_decay", 1e-5, 1e-3, sampling="log")
        return PNASOracle(space, OBJECTIVE, max_trials=40, beam=beam, seed=0, hyperparameters=hyperparameters or hps(),
                          settings=settings or {"trial_steps": 50}, **SMALL)

    drive(make(), tmp_path, stop_after=3)
    assert len(drive(make(), tmp_path, stop_after=1)) == 1  # the same settings resume
    with pytest.raises(ZooError, match=f"holds a search with other settings .*{fragment}.*new --search_dir$"):
        drive(make(**change), tmp_path, stop_after=1)


def test_failed_trials_are_skipped_and_all_failing_is_an_error(tmp_path):
    space = SearchSpace(OPS[:2], max_blocks=2)                          # 4 sides → 10 one-block cells
    fails = lambda cell: cell[-1][2] == "identity"                       # noqa: E731
    oracle = PNASOracle(space, OBJECTIVE, max_trials=14, beam=2, seed=0, abort_after_failures=0, **SMALL)
    ran = drive(oracle, tmp_path / "some", fail=fails)
    statuses = [oracle.trials[tid].status for tid, _ in ran]
    assert "FAILED" in statuses and len(ran) == 12
    assert all(not fails(cell[:1]) for _, cell in ran if len(cell) == 2)   # only completed cells expanded
    assert check_search(oracle)[0].status == "COMPLETED"

    oracle = PNASOracle(space, OBJECTIVE, max_trials=14, beam=2, seed=0, abort_after_failures=0, **SMALL)
    ran = drive(oracle, tmp_path / "all", fail=lambda cell: True)
    assert len(ran) == 10 and oracle.error.startswith("all 10 trials failed; first error (trial 00): OOM")
    with pytest.raises(ZooError, match=r"all 10 trials failed; first error \(trial 00\): OOM when allocating; fix "
                                       r"it .*new --search_dir$"):
        check_search(oracle)
    oracle = PNASOracle(space, OBJECTIVE, max_trials=14, beam=2, seed=0, **SMALL)   # stops after 5 failures
    assert len(drive(oracle, tmp_path / "early", fail=lambda cell: True)) == 5
    random = random_search_oracle(space, OBJECTIVE, 14, seed=0)
    assert len(drive(random, tmp_path / "random", fail=lambda cell: True)) == 5
    with pytest.raises(ZooError, match="all 5 trials failed"):
        check_search(random)


@pytest.mark.slow
def test_pnas_beats_random_search_at_equal_trials(tmp_path):
    space = SearchSpace(OPS, max_blocks=3)
    budget = space.num_cells(1) + 2 * 4
    wins, margins = 0, []
    for seed in range(3):
        pnas = drive(PNASOracle(space, OBJECTIVE, budget, beam=4, seed=seed), tmp_path / f"pnas{seed}")
        rand = drive(random_search_oracle(space, OBJECTIVE, budget, seed=seed), tmp_path / f"random{seed}")
        assert len(rand) == budget and len({space.key(c) for _, c in rand}) == budget
        margins.append(best_so_far(pnas, budget) - best_so_far(rand, budget))
        wins += margins[-1] > 0
    print("PNAS - random best-so-far at", budget, "trials:", np.round(margins, 3))
    assert np.mean(margins) > 0 and wins >= 2


class FakeTuner(keras_tuner.engine.base_tuner.BaseTuner):
    """A tuner whose trial is the synthetic score of its cell; `kill_at` raises FatalError on that run."""

    runs, kill_at = [], None

    def run_trial(self, trial, *args, **kwargs):
        cell = self.oracle.space.from_json(trial.hyperparameters.get("cell"))
        FakeTuner.runs.append(trial.trial_id)
        if len(FakeTuner.runs) == FakeTuner.kill_at:
            raise keras_tuner.errors.FatalError("killed")
        if cell[-1][3] == "max_pool_3x3":
            raise keras_tuner.errors.FailedTrialError("NaN loss")
        return {"val_top1": synthetic_score(cell)}


def test_through_a_keras_tuner_with_kill_and_resume(tmp_path, monkeypatch):
    from keras_tuner.src import config as tuner_config
    monkeypatch.setattr(tuner_config, "DEBUG", False)                   # no traceback print per failure
    space = SearchSpace(OPS[:3], max_blocks=2)                          # 6 sides → 21 one-block cells
    make = lambda: PNASOracle(space, OBJECTIVE, max_trials=24, beam=3, seed=1, **SMALL)  # noqa: E731
    FakeTuner.runs, FakeTuner.kill_at = [], 8
    tuner = FakeTuner(oracle=make(), directory=str(tmp_path), project_name="search")
    with pytest.raises(keras_tuner.errors.FatalError):
        tuner.search(verbose=0)
    resumed = FakeTuner(oracle=make(), directory=str(tmp_path), project_name="search", overwrite=False)
    resumed.search(verbose=0)
    oracle = resumed.oracle
    assert len(oracle.trials) == 24 and oracle.level == 2
    assert FakeTuner.runs.count(FakeTuner.runs[7]) == 2 and len(FakeTuner.runs) == 25   # only the killed one re-ran
    statuses = [t.status for t in oracle.trials.values()]
    assert statuses.count("FAILED") > 0 and statuses.count("COMPLETED") + statuses.count("FAILED") == 24
    assert "NaN loss" in next(t.message for t in oracle.trials.values() if t.status == "FAILED")
    best = check_search(oracle)[0]
    assert best.score == max(t.score for t in oracle.trials.values() if t.status == "COMPLETED")


def test_two_workers_wait_at_a_level_boundary(tmp_path):
    space = SearchSpace(OPS[:2], max_blocks=2)                          # 10 one-block cells, then beam 2
    oracle = PNASOracle(space, OBJECTIVE, max_trials=12, beam=2, seed=0, idle_sleep=0, **SMALL)
    oracle._set_project_dir(str(tmp_path), "search")
    oracle.verbose = 0
    running, statuses = {}, []
    for step in range(40):
        for worker in ("tuner0", "tuner1"):
            if worker not in running:
                trial = oracle.create_trial(worker)
                statuses.append((worker, trial.status))
                if trial.status == "RUNNING":
                    running[worker] = trial
        if not running:
            break
        worker = sorted(running)[step % len(running)]                  # one of them finishes
        trial = running.pop(worker)
        oracle.update_trial(trial.trial_id, {"val_top1": synthetic_score(oracle.cell_of(trial))})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert ("tuner0", "IDLE") in statuses or ("tuner1", "IDLE") in statuses   # waited for level 1's last trial
    assert len(oracle.trials) == 12 and all(t.status == "COMPLETED" for t in oracle.trials.values())
    assert [len(oracle.cell_of(t)) for _, t in sorted(oracle.trials.items())] == [1] * 10 + [2] * 2


def _finish(oracle, trial):
    oracle.update_trial(trial.trial_id, {"val_top1": synthetic_score(oracle.cell_of(trial))})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)


def test_a_restarted_oracle_leaves_running_trials_with_their_tuners(tmp_path):
    """A chief restarted while tuner0 had finished and tuner1 was still training: tuner1 ends its own trial, a
    new tuner gets a new trial (neither is started twice); a tuner killed mid-trial gets its trial back."""
    space = SearchSpace(OPS[:2], max_blocks=2)
    make = lambda: PNASOracle(space, OBJECTIVE, max_trials=12, beam=2, seed=0, idle_sleep=0, **SMALL)  # noqa: E731
    oracle = make()
    oracle._set_project_dir(str(tmp_path), "search")
    oracle.verbose = 0
    a, b, c = (oracle.create_trial(t) for t in ("tuner0", "tuner1", "tuner2"))
    _finish(oracle, a)
    restarted = make()                       # verbose: KerasTuner's display never saw b or c begin
    restarted._set_project_dir(str(tmp_path), "search")
    restarted.reload()
    assert {t: x.trial_id for t, x in restarted.ongoing_trials.items()} == {"tuner1": b.trial_id, "tuner2": c.trial_id}
    assert restarted._retry_queue == []
    _finish(restarted, restarted.trials[b.trial_id])                       # tuner1 ends its trial
    new = restarted.create_trial("tuner3")
    assert new.status == "RUNNING" and new.trial_id not in (a.trial_id, b.trial_id, c.trial_id)
    assert restarted.create_trial("tuner2").trial_id == c.trial_id          # tuner2, restarted, resumes its own
    assert restarted.trials[a.trial_id].status == restarted.trials[b.trial_id].status == "COMPLETED"
    leftovers = [n for _, _, names in os.walk(tmp_path) for n in names if ".tmp-" in n]
    assert leftovers == []                                                  # state files are written atomically
