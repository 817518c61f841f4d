"""XLNet permutation-LM pretraining batches made as zihangdai/xlnet `data_utils.py` makes them, streamed by `tf.data`.

Memory is O(corpus), not O(corpus x passes): `create_layout` keeps only the token stream (ids, sentence ids) and
each row's sentence boundaries; every sequence is made when the `tf.data` map reads it, from a Python `random`
and a numpy `RandomState` seeded by (seed, pass, step, row) and used as the original uses its global ones
(`zoo.data.xlnet_permutation`: the same draws, found by bisection instead of token-by-token loops):
- `token_stream`: each sentence's ids (`XLNetVocabulary.encode`) with a sentence id alternating per sentence,
  `<eod>` after each document (with the sentence id of the document's last sentence), as `_create_data`.
- `batchify`: the stream cut into B contiguous rows (B = global batch); with `bi_data`, B/2 rows and their
  reversals. Row r of every global batch continues row r (the memory of row r is row r's previous sequence).
- Per step i (advancing by `reuse_len`) and row: `[reuse_len tokens | A <sep> B <sep> <cls>]`, A/B by
  `_split_a_and_b` (B the true continuation or, 50%, a random span of the row; the NSP label is not kept:
  XLNet has no NSP loss), segment ids 0 for reuse and A (+its <sep>), 1 for B (+its <sep>), 2 for <cls>.
  A pass ends before the first step at which some row has no sentence boundary left past the sequence end
  (the original then returns None for that row or, by its random draws, squeezes out a step or two more).
- `sample_mask` (`_sample_mask`): n-gram spans, n in 1..max_gram with p ∝ 1/n, one span per context of
  n*mask_alpha/mask_beta tokens, beginning at a word start (`XLNetVocabulary.start_pieces`), until exactly
  num_predict - num_predict//2 targets in the reused part and num_predict//2 in the rest (random single
  tokens fill up when the spans fall short). Two deliberate differences from the released code:
  1. `span_rule="word"` (default) spans n WORDS: the released loop tests `seg[beg]` (always a word start)
     instead of `seg[end]`, so it spans n sub-word pieces; `span_rule="piece"` keeps that behaviour
     (acknowledged bug, xlnet PR #16/#69, issue #220). A word span that would pass the count is cut there.
  2. `<sep>`/`<cls>` are never chosen: the original may choose them and then drops them in `_local_perm`,
     predicting fewer than num_predict; here every sequence has exactly num_predict targets.
  With `bi_data` the reversed rows are flipped back to reading order for sampling (`reverse=True`).

In `tf.data` (`make_dataset_fn`): `_local_perm` on each part (reused prefix, rest) with the factorisation order
permuted inside blocks of `perm_size` (one random permutation per row, part, global step and epoch, stateless:
`xlnet_permutation.row_permutations`), giving `perm_mask` [B,T,T] in the ORIGINAL polarity (1 = query i may NOT
attend to key j; the model converts it once): non-target tokens get rank -1 (seen by all; they see neither targets
nor <sep>/<cls>, which are ranked like targets but see themselves and are not predicted), targets do not see
themselves, the reused prefix never sees the rest. `target_mapping` [B,P,T] one-hot of the target positions in
order, `targets` [B,P] (their own token ids: the original's shifted targets equal the inputs there),
`target_weights` [B,P], `input_q` [B,T] (1 = target), `reset` [B] (1 on each row's first sequence of a pass: its
memory is dropped). All shapes static.

Replicas: the rows are global. Replica k of R gets rows [k*b, (k+1)*b) (b = B/R); with `bi_data` the forward
rows [k*b/2, (k+1)*b/2) followed by their reversals, so each replica's batch is [forward half | backward half] as
the model's bi-directional positions need, and any R sees the same rows with the same masks (stateless per-row
randomness): replicas' batches concatenated are a fixed row permutation (`replica_row_order`) of R=1's.

Example:
```python
from zoo.data import text_sources, xlnet_pretraining, xlnet_vocabulary

documents = text_sources.load_documents()[:20]                     # 20 documents of the embedded corpus
vocab = xlnet_vocabulary.train_xlnet_vocabulary(documents, 500)
layout = xlnet_pretraining.create_layout(documents, vocab, global_batch_size=4, seq_len=32, reuse_len=16,
                                         num_predict=6, bi_data=True)
batch = next(iter(xlnet_pretraining.make_dataset_fn(layout)(None)))
batch["perm_mask"].shape, batch["target_mapping"].shape           # (4, 32, 32), (4, 6, 32)
```
"""

