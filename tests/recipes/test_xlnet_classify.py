"""xlnet_classify.py: the GLUE metrics and the --init_checkpoint handling of zoo.recipe_support.xlnet (fast), and
the recipe end to end in subprocesses (slow)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.recipe_run import assert_one_line_error, run_recipe
from zoo.errors import ZooError
from zoo.recipe_support import xlnet as support

LABELS = np.array([1, 0, 1, 1, 0, 0, 1, 0])
PREDICTIONS = np.array([1, 0, 0, 1, 1, 0, 1, 1])  # tp 3, tn 2, fp 2, fn 1


def test_glue_metrics_against_hand_counts():
    tp, tn, fp, fn = 3, 2, 2, 1
    cola = support.glue_metrics("glue/cola", LABELS, PREDICTIONS)
    assert cola["accuracy"] == pytest.approx(5 / 8)
    mcc = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert cola["matthews_corrcoef"] == pytest.approx(mcc) and "f1" not in cola
    mrpc = support.glue_metrics("glue/mrpc", LABELS, PREDICTIONS)
    assert mrpc["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn)) and "matthews_corrcoef" not in mrpc
    assert support.glue_metrics("glue/sst2", LABELS, PREDICTIONS) == {"accuracy": pytest.approx(5 / 8)}
    assert support.glue_metrics("glue/cola", LABELS, np.zeros(8))["matthews_corrcoef"] == 0.0  # one class only


def test_stsb_correlations():
    x = np.array([0.0, 1.0, 2.5, 2.5, 4.0, 5.0])
    y = np.array([0.2, 0.1, 3.0, 2.0, 4.5, 9.0])
    out = support.glue_metrics("glue/stsb", x, y)
    assert out["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    ranks_x, ranks_y = np.array([1, 2, 3.5, 3.5, 5, 6]), np.array([2, 1, 4, 3, 5, 6.0])  # ties share 3.5
    assert out["spearman"] == pytest.approx(np.corrcoef(ranks_x, ranks_y)[0, 1])
    assert support.glue_metrics("glue/stsb", x, np.full(6, 2.0)) == {"pearson": 0.0, "spearman": 0.0}


def test_majority_baseline_and_primary_metric():
    assert support.majority_metrics("glue/sst2", [1, 1, 0], LABELS) == {"accuracy": 0.5}
    assert support.majority_metrics("glue/cola", [0, 0, 1], LABELS)["matthews_corrcoef"] == 0.0
    assert support.majority_metrics("glue/stsb", [1.0, 3.0], [0.0, 5.0]) == {"pearson": 0.0, "spearman": 0.0}
    assert [support.primary_metric(t) for t in ("glue/cola", "glue/stsb", "glue/mrpc", "embedded")] == \
        ["matthews_corrcoef", "pearson", "accuracy", "accuracy"]


def _tiny_backbone(vocabulary_size=40, **kwargs):
    from zoo.models.xlnet.xlnet_backbone import XLNetBackbone

    return XLNetBackbone(vocabulary_size, 2, 2, 16, 32, dropout=0.0, attention_dropout=0.0, **kwargs)


def test_init_from_a_pretrain_run_directory(tmp_path):
    """A run directory of xlnet_pretrain: the shape from config.json, the newest checkpoint's backbone weights
    (the pretrainer's `lm_bias` and memories are left behind), spiece.model beside it."""
    from zoo.models.xlnet import XLNetPretrainer

    import keras

    backbone = _tiny_backbone(bi_data=True)
    pretrainer = XLNetPretrainer(backbone, 2, mem_len=4, reuse_len=2)
    pretrainer.compile(optimizer=keras.optimizers.AdamW(1e-3))
    pretrainer.optimizer.build(pretrainer.trainable_variables)  # as zoo.training.Trainer does
    for w in backbone.weights:
        w.assign(np.random.default_rng(len(w.path)).normal(size=w.shape).astype("float32"))
    tf.train.Checkpoint(model=pretrainer).save(str(tmp_path / "ckpt"))  # the Trainer's layout
    args = {k: v for k, v in backbone.get_config().items() if k not in ("name", "trainable", "dtype")}
    (tmp_path / "config.json").write_text(json.dumps({support.BACKBONE_KEY: args, "seq_len": 8}))
    (tmp_path / "spiece.model").write_bytes(b"x")

    source = support.init_source(str(tmp_path))
    assert source.kind == "pretrain_run" and source.backbone == args and source.backbone["bi_data"] is True
    assert source.vocabulary == str(tmp_path / "spiece.model") and source.path.endswith("ckpt-1")
    fresh = _tiny_backbone()
    support.load_backbone_weights(fresh, source)
    for a, b in zip(backbone.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)

    class Vocabulary:
        def __len__(self):
            return 41

    with pytest.raises(ZooError, match="vocabulary of 40 pieces but the run's spiece.model has 41; pass the "
                                       "checkpoint's own model as --spiece_model"):
        support.check_vocabulary(Vocabulary(), source, str(tmp_path))
    with pytest.raises(ZooError, match="does not hold this backbone's weights"):
        support.load_backbone_weights(_tiny_backbone(vocabulary_size=41), source)


def test_init_from_keras_hub_weights(tmp_path):
    """A keras-hub preset directory: its config.json gives the shape (a bare .weights.h5: its shapes)."""
    config = {"module": "keras_hub.src.models.xlnet.xlnet_backbone", "class_name": "XLNetBackbone",
              "registered_name": "keras_hub>XLNetBackbone",
              "config": {"vocabulary_size": 40, "num_layers": 2, "num_heads": 2, "hidden_dim": 16,
                         "intermediate_dim": 32, "dropout": 0.0}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.weights.h5").write_bytes(b"")
    source = support.init_source(str(tmp_path))
    assert source.kind == "keras_hub" and source.path == str(tmp_path) and source.vocabulary is None
    assert source.backbone == {"vocabulary_size": 40, "num_layers": 2, "num_heads": 2, "hidden_dim": 16,
                               "intermediate_dim": 32}


@pytest.mark.parametrize("layout, fragment", [
    (None, "does not exist"),
    ("empty_dir", "no config.json and model.weights.h5 (a keras-hub preset directory)"),
    ("other_file", "no such keras-hub XLNetBackbone preset directory or .weights.h5 file"),
    ("bad_h5", "cannot read it as HDF5"),
    ("run_without_backbone", "is not an xlnet_pretrain run (its config.json has no 'backbone')"),
])
def test_init_checkpoint_errors(tmp_path, layout, fragment):
    path = tmp_path / "nowhere"
    if layout == "empty_dir":
        path.mkdir()
    elif layout == "other_file":
        path = tmp_path / "model.bin"
        path.write_bytes(b"")
    elif layout == "bad_h5":
        path = tmp_path / "model.weights.h5"
        path.write_bytes(b"not hdf5")
    elif layout == "run_without_backbone":
        path = tmp_path
        variable = tf.Variable(1.0)
        tf.train.Checkpoint(v=variable).save(str(tmp_path / "ckpt"))
        (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ZooError, match="--init_checkpoint") as error:
        support.init_source(str(path))
    assert fragment in str(error.value) and "\n" not in str(error.value)


# === End to end (slow) ===

SMALL = ["--max_seq_length=32", "--global_batch_size=8", "--vocab_size=400", "--eval_every=3", "--log_every=3",
         "--checkpoint_every=3", "--warmup_steps=1"]


def run(*args, env=None, timeout=600):
    return run_recipe("xlnet_classify.py", *args, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("xlnet_classify")
    model_dir, export_dir = base / "model", base / "export"
    result = run(f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--train_steps=6", *SMALL)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return model_dir, export_dir, result.stdout


@pytest.mark.slow
def test_embedded_task_trains_reports_and_exports(first_run):
    from tests.tf_only import run_tf_only

    model_dir, export_dir, stdout = first_run
    assert "majority baseline on dev: accuracy 0.2162" in stdout and "1 replica(s)" in stdout
    assert "embedded: 596 train, 148 dev examples, 5 classes" in stdout  # the topic task, split by article
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-6")
    report = json.loads((model_dir / "results.json").read_text())
    assert report["task"] == "embedded" and report["best"]["step"] in (3, 6)
    assert 0 <= report["dev"]["accuracy"] <= 1 and "majority_baseline" in report["dev"]
    config = json.loads((model_dir / "config.json").read_text())
    assert config["backbone"]["num_layers"] >= 1 and len(config["vocab_sha1"]) == 40
    version = export_dir / "1"
    assert (version / "assets" / "spiece.model").read_bytes() == (model_dir / "spiece.model").read_bytes()
    out = run_tf_only(f"""
        import json, tensorflow as tf
        fn = tf.saved_model.load({str(version)!r}).signatures["serving_default"]
        ids = tf.constant([[5, 5, 20, 21, 4, 22, 4, 3], [30, 31, 32, 4, 33, 34, 4, 3]], tf.int32)
        seg = tf.constant([[4, 4, 0, 0, 0, 1, 1, 2], [0, 0, 0, 0, 1, 1, 1, 2]], tf.int32)
        mask = tf.constant([[0, 0, 1, 1, 1, 1, 1, 1], [1] * 8], tf.int32)
        out = fn(token_ids=ids, segment_ids=seg, padding_mask=mask)
        p = out["probabilities"].numpy()
        print(json.dumps({{"logits": out["logits"].shape.as_list(), "sums": p.sum(-1).tolist(),
                          "predictions": out["predictions"].numpy().tolist(), "argmax": p.argmax(-1).tolist()}}))
    """)
    assert out["logits"] == [2, 5] and out["predictions"] == out["argmax"]
    np.testing.assert_allclose(out["sums"], [1.0, 1.0], atol=1e-5)


@pytest.mark.slow
def test_sentence_pairs_from_tsv(tmp_path):
    """The pair path (A <sep> B <sep> <cls>, segments 0/1/2) end to end: --task=tsv with --text_b_column."""
    from zoo.data import text_sources

    sentences = [s for d in text_sources.load_documents()[:20] for s in d]
    rows = ["a\tb\tlabel"] + [f"{a}\t{b}\t{'yes' if i % 2 else 'no'}"
                                for i, (a, b) in enumerate(zip(sentences[::2], sentences[1::2]))]
    for name, part in (("train.tsv", rows), ("dev.tsv", rows[:1] + rows[1:21])):
        (tmp_path / name).write_text("\n".join(part) + "\n")
    model_dir = tmp_path / "model"
    result = run(f"--model_dir={model_dir}", "--task=tsv", f"--train_file={tmp_path / 'train.tsv'}",
                 f"--dev_file={tmp_path / 'dev.tsv'}", "--text_b_column=1", "--label_column=2", "--export_dir=",
                 "--train_steps=3", *SMALL)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert f"tsv: {len(rows) - 1:,} train, 20 dev examples, 2 classes" in result.stdout
    report = json.loads((model_dir / "results.json").read_text())
    assert report["task"] == "tsv" and report["dev"]["majority_baseline"]["accuracy"] == 0.5


@pytest.mark.slow
def test_tsv_regression_stops_on_pearson_and_reports_correlations(tmp_path):
    """--regression: float labels, early stopping on Pearson, baseline = the mean label (no accuracy)."""
    from zoo.data import text_sources

    sentences = [s for d in text_sources.load_documents()[:10] for s in d]
    rows = ["text\tscore"] + [f"{s}\t{len(s.split()) / 10:.1f}" for s in sentences]
    for name, part in (("train.tsv", rows), ("dev.tsv", rows[:21])):
        (tmp_path / name).write_text("\n".join(part) + "\n")
    model_dir = tmp_path / "model"
    result = run(f"--model_dir={model_dir}", "--task=tsv", f"--train_file={tmp_path / 'train.tsv'}",
                 f"--dev_file={tmp_path / 'dev.tsv'}", "--regression", "--export_dir=", "--train_steps=3",
                 *SMALL)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    report = json.loads((model_dir / "results.json").read_text())
    assert "pearson" in report["best"] and "spearman" in report["dev"]
    assert report["dev"]["majority_baseline"] == {"pearson": 0.0, "spearman": 0.0}


def _other_vocabulary(tmp_path):
    from zoo.data import xlnet_vocabulary

    return xlnet_vocabulary.train_xlnet_vocabulary(["some other text, of another kind."] * 40, 60).save(
        str(tmp_path / "other"))


@pytest.mark.slow
def test_resumes_and_refuses_another_vocabulary(first_run, tmp_path):
    model_dir, export_dir, _ = first_run
    result = run(f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--train_steps=9", *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from step 6" in result.stdout and sorted(os.listdir(export_dir)) == ["1", "2"]
    refused = run(f"--model_dir={model_dir}", f"--spiece_model={_other_vocabulary(tmp_path)}", "--export_dir=",
                  *SMALL)
    assert_one_line_error(refused, "different config", "vocab_sha1")


@pytest.mark.slow
def test_fine_tunes_an_xlnet_pretrain_run_on_two_replicas(tmp_path):
    """--init_checkpoint=<an xlnet_pretrain run>: its shape (bi_data off), its spiece.model; another
    --spiece_model is refused in one line."""
    pretrain = tmp_path / "pretrain"
    made = run_recipe("xlnet_pretrain.py", f"--model_dir={pretrain}", "--export_dir=", "--train_steps=2",
                      "--seq_len=32", "--reuse_len=16", "--mem_len=16", "--num_predict=6", "--global_batch_size=4",
                      "--vocab_size=400", "--max_documents=40", "--warmup_steps=1", "--bi_data")
    assert made.returncode == 0, made.stderr[-3000:]
    model_dir = tmp_path / "classify"
    result = run(f"--model_dir={model_dir}", f"--init_checkpoint={pretrain}", "--strategy=mirrored", "--export_dir=",
                 "--train_steps=3", "--max_examples=32", *SMALL, env={"ZOO_CPU_REPLICAS": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"(--init_checkpoint={pretrain})" in result.stdout and "2 replica(s)" in result.stdout
    assert (model_dir / "spiece.model").read_bytes() == (pretrain / "spiece.model").read_bytes()
    mine, theirs = (json.loads((d / "config.json").read_text())["backbone"] for d in (model_dir, pretrain))
    assert theirs["bi_data"] is True and mine == {**theirs, "bi_data": False}
    other = run(f"--model_dir={tmp_path / 'm2'}", f"--init_checkpoint={pretrain}",
                f"--spiece_model={_other_vocabulary(tmp_path)}", *SMALL)
    assert_one_line_error(other, "--init_checkpoint", "was trained with", "--spiece_model")


@pytest.mark.slow
@pytest.mark.parametrize("flags, fragments", [
    (["--task=glue/cola", "--data_dir={tmp}"], ["not present in --data_dir", "--data_dir"]),
    (["--task=tsv", "--train_file={tmp}/a.tsv"], ["--task=tsv needs --train_file and --dev_file"]),
    (["--train_file={tmp}/a.tsv"], ["add --task=tsv"]),
    (["--task=tsv", "--train_file={tmp}/none.tsv", "--dev_file={tmp}/none.tsv"], ["none.tsv"]),
    (["--init_checkpoint={tmp}/nowhere"], ["--init_checkpoint={tmp}/nowhere does not exist"]),
    (["--spiece_model={tmp}/none.model"], ["--spiece_model={tmp}/none.model"]),
    (["--task=glue/xyz"], ["unknown --task='glue/xyz'"]),
])
def test_bad_input(tmp_path, flags, fragments):
    flags = [f.format(tmp=tmp_path) for f in flags]
    assert_one_line_error(run(f"--model_dir={tmp_path / 'm'}", *SMALL, *flags),
                          *(f.format(tmp=tmp_path) for f in fragments))
