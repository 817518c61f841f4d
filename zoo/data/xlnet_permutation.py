"""The per-sequence pieces of XLNet's pretraining data (zihangdai/xlnet `data_utils.py`), used by `xlnet_pretraining`.

Host side (numpy, one sequence at a time, so that nothing but the token stream is ever stored):
- `split_a_and_b` (`_split_a_and_b(..., extend_target=True)`) on a row's sentence boundaries: the A/B spans as
  (a_begin, a_end, b_begin, b_end) row positions, the original's draws call for call.
- `sample_mask` (`_sample_mask`): n-gram spans, word starts found by bisection instead of a token-by-token scan,
  the original's `np.random` draws call for call (`choice(ngrams, p=...)` is `random_sample` + the cdf search).
TF side (inside the `tf.data` map): `row_permutations` (each row's and part's block order, stateless in
(seed, key, row)), `local_perm` (`_local_perm`), `batch_features` (the `xlnet_pretraining.FEATURES` dict).

Example:
```python
import numpy as np
from zoo.data import xlnet_permutation

starts = np.arange(40) % 2 == 0                                    # words of two pieces
mask = xlnet_permutation.sample_mask(starts, np.zeros(40, bool), 6, np.random.RandomState(0), mask_alpha=6,
                                     mask_beta=1)
int(mask.sum())                                                    # 6
```
"""

import bisect

import numpy as np

_CDFS = {}


def _ngram_cdf(max_gram):
    """RandomState.choice(ngrams, p=1/n normalised)'s cdf, computed as numpy computes it, as a list."""
    if max_gram not in _CDFS:
        pvals = 1.0 / np.arange(1, max_gram + 1)
        pvals /= pvals.sum(keepdims=True)
        cdf = pvals.cumsum()
        cdf /= cdf[-1]
        _CDFS[max_gram] = cdf.tolist()
    return _CDFS[max_gram]


def split_a_and_b(boundaries, data_len, begin_idx, tot_len, rng):
    """`_split_a_and_b(..., extend_target=True)`: (a_begin, a_end, b_begin, b_end) row positions of at most
    `tot_len` tokens together from `begin_idx`, or None when the row has no room left.

    boundaries: int [S] sorted, the row positions e where the sentence id changes (sent[e] != sent[e-1]);
    rng: a `random.Random` used as the original's `random`."""
    if begin_idx + tot_len >= data_len:
        return None
    k0, k1 = np.searchsorted(boundaries, (begin_idx + 1, begin_idx + tot_len))
    cut_points = boundaries[k0:k1].tolist()
    end_idx = int(boundaries[k1]) if k1 < len(boundaries) else data_len
    a_begin = begin_idx
    if len(cut_points) == 0 or rng.random() < 0.5:  # B from a random place of the row
        a_end = end_idx if len(cut_points) == 0 else rng.choice(cut_points)
        b_len = max(1, tot_len - (a_end - a_begin))
        b_begin = rng.randint(0, data_len - 1 - b_len)
        b_end = b_begin + b_len
        k = int(np.searchsorted(boundaries, b_begin, "right")) - 1  # back to its sentence's start
        b_begin = int(boundaries[k]) if k >= 0 else 0
        k = int(np.searchsorted(boundaries, b_end))  # on to its sentence's end
        b_end = min(int(boundaries[k]) if k < len(boundaries) else data_len - 1, data_len - 1)
    else:  # B continues A
        a_end = rng.choice(cut_points)
        b_begin, b_end = a_end, end_idx
    while a_end - a_begin + b_end - b_begin > tot_len:
        if a_end - a_begin > b_end - b_begin:
            a_end -= 1
        else:
            b_end -= 1
    if a_end >= data_len or b_end >= data_len:
        return None
    return a_begin, a_end, b_begin, b_end


