"""long_term_dependency.py end to end in subprocesses (slow): CSV, plots, TF-only exports, resume, one-line
errors; and its support functions (fast)."""

import csv
import os

import pytest

from tests.recipe_run import assert_one_line_error, run_recipe
from tests.tf_only import run_tf_only
from zoo.errors import ZooError
from zoo.recipe_support import long_term

TINY = ["--train_steps=4", "--checkpoint_every=2", "--log_every=2", "--global_batch_size=8", "--eval_examples=16",
        "--param_budget=400", "--copy_length=2", "--num_symbols=3", "--gradient_examples=4"]


def run(*args, env=None, timeout=600):
    return run_recipe("long_term_dependency.py", *args, env=env, timeout=timeout)


def rows(model_dir):
    with open(model_dir / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_parse_lengths():
    assert long_term.parse_lengths(["50", " 10", "50"]) == [10, 50]
    for bad, fragment in ((["10", "x"], "not an integer"), (["1"], "at least 2"), ([], "empty")):
        with pytest.raises(ZooError, match=fragment):
            long_term.parse_lengths(bad)


def test_results_round_trip_finished_and_table(tmp_path):
    path = str(tmp_path / "results.csv")
    made = [dict(task="adding", model=m, T=t, params=100, hidden_size=5, steps=4, metric="mse", value=v,
                 baseline=1 / 6, loss=v, baseline_loss=1 / 6, seconds=1.0)
            for m, t, v in (("lstm", 20, 0.01), ("simple_rnn", 20, 0.17), ("simple_rnn", 10, 0.02))]
    long_term.write_results(path, made)
    read = long_term.read_results(path)
    assert [(r["model"], r["T"]) for r in read] == [("simple_rnn", "10"), ("simple_rnn", "20"), ("lstm", "20")]
    assert long_term.finished(read, "adding", "lstm", 20, 4)["value"] == "0.01"
    assert long_term.finished(read, "adding", "lstm", 20, 5) is None  # more steps asked: resume it
    table = long_term.format_table(read, ["adding"], ["simple_rnn", "lstm"], [10, 20])
    assert table[0].startswith("adding: eval mse (lower is better")
    assert table[-1] == "| 20 | 0.1700 | 0.0100 |" and table[-2] == "| 10 | 0.0200 | - |"


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("long_term") / "run"
    result = run(f"--model_dir={model_dir}", "--strategy=mirrored", "--models=simple_rnn,transformer",
                 "--lengths=6,3", *TINY, env={"ZOO_CPU_REPLICAS": "2"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return model_dir, result


@pytest.mark.slow
def test_sweep_writes_csv_plots_and_tf_only_exports(first_run):
    model_dir, result = first_run
    got = rows(model_dir)
    assert [(r["task"], r["model"], r["T"]) for r in got] == [
        (t, m, T) for t in ("adding", "copy") for m in ("simple_rnn", "transformer") for T in ("3", "6")]
    assert all(r["steps"] == "4" and abs(int(r["params"]) - 400) <= 40 for r in got)
    assert {r["metric"] for r in got if r["task"] == "copy"} == {"accuracy"}
    assert {round(float(r["baseline"]), 4) for r in got} == {0.1667, 0.3333}  # 1/6, 1/--num_symbols
    for name in ("adding_vs_length.png", "copy_vs_length.png", "gradient_norms_adding.png",
                 "gradient_norms_copy.png"):
        assert os.path.getsize(model_dir / name) > 1000, name
    assert "2 replica(s)" in result.stdout and "| T | simple_rnn" in result.stdout
    exports = model_dir / "export"
    assert sorted(os.listdir(exports)) == ["adding_simple_rnn", "adding_transformer", "copy_simple_rnn",
                                           "copy_transformer"]
    out = run_tf_only(f"""
        import json, tensorflow as tf
        adding = tf.saved_model.load({str(exports / "adding_transformer" / "1")!r}).signatures["serving_default"]
        copy = tf.saved_model.load({str(exports / "copy_simple_rnn" / "1")!r}).signatures["serving_default"]
        a = adding(inputs=tf.zeros([2, 9, 2]))["prediction"]
        c = copy(tokens=tf.constant([[1, 2, 0, 0, 0, 0, 4, 0, 0]], tf.int32))
        print(json.dumps({{"a": a.shape.as_list(), "logits": c["logits"].shape.as_list(),
                          "symbols": c["symbols"].shape.as_list()}}))
    """)
    assert out == {"a": [2], "logits": [1, 9, 5], "symbols": [1, 9]}


@pytest.mark.slow
def test_resume_keeps_finished_rows_and_resumes_the_unfinished_run(first_run):
    model_dir, _ = first_run
    before = {(r["task"], r["model"], r["T"]): r for r in rows(model_dir)}
    kept = [r for r in rows(model_dir) if (r["task"], r["model"], r["T"]) != ("adding", "simple_rnn", "6")]
    long_term.write_results(str(model_dir / "results.csv"), kept)  # as if killed before that row was written
    result = run(f"--model_dir={model_dir}", "--tasks=adding", "--models=simple_rnn", "--lengths=3,6,9",
                 "--export_dir=", *TINY)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "adding simple_rnn T=3: kept from results.csv" in result.stdout
    assert "adding simple_rnn T=6: resuming from ckpt-4" in result.stdout
    assert "adding simple_rnn T=9: " in result.stdout
    after = {(r["task"], r["model"], r["T"]): r for r in rows(model_dir)}
    assert len(after) == len(before) + 1 and ("adding", "simple_rnn", "9") in after
    for key, row in before.items():
        if key != ("adding", "simple_rnn", "6"):
            assert after[key] == row
    assert after[("adding", "simple_rnn", "6")]["value"] == before[("adding", "simple_rnn", "6")]["value"]


@pytest.mark.slow
def test_bad_inputs_are_one_line_errors(first_run, tmp_path):
    model_dir, _ = first_run
    assert_one_line_error(run(f"--model_dir={tmp_path / 'a'}", "--lengths=10,abc"), "--lengths", "'abc'")
    assert_one_line_error(run(f"--model_dir={tmp_path / 'a'}", "--lengths=1"), "at least 2")
    assert_one_line_error(run(f"--model_dir={tmp_path / 'a'}", "--tasks=sort"), "unknown --tasks='sort'")
    assert_one_line_error(run(f"--model_dir={tmp_path / 'b'}", "--models=lstm", "--tasks=copy",
                              "--param_budget=1000", "--num_symbols=1000", "--export_dir="),
                          "--param_budget=1000 is too small")
    assert_one_line_error(run(f"--model_dir={model_dir}", *TINY[:-3], "--copy_length=3", "--export_dir="),
                          "different config", "copy_length")
