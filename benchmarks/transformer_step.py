"""Transformer throughput: zoo against the same model assembled from keras-hub layers, in one run.

    python benchmarks/transformer_step.py                  # small and base configs (~6 min on 2 busy cores)
    python benchmarks/transformer_step.py --quick          # tiny config, fewer rounds (< 60 s idle)
    python benchmarks/transformer_step.py --configs=small --repeats=9 --output=/tmp/transformer_step.json

Two models per config, with the same weights (zoo's are copied into keras-hub's layer by layer, and their
logits compared):

- `zoo`: `zoo.create_model("transformer_*")`, a `TransformerBackbone`;
- `hub`: a functional model of keras-hub's `ReversibleEmbedding` (tied, scaled by √d_model),
  `SinePositionEncoding`, `TransformerEncoder` and `TransformerDecoder` (post-LN, ReLU) at the same config.
  keras-hub drops attention probabilities with the residual rate, so zoo runs with `attention_dropout` =
  `dropout` here (the paper, and zoo's default, use none) to do the same work.

(a) Training: each model inside the same `Translator` (label-smoothed cross-entropy over real target tokens,
Adam β=(0.9, 0.98), ε=1e-9), one `train_step` per call in a `tf.function`. Tokens/s counts source + target
tokens (the paper's batches hold ~25k of each).
(b) Decoding, beam 4: zoo's `zoo.decoding.beam_search` over `backbone.decode_step` with a cache of
--decode_length positions (what `Translator.translate` allocates for a source of width S with
`extra_length` = --decode_length - S) against keras-hub's `BeamSampler(num_beams=4)` driving the keras-hub layers with their
self- and cross-attention caches the way keras-hub's `BartSeq2SeqLM.generate_step` does (one seeding pass,
then one token per step). Both decode the same sources for exactly --decode_length steps: end-of-sentence is
disabled in both (keras-hub's sampler only stops when every beam holds it, zoo's stops earlier, which would
not be the same work). Without EOS every hypothesis has the same length, so the length penalty does not
change the ranking and both searches should return the same best sequences: the table says how many agree.
Tokens/s counts the best hypothesis' tokens per source.

Timing: after --warmup untimed calls (tracing), --repeats rounds; each round times --steps calls of each
model in turn (alternating the order). Reported: medians of per-round ratios (hub time / zoo time, >= 1.00x:
zoo is as fast or faster), tokens/s medians, and the same ratio in process CPU time. XLA off.
"""

import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

CONFIGS = {  # vocabulary, layers (each stack), heads, d_model, d_ff
    "tiny": dict(vocabulary_size=8000, num_layers=2, num_heads=4, hidden_dim=128, intermediate_dim=512),
    "small": dict(vocabulary_size=8000, num_layers=3, num_heads=4, hidden_dim=256, intermediate_dim=1024),
    "base": dict(vocabulary_size=37000, num_layers=6, num_heads=8, hidden_dim=512, intermediate_dim=2048),
}
flags.DEFINE_list("configs", ["small", "base"], f"Configs to time, of {sorted(CONFIGS)}.")
flags.DEFINE_list("shapes", ["small=32x32x32", "base=16x32x32"],
                  "Per config, training batch: <config>=<batch>x<source length>x<target length>.")
flags.DEFINE_list("steps", ["small=3", "base=1"], "Per config: timed train steps per model per round.")
flags.DEFINE_list("decode_shapes", ["small=8x16", "base=4x16"],
                  "Per config, decoding: <config>=<batch>x<source length>.")
flags.DEFINE_integer("decode_length", 32, "Tokens each beam search generates (its max length).")
flags.DEFINE_integer("beam_size", 4, "Beams for decoding.")
flags.DEFINE_float("dropout", 0.1, "Dropout rate in training (residual and attention).")
flags.DEFINE_integer("repeats", 5, "Timing rounds; medians are reported.")
flags.DEFINE_integer("warmup", 2, "Untimed calls per model first (tracing).")
flags.DEFINE_bool("quick", False, "Smoke run: tiny config (transformer_tiny's sizes, 8k vocabulary), 3 rounds "
                  "of 2 steps, 1 warm-up call, 16 decoded tokens (under a minute on 2 idle cores); overrides the "
                  "flags above.")
flags.DEFINE_string("output", None, "Also write the results to this JSON file.")
FLAGS = flags.FLAGS

BOS, NO_EOS = 2, -1  # NO_EOS: an id that never occurs, so both searches run every step


