"""Vanishing gradients made visible: the adding problem and the copy task at growing lengths T, for a simple
RNN, an LSTM, a GRU and a Transformer encoder at the same parameter budget, each trained the same number of steps.

    python recipes/long_term_dependency.py                  # adding + copy, T = 10, 50, 100: minutes on a CPU
    python recipes/long_term_dependency.py --tasks=copy --num_symbols=8 --copy_length=10 --train_steps=5000 \
        --lengths=10,20,50,100,200 --model_dir=runs/long_term_arjovsky   # the paper's copy task: much longer
    python recipes/long_term_dependency.py --strategy=mirrored --models=lstm,gru

Tasks (`zoo.data.synthetic_sequences`): the adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015; the
target is the sum of the two marked values of T; predicting 1 gives MSE 1/6 ≈ 0.167) and the copy task (Arjovsky
et al. 2016: --copy_length symbols, T blanks, then the symbols again; guessing gives 1/--num_symbols accuracy on
the copied part; the default, 3 symbols drawn from 4, is smaller than the paper's 10 drawn from 8 so that 500
steps suffice). Models (`zoo.models.sequence.sequence_probe.SequenceProbe`): one layer whose width is solved
so that every model has about --param_budget parameters (the counts are printed and in the CSV).

Each (task, model, T) trains --train_steps steps of Adam(--learning_rate) with the global gradient norm clipped to
--clip_norm, in `<model_dir>/runs/<task>_<model>_T<T>/`, and is evaluated on --eval_examples held-out examples.
Outputs in --model_dir: results.csv (task, model, T, params, steps, metric, value, baseline, ...), a PNG of the
metric against T per task (<task>_vs_length.png, the baseline dashed) and the gradient norm through time
||dL/dx_t|| at the longest T, at initialisation and after training (gradient_norms_<task>.png, log scale), which
shows the simple RNN's vanishing gradient. A table is printed. The models trained at the longest T are exported
to <export_dir>/<task>_<model>/<version>/ (`serving_default`: adding `inputs` [B, T, 2] -> `prediction`; copy
`tokens` [B, T] -> `logits`, `symbols`). Killed and started again with the same flags, the sweep keeps the
finished rows of results.csv and resumes the unfinished run from its checkpoint; --tasks, --models and
--lengths may grow between runs.

With the defaults (10,000 parameters, 500 steps of 128 examples, Adam 1e-2; ~6 CPU-minutes) the adding problem is
solved at T=50 by the LSTM, GRU and Transformer (MSE <= 0.003) while the simple RNN stays at the baseline at T=50
and 100; on the copy task every model copies at T=10, the simple RNN is at the baseline by T=100 (T=50 with seed
0), the GRU and Transformer still copy at T=50-100 (the GRU depends on the seed), and the LSTM, whose forget gate
starts at sigmoid(1), has not left the baseline plateau at T=50 within 500 steps (see gradient_norms_copy.png).
"""

from zoo import flags as zoo_flags
from zoo.flags import FREE, Float, Int, List

TASKS = ("adding", "copy")
MODELS = ("simple_rnn", "lstm", "gru", "transformer")
SPEC = zoo_flags.declare(
    *zoo_flags.common(train_steps=500, global_batch_size=128, learning_rate=1e-2,
                      model_dir="runs/long_term_dependency", checkpoint_every=100, log_every=100),
    List("tasks", list(TASKS), "Tasks to sweep: adding, copy.", choices=TASKS, role=FREE),
    List("models", list(MODELS), "Models to compare: simple_rnn, lstm, gru, transformer.", choices=MODELS,
         role=FREE),
    List("lengths", ["10", "50", "100"], "Sequence lengths T (adding: steps; copy: blanks between the symbols and "
         "their copy), e.g. 10,20,50,100,200.", role=FREE),
    Int("param_budget", 10000, "Trainable parameters of every model (the width is solved for it).", at_least=50),
    Float("clip_norm", 1.0, "Clip the global gradient norm to this (0: off).", at_least=0),
    Int("num_symbols", 4, "Copy task: symbols to copy from (Arjovsky et al.: 8; fewer learn faster).", at_least=2, at_most=1000),
    Int("copy_length", 3, "Copy task: symbols to remember (Arjovsky et al.: 10; fewer learn faster).", at_least=1, at_most=1000),
    Int("eval_examples", 512, "Held-out examples each run is evaluated on (rounded down to whole global batches).",
        at_least=1),
    Int("gradient_examples", 64, "Evaluation examples the gradient norms through time are averaged over (0: no "
        "gradient plots).", role=FREE, at_least=0),
    checks=[lambda hp: _lengths_problem(hp.lengths)],
)


