"""Recipe flags: each hyper-parameter is declared once. That one declaration drives the absl flag, the
model's arguments and the resume check (`config.json`). `run` turns bad input into `error: ...`, exit 2.

    from zoo import flags as zoo_flags
    from zoo.flags import Float, Int, String, FREE, MODEL

    SPEC = zoo_flags.declare(
        *zoo_flags.common(train_steps=600, global_batch_size=32, learning_rate=1e-3, model_dir="runs/bert"),
        Float("dropout", 0.1, "Hidden and attention dropout.", role=MODEL, at_least=0, below=1),
        Int("seq_length", 128, "Tokens per example.", at_least=8, at_most=512),
        String("vocab_file", None, "A WordPiece vocabulary.", role=FREE),
        checks=[lambda hp: hp.seq_length > 8 or "--seq_length is too short"])

    def main(argv):
        hp = SPEC.values()                                  # parsed and validated
        model = create_model("bert_tiny", **hp.model_args())             # {"dropout": 0.1}
        Trainer(model, ..., config=hp.run_config(vocab_sha1=sha1), **hp.trainer_args())

    if __name__ == "__main__":
        zoo_flags.run(main)

Roles: `MATCH` (the default) values are part of the run: written to config.json and compared when a run
resumes. `MODEL` values are that too, and `hp.model_args()` also passes them to the model builder, under
`arg` (a name or several names) or the flag's own name. `FREE` values (paths, logging, the strategy,
`--train_steps`) may change between a run and its resumption.

The command-line contract: bad input of any kind (an unknown flag, a value that does not parse, a value out
of range, a `ZooError` raised by the recipe) prints one line `error: ...` on stderr and exits with code 2.
"""

import dataclasses
import difflib
import math
import os
import sys

from absl import app, flags, logging

from zoo.errors import ZooError
from zoo.paths import check_directory

MATCH, MODEL, FREE = "match", "model", "free"
_DEFINE = {"int": flags.DEFINE_integer, "float": flags.DEFINE_float, "bool": flags.DEFINE_bool,
           "string": flags.DEFINE_string, "enum": flags.DEFINE_string, "list": flags.DEFINE_list}
_SPECS = []  # every Spec declared on the global FLAGS, validated by `run` before `main`


@dataclasses.dataclass(frozen=True)
class Param:
    """One hyper-parameter: its flag (name, kind, default, help), its role and its valid values."""

    name: str
    kind: str  # int, float, bool, string, enum, list
    default: object
    help: str
    role: str = MATCH
    arg: object = None  # MODEL: the builder's argument name, or a tuple of names; default `name`
    choices: tuple = None  # enum (and list: every item)
    at_least: float = None
    at_most: float = None
    above: float = None
    below: float = None
    required: str = None  # why an empty value will not do (e.g. "checkpoints are written there")

    def __post_init__(self):
        if self.kind not in _DEFINE or self.role not in (MATCH, MODEL, FREE):
            raise ValueError(f"{self.name}: kind {self.kind!r} / role {self.role!r}")

    def check(self, value):
        """Returns a one-line complaint about `value`, or None when it is valid."""
        if self.required and value in (None, "", []):
            return f"--{self.name} is required: {self.required}"
        if value is None:
            return None if self.default is None else f"--{self.name} needs a value"
        if self.choices is not None:
            bad = [v for v in (value if self.kind == "list" else [value]) if v not in self.choices]
            if bad:
                return (f"unknown --{self.name}={','.join(map(str, bad))!r}; "
                        f"choose one of: {', '.join(map(str, self.choices))}")
        if self.kind not in ("int", "float"):
            return None
        if not math.isfinite(value):
            return f"--{self.name}={value} must be a finite number"
        for op, limit in ((float.__ge__, self.at_least), (float.__gt__, self.above), (float.__le__, self.at_most),
                          (float.__lt__, self.below)):
            if limit is not None and not op(float(value), float(limit)):
                return f"--{self.name}={value:g} must be {' and '.join(self._bounds())}"
        return None

    def _bounds(self):
        return [f"{text} {limit:g}" for text, limit in (("at least", self.at_least), ("above", self.above),
                                                          ("at most", self.at_most), ("below", self.below))
                if limit is not None]

    def model_names(self):
        if self.role != MODEL:
            return ()
        return (self.arg,) if isinstance(self.arg, str) else tuple(self.arg or (self.name,))


def _param(kind):
    def make(name, default, help, **kw):
        return Param(name, kind, default, help, **kw)
    make.__name__ = kind.capitalize()
    make.__doc__ = f"A {kind} hyper-parameter: `{make.__name__}(name, default, help, role=..., ...)` (see `Param`)."
    return make


Int, Float, Bool, String, List = (_param(k) for k in ("int", "float", "bool", "string", "list"))


