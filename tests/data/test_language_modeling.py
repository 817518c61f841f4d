"""Language-model data: vocabularies, sources, the carried-state stream layout and its per-replica views."""

import math

import numpy as np
import pytest
import tensorflow as tf

from zoo.data import language_modeling as lm
from zoo.data.lm_vocabulary import EOS, UNK, LMVocabulary, escape_token, tokenize_words, unescape_token
from zoo.errors import ZooError


def unique_documents(lengths, start=1):
    """Documents whose ids are all distinct and consecutive (the next token of id k in a document is k + 1)."""
    docs, next_id = [], start
    for n in lengths:
        docs.append(np.arange(next_id, next_id + n, dtype=np.int32))
        next_id += n + 5  # a gap: k + 1 never crosses into the next document
    return docs


# === Vocabulary ===


def test_word_vocabulary_round_trips_and_counts():
    text = "The cat sat on the mat.\nThe dog, the cat!\n\nDon't x-ray 3.14 cats."
    assert tokenize_words("Don't x-ray 3.14, ok?") == ["Don't", "x-ray", "3.14", ",", "ok", "?"]
    vocab = LMVocabulary.build([text], "word", lowercase=True)
    assert vocab.tokens[:4] == [UNK, EOS, "the", "cat"]  # the x4, <eos> x3 (special), cat x2
    assert vocab.eos_id == 1 and vocab.unk_id == 0
    ids = vocab.encode("THE cat sat.\nA bird")
    assert vocab.decode(ids) == "the cat sat .\n<unk> <unk>\n"
    assert ids[3] == vocab.ids["."] and list(ids[5:]) == [0, 0, 1]
    small = LMVocabulary.build([text], "word", vocab_size=4, lowercase=True)
    assert small.tokens == [UNK, EOS, "the", "cat"]
    assert LMVocabulary.build([text], "word", min_count=2, lowercase=True).tokens == [UNK, EOS, "the", "cat", "."]
    with pytest.raises(ZooError, match="--vocab_size=2 must exceed the 2 special tokens"):
        LMVocabulary.build([text], "word", vocab_size=2)


def test_char_vocabulary_saves_and_loads_exactly(tmp_path):
    text = "ab\\ c\n\tb\u00e9\u2028b"
    vocab = LMVocabulary.build([text], "char")
    assert vocab.tokens[:2] == [UNK, "b"] and vocab.size == 1 + len(set(text))
    assert vocab.decode(vocab.encode(text)) == text
    assert vocab.decode(vocab.encode("az")) == "a" + UNK
    path = str(tmp_path / "vocab.txt")
    vocab.save(path)
    lines = open(path, encoding="utf-8").read().split("\n")
    assert len(lines) == vocab.size + 1 and "\\u000a" in lines and "\\\\" in lines and "\\u2028" in lines
    again = LMVocabulary.load(path, "char")
    assert again.tokens == vocab.tokens and again.sha1 == vocab.sha1
    assert LMVocabulary.load(path, "char", lowercase=True).sha1 != vocab.sha1
    assert all(unescape_token(escape_token(t)) == t for t in ["a\\u0041", "\\", " x\n", "\U0001f600"])
    with pytest.raises(ZooError, match="word-level vocabulary starts with <unk>, <eos>"):
        LMVocabulary.load(path, "word")


# === Sources ===


def test_embedded_corpus_splits_documents():
    corpus = lm.open_lm_corpus()
    sizes = {k: len(v) for k, v in corpus.splits.items()}
    assert sizes == {"train": 105, "validation": 12, "test": 13}
    everything = [d for split in corpus.splits.values() for d in split]
    assert len(set(everything)) == 130 and all(d.endswith(".\n") for d in everything)


