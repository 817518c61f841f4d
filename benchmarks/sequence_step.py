"""Time-series step speed in one run: zoo's Kalman filter and HMM against TensorFlow Probability, and zoo's
LSTM language-model training against a plain Keras `fit`. Ratio = the reference's time / ours (>= 1.00x: ours
is as fast or faster; medians of per-round ratios).

    python benchmarks/sequence_step.py                      # all three parts, XLA off and on
    python benchmarks/sequence_step.py --quick              # T 200, 3 rounds, 10 LM steps per interval
    python benchmarks/sequence_step.py --parts=kalman,hmm --xla=on --repeats=9 --output=/tmp/sequence_step.json

1. Kalman: `LinearGaussianStateSpace.log_likelihood` + gradient w.r.t. its weights over (--batch, --timesteps,
   --state_dim, --observation_dim), per --missing fraction of readings masked per row, against TFP's
   `LinearGaussianStateSpaceModel(..., mask).log_prob` over its own variables (F, H, Cholesky factors of Q, R,
   prior) holding the same matrices. 2. HMM: `HiddenMarkovModel.log_likelihood` + gradient (--num_states,
   categorical or diagonal-Gaussian emissions) against `tfd.HiddenMarkovModel.log_prob` (own logits).
   Each side is one `tf.function` (XLA per --xla; a failure to compile is reported) returning the mean NLL and
   the gradients, after checking max |zoo - tfp| of the log-likelihoods (Kalman also in float64); --warmup
   untimed calls, then --repeats rounds of --steps calls each, the order rotating.
3. LM training tokens/s: `LanguageModel(zoo.create_model(--lm_model))` (state carried, clip 5, SGD) under the
   zoo `Trainer`, against `keras.Sequential([Embedding, LSTM, LSTM, Dense])` of the same sizes with `fit` and
   SGD(global_clipnorm=5) (XLA off in both), random tokens; a `fit` of --lm_steps steps runs in the Trainer's
   log hook after each of its --lm_steps-step intervals, so each pair sees the same load (goal: >= 0.90x).

Results (one run, 2 CPU cores shared with other jobs, load average 6.2 -> 8.9; float32, defaults):
    kalman missing 0.0: |zoo - tfp| 3.7e-04 (float64 4.5e-13); xla off 291 vs 737 ms 2.49x; on 54.0 vs 54.7 ms 0.99x
    kalman missing 0.1: |zoo - tfp| 3.7e-04 (float64 6.8e-13); xla off 1426 vs 2348 ms 1.41x; on 663 vs 656 ms 1.13x
    hmm categorical(8): |zoo - tfp| 4.8e-03; xla off 152 vs 218 ms 1.53x; xla on 50.0 vs 212 ms 3.82x
    lm lstm_lm_small: 4,651,600 params both; zoo Trainer 1488 tokens/s, keras fit 1526 (medians); keras/zoo 1.10x
    Other runs that day: kalman xla on 1.04x / 0.94x; hmm gaussian(8) xla off 0.86x, 1.11x, on 1.60x, 1.42x;
    lm 1.15x, 1.15x, 1.62x. Keras' `global_clipnorm` alone costs its fit ~35% (231 vs 171 ms/step). Before the
    Kalman log-likelihood folded (sum in the carry, as TFP) instead of `tf.scan`, XLA gave 0.43x and 0.36x.
"""

import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402
from timing import interleaved_rounds  # noqa: E402  (benchmarks/timing.py)

flags.DEFINE_list("parts", ["kalman", "hmm", "lm"], "What to time, of kalman, hmm, lm.")
flags.DEFINE_list("xla", ["off", "on"], "XLA settings for the Kalman and HMM steps.")
flags.DEFINE_integer("batch", 32, "Sequences per Kalman/HMM step.")
flags.DEFINE_integer("timesteps", 1000, "Steps per Kalman/HMM sequence.")
flags.DEFINE_integer("state_dim", 4, "Kalman state size.")
flags.DEFINE_integer("observation_dim", 2, "Kalman observation size.")
flags.DEFINE_list("missing", ["0", "0.1"], "Fractions of Kalman readings masked (per row, at random; 0: no mask); "
                  "each is timed.")
