"""kalman_fit.py end to end in subprocesses (slow): fit under 2 replicas, TF-only export equal to the layer,
resume, a CSV run, one-line errors; and its support code in-process."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.recipe_run import assert_one_line_error, run_recipe
from tests.tf_only import run_tf_only
from zoo.models.sequence import LikelihoodFit
from zoo.recipe_support import kalman as support

TINY = ["--train_steps=4", "--log_every=2", "--checkpoint_every=2", "--num_steps=40", "--forecast_steps=3"]


def run(*args, env=None, timeout=600):
    return run_recipe("kalman_fit.py", *args, env=env, timeout=timeout)


def restored_layer(model_dir, step):
    """The layer as the recipe built it for the TINY default data, with the weights of checkpoint `step`."""
    layer = support.build_layer("constant_velocity", support.generated_series(40, 0.1, seed=0).values)
    model = LikelihoodFit(layer)
    status = tf.train.Checkpoint(model=model).restore(os.path.join(model_dir, f"ckpt-{step}"))
    status.expect_partial().assert_existing_objects_matched()
    return layer


@pytest.mark.slow
def test_fit_model_reduces_the_loss_and_serving_matches_the_layer():
    series = support.generated_series(40, 0.2, seed=1)
    layer = support.build_layer("constant_velocity", series.values)
    model = LikelihoodFit(layer)
    model.compile(optimizer=keras.optimizers.Adam(0.1))
    batch = next(iter(support.dataset_fn(series, 1)(tf.distribute.InputContext())))
    step = tf.function(model.train_step)
    losses = [float(step(batch)["loss"]) for _ in range(3)]
    assert losses[-1] < losses[0]
    observations, mask = batch["x"], batch["mask"]
    serve = support.serving_endpoints(layer, 2)["serving_default"][0]
    served = serve(observations + tf.where(mask[..., None], np.nan, 0.0), mask)  # NaN at missing readings is fine
    want = layer.filter(observations, mask=mask)
    np.testing.assert_allclose(served["filtered_means"], want["filtered_means"], rtol=1e-6)
    np.testing.assert_allclose(served["log_likelihood"], np.sum(want["log_likelihoods"], 1), rtol=1e-6)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("kalman") / "run"
    result = run(f"--model_dir={model_dir}", "--strategy=mirrored", "--global_batch_size=2", *TINY,
                 env={"ZOO_CPU_REPLICAS": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, result


@pytest.mark.slow
def test_fits_plots_and_exports_a_filter_loadable_without_keras(first_run):
    model_dir, result = first_run
    out = result.stdout
    assert "40 steps" in out and "2 replica(s)" in out
    assert "fitted transition noise variances" in out and "true transition noise variances: [0.05, 0.01]" in out
    assert "forecast of the next 3 steps" in out
    assert os.path.getsize(model_dir / "kalman_fit.png") > 10_000
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(2, 12, 1)), 1).astype(np.float32)
    mask = rng.random((2, 12)) < 0.3
    got = run_tf_only(f"""
        import json, numpy as np, tensorflow as tf
        model = tf.saved_model.load({str(model_dir / "export" / "1")!r})
        x, mask = tf.constant({x.tolist()!r}), tf.constant({mask.tolist()!r})
        out = model.signatures["serving_default"](observations=x, mask=mask)
        ahead = model.signatures["forecast"](observations=x, mask=mask)
        print(json.dumps({{k: v.numpy().tolist() for k, v in out.items()}} |
                         {{"forecast_" + k: v.numpy().tolist() for k, v in ahead.items()}}))
    """)
    layer = restored_layer(str(model_dir), 4)
    want = layer.filter(x, mask=mask)
    np.testing.assert_allclose(got["filtered_means"], want["filtered_means"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["filtered_variances"], np.diagonal(want["filtered_covs"], 0, -2, -1), rtol=1e-5)
    np.testing.assert_allclose(got["log_likelihood"], np.sum(want["log_likelihoods"], 1), rtol=1e-5)
    ahead = layer.forecast(x, 3, mask=mask)
    np.testing.assert_allclose(got["forecast_observation_means"], ahead["observation_means"], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_resumes(first_run):
    model_dir, _ = first_run
    result = run(f"--model_dir={model_dir}", *TINY[1:], "--train_steps=6", "--global_batch_size=2", "--export_dir=")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from step 4" in result.stdout
    assert_one_line_error(run(f"--model_dir={model_dir}", *TINY, "--model=local_level"), "different config")


@pytest.mark.slow
def test_csv_run_and_bad_csvs_are_one_line_errors(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("t,level,note\n" + "".join(f"{t},{'' if t % 7 == 3 else 10 + 0.1 * t},x\n" for t in range(30)))
    result = run(f"--model_dir={tmp_path / 'run'}", f"--input_csv={good}", "--column=level", "--time_column=t",
                 "--model=local_level", "--train_steps=2", "--forecast_steps=0", "--export_dir=")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "column 'level': 30 steps, 4 missing; model local_level" in result.stdout
    empty, ragged = tmp_path / "empty.csv", tmp_path / "ragged.csv"
    empty.write_text("")
    ragged.write_text("t,level\n1,2\n2,3,4\n")
    common = [f"--model_dir={tmp_path / 'bad'}"]
    assert_one_line_error(run(*common, f"--input_csv={empty}", "--column=level"), "is empty")
    assert_one_line_error(run(*common, f"--input_csv={ragged}", "--column=level"), "line 3", "ragged")
    assert_one_line_error(run(*common, f"--input_csv={good}", "--column=speed"), "no column 'speed'", "'level'")
    assert_one_line_error(run(*common, f"--input_csv={good}", "--column=note"), "'x' is not a number")
    assert_one_line_error(run(*common, f"--input_csv={good}"), "give --column")


def test_one_reading_series_is_filtered_smoothed_and_plotted(tmp_path):
    """A CSV with a single reading (after empty cells) works: the smoother of one step is the filter."""
    path = tmp_path / "one.csv"
    path.write_text("t,level\n0,\n1,\n2,5.0\n")
    series = support.csv_series(path, "level", "t")
    assert series.values.shape == (1, 1) and list(series.times) == [2.0]
    layer = support.build_layer("local_level", series.values)
    results = support.analyse(layer, series, 3)
    np.testing.assert_allclose(results["smoothed"][0], results["filtered"][0])
    np.testing.assert_allclose(results["smoothed"][1], results["filtered"][1])
    assert np.all(np.isfinite(results["forecast"][1])) and np.all(results["smoothed"][1] > 0)
    support.plot(tmp_path / "one.png", series, results)
    assert (tmp_path / "one.png").stat().st_size > 1000
