"""xlnet_pretrain.py: the settings, checks, held-out split and baseline of zoo.recipe_support.xlnet (fast), and the
recipe end to end in subprocesses (slow): export loaded TF-only, resume after SIGKILL == uninterrupted, two
CPU replicas."""


import numpy as np
import pytest
import tensorflow as tf

from tests.recipe_run import assert_one_line_error, kill_at_first_checkpoint, run_recipe
from zoo.errors import ZooError
from zoo.recipe_support import xlnet as support


def test_paper_training_takes_xlnet_large_values_for_flags_not_given():
    from zoo.models.xlnet import PAPER_TRAINING

    flags = {k: 1 for k in support.paper_table()}
    mine = support.paper_training(flags, lambda name: name in ("mem_len", "learning_rate"), use_paper=True)
    assert mine["mem_len"] == 1 and mine["learning_rate"] == 1  # given: kept
    assert mine["seq_len"] == 512 and mine["reuse_len"] == 256 and mine["perm_size"] == 256
    assert mine["num_predict"] == 85 and mine["bi_data"] is True and mine["global_batch_size"] == 2048
    assert mine["train_steps"] == 500_000 and mine["warmup_steps"] == 40_000 and mine["adam_epsilon"] == 1e-6
    assert set(PAPER_TRAINING["xlnet_large"]) <= set(mine) and not set(support.PAPER_OPTIMIZATION) & set(
        PAPER_TRAINING["xlnet_large"])  # each value written once
    assert support.paper_training(flags, lambda name: False, use_paper=False) == flags


@pytest.mark.parametrize("changes, replicas, fragments", [
    ({"warmup_steps": 11}, 1, ["--warmup_steps=11 exceeds --train_steps=10"]),
    ({"global_batch_size": 7}, 2, ["--global_batch_size=7 must be a multiple of the 2 replicas", "=6"]),
    ({"bi_data": True, "global_batch_size": 6}, 2, ["--bi_data needs an even batch per replica",
                                                    "gives 3 on each of 2", "--global_batch_size=8"]),
])
def test_check_pretraining(changes, replicas, fragments):
    training = {"warmup_steps": 1, "train_steps": 10, "global_batch_size": 8, "bi_data": False, **changes}
    with pytest.raises(ZooError) as error:
        support.check_pretraining(training, replicas)
    for fragment in fragments:
        assert fragment in str(error.value)
    support.check_pretraining({**training, "warmup_steps": 1, "global_batch_size": 4 * replicas}, replicas)


def test_held_out_documents_and_unigram_baseline():
    source = {}  # the embedded corpus
    train, held = support.split_documents(source, 0.1, seed=0)
    assert (len(train), len(held)) == (117, 13) and support.split_documents(source, 0.1, seed=0)[1] == held
    assert not {tuple(d) for d in held} & {tuple(d) for d in train} and all(isinstance(s, str) for s in held[0])

    class Layout:  # PretrainingLayout's target_ids
        def __init__(self, targets):
            self.targets = np.array(targets, np.int32)

        def target_ids(self, max_steps=None):
            return self.targets

    train_layout, held_layout = Layout([7, 7, 3, 2]), Layout([7, 1, 4, 5])  # most frequent training target: 7
    assert support.unigram_accuracy(train_layout, held_layout) == pytest.approx(1 / 4)


def test_short_held_out_split_names_the_flag():
    from zoo.data import xlnet_vocabulary

    vocabulary = xlnet_vocabulary.train_xlnet_vocabulary(["a few words here and there."] * 40, 40)
    with pytest.raises(ZooError, match=r"held-out documents \(--validation_fraction\).*raise --validation_fraction"):
        support.held_out_layout([["too short."]], vocabulary, seed=0, global_batch_size=8, seq_len=32,
                                reuse_len=16, num_predict=4)


def test_vocabulary_flags(tmp_path):
    with pytest.raises(ZooError, match=f"--spiece_model={tmp_path}/none.model: no SentencePiece model there"):
        support.run_vocabulary(str(tmp_path), [], spiece_model=str(tmp_path / "none.model"), vocab_size=50,
                               chief=True)
    (tmp_path / "bad.model").write_bytes(b"not a model")
    with pytest.raises(ZooError, match="--spiece_model"):
        support.load_vocabulary(str(tmp_path / "bad.model"), "--spiece_model")


# === End to end (slow) ===

SMALL = ["--seq_len=32", "--reuse_len=16", "--mem_len=16", "--num_predict=6", "--global_batch_size=4",
         "--vocab_size=400", "--max_documents=60", "--warmup_steps=1", "--num_passes=1"]


def run(*args, env=None, timeout=600):
    return run_recipe("xlnet_pretrain.py", *args, env=env, timeout=timeout)


