"""bert_pretrain.py end to end, in subprocesses, as a user runs it."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.recipe_run import assert_one_line_error, kill_at_first_checkpoint, run_recipe, summary_scalars
from tests.tf_only import run_tf_only

SMALL = ["--max_documents=40", "--dupe_factor=1", "--seq_length=64", "--max_predictions=10", "--warmup_steps=2",
         "--global_batch_size=8", "--vocab_size=400"]

pytestmark = pytest.mark.slow


def run(*args, env=None, timeout=600):
    return run_recipe("bert_pretrain.py", *args, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("bert")
    model_dir, export_dir = base / "model", base / "export"
    result = run("--strategy=mirrored", f"--model_dir={model_dir}", f"--export_dir={export_dir}",
                 "--train_steps=6", "--log_every=3", "--checkpoint_every=3", "--eval_every=3", *SMALL)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return model_dir, export_dir, result.stdout


def _held_out(stdout):
    """The held-out (MLM, NSP) accuracies of the recipe's last line before the export."""
    line = next(x for x in stdout.splitlines() if "held out:" in x)
    parts = line.split("held out:")[1].replace(",", "").split()
    return float(parts[2]), float(parts[5])


def test_trains_from_shards_evaluates_and_exports(first_run):
    model_dir, export_dir, stdout = first_run
    assert "unigram MLM accuracy baseline" in stdout and "1 replica(s)" in stdout
    assert "step 6: loss" in stdout and "MLM accuracy" in stdout
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-6")
    assert os.path.exists(model_dir / "config.json") and os.path.exists(model_dir / "vocab.txt")
    # The embedded corpus went through the shard path: written once in <model_dir>/data/, with a held-out split.
    assert os.path.exists(model_dir / "data" / "metadata.json")
    assert (model_dir / "data" / "vocab.txt").read_text() == (model_dir / "vocab.txt").read_text()
    # Held-out accuracies: evaluated at steps 3 and 6, written to TensorBoard, printed at the end.
    scalars = summary_scalars(str(model_dir / "eval"))
    assert [step for step, _ in scalars["mlm_accuracy"]] == [3, 6]
    mlm, nsp = _held_out(stdout)
    assert mlm == pytest.approx(scalars["mlm_accuracy"][-1][1], abs=6e-4)
    assert nsp == pytest.approx(scalars["nsp_accuracy"][-1][1], abs=6e-4)
    assert 0 <= mlm <= 1 and 0 <= nsp <= 1 and scalars["mlm_loss"][-1][1] > 0

    version = export_dir / "1"
    assert os.path.exists(version / "saved_model.pb")
    assert (version / "assets" / "vocab.txt").read_text() == (model_dir / "vocab.txt").read_text()
    result = run_tf_only(f"""
        import json, tensorflow as tf
        fn = tf.saved_model.load({str(version)!r}).signatures["serving_default"]
        ids = tf.constant([[1, 7, 8, 9, 2, 0]], tf.int32)
        out = fn(token_ids=ids, segment_ids=tf.zeros_like(ids), padding_mask=tf.cast(ids > 0, tf.int32))
        print(json.dumps({{k: v.shape.as_list() for k, v in out.items()}}))
    """)
    assert result["sequence_output"][:2] == [1, 6] and result["pooled_output"][0] == 1


def test_config_json_is_the_one_before_kobert(first_run):
    """The first run's config.json is what the recipe wrote before KoBERT (c2b2247) for the same flags, so runs
    started then resume; the flags added since are absent at their defaults."""
    import json

    from tests.recipes.test_bert_pretrain_config import OLD_DEFAULT_CONFIG
    from zoo.data.bert_vocabulary import load_bert_vocabulary

    model_dir = first_run[0]
    vocabulary = load_bert_vocabulary(str(model_dir / "vocab.txt"))
    small = dict(max_documents=40, dupe_factor=1, seq_length=64, max_predictions=10, warmup_steps=2,
                 global_batch_size=8, vocab_size=400)
    expected = {**OLD_DEFAULT_CONFIG, **small, "vocabulary_size": len(vocabulary), "vocab_sha1": vocabulary.sha1}
    assert json.loads((model_dir / "config.json").read_text()) == expected


