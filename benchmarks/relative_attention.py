"""Relative-attention speed in one run: zoo's XLNet against keras-hub's, and Transformer-XL's memory at
evaluation against recomputing the context.

    python benchmarks/relative_attention.py                    # both parts, XLA off and on (~4 min, 2 busy cores)
    python benchmarks/relative_attention.py --quick            # tiny XLNet only, XLA off, 3 rounds (< 1 min)
    python benchmarks/relative_attention.py --parts=txl --xla=on --output=/tmp/relative_attention.json

Ratios are median reference time / median our time (the same medians as the tokens/s, so the two agree;
>= 1.00x: ours is as fast or faster), with the min-max of the per-round ratios: --repeats interleaved rounds
of --steps calls each (timing.interleaved_rounds).

(a) XLNet training tokens/s: `zoo.models.xlnet.XLNetBackbone` against keras-hub's `XLNetBackbone` at the same
    config (--xlnet_configs: "tiny" = H 32, 2 layers, V 1,000, smaller than the xlnet_tiny preset; "base" = base
    width with --base_layers layers), keras-hub's weights
    copied into ours by path (`xlnet_checkpoints.load_keras_hub_weights`). One call = loss (mean of the
    output squared) + gradients of every weight, --dropout in both (attention dropout 0: keras-hub has none),
    in one `tf.function` (XLA per --xla), batches --batches x --seq_length, random tokens, two segments.
    Reported per batch, inference mode, on the timed inputs: max |zoo - hub|, and for each model max |row i
    of the batch - row i run alone| (batch invariance).
(b) Transformer-XL evaluation tokens/s at a small config (4 layers, d 128, cutoffs 2000/5000), batches
    --txl_batches: segments of --segment tokens with a memory of --context - --segment positions (one `run`
    per segment; the memory carried) against recomputing the whole --context window for every segment
    ("recompute", predicting its last --segment tokens) and the paper's vanilla evaluation (§4: the window
    slides by one token, one prediction per window). Each call also takes the adaptive-softmax NLL of its
    predictions. First check: the last segment of a stream of exactly --context tokens gives the same hidden
    states either way (max |diff| reported).

Results of one run of the defaults on the idle 2-core machine (load 0.9; float32). hub/zoo time ratio (min-max
over rounds), tokens/s zoo vs hub:
    xlnet tiny (51,232 params)    batch 1: xla off 1.21x (1.01-1.35) 16,184 vs 13,358; on 1.13x (0.47-1.13)
                                  batch 8: xla off 1.03x (0.99-1.16) 60,009 vs 58,375; on 0.79x (0.68-0.96)
    xlnet base width, 2 layers    batch 1: xla off 1.01x (0.92-1.04) 1,476 vs 1,454; on 0.96x (0.92-1.04)
        (39,933,696 params)       batch 8: xla off 1.01x (0.95-1.02) 2,374 vs 2,358; on 1.01x (1.01-1.06)
    max |zoo - hub|: tiny 4.8e-07 (batch 1), 4.1e-05 (batch 8); base 3.0e-04 (batch 1), 2.8e-02 (batch 8).
        Row i of the batch vs row i alone: zoo 0 in every case; keras-hub 0 at batch 1 but 4.1e-05 (tiny) and
        2.8e-02 (base) at batch 8, so the batch-8 differences are keras-hub's outputs depending on the batch.
        (The base batch-1 3.0e-04 is expected: keras-hub's "gelu" is the exact erf one, ours XLNet's tanh.)
    transformer_xl (memory == recompute exactly at both batches, max |diff| 0), memory tokens/s and speed-up:
        batch 1: xla off 5,736 tok/s, x1.35 (1.24-1.45) vs recompute, x40 (35-48) vs vanilla;
                 xla on  9,381 tok/s, x1.44 (1.35-1.53) vs recompute; vanilla not run (see below)
        batch 8: xla off 17,162 tok/s, x1.68 (1.50-1.83) vs recompute, x49 (45-56) vs vanilla;
                 xla on  20,822 tok/s, x1.64 (1.56-1.72) vs recompute, x42 (40-44) vs vanilla
    Under XLA at batch 1 the vanilla call (a single prediction) fails to compile: `AdaptiveSoftmax.nll` of
    one row with tail clusters (tf.where rows of bound 1, XLA RET_CHECK in LogSoftmax); the run skips it.
"""