import dataclasses
import functools
import math
import numbers
import random
import threading

import numpy as np

from zoo.data.distribute import per_replica_batch_size, pipeline_id
from zoo.data.xlnet_permutation import batch_features, row_permutations, sample_mask, split_a_and_b
from zoo.errors import ZooError

FEATURES = ("token_ids", "segment_ids", "perm_mask", "target_mapping", "targets", "target_weights", "input_q",
            "reset")
SPAN_RULES = ("word", "piece")
SEG_A, SEG_B, SEG_CLS = 0, 1, 2


def token_stream(documents, vocabulary, *, use_eod=True):
    """(ids int32 [N], sentence ids bool [N]) of documents (lists of sentences), as `_create_data` reads lines."""
    eod = vocabulary.special_ids["eod"]
    ids, sent_ids, lengths, sent_id = [], [], [], True
    for document in documents:
        for sentence in document:
            piece_ids = vocabulary.encode(sentence)
            ids.append(np.asarray(piece_ids, np.int32))
            sent_ids.append(sent_id)
            lengths.append(len(piece_ids))
            sent_id = not sent_id
        if use_eod:  # the original's blank line: flip, <eod>, flip
            ids.append(np.array([eod], np.int32))
            sent_ids.append(not sent_id)
            lengths.append(1)
    if not ids:
        return np.zeros(0, np.int32), np.zeros(0, bool)
    return np.concatenate(ids), np.repeat(np.array(sent_ids, bool), lengths)


def batchify(data, rows):
    """`data` [N, ...] cut into `rows` contiguous rows [rows, N // rows, ...] (the tail dropped; a view)."""
    steps = len(data) // rows
    return data[:rows * steps].reshape((rows, steps) + data.shape[1:])