def Enum(name, default, choices, help, **kw):
    """A string that must be one of `choices` (checked with the other values, so the error is one line)."""
    return Param(name, "enum", default, help, choices=tuple(choices), **kw)


def common(*, train_steps=1000, global_batch_size=32, learning_rate=1e-3, model_dir=None, checkpoint_every=100,
           log_every=10, export=True, only=None):
    """The parameters every recipe shares; the keyword arguments set the recipe's defaults.

    `--export_dir` defaults to `<model_dir>/export` (see `Values.export_dir`); `export=False` leaves it out.
    `only`: the names to keep, for a recipe to which the others do not apply.
    """
    from zoo.training.precision import POLICIES
    from zoo.training.strategy import CONNECT_TIMEOUT, STRATEGIES

    params = [
        Enum("strategy", "default", STRATEGIES, "Distribution strategy: default, mirrored (all local GPUs, or the "
             "CPU), multi_worker (reads TF_CONFIG) or tpu (needs --tpu).", role=FREE),
        String("tpu", None, "TPU name or grpc:// address for --strategy=tpu ('local' on a TPU VM).", role=FREE),
        Float("connect_timeout", CONNECT_TIMEOUT, "Seconds to wait for the other workers (multi_worker) or the TPU before "
              "stopping with the unreachable addresses.", role=FREE, above=0),
        String("model_dir", model_dir, "Checkpoints, config.json and TensorBoard logs; a run resumes from here.",
               role=FREE, required="checkpoints, config.json and logs are written there"),
        String("data_dir", None, "tensorflow-datasets directory holding prepared datasets.", role=FREE),
        Bool("download", False, "Let tensorflow-datasets download and prepare a missing dataset.", role=FREE),
        Enum("mixed_precision", "float32", POLICIES, "Keras dtype policy: float32, mixed_float16 or mixed_bfloat16."),
        Bool("jit_compile", False, "Compile the train step with XLA.", role=FREE),
        Int("train_steps", train_steps, "Global steps to train (a resumed run continues up to this).", role=FREE,
            at_least=1),
        Int("global_batch_size", global_batch_size, "Examples per step over all replicas.", at_least=1),
        Float("learning_rate", learning_rate, "Peak learning rate.", above=0),
        Int("checkpoint_every", checkpoint_every, "Steps between checkpoints.", role=FREE, at_least=1),
        Int("log_every", log_every, "Steps between logged metrics.", role=FREE, at_least=1),
        Int("steps_per_loop", 1, "Train steps per host call, inside one tf.function (checkpoint, log and eval "
            "intervals are kept).", role=FREE, at_least=1),
        Int("eval_every", 0, "Steps between evaluations on held-out data (0: only at the end), for recipes that "
            "have it.", role=FREE, at_least=0),
        Int("eval_steps", 0, "Batches per evaluation (0: the whole held-out set).", role=FREE, at_least=0),
        Int("seed", 0, "Random seed for initialisation and data order.", at_least=0),
    ]
    if export:
        params.insert(3, String("export_dir", None, "SavedModel base path for TF Serving (<export_dir>/<version>/); "
                                "default <model_dir>/export. Empty: no export.", role=FREE))
    return [p for p in params if only is None or p.name in only]


class Spec:
    """A recipe's hyper-parameters, declared once (see `declare`)."""

    def __init__(self, params, checks=(), flag_values=None):
        self.params = {}
        for p in params:
            if p.name in self.params:
                raise ValueError(f"hyper-parameter {p.name!r} is declared twice")
            self.params[p.name] = p
        self.checks = list(checks)
        self.flag_values = flags.FLAGS if flag_values is None else flag_values
        for p in self.params.values():
            _DEFINE[p.kind](p.name, p.default, p.help, flag_values=self.flag_values)

    def validate(self):
        """Raises `ZooError` with a one-line message for the first invalid value; returns the `Values`."""
        values = Values(self, {name: self.flag_values[name].value for name in self.params})
        for p in self.params.values():
            problem = p.check(values[p.name])
            if problem:
                raise ZooError(problem)
        for check in self.checks:
            problem = check(values)
            if isinstance(problem, str):
                raise ZooError(problem)
        return values

    values = validate


def declare(*params, checks=(), flag_values=None):
    """Defines one absl flag per `Param` and returns the `Spec`; `run` validates it before `main`.

    `checks`: callables `check(values)` for rules between values; each returns a one-line complaint (a
    string) or None, or raises `ZooError`.
    """
    spec = Spec(params, checks, flag_values)
    if spec.flag_values is flags.FLAGS:
        _SPECS.append(spec)
    return spec


