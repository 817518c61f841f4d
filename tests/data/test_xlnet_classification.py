"""XLNet classification inputs: classifier_utils' layout (left padding, <sep> <cls> last, segment ids, the mask
converted once), truncation, task sources (embedded topics, TSV, GLUE/IMDB through tfds), tf.data batches."""

import numpy as np
import pytest
import tensorflow as tf

from zoo.data import text_sources, tfds_offline, xlnet_classification
from zoo.data.xlnet_classification import encode_examples, encode_pair, load_task, make_dataset_fn, truncate_seq_pair
from zoo.data.xlnet_vocabulary import train_xlnet_vocabulary
from zoo.errors import ZooError

SEP_ID, CLS_ID = 4, 3


def original_convert_single_example(tokens_a, tokens_b, max_seq_length):
    """classifier_utils.convert_single_example after tokenize_fn, verbatim (input_mask 1 = padding)."""
    def _truncate_seq_pair(tokens_a, tokens_b, max_length):
        while True:
            total_length = len(tokens_a) + len(tokens_b)
            if total_length <= max_length:
                break
            if len(tokens_a) > len(tokens_b):
                tokens_a.pop()
            else:
                tokens_b.pop()

    if tokens_b:
        _truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
    else:
        if len(tokens_a) > max_seq_length - 2:
            tokens_a = tokens_a[:max_seq_length - 2]
    tokens, segment_ids = [], []
    for token in tokens_a:
        tokens.append(token)
        segment_ids.append(0)
    tokens.append(SEP_ID)
    segment_ids.append(0)
    if tokens_b:
        for token in tokens_b:
            tokens.append(token)
            segment_ids.append(1)
        tokens.append(SEP_ID)
        segment_ids.append(1)
    tokens.append(CLS_ID)
    segment_ids.append(2)
    input_ids = tokens
    input_mask = [0] * len(input_ids)
    if len(input_ids) < max_seq_length:
        delta_len = max_seq_length - len(input_ids)
        input_ids = [0] * delta_len + input_ids
        input_mask = [1] * delta_len + input_mask
        segment_ids = [4] * delta_len + segment_ids
    return input_ids, input_mask, segment_ids


@pytest.fixture(scope="module")
def vocab():
    return train_xlnet_vocabulary(text_sources.load_documents()[:30], 300)


def test_layout_equals_the_original_convert_single_example(vocab):
    dev = load_task("embedded").splits["dev"]  # single sentences; pairs made of two of them
    examples = [(a, b, 0) for (a, _, _), (b, _, _) in zip(dev[:40], dev[40:80])] + dev[:10]
    for max_len in (8, 24, 64):
        for a, b, _ in examples:
            ta, tb = vocab.encode(a), vocab.encode(b) if b else None
            ids, mask, seg = original_convert_single_example(list(ta), list(tb) if tb else None, max_len)
            assert encode_pair(ta, tb, max_len, SEP_ID, CLS_ID) == (ids, seg, [1 - m for m in mask])
    ids, seg, real = encode_pair([10, 11], [12], 8, SEP_ID, CLS_ID)
    assert ids == [0, 0, 10, 11, 4, 12, 4, 3] and seg == [4, 4, 0, 0, 0, 1, 1, 2] and real == [0, 0, 1, 1, 1, 1, 1, 1]
    assert encode_pair([10, 11, 12], None, 4, SEP_ID, CLS_ID) == ([10, 11, 4, 3], [0, 0, 0, 2], [1, 1, 1, 1])


def test_truncate_seq_pair_pops_the_longer_b_on_ties():
    for a_len, b_len, limit, want in ((5, 3, 6, (3, 3)), (3, 3, 5, (3, 2)), (1, 9, 4, (1, 3)), (2, 2, 9, (2, 2))):
        a, b = list(range(a_len)), list(range(100, 100 + b_len))
        truncate_seq_pair(a, b, limit)
        assert (len(a), len(b)) == want and a == list(range(want[0])) and b == list(range(100, 100 + want[1]))