@dataclasses.dataclass(eq=False)
class PretrainingLayout:
    """Every pass of the pretraining data, stored as the token stream only (`ids` int32 [N], `sent_ids` bool [N],
    `start_table` bool [V]: the word-start pieces); each sequence is made when it is read (`host_batch`).

    `steps`: global batches per pass, `total_steps` = steps * num_passes. For inspection of small corpora,
    `token_ids`, `segment_ids`, `is_masked` [total_steps, B, T] and `reset` [total_steps, B] materialise every
    pass (rows in canonical order: with bi_data forward rows then their reversals)."""

    ids: np.ndarray
    sent_ids: np.ndarray
    start_table: np.ndarray
    global_batch_size: int
    seq_len: int
    reuse_len: int
    perm_size: int
    num_predict: int
    steps: int
    num_passes: int = 1
    mask_alpha: int = 6
    mask_beta: int = 1
    max_gram: int = 5
    span_rule: str = "word"
    bi_data: bool = False
    functional_ids: tuple = ()
    seed: int = 0

    def __post_init__(self):
        streams = self.global_batch_size // 2 if self.bi_data else self.global_batch_size
        rows, sent = batchify(self.ids, streams), batchify(self.sent_ids, streams)
        self.rows = list(rows) + ([r[::-1] for r in rows] if self.bi_data else [])  # views of `ids`
        row_sent = list(sent) + ([r[::-1] for r in sent] if self.bi_data else [])
        self.boundaries = [np.flatnonzero(r[1:] != r[:-1]) + 1 for r in row_sent]
        self._local = threading.local()

    @property
    def total_steps(self):
        return self.steps * self.num_passes

    def sequence(self, global_step, row):
        """(token_ids, segment_ids, is_masked) [T] of canonical `row` at `global_step` (pass global_step //
        steps), from Python and numpy generators seeded by (seed, pass, step, row)."""
        pass_id, step = divmod(int(global_step), self.steps)
        key = np.array([self.seed % 2**32, pass_id, step, int(row), 1], np.uint32)
        py_rng = random.Random(int.from_bytes(key.tobytes(), "little"))
        key[-1] = 2
        np_rng = getattr(self._local, "np_rng", None) or np.random.RandomState()  # one per thread: seeding is
        self._local.np_rng = np_rng                                               # 10x cheaper than making one
        np_rng.seed(key)
        T, R, data = self.seq_len, self.reuse_len, self.rows[row]
        i = step * R
        a_begin, a_end, b_begin, b_end = split_a_and_b(self.boundaries[row], len(data), i + R, T - R - 3, py_rng)
        sep, cls = self.functional_ids
        tokens = np.empty(T, np.int32)
        a_len = a_end - a_begin
        assert a_len + b_end - b_begin == T - R - 3  # split_a_and_b fills A and B exactly
        tokens[:R], tokens[R:R + a_len], tokens[R + a_len + 1:T - 2] = data[i:i + R], data[a_begin:a_end], \
            data[b_begin:b_end]
        tokens[R + a_len], tokens[T - 2:] = sep, (sep, cls)
        segments = np.full(T, SEG_A, np.int32)
        segments[R + a_len + 1:T - 1], segments[T - 1] = SEG_B, SEG_CLS
        functional = (tokens == sep) | (tokens == cls)
        goal_1 = self.num_predict // 2
        reverse = self.bi_data and row >= self.global_batch_size // 2
        masks = [sample_mask(self.start_table[tokens[part]], functional[part], goal, np_rng,
                             mask_alpha=self.mask_alpha, mask_beta=self.mask_beta, max_gram=self.max_gram,
                             span_rule=self.span_rule, reverse=reverse)
                 for part, goal in ((slice(0, R), self.num_predict - goal_1), (slice(R, T), goal_1))]
        return tokens, segments, np.concatenate(masks)

    def host_batch(self, global_step, rows):
        """(token_ids int32 [n, T], segment_ids int32 [n, T], is_masked bool [n, T], reset float32 [n]) of the
        canonical `rows` at `global_step`."""
        made = [self.sequence(global_step, row) for row in rows]
        reset = np.full(len(made), float(int(global_step) % self.steps == 0), np.float32)
        return tuple(np.stack([m[k] for m in made]) for k in range(3)) + (reset,)

    def target_ids(self, max_steps=None):
        """int32: the target tokens of the first pass's first `max_steps` global batches (all by default)."""
        steps = range(min(self.steps, max_steps or self.steps))
        return np.concatenate([ids[masked] for ids, _, masked, _ in (self.host_batch(g, range(self.global_batch_size))
                                                                     for g in steps)])

    @functools.cached_property
    def _materialised(self):
        made = [self.host_batch(g, range(self.global_batch_size)) for g in range(self.total_steps)]
        return [np.stack([m[k] for m in made]) for k in range(4)]

    token_ids = property(lambda self: self._materialised[0])
    segment_ids = property(lambda self: self._materialised[1])
    is_masked = property(lambda self: self._materialised[2])
    reset = property(lambda self: self._materialised[3])


