"""Batched greedy and beam search over a model's incremental decoding step: the one decoder of the zoo.

Model-agnostic: a search sees only `step_fn(token_ids, cache, index) -> (logits, new_cache)` and a cache,
a nested structure (dict, list, tuple) of tensors whose leading dimension is the batch. A model provides
both, e.g. `backbone.decode_step` and `backbone.init_cache(...)`:

- `token_ids` int32 [N]: the decoder input at position `index` (the BOS id at index 0, then the token
  generated at step index - 1);
- `index`: int32 scalar tensor, 0 ≤ index < max_length;
- `logits` [N, V] (any float dtype; the searches take log-softmax in float32): the next token's logits.

Both searches run a `tf.while_loop` with static shapes, so they run eagerly, inside `tf.function` and
inside `tf.function(jit_compile=True)`, also with a batch size unknown when traced. Examples are independent:
a batch gives the same hypotheses as each example alone (scores equal up to float rounding). The static
bound `max_length` (T) is the cache's capacity (the `max_length` given to `init_cache`); pass it, or leave
it None to derive it from a constant `max_lengths` (its maximum). `max_lengths` [B] is the most tokens each
example may generate, EOS included (the paper: source length + 50), clipped to [1, T]. A hypothesis that
reaches its example's length without EOS is finished there and scored like the others.

Beam search follows TF Model Garden's scheme (K alive and K finished hypotheses per example; 2K candidates
per step so K alive non-EOS ones always exist) with the GNMT length penalty lp(Y) = ((5 + |Y|) / 6) ** alpha,
|Y| = generated tokens including EOS, score = log P(Y) / lp(Y). Finished hypotheses are frozen at EOS (no
token or log-probability is added after it, unlike keras-hub's `BeamSampler`). As in fairseq, a candidate
that ends becomes a finished hypothesis only when it ranks among the K best candidates of its step; with
this rule beam_size=1 follows greedy's path. An example stops when no alive hypothesis can beat its K-th
finished one: log-probs are ≤ 0 and lp grows with |Y|, so an alive hypothesis can reach at most
alive_log_prob / lp(max_lengths[b]); the loop stops when every example has stopped.

beam_size=1 equals `greedy_search` exactly (ids and log-probs) for alpha=0. For alpha > 0 the single
finished hypothesis and the single alive one are compared on length-normalised scores, so a greedy-finished
example may go on with the runner-up and return a better-scored, different hypothesis (measured: never on
120 examples of random toy models, but a constructed table does it; see tests/test_decoding.py).

Example:
    import tensorflow as tf
    table = tf.random.stateless_normal([8, 6, 5], seed=[1, 2])     # [index, previous token, vocabulary]
    step = lambda tokens, cache, i: (tf.gather(table[i], tokens), cache)
    cache = {"unused": tf.zeros([2, 1])}
    out = beam_search(step, cache, bos_id=5, eos_id=2, max_lengths=[8, 3], max_length=8, beam_size=4)
    out["ids"], out["lengths"], out["scores"]                      # [2, 8], [2], [2]
"""

import numpy as np
import tensorflow as tf

from zoo.errors import ZooError

NEG_INF = float("-inf")


def length_penalty(lengths, alpha):
    """GNMT length penalty ((5 + |Y|) / 6) ** alpha as float32 (1 for alpha 0).

    Args:
        lengths: generated tokens including EOS, any integer or float tensor.
        alpha: the exponent (the paper: 0.6).

    Example:
        length_penalty(tf.constant([1, 5]), 0.6)   # [1.0, 1.3587]
    """
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, float(alpha))