flags.DEFINE_integer("num_states", 16, "HMM hidden states.")
flags.DEFINE_enum("hmm_emission", "categorical", ["categorical", "gaussian"], "HMM emission distribution.")
flags.DEFINE_integer("num_symbols", 8, "Categorical HMM: symbols; Gaussian HMM: observation size.")
flags.DEFINE_string("lm_model", "lstm_lm_small", "zoo LM preset (its hidden size and layer count are copied).")
flags.DEFINE_integer("vocabulary_size", 10000, "LM vocabulary.")
flags.DEFINE_integer("lm_batch", 20, "LM sequences per step.")
flags.DEFINE_integer("lm_seq_length", 20, "LM tokens per sequence (the BPTT length).")
flags.DEFINE_integer("lm_steps", 20, "LM train steps per timed interval (each side).")
flags.DEFINE_integer("steps", 3, "Timed Kalman/HMM calls per contender per round.")
flags.DEFINE_integer("repeats", 5, "Timing rounds; medians are reported.")
flags.DEFINE_integer("warmup", 1, "Untimed calls per contender first (tracing, compilation).")
flags.DEFINE_bool("quick", False, "Smoke run: T 200, 3 rounds of 2 calls, 10 LM steps per interval.")
flags.DEFINE_string("output", None, "Also write the results to this JSON file.")
FLAGS = flags.FLAGS


def rounds(fns, steps):
    """{name: [seconds per call, one per round]} over FLAGS.repeats rounds, rotating the order."""
    return interleaved_rounds(fns, FLAGS.repeats, steps, FLAGS.warmup)


def loss_and_gradient_fn(log_likelihood, variables, xla):
    """A `tf.function` (XLA-compiled with `xla`) returning the mean NLL and its gradients, and a caller that
    waits for them; the caller raises what compiling raised."""
    import tensorflow as tf

    @tf.function(jit_compile=xla)
    def step():
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(log_likelihood())
        return loss, tape.gradient(loss, variables)

    def call():
        loss, grads = step()
        if any(g is None for g in grads):
            raise RuntimeError("a parameter got no gradient")
        return float(loss)

    return call


