"""transformer_xl_lm.py: its settings, data and schedule (fast), then end to end in subprocesses (slow): 2 replicas,
the TF-only streaming export, resume, enwik8 at char level, and its one-line errors."""

import json
import math
import os
import re
import zipfile

import numpy as np
import pytest

from tests.recipe_run import assert_one_line_error, kill_at_first_checkpoint, run_recipe, summary_tags
from tests.tf_only import run_tf_only
from zoo.errors import ZooError
from zoo.recipe_support import transformer_xl as txl

TINY = ["--train_steps=4", "--max_step=6", "--warmup_step=2", "--log_every=2", "--checkpoint_every=2",
        "--eval_every=2", "--global_batch_size=4", "--tgt_len=8", "--mem_len=8", "--eval_tgt_len=6",
        "--eval_mem_len=10", "--vocab_size=300", "--cutoffs=100,200", "--dropout=0"]
TWO = {"ZOO_CPU_REPLICAS": "2"}


def run(*args, env=None, timeout=600):
    return run_recipe("transformer_xl_lm.py", *args, env=env, timeout=timeout)


def evaluations(stdout):
    """{step: validation perplexity} from the trainer's "eval at step N: ..." lines."""
    return {int(m.group(1)): float(m.group(2))
            for m in re.finditer(r"eval at step (\d+):.*? perplexity ([\d.]+)", stdout)}


class HP(dict):
    """Flag values as the recipe's `hp`: `hp.name` and `hp["name"]`."""

    __getattr__ = dict.__getitem__


FLAGS = dict(tgt_len=32, mem_len=32, clamp_len=-1, same_length=False, global_batch_size=16, learning_rate=1e-3,
             warmup_step=None, max_step=None, clip_norm=None, eval_tgt_len=None, eval_mem_len=None,
             eval_clamp_len=None, eval_same_length=None)
DATA = dict(enwik8_file=None, enwik8_heldout_bytes=5_000_000, dataset="embedded", text_files=None,
            validation_files=None, test_files=None, validation_fraction=0.1, data_dir=None, download=False,
            max_documents=0, seed=0, vocab_size=0, min_count=1, lowercase=False, tokenizer=None)
# A WikiText-103 file's start (wiki.train.tokens style): Transformer-XL's Vocab.tokenize gives 49 tokens, 8 <eos>.
WT103 = (" \n = Valkyria Chronicles III = \n \n Senj\u014d no Valkyria 3 : <unk> Chronicles ( Japanese : "
         "\u6226\u5834\u306e\u30f4\u30a1\u30eb\u30ad\u30e5\u30ea\u30a23 ) , is a 1 @,@ 000 @-@ year game . \n "
         "The game began in 2 @.@ 5 years . \n \n = = Gameplay = = \n \n")


# === Fast ===


def test_settings_derive_the_evaluation_protocol_as_train_py():
    s = txl.training_settings(HP(FLAGS, eval_tgt_len=16), None, lambda name: False, 600)
    assert s["max_step"] == 600 and s["train_steps"] == 600 and s["warmup_step"] == 0 and s["clip_norm"] == 0.25
    assert (s["eval_tgt_len"], s["eval_mem_len"], s["eval_clamp_len"], s["eval_same_length"]) == (16, 48, -1, False)
    with pytest.raises(ZooError, match="--warmup_step=600 must be below --max_step=600"):
        txl.training_settings(HP(FLAGS, warmup_step=600), None, lambda name: False, 600)
    with pytest.raises(ZooError, match="give --tgt_len"):
        txl.training_settings(HP(FLAGS, tgt_len=None), None, lambda name: False, 600)


