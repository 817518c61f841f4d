"""bert_pretrain.py end to end, in subprocesses, as a user runs it."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.tf_only import run_tf_only

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE = os.path.join(ROOT, "recipes", "bert_pretrain.py")
SMALL = ["--max_documents=40", "--dupe_factor=1", "--seq_length=64", "--max_predictions=10", "--warmup_steps=2",
         "--global_batch_size=8", "--vocab_size=400"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}

pytestmark = pytest.mark.slow


def run(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, RECIPE, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**ENV, **(env or {})}, timeout=timeout)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("bert")
    model_dir, export_dir = base / "model", base / "export"
    result = run("--strategy=mirrored", f"--model_dir={model_dir}", f"--export_dir={export_dir}",
                 "--train_steps=6", "--log_every=3", "--checkpoint_every=3", *SMALL)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return model_dir, export_dir, result.stdout


def test_trains_reports_and_exports(first_run):
    model_dir, export_dir, stdout = first_run
    assert "unigram MLM accuracy baseline" in stdout
    assert "step 6: loss" in stdout and "MLM accuracy" in stdout
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-6")
    assert os.path.exists(model_dir / "config.json") and os.path.exists(model_dir / "vocab.txt")
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


def test_second_run_resumes_and_exports_next_version(first_run):
    model_dir, export_dir, _ = first_run
    result = run(f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--train_steps=8", "--log_every=2",
                 *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from step 6" in result.stdout
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-8")
    assert sorted(os.listdir(export_dir)) == ["1", "2"]


def test_resumes_after_sigkill(tmp_path, first_run):
    model_dir = tmp_path / "model"
    args = [f"--model_dir={model_dir}", "--export_dir=", f"--vocab_file={first_run[0] / 'vocab.txt'}",
            "--train_steps=150", "--checkpoint_every=5", "--log_every=50", *SMALL]
    proc = subprocess.Popen([sys.executable, RECIPE, *args], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and tf.train.latest_checkpoint(str(model_dir)) is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = tf.train.latest_checkpoint(str(model_dir))
    assert killed_at is not None and int(killed_at.rsplit("-", 1)[1]) < 150, "the run ended before it was killed"

    result = run(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resuming from step {killed_at.rsplit('-', 1)[1]}" in result.stdout
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-150")


def _assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stdout[-1000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in last, last


@pytest.mark.parametrize("flags, fragments", [
    (["--strategy=horovod"], ["unknown --strategy='horovod'"]),
    (["--config=huge"], ["unknown --config='huge'", "tiny, base, large"]),
    (["--input_files=/nonexistent/corpus.txt"], ["/nonexistent/corpus.txt", "--input_files"]),
    (["--tfds_name=wikipedia/20230601.en", "--data_dir={tmp}"], ["not present in --data_dir", "--data_dir"]),
    (["--strategy=multi_worker"], ["TF_CONFIG"]),
    (["--strategy=tpu"], ["needs --tpu"]),
    (["--model_dir="], ["--model_dir is required"]),
])
def test_bad_flags(tmp_path, flags, fragments):
    flags = [f.format(tmp=tmp_path) for f in flags]
    _assert_one_line_error(run(f"--model_dir={tmp_path / 'm'}", *SMALL, *flags), *fragments)


def test_empty_input_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    _assert_one_line_error(run(f"--model_dir={tmp_path / 'm'}", f"--input_files={empty}", *SMALL),
                           str(empty), "--input_files")


def test_vocab_size_mismatch_with_checkpoint(tmp_path, first_run):
    model_dir = first_run[0]
    vocab = (model_dir / "vocab.txt").read_text().splitlines()
    other = tmp_path / "vocab.txt"
    other.write_text("\n".join(vocab[:-10]) + "\n")
    _assert_one_line_error(run(f"--model_dir={model_dir}", f"--vocab_file={other}", "--export_dir=", *SMALL),
                           f"vocab_size: {len(vocab)} in the checkpoint, {len(vocab) - 10} now")
    same_size = tmp_path / "same_size.txt"
    same_size.write_text("\n".join(vocab[:-1] + ["zzzz"]) + "\n")
    _assert_one_line_error(run(f"--model_dir={model_dir}", f"--vocab_file={same_size}", "--export_dir=", *SMALL),
                           "vocab_sha1")
    assert (model_dir / "vocab.txt").read_text().splitlines() == vocab  # left as it was


def test_model_dir_from_a_different_config(first_run):
    _assert_one_line_error(run(f"--model_dir={first_run[0]}", "--export_dir=", *SMALL[:-1], "--global_batch_size=4"),
                           "different config", "global_batch_size: 8 in the checkpoint, 4 now")


def test_batch_not_divisible_by_replicas(tmp_path):
    _assert_one_line_error(run("--strategy=mirrored", f"--model_dir={tmp_path}", *SMALL, "--global_batch_size=7",
                               env={"ZOO_CPU_REPLICAS": "2"}),
                           "--global_batch_size=7", "replica count (2)")


def test_bert_pretrain_two_cpu_replicas_match_one(tmp_path, first_run):
    """The recipe under a 2-replica MirroredStrategy ends where a 1-replica run ends (dropout off: its
    masks are drawn per replica)."""
    vocab = f"--vocab_file={first_run[0] / 'vocab.txt'}"
    common = ["--strategy=mirrored", "--export_dir=", vocab, "--train_steps=3", "--dropout=0", *SMALL]
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
