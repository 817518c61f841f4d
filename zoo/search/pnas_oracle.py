"""Progressive NAS (Liu et al. 2018) as a KerasTuner `Oracle`, and a random-search baseline on the same space.

`PNASOracle` runs sequential model-based optimization level by level:
1. level b = 1: every one-block cell of the space (or a random `first_level` of them) is a trial;
2. when every trial of level b has ended, the surrogate (`Surrogate`, an ensemble) is fit on all completed
   trials, every completed cell of level b is expanded by one block (the paper's `expand(S_b)`; after level 1
   these are the K of the beam), the expansions are ranked by predicted score and the top `beam` (K) are
   queued as level b + 1; up to `max_blocks` (B).
Each trial's values hold "cell" (the CellSpec JSON string) plus one value of every hyper-parameter the caller
declared in `hyperparameters` (drawn at random per trial; `hp.Fixed` for a fixed one). `populate_space`
answers "IDLE" while the current level still has running trials (distributed workers wait) and "STOPPED"
when level B is done (so a search uses at most |level 1| + K·(B − 1) trials of `max_trials`). Failed trials
are recorded by KerasTuner and skipped by the ranking (never parents, never surrogate data). When every trial
of level 1 failed, or the first `abort_after_failures` trials all failed, the search stops and `oracle.error`
says "all N trials failed; first error (trial K): ..."; call `check_search(oracle)` after `tuner.search()` to
raise it as a ZooError (a later level with no completed trial just ends the search with the best so far). The
oracle's state (level, queue, predictions, failure) is in oracle.json; the surrogate's weights in
pnas_surrogate.json next to it, so a restarted tuner (`overwrite=False`) continues without re-running finished
trials. The state also records the search's settings (space, hyper-parameter ranges, seed, beam, first level,
surrogate, and the caller's `settings`, e.g. steps per trial): a restart with other settings is refused with
one line instead of mixing two searches in one directory.

Example (driving the oracle directly, as the tests do; a Tuner does the same through create/end_trial):
    space = SearchSpace(ops=["identity", "sep_3x3", "max_pool_3x3"], max_blocks=2)
    oracle = PNASOracle(space, keras_tuner.Objective("val_top1", "max"), max_trials=30, beam=4)
    oracle._set_project_dir("/tmp/search", "pnas")
    trial = oracle.create_trial("tuner0")
    cell = space.from_json(trial.hyperparameters.values["cell"])
    oracle.update_trial(trial.trial_id, {"val_top1": 0.5})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
"""

import datetime
import json
import os
import time

import keras_tuner
import numpy as np
from keras_tuner.engine import trial as trial_module

from zoo.errors import ZooError
from zoo.paths import write_json_atomically
from zoo.search.space import SearchSpace
from zoo.search.surrogate import Surrogate

SURROGATE_FILE = "pnas_surrogate.json"
DONE = (trial_module.TrialStatus.COMPLETED, trial_module.TrialStatus.FAILED)


def _sample_hyperparameters(space_hps, rng):
    """One value of every active hyper-parameter of `space_hps` (a HyperParameters), drawn with `rng`."""
    hps = keras_tuner.HyperParameters()
    for hp in space_hps.space:
        hps.merge([hp])
        if hps.is_active(hp):
            hps.values[hp.name] = hp.random_sample(int(rng.integers(2**31 - 1)))
    return dict(hps.values)


def trial_number(trial):
    """A trial's number, for ordering (KerasTuner pads ids to the width of max_trials, which a resume may raise)."""
    return int(trial.trial_id) if str(trial.trial_id).isdigit() else -1


def failure_reason(trial, trial_dir=None):
    """The one-line reason a trial failed: `<trial dir>/failure.txt` (written where it ran, so a distributed
    chief reads it too: KerasTuner does not send a trial's message to the chief), else its message's last line."""
    if trial_dir and os.path.exists(os.path.join(trial_dir, "failure.txt")):
        with open(os.path.join(trial_dir, "failure.txt")) as f:
            return f.read().strip()
    lines = [line for line in (trial.message or "").strip().splitlines() if line.strip()]
    return lines[-1].split(": ", 1)[-1] if lines else ""


def all_failed_error(trials, project_dir=None):
    """The one-line error of a search none of whose `trials` completed (reasons read from `project_dir`)."""
    failed = sorted((t for t in trials if t.status == trial_module.TrialStatus.FAILED), key=trial_number)
    if not failed:
        return f"none of {len(trials)} trials ended; raise --max_trials or check the workers"
    first = failed[0]
    trial_dir = os.path.join(project_dir, f"trial_{first.trial_id}") if project_dir else None
    reason = failure_reason(first, trial_dir) or "no message"
    return (f"all {len(trials)} trials failed; first error (trial {first.trial_id}): {reason}; fix it (e.g. "
            "lower --learning_rates) and run again with a new --search_dir")