def _part_documents():
    folder = text_sources.default_corpus_dir("en")
    return {part: text_sources.parse_documents(folder.joinpath(part).read_text(encoding="utf-8").splitlines())
            for part in xlnet_classification.EMBEDDED_TOPICS}


def test_embedded_topic_task_is_balanced_split_by_document_and_deterministic():
    data = load_task("embedded")
    assert data.label_names == ["earth_and_weather", "food_and_household_chemistry", "animals_and_plants",
                                "machines", "everyday_objects_and_history"]
    assert data.num_classes == 5 and not data.is_regression
    parts = _part_documents()
    n = xlnet_classification.EMBEDDED_SENTENCES
    doc_of = {}  # text_a -> (label, document index): n consecutive sentences of one document, no overlap
    for label, docs in enumerate(parts.values()):
        for i, doc in enumerate(docs):
            for j in range(0, len(doc) - n + 1, n):
                doc_of[" ".join(doc[j:j + n])] = (label, i)
    used = {}
    for split in ("train", "dev"):
        examples = data.splits[split]
        assert all(b is None for _, b, _ in examples)
        counts = np.bincount([label for _, _, label in examples], minlength=5)
        assert counts.min() >= 0.85 * counts.max() and counts.sum() > (500 if split == "train" else 120), counts
        for a, _, label in examples:
            assert doc_of[a][0] == label  # the label is the sentence's part topic
        used[split] = {doc_of[a] for a, _, _ in examples}
        assert {label for label, _ in used[split]} == set(range(5))
    assert not used["train"] & used["dev"]  # no document in both splits
    assert len(used["dev"]) == 20 and len(used["train"]) == 80  # 4 of each topic's 20 documents in dev
    assert len(doc_of) == sum(len(v) for v in data.splits.values())  # every window used once
    assert load_task("embedded").splits == data.splits and load_task("embedded", seed=1).splits != data.splits
    single = xlnet_classification._embedded(0, sentences_per_example=1).splits  # the same documents per split
    sentence_doc = {s: (label, i) for label, docs in enumerate(parts.values()) for i, d in enumerate(docs) for s in d}
    for split in ("train", "dev"):
        assert {sentence_doc[a] for a, _, _ in single[split]} == used[split]
        assert all(sentence_doc[a][0] == label for a, _, label in single[split])


def test_tsv_task(tmp_path):
    (tmp_path / "train.tsv").write_text("id\ta\tb\tlabel\n1\tfirst text\tsecond\tyes\n2\tmore\ttext\tno\n"
                                        "3\tthird\tone\tyes\n")
    (tmp_path / "dev.tsv").write_text("id\ta\tb\tlabel\n1\tdev text\tpair\tno\n")
    data = load_task("tsv", train_file=str(tmp_path / "train.tsv"), dev_file=str(tmp_path / "dev.tsv"),
                     text_a_column=1, text_b_column=2, label_column=3)
    assert data.label_names == ["no", "yes"] and data.splits["dev"] == [("dev text", "pair", 0)]
    assert data.splits["train"][0] == ("first text", "second", 1)
    (tmp_path / "score.tsv").write_text("a\tscore\nsome text\t3.5\nother\t1\n")
    scores = load_task("tsv", train_file=str(tmp_path / "score.tsv"), dev_file=str(tmp_path / "score.tsv"),
                       label_column=1, regression=True)
    assert scores.is_regression and scores.num_classes == 1 and scores.splits["train"][0] == ("some text", None, 3.5)
    with pytest.raises(ZooError, match="--dev_file"):
        load_task("tsv", train_file=str(tmp_path / "train.tsv"))
    with pytest.raises(ZooError, match="--train_file: no such file"):
        load_task("tsv", train_file=str(tmp_path / "none.tsv"), dev_file=str(tmp_path / "dev.tsv"))
    with pytest.raises(ZooError, match="--label_column"):
        load_task("tsv", train_file=str(tmp_path / "train.tsv"), dev_file=str(tmp_path / "dev.tsv"), label_column=7)


