"""zoo.flags: one declaration per hyper-parameter drives the flag, the model arguments and config.json; bad
input of every kind is one line `error: ...` and exit code 2."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from absl import flags

from zoo import flags as zoo_flags
from zoo.errors import ZooError
from zoo.flags import FREE, MODEL, Enum, Float, Int, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _spec(*extra, checks=()):
    fv = flags.FlagValues()
    spec = zoo_flags.declare(
        *zoo_flags.common(train_steps=7, global_batch_size=4, learning_rate=0.5, model_dir="runs/x"),
        Float("dropout", 0.1, "Dropout.", role=MODEL, at_least=0, below=1),
        Float("lambda_cycle", 10.0, "Cycle weight.", role=MODEL, arg=("lambda_a", "lambda_b"), at_least=0),
        Int("seq_length", 128, "Tokens.", at_least=8, at_most=512),
        Enum("config", "tiny", ("tiny", "base"), "Size."),
        List("methods", ["a"], "Methods.", role=FREE, choices=("a", "b")),
        *extra, checks=checks, flag_values=fv)
    return spec, fv


def _values(argv, **kw):
    spec, fv = _spec(**kw)
    fv(["prog", *argv])
    return spec.values()


def test_declared_once_is_flag_model_argument_and_config_key():
    spec, fv = _spec()
    assert fv["dropout"].default == 0.1 and fv["dropout"].help == "Dropout."
    fv(["prog", "--dropout=0.25", "--lambda_cycle=3", "--seq_length=64", "--train_steps=9"])
    hp = spec.values()
    assert hp.dropout == 0.25 and hp["seq_length"] == 64
    assert hp.model_args() == {"dropout": 0.25, "lambda_a": 3.0, "lambda_b": 3.0}
    assert hp.model_args(seed=5) == {"dropout": 0.25, "lambda_a": 3.0, "lambda_b": 3.0, "seed": 5}
    config = hp.run_config(vocab_sha1="abc")
    assert config == {"dropout": 0.25, "lambda_cycle": 3.0, "seq_length": 64, "config": "tiny",
                      "global_batch_size": 4, "learning_rate": 0.5, "mixed_precision": "float32", "seed": 0,
                      "vocab_sha1": "abc"}
    for free in ("train_steps", "methods", "model_dir", "strategy", "log_every", "steps_per_loop", "eval_every"):
        assert free not in config


def test_trainer_arguments_and_export_dir_default():
    hp = _values(["--steps_per_loop=5", "--eval_every=20", "--model_dir=/tmp/run"])
    assert hp.trainer_args() == dict(global_batch_size=4, train_steps=7, checkpoint_every=100, log_every=10,
                                     jit_compile=False, steps_per_loop=5, eval_every=20, eval_steps=None)
    assert hp.trainer_args()["eval_every"] == 20 and _values([]).trainer_args()["eval_every"] is None
    assert hp.export_dir == "/tmp/run/export"
    assert _values(["--export_dir="]).export_dir is None
    assert _values(["--export_dir=/srv/models/x"]).export_dir == "/srv/models/x"


@pytest.mark.parametrize("argv, message", [
    (["--learning_rate=nan"], "--learning_rate=nan must be a finite number"),
    (["--learning_rate=inf"], "--learning_rate=inf must be a finite number"),
    (["--learning_rate=0"], "--learning_rate=0 must be above 0"),
    (["--learning_rate=-1e-3"], "--learning_rate=-0.001 must be above 0"),
    (["--dropout=1"], "--dropout=1 must be at least 0 and below 1"),
    (["--dropout=-0.1"], "--dropout=-0.1 must be at least 0 and below 1"),
    (["--train_steps=0"], "--train_steps=0 must be at least 1"),
    (["--seq_length=1000"], "--seq_length=1000 must be at least 8 and at most 512"),
    (["--config=huge"], "unknown --config='huge'; choose one of: tiny, base"),
    (["--methods=a,c"], "unknown --methods='c'; choose one of: a, b"),
    (["--strategy=horovod"], "unknown --strategy='horovod'; choose one of: default, mirrored, multi_worker, tpu"),
    (["--mixed_precision=fp8"], "unknown --mixed_precision='fp8'"),
    (["--eval_every=-1"], "--eval_every=-1 must be at least 0"),
])
def test_validation_messages(argv, message):
    with pytest.raises(ZooError) as e:
        _values(argv)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_checks_between_values():
    checks = [lambda hp: None if hp.seq_length >= 2 * hp.train_steps else "--seq_length too short for the run"]
    assert _values(["--seq_length=14"], checks=checks).seq_length == 14
    with pytest.raises(ZooError, match="--seq_length too short"):
        _values(["--seq_length=13"], checks=checks)


def test_declaring_a_name_twice_is_a_bug():
    with pytest.raises(ValueError, match="declared twice"):
        _spec(Int("seq_length", 1, "again"))


def test_resume_with_a_changed_value_is_refused_and_free_values_may_change(tmp_path):
    """The values' run config is what Trainer writes to config.json and compares on resume."""
    import keras
    import numpy as np
    import tensorflow as tf

    from zoo.training.trainer import Trainer

    def train(argv):
        hp = _values([f"--model_dir={tmp_path}", *argv])
        strategy = tf.distribute.get_strategy()
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dropout(hp.dropout), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(hp.learning_rate / 100), loss="mse")
        x = np.ones((8, 3), np.float32)
        return Trainer(model, strategy=strategy, model_dir=hp.model_dir, verbose=False, config=hp.run_config(),
                       dataset_fn=lambda ctx: tf.data.Dataset.from_tensor_slices((x, x[:, :1])).repeat().batch(4),
                       **hp.trainer_args()).train()

    train(["--train_steps=2", "--dropout=0.2"])
    with open(tmp_path / "config.json") as f:
        saved = json.load(f)
    assert saved["dropout"] == 0.2 and saved["lambda_cycle"] == 10.0 and "train_steps" not in saved
    with pytest.raises(ZooError) as e:
        train(["--train_steps=3", "--dropout=0.3"])
    message = str(e.value)
    assert "\n" not in message and "dropout: 0.2 in the checkpoint, 0.3 now" in message
    # FREE values (the step target, logging, the loop) change freely: the run resumes to step 3.
    train(["--train_steps=3", "--dropout=0.2", "--log_every=1", "--steps_per_loop=2"])
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-3")