def test_the_preset_fills_only_the_flags_not_given():
    paper = dict(tgt_len=150, mem_len=150, global_batch_size=60, learning_rate=2.5e-4, warmup_step=0,
                 max_step=200000, clip_norm=0.25, eval_tgt_len=64, eval_mem_len=640, eval_clamp_len=400,
                 eval_same_length=True)
    given = {"global_batch_size", "eval_mem_len"}
    s = txl.training_settings(HP(FLAGS, global_batch_size=8, eval_mem_len=100), paper, given.__contains__, 600)
    assert s["train_steps"] == 200000 and s["max_step"] == 200000 and s["tgt_len"] == 150
    assert s["global_batch_size"] == 8 and s["eval_mem_len"] == 100 and s["eval_clamp_len"] == 400
    assert s["eval_same_length"] is True and s["learning_rate"] == 2.5e-4
    s = txl.training_settings(HP(FLAGS), paper, {"train_steps"}.__contains__, 600)
    assert s["train_steps"] == 600 and s["max_step"] == 600  # the cosine spans the steps asked for
    s = txl.training_settings(HP(FLAGS, max_step=1000), paper, {"max_step"}.__contains__, 600)
    assert s["train_steps"] == 1000 and s["max_step"] == 1000
    s = txl.training_settings(HP(FLAGS), paper, lambda name: False, None)  # --train_steps' default: None
    assert s["train_steps"] == 200000 and s["max_step"] == 200000
    with pytest.raises(ZooError, match="give --train_steps"):
        txl.training_settings(HP(FLAGS), None, lambda name: False, None)
    assert set(txl.FREE_SETTINGS) == {"train_steps", "max_step"}  # not recorded: a finished run can train on


def test_paper_presets_evaluate_as_train_py_and_eval_py():
    assert txl.eval_batch_size(None, 60, paper=True) == 10 and txl.eval_batch_size(None, 16, paper=False) == 16
    assert txl.eval_batch_size(None, 4, paper=True) == 4 and txl.eval_batch_size(6, 16, paper=False) == 6
    with pytest.raises(ZooError, match="--eval_batch_size=20 is above --global_batch_size=16"):
        txl.eval_batch_size(20, 16, paper=True)
    args = dict(eval_every=100, checkpoint_every=200, log_every=50)
    assert txl.intervals(args, paper=True, explicit=lambda name: False) == dict(
        eval_every=4000, checkpoint_every=4000, log_every=50)  # train.py's --eval-interval
    assert txl.intervals(args, paper=True, explicit={"eval_every"}.__contains__)["eval_every"] == 100
    assert txl.intervals(args, paper=False, explicit=lambda name: False) == args  # the tiny preset's cadence
    ids = {"train": [np.arange(1, 42, dtype=np.int32)], "validation": [np.arange(1, 30, dtype=np.int32)]}
    layouts = txl.stream_layouts(ids, global_batch_size=4, tgt_len=5, eval_tgt_len=3, eval_batch_size=2)
    assert layouts["train"].global_batch_size == 4 and layouts["validation"].token_ids.shape[1:] == (2, 3)


def test_word_level_text_files_are_read_as_transformer_xl_vocab_tokenize(tmp_path):
    from zoo.data.lm_vocabulary import LMVocabulary

    want = [w for line in WT103.split("\n")[:-1] for w in line.strip().split() + ["<eos>"]]
    vocab = LMVocabulary.build([WT103], "word", tokenizer="whitespace_eos")
    got = vocab.tokenize(WT103)
    assert got == want and len(got) == 49 and got.count("<eos>") == 8
    assert {"<unk>", "@,@", "@-@", "@.@"} <= set(got) and "<" not in got
    assert vocab.encode("<unk> @,@ \n")[0] == vocab.unk_id == 0 and vocab.size == len(set(want))
    assert LMVocabulary.build([WT103], "word").tokenize(WT103).count("<eos>") == 4  # rnn_lm's default unchanged
    for name in ("train", "valid", "test"):
        (tmp_path / f"wiki.{name}.tokens").write_text(WT103 * 3, encoding="utf-8")
    hp = HP(DATA, text_files=[str(tmp_path / "wiki.train.tokens")],
            validation_files=[str(tmp_path / "wiki.valid.tokens")], test_files=[str(tmp_path / "wiki.test.tokens")],
            model_dir=str(tmp_path / "run"))
    data = txl.load_data(hp, "word", chief=True)
    assert data.vocab.tokenizer == "whitespace_eos" and data.vocab.size == len(set(want))
    assert [len(data.ids[s]) for s in ("train", "validation", "test")] == [1, 1, 1]  # one stream per file
    assert data.ids["train"][0].tolist() == [data.vocab.ids[t] for t in want * 3]
    with pytest.raises(ZooError, match="holds another vocabulary"):  # words and whitespace_eos differ on resume
        txl.load_data(HP(hp, tokenizer="words"), "word", chief=True)