def per_config(values, config, cast):
    table = dict(v.split("=", 1) for v in values)
    if config not in table:
        raise SystemExit(f"no entry for {config!r} in {values!r}: add {config}=...")
    return cast(table[config])


def _ints(text):
    return tuple(int(n) for n in text.split("x"))


# === The two models ===


def zoo_backbone(config):
    import keras

    import zoo

    keras.utils.set_random_seed(0)
    return zoo.create_model("transformer_tiny", **CONFIGS[config], dropout=FLAGS.dropout,
                            attention_dropout=FLAGS.dropout, max_sequence_length=256)


class HubTransformer:
    """The Transformer from keras-hub layers: `model` (training, the backbone's inputs and outputs) and the
    cached decoding functions keras-hub's seq2seq models use."""

    def __init__(self, config):
        import math

        import keras
        import keras_hub

        c = CONFIGS[config]
        self.num_layers, self.num_heads, self.hidden_dim = c["num_layers"], c["num_heads"], c["hidden_dim"]
        self.embedding = keras_hub.layers.ReversibleEmbedding(
            c["vocabulary_size"], c["hidden_dim"], tie_weights=True,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=c["hidden_dim"] ** -0.5))
        self.positions = keras_hub.layers.SinePositionEncoding()
        self.dropout = keras.layers.Dropout(FLAGS.dropout)
        blocks = dict(intermediate_dim=c["intermediate_dim"], num_heads=c["num_heads"], dropout=FLAGS.dropout,
                      activation="relu", layer_norm_epsilon=1e-6, normalize_first=False)
        self.encoders = [keras_hub.layers.TransformerEncoder(**blocks) for _ in range(self.num_layers)]
        self.decoders = [keras_hub.layers.TransformerDecoder(**blocks) for _ in range(self.num_layers)]
        self.scale = math.sqrt(c["hidden_dim"])
        inputs = {n: keras.Input((None,), dtype="int32", name=n) for n in
                  ("encoder_token_ids", "encoder_padding_mask", "decoder_token_ids", "decoder_padding_mask")}
        encoded = self.encode(inputs["encoder_token_ids"], inputs["encoder_padding_mask"])
        x = self.embed(inputs["decoder_token_ids"])
        for layer in self.decoders:
            x = layer(x, encoded, decoder_padding_mask=inputs["decoder_padding_mask"],
                      encoder_padding_mask=inputs["encoder_padding_mask"])
        self.model = keras.Model(inputs, {"logits": self.logits(x)})

    def embed(self, ids, start_index=0, training=None):
        x = self.embedding(ids) * self.scale
        return self.dropout(x + self.positions(x, start_index=start_index), training=training)

    def encode(self, ids, mask, training=None):
        x = self.embed(ids, training=training)
        for layer in self.encoders:
            x = layer(x, padding_mask=mask, training=training)
        return x

    def logits(self, x):
        from keras import ops

        return ops.cast(self.embedding(x, reverse=True), "float32")

    def decode_with_cache(self, ids, encoded, mask, self_caches, cross_caches, index, cross_index):
        x = self.embed(ids, start_index=index, training=False)
        new_self, new_cross = [], []
        for layer, self_cache, cross_cache in zip(self.decoders, self_caches, cross_caches):
            x, self_cache, cross_cache = layer(
                x, encoded, encoder_padding_mask=mask, self_attention_cache=self_cache,
                self_attention_cache_update_index=index, cross_attention_cache=cross_cache,
                cross_attention_cache_update_index=cross_index, training=False)
            new_self.append(self_cache)
            new_cross.append(cross_cache)
        return self.logits(x), x, tuple(new_self), tuple(new_cross)

    def beam_search(self, source_ids, length, beam_size):
        """keras-hub's `BeamSampler` over the cached decoder, as `BartSeq2SeqLM.generate_step` drives it."""
        import keras_hub
        from keras import ops

        mask = ops.cast(ops.not_equal(source_ids, 0), "int32")
        encoded = self.encode(source_ids, mask, training=False)
        batch, source_length = ops.shape(source_ids)[0], ops.shape(source_ids)[1]
        head_dim = self.hidden_dim // self.num_heads
        prompt = ops.concatenate([ops.full((batch, 1), BOS, "int32"), ops.zeros((batch, length), "int32")], 1)
        prompt_mask = ops.concatenate([ops.ones((batch, 1), "bool"), ops.zeros((batch, length), "bool")], 1)
        empty = lambda n: tuple(ops.zeros((batch, 2, n, self.num_heads, head_dim)) for _ in self.decoders)  # noqa
        _, hidden, self_caches, cross_caches = self.decode_with_cache(  # the seeding pass over the prompt
            prompt, encoded, mask, empty(length + 1), empty(source_length), 0, 0)

        def next(prompt, cache, index):
            self_caches, encoded, mask, cross_caches = cache
            ids = ops.slice(prompt, [0, index - 1], [ops.shape(prompt)[0], 1])
            logits, hidden, self_caches, _ = self.decode_with_cache(
                ids, encoded, mask, self_caches, cross_caches, index - 1, None)
            return ops.squeeze(logits, 1), ops.squeeze(hidden, 1), (self_caches, encoded, mask, cross_caches)

        sampler = keras_hub.samplers.BeamSampler(num_beams=beam_size)
        return sampler(next, prompt, cache=(self_caches, encoded, mask, cross_caches), index=1, mask=prompt_mask,
                       stop_token_ids=None, hidden_states=hidden)[:, 1:]


