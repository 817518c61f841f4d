"""image_classify.py end to end in subprocesses (slow), and the recipe's support functions (fast)."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.recipe_run import assert_one_line_error, run_recipe, summary_scalars
from tests.tf_only import run_tf_only
from zoo.data.image_classification import EMBEDDED_CLASSES
from zoo.errors import ZooError
from zoo.recipe_support import image_classification as support

TINY = ["--model=nasnet_a_cifar", "--size=small", "--global_batch_size=8", "--num_examples=2", "--sync_batch_norm"]


def run(*args, timeout=600):
    return run_recipe("image_classify.py", *args, timeout=timeout)


# === Support functions (fast) ===


def test_results_table_and_confusion_png(tmp_path):
    confusion = np.array([[3, 1, 0], [0, 2, 2], [0, 0, 4]])
    lines = support.results_table({"top1": 0.75, "top5": 1.0, "loss": 0.5}, confusion, ("a", "b", "c"), 3, "toy")
    text = "\n".join(lines)
    assert "12 toy validation images, 3 classes" in text and "75.00%" in text and "33.33%" in text
    assert "b" in lines[-2] and "50.0%" in lines[-2]
    path = support.write_confusion_png(str(tmp_path / "cm.png"), confusion, ("a", "b", "c"), "toy")
    assert tf.io.decode_png(tf.io.read_file(path)).shape[-1] in (3, 4)


def test_final_results_come_from_the_trainer_logs():
    logs = {"loss": 1.0, "eval/loss": 0.5, "eval/top1": 0.75, "eval/top5": 1.0,
            "eval/confusion": np.array([[3.0, 1.0], [0.0, 4.0]], np.float32)}
    results, confusion = support.final_results(logs)
    assert results == {"loss": 0.5, "top1": 0.75, "top5": 1.0}
    assert confusion.dtype == np.int64 and confusion.tolist() == [[3, 1], [0, 4]]
    with pytest.raises(Exception, match="lack eval/confusion; train with evaluation data"):
        support.final_results({"eval/loss": 0.5, "eval/top1": 0.75, "eval/top5": 1.0})


def test_optimizers_and_schedules():
    sgd = support.make_optimizer("nesterov", support.make_schedule("cosine", 0.1, train_steps=10))
    assert sgd.nesterov and float(sgd.learning_rate) == pytest.approx(0.1)
    schedule = support.make_schedule("exponential", 0.04, train_steps=100, decay_steps=5, decay_rate=0.5)
    assert float(schedule(4)) == pytest.approx(0.04) and float(schedule(5)) == pytest.approx(0.02)
    rms = support.make_optimizer("rmsprop", 0.04)
    assert (rms.rho, rms.momentum, rms.epsilon) == (0.9, 0.9, 1.0)


def test_model_checks():
    with pytest.raises(Exception, match="is not an image classifier"):
        support.check_model("bert_tiny")
    with pytest.raises(Exception, match="unknown --model='nope'; choose one of: .*nasnet_a_cifar"):
        support.check_model("nope")
    with pytest.raises(Exception, match="JSON object"):
        support.parse_overrides("[1]")


def test_misspelt_override_is_an_error():
    # nasnet's num_blocks misspelt: the networks hand unknown keywords to keras.Model, which ignores them.
    with pytest.raises(ZooError, match=r"nasnet_a_cifar has no argument num_block; it takes .*num_blocks"):
        support.build_network("nasnet_a_cifar", num_classes=3, image_size=32, size="small",
                              overrides={"num_block": 1, "dropout": 0.1})
    network = support.build_network("nasnet_a_cifar", num_classes=3, image_size=32, size="small",
                                    overrides={"dropout": 0.1})
    assert network.dropout == 0.1


# === End to end (slow) ===


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("classify")
    model_dir, export_dir = base / "model", base / "export"
    result = run(f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--train_steps=4", "--log_every=2",
                 "--checkpoint_every=2", "--eval_every=2", "--eval_steps=3", *TINY)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return model_dir, export_dir, result.stdout


@pytest.mark.slow
def test_trains_evaluates_and_exports(first_run):
    model_dir, export_dir, stdout = first_run
    assert "nasnet_a_cifar (small size)" in stdout and "embedded: 10 classes" in stdout
    assert "final evaluation: 24 embedded validation images" in stdout  # 3 eval steps of 8
    assert "example predictions" in stdout and os.path.exists(model_dir / "confusion_matrix.png")
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-4")
    scalars = summary_scalars(str(model_dir / "eval"))
    assert [step for step, _ in scalars["top1"]] == [2, 4] and "top5" in scalars and "loss" in scalars
    top1 = float(stdout.split("top-1")[1].split("%")[0]) / 100
    assert top1 == pytest.approx(scalars["top1"][-1][1], abs=1e-3)  # the table = the trainer's last evaluation

    version = export_dir / "1"
    assert (version / "assets" / "labels.txt").read_text().split() == list(EMBEDDED_CLASSES)
    result = run_tf_only(f"""
        import json, numpy as np, tensorflow as tf
        model = tf.saved_model.load({str(version)!r})
        images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)), tf.float32)
        out = model.signatures["serving_default"](images=images)
        png = tf.io.encode_png(tf.fill([48, 40, 3], tf.constant(200, tf.uint8)))
        named = model.signatures["classify_bytes"](image_bytes=tf.stack([png, png]))
        print(json.dumps({{"probabilities": out["probabilities"].numpy().sum(-1).tolist(),
                          "classes": out["classes"].shape.as_list(), "scores": out["scores"].shape.as_list(),
                          "names": named["class_names"].numpy().astype(str).tolist()}}))
    """)
    assert result["probabilities"] == pytest.approx([1, 1, 1], abs=1e-5)
    assert result["classes"] == [3, 5] and result["scores"] == [3, 5]
    assert len(result["names"]) == 2 and all(n in EMBEDDED_CLASSES for n in result["names"][0])


@pytest.mark.slow
def test_finished_run_resumes_and_exports_next_version(first_run):
    model_dir, export_dir, _ = first_run
    result = run(f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--train_steps=4", "--eval_steps=3",
                 *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "already at step 4" in result.stdout and "final evaluation" in result.stdout
    assert sorted(os.listdir(export_dir)) == ["1", "2"]


@pytest.mark.slow
@pytest.mark.parametrize("args, fragments", [
    (["--model=resnet_9000"], ["unknown --model='resnet_9000'", "nasnet_a_cifar"]),
    (["--model=bert_tiny"], ["--model=bert_tiny is not an image classifier"]),
    (["--dataset=cifar10", "--data_dir={tmp}"], ["'cifar10' is not present in --data_dir"]),
    (["--image_dir={tmp}"], ["holds no .jpg/.jpeg/.png images", "--image_dir="]),
])
def test_one_line_errors(tmp_path, args, fragments):
    (tmp_path / "empty_class").mkdir()
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = run(f"--model_dir={tmp_path / 'model'}", *args, timeout=120)
    assert_one_line_error(result, *fragments)


def test_randwire_wiring_pictures(tmp_path):
    import zoo

    network = zoo.create_model("randwire_small", **zoo.model_info("randwire_small").small)
    paths = support.draw_wiring(network, str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ["conv3.png", "conv4.png", "conv5.png"]
    assert all(os.path.getsize(p) > 1000 for p in paths)
    assert support.draw_wiring(zoo.create_model("nasnet_a_cifar", **zoo.model_info("nasnet_a_cifar").small),
                               str(tmp_path / "none")) == []


@pytest.mark.parametrize("name", ["nasnet_a_mobile", "pnasnet_5_mobile", "randwire_regular_109"])
def test_cpu_size_of_each_family(name):
    from zoo.registry import trainable_params

    network = support.build_network(name, num_classes=7, image_size=32, size="cpu",
                                    overrides={"dropout": 0.1, "sync_batch_norm": True})
    assert network.num_classes == 7 and network.image_size == 32 and network.dropout == 0.1
    assert network.sync_batch_norm is True
    assert 5_000 < trainable_params(network) < 300_000
    assert network(np.zeros((1, 32, 32, 3), "float32"))["logits"].shape == (1, 7)