def test_text_files_and_their_errors(tmp_path):
    (tmp_path / "a.txt").write_text("one two\nthree\n\n\nfour five\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("six\r\nseven\r\neight\r\nnine\r\n", encoding="utf-8")
    corpus = lm.open_lm_corpus(text_files=[str(tmp_path / "*.txt")], validation_fraction=0.3)
    # 3 documents (< 10): the last 30% of each document's lines are held out (where that leaves some).
    assert corpus.splits["train"] == ["one two\n", "four five\n", "six\nseven\neight\n"]
    assert corpus.splits["validation"] == ["three\n", "nine\n"]
    (tmp_path / "v.txt").write_text("ten\n", encoding="utf-8")
    corpus = lm.open_lm_corpus(text_files=str(tmp_path / "a.txt"), validation_files=str(tmp_path / "v.txt"),
                               test_files=[str(tmp_path / "b.txt")])
    assert sorted(corpus.splits) == ["test", "train", "validation"] and corpus.splits["validation"] == ["ten\n"]
    (tmp_path / "empty.txt").write_text(" \n\n", encoding="utf-8")
    with pytest.raises(ZooError, match="--text_files: .*empty.txt' has no text"):
        lm.open_lm_corpus(text_files=str(tmp_path / "empty.txt"))
    (tmp_path / "latin1.txt").write_bytes("f\u00fcnf\n".encode("latin-1"))
    with pytest.raises(ZooError, match="latin1.txt' is not UTF-8"):
        lm.open_lm_corpus(text_files=str(tmp_path / "latin1.txt"))
    with pytest.raises(ZooError, match="--text_files pattern .* matches no file"):
        lm.open_lm_corpus(text_files=str(tmp_path / "none*.txt"))
    with pytest.raises(ZooError, match="too short to hold out"):
        lm.open_lm_corpus(text_files=str(tmp_path / "v.txt"))
    with pytest.raises(ZooError, match="not both"):
        lm.open_lm_corpus("lm1b", text_files=str(tmp_path / "v.txt"))


def test_missing_tfds_dataset_is_one_line_error(tmp_path):
    with pytest.raises(ZooError, match="no --data_dir was given"):
        lm.open_lm_corpus("tiny_shakespeare")
    with pytest.raises(ZooError, match="'pg19' is not present in --data_dir="):
        lm.open_lm_corpus("pg19", data_dir=str(tmp_path))
    with pytest.raises(ZooError, match="unknown --dataset='ptb'"):
        lm.open_lm_corpus("ptb")


@pytest.mark.slow
def test_tfds_tiny_shakespeare_and_lm1b_from_data_dir(tmp_path):
    """The real builders' names reading tiny datasets stored in a local --data_dir (no network)."""
    tfds = pytest.importorskip("tensorflow_datasets")
    texts = {"train": "First Citizen:\nBefore we proceed.\n", "validation": "All:\nSpeak.\n", "test": "Go.\n"}
    tfds.dataset_builders.store_as_tfds_dataset(
        "tiny_shakespeare", "1.0.0", tfds.features.FeaturesDict({"text": tfds.features.Text()}),
        {k: tf.data.Dataset.from_tensor_slices({"text": [v]}) for k, v in texts.items()}, data_dir=str(tmp_path))
    corpus = lm.open_lm_corpus("tiny_shakespeare", data_dir=str(tmp_path))
    assert corpus.splits == {k: [v] for k, v in texts.items()}
    sentences = [f"Sentence number {i} ." for i in range(20)]
    tfds.dataset_builders.store_as_tfds_dataset(
        "lm1b", "1.1.0", tfds.features.FeaturesDict({"text": tfds.features.Text()}),
        {"train": tf.data.Dataset.from_tensor_slices({"text": sentences}),
         "test": tf.data.Dataset.from_tensor_slices({"text": sentences[:3]})}, data_dir=str(tmp_path))
    corpus = lm.open_lm_corpus("lm1b", data_dir=str(tmp_path), validation_fraction=0.1)
    assert [len(corpus.splits[k]) for k in ("train", "validation", "test")] == [18, 2, 3]
    assert sorted(corpus.splits["train"] + corpus.splits["validation"]) == sorted(s + "\n" for s in sentences)
    assert len(lm.open_lm_corpus("lm1b", data_dir=str(tmp_path), max_documents=10).splits["train"]) == 9


# === Layout ===


@pytest.mark.parametrize("B,T", [(4, 5), (3, 7), (8, 3)])
def test_reset_layout_invariants(B, T):
    lengths = [1, 2, 3, 5, 11, 40, 6, 9, 17, 4, 70, 8]
    docs = unique_documents(lengths)
    layout = lm.stream_layout(docs, B, T)
    assert layout.token_ids.shape == (layout.steps, B, T) and layout.reset.shape == (layout.steps, B)
    real = layout.weights > 0
    expected = sorted(int(k) for d in docs if len(d) >= 2 for k in d[1:])  # every target, once
    assert sorted(layout.targets[real].tolist()) == expected and layout.tokens == len(expected)
    assert np.all(layout.targets[real] == layout.token_ids[real] + 1)  # the next token of the same document
    assert set(np.unique(layout.weights)) <= {0.0, 1.0}
    segments = sum(math.ceil((n - 1) / T) for n in lengths if n >= 2)
    assert layout.steps == math.ceil(segments / B)  # padding: documents' tails and under B segments
    starts = {int(d[0]) for d in docs}
    for t in range(layout.steps):
        for r in range(B):
            first = int(layout.token_ids[t, r, 0])
            if layout.weights[t, r, 0] == 0:  # an all-padding segment
                assert layout.reset[t, r] == 0 and not layout.weights[t, r].any()
            elif first in starts:
                assert layout.reset[t, r] == 1  # resets at document starts ...
            elif t == 0:
                assert layout.reset[t, r] == 1  # ... and where a cut document goes on in the next stream
            else:
                assert layout.reset[t, r] == 0 and first == layout.targets[t - 1, r, -1]  # the stream goes on


def test_continue_layout_is_the_ptb_reader():
    docs = unique_documents([30, 21, 12])
    joined = np.concatenate(docs)
    layout = lm.stream_layout(docs, 4, 5, boundaries="continue")
    real = layout.weights > 0
    assert layout.tokens == len(joined) - 4  # every token but each stream's first is a target once
    expected = np.concatenate([s[1:] for s in np.array_split(joined, 4)])  # streams of 16, 16, 16, 15
    assert np.array_equal(np.sort(layout.targets[real]), np.sort(expected))
    following = dict(zip(joined[:-1].tolist(), joined[1:].tolist()))  # across document joins too
    assert all(following[x] == y for x, y in zip(layout.token_ids[real].tolist(), layout.targets[real].tolist()))
    assert layout.reset[0].tolist() == [1, 1, 1, 1] and not layout.reset[1:].any()
    stream0 = np.concatenate([layout.token_ids[t, 0] for t in range(layout.steps)])
    assert np.array_equal(stream0[:15], joined[:15])  # stream 0: its 16 tokens, 15 as inputs
    with pytest.raises(ZooError, match="cannot fill 40 streams"):
        lm.stream_layout(docs, 40, 5, boundaries="continue")


def test_layout_errors():
    with pytest.raises(ZooError, match="no document of two or more tokens"):
        lm.stream_layout([np.array([3])], 2, 4)
    with pytest.raises(ZooError, match="--document_boundaries='sometimes'"):
        lm.stream_layout([np.arange(9)], 2, 4, boundaries="sometimes")


def test_unigram_perplexity():
    layout = lm.stream_layout([np.array([0, 1, 2, 3, 0, 1, 2, 3, 0])], 1, 8)
    assert lm.unigram_perplexity(layout, layout, 4) == pytest.approx(4.0)  # uniform counts, add-one: uniform


# === Per-replica views ===


def _batches(layout, ctx, n):
    return [{k: v.numpy() for k, v in batch.items()} for batch in lm.lm_dataset(layout, ctx).take(n)]


def test_replica_and_pipeline_views_make_the_same_global_batches():
    layout = lm.stream_layout(unique_documents([23, 40, 7, 19, 33, 12, 28, 9]), 8, 4)
    steps = layout.steps
    one = _batches(layout, None, 2 * steps)  # two epochs: the second repeats the first
    assert all(np.array_equal(one[t]["targets"], one[t + steps]["targets"]) for t in range(steps))
    for t in range(steps):
        assert np.array_equal(one[t]["token_ids"], layout.token_ids[t]) and one[t]["reset"].shape == (8,)
    two = _batches(layout, tf.distribute.InputContext(1, 0, 2), 2 * steps)
    four = [_batches(layout, tf.distribute.InputContext(2, p, 4), 2 * steps) for p in range(2)]  # 2 workers
    for t in range(steps):
        for key in one[t]:
            assert np.array_equal(np.concatenate([two[2 * t][key], two[2 * t + 1][key]]), one[t][key])
            rows = [four[p][2 * t + k][key] for p in range(2) for k in range(2)]
            assert np.array_equal(np.concatenate(rows), one[t][key])
    # The trainer resumes at step s with skip(s * replicas / pipelines): the same global batch.
    skipped = lm.lm_dataset(layout, tf.distribute.InputContext(2, 1, 4)).skip(3 * 2)
    assert np.array_equal(next(iter(skipped))["targets"], layout.targets[3, 4:6])
    evaluation = list(lm.lm_dataset(layout, tf.distribute.InputContext(1, 0, 2), repeat=False))
    assert len(evaluation) == 2 * steps  # one pass, the same number of batches on each replica
    with pytest.raises(ZooError, match="--global_batch_size=8 must be a multiple of the 3 replicas"):
        lm.lm_dataset(layout, tf.distribute.InputContext(1, 0, 3))


def test_mirrored_strategy_hands_replica_k_rows_k(mirrored):
    layout = lm.stream_layout(unique_documents([23, 40, 7, 19]), 4, 3)
    dist = mirrored.distribute_datasets_from_function(lambda ctx: lm.lm_dataset(layout, ctx))
    iterator = iter(dist)
    for t in range(3):
        batch = next(iterator)
        parts = [p.numpy() for p in mirrored.experimental_local_results(batch["targets"])]
        assert np.array_equal(np.concatenate(parts), layout.targets[t])
