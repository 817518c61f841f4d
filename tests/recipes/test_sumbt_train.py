"""sumbt_train.py end to end, in subprocesses, as a user runs it."""

import json
import os

import pytest
import tensorflow as tf

from tests.data.test_dialogue_state import write_multiwoz, write_woz
from tests.recipe_run import assert_one_line_error, run_recipe
from tests.tf_only import run_tf_only

SMALL = ["--max_seq_length=32", "--max_label_length=8", "--hidden_dim=16", "--global_batch_size=4",
         "--vocab_size=300", "--patience=5"]

pytestmark = pytest.mark.slow


def run(*args, env=None, timeout=600):
    return run_recipe("sumbt_train.py", *args, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("sumbt")
    model_dir, export_dir = base / "model", base / "export"
    result = run("--strategy=mirrored", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--train_steps=6",
                 "--eval_every=3", "--log_every=3", "--checkpoint_every=3", *SMALL, env={"ZOO_CPU_REPLICAS": "2"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return model_dir, export_dir, result.stdout


def test_default_run_trains_reports_and_exports(first_run):
    model_dir, export_dir, stdout = first_run
    assert "2 replica(s)" in stdout and "600 train dialogues" in stdout and "majority baseline on test" in stdout
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-6")
    for name in ("config.json", "vocab.txt", "ontology.json", "test_results.json", "data/train.tsv"):
        assert os.path.exists(model_dir / name), name
    config = json.loads((model_dir / "config.json").read_text())
    assert len(config["vocab_sha1"]) == 40 and len(config["ontology_sha1"]) == 40 and config["turns"] == 8
    assert len(config["data_sha1"]) == 40 and "vocab_size" not in config  # the vocabulary's SHA-1 pins it
    assert config["encoder"] == {"vocabulary_size": len((model_dir / "vocab.txt").read_text().splitlines())}
    report = json.loads((model_dir / "test_results.json").read_text())
    assert set(report["per_slot_accuracy"]) == {"area", "food", "price range"}
    assert 0 <= report["joint_accuracy"] <= report["slot_accuracy"] <= 1
    assert report["best"]["step"] in (3, 6) and 0 < report["majority_baseline"]["joint_accuracy"] < 0.1
    line = next(x for x in stdout.splitlines() if x.startswith("test: joint goal accuracy"))
    assert f"{report['joint_accuracy']:.4f}" in line and "per slot: area" in stdout

    version = export_dir / "1"
    assets = version / "assets"
    assert (assets / "ontology.json").read_text() == (model_dir / "ontology.json").read_text()
    assert (assets / "vocab.txt").read_text() == (model_dir / "vocab.txt").read_text()
    ontology = json.loads((assets / "ontology.json").read_text())
    assert [len(v) for v in ontology.values()] == [7, 10, 5]
    result = run_tf_only(f"""
        import json, tensorflow as tf
        fn = tf.saved_model.load({str(version)!r}).signatures["serving_default"]
        ids = tf.constant([[[2, 7, 8, 3, 9, 3, 0, 0], [2, 10, 3, 11, 12, 3, 0, 0]]], tf.int32)
        segments = tf.constant([[[0, 0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1, 0, 0]]], tf.int32)
        out = fn(token_ids=ids, segment_ids=segments, padding_mask=tf.cast(ids > 0, tf.int32))
        d = out["distances"].numpy()
        print(json.dumps({{"predictions": out["predictions"].shape.as_list(), "distances": list(d.shape),
                          "area_pad": d[0, :, 0, 7:].tolist(), "area_min": float(d[0, :, 0, :7].min()),
                          "max_pred": int(out["predictions"].numpy().max())}}))
    """)
    assert result["predictions"] == [1, 2, 3] and result["distances"] == [1, 2, 3, 10]
    assert result["area_pad"] == [[-1.0] * 3] * 2 and result["area_min"] > 0 and result["max_pred"] < 10


def test_second_run_resumes_and_exports_next_version(first_run):
    model_dir, export_dir, _ = first_run
    result = run(f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--train_steps=8", "--eval_every=3",
                 "--log_every=2", *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from step 6" in result.stdout and "test: joint goal accuracy" in result.stdout
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-8")
    assert sorted(os.listdir(export_dir)) == ["1", "2"]


def test_official_woz_format_with_unknown_values_mapped(tmp_path):
    """A --data_dir in the WOZ 2.0 layout (no header, ontology_dstc2_en.json), one value not in the ontology."""
    train = ("0\t0\ti want cheap food\t\tnone\tnone\tcheap\n0\t1\tnorth\twhat area ?\tnorth\tnone\tcheap\n"
             "1\t0\tthe east\t\teast\tpizza\tnone\n1\t1\tno\tchinese ?\teast\tdontcare\tnone\n")
    data = write_woz(tmp_path / "woz", train=train)
    result = run(f"--data_dir={data}", "--unknown_values=none", f"--model_dir={tmp_path / 'm'}", "--export_dir=",
                 "--train_steps=2", "--vocab_size=40", *SMALL[:-2], "--global_batch_size=2", "--max_label_length=16")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mapped to \"none\" (--unknown_values=none): train food 1" in result.stdout
    assert "2 train dialogues (4 turns)" in result.stdout and "3 turns x 32 tokens" in result.stdout  # dev: 3
    ontology = json.loads((tmp_path / "m" / "ontology.json").read_text())
    assert ontology["price range"] == ["cheap", "expensive", "moderate", "do not care", "none"]


@pytest.mark.parametrize("setup, flags, fragments", [
    ("no_train", [], ["has no train.tsv", "--data_dir"]),
    ("slot", [], ["ontology is missing slot(s) hotel-parking", "--data_dir"]),
    ("unknown", [], ["3 belief-state values", "hotel-area 3 (e.g. 'south')", "--unknown_values=none"]),
    (None, ["--max_label_length=3"], ["--max_label_length=3; raise --max_label_length to at least"]),
    (None, ["--init_checkpoint={tmp}/nowhere"], ["--init_checkpoint={tmp}/nowhere does not exist"]),
    (None, ["--vocab_file={tmp}/nowhere.txt"], ["nowhere.txt", "--vocab_file"]),
    (None, ["--config=bert_huge"], ["unknown --config='bert_huge'", "bert_tiny"]),
    (None, ["--rnn=transformer"], ["unknown --rnn='transformer'", "gru, lstm"]),
    (None, ["--unknown_values=drop"], ["unknown --unknown_values='drop'"]),
    (None, ["--max_seq_length=600"], ["--max_seq_length=600 must be at least 4 and at most 512"]),
])
def test_bad_input(tmp_path, setup, flags, fragments):
    data = []
    if setup == "no_train":
        data = [f"--data_dir={write_woz(tmp_path / 'd')}"]
        (tmp_path / "d" / "train.tsv").unlink()
    elif setup == "slot":
        data = [f"--data_dir={write_multiwoz(tmp_path / 'd', header=['hotel-area', 'hotel-parking', 'hotel-stars'])}"]
    elif setup == "unknown":
        rows = ["d\t0\thi\t\t4\tnone", "d\t1\tsouth\twhat area ?\t4\tsouth"]
        data = [f"--data_dir={write_multiwoz(tmp_path / 'd', rows=rows)}"]
    flags = [f.format(tmp=tmp_path) for f in flags]
    assert_one_line_error(run(f"--model_dir={tmp_path / 'm'}", *SMALL, *data, *flags),
                          *(f.format(tmp=tmp_path) for f in fragments))


@pytest.mark.parametrize("changed, message", [
    ("--hidden_dim=32", "hidden_dim: 16 in the checkpoint, 32 now"),
    ("--data_dir={edited}", "data_sha1: "),  # the same dialogue count, one utterance changed
])
def test_model_dir_from_a_different_config(tmp_path, first_run, changed, message):
    import shutil

    edited = shutil.copytree(first_run[0] / "data", tmp_path / "data")
    lines = (edited / "test.tsv").read_text().splitlines(keepends=True)
    fields = lines[1].split("\t")
    (edited / "test.tsv").write_text("".join(lines[:1] + ["\t".join(fields[:2] + ["hello"] + fields[3:])]
                                             + lines[2:]))
    changed = changed.format(edited=edited)
    flags = [f for f in SMALL if f.split("=")[0] != changed.split("=")[0]]
    assert_one_line_error(run(f"--model_dir={first_run[0]}", "--export_dir=", "--train_steps=8", *flags, changed),
                          "different config", message)


def test_other_vocabulary_refused_on_resume(tmp_path, first_run):
    model_dir = first_run[0]
    tokens = (model_dir / "vocab.txt").read_text().splitlines()
    other = tmp_path / "vocab.txt"
    other.write_text("\n".join(tokens[:-1] + ["zzzz"]) + "\n")
    assert_one_line_error(run(f"--model_dir={model_dir}", f"--vocab_file={other}", "--export_dir=", *SMALL),
                          "vocab_sha1")
    assert (model_dir / "vocab.txt").read_text().splitlines() == tokens


def test_two_cpu_replicas_match_one(tmp_path, first_run):
    """The recipe under a 2-replica MirroredStrategy ends where a 1-replica run ends (dropout off), with the
    same test report: of the whole test split even with --eval_steps, after restoring the best weights even
    with --patience=0."""
    import numpy as np

    common = ["--strategy=mirrored", "--export_dir=", f"--vocab_file={first_run[0] / 'vocab.txt'}",
              "--train_steps=3", "--dropout=0", "--patience=0", *SMALL[:-1]]
    one = run(f"--model_dir={tmp_path / 'one'}", *common)
    two = run(f"--model_dir={tmp_path / 'two'}", *common, "--eval_steps=1", env={"ZOO_CPU_REPLICAS": "2"})
    assert one.returncode == 0 and two.returncode == 0, one.stderr[-2000:] + two.stderr[-2000:]
    assert "1 replica(s)" in one.stdout and "2 replica(s)" in two.stdout
    a, b = (tf.train.load_checkpoint(str(tmp_path / d)) for d in ("one", "two"))
    names = [n for n, _ in tf.train.list_variables(str(tmp_path / "one")) if n.startswith("model/")]
    assert len(names) > 20
    for name in names:
        np.testing.assert_allclose(a.get_tensor(name), b.get_tensor(name), atol=2e-5, rtol=1e-5, err_msg=name)
    reports = [json.loads((tmp_path / d / "test_results.json").read_text()) for d in ("one", "two")]
    assert reports[0]["joint_accuracy"] == pytest.approx(reports[1]["joint_accuracy"], abs=1e-6)
    assert reports[0]["slot_accuracy"] == pytest.approx(reports[1]["slot_accuracy"], abs=1e-6)
    assert reports[0]["loss"] == pytest.approx(reports[1]["loss"], rel=1e-4)
    assert reports[0]["best"]["step"] == reports[1]["best"]["step"] == 3
    assert "restored the best weights" in two.stderr


def test_both_encoders_start_from_init_checkpoint(tmp_path):
    """--init_checkpoint (Hugging Face layout, vocab.txt beside it): the utterance encoder holds its weights and
    the value tables are the frozen copy's [CLS] vectors of the same weights."""
    import numpy as np

    import zoo
    from tests.data.test_dialogue_state import wordpiece_vocab
    from tests.models.bert.test_bert_checkpoints import TOY, hf_tensors, write_hf
    from zoo.data import dialogue_state
    from zoo.models.bert.bert_checkpoints import backbone_config, load_bert_weights
    from zoo.models.sumbt import encode_ontology

    vocab = wordpiece_vocab()
    config = {**TOY, "vocab_size": len(vocab)}
    tensors = hf_tensors(config, heads=False)
    checkpoint = write_hf(tmp_path / "bert", config, tensors)
    vocab.save(checkpoint)
    data_dir = write_woz(tmp_path / "woz")
    model_dir = tmp_path / "m"
    result = run(f"--data_dir={data_dir}", f"--init_checkpoint={checkpoint}", f"--model_dir={model_dir}",
                 "--export_dir=", "--train_steps=1", "--learning_rate=1e-30", "--weight_decay=0", "--clip_norm=0",
                 "--max_seq_length=16", "--max_label_length=8", "--hidden_dim=8", "--global_batch_size=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"vocabulary {len(vocab)} (wordpiece)" in result.stdout
    assert (model_dir / "vocab.txt").read_text() == (tmp_path / "bert" / "vocab.txt").read_text()
    saved = tf.train.load_checkpoint(str(model_dir))
    np.testing.assert_allclose(saved.get_tensor("model/utterance_backbone/token_embedding/_embeddings/"
                                                ".ATTRIBUTES/VARIABLE_VALUE"),
                               tensors["bert.embeddings.word_embeddings.weight"], atol=1e-6)
    frozen = zoo.create_model("bert_tiny", **backbone_config(checkpoint))
    load_bert_weights(frozen, checkpoint)
    data = dialogue_state.open_dialogue_state(data_dir)
    slots, values, _ = encode_ontology(frozen, *dialogue_state.encode_ontology_inputs(data, vocab,
                                                                                     max_label_length=8))
    np.testing.assert_allclose(saved.get_tensor("model/value_table/.ATTRIBUTES/VARIABLE_VALUE"), values, atol=1e-5)
    np.testing.assert_allclose(saved.get_tensor("model/slot_table/.ATTRIBUTES/VARIABLE_VALUE"), slots, atol=1e-5)

    short = ["--export_dir=", "--train_steps=1", "--learning_rate=1e-30", "--weight_decay=0", "--clip_norm=0",
             "--max_seq_length=16", "--hidden_dim=8", "--global_batch_size=2"]
    resumed = run(f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--max_label_length=8", *short)
    assert_one_line_error(resumed, "different config", "encoder: ")  # without --init_checkpoint: other sizes
    too_long = run(f"--data_dir={data_dir}", f"--init_checkpoint={checkpoint}", f"--model_dir={tmp_path / 'm2'}",
                   "--max_label_length=30", *short)
    assert_one_line_error(too_long, "--max_label_length=30 exceeds the encoder's position table (24",
                          "lower --max_label_length")


def test_kobert_config_trains_a_sentencepiece_vocabulary(tmp_path):
    """(Over the vocab.txt an aborted first run left: without config.json it is not the run's vocabulary.)"""
    model_dir, export_dir = tmp_path / "m", tmp_path / "e"
    model_dir.mkdir()
    (model_dir / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "stale"]) + "\n")
    result = run("--config=kobert_tiny", f"--model_dir={model_dir}", f"--export_dir={export_dir}",
                 "--train_steps=2", *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(sentencepiece)" in result.stdout and os.path.exists(model_dir / "spiece.model")
    assert not os.path.exists(model_dir / "vocab.txt")
    assert (export_dir / "1" / "assets" / "spiece.model").read_bytes() == (model_dir / "spiece.model").read_bytes()