def _lengths_problem(values):
    from zoo.recipe_support.long_term import parse_lengths

    parse_lengths(values)  # raises ZooError with one line


def main(argv):
    del argv
    import logging
    import os
    import time

    import tensorflow as tf

    from zoo import recipe_support
    from zoo.recipe_support import long_term as support
    from zoo.training.export import export_saved_model

    hp = SPEC.values()
    started = time.monotonic()
    # Every run of the sweep has its own Trainer and tf.functions: expected retracing, not a problem to report.
    logging.getLogger("tensorflow").addFilter(lambda record: "triggered tf.function retracing" not in
                                              record.getMessage())
    strategy, chief = recipe_support.setup(hp)
    lengths = support.parse_lengths(hp.lengths)
    config = hp.run_config()
    if chief:
        support.check_sweep_config(hp.model_dir, config)
    results_path = os.path.join(hp.model_dir, support.RESULTS_FILE)
    rows = support.read_results(results_path)
    trainer_args = hp.trainer_args()
    if chief:
        print(f"sweep: tasks {', '.join(hp.tasks)}; models {', '.join(hp.models)}; T {', '.join(map(str, lengths))}; "
              f"{hp.train_steps} steps each at budget {hp.param_budget:,} parameters; "
              f"{strategy.num_replicas_in_sync} replica(s)", flush=True)
    for task in hp.tasks:
        for name in hp.models:
            for length in lengths:
                spec = support.RunSpec(task=task, model=name, length=length, model_dir=hp.model_dir,
                                       param_budget=hp.param_budget, learning_rate=hp.learning_rate,
                                       clip_norm=hp.clip_norm, seed=hp.seed, num_symbols=hp.num_symbols,
                                       copy_length=hp.copy_length, eval_examples=hp.eval_examples, config=config)
                label = f"{task} {name} T={length}"
                done = support.finished(rows, task, name, length, hp.train_steps)
                if done:
                    if chief:
                        print(f"{label}: kept from {support.RESULTS_FILE} ({done['metric']} "
                              f"{float(done['value']):.4f})", flush=True)
                    continue
                latest = tf.train.latest_checkpoint(spec.run_dir)
                if chief and latest:
                    print(f"{label}: resuming from {os.path.basename(latest)}", flush=True)
                longest = length == lengths[-1]
                row, model, _ = support.train_one(spec, strategy=strategy, chief=chief, trainer_args=trainer_args,
                                                  gradient_examples=hp.gradient_examples if longest else 0,
                                                  verbose=False)
                if longest and hp.export_dir:
                    target = os.path.join(hp.export_dir, f"{task}_{name}")
                    if not support.has_export(target):
                        path = export_saved_model(target, model, support.serving_endpoints(model), strategy=strategy)
                        if chief:
                            print(f"exported {path}", flush=True)
                rows = [r for r in rows if (r["task"], r["model"], int(r["T"])) != (task, name, length)] + [row]
                if chief:
                    support.write_results(results_path, rows)
                    print(f"{label}: {row['params']} params (hidden {row['hidden_size']}), {row['steps']} steps, "
                          f"eval {row['metric']} {float(row['value']):.4f} (baseline {float(row['baseline']):.4f}), "
                          f"loss {float(row['loss']):.4f}, {row['seconds']} s", flush=True)
    if not chief:
        return
    for task in hp.tasks:
        path = os.path.join(hp.model_dir, f"{task}_vs_length.png")
        if support.plot_metric_vs_length(rows, task, path):
            print(f"wrote {path}")
        norms = {}
        for name in hp.models:
            loaded = support.load_norms(support.run_dir(hp.model_dir, task, name, lengths[-1]))
            if loaded:
                norms[name] = loaded
        if norms:
            path = os.path.join(hp.model_dir, f"gradient_norms_{task}.png")
            support.plot_gradient_norms(norms, task, lengths[-1], path)
            print(f"wrote {path}")
            for name, values in norms.items():
                init, trained = values["init"], values["trained"]
                print(f"  {task} {name} T={lengths[-1]}: ||dL/dx_t|| first/last step at init "
                      f"{init[0]:.2e}/{init[-1]:.2e}, trained {trained[0]:.2e}/{trained[-1]:.2e}")
    print("\n".join(support.format_table(rows, hp.tasks, hp.models, lengths)))
    print(f"results: {results_path}; sweep took {time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    zoo_flags.run(main)