@tf.autograph.experimental.do_not_convert  # plain TF ops and tf.while_loop: nothing for autograph to convert
def greedy_search(step_fn, cache, *, bos_id, eos_id, max_lengths, max_length=None, pad_id=0):
    """Batched greedy decoding: the most probable next token at each step, until EOS or the example's length.

    Args:
        step_fn: `(token_ids [N] int32, cache, index int32 scalar) -> (logits [N, V], new_cache)`.
        cache: nested structure of tensors with the batch B as every leaf's leading dimension.
        bos_id: the first decoder input.
        eos_id: the end-of-sequence token; generated and included in the output.
        max_lengths: int [B] (or a scalar for every example): the most tokens to generate, EOS included.
        max_length: T, the loop bound and output width (the cache's capacity): an int, or an int32 scalar
            tensor known only at run time (graph mode; XLA needs an int); None derives it from a constant
            `max_lengths`.
        pad_id: the id written after EOS and beyond each length.

    Returns:
        dict: `ids` int32 [B, T], `lengths` int32 [B] (EOS included), `scores` and `log_probs` float32 [B]
        (both the sum of the tokens' log-probabilities).

    Example:
        table = tf.random.stateless_normal([6, 5, 4], seed=[0, 1])    # [index, previous token, vocabulary]
        step = lambda tokens, cache, i: (tf.gather(table[i], tokens), cache)
        out = greedy_search(step, {"x": tf.zeros([3])}, bos_id=4, eos_id=1, max_lengths=6)
    """
    max_lengths, max_length = _lengths(max_lengths, max_length, cache)
    positions = tf.range(max_length)

    def body(i, tokens, cache, ids, log_probs, lengths, finished):
        logits, cache = step_fn(tokens, cache, i)
        log_p = _log_softmax(logits)
        # Rank log P(prefix) + log p(token) exactly as beam search does, so that beam_size 1 matches bit for bit.
        best, token = tf.math.top_k(log_probs[:, None] + log_p, 1)
        best, token = best[:, 0], tf.cast(token[:, 0], tf.int32)
        alive = tf.logical_not(finished)
        log_probs = tf.where(alive, best, log_probs)
        ids = tf.where(alive[:, None] & tf.equal(positions, i)[None, :], token[:, None], ids)
        lengths = lengths + tf.cast(alive, tf.int32)
        finished = finished | tf.equal(token, eos_id) | (i + 1 >= max_lengths)
        return i + 1, token, cache, ids, log_probs, lengths, finished

    def cond(i, tokens, cache, ids, log_probs, lengths, finished):
        return (i < max_length) & tf.logical_not(tf.reduce_all(finished))

    batch = _batch_size(max_lengths)
    state = (tf.constant(0, tf.int32), tf.fill([batch], tf.constant(bos_id, tf.int32)), cache,
             tf.fill([batch, max_length], tf.constant(pad_id, tf.int32)), tf.zeros([batch], tf.float32),
             tf.zeros([batch], tf.int32), tf.zeros([batch], tf.bool))
    _, _, _, ids, log_probs, lengths, _ = tf.while_loop(cond, body, state)
    return {"ids": ids, "lengths": lengths, "scores": log_probs, "log_probs": log_probs}


