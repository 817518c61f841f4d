"""BERT pretraining examples (as google-research/bert makes them) and their per-replica tf.data pipeline."""

import random

import numpy as np
import pytest
import tensorflow as tf

from zoo.data import bert_pretraining, wordpiece
from zoo.errors import ZooError

SPECIALS = wordpiece.RESERVED_TOKENS
CLS, SEP, MASK = 1, 2, 4

# Corpus A: every sentence is the token "d<doc>s<sentence>" twice, so restored text tells where it came from.
# Sentences are 2 tokens and seq_length - 3 = 30 is even, so nothing is ever truncated.
SENTENCE_COUNTS = [1, 3, 7, 12, 25, 40, 2, 18, 9, 33, 5, 14]
ID_VOCAB = SPECIALS + [f"d{d}s{s}" for d, count in enumerate(SENTENCE_COUNTS) for s in range(count)]
ID_DOCS = [[f"d{d}s{s} d{d}s{s}" for s in range(count)] for d, count in enumerate(SENTENCE_COUNTS)]

# Corpus B: random sentences over 60 words, for masking statistics.
WORD_VOCAB = SPECIALS + [f"w{i}" for i in range(60)]


def word_docs(num_docs=60, seed=0):
    rng = random.Random(seed)
    return [
        [" ".join(f"w{rng.randrange(60)}" for _ in range(rng.randint(2, 14))) for _ in range(rng.randint(10, 40))]
        for _ in range(num_docs)
    ]


def restore(examples):
    """Token ids with the original tokens put back at the masked positions."""
    tokens = examples["token_ids"].copy()
    rows, cols = np.nonzero(examples["mask_weights"])
    tokens[rows, examples["mask_positions"][rows, cols]] = examples["mask_ids"][rows, cols]
    return tokens


def split_pair(tokens, segments, length):
    """(A, B) of one restored example, checking the [CLS] A [SEP] B [SEP] layout and segment ids."""
    row = list(tokens[:length])
    first_sep = row.index(SEP)
    assert row[0] == CLS and row[-1] == SEP and first_sep not in (1, length - 2)
    assert CLS not in row[1:] and SEP not in row[first_sep + 1 : -1]
    assert list(segments[:length]) == [0] * (first_sep + 1) + [1] * (length - first_sep - 1)
    return row[1:first_sep], row[first_sep + 1 : -1]


def sentences(ids):
    """The (doc, sentence) runs of a corpus-A token list; every run is one whole 2-token sentence."""
    runs = []
    for i in range(0, len(ids), 2):
        assert ids[i] == ids[i + 1], "a sentence was cut"
        d, s = ID_VOCAB[ids[i]][1:].split("s")
        runs.append((int(d), int(s)))
    return runs


@pytest.fixture(scope="module")
def id_examples():
    return bert_pretraining.create_examples(ID_DOCS, ID_VOCAB, 33, 5, dupe_factor=3, seed=7)


@pytest.fixture(scope="module")
def word_examples():
    return bert_pretraining.create_examples(word_docs(), WORD_VOCAB, 64, 8, dupe_factor=4)


def test_shapes_and_dtypes(id_examples):
    n = len(id_examples["nsp_labels"])
    expected = {
        "token_ids": ((n, 33), np.int32),
        "segment_ids": ((n, 33), np.int32),
        "padding_mask": ((n, 33), np.int32),
        "mask_positions": ((n, 5), np.int32),
        "mask_ids": ((n, 5), np.int32),
        "mask_weights": ((n, 5), np.float32),
        "nsp_labels": ((n,), np.int32),
    }
    assert {k: (v.shape, v.dtype) for k, v in id_examples.items()} == expected
    lengths = id_examples["padding_mask"].sum(1)
    assert np.all(id_examples["padding_mask"] == (np.arange(33) < lengths[:, None]))
    assert np.all(id_examples["token_ids"][id_examples["padding_mask"] == 0] == 0)  # [PAD]
    assert np.all(id_examples["segment_ids"][id_examples["padding_mask"] == 0] == 0)