class SettingsError(ZooError, keras_tuner.errors.FatalError):
    """Settings that differ from the search's in its directory: one line, and it stops a KerasTuner search."""


def check_settings(project_dir, saved, settings):
    """Raises SettingsError unless `saved` (a search's recorded settings) equals `settings`."""
    if saved == settings:
        return
    if saved is None:
        raise SettingsError(f"{project_dir} holds a search of an older zoo version (its cells and settings are not "
                            "recorded); use a new --search_dir")
    changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
    first = changed[0]
    was, now = (json.dumps(v.get(first))[:160] for v in (saved, settings))
    raise SettingsError(f"{project_dir} holds a search with other settings ({', '.join(changed)}: {first} was "
                        f"{was}, now {now}); run with the same flags to resume it (a worker: the chief's flags), or "
                        "use a new --search_dir")


class _CellOracle(keras_tuner.Oracle):
    """Shared parts: the space, per-trial hyper-parameters, failure bookkeeping, a project-dir file."""

    def __init__(self, space, objective, max_trials, hyperparameters=None, seed=0, abort_after_failures=5,
                 settings=None, **kwargs):
        if not isinstance(space, SearchSpace):
            raise ZooError(f"space must be a zoo.search.SearchSpace, got {type(space).__name__}")
        if not max_trials or max_trials < 1:
            raise ZooError(f"max_trials must be a positive integer, got {max_trials!r}")
        objective = objective or keras_tuner.Objective("val_top1", "max")
        kwargs.setdefault("max_consecutive_failed_trials", max_trials + 1)
        super().__init__(objective=objective, max_trials=max_trials, hyperparameters=hyperparameters,
                         seed=seed + 1, **kwargs)
        self.space = space
        self.search_seed = seed
        self.abort_after_failures = abort_after_failures
        self.error = None
        self._saved_ongoing = {}
        # what a resumed search must share with the one in its directory (checked in set_state)
        self.settings = json.loads(json.dumps({
            "space": space.get_config(), "seed": seed,
            "hyperparameters": [{"class_name": h.__class__.__name__, "config": h.get_config()}
                                for h in self.hyperparameters.space], **(settings or {})}))

    def _hopeless(self):
        """Sets `error` (True) once `abort_after_failures` trials ended and every ended trial failed."""
        ended = [t for t in self.trials.values() if t.status in DONE]
        if self.abort_after_failures and len(ended) >= self.abort_after_failures and all(
                t.status == trial_module.TrialStatus.FAILED for t in ended):
            self.error = self._all_failed_error(ended)
        return self.error is not None

    def _rng(self, trial_id, salt=0):
        return np.random.default_rng([self.search_seed, salt, int(trial_id)])

    def _values(self, cell, trial_id):
        values = _sample_hyperparameters(self.hyperparameters, self._rng(trial_id, 1))
        values["cell"] = self.space.to_json(cell)
        return values

    def cell_of(self, trial):
        """The canonical cell of a trial (or trial id)."""
        trial = self.trials[trial] if isinstance(trial, str) else trial
        return self.space.from_json(trial.hyperparameters.values["cell"])

    def _all_failed_error(self, trials):
        return all_failed_error(trials, getattr(self, "_project_dir", None))

    def reload(self):
        """KerasTuner's reload, except that a trial running when the search stopped stays with the tuner that ran
        it (KerasTuner queues it for whichever tuner asks first): a restarted worker, or the local tuner, asks
        with the same KERASTUNER_TUNER_ID and gets it back, and after a chief restart the workers still training
        finish their own trials instead of a second worker starting them again. Trials that had ended (oracle.json
        is saved before `end_trial` drops a trial from `ongoing_trials`) are neither kept nor retried."""
        super().reload()
        ongoing = {tuner: t for tuner, t in self._saved_ongoing.items() if t.status not in DONE}
        kept = {t.trial_id for t in ongoing.values()}
        self._retry_queue = [t for t in self._retry_queue if self.trials[t].status not in DONE and t not in kept]
        self.ongoing_trials = ongoing

    @keras_tuner.synchronized
    def end_trial(self, trial):
        display = self._display  # a trial begun before a restart has no start time in KerasTuner's display
        display.search_start = display.search_start or datetime.datetime.now()
        display.trial_start.setdefault(trial.trial_id, datetime.datetime.now())
        display.trial_number.setdefault(trial.trial_id, len(self.trials))
        super().end_trial(trial)

    # KerasTuner writes its state files in place; a kill mid-write would leave a search that cannot resume
    def save(self):
        write_json_atomically(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        write_json_atomically(os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"), trial.get_state())

    def _file(self, name):
        if getattr(self, "_directory", None) is None:
            return None
        return os.path.join(self._project_dir, name)

    def get_state(self):
        state = super().get_state()
        state["zoo_settings"] = self.settings
        return state

    def set_state(self, state):
        # before KerasTuner restores the saved hyper-parameter ranges over ours
        check_settings(self._project_dir, state.get("zoo_settings"), self.settings)
        super().set_state(state)
        self._saved_ongoing = dict(self.ongoing_trials)  # for reload (KerasTuner's then empties them)


class PNASOracle(_CellOracle):
    """Progressive NAS over a `SearchSpace` with a surrogate-ranked beam (see the module docstring).

    Args:
        space: the `SearchSpace` (ops, max_blocks B).
        objective: what trials report and the oracle maximizes (default `Objective("val_top1", "max")`).
        max_trials: trial budget of the whole search.
        beam: K, the cells trained per level after the first.
        hyperparameters: KerasTuner `HyperParameters` sampled per trial (learning rate, width...), or None.
        num_surrogates: ensemble size of the predictor.
        seed: makes the cell order, hyper-parameter draws and the surrogate reproducible.
        abort_after_failures: stop (with `error` set) once this many trials ended and all failed (0: never).
        settings: a JSON-able dict of what else a resumed search must share (e.g. steps per trial, data).
        first_level: train only this many (random) one-block cells instead of all (None: all).
        surrogate: keyword arguments of `Surrogate` (kind "lstm"/"mlp"/"mixed", hidden, steps...).
        idle_sleep: seconds `populate_space` waits before answering IDLE (distributed workers ask again at
            once; the chief serves one request at a time, so keep it short).
        **kwargs: of `keras_tuner.Oracle` (max_retries_per_trial, max_consecutive_failed_trials: by default
            larger than the budget, so failing trials never abort the search; the level logic stops it).
    """

    def __init__(self, space, objective=None, max_trials=100, beam=8, hyperparameters=None, num_surrogates=5,
                 seed=0, first_level=None, surrogate=None, idle_sleep=0.2, **kwargs):
        super().__init__(space, objective, max_trials, hyperparameters, seed, **kwargs)
        if beam < 1:
            raise ZooError(f"beam must be at least 1, got {beam}")
        self.beam = int(beam)
        self.first_level = first_level
        self.idle_sleep = idle_sleep
        self.surrogate_args = dict(surrogate or {}, num_models=num_surrogates, seed=seed)
        self.settings.update(json.loads(json.dumps({"beam": self.beam, "first_level": first_level,
                                                    "surrogate": self.surrogate_args})))
        self.surrogate = None
        self.level = 0                 # current level b (0: not started)
        self.queue = []                # cell JSON strings still to start at this level
        self.trial_levels = {}         # trial_id -> level
        self.predictions = {}          # cell JSON -> surrogate score when it was queued
        self.surrogate_examples = 0

    # --- the search ---------------------------------------------------------------------------------------
    def populate_space(self, trial_id):
        while True:
            if self._hopeless():
                return {"status": "STOPPED"}
            if self.level == 0:
                self._start_first_level()
                continue
            if self.queue:
                cell = self.space.from_json(self.queue.pop(0))
                self.trial_levels[trial_id] = self.level
                return {"status": "RUNNING", "values": self._values(cell, trial_id)}
            level_trials = [self.trials[t] for t, b in self.trial_levels.items() if b == self.level]
            if any(t.status not in DONE for t in level_trials):
                time.sleep(self.idle_sleep)   # KerasTuner workers re-ask at once: don't let them spin
                return {"status": "IDLE"}
            completed = [t for t in level_trials if t.status == trial_module.TrialStatus.COMPLETED]
            if not completed:  # level 1: nothing to rank, an error; later: stop with the best found so far
                if self.level == 1:
                    self.error = self._all_failed_error(level_trials)
                return {"status": "STOPPED"}
            if self.level >= self.space.max_blocks:
                return {"status": "STOPPED"}
            self._next_level(completed)

    def _start_first_level(self):
        cells = self.space.cells(1)
        order = self._rng(0, 2).permutation(len(cells))
        if self.first_level:
            order = order[:self.first_level]
        self.queue = [self.space.to_json(cells[i]) for i in order]
        self.level = 1

    def _completed_data(self):
        trials = [t for t in self.trials.values() if t.status == trial_module.TrialStatus.COMPLETED
                  and t.score is not None and np.isfinite(t.score)]
        cells = [self.cell_of(t) for t in trials]
        scores = np.array([t.score for t in trials], np.float64)
        if self.objective.direction == "min":
            scores = -scores
        low, high = scores.min(), scores.max()
        scaled = 0.5 + 0 * scores if high <= low else 0.05 + 0.9 * (scores - low) / (high - low)
        return cells, scaled

    def _next_level(self, parents):
        cells, scores = self._completed_data()
        self.surrogate = Surrogate(self.space, **self.surrogate_args).fit(cells, scores)
        self.surrogate_examples = len(cells)
        self._save_surrogate()
        tried = {self.space.key(c) for c in cells} | {self.space.key(self.cell_of(t)) for t in self.trials.values()}
        candidates, seen = [], set()
        for parent in parents:
            for child in self.space.expand(self.cell_of(parent)):
                key = self.space.key(child)
                if key not in tried and key not in seen:
                    seen.add(key)
                    candidates.append(child)
        predicted = self.surrogate.predict(candidates) if candidates else np.zeros(0)
        top = np.argsort(-predicted, kind="stable")[:self.beam]
        self.queue = [self.space.to_json(candidates[i]) for i in top]
        self.predictions.update({self.queue[n]: float(predicted[i]) for n, i in enumerate(top)})
        self.level += 1

    # --- state -----------------------------------------------------------------------------------------
    def _save_surrogate(self):
        path = self._file(SURROGATE_FILE)
        if path and self.surrogate is not None:
            with open(path + ".tmp", "w") as f:
                json.dump(self.surrogate.get_state(), f)
            os.replace(path + ".tmp", path)

    def get_state(self):
        state = super().get_state()
        state["pnas"] = {"level": self.level, "queue": self.queue, "trial_levels": self.trial_levels,
                         "predictions": self.predictions, "error": self.error,
                         "surrogate_examples": self.surrogate_examples}
        return state

    def set_state(self, state):
        super().set_state(state)
        pnas = state.get("pnas")
        if pnas is None:
            return
        self.level, self.queue, self.error = pnas["level"], list(pnas["queue"]), pnas["error"]
        self.trial_levels = dict(pnas["trial_levels"])
        self.predictions = dict(pnas["predictions"])
        self.surrogate_examples = pnas.get("surrogate_examples", 0)
        path = self._file(SURROGATE_FILE)
        if path and os.path.exists(path):
            with open(path) as f:
                self.surrogate = Surrogate.from_state(self.space, json.load(f))


class RandomCellOracle(_CellOracle):
    """Random search over the same space: each trial a uniformly random new cell of a random size 1..B
    (size drawn uniformly) and random hyper-parameters. Stops when `max_trials` ran (or no new cell is found)."""

    def populate_space(self, trial_id):
        if self.error is not None:
            return {"status": "STOPPED"}
        if self._hopeless():
            return {"status": "STOPPED"}
        tried = {self.space.key(self.cell_of(t)) for t in self.trials.values()}
        rng = self._rng(trial_id, 3)
        for _ in range(100):
            cell = self.space.random_cell(rng)
            if self.space.key(cell) not in tried:
                return {"status": "RUNNING", "values": self._values(cell, trial_id)}
        return {"status": "STOPPED"}

    def get_state(self):
        state = super().get_state()
        state["random_cells"] = {"error": self.error}
        return state

    def set_state(self, state):
        super().set_state(state)
        self.error = state.get("random_cells", {}).get("error")


def random_search_oracle(space, objective=None, max_trials=100, hyperparameters=None, seed=0, **kwargs):
    """The random-search baseline over `space` and `hyperparameters` at a budget of `max_trials` trials.

    Example:
        oracle = random_search_oracle(SearchSpace(max_blocks=2), keras_tuner.Objective("val_top1", "max"), 20)
    """
    return RandomCellOracle(space, objective, max_trials, hyperparameters, seed, **kwargs)


def check_search(oracle):
    """The completed trials of a finished search (best first); ZooError when none completed (every trial failed,
    or none ran): one line with the first failure's reason and what to do.

    Call it after `tuner.search()`. A trial that completed after the oracle gave up (a distributed worker's) still
    counts.
    """
    completed = [t for t in oracle.trials.values() if t.status == trial_module.TrialStatus.COMPLETED]
    if completed:
        return oracle.get_best_trials(len(completed))
    if getattr(oracle, "error", None):
        raise ZooError(oracle.error)
    trials = sorted(oracle.trials.values(), key=trial_number)
    raise ZooError(all_failed_error(trials, getattr(oracle, "_project_dir", None)) if trials else
                   "the search ran no trial; raise --max_trials, or use a new --search_dir")
