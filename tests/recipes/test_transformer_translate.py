"""transformer_translate.py end to end in subprocesses (slow), and its one-line errors."""

import os

import pytest

from tests.recipe_run import assert_one_line_error, run_recipe, summary_tags
from tests.tf_only import run_tf_only

TINY = ["--train_steps=4", "--log_every=2", "--checkpoint_every=2", "--warmup_steps=2", "--global_batch_size=8",
        "--max_length=32", "--vocab_size=300", "--bleu_sentences=8", "--final_sentences=8", "--num_examples=2",
        "--extra_length=5", "--average_checkpoints=2"]


def run(*args, env=None, timeout=600):
    return run_recipe("transformer_translate.py", *args, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("translate") / "run"
    result = run(f"--model_dir={model_dir}", "--strategy=mirrored", *TINY, env={"ZOO_CPU_REPLICAS": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, result


@pytest.mark.slow
def test_trains_evaluates_averages_and_exports(first_run):
    model_dir, result = first_run
    out = result.stdout
    assert "shared vocabulary 300 pieces; 2 replica(s)" in out
    assert "averaged the checkpoints of steps 4, 2" in out
    assert "| greedy |" in out and "| beam 4, alpha 0.6 |" in out and "BLEU on 8 test sentences" in out
    assert out.count("  reference: ") == 2
    assert os.path.exists(model_dir / "subword.model")
    assert {"bleu", "loss", "nll", "token_accuracy"} <= summary_tags(str(model_dir / "eval"))
    export = model_dir / "export" / "1"
    assert os.path.exists(export / "assets" / "subword.model")
    got = run_tf_only(f"""
        import json, tensorflow as tf
        model = tf.saved_model.load({str(export)!r})
        source = tf.constant([[40, 41, 42, 3], [50, 3, 0, 0]], tf.int32)
        beam = model.signatures["serving_default"](source_ids=source)
        greedy = model.signatures["translate_greedy"](source_ids=source)
        try:
            model.signatures["serving_default"](source_ids=tf.constant([[9999, 3]], tf.int32))
            bad = ""
        except tf.errors.InvalidArgumentError as e:
            bad = e.message
        print(json.dumps({{"ids": beam["target_ids"].shape.as_list(), "lengths": beam["lengths"].numpy().tolist(),
                          "scores": beam["scores"].shape.as_list(), "greedy": greedy["lengths"].numpy().tolist(),
                          "bad": bad}}))
    """)
    assert got["ids"][0] == 2 and got["scores"] == [2]
    assert all(1 <= n <= 9 for n in got["lengths"] + got["greedy"])  # at most source length + 5
    assert "source_ids must be in [0, 300)" in got["bad"]


@pytest.mark.slow
def test_resumes_and_refuses_another_vocabulary(first_run, tmp_path):
    model_dir, _ = first_run
    result = run(f"--model_dir={model_dir}", *TINY[1:], "--train_steps=6", "--export_dir=")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from step 4" in result.stdout
    other = tmp_path / "other.model"
    made = run(f"--model_dir={tmp_path / 'other'}", *TINY, "--vocab_size=200", "--train_steps=1", "--export_dir=",
               "--bleu_sentences=0", "--final_sentences=1")
    assert made.returncode == 0, made.stderr[-3000:]
    os.rename(tmp_path / "other" / "subword.model", other)
    result = run(f"--model_dir={model_dir}", *TINY[1:], "--train_steps=6", f"--vocab_file={other}")
    assert_one_line_error(result, "different config", "vocab_sha1")


@pytest.mark.slow
def test_bad_inputs_are_one_line_errors(tmp_path):
    src, tgt = tmp_path / "a.txt", tmp_path / "b.txt"
    src.write_text("one\ntwo\nthree\n")
    tgt.write_text("eins\nzwei\n")
    common = [f"--model_dir={tmp_path / 'run'}"]
    assert_one_line_error(run(*common, f"--source_files={src}", f"--target_files={tgt}"),
                          "--source_files", "--target_files")
    assert_one_line_error(run(*common, "--dataset=wmt14_translate/de-en"), "--data_dir")
    assert_one_line_error(run(*common, "--max_length=500"), "--max_length=500", "max_sequence_length")
    assert_one_line_error(run(*common, f"--source_files={src}"), "--target_files")
