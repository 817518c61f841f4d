"""Fits a hidden Markov model two ways, Baum-Welch EM and gradient descent on the negative log-likelihood (the zoo
Trainer, any --strategy, resumable), and compares both with the truth; decodes with Viterbi; plots posteriors;
exports a decoding SavedModel.

    python recipes/hmm_fit.py                     # the occasionally dishonest casino, about a minute on a CPU
    python recipes/hmm_fit.py --input_csv=rolls.csv --column=face --emission=categorical --num_states=2
    python recipes/hmm_fit.py --input_csv=sensor.csv --column=x,y --emission=gaussian --num_states=3 \
        --sequence_length=400
    python recipes/hmm_fit.py --input_npy=series.npy --emission=gaussian --num_states=2

Data: by default the occasionally dishonest casino (Durbin et al. 1998): a fair die and a loaded one with
P(6) = 1/2, switching fair -> loaded with probability 0.05 and back with 0.1; --num_sequences sequences of
seeded random lengths in [--min_length, --max_length], right-padded and masked. Or a CSV column (--input_csv,
--column; categorical symbols may be integers or any strings, Gaussian values numbers, several --column values
making a vector; empty cells are missing steps) or a .npy array ([N] or [B, T] symbols; [N], [N, D] or
[B, T, D] values; NaN = missing). One long series is cut into rows of --sequence_length steps.

Fits from the same data-derived start: EM (float64, closed-form M-step, --em_iterations) and Adam on the NLL per
observed step (--train_steps, --learning_rate). Prints both fits next to the true parameters (states matched
by permutation; without a truth, the gradient fit is matched to the EM fit), the log-likelihoods, and on the
casino the Viterbi accuracy against the true dice. <model_dir>/posteriors.png: P(state | data) over time for
the first sequence with the true state shaded. The export (the EM fit; --export_fit=gradient for the other)
has `serving_default`: observations [B, T] int32 (or [B, T, D] float32) + mask [B, T] bool (True = padding)
-> `states` (Viterbi path, -1 on padding), `posteriors` [B, T, K], `log_likelihood` [B].
"""

from zoo import flags as zoo_flags
from zoo.flags import FREE, Enum, Float, Int, List, String

SPEC = zoo_flags.declare(
    *zoo_flags.common(train_steps=300, global_batch_size=8, learning_rate=0.05, model_dir="runs/hmm_fit",
                      checkpoint_every=100, log_every=50),
    Enum("emission", "categorical", ("categorical", "gaussian"), "Emission distribution: categorical symbols or "
         "Gaussian values (full covariance for vectors)."),
    Int("num_states", 2, "Hidden states K.", at_least=1, at_most=8),
    Int("num_symbols", 0, "Categorical symbols M (0: the largest symbol seen + 1).", at_least=0),
    String("input_csv", None, "A CSV file with the series (one row per time step); needs --column.", role=FREE),
    List("column", None, "The CSV column(s) to model, by header name or 0-based index.", role=FREE),
    String("input_npy", None, "A .npy array: [N] or [B, T] symbols, [N], [N, D] or [B, T, D] values (NaN = missing).",
           role=FREE),
    Int("sequence_length", 500, "Steps per row when one long series is cut into rows (0: one row).", at_least=0),
    Int("num_sequences", 8, "Casino sequences.", at_least=1),
    Int("min_length", 200, "Shortest casino sequence.", at_least=1),
    Int("max_length", 600, "Longest casino sequence.", at_least=1),
    Int("em_iterations", 200, "Baum-Welch iterations at most.", role=FREE, at_least=1),
    Float("em_tolerance", 1e-6, "Stop EM when the total log-likelihood rises by less than this.", role=FREE,
          at_least=0),
    Enum("export_fit", "em", ("em", "gradient"), "Which fit the SavedModel serves.", role=FREE),
    checks=[
        lambda hp: None if not (hp.input_csv and hp.input_npy) else "give --input_csv or --input_npy, not both",
        lambda hp: None if hp.min_length <= hp.max_length else
        f"--min_length={hp.min_length} must be at most --max_length={hp.max_length}",
        lambda hp: None if hp.column is None or hp.input_csv else "--column needs --input_csv",
    ],
)