def test_second_run_resumes_and_exports_next_version(first_run):
    model_dir, export_dir, _ = first_run
    shards = sorted(os.listdir(model_dir / "data"))
    result = run(f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--train_steps=8", "--log_every=2",
                 "--steps_per_loop=2", *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from step 6" in result.stdout
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-8")
    assert sorted(os.listdir(export_dir)) == ["1", "2"]
    assert sorted(os.listdir(model_dir / "data")) == shards  # reused, not rewritten
    again = run(f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--train_steps=8", *SMALL)
    assert again.returncode == 0, again.stderr[-3000:]  # a finished run: evaluates and exports again
    assert "is already at step 8" in again.stdout and "held out: MLM accuracy" in again.stdout
    assert sorted(os.listdir(export_dir)) == ["1", "2", "3"]


def test_trains_from_train_files(tmp_path, first_run):
    """--train_files/--eval_files: shards made elsewhere (here: the first run's), their vocab.txt beside them."""
    data = first_run[0] / "data"
    model_dir = tmp_path / "model"
    result = run(f"--model_dir={model_dir}", "--export_dir=", f"--train_files={data}/*.tfrecord",
                 f"--eval_files={data}/eval/*.tfrecord", "--train_steps=2", "--warmup_steps=1", "--seq_length=64",
                 "--max_predictions=10", "--global_batch_size=8")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "held out:" in result.stdout
    assert not os.path.exists(model_dir / "data")
    assert (model_dir / "vocab.txt").read_text() == (data / "vocab.txt").read_text()


def test_resumes_after_sigkill(tmp_path, first_run):
    model_dir = tmp_path / "model"
    args = [f"--model_dir={model_dir}", "--export_dir=", f"--vocab_file={first_run[0] / 'vocab.txt'}",
            "--train_steps=150", "--checkpoint_every=5", "--log_every=50", *SMALL]
    killed_at = kill_at_first_checkpoint("bert_pretrain.py", model_dir, *args, train_steps=150)

    result = run(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resuming from step {killed_at}" in result.stdout
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-150")


@pytest.mark.parametrize("flags, fragments", [
    (["--strategy=horovod"], ["unknown --strategy='horovod'"]),
    (["--config=huge"], ["unknown --config='huge'", "tiny, base, large, kobert, kobert_tiny"]),
    (["--tokenizer=bpe"], ["unknown --tokenizer='bpe'", "wordpiece, sentencepiece"]),
    (["--corpus=ko", "--input_files=a.txt"], ["--corpus picks an embedded corpus"]),
    (["--learning_rate=nan"], ["--learning_rate=nan must be a finite number"]),
    (["--dropout=1"], ["--dropout=1 must be at least 0 and below 1"]),
    (["--train_steps=0"], ["--train_steps=0 must be at least 1"]),
    (["--max_predictions=70"], ["--max_predictions=70", "--seq_length=64"]),
    (["--trian_steps=5"], ["unknown flag --trian_steps; did you mean --train_steps?"]),
    (["--input_files=/nonexistent/corpus.txt"], ["/nonexistent/corpus.txt", "--input_files"]),
    (["--tfds_name=wikipedia/20230601.en", "--data_dir={tmp}"], ["not present in --data_dir", "--data_dir"]),
    (["--train_files={tmp}/none/*.tfrecord"], ["--train_files", "matches no file"]),
    (["--train_files={tmp}/*.tfrecord", "--whole_word_mask"],
     ["--whole_word_mask applies when shards are made; drop it with --train_files", "bert_create_data.py"]),
    (["--strategy=multi_worker"], ["TF_CONFIG"]),
    (["--strategy=tpu"], ["needs --tpu"]),
    (["--model_dir="], ["--model_dir is required"]),
])
def test_bad_flags(tmp_path, flags, fragments):
    flags = [f.format(tmp=tmp_path) for f in flags]
    assert_one_line_error(run(f"--model_dir={tmp_path / 'm'}", *SMALL, *flags), *fragments)


def test_shards_of_another_sequence_length(tmp_path, first_run):
    data = first_run[0] / "data"
    assert_one_line_error(run(f"--model_dir={tmp_path}", f"--train_files={data}/*.tfrecord", "--seq_length=32",
                              "--max_predictions=5", "--warmup_steps=1"),
                          "--train_files", "--seq_length=64")


def test_empty_input_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert_one_line_error(run(f"--model_dir={tmp_path / 'm'}", f"--input_files={empty}", *SMALL),
                          str(empty), "--input_files")


def test_vocab_size_mismatch_with_checkpoint(tmp_path, first_run):
    model_dir = first_run[0]
    vocab = (model_dir / "vocab.txt").read_text().splitlines()
    other = tmp_path / "vocab.txt"
    other.write_text("\n".join(vocab[:-10]) + "\n")
    result = run(f"--model_dir={model_dir}", f"--vocab_file={other}", "--export_dir=", *SMALL)
    assert_one_line_error(result, "vocab_sha1")  # the shards in <model_dir>/data/ were made with the old one
    same_size = tmp_path / "same_size.txt"
    same_size.write_text("\n".join(vocab[:-1] + ["zzzz"]) + "\n")
    assert_one_line_error(run(f"--model_dir={model_dir}", f"--vocab_file={same_size}", "--export_dir=", *SMALL),
                          "vocab_sha1")
    assert (model_dir / "vocab.txt").read_text().splitlines() == vocab  # left as it was


@pytest.mark.parametrize("changed, message", [
    ("--global_batch_size=4", "global_batch_size: 8 in the checkpoint, 4 now"),
    ("--dropout=0.2", "dropout: 0.1 in the checkpoint, 0.2 now"),
    ("--vocab_size=500", "vocab_size: 400 in the checkpoint, 500 now"),  # an existing vocabulary is kept: refused
])
def test_model_dir_from_a_different_config(first_run, changed, message):
    flags = [f for f in SMALL if f.split("=")[0] != changed.split("=")[0]]
    assert_one_line_error(run(f"--model_dir={first_run[0]}", "--export_dir=", *flags, changed),
                          "different config", message)


def test_batch_not_divisible_by_replicas(tmp_path):
    assert_one_line_error(run("--strategy=mirrored", f"--model_dir={tmp_path}", *SMALL, "--global_batch_size=7",
                              env={"ZOO_CPU_REPLICAS": "2"}),
                          "--global_batch_size=7", "replica")


def test_bert_pretrain_two_cpu_replicas_match_one(tmp_path, first_run):
    """The recipe under a 2-replica MirroredStrategy ends where a 1-replica run ends (dropout off: its
    masks are drawn per replica), and reports the same held-out accuracies."""
    data = first_run[0] / "data"
    common = ["--strategy=mirrored", "--export_dir=", f"--train_files={data}/*.tfrecord",
              f"--eval_files={data}/eval/*.tfrecord", "--train_steps=3", "--dropout=0", *SMALL]
    one = run(f"--model_dir={tmp_path / 'one'}", *common)
    two = run(f"--model_dir={tmp_path / 'two'}", *common, env={"ZOO_CPU_REPLICAS": "2"})
    assert one.returncode == 0 and two.returncode == 0, one.stderr[-2000:] + two.stderr[-2000:]
    assert "1 replica(s)" in one.stdout and "2 replica(s)" in two.stdout
    a = tf.train.load_checkpoint(str(tmp_path / "one"))
    b = tf.train.load_checkpoint(str(tmp_path / "two"))
    names = [n for n, _ in tf.train.list_variables(str(tmp_path / "one")) if n.startswith("model/")]
    assert names
    for name in names:
        np.testing.assert_allclose(a.get_tensor(name), b.get_tensor(name), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(_held_out(one.stdout), _held_out(two.stdout), atol=2e-3)


def test_shipped_default_vocabulary_is_the_trained_one():
    """zoo/recipe_support/default_vocab.txt is what `python -m zoo.recipe_support.bert_data` writes: the
    vocabulary trained on the whole embedded corpus at the default --vocab_size (the default run loads it)."""
    from zoo.data import wordpiece
    from zoo.recipe_support import bert_data

    shipped = wordpiece.load_vocabulary(bert_data.DEFAULT_VOCAB)
    assert len(shipped) == 946
    assert bert_data.train_default_vocabulary() == shipped
    assert bert_data.run_vocabulary("/nonexistent/model_dir", vocab_file=None, vocab_size=8000, train_files=None,
                                    source={}, vocab_documents=20000).tokens == shipped


# === KoBERT: SentencePiece vocabulary, the embedded Korean corpus, a local checkpoint ===

KOREAN = ["--config=kobert_tiny", "--max_documents=40", "--dupe_factor=1", "--seq_length=64", "--max_predictions=10",
          "--warmup_steps=2", "--global_batch_size=8", "--vocab_size=600", "--whole_word_mask"]


@pytest.fixture(scope="module")
def korean_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("kobert")
    result = run(f"--model_dir={base / 'model'}", f"--export_dir={base / 'export'}", "--train_steps=4",
                 "--eval_every=4", *KOREAN)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return base, result.stdout


def test_kobert_tiny_trains_on_korean_with_sentencepiece(korean_run):
    import json

    from zoo.data.bert_vocabulary import load_bert_vocabulary

    base, stdout = korean_run
    model_dir = base / "model"
    assert "sentencepiece vocabulary" in stdout and "held out: MLM accuracy" in stdout
    vocabulary = load_bert_vocabulary(str(model_dir / "spiece.model"))
    assert vocabulary.special_ids == {"unk": 0, "pad": 1, "cls": 2, "sep": 3, "mask": 4}
    assert not os.path.exists(model_dir / "vocab.txt")
    assert json.loads((model_dir / "config.json").read_text())["vocab_sha1"] == vocabulary.sha1
    metadata = json.loads((model_dir / "data" / "metadata.json").read_text())
    assert metadata["vocab_kind"] == "sentencepiece" and metadata["whole_word_mask"] is True
    assert "embedded ko corpus" in metadata["source"]
    assert (base / "export" / "1" / "assets" / "spiece.model").read_bytes() == vocabulary.proto
    reader = tf.train.load_checkpoint(str(model_dir))
    embedding = [n for n, _ in tf.train.list_variables(str(model_dir)) if "token_embedding" in n]
    assert reader.get_tensor(embedding[0]).shape == (len(vocabulary), 128)


def _hf_checkpoint(directory, vocabulary, vocab_size, positions=512):
    from tests.models.bert.test_bert_checkpoints import hf_tensors, write_hf

    config = dict(vocab_size=vocab_size, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=512, max_position_embeddings=positions, type_vocab_size=2, hidden_act="gelu",
                  layer_norm_eps=1e-12, pad_token_id=1)
    tensors = hf_tensors(config)
    write_hf(directory, config, tensors)
    vocabulary.save(str(directory))
    return tensors


def test_init_checkpoint_with_its_sentencepiece_vocabulary(korean_run, tmp_path):
    from zoo.data.bert_vocabulary import load_bert_vocabulary

    vocabulary = load_bert_vocabulary(str(korean_run[0] / "model" / "spiece.model"))
    tensors = _hf_checkpoint(tmp_path / "hf", vocabulary, len(vocabulary))
    model_dir = tmp_path / "m"
    result = run(f"--model_dir={model_dir}", f"--init_checkpoint={tmp_path / 'hf'}", "--train_steps=1",
                 "--learning_rate=1e-9", "--export_dir=", "--dropout=0", *KOREAN, "--warmup_steps=0")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "initialised from --init_checkpoint" in result.stdout
    assert (model_dir / "spiece.model").read_bytes() == vocabulary.proto  # the vocabulary beside the checkpoint
    reader = tf.train.load_checkpoint(str(model_dir))
    name = next(n for n, _ in tf.train.list_variables(str(model_dir)) if "token_embedding" in n
                and "optimizer" not in n)
    np.testing.assert_allclose(reader.get_tensor(name), tensors["bert.embeddings.word_embeddings.weight"],
                               atol=1e-5)

    assert_one_line_error(run(f"--model_dir={tmp_path / 'm3'}", f"--vocab_file={tmp_path / 'hf' / 'spiece.model'}",
                              "--tokenizer=wordpiece", *KOREAN), "--tokenizer=wordpiece", "sentencepiece")

    # Resuming needs neither the checkpoint (its shape is in config.json, its path is not) nor its weights again.
    import json
    import shutil

    config = json.loads((model_dir / "config.json").read_text())
    assert "init_checkpoint" not in config and config["init_backbone"]["max_sequence_length"] == 512
    shutil.rmtree(tmp_path / "hf")
    resumed = run(f"--model_dir={model_dir}", f"--init_checkpoint={tmp_path / 'hf'}", "--train_steps=2",
                  "--learning_rate=1e-9", "--export_dir=", "--dropout=0", *KOREAN, "--warmup_steps=0")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-4000:]
    assert "Resuming from step 1" in resumed.stdout and "initialised from" not in resumed.stdout
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-2")

    _hf_checkpoint(tmp_path / "other", vocabulary, len(vocabulary) + 3)
    assert_one_line_error(run(f"--model_dir={tmp_path / 'm2'}", f"--init_checkpoint={tmp_path / 'other'}",
                              *KOREAN), "--init_checkpoint", f"vocabulary of {len(vocabulary) + 3}",
                          f"has {len(vocabulary)}", "--vocab_file")
    _hf_checkpoint(tmp_path / "short", vocabulary, len(vocabulary), positions=32)
    assert_one_line_error(run(f"--model_dir={tmp_path / 'm4'}", f"--init_checkpoint={tmp_path / 'short'}",
                              *KOREAN), "--seq_length=64", "32 positions", "--init_checkpoint")
    (tmp_path / "short" / "spiece.model").unlink()
    assert_one_line_error(run(f"--model_dir={tmp_path / 'm5'}", f"--init_checkpoint={tmp_path / 'short'}",
                              *KOREAN), "--init_checkpoint", "has no vocab.txt or spiece.model beside it",
                          "--vocab_file")