import json
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402
from timing import interleaved_rounds  # noqa: E402  (benchmarks/timing.py)

XLNET_CONFIGS = {
    "tiny": dict(vocabulary_size=1000, num_heads=2, hidden_dim=32, intermediate_dim=64, num_layers=2),
    "base": dict(vocabulary_size=32000, num_heads=12, hidden_dim=768, intermediate_dim=3072),
}
flags.DEFINE_list("parts", ["xlnet", "txl"], "What to time, of xlnet, txl.")
flags.DEFINE_list("xla", ["off", "on"], "XLA settings.")
flags.DEFINE_list("xlnet_configs", ["tiny", "base"], f"XLNet configs, of {sorted(XLNET_CONFIGS)}.")
flags.DEFINE_integer("base_layers", 2, "Layers of the base-width XLNet (12 in xlnet_base).")
flags.DEFINE_list("batches", ["1", "8"], "XLNet batch sizes.")
flags.DEFINE_integer("seq_length", 64, "XLNet tokens per sequence.")
flags.DEFINE_list("txl_batches", ["1", "8"], "Transformer-XL evaluation batch sizes.")
flags.DEFINE_integer("segment", 32, "Transformer-XL evaluation segment (tgt_len).")
flags.DEFINE_integer("context", 128, "Transformer-XL attention length: memory + segment.")
flags.DEFINE_float("dropout", 0.1, "XLNet dropout in both models (0: no dropout RNG in the step).")
flags.DEFINE_integer("steps", 3, "Timed calls per contender per round.")
flags.DEFINE_integer("repeats", 5, "Timing rounds; medians and the spread of per-round ratios are reported.")
flags.DEFINE_integer("warmup", 1, "Untimed calls per contender first (tracing, compilation).")
flags.DEFINE_bool("quick", False, "Smoke run: tiny XLNet at batch 1 and 8, XLA off, 3 rounds of 3 calls.")
flags.DEFINE_string("output", None, "Also write the results to this JSON file.")
FLAGS = flags.FLAGS


def ratio(times, ours, reference):
    """(median reference time / median our time, [min, max] of the per-round ratios): the first agrees with
    the tokens/s (both from median times), the second is the round-to-round spread."""
    per_round = [r / o for o, r in zip(times[ours], times[reference])]
    return statistics.median(times[reference]) / statistics.median(times[ours]), [min(per_round), max(per_round)]


def compiled(fn, xla):
    import tensorflow as tf

    return tf.function(fn, jit_compile=xla)


# === (a) XLNet ===


def xlnet_pair(name):
    """(ours, keras-hub's), the same weights."""
    import keras_hub

    from zoo.models.xlnet import XLNetBackbone, load_keras_hub_weights

    config = dict(XLNET_CONFIGS[name])
    config.setdefault("num_layers", FLAGS.base_layers)
    hub = keras_hub.models.XLNetBackbone(**config, dropout=FLAGS.dropout)
    ours = XLNetBackbone(**config, dropout=FLAGS.dropout, attention_dropout=0.0)
    ours(xlnet_inputs(config, 1))
    load_keras_hub_weights(ours, hub)
    return ours, hub


def max_abs_diffs(ours, hub, inputs):
    """Inference mode, on the timed inputs: max |zoo - hub|, and per model max |row i of the batch - row i run
    alone| (batch invariance)."""
    import numpy as np

    def run(model, x):
        return np.asarray(model(x, training=False))

    batched = {"zoo": run(ours, inputs), "hub": run(hub, inputs)}
    rows = {k: max(float(np.abs(batched[k][i] - run(m, {n: v[i:i + 1] for n, v in inputs.items()})[0]).max())
                   for i in range(len(inputs["token_ids"]))) for k, m in (("zoo", ours), ("hub", hub))}
    return float(np.abs(batched["zoo"] - batched["hub"]).max()), rows