def main(argv):
    del argv
    import hashlib
    import os
    import time

    import keras
    import numpy as np

    from zoo import recipe_support
    from zoo.errors import ZooError
    from zoo.models.sequence import LikelihoodFit
    from zoo.recipe_support import hmm as support
    from zoo.training.export import export_saved_model
    from zoo.training.trainer import Trainer

    hp = SPEC.values()
    strategy, chief = recipe_support.setup(hp)
    series = support.load_series(hp)
    k = hp.num_states
    num_symbols = hp.num_symbols or None
    if num_symbols and series.kind == "categorical" and num_symbols < series.num_symbols:
        raise ZooError(f"--num_symbols={num_symbols} but the data has symbol {series.num_symbols - 1}; raise "
                       f"--num_symbols to at least {series.num_symbols}")
    lengths = (~series.mask).sum(1)
    say = print if chief else (lambda *a, **k: None)
    say(f"data: {series.name}, {len(series.x)} sequence(s) of {lengths.min()}-{lengths.max()} observed steps "
        f"({series.observed_steps:,} in all); {k}-state HMM with {series.kind} emissions; "
        f"{strategy.num_replicas_in_sync} replica(s)", flush=True)
    start = support.starting_point(series, k, num_symbols, seed=hp.seed)

    # --- Baum-Welch EM (float64; deterministic, re-run on resume) ---
    em = support.new_hmm(series, k, num_symbols, dtype="float64")
    em.set_parameters(**start)
    started = time.monotonic()
    history = em.baum_welch(series.x, mask=series.mask, iterations=hp.em_iterations, tolerance=hp.em_tolerance)
    say(f"Baum-Welch: {len(history) - 1} iterations in {time.monotonic() - started:.1f} s; total log-likelihood "
        f"{history[0]:.3f} -> {history[-1]:.3f}", flush=True)

    # --- gradient descent on the NLL per step (the Trainer) ---
    with strategy.scope():
        hmm = support.new_hmm(series, k, num_symbols)
        hmm.set_parameters(**start)
        model = LikelihoodFit(hmm)
        model.compile(optimizer=keras.optimizers.Adam(hp.learning_rate))
    digest = hashlib.sha1(series.x.tobytes() + series.mask.tobytes()).hexdigest()
    trainer = Trainer(model, strategy=strategy, model_dir=hp.model_dir,
                      dataset_fn=support.dataset_fn(series, hp.global_batch_size, hp.seed),
                      config=hp.run_config(data=series.name, data_sha1=digest), **hp.trainer_args())
    started = time.monotonic()
    logs = trainer.train()
    if logs:
        say(f"gradient descent: NLL per step {logs['loss']:.4f} after {hp.train_steps} steps "
            f"({time.monotonic() - started:.1f} s)", flush=True)

    # --- comparison ---
    x64 = series.x if series.kind == "categorical" else series.x.astype("float64")
    em_params, gd_params = em.parameters(), hmm.parameters()
    gd_ll = float(np.sum(support.hmm_with(series, gd_params, num_symbols).log_likelihood(x64, mask=series.mask)))
    fits, decoders = {}, []
    if series.truth is not None:
        truth_hmm = support.hmm_with(series, series.truth, num_symbols)
        decoders.append(("true parameters", truth_hmm, list(range(k))))
        fits["true"] = series.truth
        reference = series.truth
        lls = {"true": float(np.sum(truth_hmm.log_likelihood(x64, mask=series.mask)))}
    else:
        reference = em_params
        lls = {}
    em_perm = support.match_states(em_params, reference, series.kind)
    gd_perm = support.match_states(gd_params, reference, series.kind)
    fits["EM"] = support.permuted(em_params, em_perm)
    fits["gradient"] = support.permuted(gd_params, gd_perm)
    lls.update({"EM": history[-1], "gradient": gd_ll})
    names = support.STATE_NAMES.get(series.name)
    say("\n".join(support.comparison_table(fits, names, series.symbols)))
    n = series.observed_steps
    say("total log-likelihood (per observed step): " + ", ".join(f"{name} {v:.3f} ({v / n:.4f})"
                                                               for name, v in lls.items()))
    paths = {}
    for name, fitted, perm in decoders + [("EM", em, em_perm), ("gradient", hmm, gd_perm)]:
        x = x64 if fitted.variable_dtype == "float64" else series.x.astype(
            "int32" if series.kind == "categorical" else "float32")
        raw = np.asarray(fitted.viterbi(x, mask=series.mask)[0])
        inverse = np.argsort(perm)  # fitted state s plays reference state inverse[s]
        paths[name] = np.where(raw >= 0, inverse[np.maximum(raw, 0)], -1)
    if series.states is not None:
        valid = ~series.mask
        say("Viterbi accuracy against the true states: " + ", ".join(
            f"{name} {np.mean(p[valid] == series.states[valid]):.4f}" for name, p in paths.items()), flush=True)
    else:
        counts = ", ".join(f"state {s}: {int(np.sum(paths['EM'] == s))}" for s in range(k))
        say(f"Viterbi states of the EM fit (steps per state): {counts}", flush=True)

    if chief:
        posteriors = np.asarray(em.posterior_marginals(x64[:1], mask=series.mask[:1]))[0][:, em_perm]
        png = support.plot_posteriors(os.path.join(hp.model_dir, "posteriors.png"), posteriors, series.mask[0],
                                      None if series.states is None else series.states[0], names)
        print(f"wrote {png}", flush=True)
    if hp.export_dir:
        served = em if hp.export_fit == "em" else hmm
        path = export_saved_model(hp.export_dir, served, support.serving_endpoints(served, series), strategy=strategy)
        say(f"exported {path} ({hp.export_fit} fit)", flush=True)


if __name__ == "__main__":
    zoo_flags.run(main)