def check_options(global_batch_size, seq_len, reuse_len, num_predict, perm_size=None, mask_alpha=6, mask_beta=1,
                  bi_data=False, span_rule="word"):
    """One-line ZooErrors naming the flag; returns the perm_size used (default gcd(reuse_len, seq_len - reuse_len),
    = reuse_len in XLNet's seq_len = 2 * reuse_len setting)."""
    if global_batch_size < 1:
        raise ZooError(f"--global_batch_size must be positive, got {global_batch_size}")
    if bi_data and global_batch_size % 2:
        raise ZooError(f"--bi_data needs an even --global_batch_size (half forward, half reversed rows), got "
                       f"{global_batch_size}")
    if not 1 <= reuse_len < seq_len - 3:
        raise ZooError(f"--reuse_len={reuse_len} must be at least 1 and below --seq_len - 3 = {seq_len - 3} "
                       "(room for A, B, two <sep> and <cls>)")
    if not perm_size and math.gcd(reuse_len, seq_len - reuse_len) < 2:
        raise ZooError(f"--reuse_len={reuse_len} and --seq_len - --reuse_len = {seq_len - reuse_len} share no factor, "
                       "so the default --perm_size would be 1 (plain left-to-right order): change --reuse_len or give "
                       "--perm_size")
    perm_size = perm_size or math.gcd(reuse_len, seq_len - reuse_len)
    if reuse_len % perm_size or (seq_len - reuse_len) % perm_size:
        raise ZooError(f"--perm_size={perm_size} must divide both --reuse_len={reuse_len} and --seq_len - "
                       f"--reuse_len = {seq_len - reuse_len}")
    # The reused part cannot see the rest, so one of its positions must stay a non-target: else the first target
    # in the order sees nothing at all when the memory is empty. The rest has 3 functional tokens but sees the
    # reused part, so all of its other positions may be targets.
    first, second = num_predict - num_predict // 2, num_predict // 2
    most = min(2 * (reuse_len - 1), 2 * (seq_len - reuse_len - 3) + 1)
    if most < 1:
        raise ZooError(f"--reuse_len={reuse_len} leaves no target in the reused part (one position must stay "
                       "visible); raise --reuse_len to at least 2")
    if num_predict < 1 or first >= reuse_len or second > seq_len - reuse_len - 3:
        raise ZooError(f"--num_predict={num_predict} is not possible: 1 to {most} targets fit --seq_len={seq_len} "
                       f"with --reuse_len={reuse_len} (half in each part, one reused position not a target)")
    if not all(isinstance(v, numbers.Integral) for v in (mask_alpha, mask_beta)):  # data_utils.py: DEFINE_integer
        raise ZooError(f"--mask_alpha={mask_alpha} and --mask_beta={mask_beta} must be integers (the original's "
                       "integer flags: the span context is n * mask_alpha // mask_beta tokens)")
    if mask_beta < 1 or mask_alpha < mask_beta:
        raise ZooError(f"--mask_alpha={mask_alpha} and --mask_beta={mask_beta}: need mask_alpha >= mask_beta >= 1")
    if span_rule not in SPAN_RULES:
        raise ZooError(f"unknown --span_rule={span_rule!r}; choose one of {', '.join(SPAN_RULES)}")
    return perm_size


