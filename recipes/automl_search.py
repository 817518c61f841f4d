"""AutoML in one command: Progressive NAS over cells plus hyper-parameter search, then the best cell retrained
at a larger size, evaluated, exported for TF Serving and reported.

    python recipes/automl_search.py                          # tiny space on the embedded shapes, ~8 min on 2 CPUs
    python recipes/automl_search.py --max_trials=60 --max_blocks=3 --beam=8 --trial_steps=200 \
        --ops=identity,sep_3x3,sep_5x5,max_pool_3x3,avg_pool_3x3 --search_dir=runs/pnas
    python recipes/automl_search.py --dataset=cifar10 --data_dir=~/tensorflow_datasets --max_blocks=5 --ops= \
        --first_level=0 --beam=32 --max_trials=300 --trial_steps=2000 --final_steps=100000 --final_filters=48 \
        --final_cells=9
    python recipes/automl_search.py --image_dir=photos/ --image_size=64

Phases, printed as they start: (1) search: a KerasTuner search whose oracle is Progressive NAS
(`zoo.search.PNASOracle`: every one-block cell of the space, or --first_level of them, then per level the
--beam best cells expanded by one block and ranked by a --surrogate ensemble fit on the finished trials, up to
--max_blocks; at most --max_trials trials) while each trial also draws a learning rate, width F, cells N,
weight decay and drop-path rate at random from the given ranges (the surrogate ranks cells only, as the
paper's; ranges of one value fix a hyper-parameter); every trial trains `PNASNet(cell=...)` for --trial_steps
steps (`zoo.search.trials`) and reports validation top-1; (2) --baseline: random search over the same space
and ranges for as many trials as PNAS ran (the paper's comparison); (3) retrain the best cell with its
hyper-parameters at --final_filters/--final_cells for --final_steps; (4) evaluate; (5) export
(<export_dir>/<version>/, default <search_dir>/export/<version>/: `serving_default` float images ->
probabilities, top-k; `classify_bytes` JPEG/PNG bytes -> class names; assets/labels.txt) and (6) the report in
<search_dir>/report/: trials.csv, report.md, the best cells as PNGs, accuracy against parameters and against
multiply-adds with the Pareto front, best_so_far.png (PNAS vs random: the best and the mean of the best 5 so
far).

Resume: run the same command again; finished trials are not re-run (KerasTuner state in <search_dir>/pnas and
<search_dir>/random, the oracle's level, queue and surrogate; a finished search is not served again unless
--max_trials was raised, which extends it: distributed, restart the chief before the workers), an
interrupted trial continues from its last checkpoint (every quarter of its steps, at least 50) and the final
training from its own; other search settings (space, ranges, seed, beam, steps, batch, data) are refused with
one line. A trial that diverges, raises or whose process dies (e.g. killed when out of memory) is recorded FAILED
with its reason and the search goes on; when no trial completes (or the first 5 all fail) the command stops
with one error line, before the baseline. Each trial trains in a fresh process (--trial_isolation=process, the
default: it opens the data and builds --strategy itself; its output goes to <trial dir>/trial.log), so the
search's memory does not grow across trials; --trial_isolation=none trains in the search's process (see
benchmarks/search_memory.py for both).

Distributed (KerasTuner's chief/worker mode; every process runs the same command on a shared --search_dir):

    KERASTUNER_TUNER_ID=chief  KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000 python recipes/automl_search.py
    KERASTUNER_TUNER_ID=tuner0 KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000 python recipes/automl_search.py
    KERASTUNER_TUNER_ID=tuner1 ...

The chief runs the oracle only (the baseline's oracle on port + 1), then retrains, exports and reports; the
workers train trials and exit when the search is done; a worker started with other flags than the chief's
stops with one line. A worker that dies leaves its trial running and the level waiting for it: start it again
with the same KERASTUNER_TUNER_ID and it is given that trial again. A chief that dies: start it again with the
same command; the workers' running trials stay theirs, finished ones are not run again.
"""

from zoo import flags as zoo_flags
from zoo.flags import FREE, Bool, Enum, Int, String
from zoo.recipe_support.image_flags import image_data_flags

COMMON = ("strategy", "tpu", "connect_timeout", "data_dir", "download", "export_dir", "global_batch_size", "seed")

