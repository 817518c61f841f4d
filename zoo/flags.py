"""absl flags shared by every recipe, and `run`, which turns user errors into one-line messages.

    from zoo import flags as zoo_flags
    zoo_flags.define_common_flags(train_steps=200, global_batch_size=32, learning_rate=1e-3)
    flags.DEFINE_integer("seq_length", 128, "...")   # recipe-specific flags
    def main(argv): ...
    if __name__ == "__main__":
        zoo_flags.run(main)
"""

import os
import sys

from absl import app, flags, logging

from zoo.errors import ZooError


def define_common_flags(*, train_steps=1000, global_batch_size=32, learning_rate=1e-3, model_dir=None,
                        export_dir=None, checkpoint_every=100, log_every=10):
    """Defines the flags every recipe shares; the keyword arguments set the recipe's defaults."""
    flags.DEFINE_string("strategy", "default",
                        "Distribution strategy: default, mirrored, multi_worker (reads TF_CONFIG) or tpu (needs --tpu).")
    flags.DEFINE_string("tpu", None, "TPU name or grpc:// address for --strategy=tpu ('local' on a TPU VM).")
    flags.DEFINE_string("model_dir", model_dir, "Checkpoints, config.json and TensorBoard logs; a run resumes from here.")
    flags.DEFINE_string("export_dir", export_dir,
                        "SavedModel base path for TF Serving (<export_dir>/<version>/). Empty: no export.")
    flags.DEFINE_string("data_dir", None, "tensorflow-datasets directory holding prepared datasets.")
    flags.DEFINE_bool("download", False, "Let tensorflow-datasets download and prepare a missing dataset.")
    flags.DEFINE_string("mixed_precision", "float32", "Keras dtype policy: float32, mixed_float16 or mixed_bfloat16.")
    flags.DEFINE_bool("jit_compile", False, "Compile the train step with XLA.")
    flags.DEFINE_integer("train_steps", train_steps, "Global steps to train (a resumed run continues up to this).")
    flags.DEFINE_integer("global_batch_size", global_batch_size, "Examples per step over all replicas.")
    flags.DEFINE_float("learning_rate", learning_rate, "Peak learning rate.")
    flags.DEFINE_integer("checkpoint_every", checkpoint_every, "Steps between checkpoints.")
    flags.DEFINE_integer("log_every", log_every, "Steps between logged metrics.")
    flags.DEFINE_integer("seed", 0, "Random seed for initialisation and data order.")


def _main_wrapper(main):
    def wrapped(argv):
        logging.set_verbosity(logging.WARNING)
        try:
            return main(argv)
        except ZooError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            os._exit(2)  # skip TensorFlow's slow, noisy teardown of half-built state
    return wrapped


def run(main):
    """`absl.app.run(main)`, printing a `ZooError` as one line `error: ...` and exiting with code 2."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(_main_wrapper(main))
