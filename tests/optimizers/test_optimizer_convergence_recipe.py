"""recipes/optimizer_convergence.py end to end, in a subprocess, with reduced iterations."""

import csv
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE = os.path.join(ROOT, "recipes", "optimizer_convergence.py")
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "CUDA_VISIBLE_DEVICES": ""}

pytestmark = pytest.mark.slow


def run(*args):
    return subprocess.run([sys.executable, RECIPE, *args], capture_output=True, text=True, cwd=ROOT, env=ENV,
                          timeout=600)


def test_small_study_writes_csv_plot_and_table(tmp_path):
    result = run(f"--output_dir={tmp_path}", "--problems=quadratic_100,saddle,autoencoder",
                 "--methods=gd,heavy_ball,ogm,sgd_momentum,newton,sfn", "--train_steps=40", "--second_order_steps=12",
                 "--krylov_dim=4", "--global_batch_size=64")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    with open(tmp_path / "convergence.csv") as f:
        rows = list(csv.DictReader(f))
    runs = {(r["problem"], r["method"]) for r in rows}
    assert ("autoencoder", "msgd_then_sfn") in runs and ("quadratic_100", "newton") in runs
    assert ("autoencoder", "newton") not in runs  # exact Newton only on small problems
    assert (tmp_path / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = {tuple(line.split()[:2]): line.split()[2] for line in result.stdout.splitlines() if len(line.split()) == 4}
    assert table[("quadratic_100", "newton")] == "1"  # exact on a quadratic
    assert table[("saddle", "newton")].startswith(">")  # converges to the saddle, never escapes
    assert table[("saddle", "sfn")] == "10"  # |y| doubles per step from 1e-3
    assert table[("quadratic_100", "heavy_ball")] == ">40"
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_flag_is_one_line_and_exit_code_2(tmp_path):
    result = run(f"--output_dir={tmp_path}", "--problems=quadratic_100,banana")
    assert result.returncode == 2
    assert result.stderr == (
        "error: unknown --problems='banana'; choose one of: quadratic_100, quadratic_1000, nesterov_worst, "
        "rosenbrock, saddle, monkey_saddle, autoencoder\n")