IMAGE_DATA_FLAGS, IMAGE_DATA_CHECKS = image_data_flags()
SPEC = zoo_flags.declare(
    *zoo_flags.common(global_batch_size=32, only=COMMON),
    *IMAGE_DATA_FLAGS,
    String("search_dir", "runs/automl_search", "Search state, trials, the final model and the report; a rerun "
           "with the same flags resumes here.", role=FREE),
    Int("max_trials", 20, "Trials of the search (and of the random baseline).", at_least=1),
    Int("trial_steps", 50, "Training steps of each trial.", at_least=1),
    Enum("trial_isolation", "process", ("process", "none"), "process: each trial trains in a fresh process "
         "(the search's memory stays flat; a few seconds of imports per trial); none: in this process (faster for "
         "tiny trials; memory grows about 10 MiB per trial).", role=FREE),
    Int("trial_eval_steps", 0, "Validation batches per trial (0: the whole validation split).", at_least=0),
    Int("beam", 8, "K: cells trained per level after the first.", at_least=1),
    Int("max_blocks", 2, "B: blocks of the largest cell.", at_least=1, at_most=5),
    Int("first_level", 12, "One-block cells trained at level 1 (0: all of the space's).", at_least=0),
    Enum("surrogate", "mixed", ("mixed", "lstm", "mlp"), "The accuracy predictor's ensemble of 5: LSTMs over the "
         "blocks, MLPs over their mean embedding, or both alternating (the paper: the LSTM ranks cells of one size "
         "better, the MLP generalises better to the next size)."),
    String("ops", "identity,sep_3x3,max_pool_3x3", "Comma-separated operations of the space (empty: PNAS's 8)."),
    String("learning_rates", "0.02,0.1", "low,high of the learning rate (log-uniform), or one value."),
    String("filters", "8", "Choices of F (filters of the first stage) during the search, e.g. 8,16."),
    String("num_cells", "2", "Choices of N (cells) during the search, e.g. 2,3."),
    String("weight_decays", "1e-5,1e-3", "low,high of slim's weight decay (log-uniform), or one value."),
    String("drop_path_rates", "0", "low,high of the final drop-path rate, or one value."),
    Bool("baseline", True, "Also run random search at the same number of trials (PNAS vs random curves)."),
    Int("final_steps", 300, "Training steps of the best cell at the final size (0: no retraining or export).",
        at_least=0),
    Int("final_filters", 16, "F of the retrained network.", at_least=1),
    Int("final_cells", 3, "N of the retrained network.", at_least=1),
    Int("top_k", 5, "Classes (and scores) returned by the export.", role=FREE, at_least=1),
    String("nan_trials", "", "Testing: comma-separated trial numbers whose learning rate is NaN (they diverge).",
           role=FREE),
    checks=IMAGE_DATA_CHECKS,
)


