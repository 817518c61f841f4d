"""End-to-end runs of recipes/dgr_continual.py in subprocesses, tiny configs."""

import csv
import os

import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.recipe_run import assert_one_line_error, files, run_recipe, summary_tags
from tests.tf_only import run_tf_only
from zoo.data import digits

TINY = ["--num_tasks=2", "--generator_steps=4", "--train_steps=4", "--critic_steps=1", "--global_batch_size=8",
        "--log_every=2", "--sample_every=2", "--checkpoint_every=2"]


def _run(*args, env=None, timeout=300):
    return run_recipe("dgr_continual.py", *args, env=env, timeout=timeout)


@pytest.mark.slow
def test_recipe_compares_methods_exports_and_resumes(tmp_path):
    model_dir, export_dir = str(tmp_path / "run"), str(tmp_path / "export")
    flags = [*TINY, f"--model_dir={model_dir}", f"--export_dir={export_dir}"]
    first = _run(*flags)
    assert first.returncode == 0, first.stderr[-3000:]
    with open(os.path.join(model_dir, "accuracy.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["after_task"]) for r in rows] == [
        (m, k) for m in ("generative", "exact", "none") for k in ("1", "2")]
    assert "Test accuracy on every task after each task" in first.stdout
    assert files(model_dir) == [".lock", "accuracy.csv", "accuracy.png", "exact", "generative", "none", "samples"]
    assert files(os.path.join(model_dir, "generative", "task_2")) == ["generator", "solver"]
    assert files(os.path.join(model_dir, "none", "task_1")) == ["solver"]  # baselines need no generator
    assert "config.json" in files(os.path.join(model_dir, "exact", "task_2", "solver"))
    assert "task_2_step_000004.png" in files(os.path.join(model_dir, "samples"))
    assert "samples" in summary_tags(os.path.join(model_dir, "generative", "task_1", "generator", "train"))
    assert files(export_dir) == ["generator", "solver"]

    # The exported final solver, served without Keras, equals the Keras solver restored from its checkpoint.
    scholar = zoo.create_model("dgr", preset="digits", with_generator=False)
    checkpoint = tf.train.latest_checkpoint(os.path.join(model_dir, "generative", "task_2", "solver"))
    tf.train.Checkpoint(model=scholar).restore(checkpoint).expect_partial().assert_existing_objects_matched()
    _, (test_x, test_y) = digits.load_digits()
    np.save(tmp_path / "x.npy", test_x[:16])
    out = run_tf_only(f"""
        import json
        import numpy as np
        import tensorflow as tf
        solver = tf.saved_model.load({os.path.join(export_dir, "solver", "1")!r})
        generator = tf.saved_model.load({os.path.join(export_dir, "generator", "1")!r})
        out = solver.signatures["serving_default"](images=tf.constant(np.load({str(tmp_path / "x.npy")!r})))
        images = generator.signatures["serving_default"](noise=tf.zeros([2, 32]))["images"]
        print(json.dumps({{"probabilities": out["probabilities"].numpy().tolist(), "shape": images.shape.as_list()}}))
    """)
    expected = tf.nn.softmax(scholar.solver(test_x[:16], training=False)).numpy()
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    assert out["shape"] == [2, 8, 8, 1]

    again = _run(*flags)  # every task is complete: restores, re-tests, writes the same table, exports version 2
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("is already at step 4") == 8  # 2 tasks × (generator, solver, exact, none)
    with open(os.path.join(model_dir, "accuracy.csv")) as f:
        assert list(csv.DictReader(f)) == rows
    assert files(os.path.join(export_dir, "solver")) == ["1", "2"]


@pytest.mark.slow
@pytest.mark.distributed
def test_recipe_runs_on_two_replicas(tmp_path):
    result = _run(*TINY, "--strategy=mirrored", "--methods=generative", "--export_dir=",
                  f"--model_dir={tmp_path}", env={"ZOO_CPU_REPLICAS": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert files(tmp_path / "generative") == ["task_1", "task_2"] and "accuracy.csv" in files(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("args,message", [
    (["--methods=generative,replay"], "unknown --methods='replay'; choose one of: generative, exact, none"),
    (["--methods=exact,exact"], "--methods=exact,exact: give distinct methods"),
    (["--replay_ratio=1.5"], "--replay_ratio=1.5 must be at least 0 and at most 1"),
    (["--tasks=mnist_svhn"], "no --data_dir was given"),
])
def test_bad_flags_give_one_line_errors(tmp_path, args, message):
    assert_one_line_error(_run(f"--model_dir={tmp_path}", *args, timeout=120), message)