class Values:
    """The parsed, validated values: `hp.name` or `hp["name"]`, plus what they drive."""

    def __init__(self, spec, values):
        self._spec, self._values = spec, values

    def __getattr__(self, name):
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name):
        return self._values[name]

    def model_args(self, **extra):
        """The MODEL values under the builder's argument names, plus `extra`."""
        args = {n: self._values[p.name] for p in self._spec.params.values() for n in p.model_names()}
        return {**args, **extra}

    def run_config(self, **extra):
        """What must match to resume (config.json): every MATCH and MODEL value by flag name, plus `extra`."""
        config = {name: self._values[name] for name, p in self._spec.params.items() if p.role != FREE}
        return {**config, **extra}

    @property
    def export_dir(self):
        """`--export_dir`, defaulting to `<model_dir>/export`; None when exports are off (`--export_dir=`)."""
        value = self._values.get("export_dir")
        if value is None and self._values.get("model_dir"):
            return os.path.join(self._values["model_dir"], "export")
        return value or None

    def trainer_args(self):
        """The `Trainer` keyword arguments that come from the common flags."""
        v = self._values
        return dict(global_batch_size=v["global_batch_size"], train_steps=v["train_steps"],
                    checkpoint_every=v["checkpoint_every"], log_every=v["log_every"], jit_compile=v["jit_compile"],
                    steps_per_loop=v["steps_per_loop"], eval_every=v["eval_every"] or None,
                    eval_steps=v["eval_steps"] or None)


# === Running a recipe ===


def given(name):
    """True when the flag `name` was given on the command line (not left at its default): recipes fill the
    flags not given from a paper's table."""
    return flags.FLAGS[name].present


def fail(message):
    """Prints `error: <message>` as one line on stderr and exits with code 2, skipping TensorFlow's slow,
    noisy teardown of half-built state."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(2)


def parse(argv, flag_values=None):
    """absl's flag parsing under the one-line contract: unknown flags, unparsable values, stray positional
    arguments and invalid values of every declared `Spec` are `error: ...`, exit 2."""
    flag_values = flags.FLAGS if flag_values is None else flag_values
    try:
        rest = flag_values(argv)
    except flags.UnrecognizedFlagError as e:
        declared = [name for spec in _SPECS if spec.flag_values is flag_values for name in spec.params]
        close = difflib.get_close_matches(e.flagname, declared or list(flag_values), n=1, cutoff=0.7)
        fail(f"unknown flag --{e.flagname}" + (f"; did you mean --{close[0]}?" if close else "")
             + " (--helpfull lists the flags)")
    except flags.Error as e:
        fail(f"{str(e).removeprefix('flag ')} (--helpfull lists the flags)")
    if len(rest) > 1:
        fail(f"unexpected argument {rest[1]!r}; flags are written --name=value (--helpfull lists them)")
    try:
        for spec in _SPECS:
            if spec.flag_values is flag_values:
                values = spec.validate()
                for name in DIRECTORY_FLAGS:
                    if name in spec.params:
                        check_directory(name, getattr(values, name))
    except ZooError as e:
        fail(e)
    return rest


DIRECTORY_FLAGS = ("model_dir", "export_dir", "output_dir")  # where recipes write: checked before any work



def _main_wrapper(main):
    def wrapped(argv):
        logging.set_verbosity(logging.WARNING)
        try:
            quiet_tensorflow_import()
            return main(argv)
        except ZooError as e:
            fail(e)
    return wrapped


def run(main):
    """`absl.app.run(main)` under the one-line contract (see `parse`): a `ZooError` raised by `main` is
    printed as `error: ...` and the process exits with code 2. TensorFlow is imported first, quietly on a
    machine without NVIDIA devices (see `quiet_tensorflow_import`)."""
    app.run(_main_wrapper(main), flags_parser=parse)


# Start-up lines TensorFlow prints on every run on a machine without a GPU (CUDA stubs, cuInit, CPU features).
_NOISE = ("All log messages before absl::InitializeLog()", "cudart_stub.cc", "cuda_platform.cc", "cuda_dnn.cc",
          "cuda_fft.cc", "cuda_blas.cc", "cuda_executor.cc", "gpu_device.cc", "port.cc", "cpu_feature_guard.cc",
          "To enable the following instructions", "computation placer already registered",
          "Unable to register cu")


def quiet_tensorflow_import():
    """Imports TensorFlow (and looks for GPUs, which tries cuInit) without printing its CUDA start-up lines,
    on machines without NVIDIA devices. Other lines are passed on; nothing is hidden when a GPU may be present
    (/dev/nvidia* exists) or when TF_CPP_MIN_LOG_LEVEL asks for INFO or WARNING lines."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or _gpu_devices() or os.environ["TF_CPP_MIN_LOG_LEVEL"] in ("0", "1"):
        import tensorflow as tf  # noqa: F401
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not any(noise in line for noise in _NOISE)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def _gpu_devices():
    import glob

    return glob.glob("/dev/nvidia*")
