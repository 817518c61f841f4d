"""zoo.data.dialogue_state: the official SUMBT tsv + ontology format, read and tokenized exactly."""

import json

import numpy as np
import pytest
import tensorflow as tf

from zoo.data import dialogue_state as ds
from zoo.data.bert_vocabulary import BertVocabulary
from zoo.errors import ZooError

WORDS = ["i", "want", "cheap", "food", "in", "the", "north", "what", "area", "?", "no", "chinese", "price",
         "range", "do", "not", "care", "none", "east", "expensive", "moderate", "-", "hotel", "stars", "4"]


def wordpiece_vocab():
    return BertVocabulary.from_wordpiece(["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"] + WORDS)


def kobert_like_vocab():
    """WordPiece tokens in KoBERT's special layout: [UNK]=0, [PAD]=1, [CLS]=2, [SEP]=3, [MASK]=4."""
    tokens = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    return BertVocabulary("wordpiece", tokens, {"unk": 0, "pad": 1, "cls": 2, "sep": 3, "mask": 4})


def write_woz(path, train=None, dev=None, test=None):
    """WOZ 2.0 as SUMBT ships it: no header, slots area/food/price range, ontology_dstc2_en.json."""
    path.mkdir(exist_ok=True)
    ontology = {"informable": {"food": ["chinese", "indian"], "price range": ["cheap", "expensive", "moderate"],
                               "area": ["north", "east"], "request": ["address", "phone"]},
                "requestable": ["address"]}
    (path / "ontology_dstc2_en.json").write_text(json.dumps(ontology))
    default = ("0\t0\ti want cheap food\t\tnone\tnone\tcheap\n"
               "0\t1\tnorth\twhat area ?\tnorth\tnone\tcheap\n"
               "0\t2\tno\tchinese ?\tnorth\tdontcare\tcheap\n"
               "1\t0\tthe east\t\teast\tnone\tnone\n")
    for name, text in (("train", train), ("dev", dev), ("test", test)):
        (path / f"{name}.tsv").write_text(default if text is None else text)
    return str(path)


def write_multiwoz(path, ontology=None, header=None, rows=None):
    """MultiWOZ-style: a '#' header naming the columns (trailing tab), a flat ontology.json."""
    path.mkdir(exist_ok=True)
    ontology = ontology or {"hotel-stars": ["4", "5", "do not care"], "hotel-area": ["north", "east"]}
    (path / "ontology.json").write_text(json.dumps(ontology))
    header = header or ["hotel-stars", "hotel-area"]  # not sorted: the reader maps columns by name
    rows = rows or ["d1.json\t0\thotel stars 4\t\t4\tnone", "d1.json\t1\tnorth\twhat area ?\t4\tnorth"]
    text = "# Dialogue ID\tTurn Index\tUser Utterance\tSystem Response\t" + "\t".join(header) + "\t\n"
    text += "\n".join(rows) + "\n"
    for name in ("train", "dev", "test"):
        (path / f"{name}.tsv").write_text(text)
    return str(path)


def test_woz_ontology_and_labels_as_the_original(tmp_path):
    data = ds.open_dialogue_state(write_woz(tmp_path / "woz"))
    assert data.slots == ["area", "food", "price range"]  # sorted, "request" dropped
    assert data.labels == [["north", "east", "do not care", "none"], ["chinese", "indian", "do not care", "none"],
                           ["cheap", "expensive", "moderate", "do not care", "none"]]
    turns = data.splits["train"][0].turns
    assert [t[2] for t in turns] == [[3, 3, 0], [0, 3, 0], [0, 2, 0]]  # "dontcare" -> "do not care"
    assert [d.id for d in data.splits["train"]] == ["0", "1"]
    assert data.turn_length(22) == 3 and data.turn_length(2) == 2
    assert data.sizes() == {"train": (2, 4), "dev": (2, 4), "test": (2, 4)}
    assert list(json.loads(data.ontology_json())) == data.slots and len(data.sha1) == 40


def test_multiwoz_header_columns_and_none_only(tmp_path):
    data = ds.open_dialogue_state(write_multiwoz(tmp_path / "mw"))
    assert data.slots == ["hotel-area", "hotel-stars"] and data.slot_texts == data.slots
    assert data.labels == [["north", "east", "none"], ["4", "5", "do not care", "none"]]
    assert [t[2] for t in data.splits["dev"][0].turns] == [[2, 0], [0, 0]]


def test_pricerange_slot_text(tmp_path):
    path = write_multiwoz(tmp_path / "p", ontology={"pricerange": ["cheap"]}, header=["pricerange"],
                          rows=["a\t0\tcheap\t\tcheap"])
    data = ds.open_dialogue_state(path)
    assert data.slots == ["pricerange"] and data.slot_texts == ["price range"]


