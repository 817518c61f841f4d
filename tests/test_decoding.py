"""Greedy and beam search (`zoo/decoding.py`) against brute-force enumeration on toy step functions."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from zoo.decoding import beam_search, greedy_search, length_penalty
from zoo.errors import ZooError


class PrefixModel:
    """A toy decoder whose next-token distribution depends on the whole prefix and on the example.

    logits = scale · sin(Σ_{j ≤ index} W[example, j, input_j]); the cache carries the inputs so far and the
    example id, so a wrong beam reorder or a cross-example gather changes the results.
    """

    def __init__(self, seed, num_examples, max_length, vocab, bos_id, scale=2.0):
        rng = np.random.default_rng(seed)
        self.w = rng.normal(size=[num_examples, max_length, max(vocab, bos_id + 1), vocab]).astype(np.float32)
        self.max_length, self.vocab, self.bos_id, self.scale = max_length, vocab, bos_id, scale
        self.table = tf.constant(self.w)

    def cache(self, examples):
        return {"prefix": tf.zeros([len(examples), self.max_length], tf.int32),
                "example": tf.constant(examples, tf.int32)}

    def step(self, tokens, cache, index):
        positions = tf.range(self.max_length)
        prefix = tf.where(tf.equal(positions, index)[None, :], tokens[:, None], cache["prefix"])
        picked = tf.gather(tf.gather(self.table, cache["example"]), prefix, batch_dims=2)   # [N, T, V]
        used = tf.cast(positions <= index, tf.float32)[None, :, None]
        logits = self.scale * tf.sin(tf.reduce_sum(picked * used, axis=1))
        return logits, {"prefix": prefix, "example": cache["example"]}

    def log_prob(self, example, sequence):
        """log P(sequence) in float64, frozen at its end (the oracle)."""
        inputs = [self.bos_id] + list(sequence[:-1])
        total, s = 0.0, np.zeros(self.vocab)
        for t, token in enumerate(sequence):
            s = s + self.w[example, t, inputs[t]].astype(np.float64)
            logits = self.scale * np.sin(s)
            total += logits[token] - np.log(np.sum(np.exp(logits)))
        return total


def all_sequences(vocab, eos_id, max_len):
    """Every sequence that ends in EOS within max_len tokens, or reaches max_len without one."""
    others = [t for t in range(vocab) if t != eos_id]
    out = []
    for n in range(1, max_len + 1):
        for body in itertools.product(others, repeat=n - 1):
            out.append(body + (eos_id,))
        if n == max_len:
            out.extend(itertools.product(others, repeat=n))
    return out


def brute_force(model, example, max_len, alpha, eos_id):
    """(best sequence, its score, its log-prob) by enumeration."""
    best = None
    for seq in all_sequences(model.vocab, eos_id, max_len):
        lp = model.log_prob(example, seq)
        score = lp / ((5.0 + len(seq)) / 6.0) ** alpha
        if best is None or score > best[1]:
            best = (seq, score, lp)
    return best


def run(search, model, examples, max_lengths, **kw):
    out = search(model.step, model.cache(examples), bos_id=model.bos_id, eos_id=kw.pop("eos_id", 2),
                 max_lengths=tf.constant(max_lengths, tf.int32), max_length=model.max_length, **kw)
    return {key: value.numpy() for key, value in out.items()}


def test_length_penalty():
    np.testing.assert_allclose(length_penalty(tf.constant([1, 5, 55]), 0.6).numpy(),
                               [1.0, (10 / 6) ** 0.6, 10.0 ** 0.6], rtol=1e-6)
    assert length_penalty(7, 0.0).numpy() == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_one_equals_greedy(seed):
    model = PrefixModel(seed, num_examples=4, max_length=10, vocab=6, bos_id=6, scale=1.5)
    args = (model, [0, 1, 2, 3], [10, 7, 3, 10])
    greedy = run(greedy_search, model, *args[1:], eos_id=2)
    beam = run(beam_search, model, *args[1:], eos_id=2, beam_size=1, alpha=0.0)
    for key in ("ids", "lengths", "log_probs"):
        np.testing.assert_array_equal(beam[key], greedy[key])
    np.testing.assert_array_equal(greedy["scores"], greedy["log_probs"])
    for b, ex in enumerate([0, 1, 2, 3]):   # the greedy log-prob is the oracle's, the output padded after EOS
        seq = greedy["ids"][b, :greedy["lengths"][b]]
        assert np.all(greedy["ids"][b, greedy["lengths"][b]:] == 0)
        assert seq[-1] == 2 or len(seq) == [10, 7, 3, 10][b]
        assert abs(model.log_prob(ex, seq) - greedy["log_probs"][b]) < 1e-5


@pytest.mark.parametrize("alpha", [0.0, 0.6])
@pytest.mark.parametrize("seed", [3, 4])
def test_wide_beam_equals_brute_force(alpha, seed):
    # 3 output tokens {0, 1, 2}, EOS 2, BOS 3 outside the output vocabulary; per-example lengths 3, 4, 5.
    model = PrefixModel(seed, num_examples=3, max_length=5, vocab=3, bos_id=3)
    max_lengths = [3, 4, 5]
    assert len(all_sequences(3, 2, 5)) == 63
    out = run(beam_search, model, [0, 1, 2], max_lengths, beam_size=64, alpha=alpha, pad_id=-1)
    for ex, max_len in enumerate(max_lengths):
        seq, score, lp = brute_force(model, ex, max_len, alpha, eos_id=2)
        n = out["lengths"][ex]
        assert tuple(out["ids"][ex, :n]) == seq
        assert np.all(out["ids"][ex, n:] == -1)
        assert abs(out["scores"][ex] - score) < 1e-5 and abs(out["log_probs"][ex] - lp) < 1e-5


def test_all_beams_sorted_and_exact():
    # With every sequence in the beam, the K finished hypotheses are the K best sequences, in order.
    model = PrefixModel(5, num_examples=1, max_length=3, vocab=3, bos_id=3)
    out = run(beam_search, model, [0], [3], beam_size=16, alpha=0.6, return_all_beams=True, pad_id=-1)
    ranked = sorted(((model.log_prob(0, s) / ((5 + len(s)) / 6) ** 0.6, s) for s in all_sequences(3, 2, 3)),
                    reverse=True)
    assert len(ranked) == 15 and np.isneginf(out["scores"][0, 15]) and out["lengths"][0, 15] == 0
    np.testing.assert_allclose(out["scores"][0, :15], [s for s, _ in ranked], atol=1e-5)
    for k, (_, seq) in enumerate(ranked):
        assert tuple(out["ids"][0, k, :out["lengths"][0, k]]) == seq


def test_narrow_beam_never_beats_brute_force():
    """A beam of 2 is a search approximation: never better than the optimum, and worse on some models
    (2 of 40 seeds 100..139: 122 and 125)."""
    for seed, worse in ((100, False), (101, False), (122, True), (125, True)):
        model = PrefixModel(seed, num_examples=1, max_length=5, vocab=3, bos_id=3, scale=3.0)
        out = run(beam_search, model, [0], [5], beam_size=2, alpha=0.6)
        seq, score, _ = brute_force(model, 0, 5, 0.6, eos_id=2)
        assert out["scores"][0] <= score + 1e-5
        assert (out["scores"][0] < score - 0.1) == worse
        assert (tuple(out["ids"][0, :out["lengths"][0]]) != seq) == worse


def table_step(probs_by_prev):
    """A step whose next-token probabilities depend only on the previous token."""
    table = tf.math.log(tf.constant(probs_by_prev, tf.float32))
    return lambda tokens, cache, index: (tf.gather(table, tokens), cache)


def test_frozen_at_eos():
    # After EOS the next token would be almost certain (log p ≈ -0.02): scoring it would change the totals.
    step = table_step([[0.1, 0.1, 0.8],      # after 0: EOS likely
                       [0.1, 0.1, 0.8],      # after 1
                       [0.98, 0.01, 0.01],   # after EOS
                       [0.2, 0.3, 0.5]])     # after BOS (3)
    cache = {"unused": tf.zeros([1, 1])}
    out = beam_search(step, cache, bos_id=3, eos_id=2, max_lengths=[4], beam_size=3, alpha=0.6, pad_id=-1,
                      return_all_beams=True)
    ids, lengths, lps = out["ids"].numpy()[0], out["lengths"].numpy()[0], out["log_probs"].numpy()[0]
    np.testing.assert_array_equal(ids[0], [2, -1, -1, -1])
    np.testing.assert_allclose(out["scores"].numpy()[0, 0], np.log(0.5), atol=1e-6)
    expected = {(2,): np.log(0.5), (1, 2): np.log(0.3 * 0.8), (0, 2): np.log(0.2 * 0.8)}
    for k in range(3):
        seq = tuple(ids[k, :lengths[k]])
        np.testing.assert_allclose(lps[k], expected[seq], atol=1e-6)
        assert np.all(ids[k, lengths[k]:] == -1)
    greedy = greedy_search(step, cache, bos_id=3, eos_id=2, max_lengths=[4], pad_id=-1)
    np.testing.assert_array_equal(greedy["ids"].numpy()[0], [2, -1, -1, -1])
    np.testing.assert_allclose(greedy["log_probs"].numpy()[0], np.log(0.5), atol=1e-6)


def test_beam_one_with_length_penalty_may_beat_greedy():
    # Greedy stops at EOS (log .5, score -0.69); with alpha 0.6 the runner-up "0" stays alive (its bound
    # log .45 / lp(4) = -0.63 beats -0.69) and ends at the length limit with a better normalised score.
    step = table_step([[0.998, 0.001, 0.001], [0.2, 0.2, 0.6], [0.2, 0.2, 0.6], [0.45, 0.05, 0.5]])
    kw = dict(bos_id=3, eos_id=2, max_lengths=[4], max_length=4)
    cache = {"x": tf.zeros([1])}
    greedy = greedy_search(step, cache, **kw)
    np.testing.assert_array_equal(greedy["ids"].numpy(), [[2, 0, 0, 0]])
    beam = beam_search(step, cache, beam_size=1, alpha=0.6, **kw)
    np.testing.assert_array_equal(beam["ids"].numpy(), [[0, 0, 0, 0]])  # ran to the length limit
    np.testing.assert_allclose(beam["scores"].numpy(), np.log(0.45 * 0.998 ** 3) / 1.5 ** 0.6, rtol=1e-5)
    np.testing.assert_array_equal(beam_search(step, cache, beam_size=1, alpha=0.0, **kw)["ids"], greedy["ids"])


def test_max_lengths_per_example_and_batch_independence():
    model = PrefixModel(7, num_examples=3, max_length=8, vocab=5, bos_id=5, scale=1.0)
    max_lengths = [2, 8, 5]
    for search, kw in ((greedy_search, {}), (beam_search, {"beam_size": 3})):
        batch = run(search, model, [0, 1, 2], max_lengths, eos_id=4, **kw)
        assert batch["lengths"][0] <= 2 and np.all(batch["ids"][0, 2:] == 0)
        assert np.all(batch["lengths"] <= max_lengths)
        for b in range(3):
            alone = run(search, model, [b], [max_lengths[b]], eos_id=4, **kw)
            np.testing.assert_array_equal(alone["ids"][0], batch["ids"][b])
            assert alone["lengths"][0] == batch["lengths"][b]
            np.testing.assert_allclose(alone["scores"][0], batch["scores"][b], atol=1e-6)


def test_reaching_max_length_finishes_the_hypothesis():
    # EOS is impossible: every hypothesis is finished at its example's length and scored like the others.
    step = table_step([[0.6, 0.4, 0.0], [0.3, 0.7, 0.0], [0.5, 0.5, 0.0], [0.9, 0.1, 0.0]])
    out = beam_search(step, {"x": tf.zeros([2])}, bos_id=3, eos_id=2, max_lengths=[3, 1], max_length=5,
                      beam_size=2, alpha=0.6)
    np.testing.assert_array_equal(out["lengths"].numpy(), [3, 1])
    np.testing.assert_array_equal(out["ids"].numpy(), [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    np.testing.assert_allclose(out["log_probs"].numpy(), [np.log(0.9 * 0.6 * 0.6), np.log(0.9)], atol=1e-6)
    np.testing.assert_allclose(out["scores"].numpy()[0], np.log(0.9 * 0.36) / (8 / 6) ** 0.6, atol=1e-6)
    # max_lengths beyond max_length are clipped to it.
    out = greedy_search(step, {"x": tf.zeros([1])}, bos_id=3, eos_id=2, max_lengths=[50], max_length=4)
    assert out["lengths"].numpy()[0] == 4 and out["ids"].shape == (1, 4)


def _compare_compiled(jit_compile):
    model = PrefixModel(11, num_examples=3, max_length=6, vocab=5, bos_id=5)
    max_lengths = tf.constant([6, 4, 5], tf.int32)

    def decode(cache):
        kw = dict(bos_id=5, eos_id=4, max_lengths=max_lengths, max_length=6)
        return beam_search(model.step, cache, beam_size=3, **kw), greedy_search(model.step, cache, **kw)

    cache = model.cache([0, 1, 2])
    for ref, got in zip(decode(cache), tf.function(decode, jit_compile=jit_compile)(cache)):
        np.testing.assert_array_equal(got["ids"].numpy(), ref["ids"].numpy())
        np.testing.assert_array_equal(got["lengths"].numpy(), ref["lengths"].numpy())
        np.testing.assert_allclose(got["scores"].numpy(), ref["scores"].numpy(), atol=1e-5)


def test_tf_function_equals_eager():
    _compare_compiled(jit_compile=False)


def test_xla_equals_eager():
    _compare_compiled(jit_compile=True)


def test_errors():
    step = table_step([[0.5, 0.5]])
    cache = {"x": tf.zeros([1])}
    with pytest.raises(ZooError, match="beam_size"):
        beam_search(step, cache, bos_id=0, eos_id=1, max_lengths=[3], beam_size=0)
    with pytest.raises(ZooError, match="alpha"):
        beam_search(step, cache, bos_id=0, eos_id=1, max_lengths=[3], alpha=-1.0)
    with pytest.raises(Exception, match="pass max_length="):  # a ZooError, wrapped by autograph
        tf.function(lambda n: greedy_search(step, cache, bos_id=0, eos_id=1, max_lengths=n))(tf.constant([3]))
    with pytest.raises(ZooError, match="leading dimension"):
        beam_search(step, {"x": tf.zeros([1]), "s": tf.constant(1.0)}, bos_id=0, eos_id=1, max_lengths=[3])


# === On a tiny random TransformerBackbone (the cached decode_step against the uncached full model) ===

PAD, BOS, EOS = 0, 2, 3          # vocabulary 6: pad 0, unk 1, BOS 2, EOS 3; outputs {3, 4, 5} only


@pytest.fixture(scope="module")
def tiny_backbone():
    import keras

    import zoo

    keras.utils.set_random_seed(10)  # a model on which greedy misses the best sequence
    backbone = zoo.create_model("transformer_tiny", vocabulary_size=6, num_layers=2, num_heads=2, hidden_dim=16,
                                intermediate_dim=32, dropout=0.0, max_sequence_length=8)
    sources = tf.constant([[4, 5, 5, 4, 0], [5, 4, 0, 0, 0], [4, 4, 5, 5, 4]], tf.int32)
    return backbone, sources, tf.cast(sources != PAD, tf.int32)


def _masked(logits):
    """Only EOS and tokens 4, 5 can be generated: a 3-token output vocabulary."""
    return tf.where(tf.range(tf.shape(logits)[-1]) >= EOS, logits, float("-inf"))


def _full_log_probs(backbone, sources, mask, decoder_ids):
    """log-softmax of the uncached full forward, for every position of `decoder_ids` [N, L] (N sequences of
    example 0..B-1 each: sources and masks already repeated)."""
    out = backbone({"encoder_token_ids": sources, "encoder_padding_mask": mask,
                    "decoder_token_ids": tf.constant(decoder_ids), "decoder_padding_mask": tf.ones_like(decoder_ids)})
    return tf.nn.log_softmax(_masked(out["logits"])).numpy().astype(np.float64)


@pytest.mark.parametrize("alpha", [pytest.param(0.0, marks=pytest.mark.slow), 0.6])
def test_transformer_wide_beam_equals_brute_force(tiny_backbone, alpha):
    backbone, sources, mask = tiny_backbone

    def step(tokens, cache, index):
        logits, cache = backbone.decode_step(tokens, cache, index)
        return _masked(logits), cache

    max_lengths = [4, 3, 4]
    out = beam_search(step, backbone.init_cache(sources, mask, 4), bos_id=BOS, eos_id=EOS, max_lengths=max_lengths,
                      max_length=4, beam_size=32, alpha=alpha)
    greedy = greedy_search(step, backbone.init_cache(sources, mask, 4), bos_id=BOS, eos_id=EOS,
                           max_lengths=max_lengths, max_length=4)
    greedy_misses = 0
    for b, max_len in enumerate(max_lengths):
        sequences = [tuple(t + 3 for t in s) for s in all_sequences(3, 0, max_len)]     # over {3 = EOS, 4, 5}
        assert len(sequences) == {3: 15, 4: 31}[max_len]
        inputs = np.array([[BOS] + list(s[:-1]) + [PAD] * (4 - len(s)) for s in sequences], np.int32)
        n = len(sequences)
        lp = _full_log_probs(backbone, tf.repeat(sources[b:b + 1], n, 0), tf.repeat(mask[b:b + 1], n, 0), inputs)
        scored = sorted(((sum(lp[i, t, tok] for t, tok in enumerate(s)) / ((5 + len(s)) / 6) ** alpha, s)
                         for i, s in enumerate(sequences)), reverse=True)
        (best_score, best), (second, _) = scored[0], scored[1]
        assert best_score - second > 1e-4          # no near tie on this model
        assert tuple(out["ids"][b, :out["lengths"][b]].numpy()) == best
        assert abs(out["scores"][b].numpy() - best_score) < 1e-5
        greedy_misses += tuple(greedy["ids"][b, :greedy["lengths"][b]].numpy()) != best
    assert greedy_misses >= 1     # the search is not trivial: greedy gives 5555 where EOS alone is best (margin 0.2)


@pytest.mark.slow
def test_transformer_greedy_equals_uncached_argmax(tiny_backbone):
    backbone, sources, mask = tiny_backbone
    max_len = 8
    out = greedy_search(backbone.decode_step, backbone.init_cache(sources, mask, max_len), bos_id=BOS, eos_id=EOS,
                        max_lengths=[max_len] * 3, max_length=max_len)
    # Uncached: rerun the full model on the growing prefix; argmax of its last position, until EOS.
    prefix = np.full([3, 1], BOS, np.int32)
    done, log_probs = np.zeros(3, bool), np.zeros(3)
    for t in range(max_len):
        logits = backbone({"encoder_token_ids": sources, "encoder_padding_mask": mask,
                           "decoder_token_ids": tf.constant(prefix), "decoder_padding_mask": tf.ones_like(prefix)})
        lp = tf.nn.log_softmax(logits["logits"][:, t]).numpy()
        token = np.where(done, PAD, lp.argmax(-1))
        log_probs += np.where(done, 0.0, lp.max(-1))
        done |= token == EOS
        prefix = np.concatenate([prefix, token[:, None].astype(np.int32)], 1)
    np.testing.assert_array_equal(out["ids"].numpy(), prefix[:, 1:])
    np.testing.assert_allclose(out["log_probs"].numpy(), log_probs, atol=1e-5)