def test_cosine_schedule_is_train_py_cosine_with_warmup_first():
    schedule = txl.cosine_schedule(1.0, warmup_step=0, max_step=10, min_learning_rate=0.1)
    want = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(k, 10) / 10)) for k in (0, 3, 10, 12)]
    assert [float(schedule(k)) for k in (0, 3, 10, 12)] == pytest.approx(want, abs=1e-6)
    warm = txl.cosine_schedule(2.0, warmup_step=4, max_step=14)
    assert [float(warm(k)) for k in (0, 2, 4, 9, 14)] == pytest.approx([0.0, 1.0, 2.0, 1.0, 0.0], abs=1e-6)
    with pytest.raises(ZooError, match="--min_learning_rate=2 is above --learning_rate=1"):
        txl.cosine_schedule(1.0, warmup_step=0, max_step=10, min_learning_rate=2.0)


def test_cutoffs_must_rise_below_the_vocabulary_and_only_at_word_level():
    assert txl.check_cutoffs([100, 200], 300, "word") == [100, 200]
    assert txl.check_cutoffs([], 300, "word") == []
    for bad in ([200, 100], [100, 300], [0, 10]):
        with pytest.raises(ZooError, match="--cutoffs=.* must rise strictly and stay below the vocabulary size 300"):
            txl.check_cutoffs(bad, 300, "word")
    with pytest.raises(ZooError, match="bytes use a plain softmax, drop --cutoffs"):
        txl.check_cutoffs([10], 300, "char")


def test_streams_are_contiguous_per_row_with_eval_segment_length():
    ids = {"train": [np.arange(1, 42, dtype=np.int32)], "validation": [np.arange(1, 30, dtype=np.int32)]}
    layouts = txl.stream_layouts(ids, global_batch_size=2, tgt_len=5, eval_tgt_len=3)
    train, valid = layouts["train"], layouts["validation"]
    assert train.token_ids.shape == (4, 2, 5) and valid.token_ids.shape[1:] == (2, 3)
    row0 = np.concatenate(list(train.token_ids[:, 0]))  # stream 0 read step after step
    assert row0[:20].tolist() == list(range(1, 21)) and train.targets[0, 0].tolist() == [2, 3, 4, 5, 6]
    assert train.token_ids[0, 1, 0] == 22 and train.reset[:, 0].tolist() == [1, 0, 0, 0]
    with pytest.raises(ZooError, match="the validation split: .*cannot fill 8 streams"):
        txl.stream_layouts({"train": [np.arange(100)], "validation": [np.arange(10)]}, global_batch_size=8,
                           tgt_len=4, eval_tgt_len=4)