@tf.autograph.experimental.do_not_convert
def beam_search(step_fn, cache, *, bos_id, eos_id, max_lengths, max_length=None, beam_size=4, alpha=0.6,
                pad_id=0, return_all_beams=False):
    """Batched beam search with the GNMT length penalty, finished hypotheses frozen at EOS, early stopping.

    Every cache leaf is tiled to B*K rows (beam-major inside each example: row b*K + k) and reordered with a
    gather when beams are re-ranked. See the module docstring for the scheme.

    Args:
        step_fn: `(token_ids [N] int32, cache, index int32 scalar) -> (logits [N, V], new_cache)`.
        cache: nested structure of tensors with the batch B as every leaf's leading dimension.
        bos_id: the first decoder input.
        eos_id: the end-of-sequence token; generated and included in the output.
        max_lengths: int [B] (or a scalar for every example): the most tokens to generate, EOS included.
        max_length: T, the loop bound and output width (the cache's capacity): an int, or an int32 scalar
            tensor known only at run time (graph mode; XLA needs an int); None derives it from a constant
            `max_lengths`.
        beam_size: K, hypotheses kept per example.
        alpha: length penalty exponent (0: raw log-probabilities).
        pad_id: the id written after EOS and beyond each length.
        return_all_beams: return the K finished hypotheses of each example (best first) instead of the best.

    Returns:
        dict: `ids` int32 [B, T], `lengths` int32 [B] (EOS included), `scores` float32 [B] (log P / lp),
        `log_probs` float32 [B] (log P); with `return_all_beams` [B, K, T] and [B, K], best first. A slot
        that holds no hypothesis (fewer than K possible sequences) has length 0 and score -inf.

    Example:
        table = tf.random.stateless_normal([6, 5, 4], seed=[0, 1])    # [index, previous token, vocabulary]
        step = lambda tokens, cache, i: (tf.gather(table[i], tokens), cache)
        out = beam_search(step, {"x": tf.zeros([3])}, bos_id=4, eos_id=1, max_lengths=[6, 2, 4], beam_size=2)
    """
    if int(beam_size) != beam_size or beam_size < 1:
        raise ZooError(f"beam_size must be a positive integer (got {beam_size!r}); pass e.g. --beam_size=4")
    if alpha < 0:
        raise ZooError(f"alpha must be >= 0 (got {alpha}): the early stop needs a length penalty that grows")
    k = int(beam_size)
    max_lengths, max_length = _lengths(max_lengths, max_length, cache)
    batch = _batch_size(max_lengths)
    positions = tf.range(max_length)
    lp_max = length_penalty(max_lengths, alpha)                                   # [B]
    row_base = (tf.range(batch) * k)[:, None]                                     # [B, 1]

    def body(i, alive_seq, alive_lp, alive_last, cache, fin_seq, fin_scores, fin_lp, fin_len, done):
        logits, new_cache = step_fn(tf.reshape(alive_last, [-1]), cache, i)
        log_p = _log_softmax(logits)
        vocab = log_p.shape[-1] or tf.shape(log_p)[-1]
        # The 2K best of the K·V extensions, in two stages (each beam's 2K best first: a top-k over K·V
        # entries is a full sort under XLA on CPU); same candidates and order as one top-k, ties included.
        per_beam = min(2 * k, vocab) if isinstance(vocab, int) else 2 * k
        beam_lp, beam_tok = tf.math.top_k(alive_lp[:, :, None] + tf.reshape(log_p, [batch, k, vocab]), per_beam)
        num_cand = min(2 * k, k * per_beam)
        cand_lp, cand_pos = tf.math.top_k(tf.reshape(beam_lp, [batch, k * per_beam]), num_cand)  # best first
        cand_beam = cand_pos // per_beam
        cand_tok = tf.gather(tf.reshape(beam_tok, [batch, k * per_beam]), cand_pos, batch_dims=1)
        here = tf.equal(positions, i)[None, None, :]
        cand_seq = tf.where(here, cand_tok[:, :, None], tf.gather(alive_seq, cand_beam, batch_dims=1))
        ends = tf.equal(cand_tok, eos_id) | (i + 1 >= max_lengths)[:, None]

        # K alive: the best candidates that did not end (at least K of the 2K did not end, or none may go on).
        a_lp, a_pos = tf.math.top_k(tf.where(ends, NEG_INF, cand_lp), k)
        alive_seq = tf.gather(cand_seq, a_pos, batch_dims=1)
        alive_last = tf.gather(cand_tok, a_pos, batch_dims=1)
        rows = tf.reshape(row_base + tf.gather(cand_beam, a_pos, batch_dims=1), [-1])
        cache = tf.nest.map_structure(lambda x: tf.gather(x, rows), new_cache)

        # K finished: merge the old ones with the candidates that ended among this step's K best (fairseq).
        rank = tf.range(num_cand)[None, :]
        final = ends & (rank < k) & (cand_lp > NEG_INF)
        new_scores = tf.where(final, cand_lp / length_penalty(i + 1, alpha), NEG_INF)
        m_scores, m_pos = tf.math.top_k(tf.concat([fin_scores, new_scores], 1), k)  # ties keep the old ones
        pick = lambda old, new: tf.gather(tf.concat([old, new], 1), m_pos, batch_dims=1)  # noqa: E731
        merged = (pick(fin_seq, cand_seq), m_scores, pick(fin_lp, cand_lp),
                  pick(fin_len, tf.fill(tf.shape(cand_tok), i + 1)))
        keep = lambda old, new: tf.where(  # noqa: E731
            tf.reshape(done, [-1] + [1] * (len(old.shape) - 1)), old, new)
        fin_seq, fin_scores, fin_lp, fin_len = (
            keep(old, new) for old, new in zip((fin_seq, fin_scores, fin_lp, fin_len), merged))

        # Stop an example once its best alive hypothesis, at its longest, cannot beat its K-th finished one.
        bound = tf.reduce_max(a_lp, axis=1) / lp_max
        done = done | (bound <= fin_scores[:, k - 1]) | (i + 1 >= max_lengths)
        return i + 1, alive_seq, a_lp, alive_last, cache, fin_seq, fin_scores, fin_lp, fin_len, done

    def cond(i, *state):
        return (i < max_length) & tf.logical_not(tf.reduce_all(state[-1]))

    for leaf in tf.nest.flatten(cache):
        if len(tf.convert_to_tensor(leaf).shape) < 1:
            raise ZooError("every cache leaf needs the batch as its leading dimension (found a scalar leaf)")
    tiled = tf.nest.map_structure(lambda x: tf.repeat(x, k, axis=0), cache)
    seq = tf.fill([batch, k, max_length], tf.constant(pad_id, tf.int32))
    first = tf.concat([tf.zeros([1]), tf.fill([k - 1], NEG_INF)], 0)             # only beam 0 is real at first
    state = (tf.constant(0, tf.int32), seq, tf.tile(first[None, :], [batch, 1]),
             tf.fill([batch, k], tf.constant(bos_id, tf.int32)), tiled,
             seq, tf.fill([batch, k], NEG_INF), tf.fill([batch, k], NEG_INF), tf.zeros([batch, k], tf.int32),
             tf.zeros([batch], tf.bool))
    out = tf.while_loop(cond, body, state)
    ids, scores, log_probs, lengths = out[5:9]
    if not return_all_beams:
        ids, scores, log_probs, lengths = ids[:, 0], scores[:, 0], log_probs[:, 0], lengths[:, 0]
    return {"ids": ids, "lengths": lengths, "scores": scores, "log_probs": log_probs}