def _model_tensors(model_dir):
    """Every tensor of the newest checkpoint: weights (the blocks' trainable ones under
    model/optimizer/_trainable_variables), optimizer slots, carried memories, dropout seeds, the step."""
    reader = tf.train.load_checkpoint(str(model_dir))
    names = [n for n, _ in tf.train.list_variables(str(model_dir)) if n.endswith("VARIABLE_VALUE")
             and not n.startswith("save_counter")]
    return {n: reader.get_tensor(n) for n in names}


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory):
    """Two CPU replicas with --bi_data: each replica's [forward | backward] halves, also in the evaluation
    loop's dynamic batch; the export reads every row forwards."""
    base = tmp_path_factory.mktemp("xlnet_pretrain")
    model_dir, export_dir = base / "model", base / "export"
    result = run("--strategy=mirrored", f"--model_dir={model_dir}", f"--export_dir={export_dir}",
                 "--train_steps=4", "--log_every=2", "--checkpoint_every=2", "--eval_every=2", "--bi_data", *SMALL,
                 env={"ZOO_CPU_REPLICAS": "2"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return model_dir, export_dir, result.stdout


@pytest.mark.slow
def test_trains_on_two_replicas_evaluates_and_exports(mirrored_run):
    import json

    from tests.tf_only import run_tf_only

    model_dir, export_dir, stdout = mirrored_run
    assert "2 replica(s)" in stdout and "unigram target accuracy baseline" in stdout
    assert "held out: loss" in stdout and tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-4")
    config = json.loads((model_dir / "config.json").read_text())
    assert "bi_data); 2 replica(s)" in stdout and "held out: loss" in stdout
    assert config["backbone"]["bi_data"] is True and config["mem_len"] == 16 and len(config["vocab_sha1"]) == 40
    tensors = _model_tensors(model_dir)
    memory = [v for n, v in tensors.items() if n.startswith("carried_state/")]
    assert memory and max(np.abs(m).max() for m in memory) > 0  # both replicas' memories, filled
    version = export_dir / "1"
    assert (version / "assets" / "spiece.model").read_bytes() == (model_dir / "spiece.model").read_bytes()
    out = run_tf_only(f"""
        import json, tensorflow as tf
        fn = tf.saved_model.load({str(version)!r}).signatures["serving_default"]
        ids = tf.constant([[5, 5, 20, 21, 4, 3], [30, 31, 32, 4, 33, 3]], tf.int32)
        seg = tf.constant([[4, 4, 0, 0, 0, 2], [0, 0, 0, 0, 1, 2]], tf.int32)
        out = fn(token_ids=ids, segment_ids=seg, padding_mask=tf.cast(seg < 4, tf.int32))["sequence_output"]
        one = fn(token_ids=ids[1:], segment_ids=seg[1:], padding_mask=tf.cast(seg[1:] < 4, tf.int32))
        print(json.dumps({{"shape": out.shape.as_list(), "finite": bool(tf.reduce_all(tf.math.is_finite(out))),
                          "row": float(tf.reduce_max(tf.abs(out[1] - one["sequence_output"][0])))}}))
    """)
    assert out["shape"][:2] == [2, 6] and out["finite"] and out["row"] < 1e-4  # batch-invariant


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted(tmp_path, mirrored_run):
    """Weights, optimizer slots and the carried memories after a SIGKILL and a resume are those of an
    uninterrupted run (dropout on: its random states are checkpointed too)."""
    spiece = f"--spiece_model={mirrored_run[0] / 'spiece.model'}"
    common = ["--export_dir=", spiece, "--train_steps=12", "--checkpoint_every=3", "--log_every=3", *SMALL]
    whole = run(f"--model_dir={tmp_path / 'whole'}", *common)
    assert whole.returncode == 0, whole.stderr[-3000:]
    model_dir = tmp_path / "killed"
    killed_at = kill_at_first_checkpoint("xlnet_pretrain.py", model_dir, f"--model_dir={model_dir}", *common,
                                         train_steps=12)
    resumed = run(f"--model_dir={model_dir}", *common)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming from step {killed_at}" in resumed.stdout
    a, b = _model_tensors(tmp_path / "whole"), _model_tensors(model_dir)
    assert sorted(a) == sorted(b) and len(a) > 20
    for name in a:
        np.testing.assert_allclose(a[name], b[name], atol=1e-5, rtol=1e-5, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("flags, env, fragments", [
    (["--strategy=mirrored", "--bi_data", "--global_batch_size=6"], {"ZOO_CPU_REPLICAS": "2"},
     ["--bi_data needs an even batch per replica", "--global_batch_size=8"]),
    (["--reuse_len=30"], None, ["--reuse_len=30 must be at least 1 and below --seq_len - 3"]),
    (["--num_predict=40"], None, ["--num_predict=40 is not possible"]),
    (["--input_files=/nonexistent/corpus.txt"], None, ["/nonexistent/corpus.txt", "--input_files"]),
    (["--tfds_name=wikipedia/20230601.en", "--data_dir={tmp}"], None, ["not present in --data_dir"]),
    (["--spiece_model={tmp}/none.model"], None, ["--spiece_model={tmp}/none.model"]),
    (["--config=xlnet_huge"], None, ["unknown --config='xlnet_huge'", "xlnet_tiny"]),
])
def test_bad_input(tmp_path, flags, env, fragments):
    flags = [f.format(tmp=tmp_path) for f in flags]
    assert_one_line_error(run(f"--model_dir={tmp_path / 'm'}", *SMALL, *flags, env=env),
                          *(f.format(tmp=tmp_path) for f in fragments))