def test_char_level_text_is_bytes_and_a_resumed_run_checks_the_vocabulary(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("".join(f"line {i} caf\u00e9\n\n" for i in range(30)), encoding="utf-8")
    hp = HP(DATA, text_files=[str(text)], model_dir=str(tmp_path / "run"))
    data = txl.load_data(hp, "char", chief=True)
    assert data.name == "files" and type(data.vocab).__name__ == "ByteVocabulary"
    assert 0xC3 in data.vocab.byte_values and 10 in data.vocab.byte_values  # UTF-8 bytes, newlines kept
    assert data.vocab.decode(data.ids["train"][0]) == "line 0 caf\u00e9\n"
    saved = (tmp_path / "run" / "vocab.txt").read_text().split()
    assert [int(b) for b in saved] == data.vocab.byte_values
    with pytest.raises(ZooError, match="holds another kind of vocabulary"):
        txl.load_data(hp, "word", chief=True)
    word = txl.load_data(HP(hp, model_dir=str(tmp_path / "word")), "word", chief=True)
    assert word.vocab.tokens[:3] == ["<unk>", "<eos>", "line"] and word.vocab.lowercase is False
    with pytest.raises(ZooError, match="holds another vocabulary"):
        txl.load_data(HP(hp, model_dir=str(tmp_path / "word"), vocab_size=5), "word", chief=True)


def test_enwik8_source_reads_the_split_file(tmp_path):
    data = bytes(np.random.default_rng(0).integers(32, 50, size=5000).astype(np.uint8))
    path = tmp_path / "enwik8.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("enwik8", data)
    got = txl.load_data(HP(DATA, enwik8_file=str(path), enwik8_heldout_bytes=1000, model_dir=str(tmp_path / "r")),
                        "char", chief=True)
    assert got.name == "enwik8" and got.vocab.size == 18
    assert [sum(len(a) for a in got.ids[s]) for s in ("train", "validation", "test")] == [3000, 1000, 1000]


def test_flag_errors_are_one_line_before_any_work(tmp_path):
    common = [f"--model_dir={tmp_path / 'run'}"]
    assert_one_line_error(run(*common, "--enwik8_file=x", "--level=word"), "--enwik8_file", "drop --level=word")
    assert_one_line_error(run(*common, "--enwik8_file=x", "--dataset=lm1b"), "give one source")
    assert_one_line_error(run(*common, "--tgt_len=0"), "--tgt_len=0 must be at least 1")
    assert_one_line_error(run(*common, "--clamp_len=-2"), "--clamp_len=-2 must be at least -1")
    assert_one_line_error(run(*common, "--config=transformer_xl_huge"), "--config")
    assert_one_line_error(run(*common, "--enwik8_file=x", "--validation_files=v", "--lowercase"),
                          "--enwik8_file has its own splits", "drop --validation_files, --lowercase")
    assert_one_line_error(run(*common, "--level=char", "--tokenizer=words"), "--tokenizer is for word level")
    assert not os.path.exists(tmp_path / "run")


# === Slow: end to end ===


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("txl") / "run"
    result = run(f"--model_dir={model_dir}", "--strategy=mirrored", *TINY, env=TWO)
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, result


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("txl_single") / "run"
    result = run(f"--model_dir={model_dir}", *TINY, "--train_steps=6", "--export_dir=")
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, result


@pytest.mark.slow
def test_two_replicas_train_evaluate_and_export_a_streaming_model(first_run):
    model_dir, result = first_run
    out = result.stdout
    assert "transformer_xl_tiny (word level, adaptive softmax cutoffs [100, 200])" in out
    assert "vocabulary 300; 4 streams x 8 tokens, memory 8" in out and "2 replica(s)" in out
    assert "evaluation tgt_len 6 mem_len 10 clamp_len -1 same_length False" in out
    assert re.search(r"validation perplexity [\d.]+ \(unigram baseline perplexity [\d.]+\); test perplexity", out)
    assert set(evaluations(out)) == {2, 4}
    assert {"loss", "perplexity", "bits_per_token"} <= summary_tags(str(model_dir / "eval"))
    results = json.loads((model_dir / "results.json").read_text())
    assert results["steps"] == 4 and math.isfinite(results["test"]["perplexity"])
    assert results["validation"]["perplexity"] == pytest.approx(evaluations(out)[4], rel=1e-3)
    assert os.path.getsize(model_dir / "perplexity.png") > 10_000
    export = model_dir / "export" / "1"
    assert (export / "assets" / "vocab.txt").read_text() == (model_dir / "vocab.txt").read_text()
    got = run_tf_only(f"""
        import json, tensorflow as tf
        model = tf.saved_model.load({str(export)!r})
        fn = model.signatures["serving_default"]
        spec = fn.structured_input_signature[1]["memories"].shape.as_list()
        L, M, H = spec[0], 10, spec[-1]
        ids = tf.constant([[5, 6, 7, 8, 9, 10]], tf.int32)
        empty = dict(memories=tf.zeros([L, 1, M, H]), memory_length=tf.zeros([1], tf.int32))
        whole = fn(token_ids=ids, **empty)
        first = fn(token_ids=ids[:, :3], **empty)
        second = fn(token_ids=ids[:, 3:], memories=first["memories"], memory_length=first["memory_length"])
        total = tf.reduce_sum(tf.exp(whole["log_probs"]), axis=-1)
        gap = tf.reduce_max(tf.abs(second["log_probs"] - whole["log_probs"][:, 3:]))
        print(json.dumps({{"shape": whole["log_probs"].shape.as_list(), "total": total.numpy().ravel().tolist(),
                          "gap": float(gap), "length": second["memory_length"].numpy().tolist()}}))
    """)
    assert got["shape"] == [1, 6, 300] and got["total"] == pytest.approx([1.0] * 6, abs=1e-4)
    assert got["gap"] < 1e-4 and got["length"] == [6]  # streaming 3 + 3 tokens == 6 at once


@pytest.mark.slow
def test_one_replica_matches_two(first_run, single_run):
    two, one = evaluations(first_run[1].stdout), evaluations(single_run[1].stdout)
    assert set(one) == {2, 4, 6} and all(one[k] == pytest.approx(two[k], rel=1e-4) for k in two), (one, two)


@pytest.mark.slow
def test_two_replicas_resume_to_the_uninterrupted_result(first_run, single_run):
    model_dir, _ = first_run
    resumed = run(f"--model_dir={model_dir}", "--strategy=mirrored", *TINY, "--train_steps=6", "--export_dir=",
                  env=TWO)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from step 4" in resumed.stdout
    one = evaluations(single_run[1].stdout)
    assert evaluations(resumed.stdout) == {6: pytest.approx(one[6], rel=1e-4)}, resumed.stdout[-2000:]


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path, single_run):
    model_dir = tmp_path / "killed"
    args = [f"--model_dir={model_dir}", *TINY, "--train_steps=6", "--export_dir="]
    killed_at = kill_at_first_checkpoint("transformer_xl_lm.py", model_dir, *args, train_steps=6)
    resumed = run(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming from step {killed_at}" in resumed.stdout
    one, got = evaluations(single_run[1].stdout), evaluations(resumed.stdout)
    assert 6 in got and all(got[k] == pytest.approx(one[k], rel=1e-4) for k in got), (one, got)


@pytest.mark.slow
def test_a_finished_run_trains_on_with_a_longer_schedule(tmp_path, single_run):
    import shutil

    model_dir = tmp_path / "run"
    shutil.copytree(single_run[0], model_dir)  # finished at step 6 of max_step 6
    more = run(f"--model_dir={model_dir}", *TINY, "--train_steps=8", "--max_step=10", "--export_dir=")
    assert more.returncode == 0, more.stderr[-3000:]
    assert "Resuming from step 6" in more.stdout and "8 steps (cosine over 10" in more.stdout
    assert set(evaluations(more.stdout)) == {8}
    assert json.loads((model_dir / "results.json").read_text())["steps"] == 8


@pytest.mark.slow
def test_char_level_on_an_enwik8_zip(tmp_path):
    rng = np.random.default_rng(0)
    words = ["<page>", "<title>", "the", "of", "and", "[[link]]", "\u00e9t\u00e9", "\n"]
    text = " ".join(rng.choice(words, size=3000)).encode("utf-8")
    with zipfile.ZipFile(tmp_path / "enwik8.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("enwik8", text)
    result = run(f"--model_dir={tmp_path / 'run'}", f"--enwik8_file={tmp_path / 'enwik8.zip'}",
                 "--enwik8_heldout_bytes=1500", "--train_steps=3", "--warmup_step=0", "--global_batch_size=4",
                 "--tgt_len=16", "--mem_len=16", "--log_every=3", "--export_dir=")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    vocab = sorted(set(text) - {10})
    assert "transformer_xl_tiny (char level, softmax)" in out and f"vocabulary {len(vocab)};" in out
    assert re.search(r"validation [\d.]+ bits per character \(perplexity [\d.]+\)", out)
    assert sorted(int(b) for b in (tmp_path / "run" / "vocab.txt").read_text().split()) == vocab


@pytest.mark.slow
def test_bad_data_is_a_one_line_error(tmp_path, first_run):
    other = run(f"--model_dir={first_run[0]}", *TINY, "--vocab_size=200", "--cutoffs=50,100")
    assert_one_line_error(other, "vocab.txt holds another vocabulary (300 tokens", "(200 tokens")
    common = [f"--model_dir={tmp_path / 'run'}", "--export_dir="]
    assert_one_line_error(run(*common, f"--enwik8_file={tmp_path / 'missing.zip'}"), "--enwik8_file=", "no such file")
    assert_one_line_error(run(*common, "--dataset=pg19"), "--data_dir")
    assert_one_line_error(run(*common, "--cutoffs=100000"), "--cutoffs=100000 must rise strictly")
    assert_one_line_error(run(*common, "--strategy=mirrored", "--global_batch_size=5", env=TWO),
                          "--global_batch_size=5", "multiple of the 2 replicas")