def port_weights(zoo_model, hub):
    """Copies zoo's weights into the keras-hub layers (same names inside each block; see zoo's layers)."""
    pairs = [(zoo_model.token_embedding, hub.embedding)]
    pairs += list(zip(zoo_model.encoder_layers, hub.encoders)) + list(zip(zoo_model.decoder_layers, hub.decoders))
    for ours, theirs in pairs:
        mine = {_inner_path(w.path): w for w in ours.weights}
        other = {_inner_path(w.path): w for w in theirs.weights}
        if sorted(mine) != sorted(other):
            raise SystemExit(f"weights differ in {ours.name}: {sorted(set(mine) ^ set(other))}")
        for name, w in other.items():
            w.assign(mine[name])


def _inner_path(path):
    return path.split("/", 1)[1] if "/" in path else path


# === Timing ===


def _rounds(fns, steps):
    """Per model: wall and CPU seconds per call, one per round, rounds alternating the order."""
    names = list(fns)
    wall, cpu = {n: [] for n in names}, {n: [] for n in names}
    for r in range(FLAGS.repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                out = fns[name]()
            out.numpy()  # waits for the work
            wall[name].append((time.perf_counter() - start) / steps)
            cpu[name].append((time.process_time() - start_cpu) / steps)
    return wall, cpu


def _summary(wall, cpu, tokens):
    return dict(ratio=statistics.median(h / z for z, h in zip(wall["zoo"], wall["hub"])),
                cpu_ratio=statistics.median(h / z for z, h in zip(cpu["zoo"], cpu["hub"])),
                tokens_per_s={n: tokens / statistics.median(t) for n, t in wall.items()},
                ms={n: 1e3 * statistics.median(t) for n, t in wall.items()})


def time_config(config):
    import keras
    import numpy as np
    import tensorflow as tf

    from zoo.models.transformer import Translator

    clock = [time.perf_counter()]
    lap = lambda: clock.append(time.perf_counter()) or round(clock[-1] - clock[-2], 1)  # noqa: E731
    zoo_model, hub = zoo_backbone(config), HubTransformer(config)
    port_weights(zoo_model, hub)
    params = {"zoo": zoo_model.count_params(), "hub": hub.model.count_params()}
    rng = np.random.default_rng(0)
    vocab = CONFIGS[config]["vocabulary_size"]

    # Same function of the same weights? (inference, random right-padded batch)
    ids = rng.integers(4, vocab, size=(2, 2, 9)).astype("int32")
    masks = (np.arange(9)[None, None, :] < np.array([[9, 5], [9, 6]])[:, :, None]).astype("int32")
    inputs = {"encoder_token_ids": ids[0] * masks[0], "encoder_padding_mask": masks[0],
              "decoder_token_ids": ids[1] * masks[1], "decoder_padding_mask": masks[1]}
    real = masks[1].astype(bool)
    logits_diff = float(np.abs(np.asarray(zoo_model(inputs)["logits"]) - np.asarray(hub.model(inputs)["logits"])
                               )[real].max())

    seconds = {"build": lap()}

    # (a) Training
    batch, source_length, target_length = per_config(FLAGS.shapes, config, _ints)
    data = {"source_ids": tf.constant(rng.integers(4, vocab, size=(batch, source_length)), tf.int32),
            "target_ids": tf.constant(rng.integers(4, vocab, size=(batch, target_length)), tf.int32)}
    train = {}
    for name, backbone in (("zoo", zoo_model), ("hub", hub.model)):
        model = Translator(backbone)
        model.compile(optimizer=keras.optimizers.Adam(1e-4, beta_1=0.9, beta_2=0.98, epsilon=1e-9))
        model.optimizer.build(model.trainable_variables)
        train[name] = tf.function(lambda m=model: m.train_step(data)["loss"])
        for _ in range(FLAGS.warmup):
            train[name]().numpy()
    wall, cpu = _rounds(train, per_config(FLAGS.steps, config, int))
    training = _summary(wall, cpu, batch * (source_length + target_length))
    seconds["train"] = lap()

    # (b) Decoding (zoo_model and the hub layers hold the same weights again: restore after training)
    port_weights(zoo_model, hub)
    batch, source_length = per_config(FLAGS.decode_shapes, config, _ints)
    sources = tf.constant(rng.integers(4, vocab, size=(batch, source_length)), tf.int32)
    length = FLAGS.decode_length

    @tf.function
    def zoo_decode():
        from zoo.decoding import beam_search

        mask = tf.cast(tf.not_equal(sources, 0), tf.int32)
        cache = zoo_model.init_cache(sources, mask, length)
        return beam_search(zoo_model.decode_step, cache, bos_id=BOS, eos_id=NO_EOS, max_lengths=length,
                           max_length=length, beam_size=FLAGS.beam_size, alpha=0.6)["ids"]

    decode = {"zoo": zoo_decode, "hub": tf.function(lambda: hub.beam_search(sources, length, FLAGS.beam_size))}
    outputs = {name: fn().numpy() for name, fn in decode.items()}
    for _ in range(FLAGS.warmup - 1):
        for fn in decode.values():
            fn().numpy()
    agree = int(np.all(outputs["zoo"] == outputs["hub"], axis=1).sum())
    wall, cpu = _rounds(decode, 1)
    decoding = _summary(wall, cpu, batch * length)
    seconds["decode"] = lap()
    keras.backend.clear_session()
    return dict(config=config, params=params, logits_max_abs_diff=logits_diff, training=training,
                decoding=decoding, seconds=seconds, decode_agree=f"{agree}/{batch}",
                train_shape=per_config(FLAGS.shapes, config, _ints), decode_shape=(batch, source_length, length))


def main(argv):
    del argv
    if FLAGS.quick:
        FLAGS.configs, FLAGS.repeats, FLAGS.warmup, FLAGS.decode_length = ["tiny"], 3, 1, 16
        FLAGS.shapes, FLAGS.steps, FLAGS.decode_shapes = ["tiny=16x32x32"], ["tiny=2"], ["tiny=4x16"]
    print(f"float32, XLA off, dropout {FLAGS.dropout}, beam {FLAGS.beam_size}, {FLAGS.repeats} interleaved rounds "
          "(medians); ratio = keras-hub time / zoo time (>= 1.00x: zoo as fast or faster)")
    print(f"{'config':6} {'params':>11} {'logit diff':>10} | {'train BxSxT':>11} {'zoo tok/s':>9} {'hub tok/s':>9} "
          f"{'ratio':>6} {'(cpu)':>6} | {'decode BxSxT':>12} {'zoo tok/s':>9} {'hub tok/s':>9} {'ratio':>6} "
          f"{'(cpu)':>6} {'same':>5}")
    results = []
    for config in FLAGS.configs:
        r = time_config(config)
        results.append(r)
        t, d = r["training"], r["decoding"]
        params = r["params"]["zoo"] if r["params"]["zoo"] == r["params"]["hub"] else \
            f"{r['params']['zoo']}!={r['params']['hub']}"
        print(f"{config:6} {params:>11} {r['logits_max_abs_diff']:10.1e} | {'x'.join(map(str, r['train_shape'])):>11} "
              f"{t['tokens_per_s']['zoo']:9.0f} {t['tokens_per_s']['hub']:9.0f} {t['ratio']:5.2f}x "
              f"{t['cpu_ratio']:5.2f}x | {'x'.join(map(str, r['decode_shape'])):>12} "
              f"{d['tokens_per_s']['zoo']:9.1f} {d['tokens_per_s']['hub']:9.1f} {d['ratio']:5.2f}x "
              f"{d['cpu_ratio']:5.2f}x {r['decode_agree']:>5}  ({r['seconds']} s)", flush=True)
    print("params: both models' count (one number when equal); logit diff: max |zoo - hub| on real tokens with "
          "the same weights; train tokens: source + target; decode tokens: the best hypothesis' per source "
          "(T = --decode_length steps, EOS disabled in both); same: sources whose best sequence is identical.")
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    app.run(main)