SCRIPT = textwrap.dedent("""
    from zoo import flags as zoo_flags
    from zoo.errors import ZooError
    from zoo.flags import Float, Int
    SPEC = zoo_flags.declare(*zoo_flags.common(train_steps=5, model_dir="m"),
                             Float("dropout", 0.1, "Dropout.", at_least=0, below=1),
                             checks=[lambda hp: hp.train_steps != 13 or "--train_steps=13 is unlucky"])
    def main(argv):
        hp = SPEC.values()
        if hp.seed == 7:
            raise ZooError("the recipe refused --seed=7")
        print("ran", hp.train_steps, hp.dropout)
    zoo_flags.run(main)
""")


def _run(*argv):
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, "-c", SCRIPT, *argv], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)


@pytest.mark.parametrize("argv, line", [
    (["--trian_steps=3"], "error: unknown flag --trian_steps; did you mean --train_steps? (--helpfull lists the "
                          "flags)"),
    (["--train_steps=abc"], "error: --train_steps=abc: invalid literal for int() with base 10: 'abc' (--helpfull "
                            "lists the flags)"),
    (["--jit_compile=maybe"], "error: --jit_compile=maybe:"),
    (["--dropout=1.5"], "error: --dropout=1.5 must be at least 0 and below 1"),
    (["--train_steps=0"], "error: --train_steps=0 must be at least 1"),
    (["--train_steps=13"], "error: --train_steps=13 is unlucky"),
    (["train_steps=3"], "error: unexpected argument 'train_steps=3'; flags are written --name=value"),
])
def test_command_line_errors_are_one_line_and_exit_2(argv, line):
    """Parsing and validation errors come before TensorFlow is imported: fast, and one line."""
    result = _run(*argv)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(line), result.stderr


@pytest.mark.slow
def test_recipe_error_is_one_line_and_a_cpu_run_prints_no_cuda_lines():
    """A ZooError from main is one line too, and TensorFlow's CUDA start-up lines are not shown on a machine
    without NVIDIA devices (they are, untouched, where /dev/nvidia* exists)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", SCRIPT, "--seed=7"], capture_output=True, text=True,
                            env={**env, "PYTHONPATH": ROOT}, cwd=ROOT, timeout=300)
    assert result.returncode == 2
    if not zoo_flags._gpu_devices():
        assert result.stderr == "error: the recipe refused --seed=7\n", result.stderr
    ok = subprocess.run([sys.executable, "-c", SCRIPT, "--train_steps=4"], capture_output=True, text=True,
                        env={**env, "PYTHONPATH": ROOT}, cwd=ROOT, timeout=300)
    assert ok.returncode == 0 and ok.stdout == "ran 4 0.1\n"
    if not zoo_flags._gpu_devices():
        for noise in ("cuInit", "cudart_stub", "cuda_platform", "absl::InitializeLog"):
            assert noise not in ok.stderr, ok.stderr


def test_directories_are_checked_before_any_work(tmp_path):
    from zoo.flags import check_directory

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ZooError, match=r"--export_dir=.*file is a file, not a directory"):
        check_directory("export_dir", str(blocker))
    with pytest.raises(ZooError, match=r"--model_dir=.*/file/run cannot be made: .*file is a file"):
        check_directory("model_dir", str(blocker / "run"))
    check_directory("output_dir", str(tmp_path / "new" / "deeper"))  # creatable: fine, and nothing is made
    assert not (tmp_path / "new").exists()
    check_directory("model_dir", "gs://bucket/run")  # remote: left to its file system
