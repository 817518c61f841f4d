"""The trial runner of an architecture search: each KerasTuner trial trains one cell in a small PNASNet.

`CellTrialRunner` is a KerasTuner tuner (a `BaseTuner`: KerasTuner's search loop, resume, and distributed
chief/worker mode) whose `run_trial` takes a trial's values — `"cell"` (a `CellSpec` JSON string) and the
hyper-parameters `learning_rate`, `filters`, `num_cells`, `weight_decay`, `drop_path_rate` (missing ones take
the runner's defaults) — builds `PNASNet(cell=..., stem="cifar")` (the ImageNet stem above 64 pixels) inside
an `ImageClassifier`, trains it for `trial_steps` steps with `zoo.training.Trainer` under the trial's
strategy (checkpoints in `<trial dir>/train` every quarter of its steps, at least 50, so an interrupted
trial resumes), evaluates top-1 on the validation split and reports `{"val_top1", "params", "mult_adds",
"seconds"}` to the oracle. `search()` runs once per budget: its end is recorded in `<project dir>/search_done.json`,
so a finished search started again runs and serves nothing (a larger `max_trials` extends it), and a
distributed worker goes on only once the chief has recorded the end.

Trial isolation: with `trial_isolation="process"` (the default) each trial trains in a fresh Python process
(`python -m zoo.search.trial_process <trial dir>/request.json`, which trains with `train_trial`: it opens the
data, builds the strategy, writes `metrics.json` or `failure.txt`, its output in `<trial dir>/trial.log`), so the
search process's memory stays flat; in one process each trial leaves its traced training step behind (a
FuncGraph and its captured tensors that `clear_session()` and `gc` do not free): about +10 MiB per trial at the
tiny defaults (`benchmarks/search_memory.py`). `trial_isolation="none"` saves the new process's imports
(seconds a trial).

A trial whose training diverges (the trainer stops on a non-finite loss or weights), raises (out of memory,
a bad value) or whose process dies (killed, e.g. by the kernel's OOM killer; a non-zero exit) is ended FAILED
with a one-line reason, kept in `trial.message` and in `<trial dir>/failure.txt` (each start of a trial
appends a line to `<trial dir>/runs.log`), printed as one line; the search goes on (no retries, no limit on
consecutive failures).

Example:
    import keras_tuner
    from zoo.data.image_classification import open_dataset
    hp = keras_tuner.HyperParameters()
    hp.Choice("cell", ['{"blocks": [[0, 1, "sep_3x3", "identity", "add"]]}'])
    oracle = keras_tuner.oracles.RandomSearchOracle(objective=keras_tuner.Objective("val_top1", "max"),
                                                   max_trials=1, hyperparameters=hp)
    runner = CellTrialRunner(oracle, data=open_dataset("embedded"), trial_steps=5, global_batch_size=8,
                             eval_steps=2, directory="/tmp/search", project_name="demo")
    runner.search()
    runner.oracle.get_best_trials(1)[0].metrics.get_last_value("val_top1")
"""

import gc
import json
import os
import signal
import subprocess
import sys
import time

import keras
import keras_tuner

from zoo.errors import ZooError
from zoo.paths import write_json_atomically
from zoo.search.pnas_oracle import check_settings, failure_reason
from zoo.search.trial_process import DEFAULTS, OBJECTIVE, build_network, count_mult_adds, train_trial

__all__ = ["DEFAULTS", "DONE_FILE", "OBJECTIVE", "CellTrialRunner", "build_network", "count_mult_adds",
           "default_hyperparameters", "train_trial"]

ISOLATIONS = ("process", "none")
DONE_FILE = "search_done.json"  # in the project dir: the chief's (or a local search's) record of its end
WORKER_WAIT_S = 3600  # how long a worker waits, after its last trial, for the chief's record