def test_pairs_follow_the_original(id_examples):
    tokens, labels = restore(id_examples), id_examples["nsp_labels"]
    lengths = id_examples["padding_mask"].sum(1)
    own_text = []
    for row in range(len(labels)):
        a, b = split_pair(tokens[row], id_examples["segment_ids"][row], lengths[row])
        a, b = sentences(a), sentences(b)
        doc = a[0][0]
        assert [d for d, _ in a] == [doc] * len(a)
        assert [s for _, s in a] == list(range(a[0][1], a[0][1] + len(a)))  # consecutive sentences
        if labels[row] == 0:  # B really is the text that follows A
            assert b == [(doc, s) for s in range(a[-1][1] + 1, a[-1][1] + 1 + len(b))]
            own_text += a + b
        else:  # B comes from another document, as a run of its consecutive sentences
            assert b[0][0] != doc and [d for d, _ in b] == [b[0][0]] * len(b)
            assert [s for _, s in b] == list(range(b[0][1], b[0][1] + len(b)))
            own_text += a
    # Sentences not used when B is random are put back: each pass uses every sentence exactly once.
    counts = {}
    for key in own_text:
        counts[key] = counts.get(key, 0) + 1
    assert counts == {(d, s): 3 for d, count in enumerate(SENTENCE_COUNTS) for s in range(count)}


def test_truncation_keeps_the_layout():
    # Sentences of 5 to 20 tokens against 13 text tokens per example: most pairs are truncated.
    docs = [[" ".join(f"w{(d * 7 + s + k) % 60}" for k in range(5 + 3 * s)) for s in range(6)] for d in range(8)]
    ex = bert_pretraining.create_examples(docs, WORD_VOCAB, 16, 3, short_seq_prob=0.0, dupe_factor=3)
    lengths = ex["padding_mask"].sum(1)
    assert np.all(lengths == 16)  # every pair is long enough to fill the sequence
    tokens = restore(ex)
    for row in range(len(lengths)):
        a, b = split_pair(tokens[row], ex["segment_ids"][row], lengths[row])
        assert len(a) >= 1 and len(b) >= 1


def test_short_seq_prob_makes_shorter_sequences():
    full = bert_pretraining.create_examples(word_docs(20), WORD_VOCAB, 64, 8, short_seq_prob=0.0)
    short = bert_pretraining.create_examples(word_docs(20), WORD_VOCAB, 64, 8, short_seq_prob=1.0)
    full, short = full["padding_mask"].sum(1), short["padding_mask"].sum(1)
    assert short.mean() < full.mean() - 15 and short.max() <= 64


def test_masking_statistics(word_examples):
    ex = word_examples
    lengths = ex["padding_mask"].sum(1)
    weights = ex["mask_weights"]
    counts = weights.sum(1).astype(int)
    expected = [min(8, max(1, int(round(n * 0.15)))) for n in lengths]
    assert counts.tolist() == expected
    assert (counts == 8).any() and (counts < 8).any()
    # Weights are 1 for the first `count` slots and 0 only on padding slots (position 0, id 0).
    assert np.all(weights == (np.arange(8) < counts[:, None]))
    assert np.all(ex["mask_positions"][weights == 0] == 0) and np.all(ex["mask_ids"][weights == 0] == 0)
    tokens = restore(ex)
    masked, original, replaced = [], [], []
    for row in range(len(lengths)):
        positions = ex["mask_positions"][row, : counts[row]]
        assert np.all(np.diff(positions) > 0)  # sorted, unique
        assert np.all(positions < lengths[row]) and np.all(positions > 0)
        assert np.all(tokens[row, positions] == ex["mask_ids"][row, : counts[row]])
        assert not np.isin(ex["mask_ids"][row, : counts[row]], [0, CLS, SEP]).any()  # never [PAD]/[CLS]/[SEP]
        masked += ex["token_ids"][row, positions].tolist()
        original += ex["mask_ids"][row, : counts[row]].tolist()
    masked, original = np.array(masked), np.array(original)
    total = len(masked)
    assert total > 3000
    is_mask = masked == MASK
    unchanged = masked == original
    random_word = ~is_mask & ~unchanged
    assert abs(is_mask.mean() - 0.8) < 0.02
    assert abs(unchanged.mean() - 0.1) < 0.02
    assert abs(random_word.mean() - 0.1) < 0.02
    # Random replacements come from the whole vocabulary.
    assert len(np.unique(masked[random_word])) > 40
    # Unmasked tokens are untouched: nothing outside the chosen positions is [MASK].
    outside = ex["token_ids"].copy()
    rows, cols = np.nonzero(weights)
    outside[rows, ex["mask_positions"][rows, cols]] = -1
    assert not (outside == MASK).any()