def compare(ours_ll, ours_vars, tfp_ll, tfp_vars):
    """Times both sides at every --xla setting; a side that fails is reported, not timed."""
    rows = []
    for xla in FLAGS.xla:
        fns, failed = {}, {}
        for name, ll, variables in (("zoo", ours_ll, ours_vars), ("tfp", tfp_ll, tfp_vars)):
            fn = loss_and_gradient_fn(ll, variables, xla == "on")
            try:
                fn()
                fns[name] = fn
            except Exception as e:  # noqa: BLE001 (reported: which side fails to compile)
                failed[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
        times = rounds(fns, FLAGS.steps) if fns else {}
        row = dict(xla=xla, failed=failed, ms={n: 1e3 * statistics.median(t) for n, t in times.items()})
        if len(fns) == 2:  # the median of per-round ratios
            row["ratio"] = statistics.median(t / z for z, t in zip(times["zoo"], times["tfp"]))
        rows.append(row)
    return rows


# === 1. Kalman ===


def kalman_problem(missing, dtype="float32"):
    """Seeded parameters (a 2-D constant-velocity-like model padded to --state_dim/--observation_dim),
    observations simulated from them, and a per-row mask (True: missing)."""
    import numpy as np

    s, o, b, t = FLAGS.state_dim, FLAGS.observation_dim, FLAGS.batch, FLAGS.timesteps
    rng = np.random.default_rng(0)
    transition = 0.98 * np.eye(s) + 0.1 * np.eye(s, k=s // 2)
    observation = np.eye(o, s) + 0.05 * rng.normal(size=(o, s))
    q = 0.05 * rng.normal(size=(s, s))
    transition_noise = q @ q.T + 0.01 * np.eye(s)
    r = 0.3 * rng.normal(size=(o, o))
    observation_noise = r @ r.T + 0.2 * np.eye(o)
    initial_mean, initial_covariance = np.zeros(s), np.eye(s)
    states = rng.multivariate_normal(initial_mean, initial_covariance, size=b)
    ys = []
    for _ in range(t):
        ys.append(states @ observation.T + rng.multivariate_normal(np.zeros(o), observation_noise, size=b))
        states = states @ transition.T + rng.multivariate_normal(np.zeros(s), transition_noise, size=b)
    observations = np.stack(ys, 1).astype(dtype)
    mask = rng.random((b, t)) < missing if missing > 0 else None
    params = dict(transition=transition, observation=observation, transition_noise=transition_noise,
                  observation_noise=observation_noise, initial_mean=initial_mean,
                  initial_covariance=initial_covariance)
    return {k: v.astype(dtype) for k, v in params.items()}, observations, mask


def tfp_kalman(params, observations, mask):
    """(log-likelihood fn, variables) of TFP's LGSSM over TFP-side variables holding the same matrices."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    chol = np.linalg.cholesky
    v = {"transition": params["transition"], "observation": params["observation"], "m0": params["initial_mean"],
         "q_tril": chol(params["transition_noise"]), "r_tril": chol(params["observation_noise"]),
         "p0_tril": chol(params["initial_covariance"])}
    v = {k: tf.Variable(value) for k, value in v.items()}
    x = tf.constant(observations)
    m = None if mask is None else tf.constant(mask)

    def log_likelihood():
        model = tfd.LinearGaussianStateSpaceModel(
            num_timesteps=x.shape[1],
            transition_matrix=tf.linalg.LinearOperatorFullMatrix(v["transition"]),
            transition_noise=tfd.MultivariateNormalTriL(scale_tril=v["q_tril"]),
            observation_matrix=tf.linalg.LinearOperatorFullMatrix(v["observation"]),
            observation_noise=tfd.MultivariateNormalTriL(scale_tril=v["r_tril"]),
            initial_state_prior=tfd.MultivariateNormalTriL(loc=v["m0"], scale_tril=v["p0_tril"]),
            mask=m)
        return model.log_prob(x)

    return log_likelihood, list(v.values())


def zoo_kalman(params, observations, mask):
    """(log-likelihood fn, variables) of zoo's layer with the same matrices."""
    import tensorflow as tf

    from zoo.layers.kalman import LinearGaussianStateSpace

    layer = LinearGaussianStateSpace(FLAGS.state_dim, FLAGS.observation_dim, dtype=observations.dtype.name)
    layer.set_parameters(**params)
    x = tf.constant(observations)
    m = None if mask is None else tf.constant(mask)
    return (lambda: layer.log_likelihood(x, mask=m)), layer.trainable_variables


def max_difference(ll_a, ll_b):
    """max |a() - b()| over the batch, both run once in a `tf.function` (eager scans are slow)."""
    import numpy as np
    import tensorflow as tf

    return float(np.abs(tf.function(ll_a)().numpy() - tf.function(ll_b)().numpy()).max())


def time_kalman():
    import numpy as np
    import tensorflow as tf

    results = []
    for missing in (float(m) for m in FLAGS.missing):
        params, observations, mask = kalman_problem(missing)
        ours, ours_vars = zoo_kalman(params, observations, mask)
        theirs, their_vars = tfp_kalman(params, observations, mask)
        p64, x64, _ = kalman_problem(missing, "float64")
        ours64, theirs64 = zoo_kalman(p64, x64, mask)[0], tfp_kalman(p64, x64, mask)[0]
        results.append(dict(missing=missing, ll_max_abs_diff_float32=max_difference(ours, theirs),
                            ll_max_abs_diff_float64=max_difference(ours64, theirs64),
                            ll_mean=float(np.mean(tf.function(theirs64)().numpy())),
                            rows=compare(ours, ours_vars, theirs, their_vars)))
    return results


# === 2. HMM ===


def hmm_problem():
    """Seeded sticky HMM parameters and observations sampled from them."""
    import numpy as np

    k, m, b, t = FLAGS.num_states, FLAGS.num_symbols, FLAGS.batch, FLAGS.timesteps
    rng = np.random.default_rng(1)
    initial = rng.dirichlet(np.ones(k))
    transition = 0.8 * np.eye(k) + 0.2 * rng.dirichlet(np.ones(k), size=k)
    if FLAGS.hmm_emission == "categorical":
        emission = dict(probs=rng.dirichlet(np.ones(m) * 0.5, size=k))
    else:
        emission = dict(means=rng.normal(scale=2.0, size=(k, m)), scales=rng.uniform(0.5, 1.5, size=(k, m)))
    states, cumulative = [rng.choice(k, size=b, p=initial)], np.cumsum(transition, 1)
    for _ in range(1, t):  # inverse-CDF draws of each next state
        states.append((rng.random((b, 1)) > cumulative[states[-1]]).sum(1).clip(0, k - 1))
    states = np.stack(states, 1)
    if FLAGS.hmm_emission == "categorical":
        c = np.cumsum(emission["probs"], 1)[states]
        observations = (rng.random((b, t, 1)) > c).sum(-1).clip(0, m - 1).astype("int32")
    else:
        observations = (emission["means"][states] + emission["scales"][states] * rng.normal(size=(b, t, m)))
        observations = observations.astype("float32")
    return dict(initial=initial, transition=transition, **emission), observations


def tfp_hmm(params, observations):
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    v = {"initial": tf.Variable(np.log(params["initial"]), dtype=tf.float32),
         "transition": tf.Variable(np.log(params["transition"]), dtype=tf.float32)}
    if FLAGS.hmm_emission == "categorical":
        v["emission"] = tf.Variable(np.log(params["probs"]), dtype=tf.float32)
    else:
        v["means"] = tf.Variable(params["means"], dtype=tf.float32)
        v["log_scales"] = tf.Variable(np.log(params["scales"]), dtype=tf.float32)
    x = tf.constant(observations)

    def log_likelihood():
        emission = (tfd.Categorical(logits=v["emission"]) if FLAGS.hmm_emission == "categorical" else
                    tfd.MultivariateNormalDiag(v["means"], tf.exp(v["log_scales"])))
        return tfd.HiddenMarkovModel(tfd.Categorical(logits=v["initial"]), tfd.Categorical(logits=v["transition"]),
                                     emission, num_steps=x.shape[1]).log_prob(x)

    return log_likelihood, list(v.values())


def zoo_hmm(params, observations):
    import tensorflow as tf

    from zoo.layers.hmm import HiddenMarkovModel
    from zoo.layers.hmm_emissions import CategoricalEmission, GaussianEmission

    if FLAGS.hmm_emission == "categorical":
        emission = CategoricalEmission(FLAGS.num_symbols)
        emission_params = dict(emission_probs=params["probs"])
    else:
        emission = GaussianEmission(FLAGS.num_symbols, covariance="diag")
        emission_params = dict(means=params["means"], covariances=params["scales"] ** 2)
    layer = HiddenMarkovModel(FLAGS.num_states, emission=emission)
    layer.set_parameters(initial=params["initial"], transition=params["transition"], **emission_params)
    x = tf.constant(observations)
    return (lambda: layer.log_likelihood(x)), layer.trainable_variables


def time_hmm():
    import numpy as np
    import tensorflow as tf

    params, observations = hmm_problem()
    ours, ours_vars = zoo_hmm(params, observations)
    theirs, their_vars = tfp_hmm(params, observations)
    return [dict(ll_max_abs_diff_float32=max_difference(ours, theirs), ll_mean=float(np.mean(
        tf.function(theirs)().numpy())), rows=compare(ours, ours_vars, theirs, their_vars))]


# === 3. LM training ===


def time_lm():
    import keras
    import numpy as np
    import tensorflow as tf

    import zoo
    from zoo.models.sequence import LanguageModel
    from zoo.training.strategy import from_flag
    from zoo.training.trainer import Trainer

    strategy = from_flag("default")
    with strategy.scope():
        keras.utils.set_random_seed(0)
        backbone = zoo.create_model(FLAGS.lm_model, vocabulary_size=FLAGS.vocabulary_size)
        model = LanguageModel(backbone, per_replica_batch_size=FLAGS.lm_batch, clip_norm=5.0)
        model.compile(optimizer=keras.optimizers.SGD(1.0))
    keras.utils.set_random_seed(0)  # the reference: the same sizes, stateless, Keras' own `fit`
    hidden, vocab = backbone.hidden_dim, FLAGS.vocabulary_size
    reference = keras.Sequential([keras.Input((FLAGS.lm_seq_length,), dtype="int32"),
                                  keras.layers.Embedding(vocab, hidden)]
                                 + [keras.layers.LSTM(hidden, return_sequences=True)
                                    for _ in range(backbone.num_layers)] + [keras.layers.Dense(vocab)])
    reference.compile(optimizer=keras.optimizers.SGD(1.0, global_clipnorm=5.0),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    b, t = FLAGS.lm_batch, FLAGS.lm_seq_length  # 16 random batches, the same tokens on both sides
    tokens = np.random.default_rng(2).integers(0, vocab, size=(16, b, t + 1)).astype("int32")
    keras_ds = tf.data.Dataset.from_tensor_slices((tokens[:, :, :-1], tokens[:, :, 1:])).repeat()
    ours = {"token_ids": tokens[:, :, :-1], "targets": tokens[:, :, 1:], "weights": np.ones((16, b, t), "float32"),
            "reset": np.zeros((16, b), "float32")}

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

    every, samples, state, clock = FLAGS.lm_steps, [], {}, Clock()
    total = every * (FLAGS.repeats + 2)

    def hook(step, logs):
        now = time.perf_counter()
        if "traced" not in state:  # first interval: tracing on our side; trace Keras' fit too
            reference.fit(keras_ds, epochs=1, steps_per_epoch=every, shuffle=False, verbose=0)
            state["traced"] = True
        elif step < total:  # the last interval also writes the final checkpoint
            reference.fit(keras_ds, epochs=1, steps_per_epoch=every, shuffle=False, verbose=0, callbacks=[clock])
            samples.append((now - state["time"], time.perf_counter() - clock.start))
        state["time"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as model_dir:
        Trainer(model, strategy=strategy, model_dir=model_dir, global_batch_size=FLAGS.lm_batch, train_steps=total,
                dataset_fn=lambda ctx: tf.data.Dataset.from_tensor_slices(ours).repeat().prefetch(2),
                checkpoint_every=10**9, log_every=every, verbose=False, hooks=[hook]).train()
    tokens = every * FLAGS.lm_batch * FLAGS.lm_seq_length
    return dict(params={"zoo": backbone.count_params(), "keras": reference.count_params()},
                ratio=statistics.median(k / z for z, k in samples),
                tokens_per_s={"zoo": tokens / statistics.median(z for z, _ in samples),
                              "keras": tokens / statistics.median(k for _, k in samples)})


def print_filter(part, cases):
    """One line per Kalman/HMM case, then one per XLA setting."""
    for r in cases:
        shape = (f"B{FLAGS.batch} T{FLAGS.timesteps} S{FLAGS.state_dim} O{FLAGS.observation_dim} missing "
                 f"{r['missing']}" if part == "kalman" else
                 f"B{FLAGS.batch} T{FLAGS.timesteps} K{FLAGS.num_states} {FLAGS.hmm_emission}({FLAGS.num_symbols})")
        diffs = ", ".join(f"{k[len('ll_max_abs_diff_'):]} {v:.1e}" for k, v in r.items() if k.startswith("ll_max"))
        print(f"{part} {shape}: mean log-likelihood {r['ll_mean']:.2f}, max |zoo - tfp| {diffs}")
        for row in r["rows"]:
            text = " ".join(f"{n} {t:8.1f} ms" for n, t in row.get("ms", {}).items())
            ratio = f" tfp/zoo {row['ratio']:5.2f}x" if "ratio" in row else ""
            failed = "".join(f"  [{n} fails: {why}]" for n, why in row["failed"].items())
            print(f"  xla {row['xla']:3}: {text}{ratio}{failed}", flush=True)


def main(argv):
    del argv
    if FLAGS.quick:
        FLAGS.timesteps, FLAGS.repeats, FLAGS.steps, FLAGS.lm_steps = 200, 3, 2, 10
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notes of the one-off parity checks
    load = os.getloadavg()
    print(f"float32, {FLAGS.repeats} rounds (medians); ratio = reference time / zoo time (>= 1.00x: zoo as fast or "
          f"faster); load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs", flush=True)
    results = {"load_average": [load]}
    for part in FLAGS.parts:
        start = time.perf_counter()
        r = results[part] = {"kalman": time_kalman, "hmm": time_hmm, "lm": time_lm}[part]()
        if part != "lm":
            print_filter(part, r)
        else:
            print(f"lm {FLAGS.lm_model} V={FLAGS.vocabulary_size} {FLAGS.lm_batch}x{FLAGS.lm_seq_length}: params "
                  f"zoo {r['params']['zoo']} keras {r['params']['keras']}; tokens/s zoo {r['tokens_per_s']['zoo']:.0f}"
                  f" keras fit {r['tokens_per_s']['keras']:.0f}; keras/zoo {r['ratio']:.2f}x (goal >= 0.90x)")
        print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    results["load_average"].append(os.getloadavg())
    print("load average at the end {:.2f} {:.2f} {:.2f}".format(*results["load_average"][-1]))
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(results, f, indent=2, default=str)


if __name__ == "__main__":
    app.run(main)