def xlnet_inputs(config, batch):
    import numpy as np

    rng = np.random.default_rng(batch)
    t = FLAGS.seq_length
    return {"token_ids": rng.integers(5, config["vocabulary_size"], (batch, t)).astype("int32"),
            "segment_ids": np.repeat(np.r_[np.zeros(t // 2), np.ones(t - t // 2 - 1), [2]][None], batch,
                                     0).astype("int32"),
            "padding_mask": np.ones((batch, t), "int32")}


def train_call(model, inputs, xla):
    import tensorflow as tf

    inputs = {k: tf.constant(v) for k, v in inputs.items()}
    variables = model.trainable_variables

    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(inputs, training=True)))
        return loss, tape.gradient(loss, variables)

    step = compiled(step, xla)
    return lambda: float(step()[0])


def time_xlnet():
    rows = []
    for name in FLAGS.xlnet_configs:
        ours, hub = xlnet_pair(name)
        params = ours.count_params()
        for batch in (int(b) for b in FLAGS.batches):
            inputs = xlnet_inputs(XLNET_CONFIGS[name], batch)
            diff, row_diff = max_abs_diffs(ours, hub, inputs)
            for xla in FLAGS.xla:
                fns = {"zoo": train_call(ours, inputs, xla == "on"), "hub": train_call(hub, inputs, xla == "on")}
                times = interleaved_rounds(fns, FLAGS.repeats, FLAGS.steps, FLAGS.warmup)
                tokens = batch * FLAGS.seq_length
                median_ratio, spread = ratio(times, "zoo", "hub")
                rows.append(dict(config=name, params=params, max_abs_diff=diff, batch=batch, xla=xla,
                                 row_vs_alone_max_abs_diff=row_diff,
                                 tokens_per_s={k: tokens / statistics.median(v) for k, v in times.items()},
                                 ratio=median_ratio, ratio_min_max=spread))
                print_xlnet_row(rows[-1])
    return rows


def print_xlnet_row(r):
    row = r["row_vs_alone_max_abs_diff"]
    print(f"xlnet {r['config']:5} {r['params']:>11,} batch {r['batch']:>2} |zoo-hub| {r['max_abs_diff']:.1e} "
          f"(row vs alone: zoo {row['zoo']:.1e}, hub {row['hub']:.1e}) xla {r['xla']:3} | "
          f"zoo {r['tokens_per_s']['zoo']:9.0f} tok/s  hub {r['tokens_per_s']['hub']:9.0f} "
          f"tok/s  hub/zoo time {r['ratio']:.2f}x ({r['ratio_min_max'][0]:.2f}-{r['ratio_min_max'][1]:.2f})",
          flush=True)


# === (b) Transformer-XL ===


def txl_backbone():
    from zoo.models.transformer_xl import TransformerXLBackbone

    return TransformerXLBackbone(vocabulary_size=10000, num_layers=4, hidden_dim=128, num_heads=4, head_dim=32,
                                 intermediate_dim=512, cutoffs=(2000, 5000), div_val=1, dropout=0.0,
                                 mem_len=FLAGS.context - FLAGS.segment)


def time_txl():
    model = txl_backbone()
    rows = []
    for b in (int(b) for b in FLAGS.txl_batches):
        rows += time_txl_batch(model, b)
    return rows