def test_nsp_labels_are_balanced(word_examples):
    # Slightly above 0.5: as in the original, a chunk of a single sentence always takes a random B.
    assert 0.45 < word_examples["nsp_labels"].mean() < 0.6
    assert set(np.unique(word_examples["nsp_labels"])) == {0, 1}


def test_deterministic_for_a_seed(word_examples):
    docs = word_docs()
    again = bert_pretraining.create_examples(docs, wordpiece.make_tokenizer(WORD_VOCAB), 64, 8, dupe_factor=4)
    assert all(np.array_equal(again[k], word_examples[k]) for k in bert_pretraining.FEATURES)
    other = bert_pretraining.create_examples(docs, WORD_VOCAB, 64, 8, dupe_factor=4, seed=1)
    assert not np.array_equal(other["token_ids"], word_examples["token_ids"])


def test_vocabulary_path_gives_the_same_examples(tmp_path):
    path = str(tmp_path / "vocab.txt")
    wordpiece.write_vocabulary(ID_VOCAB, path)
    from_path = bert_pretraining.create_examples(ID_DOCS[:4], path, 33, 5)
    from_list = bert_pretraining.create_examples(ID_DOCS[:4], ID_VOCAB, 33, 5)
    assert all(np.array_equal(from_path[k], from_list[k]) for k in bert_pretraining.FEATURES)


def test_each_duplicate_pass_masks_anew():
    # Two-sentence documents give the same "s0 then s1" pair in many passes; the masks should differ.
    docs = [[f"d{d}s0 d{d}s0", f"d{d}s1 d{d}s1"] for d in range(1, 7)]
    ex = bert_pretraining.create_examples(docs, ID_VOCAB, 33, 5, dupe_factor=10, short_seq_prob=0.0)
    tokens = restore(ex)
    groups = {}
    for row in np.nonzero(ex["nsp_labels"] == 0)[0]:
        groups.setdefault(tokens[row].tobytes(), []).append(ex["mask_positions"][row].tobytes())
    repeated = [masks for masks in groups.values() if len(masks) >= 3]
    assert len(repeated) >= 3 and all(len(set(masks)) > 1 for masks in repeated)


def test_errors():
    with pytest.raises(ZooError, match="at least 2 documents with text, found 1"):
        bert_pretraining.create_examples([["w1 w2", "w3"], ["   "]], WORD_VOCAB, 32, 4)
    with pytest.raises(ZooError, match="found 0"):
        bert_pretraining.create_examples([], WORD_VOCAB, 32, 4)
    with pytest.raises(ZooError, match="--seq_length must be at least 5"):
        bert_pretraining.create_examples(ID_DOCS, ID_VOCAB, 4, 4)
    with pytest.raises(ZooError, match="--max_predictions must be at least 1"):
        bert_pretraining.create_examples(ID_DOCS, ID_VOCAB, 32, 0)
    with pytest.raises(ZooError, match="masked_lm_prob"):
        bert_pretraining.create_examples(ID_DOCS, ID_VOCAB, 32, 4, masked_lm_prob=0.0)
    with pytest.raises(ZooError, match="lacks the special tokens"):
        bert_pretraining.create_examples(ID_DOCS, ["[PAD]", "w1"], 32, 4)
    padded = wordpiece.make_tokenizer(ID_VOCAB)
    padded.sequence_length = 8
    with pytest.raises(ZooError, match="without sequence_length"):
        bert_pretraining.create_examples(ID_DOCS, padded, 32, 4)