def steps_per_pass(boundaries, data_len, seq_len, reuse_len):
    """Global batches per pass: the steps i (advancing by reuse_len) at which every row has i + seq_len tokens and a
    sentence boundary at or past i + seq_len - 3, so that `split_a_and_b` always succeeds (module doc)."""
    counts = []
    for row_boundaries in boundaries:
        last = int(row_boundaries[-1]) if len(row_boundaries) else -seq_len
        limit = min(data_len - seq_len, last - seq_len + 3)
        counts.append(limit // reuse_len + 1 if limit >= 0 else 0)
    return min(counts)


def create_layout(documents, vocabulary, *, global_batch_size, seq_len, reuse_len, num_predict, perm_size=None,
                  mask_alpha=6, mask_beta=1, max_gram=5, bi_data=False, span_rule="word", use_eod=True,
                  num_passes=1, seed=0, stream=None):
    """The `PretrainingLayout` of `documents` (lists of sentences) with `vocabulary` (an `XLNetVocabulary`).

    `stream`: an already made `token_stream(...)` (ids, sentence ids) instead of `documents`. `num_passes`
    passes over the text, each with its own A/B pairs and spans (the original's --num_passes / pass_id)."""
    perm_size = check_options(global_batch_size, seq_len, reuse_len, num_predict, perm_size, mask_alpha, mask_beta,
                              bi_data, span_rule)
    data, sent_ids = stream if stream is not None else token_stream(documents, vocabulary, use_eod=use_eod)
    if not len(data):
        raise ZooError("the pretraining corpus is empty; give --input_files or --tfds_name with text")
    layout = PretrainingLayout(
        np.asarray(data, np.int32), np.asarray(sent_ids, bool), np.asarray(vocabulary.start_pieces, bool),
        global_batch_size, seq_len, reuse_len, perm_size, num_predict, steps=1, num_passes=num_passes,
        mask_alpha=mask_alpha, mask_beta=mask_beta, max_gram=max_gram, span_rule=span_rule, bi_data=bi_data,
        functional_ids=(vocabulary.special_ids["sep"], vocabulary.special_ids["cls"]), seed=seed)
    layout.steps = steps_per_pass(layout.boundaries, len(layout.rows[0]), seq_len, reuse_len)
    if layout.steps < 1:
        raise ZooError(f"the corpus ({len(data)} tokens) is too short for {global_batch_size} rows "
                       f"(--global_batch_size) of --seq_len={seq_len}; give more text or lower --global_batch_size "
                       "or --seq_len")
    return layout


def replica_row_order(global_batch_size, replicas, bi_data):
    """The canonical rows each replica reads, replica after replica (see the module doc): int [B]."""
    b = global_batch_size // replicas
    if not bi_data:
        return np.arange(global_batch_size)
    half = global_batch_size // 2
    return np.concatenate([np.r_[k * b // 2:(k + 1) * b // 2, half + k * b // 2:half + (k + 1) * b // 2]
                           for k in range(replicas)])


def make_dataset_fn(layout, repeat=True):
    """`dataset_fn(input_context)` of per-replica batches (dicts of `FEATURES`) for `zoo.training.Trainer`.

    A pipeline serving replicas k..k+n-1 yields, for each global batch in turn, the rows of replica k, then
    k+1, ..., so skipping `steps * replicas / pipelines` batches lands on global step `steps`; `dataset_fn(ctx,
    start_batch=n)` is `dataset_fn(ctx).skip(n)` without making the skipped batches (`dataset_fn.skips_itself`).
    Each batch's sequences are made in the map (`PretrainingLayout.host_batch`, in parallel). `repeat`: the passes
    without end (training; each epoch has new permutations), else one epoch (evaluation)."""

    def dataset_fn(input_context=None, start_batch=0):
        import tensorflow as tf

        B, T = layout.global_batch_size, layout.seq_len
        b = per_replica_batch_size(B, input_context)
        if layout.bi_data and b % 2:
            raise ZooError(f"--bi_data needs an even per-replica batch: --global_batch_size={B} over "
                           f"{B // b} replicas gives {b}; use a multiple of {2 * (B // b)}")
        replicas = B // b
        pipelines = input_context.num_input_pipelines if input_context is not None else 1
        if replicas % pipelines:
            raise ZooError(f"{replicas} replicas do not split evenly over {pipelines} input pipelines")
        local, first = replicas // pipelines, pipeline_id(input_context) * (replicas // pipelines)
        rows = tf.constant(replica_row_order(B, replicas, layout.bi_data).reshape(replicas, b)[first:first + local],
                           tf.int32)
        total = layout.total_steps

        def features(index):
            global_step, replica = index // local, index % local
            epoch, step = global_step // total, global_step % total
            my_rows = tf.gather(rows, replica)
            made = tf.numpy_function(layout.host_batch, [step, my_rows], [tf.int32, tf.int32, tf.bool, tf.float32],
                                     stateful=False)
            x = dict(zip(("token_ids", "segment_ids", "is_masked", "reset"), made))
            for key, value in x.items():
                value.set_shape([b] if key == "reset" else [b, T])
            perms = row_permutations(layout.seed, epoch * total + step, my_rows, layout.perm_size, B)
            return batch_features(x, perms, layout)

        ds = tf.data.Dataset.range(start_batch, 2**62 if repeat else total * local)
        ds = ds.map(features, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)

    dataset_fn.skips_itself = True
    return dataset_fn