def _log_softmax(logits):
    return tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)


def _batch_size(max_lengths):
    return max_lengths.shape[0] if max_lengths.shape[0] is not None else tf.shape(max_lengths)[0]


def _lengths(max_lengths, max_length, cache):
    """(max_lengths as int32 [B] clipped to [1, T], T as a Python int, or an int32 scalar tensor when it is
    only known at run time)."""
    if max_length is None:
        static = tf.get_static_value(max_lengths)
        if static is None:
            raise ZooError("max_lengths is not a constant: pass max_length= (the cache capacity given to "
                           "init_cache)")
        max_length = int(np.max(static))
    static = tf.get_static_value(max_length)
    if static is None:  # a bound known only when the graph runs: fine in graph mode, not under XLA
        max_length = tf.cast(max_length, tf.int32)
    elif int(static) != static or static < 1:
        raise ZooError(f"max_length must be a positive integer (got {max_length!r})")
    else:
        max_length = int(static)
    max_lengths = tf.cast(max_lengths, tf.int32)
    if max_lengths.shape.rank == 0:
        leaves = tf.nest.flatten(cache)
        if not leaves:
            raise ZooError("max_lengths is a scalar and the cache is empty: pass max_lengths as a [batch] tensor")
        leaf = tf.convert_to_tensor(leaves[0])
        batch = leaf.shape[0] if leaf.shape[0] is not None else tf.shape(leaf)[0]
        max_lengths = tf.fill([batch], max_lengths)
    elif max_lengths.shape.rank != 1:
        raise ZooError(f"max_lengths must be int [batch] (got shape {max_lengths.shape})")
    return tf.clip_by_value(max_lengths, 1, max_length), max_length
