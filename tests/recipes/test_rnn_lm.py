"""rnn_lm.py end to end in subprocesses (slow): 2 replicas, the TF-only export, resume, char level, and its
one-line errors."""

import os
import re

import pytest

from tests.recipe_run import assert_one_line_error, run_recipe, summary_tags
from tests.tf_only import run_tf_only
from zoo.errors import ZooError
from zoo.recipe_support import language_model as support

TINY = ["--train_steps=4", "--log_every=2", "--checkpoint_every=2", "--eval_every=2", "--global_batch_size=4",
        "--seq_length=8", "--hidden_dim=24", "--vocab_size=300", "--sample_tokens=5"]
TWO = {"ZOO_CPU_REPLICAS": "2"}


def run(*args, env=None, timeout=600):
    return run_recipe("rnn_lm.py", *args, env=env, timeout=timeout)


def evaluations(stdout):
    """{step: validation perplexity} from the trainer's "eval at step N: ..." lines."""
    return {int(m.group(1)): float(m.group(2))
            for m in re.finditer(r"eval at step (\d+):.*? perplexity ([\d.]+)", stdout)}


def test_paper_training_fills_only_the_flags_not_given():
    hp = dict(seq_length=20, global_batch_size=8, optimizer="adam", learning_rate=2e-3, lr_decay=0.5,
              decay_after_epochs=4, epochs=0, clip_norm=5.0)
    paper = dict(seq_length=50, global_batch_size=50, optimizer="rmsprop", learning_rate=2e-3, lr_decay=0.97,
                 decay_after_epochs=10, epochs=50, clip_norm=5.0)
    got = support.paper_training(hp, paper, explicit=lambda name: name == "global_batch_size")
    assert got == {**paper, "global_batch_size": 8}
    assert support.paper_training(hp, paper, explicit=lambda name: False, use_paper=False) == hp


def test_zaremba_schedule_decays_after_whole_epochs():
    schedule = support.zaremba_schedule(1.0, lr_decay=0.5, decay_after_epochs=4, steps_per_epoch=10, train_steps=65)
    rates = [float(schedule(step)) for step in (0, 39, 40, 49, 50, 64)]
    assert rates == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]  # epoch e (0-based): 0.5 ** max(e + 1 - 4, 0)
    assert support.zaremba_schedule(1.0, lr_decay=0.5, decay_after_epochs=4, steps_per_epoch=10,
                                    train_steps=40) == 1.0
    assert support.zaremba_schedule(0.1, lr_decay=1.0, decay_after_epochs=0, steps_per_epoch=10,
                                    train_steps=90) == 0.1


def test_run_vocabulary_is_written_once_and_checked(tmp_path):
    docs = ["The cat sat.\nThe dog sat too.\n"]
    vocab = support.run_vocabulary(str(tmp_path), docs, level="word", vocab_size=None, min_count=1,
                                   lowercase=True, chief=True)
    assert (tmp_path / "vocab.txt").read_text(encoding="utf-8").split("\n")[:3] == ["<unk>", "<eos>", "the"]
    again = support.run_vocabulary(str(tmp_path), docs, level="word", vocab_size=None, min_count=1,
                                   lowercase=True, chief=False)
    assert again.sha1 == vocab.sha1
    with pytest.raises(ZooError, match="holds another vocabulary"):
        support.run_vocabulary(str(tmp_path), docs, level="word", vocab_size=None, min_count=1, lowercase=False,
                               chief=True)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("rnn_lm") / "run"
    result = run(f"--model_dir={model_dir}", "--strategy=mirrored", *TINY, env=TWO)
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, result


