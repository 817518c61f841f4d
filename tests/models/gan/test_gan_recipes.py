"""End-to-end runs of recipes/discogan_train.py and recipes/cyclegan_train.py (and so of their shared
zoo/recipe_support/image_translation.py) in subprocesses, tiny configs."""

import os

import pytest

from tests.recipe_run import assert_one_line_error, files, run_recipe, summary_tags


@pytest.mark.slow
def test_discogan_recipe_trains_with_xla_samples_exports_and_resumes(tmp_path):
    """An XLA run, then a resumed run without XLA (not part of the run config)."""
    model_dir, export_dir = str(tmp_path / "run"), str(tmp_path / "export")
    flags = ["--filters=4", "--global_batch_size=4", "--update_interval=2", "--log_every=1", "--sample_every=1",
             "--num_samples=2", f"--model_dir={model_dir}", f"--export_dir={export_dir}"]
    first = run_recipe("discogan_train.py", "--train_steps=2", "--jit_compile", *flags)
    assert first.returncode == 0, first.stderr[-3000:]
    assert files(os.path.join(model_dir, "samples")) == ["step_000001.png", "step_000002.png"]
    assert "samples" in summary_tags(os.path.join(model_dir, "train"))  # TensorBoard images
    assert "checkpoint" in files(model_dir) and "config.json" in files(model_dir)
    for direction in ("a2b", "b2a"):
        assert "saved_model.pb" in files(os.path.join(export_dir, direction, "1"))

    again = run_recipe("discogan_train.py", "--train_steps=3", *flags)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Resuming from step 2" in again.stdout
    assert "step_000003.png" in files(os.path.join(model_dir, "samples"))
    assert files(os.path.join(export_dir, "a2b")) == ["1", "2"]


@pytest.mark.slow
def test_cyclegan_recipe_trains_with_xla_samples_and_exports(tmp_path):
    """No --export_dir: the export goes to <model_dir>/export."""
    model_dir = str(tmp_path / "run")
    export_dir = os.path.join(model_dir, "export")
    result = run_recipe("cyclegan_train.py", "--train_steps=2", "--jit_compile", "--image_size=24", "--filters=2",
                        "--global_batch_size=2", "--log_every=1", "--num_samples=2", "--pool_size=3",
                        f"--model_dir={model_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 replica(s)" in result.stdout
    assert files(os.path.join(model_dir, "samples")) == ["step_000001.png", "step_000002.png"]
    assert "saved_model.pb" in files(os.path.join(export_dir, "b2a", "1"))


@pytest.mark.slow
@pytest.mark.parametrize("script,args,message", [
    ("cyclegan_train.py", ["--dataset=cycle_gan/horse2zebra", "--data_dir=/nonexistent/tfds"],
     "not present in --data_dir=/nonexistent/tfds"),
    ("discogan_train.py", ["--dataset=edges2shoes"], "pass --data_dir"),
    ("discogan_train.py", ["--image_size=72"], "multiple of 16"),
    ("discogan_train.py", ["--image_size=32"], "--image_size=32 must be at least 64"),
    ("discogan_train.py", ["--update_interval=1"], "--update_interval=1 must be at least 2"),
    ("discogan_train.py", ["--model=cyclegan"], "unknown --model='cyclegan'; choose one of: discogan, "),
    ("discogan_train.py", ["--learning_rate=0"], "--learning_rate=0 must be above 0"),
    ("cyclegan_train.py", ["--epochs_constant=0", "--epochs_decay=0"], "--epochs_constant + --epochs_decay"),
    ("cyclegan_train.py", ["--lambda_identity=nan"], "--lambda_identity=nan must be a finite number"),
])
def test_bad_flags_give_one_line_errors(tmp_path, script, args, message):
    assert_one_line_error(run_recipe(script, f"--model_dir={tmp_path}", *args, timeout=120), message)