def test_encoded_turns_exact(tmp_path):
    data = ds.open_dialogue_state(write_woz(tmp_path / "woz"))
    vocab = wordpiece_vocab()
    ids = {t: i for i, t in enumerate(vocab.tokens)}
    arrays = ds.encode_dialogues(data, "train", vocab, max_seq_length=10, max_turn_length=3)
    assert {k: v.shape for k, v in arrays.items()} == {"token_ids": (2, 3, 10), "segment_ids": (2, 3, 10),
                                                       "padding_mask": (2, 3, 10), "labels": (2, 3, 3)}
    first = [ids[t] for t in ["[CLS]", "i", "want", "cheap", "food", "[SEP]"]]  # turn 0: no system text
    np.testing.assert_array_equal(arrays["token_ids"][0, 0], first + [0] * 4)
    np.testing.assert_array_equal(arrays["segment_ids"][0, 0], [0] * 10)
    second = [ids[t] for t in ["[CLS]", "north", "[SEP]", "what", "area", "?", "[SEP]"]]
    np.testing.assert_array_equal(arrays["token_ids"][0, 1], second + [0] * 3)
    np.testing.assert_array_equal(arrays["segment_ids"][0, 1], [0, 0, 0, 1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(arrays["padding_mask"][0, 1], [1] * 7 + [0] * 3)
    # Dialogue 1 has one turn: the other two are all padding, labelled -1.
    np.testing.assert_array_equal(arrays["labels"][1], [[1, 3, 4], [-1, -1, -1], [-1, -1, -1]])
    assert not arrays["padding_mask"][1, 1:].any() and not arrays["token_ids"][1, 1:].any()


def test_pad_id_from_the_vocabulary(tmp_path):
    """KoBERT's [PAD] is 1: padding positions and padded turns carry it."""
    data = ds.open_dialogue_state(write_woz(tmp_path / "woz"))
    arrays = ds.encode_dialogues(data, "train", kobert_like_vocab(), max_seq_length=8, max_turn_length=3)
    assert arrays["token_ids"][0, 0, 0] == 2 and arrays["token_ids"][0, 0, 5] == 3
    assert (arrays["token_ids"][0, 0, 6:] == 1).all() and (arrays["token_ids"][1, 1:] == 1).all()
    slots, values = ds.encode_ontology_inputs(data, kobert_like_vocab(), max_label_length=6)
    assert values["token_ids"].shape == (3, 5, 6) and (values["token_ids"][0, 4:] == 1).all()
    assert not values["padding_mask"][0, 4:].any() and values["padding_mask"][2, 4].sum() == 3  # "none"


def test_truncation_is_berts_pair_rule(tmp_path):
    a, b = list(range(6)), list(range(10, 14))
    ds.truncate_pair(a, b, 7)
    assert a == [0, 1, 2, 3] and b == [10, 11, 12]  # the longer loses its tail; on a tie the system side
    text = "0\t0\ti want cheap food in the north\twhat area ? no\tnone\tnone\tnone\n"
    data = ds.open_dialogue_state(write_woz(tmp_path / "woz", train=text))
    vocab = wordpiece_vocab()
    row = ds.encode_dialogues(data, "train", vocab, max_seq_length=9, max_turn_length=1)["token_ids"][0, 0]
    assert [vocab.tokens[i] for i in row] == ["[CLS]", "i", "want", "cheap", "[SEP]", "what", "area", "?", "[SEP]"]


def test_slot_and_value_inputs(tmp_path):
    data = ds.open_dialogue_state(write_woz(tmp_path / "woz"))
    vocab = wordpiece_vocab()
    ids = {t: i for i, t in enumerate(vocab.tokens)}
    slots, values = ds.encode_ontology_inputs(data, vocab, max_label_length=6)
    np.testing.assert_array_equal(slots["token_ids"][2], [ids[t] for t in ["[CLS]", "price", "range", "[SEP]"]]
                                  + [0, 0])
    np.testing.assert_array_equal(values["token_ids"][1, 2], [ids[t] for t in ["[CLS]", "do", "not", "care",
                                                                                "[SEP]"]] + [0])
    assert values["token_ids"].shape == (3, 5, 6) and not values["padding_mask"][0, 4].any()  # area: 4 values
    with pytest.raises(ZooError, match=r"'do not care' is 5 tokens .* --max_label_length=4; raise"):
        ds.encode_ontology_inputs(data, vocab, max_label_length=4)


def test_long_dialogues_keep_their_first_turns(tmp_path, capsys):
    data = ds.open_dialogue_state(write_woz(tmp_path / "woz"))
    arrays = ds.encode_dialogues(data, "train", wordpiece_vocab(), max_seq_length=8, max_turn_length=2,
                                 verbose=True)
    np.testing.assert_array_equal(arrays["labels"][0], [[3, 3, 0], [0, 3, 0]])
    assert "1 dialogue(s) longer than --max_turn_length=2 keep their first 2 turns (1 turns dropped)" in \
        capsys.readouterr().out


def test_unknown_values_counted_refused_or_mapped(tmp_path):
    text = ("0\t0\ti want cheap food\t\tsouth\tnone\tcheap\n0\t1\tno\t\tsouth\tpizza\tcheap\n"
            "1\t0\tno\t\tnone\tnone\tvery cheap\n")
    path = write_woz(tmp_path / "woz", train=text)
    with pytest.raises(ZooError) as e:
        ds.open_dialogue_state(path)
    message = str(e.value)
    assert "\n" not in message and message.startswith("4 belief-state values in --data_dir=")
    assert "area 2 (e.g. 'south')" in message and "food 1 (e.g. 'pizza')" in message
    assert "price range 1 (e.g. 'very cheap')" in message and "--unknown_values=none" in message
    data = ds.open_dialogue_state(path, unknown_values="none")
    assert data.unknown["train"] == {"area": 2, "food": 1, "price range": 1} and data.unknown["dev"] == {}
    assert [t[2] for t in data.splits["train"][0].turns] == [[3, 3, 0], [3, 3, 0]]


@pytest.mark.parametrize("change, fragments", [
    (dict(ontology={"hotel-area": ["north"]}), ["ontology is missing slot(s) hotel-stars", "--data_dir"]),
    (dict(header=["hotel-area"], rows=["d\t0\tnorth\t\tnorth"]), ["no column for the ontology's slot(s) hotel-stars",
                                                                  "--data_dir"]),
])
def test_ontology_and_data_slots_must_agree(tmp_path, change, fragments):
    with pytest.raises(ZooError) as e:
        ds.open_dialogue_state(write_multiwoz(tmp_path / "mw", **change))
    assert all(f in str(e.value) for f in fragments), str(e.value)


def test_file_errors(tmp_path):
    path = write_woz(tmp_path / "woz")
    (tmp_path / "woz" / "dev.tsv").unlink()
    with pytest.raises(ZooError, match=r"--data_dir=.* has no dev.tsv"):
        ds.open_dialogue_state(path)
    with pytest.raises(ZooError, match="has no ontology.json"):
        ds.open_dialogue_state(str(tmp_path))
    with pytest.raises(ZooError, match="is not a directory"):
        ds.open_dialogue_state(str(tmp_path / "nowhere"))
    bad = write_woz(tmp_path / "cols", train="0\t0\thi\t\tnone\tnone\n")
    with pytest.raises(ZooError, match=r"train.tsv line 1 has 2 belief-state columns but the ontology has 3 slots"):
        ds.open_dialogue_state(bad)
    latin = write_woz(tmp_path / "latin")
    (tmp_path / "latin" / "test.tsv").write_bytes("0\t0\tcaf\u00e9\t\tnone\tnone\tnone\n".encode("latin-1"))
    with pytest.raises(ZooError) as e:
        ds.open_dialogue_state(latin)
    message = str(e.value)
    assert "\n" not in message and "latin/test.tsv is not UTF-8" in message and "--data_dir" in message


def test_data_sha1_pins_the_split_files(tmp_path):
    """The SHA-1 of the three tsv files' bytes: the same data gives the same hash, any edit another."""
    first = ds.open_dialogue_state(write_woz(tmp_path / "a")).files_sha1
    assert len(first) == 40 and first == ds.open_dialogue_state(write_woz(tmp_path / "b")).files_sha1
    edited = ds.open_dialogue_state(write_woz(tmp_path / "c", test="1\t0\tthe east\t\teast\tnone\tnone\n"))
    assert edited.files_sha1 != first and edited.sha1 == ds.open_dialogue_state(str(tmp_path / "a")).sha1


def test_batches_static_and_split_over_replicas(tmp_path):
    data = ds.open_dialogue_state(write_woz(tmp_path / "woz"))
    arrays = ds.encode_dialogues(data, "train", wordpiece_vocab(), max_seq_length=8, max_turn_length=3)
    batch = next(iter(ds.train_dataset(arrays, global_batch_size=4, seed=1)))
    assert batch["token_ids"].shape == (4, 3, 8) and batch["labels"].shape == (4, 3, 3)
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=2)
    assert next(iter(ds.train_dataset(arrays, global_batch_size=4, input_context=context)))["labels"].shape[0] == 2
    dataset = ds.eval_dataset(arrays, global_batch_size=3, pad_id=7)
    assert dataset.element_spec["labels"].shape.as_list() == [3, 3, 3]  # static: one compiled eval step
    batches = list(dataset.as_numpy_iterator())  # + 1 padding dialogue
    assert len(batches) == 1 and batches[0]["labels"].shape == (3, 3, 3)
    assert (batches[0]["labels"][2] == -1).all() and (batches[0]["token_ids"][2] == 7).all()
    np.testing.assert_array_equal(batches[0]["labels"][:2], arrays["labels"])
    with pytest.raises(ZooError, match="--global_batch_size=3 must be a multiple of the 2 replicas"):
        ds.eval_dataset(arrays, global_batch_size=3, input_context=context)


def test_majority_baseline_by_hand():
    train = np.array([[[0, 1], [0, 1], [2, 1]], [[2, 0], [-1, -1], [-1, -1]]])  # states (0,1) x2, (2,1), (2,0)
    evals = np.array([[[0, 1], [2, 1], [0, 0], [-1, -1]]])
    baseline = ds.majority_baseline(train, evals)
    assert baseline["joint_accuracy"] == pytest.approx(1 / 3)  # predicts (0, 1)
    assert baseline["slot_accuracy"] == pytest.approx(4 / 6)  # per slot: 0 (tie 0/2: the lower) and 1