def test_unigram_baseline():
    examples = {"mask_ids": np.array([[5, 5, 7], [9, 5, 0]]), "mask_weights": np.array([[1, 1, 1], [1, 0, 0.0]])}
    assert bert_pretraining.unigram_baseline(examples) == 0.5  # 5 is 2 of the 4 real masked tokens


# --- the tf.data pipeline -----------------------------------------------------------------------------------


def batches(ds, count):
    return [{k: v.numpy() for k, v in b.items()} for b in ds.take(count)]


def concat(parts):
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def assert_same(x, y):
    assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def numbered(id_examples):
    """The corpus-A examples with each row's index written into its first token, to follow rows."""
    examples = dict(id_examples)
    examples["token_ids"] = examples["token_ids"].copy()
    examples["token_ids"][:, 0] = np.arange(len(examples["token_ids"]))
    return examples


def test_dataset_spec(id_examples):
    spec = bert_pretraining.make_dataset(id_examples, 8).element_spec
    assert set(spec) == set(bert_pretraining.FEATURES)
    assert spec["token_ids"] == tf.TensorSpec([8, 33], tf.int32)
    assert spec["mask_weights"] == tf.TensorSpec([8, 5], tf.float32)
    assert spec["nsp_labels"] == tf.TensorSpec([8], tf.int32)