def sample_mask(starts, functional, goal, rng, *, mask_alpha, mask_beta, max_gram=5, span_rule="word",
                reverse=False):
    """`_sample_mask` (`xlnet_pretraining` module doc): bool [len] with exactly `goal` True (or spans only, when
    `goal` is None).

    starts: bool [len], the pieces that start a word; functional: bool [len], positions never chosen (<sep>,
    <cls>); rng: a numpy `RandomState` used as the original's `np.random`; span_rule "word" (n words) or
    "piece" (the released code's n pieces)."""
    if reverse:
        starts, functional = starts[::-1], functional[::-1]
    seg_len = len(starts)
    start_at, func = np.flatnonzero(starts).tolist(), np.asarray(functional, bool).tolist()
    mask = [False] * seg_len
    cdf, words = _ngram_cdf(max_gram), span_rule == "word"
    count, cur_len = 0, 0
    while cur_len < seg_len:
        if goal is not None and count >= goal:
            break
        n = bisect.bisect_right(cdf, rng.random_sample()) + 1  # = rng.choice(ngrams, p=pvals)
        if goal is not None:
            n = min(n, goal - count)
        ctx_size = (n * mask_alpha) // mask_beta
        l_ctx = rng.randint(0, ctx_size)  # = rng.choice(ctx_size)
        r_ctx = ctx_size - l_ctx
        k = bisect.bisect_left(start_at, cur_len + l_ctx)
        if k >= len(start_at):
            break
        beg = start_at[k]
        if words:  # ends at the n-th word start after beg
            end = start_at[k + n] if k + n < len(start_at) else seg_len
        else:  # the released loop tests seg[beg] (always a start): n pieces
            end = beg + n
        if end >= seg_len:
            break
        span = [p for p in range(beg, end) if not func[p]]
        if goal is not None:
            span = span[:goal - count]
        for p in span:
            mask[p] = True
        count += len(span)
        cur_len = end + r_ctx
    while goal is not None and count < goal:
        i = rng.randint(seg_len)
        if not mask[i] and not func[i]:
            mask[i] = True
            count += 1
    mask = np.array(mask, bool)
    return mask[::-1] if reverse else mask


def row_permutations(seed, key, rows, perm_size, global_batch_size):
    """TF ops: int32 [b, 2, perm_size], the block order of each canonical row's two parts (reused prefix, rest),
    stateless in (`seed`, `key`, row): the same row gets the same order on any replica count, and every row, part
    and `key` (a global step of an epoch) its own."""
    import tensorflow as tf

    seeds = tf.stack([tf.cast(seed, tf.int64), tf.cast(key, tf.int64)])
    noise = tf.random.stateless_uniform([global_batch_size, 2, perm_size], seeds)  # every row's, taken for `rows`
    return tf.argsort(tf.gather(noise, rows), axis=-1, stable=True)


def batch_features(x, perms, layout):
    """TF ops: a host batch (token_ids, segment_ids, is_masked, reset) and its `row_permutations` -> the
    `xlnet_pretraining.FEATURES` dict."""
    import tensorflow as tf

    T, R, P = layout.seq_len, layout.reuse_len, layout.num_predict
    ids, masked = x["token_ids"], x["is_masked"]
    func = tf.zeros_like(masked)
    for token in layout.functional_ids:
        func |= tf.equal(ids, token)
    perm_0, target_0 = local_perm(masked[:, :R], func[:, :R], perms[:, 0])
    perm_1, target_1 = local_perm(masked[:, R:], func[:, R:], perms[:, 1])
    b = tf.shape(ids)[0]
    perm_mask = tf.concat([tf.concat([perm_0, tf.ones([b, R, T - R], tf.bool)], 2),
                           tf.concat([tf.zeros([b, T - R, R], tf.bool), perm_1], 2)], 1)
    target = tf.concat([target_0, target_1], 1)
    slot = tf.where(target, tf.cumsum(tf.cast(target, tf.int32), axis=1) - 1, -1)  # target's index among P
    target_mapping = tf.transpose(tf.one_hot(slot, P, dtype=tf.float32), [0, 2, 1])  # [b, P, T]
    targets = tf.cast(tf.einsum("bpt,bt->bp", target_mapping, tf.cast(ids, tf.float32)), tf.int32)
    return {"token_ids": ids, "segment_ids": x["segment_ids"], "perm_mask": tf.cast(perm_mask, tf.float32),
            "target_mapping": target_mapping, "targets": targets,
            "target_weights": tf.reduce_sum(target_mapping, 2), "input_q": tf.cast(target, tf.float32),
            "reset": x["reset"]}


def local_perm(is_masked, functional, perm):
    """`_local_perm` for a batch: is_masked, functional bool [b, L]; perm int32 [b, perm_size] (the order inside
    every block). Returns (perm_mask bool [b, L, L], True = i may NOT attend to j; targets bool [b, L])."""
    import tensorflow as tf

    L, ps = is_masked.shape[1], perm.shape[1]
    index = tf.reshape(tf.range(0, L, ps)[None, :, None] + perm[:, None, :], [-1, L])  # rank of each position
    non_mask = ~is_masked & ~functional
    masked_or_func = ~non_mask
    rev_index = tf.where(non_mask, -1, index)  # non-targets first: seen by all, see no target
    targets = masked_or_func & ~functional
    self_rev_index = tf.where(targets, rev_index, rev_index + 1)  # targets do not see themselves
    perm_mask = (self_rev_index[:, :, None] <= rev_index[:, None, :]) & masked_or_func[:, None, :]
    return perm_mask, targets