def test_tfds_tasks_through_a_local_dataset(monkeypatch):
    calls = []

    def fake_load(name, split, data_dir=None, download=False):
        calls.append((name, split))
        if name == "imdb_reviews":
            return tf.data.Dataset.from_tensor_slices({"text": ["good<br />film", "bad"], "label": [1, 0]})
        if name == "glue/stsb":
            return tf.data.Dataset.from_tensor_slices({"sentence1": ["a"], "sentence2": ["b"], "label": [4.2]})
        return tf.data.Dataset.from_tensor_slices({"premise": ["p", "q"], "hypothesis": ["h", "i"], "label": [2, -1]})

    monkeypatch.setattr(tfds_offline, "load", fake_load)
    mnli = load_task("glue/mnli", data_dir="/data")
    assert set(mnli.splits) == {"train", "dev", "dev_mismatched"} and mnli.splits["dev"] == [("p", "h", 2)]
    assert ("glue/mnli", "validation_mismatched") in calls and mnli.label_names[2] == "contradiction"
    stsb = load_task("glue/stsb", data_dir="/data")
    assert stsb.is_regression and abs(stsb.splits["dev"][0][2] - 4.2) < 1e-6
    imdb = load_task("imdb_reviews", data_dir="/data")
    assert imdb.splits["train"][0] == ("good film", None, 1) and imdb.label_names == ["neg", "pos"]


def test_missing_dataset_and_unknown_task(tmp_path):
    with pytest.raises(ZooError, match="--data_dir"):
        load_task("glue/rte")
    with pytest.raises(ZooError, match="--task"):
        load_task("glue/nope")
    assert set(xlnet_classification.TASKS) >= {"glue/cola", "glue/stsb", "glue/wnli", "imdb_reviews", "tsv"}


def test_batches_replicas_and_evaluation_padding(vocab):
    data = load_task("embedded", max_examples=10)
    arrays = encode_examples(data.splits["train"], vocab, 32)
    assert arrays["labels"].dtype == np.int32 and (arrays["token_ids"][:, -1] == CLS_ID).all()
    assert ((arrays["padding_mask"] == 0) == (arrays["segment_ids"] == 4)).all()
    dataset_fn = make_dataset_fn(arrays, 4)
    one = [b for b in dataset_fn(tf.distribute.InputContext(1, 0, 1)).take(3)]
    two = [b for b in dataset_fn(tf.distribute.InputContext(1, 0, 2)).take(6)]
    for step in range(3):
        for key in xlnet_classification.FEATURES:
            joined = np.concatenate([two[2 * step][key].numpy(), two[2 * step + 1][key].numpy()])
            assert (joined == one[step][key].numpy()).all()
    evaluation_ds = make_dataset_fn(arrays, 4, training=False)(tf.distribute.InputContext(1, 0, 2))
    assert all(spec.shape.is_fully_defined() for spec in evaluation_ds.element_spec.values())
    evaluation = list(evaluation_ds)
    assert len(evaluation) == 6 and all(b["labels"].shape == (2,) for b in evaluation)
    weights = np.concatenate([b["weights"].numpy() for b in evaluation])
    assert weights.tolist() == [1] * 10 + [0] * 2
    assert (evaluation[-1]["segment_ids"].numpy() == 4).all() and (evaluation[-1]["padding_mask"].numpy() == 0).all()
    with pytest.raises(ZooError, match="--max_seq_length"):
        encode_examples(data.splits["train"], vocab, 3)


def test_module_docstring_example_runs():
    code = xlnet_classification.__doc__.split("```python\n")[1].split("```")[0]
    namespace = {}
    exec(compile(code, "xlnet_classification example", "exec"), namespace)
    assert namespace["batch"]["token_ids"].shape == (8, 64) and namespace["data"].num_classes == 5