def _numbers(flag, text, kind=float, lowest=0.0, above=False, below=None):
    """One number or (low, high) of a hyper-parameter flag (ints: choices); values must be >= `lowest` (> with
    `above`) and < `below`."""
    from zoo.errors import ZooError

    try:
        values = [kind(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ZooError(f"--{flag}={text!r} must be comma-separated numbers, e.g. --{flag}=0.01,0.1") from None
    if not values or len(values) > (2 if kind is float else 99):
        raise ZooError(f"--{flag}={text!r} must be one number or low,high")
    bound = f"above {lowest}" if above else f"at least {lowest}"
    bound += f" and below {below}" if below is not None else ""
    if any(v < lowest or (above and v == lowest) or (below is not None and v >= below) for v in values):
        raise ZooError(f"--{flag}={text!r}: every value must be {bound}")
    if kind is float and len(values) == 2 and values[0] > values[1]:
        raise ZooError(f"--{flag}={text!r} is high,low: write low,high (--{flag}={values[1]:g},{values[0]:g})")
    return tuple(values) if len(values) > 1 else values[0]


def _grow_gpu_memory():
    """This process allocates GPU memory as it needs it (TensorFlow's default takes nearly all of it)."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)


def _phase(number, text):
    print(f"\n=== phase {number}: {text} ===", flush=True)


def main(argv):
    del argv
    import os
    import zlib

    import keras
    import keras_tuner
    from keras_tuner.src.distribute import utils as dist_utils

    from zoo.data import image_classification as data_lib
    from zoo.errors import ZooError
    from zoo.models.nas.image_classifier import ImageClassifier
    from zoo.paths import write_json_atomically
    from zoo.recipe_support import image_classification as support
    from zoo.registry import trainable_params
    from zoo.search import PNASOracle, SearchSpace, check_search, random_search_oracle, report
    from zoo.search.trials import CellTrialRunner, build_network, default_hyperparameters
    from zoo.training import strategy as strategies
    from zoo.training.export import export_saved_model
    from zoo.training.trainer import Trainer

    hp = SPEC.values()
    distributed, chief = dist_utils.has_chief_oracle(), dist_utils.is_chief_oracle()
    isolated = hp.trial_isolation == "process"
    if isolated:  # this process trains only the final network: let trial processes have the rest of each GPU
        _grow_gpu_memory()
    strategy = None if isolated else strategies.from_flag(hp.strategy, hp.tpu, hp.connect_timeout)
    space = SearchSpace(ops=hp.ops or None, max_blocks=hp.max_blocks)
    first_level = min(hp.first_level or space.num_cells(1), space.num_cells(1))
    if hp.max_blocks > 1 and hp.max_trials <= first_level:
        raise ZooError(f"--max_trials={hp.max_trials} is used up by the first level's {first_level} one-block cells, "
                       "so Progressive NAS would never expand a cell: raise --max_trials (e.g. to "
                       f"{first_level + hp.beam * (hp.max_blocks - 1)}) or lower --first_level")
    weight_decay = _numbers("weight_decays", hp.weight_decays)
    if isinstance(weight_decay, tuple):  # sampled log-uniform: both ends above 0
        weight_decay = _numbers("weight_decays", hp.weight_decays, above=True)
    hps = default_hyperparameters(
        learning_rate=_numbers("learning_rates", hp.learning_rates, above=True),
        filters=_numbers("filters", hp.filters, int, lowest=1),
        num_cells=_numbers("num_cells", hp.num_cells, int, lowest=1), weight_decay=weight_decay,
        drop_path_rate=_numbers("drop_path_rates", hp.drop_path_rates, below=1.0))
    data_args = {"dataset": hp.dataset, "image_dir": hp.image_dir, "data_dir": hp.data_dir, "download": hp.download,
                 "validation_fraction": hp.validation_fraction}
    data = data_lib.open_dataset(**data_args)
    image_size = hp.image_size or (32 if data.native_size and data.native_size <= 64 else 224)
    nan_trials = [int(v) for v in hp.nan_trials.split(",") if v.strip()]
    os.makedirs(hp.search_dir, exist_ok=True)
    role = "chief (oracle only)" if chief else (os.environ.get("KERASTUNER_TUNER_ID") if distributed else "local")
    budget = min(hp.max_trials, first_level + hp.beam * (hp.max_blocks - 1))
    print(f"search space: {space}; {budget} trials of {hp.trial_steps} steps (first level {first_level}, then "
          f"beam {hp.beam} per level up to {hp.max_blocks} blocks; --max_trials={hp.max_trials}); "
          f"{data.name}: {data.num_classes} classes, {image_size}x{image_size}; {role}", flush=True)
    # what a resumed search must share with the one in --search_dir (the oracles refuse other values)
    settings = {"trial_steps": hp.trial_steps, "global_batch_size": hp.global_batch_size,
                "trial_eval_steps": hp.trial_eval_steps, "image_size": image_size, "data": data.name,
                "classes": data.num_classes, "validation_fraction": hp.validation_fraction,
                "class_names_crc32": zlib.crc32("\n".join(data.class_names).encode())}

    def search(name, oracle, port_offset):
        if distributed and port_offset:  # each search has its own chief server; the baseline's on port + 1
            os.environ["KERASTUNER_ORACLE_PORT"] = str(int(os.environ["KERASTUNER_ORACLE_PORT"]) + port_offset)
        runner = CellTrialRunner(oracle, data=data, data_args=data_args, image_size=image_size,
                                 strategy=hp.strategy if isolated else strategy, tpu=hp.tpu,
                                 connect_timeout=hp.connect_timeout, trial_isolation=hp.trial_isolation,
                                 trial_steps=hp.trial_steps, global_batch_size=hp.global_batch_size,
                                 eval_steps=hp.trial_eval_steps or None, nan_trials=nan_trials, seed=hp.seed,
                                 directory=hp.search_dir, project_name=name, overwrite=False)
        record = runner.search()  # the chief's record of the end: a finished search is not run again
        if distributed and not chief and name == "pnas" and not record["completed"]:
            raise ZooError("no trial of the search completed; the chief's output says why")
        return oracle, runner.project_dir

    _phase(1, f"search (Progressive NAS, up to {budget} trials)")
    searches = {"PNAS": search("pnas", PNASOracle(
        space, keras_tuner.Objective("val_top1", "max"), max_trials=hp.max_trials, beam=hp.beam,
        hyperparameters=hps, seed=hp.seed, first_level=hp.first_level or None, surrogate={"kind": hp.surrogate},
        settings=settings), 0)}
    if not distributed or chief:
        check_search(searches["PNAS"][0])  # every trial failed: stop before the baseline
    if hp.baseline:
        # the same number of trials as PNAS ran (the chief's count; a worker's oracle is only a client)
        pnas_trials = len(searches["PNAS"][0].trials) if not distributed or chief else hp.max_trials
        _phase(2, f"baseline (random search, {pnas_trials} trials: as many as PNAS ran)")
        searches["random"] = search("random", random_search_oracle(
            space, keras_tuner.Objective("val_top1", "max"), max(1, pnas_trials), hyperparameters=hps, seed=hp.seed,
            settings=settings), 1)
    if distributed and not chief:
        print(f"{os.environ.get('KERASTUNER_TUNER_ID')}: search done; the chief retrains, exports and reports",
              flush=True)
        return
    best = check_search(searches["PNAS"][0])[0]
    values = dict(best.hyperparameters.values)
    print(f"best cell: trial {best.trial_id}, validation top-1 {best.score:.1%}: {values['cell']}", flush=True)

    lines = []
    for name, (oracle, _) in searches.items():
        done = [t for t in oracle.trials.values() if t.status == "COMPLETED"]
        if done:
            top = max(t.score for t in done)
            lines.append(f"- {name}: best validation top-1 {top:.1%} over {len(oracle.trials)} trials "
                         f"({sum(t.status in ('FAILED', 'INVALID') for t in oracle.trials.values())} failed)")
    final_dir = os.path.join(hp.search_dir, "final")
    export_dir = hp["export_dir"] if hp["export_dir"] is not None else os.path.join(hp.search_dir, "export")
    if hp.final_steps:
        _phase(3, f"retrain the best cell at F={hp.final_filters}, N={hp.final_cells} for {hp.final_steps} steps")
        final_values = {**values, "filters": hp.final_filters, "num_cells": hp.final_cells}
        keras.utils.set_random_seed(hp.seed)
        strategy = strategy or strategies.from_flag(hp.strategy, hp.tpu, hp.connect_timeout)
        with strategy.scope():
            network = build_network(final_values, data.num_classes, image_size)
            model = ImageClassifier(network, weight_decay=float(values.get("weight_decay", 5e-4)),
                                    total_steps=hp.final_steps)
            schedule = support.make_schedule("cosine", float(values.get("learning_rate", 0.05)),
                                             train_steps=hp.final_steps)
            model.compile(optimizer=support.make_optimizer("nesterov", schedule))
        print(f"final network: {trainable_params(network):,} parameters", flush=True)
        trainer = Trainer(
            model, strategy=strategy, model_dir=final_dir, global_batch_size=hp.global_batch_size,
            train_steps=hp.final_steps, checkpoint_every=max(1, hp.final_steps // 3),
            log_every=max(1, hp.final_steps // 10),
            dataset_fn=lambda ctx: data_lib.train_dataset(data, image_size, hp.global_batch_size, ctx, seed=hp.seed),
            eval_dataset_fn=lambda ctx: data_lib.eval_dataset(data, image_size, hp.global_batch_size, ctx),
            config={"values": {k: final_values[k] for k in sorted(final_values)}, "dataset": data.name,
                    "image_size": image_size})
        logs = trainer.train()
        _phase(4, "evaluate")
        results, confusion = support.final_results(logs)
        table = support.results_table(results, confusion, data.class_names, model.top_k, data.name)
        print("\n".join(table), flush=True)
        lines.append(f"- final network (F={hp.final_filters}, N={hp.final_cells}, {hp.final_steps} steps, "
                     f"{trainable_params(network):,} parameters): validation top-1 {results['top1']:.1%}")
        if export_dir:
            _phase(5, "export")
            labels = support.write_class_names(os.path.join(final_dir, "labels.txt"), data.class_names)
            path = export_saved_model(export_dir, network, support.serving_endpoints(model, data.class_names,
                                                                                     hp.top_k),
                                      assets={"labels.txt": labels}, strategy=strategy)
            print(f"exported {path}", flush=True)
            lines.append(f"- export: {path}")
    _phase(6, "report")
    paths = report.write_report(os.path.join(hp.search_dir, "report"), searches, extra_lines=lines)
    print("\n".join(lines))
    print(f"report: {paths['markdown']}", flush=True)
    write_json_atomically(os.path.join(hp.search_dir, "report", "summary.json"),
                          {"best_trial": best.trial_id, "best_values": values, "paths": paths})


if __name__ == "__main__":
    zoo_flags.run(main)