def default_hyperparameters(learning_rate=(0.01, 0.1), filters=(8, 16), num_cells=(2, 3), weight_decay=(1e-5, 1e-3),
                            drop_path_rate=(0.0, 0.2)):
    """KerasTuner `HyperParameters` of a search: each argument a (low, high) range (a float range is sampled
    log-uniformly for learning rate and weight decay), a tuple of choices for `filters`/`num_cells`, or a single
    value (fixed)."""
    hp = keras_tuner.HyperParameters()
    for name, value, log in (("learning_rate", learning_rate, True), ("weight_decay", weight_decay, True),
                             ("drop_path_rate", drop_path_rate, False)):
        if isinstance(value, (tuple, list)) and value[0] != value[1]:
            hp.Float(name, float(value[0]), float(value[1]), sampling="log" if log and value[0] > 0 else "linear")
        else:
            hp.Fixed(name, float(value[0] if isinstance(value, (tuple, list)) else value))
    for name, value in (("filters", filters), ("num_cells", num_cells)):
        values = [int(v) for v in (value if isinstance(value, (tuple, list)) else [value])]
        if len(values) > 1:
            hp.Choice(name, values)
        else:
            hp.Fixed(name, values[0])
    return hp


class CellTrialRunner(keras_tuner.engine.base_tuner.BaseTuner):
    """KerasTuner tuner that trains one searched cell per trial (see the module docstring).

    Args:
        oracle: the search algorithm (`zoo.search.PNASOracle`, a random-search oracle, any KerasTuner oracle
            whose trials carry a "cell").
        data: a `zoo.data.image_classification.ClassificationData` (train and validation splits).
        data_args: keyword arguments of `open_dataset` that open `data` again in a trial process (default:
            `{"dataset": "embedded"}` for the embedded data; required for other data with process isolation).
        image_size: input side (default: the data's native size when <= 64, else 224).
        strategy: each trial's `tf.distribute.Strategy`, or its `--strategy` name (`zoo.training.strategy`;
            with `tpu` and `connect_timeout`); with process isolation a name (each trial process builds it).
            Default: the default strategy.
        trial_isolation: "process" (each trial in a fresh process: flat memory) or "none" (in this process).
        trial_steps: training steps per trial (the per-trial budget).
        global_batch_size: examples per step.
        eval_steps: validation batches per evaluation (None: the whole split).
        label_smoothing, bn_momentum: of every trial's model.
        nan_trials: trial numbers (0-based, in order of creation) whose learning rate is made NaN, so the run
            diverges; for tests of failure handling.
        seed: base seed (each trial seeds with seed + its number).
        verbose: show each trial's progress bar.
        directory, project_name, overwrite: KerasTuner's; with `overwrite=False` a search resumes.
    """

    def __init__(self, oracle, *, data, data_args=None, image_size=None, strategy=None, tpu=None,
                 connect_timeout=None, trial_isolation="process", trial_steps=50, global_batch_size=32,
                 eval_steps=None, label_smoothing=0.1, bn_momentum=0.9, nan_trials=(), seed=0, verbose=False,
                 directory=None, project_name=None, overwrite=False):
        if trial_isolation not in ISOLATIONS:
            raise ZooError(f"--trial_isolation={trial_isolation!r} must be one of: {', '.join(ISOLATIONS)}")
        if data_args is None and data.name == "embedded":
            data_args = {"dataset": "embedded"}
        if trial_isolation == "process" and data_args is None:
            raise ZooError(f"--trial_isolation=process needs the arguments that open {data.name!r} in a trial "
                           "process (data_args); or pass --trial_isolation=none")
        if trial_isolation == "process" and not (strategy is None or isinstance(strategy, str)):
            raise ZooError("--trial_isolation=process builds each trial's strategy in the trial process: pass "
                           "the --strategy name, not a tf.distribute.Strategy")
        oracle.max_retries_per_trial = 0
        oracle.max_consecutive_failed_trials = 10 ** 9
        self.data, self.data_args, self.trial_isolation = data, data_args, trial_isolation
        self.image_size = image_size or (data.native_size if data.native_size and data.native_size <= 64 else 224)
        self.strategy_args = {"name": strategy if isinstance(strategy, str) else "default", "tpu": tpu,
                              **({"connect_timeout": connect_timeout} if connect_timeout is not None else {})}
        self._strategy = None if strategy is None or isinstance(strategy, str) else strategy
        self.trial_steps, self.global_batch_size, self.eval_steps = trial_steps, global_batch_size, eval_steps
        self.label_smoothing, self.bn_momentum = label_smoothing, bn_momentum
        self.nan_trials, self.seed, self.verbose = set(nan_trials), seed, verbose
        self.last_process = None  # {"peak_rss_mib", "exit_code", "seconds"} of the last trial process
        self.settings = getattr(oracle, "settings", None)  # a worker checks them against the chief's
        super().__init__(oracle, hypermodel=None, directory=directory, project_name=project_name,
                         overwrite=overwrite)
        state = os.path.join(self.project_dir, "oracle.json")
        if not (overwrite or self._is_worker() or os.path.exists(self._get_tuner_fname())) and os.path.exists(state):
            # KerasTuner reloads only when this tuner's file exists, which a local tuner first writes at the end
            # of its first trial (a chief when it starts serving)
            self.oracle.reload()
        from keras_tuner.src.distribute import utils as dist_utils

        if not dist_utils.has_chief_oracle():  # local: trials left running by other tuner ids are ours to finish
            for tuner_id, trial in list(getattr(self.oracle, "ongoing_trials", {}).items()):
                if tuner_id != self.tuner_id:
                    del self.oracle.ongoing_trials[tuner_id]
                    self.oracle._retry_queue.append(trial.trial_id)

        if not dist_utils.is_chief_oracle():  # wait a little when the oracle says IDLE, instead of spinning
            create = self.oracle.create_trial

            def create_trial(tuner_id):
                trial = create(tuner_id)
                if trial.status == keras_tuner.engine.trial.TrialStatus.IDLE:
                    time.sleep(0.5)
                return trial

            self.oracle.create_trial = create_trial

    @property
    def strategy(self):
        """The strategy of in-process trials (built from its name on first use)."""
        if self._strategy is None:
            from zoo.training import strategy as strategies

            self._strategy = strategies.from_flag(**self.strategy_args)
        return self._strategy

    def save(self):
        """KerasTuner's, written atomically (the oracle's files too: `_CellOracle.save`)."""
        if not self._is_worker():
            self.oracle.save()
        write_json_atomically(self._get_tuner_fname(), self.get_state())

    def search(self, *fit_args, **fit_kwargs):
        """KerasTuner's search, run once per budget; returns the end-of-search record `{"trials", "max_trials",
        "completed"}`.

        The chief (or a local search) writes the record to `<project dir>/search_done.json` when its search
        ends. Run again, a finished search serves and runs nothing, unless the oracle's `max_trials` is now
        larger (then it goes on: restart a chief before its workers). A worker waits for the record after its
        last trial, so it goes on only once the other workers' trials have ended (up to an hour)."""
        done = os.path.join(self.project_dir, DONE_FILE)
        record = _read_json(done)
        if record and not self._is_worker() and record["max_trials"] < self.oracle.max_trials:
            os.remove(done)  # a larger budget extends the search
            record = None
        if record:
            print(f"{self.project_name}: the search had finished", flush=True)
            return record
        super().search(*fit_args, **fit_kwargs)
        if not self._is_worker():
            trials = self.oracle.trials.values()
            record = {"trials": len(trials), "max_trials": self.oracle.max_trials,
                      "completed": sum(t.status == "COMPLETED" for t in trials)}
            write_json_atomically(done, record)
            return record
        for waited in range(WORKER_WAIT_S + 1):
            if os.path.exists(done):
                return _read_json(done)
            if waited and waited % 60 == 0:
                print(f"{self.project_name}: waiting for the other workers' trials", flush=True)
            time.sleep(1)
        raise ZooError(f"the chief did not finish the {self.project_name} search within an hour of this worker's "
                       f"last trial ({done} is missing); check the chief and the other workers")

    def on_search_begin(self):
        if self._is_worker():  # before taking a trial: one the worker cannot run would wait for it
            self.oracle.get_space()  # returns once the chief serves, its oracle.json written
            self._check_chief_settings()

    def _check_chief_settings(self):
        """A worker's flags must be the chief's (its oracle.json); SettingsError, which stops the search, if not."""
        state = _read_json(os.path.join(self.project_dir, "oracle.json"))
        if self.settings is not None and state is not None:
            check_settings(self.project_dir, state.get("zoo_settings"), self.settings)

    def _try_run_and_update_trial(self, trial, *args, **kwargs):
        """KerasTuner's, without its traceback: a raising trial ends FAILED (INVALID) with a one-line message."""
        try:
            self._run_and_update_trial(trial, *args, **kwargs)
            trial.status = keras_tuner.engine.trial.TrialStatus.COMPLETED
        except keras_tuner.errors.FatalError:
            raise
        except Exception as e:  # noqa: BLE001 - as KerasTuner: the trial ends, the search goes on
            failed = isinstance(e, keras_tuner.errors.FailedTrialError)
            trial.status = "FAILED" if failed else "INVALID"
            trial.message = " ".join(f"{type(e).__name__}: {e}".split())

    def on_trial_end(self, trial):
        """Prints a failed trial's one-line reason, then ends it."""
        if trial.status in ("FAILED", "INVALID"):
            reason = failure_reason(trial, self.get_trial_dir(trial.trial_id))
            trial.message = reason
            print(f"trial {trial.trial_id} failed: {reason}", flush=True)
        super().on_trial_end(trial)

    def run_trial(self, trial, *args, **kwargs):
        """Trains and evaluates the trial's network; returns its metrics, or raises `FailedTrialError`."""
        values = dict(trial.hyperparameters.values)
        number = int(trial.trial_id) if str(trial.trial_id).isdigit() else 0
        trial_dir = self.get_trial_dir(trial.trial_id)
        os.makedirs(trial_dir, exist_ok=True)
        for name in ("metrics.json", "failure.txt"):  # of an earlier, interrupted start
            if os.path.exists(os.path.join(trial_dir, name)):
                os.remove(os.path.join(trial_dir, name))
        with open(os.path.join(trial_dir, "values.json"), "w") as f:
            json.dump(values, f)
        with open(os.path.join(trial_dir, "runs.log"), "a") as f:  # one line per start: a rerun shows up here
            f.write(f"{self.tuner_id} pid {os.getpid()} {time.strftime('%H:%M:%S')}\n")
        request = {"values": values, "trial_dir": trial_dir, "image_size": self.image_size,
                   "trial_steps": self.trial_steps, "global_batch_size": self.global_batch_size,
                   "eval_steps": self.eval_steps, "label_smoothing": self.label_smoothing,
                   "bn_momentum": self.bn_momentum, "seed": self.seed + number, "nan": number in self.nan_trials,
                   "verbose": self.verbose}
        if self.trial_isolation == "process":
            return self._run_in_process(request)
        _release_memory()
        try:
            return train_trial(request, self.data, self.strategy)
        finally:
            _release_memory()

    def _run_in_process(self, request):
        trial_dir = request["trial_dir"]
        path = os.path.join(trial_dir, "request.json")
        with open(path, "w") as f:
            json.dump({**request, "data_args": self.data_args, "strategy_args": self.strategy_args,
                       "parent_pid": os.getpid()}, f)
        start = time.time()
        with open(os.path.join(trial_dir, "trial.log"), "a") as log:
            process = subprocess.run([sys.executable, "-m", "zoo.search.trial_process", path],
                                     stdout=None if self.verbose else log, stderr=log, stdin=subprocess.DEVNULL,
                                     env={**os.environ, "PYTHONPATH": _pythonpath()})
        self.last_process = {"exit_code": process.returncode, "seconds": time.time() - start}
        self.last_process.update(_read_json(os.path.join(trial_dir, "process.json")) or {})
        metrics = _read_json(os.path.join(trial_dir, "metrics.json")) if process.returncode == 0 else None
        if metrics is not None:
            return metrics
        if os.path.exists(os.path.join(trial_dir, "failure.txt")):
            with open(os.path.join(trial_dir, "failure.txt")) as f:
                raise keras_tuner.errors.FailedTrialError(f.read().strip())
        if process.returncode < 0:
            name = signal.Signals(-process.returncode).name
            reason = f"the trial process was killed by {name}" + (
                " (out of memory?)" if name == "SIGKILL" else "")
        else:
            reason = f"the trial process exited with code {process.returncode}"
        last = _last_line(os.path.join(trial_dir, "trial.log"))
        reason = (reason + (f": {last}" if last else ""))[:500]
        with open(os.path.join(trial_dir, "failure.txt"), "w") as f:
            f.write(reason + "\n")
        raise keras_tuner.errors.FailedTrialError(reason)


def _release_memory():
    keras.backend.clear_session()
    gc.collect()


def _pythonpath():
    """This process's PYTHONPATH with the folder holding the `zoo` package first (a trial process imports it)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.pathsep.join([root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


def _read_json(path):
    """The JSON in `path`, or None when there is no such file."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _last_line(path):
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f.read()[-20000:].splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""