def test_dataset_epochs_are_permutations_and_deterministic(numbered):
    n = len(numbered["nsp_labels"])
    tf.random.set_seed(1)  # the order must not depend on TensorFlow's global seed
    first = batches(bert_pretraining.make_dataset(numbered, 8), 2 * n // 8 + 1)
    tf.random.set_seed(2)
    again = batches(bert_pretraining.make_dataset(numbered, 8), 2 * n // 8 + 1)
    tf.random.set_seed(None)
    for x, y in zip(first, again):
        assert_same(x, y)
    order = np.concatenate([b["token_ids"][:, 0] for b in first])
    for b in first:  # rows stay whole
        assert all(np.array_equal(b[k], numbered[k][b["token_ids"][:, 0]]) for k in bert_pretraining.FEATURES)
    assert sorted(order[:n]) == list(range(n)) and sorted(order[n : 2 * n]) == list(range(n))
    assert list(order[:n]) != list(range(n)) and list(order[:n]) != list(order[n : 2 * n])  # reshuffled per epoch
    other = batches(bert_pretraining.make_dataset(numbered, 8, seed=1), 1)[0]
    assert not np.array_equal(other["token_ids"], first[0]["token_ids"])
    # A resumed run skips k batches and sees what an uninterrupted run sees.
    resumed = batches(bert_pretraining.make_dataset(numbered, 8).skip(5), 3)
    for x, y in zip(resumed, first[5:8]):
        assert_same(x, y)


@pytest.mark.parametrize("pipelines, replicas", [(1, 2), (2, 2), (2, 4), (1, 4)])
def test_per_replica_batches_slice_the_global_order(numbered, pipelines, replicas):
    global_batches = batches(bert_pretraining.make_dataset(numbered, 8), 4)
    per_replica = 8 // replicas
    local_replicas = replicas // pipelines
    streams = [
        batches(
            bert_pretraining.make_dataset(numbered, 8, tf.distribute.InputContext(pipelines, p, replicas)),
            4 * local_replicas,
        )
        for p in range(pipelines)
    ]
    for step, expected in enumerate(global_batches):
        # Each pipeline feeds its replicas round-robin; replica r of pipeline p holds global slice r*pipelines+p.
        parts = {}
        for p, stream in enumerate(streams):
            for r in range(local_replicas):
                parts[r * pipelines + p] = stream[step * local_replicas + r]
        assert all(len(part["nsp_labels"]) == per_replica for part in parts.values())
        assert_same(concat([parts[i] for i in range(replicas)]), expected)


@pytest.mark.distributed
def test_mirrored_strategy_sees_the_global_batches(numbered, mirrored):
    strategy = mirrored
    dist = strategy.distribute_datasets_from_function(lambda ctx: bert_pretraining.make_dataset(numbered, 8, ctx))
    expected = batches(bert_pretraining.make_dataset(numbered, 8), 3)
    for step, batch in zip(range(3), dist):
        local = [{k: v.numpy() for k, v in part.items()} for part in strategy.experimental_local_results(batch)]
        assert all(len(part["nsp_labels"]) == 4 for part in local)
        assert_same(concat(local), expected[step])


def test_dataset_errors(id_examples):
    with pytest.raises(ZooError, match="--global_batch_size=9 must be a multiple of the 2 replicas"):
        bert_pretraining.make_dataset(id_examples, 9, tf.distribute.InputContext(1, 0, 2))
    with pytest.raises(ZooError, match="--global_batch_size must be positive"):
        bert_pretraining.make_dataset(id_examples, 0)
    with pytest.raises(ZooError, match=r"lack the features \['nsp_labels'\]"):
        bert_pretraining.make_dataset({k: v for k, v in id_examples.items() if k != "nsp_labels"}, 8)


def test_compiled_tokenizer_matches_eager_calls():
    # More sentences than one batch go through a tf.function; fewer through eager calls. Same ids either way.
    docs = word_docs(6) + [["Hello, wörld!  w1 w2 W3", "Ünknown tokens: [MASK] ¿qué?", "   "], ["w4"]]
    tokenizer = wordpiece.make_tokenizer(WORD_VOCAB)
    compiled = bert_pretraining.tokenize_documents(docs, tokenizer, batch_size=7)
    eager = bert_pretraining.tokenize_documents(docs, tokenizer, batch_size=10**6)
    assert compiled == eager and len(eager) == 8 and all(len(s) for d in eager for s in d)
    assert eager[6][0][-3:] == [WORD_VOCAB.index("w1"), WORD_VOCAB.index("w2"), WORD_VOCAB.index("w3")]


def _old_mask_tokens(tokens, masked_lm_prob, max_predictions, vocab_size, ids, rng):
    """The masking before whole-word masking existed, kept verbatim as the reference of its draws."""
    candidates = [i for i, t in enumerate(tokens) if t != ids["cls"] and t != ids["sep"]]
    rng.shuffle(candidates)
    count = min(max_predictions, max(1, int(round(len(tokens) * masked_lm_prob))))
    output = list(tokens)
    chosen = sorted(candidates[:count])
    for index in candidates[:count]:
        if rng.random() < 0.8:
            output[index] = ids["mask"]
        elif rng.random() < 0.5:
            pass
        else:
            output[index] = rng.randint(0, vocab_size - 1)
    return output, chosen, [tokens[i] for i in chosen]


def test_without_whole_words_the_draws_are_unchanged():
    ids = {"pad": 0, "cls": 1, "sep": 2, "unk": 3, "mask": 4}
    for seed in range(200):
        rng = random.Random(seed)
        n = rng.randint(3, 60)
        tokens = [1] + [rng.randint(3, 99) for _ in range(n)] + [2]
        args = (tokens, 0.15, rng.choice([1, 5, 20]), 100, ids)
        a, b = random.Random(seed), random.Random(seed)
        assert bert_pretraining._mask_tokens(*args, a) == _old_mask_tokens(*args, b)
        assert a.random() == b.random()  # the same number of draws