def time_txl_batch(model, b):
    import numpy as np
    import tensorflow as tf

    s, c = FLAGS.segment, FLAGS.context
    mem = c - s
    rng = np.random.default_rng(b)
    stream = tf.constant(rng.integers(0, 10000, (b, c + 1)).astype("int32"))

    def with_memory(tokens, targets, memories, length):
        hidden, memories, length = model.run(tokens, memories, length, mem_len=mem, clamp_len=-1,
                                             same_length=False, training=False)
        return tf.reduce_sum(model.adaptive_softmax.nll(hidden, targets)), hidden, memories, length

    def recompute(window, targets):   # the window's last len(targets) positions are predicted
        hidden = model(window)[:, -targets.shape[1]:]
        return tf.reduce_sum(model.adaptive_softmax.nll(hidden, targets)), hidden

    # Equivalence: a stream of exactly `context` tokens, segment by segment from empty memory, vs one window.
    memories, length = None, None
    for start in range(0, c, s):
        _, hidden, memories, length = with_memory(stream[:, start:start + s], stream[:, start + 1:start + s + 1],
                                                  memories, length)
    _, full = recompute(stream[:, :c], stream[:, c - s + 1:c + 1])
    diff = float(tf.reduce_max(tf.abs(hidden - full)))
    print(f"txl batch {b} memory vs recompute, last segment of {c} tokens: max |diff| {diff:.1e}", flush=True)

    rows = []
    for xla in FLAGS.xla:
        step_mem, step_full = compiled(with_memory, xla == "on"), compiled(recompute, xla == "on")
        state = {"memories": memories, "length": length}
        segment, targets = stream[:, c - s:c], stream[:, c - s + 1:c + 1]

        def memory_call():   # one new segment with a full memory (the steady state)
            loss, _, new_memories, new_length = step_mem(segment, targets, state["memories"], state["length"])
            state["memories"], state["length"] = new_memories, new_length   # carried, as in evaluation
            return float(loss)

        fns = {"memory": memory_call,
               "recompute": lambda: float(step_full(stream[:, :c], targets)[0]),
               "vanilla": lambda: float(step_full(stream[:, :c], stream[:, c:c + 1])[0])}
        try:
            fns["vanilla"]()
        except tf.errors.InternalError as error:   # XLA: adaptive_softmax.nll of a single row (B 1 x 1 target)
            print(f"txl xla {xla} batch {b}: vanilla skipped, {str(error).splitlines()[0][:100]}", flush=True)
            del fns["vanilla"]
        times = interleaved_rounds(fns, FLAGS.repeats, FLAGS.steps, FLAGS.warmup)
        predicted = {"memory": b * s, "recompute": b * s, "vanilla": b}
        tps = {k: predicted[k] / statistics.median(v) for k, v in times.items()}
        per_token = {k: [t / predicted[k] for t in v] for k, v in times.items()}   # seconds per prediction
        vs_recompute, spread_recompute = ratio(per_token, "memory", "recompute")
        vs_vanilla, spread_vanilla = ratio(per_token, "memory", "vanilla") if "vanilla" in fns else (
            None, [None, None])
        row = dict(xla=xla, batch=b, segment=s, context=c, max_abs_diff=diff, tokens_per_s=tps,
                   speedup_vs_recompute=vs_recompute, speedup_vs_recompute_min_max=spread_recompute,
                   speedup_vs_vanilla=vs_vanilla, speedup_vs_vanilla_min_max=spread_vanilla)
        rows.append(row)
        vanilla = " |" if vs_vanilla is None else (
            f"  vanilla {tps['vanilla']:7.0f} | x{vs_vanilla:.0f} ({spread_vanilla[0]:.0f}-{spread_vanilla[1]:.0f}) "
            "vs vanilla,")
        print(f"txl xla {xla:3} batch {b} segment {s} context {c} | memory {tps['memory']:8.0f} tok/s  recompute "
              f"{tps['recompute']:8.0f}{vanilla} x{vs_recompute:.2f} ({spread_recompute[0]:.2f}-"
              f"{spread_recompute[1]:.2f}) vs recompute", flush=True)
    return rows


def main(argv):
    del argv
    if FLAGS.quick:
        FLAGS.parts, FLAGS.xla, FLAGS.xlnet_configs, FLAGS.repeats, FLAGS.steps = ["xlnet"], ["off"], ["tiny"], 3, 3
    import tensorflow as tf

    print(f"float32, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, TF {tf.__version__}, "
          f"{FLAGS.repeats} interleaved rounds of {FLAGS.steps} calls", flush=True)
    results = {"flags": {k: FLAGS[k].value for k in ("xla", "batches", "seq_length", "base_layers", "segment",
                                                       "context", "txl_batches", "dropout", "repeats",
                                                       "steps")}}
    if "xlnet" in FLAGS.parts:
        results["xlnet"] = time_xlnet()
    if "txl" in FLAGS.parts:
        results["transformer_xl"] = time_txl()
    results["load_after"] = os.getloadavg()[0]
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    app.run(main)
