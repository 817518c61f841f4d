"""hmm_fit.py end to end in subprocesses (slow): the casino fits, TF-only export, resume, CSV input, one-line
errors; and its support code (fast)."""

import numpy as np
import pytest

from tests.recipe_run import assert_one_line_error, run_recipe
from tests.tf_only import run_tf_only
from zoo.errors import ZooError
from zoo.recipe_support import hmm as support

SMALL = ["--num_sequences=4", "--min_length=60", "--max_length=120", "--train_steps=20", "--checkpoint_every=10",
         "--log_every=10", "--em_iterations=15", "--global_batch_size=4"]


def run(*args, env=None, timeout=600):
    return run_recipe("hmm_fit.py", *args, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("hmm") / "run"
    result = run(f"--model_dir={model_dir}", "--strategy=mirrored", *SMALL, env={"ZOO_CPU_REPLICAS": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, result


@pytest.mark.slow
def test_fits_compares_decodes_plots_and_exports(first_run):
    model_dir, result = first_run
    out = result.stdout
    assert "data: casino, 4 sequence(s)" in out and "2 replica(s)" in out and "Baum-Welch: " in out
    assert "| P(6 | loaded) | 0.5000 |" in out and "| parameter | true | EM | gradient |" in out
    line = next(l for l in out.splitlines() if l.startswith("Viterbi accuracy"))
    accuracies = [float(part.split()[-1]) for part in line.split(":")[1].split(",")]
    assert len(accuracies) == 3 and all(0.5 < a <= 1 for a in accuracies), line
    assert (model_dir / "posteriors.png").stat().st_size > 10_000
    # the export decodes as the layer with the same (deterministic) EM fit does
    series = support.casino(4, 60, 120, seed=0)
    hmm = support.new_hmm(series, 2, dtype="float64")
    hmm.set_parameters(**support.starting_point(series, 2, seed=0))
    hmm.baum_welch(series.x, mask=series.mask, iterations=15, tolerance=1e-6)
    paths = hmm.viterbi(series.x, mask=series.mask)[0].numpy()
    posteriors = hmm.posterior_marginals(series.x, mask=series.mask).numpy()
    got = run_tf_only(f"""
        import json, numpy as np, tensorflow as tf
        model = tf.saved_model.load({str(model_dir / "export" / "1")!r})
        x = tf.constant({series.x.tolist()}, tf.int32)
        mask = tf.constant({series.mask.tolist()})
        out = model.signatures["serving_default"](observations=x, mask=mask)
        print(json.dumps({{k: v.numpy().tolist() for k, v in out.items()}}))
    """)
    np.testing.assert_array_equal(got["states"], paths)
    np.testing.assert_allclose(got["posteriors"], posteriors, atol=1e-6)
    assert np.all(np.asarray(got["states"])[series.mask] == -1)


@pytest.mark.slow
def test_resumes(first_run):
    model_dir, _ = first_run
    result = run(f"--model_dir={model_dir}", *SMALL[:3], "--train_steps=30", *SMALL[4:], "--export_dir=")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from step 20" in result.stdout and "after 30 steps" in result.stdout


@pytest.mark.slow
def test_csv_gaussian_and_string_symbols(tmp_path):
    rng = np.random.default_rng(0)
    states = np.repeat(rng.integers(0, 2, 30), 10)
    values = np.where(states == 1, 5.0, 0.0) + rng.normal(size=300)
    lines = ["reading,label"] + [f"{'' if i % 37 == 5 else f'{v:.4f}'},{'hot' if s else 'cold'}"
                                 for i, (v, s) in enumerate(zip(values, states))]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    common = [f"--input_csv={tmp_path / 's.csv'}", "--train_steps=5", "--log_every=5", "--em_iterations=20",
              "--sequence_length=100", "--global_batch_size=2", "--export_dir="]
    result = run(f"--model_dir={tmp_path / 'g'}", "--column=reading", "--emission=gaussian", *common)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 sequence(s)" in result.stdout and "| mean state 1[0] |" in result.stdout
    result = run(f"--model_dir={tmp_path / 'c'}", "--column=label", *common)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "P(hot | state 0)" in result.stdout


@pytest.mark.slow
def test_bad_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n")
    (tmp_path / "ok.csv").write_text("a,b\n1,2\n3,4\n")
    np.save(tmp_path / "bad.npy", np.array([[0, 1, -2]]))
    d = f"--model_dir={tmp_path / 'run'}"
    assert_one_line_error(run(d, f"--input_csv={tmp_path / 'ragged.csv'}", "--column=a"), "ragged")
    assert_one_line_error(run(d, f"--input_csv={tmp_path / 'ok.csv'}", "--column=z"), "'z'")
    assert_one_line_error(run(d, f"--input_csv={tmp_path / 'ok.csv'}"), "--column")
    assert_one_line_error(run(d, f"--input_npy={tmp_path / 'bad.npy'}"), "non-negative integer symbols")
    assert_one_line_error(run(d, "--emission=gaussian"), "--input_csv or --input_npy")


def test_support_data_and_matching(tmp_path):
    series = support.casino(3, 10, 20, seed=1)
    assert series.x.shape[0] == 3 and series.mask.shape == series.x.shape
    assert np.all(series.states[series.mask] == -1) and np.all(series.states[~series.mask] >= 0)
    x, mask = support.chop(np.array([1.0, np.nan, 3.0, 4.0, 5.0]), 2)
    assert x.shape == (3, 2) and mask.tolist() == [[False, True], [False, False], [False, True]]
    params = {k: np.asarray(v) for k, v in support.CASINO.items()}
    swapped = support.permuted(params, [1, 0])
    assert support.match_states(swapped, params, "categorical") == [1, 0]
    np.testing.assert_allclose(support.permuted(swapped, [1, 0])["transition"], params["transition"])
    with pytest.raises(ZooError, match="no observed values"):
        support._as_series(np.full(4, np.nan), "gaussian", "x.npy", 2)