@pytest.mark.slow
def test_two_replicas_train_evaluate_sample_and_export(first_run):
    model_dir, result = first_run
    out = result.stdout
    assert "lstm_lm_small (word level, lstm)" in out and "vocabulary 300; 4 streams x 8 steps" in out
    assert "2 replica(s)" in out and "unigram baseline (add-one, train counts) on validation: perplexity" in out
    assert re.search(r"validation perplexity [\d.]+ \(unigram baseline [\d.]+\); test perplexity [\d.]+", out)
    assert "sample (temperature 0.8, seed 0):" in out and "  continuation: " in out
    assert set(evaluations(out)) == {2, 4}
    assert f"wrote {model_dir / 'perplexity.png'}" in out and os.path.getsize(model_dir / "perplexity.png") > 10_000
    assert {"loss", "perplexity", "bits_per_token", "token_accuracy"} <= summary_tags(str(model_dir / "eval"))
    vocab = (model_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert vocab[:2] == ["<unk>", "<eos>"] and len(vocab) == 301
    export = model_dir / "export" / "1"
    assert (export / "assets" / "vocab.txt").read_text(encoding="utf-8") == (model_dir / "vocab.txt").read_text(
        encoding="utf-8")
    got = run_tf_only(f"""
        import json, tensorflow as tf
        model = tf.saved_model.load({str(export)!r})
        ids = tf.constant([[5, 6, 7, 8], [9, 10, 0, 0]], tf.int32)
        out = model.signatures["serving_default"](token_ids=ids, lengths=tf.constant([4, 2], tf.int32))
        total = tf.reduce_sum(tf.exp(out["next_log_probs"]), axis=-1)
        same = tf.reduce_max(tf.abs(out["next_log_probs"][1] - out["log_probs"][1, 1]))
        sample = model.signatures["sample"](prompt_ids=ids, prompt_lengths=tf.constant([4, 2], tf.int32),
                                            num_tokens=tf.constant(6), temperature=tf.constant(0.8),
                                            seed=tf.constant(3))
        again = model.signatures["sample"](prompt_ids=ids, prompt_lengths=tf.constant([4, 2], tf.int32),
                                           num_tokens=tf.constant(6), temperature=tf.constant(0.8),
                                           seed=tf.constant(3))
        try:
            model.signatures["serving_default"](token_ids=tf.constant([[300]], tf.int32),
                                                lengths=tf.constant([1], tf.int32))
            bad = ""
        except tf.errors.InvalidArgumentError as e:
            bad = e.message
        print(json.dumps({{"log_probs": out["log_probs"].shape.as_list(), "total": total.numpy().tolist(),
                          "same": float(same), "sample": sample["token_ids"].numpy().tolist(),
                          "again": again["token_ids"].numpy().tolist(), "bad": bad}}))
    """)
    assert got["log_probs"] == [2, 4, 300] and got["same"] == 0.0
    assert got["total"] == pytest.approx([1.0, 1.0], abs=1e-4)
    assert got["sample"] == got["again"] and len(got["sample"]) == 2 and len(got["sample"][0]) == 6
    assert all(0 <= i < 300 for row in got["sample"] for i in row)
    assert "must be in [0, 300)" in got["bad"]


@pytest.mark.slow
def test_one_replica_gives_the_two_replica_run_and_resume_the_uninterrupted_one(first_run, tmp_path):
    """The same global batches and carried state on 1 and 2 replicas; a 2-replica run stopped at step 4 and
    resumed to step 6 ends where an uninterrupted 1-replica run to step 6 does."""
    model_dir, result = first_run
    single = run(f"--model_dir={tmp_path / 'single'}", *TINY, "--train_steps=6", "--export_dir=")
    assert single.returncode == 0, single.stderr[-3000:]
    two, one = evaluations(result.stdout), evaluations(single.stdout)
    assert set(one) == {2, 4, 6} and all(one[k] == pytest.approx(two[k], rel=1e-4) for k in two), (one, two)
    resumed = run(f"--model_dir={model_dir}", "--strategy=mirrored", *TINY, "--train_steps=6", "--export_dir=",
                  env=TWO)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from step 4" in resumed.stdout
    assert evaluations(resumed.stdout) == {6: pytest.approx(one[6], rel=1e-4)}, (one, resumed.stdout[-2000:])
    other = run(f"--model_dir={model_dir}", "--strategy=mirrored", *TINY, "--train_steps=8", "--vocab_size=200",
                env=TWO)
    assert_one_line_error(other, "vocab.txt holds another vocabulary (300 tokens", "(200 tokens")


@pytest.mark.slow
def test_char_level_on_text_files(tmp_path):
    text = tmp_path / "play.txt"
    text.write_text("".join(f"Speaker {i % 3}:\nA line of verse, number {i}.\n\n" for i in range(40)),
                    encoding="utf-8")
    result = run(f"--model_dir={tmp_path / 'run'}", "--model=char_rnn", f"--text_files={text}", "--train_steps=3",
                 "--global_batch_size=4", "--seq_length=16", "--log_every=3", "--eval_every=0", "--sample_tokens=20",
                 "--paper_training", "--document_boundaries=continue", "--export_dir=")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "char_rnn (char level, lstm)" in out and "4 streams x 16 steps" in out and "rmsprop lr 0.002" in out
    assert re.search(r"validation [\d.]+ bits per character \(perplexity [\d.]+\)", out)
    vocab = (tmp_path / "run" / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert "\\u000a" in vocab and "\\u0020" in vocab and "S" in vocab  # newline and space; case kept
    assert os.path.exists(tmp_path / "run" / "perplexity.png")


@pytest.mark.slow
def test_bad_inputs_are_one_line_errors(tmp_path):
    common = [f"--model_dir={tmp_path / 'run'}"]
    assert_one_line_error(run(*common, "--dataset=tiny_shakespeare", f"--data_dir={tmp_path}"),
                          "tiny_shakespeare", "--data_dir")
    assert_one_line_error(run(*common, "--dataset=pg19"), "--data_dir")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n", encoding="utf-8")
    assert_one_line_error(run(*common, f"--text_files={empty}"), "--text_files", "has no text")
    assert_one_line_error(run(*common, "--strategy=mirrored", "--global_batch_size=5", env=TWO),
                          "--global_batch_size=5", "multiple of the 2 replicas")
    assert_one_line_error(run(*common, "--model=char_rnn", "--level=word"), "--model=char_rnn")
    assert_one_line_error(run(*common, "--model=lstm_lm_huge"), "--model")
    assert not os.path.exists(tmp_path / "run" / "export")
