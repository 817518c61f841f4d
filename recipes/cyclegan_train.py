"""CycleGAN (Zhu et al., 2017) on two unpaired image domains, under any tf.distribute strategy.

    python recipes/cyclegan_train.py                      # built-in synthetic discs <-> squares, a few minutes
    python recipes/cyclegan_train.py --strategy=mirrored --model_dir=runs/cyclegan
    python recipes/cyclegan_train.py --dataset=cycle_gan/horse2zebra --data_dir=~/tensorflow_datasets \
        --model=cyclegan --image_size=256 --load_size=286 --filters=64 --global_batch_size=1 \
        --train_steps=266800                               # the paper: 200 epochs of max(|A|, |B|) = 1334 images

The learning rate is constant for --epochs_constant epochs, then decays linearly to 0 over --epochs_decay
(100 + 100 in the paper), an epoch being max(|A|, |B|) / batch steps. The default run uses 32x32 images,
--filters=16 and 6 blocks to fit a CPU; the presets (`cyclegan`: 9 blocks at 256, `cyclegan_6blocks`: 6 at
128) with --filters=64 are the paper's nets. Sample sheets (rows: A, A->B, A->B->A, B, B->A, B->A->B on
fixed test images) go to <model_dir>/samples/ and TensorBoard; the generators are exported to
<export_dir>/a2b and <export_dir>/b2a (TF Serving layout) with `serving_default` (float images in [0, 1])
and `translate_bytes` (JPEG/PNG bytes in, PNG bytes out).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from zoo import flags as zoo_flags  # noqa: E402

zoo_flags.define_common_flags(train_steps=600, global_batch_size=4, learning_rate=2e-4,
                              model_dir="runs/cyclegan", export_dir="runs/cyclegan/export",
                              checkpoint_every=200, log_every=50)
flags.DEFINE_string("model", "cyclegan_6blocks", "cyclegan (9 residual blocks) or cyclegan_6blocks.")
flags.DEFINE_string("dataset", "synthetic",
                    "synthetic, cycle_gan/<config> (e.g. cycle_gan/horse2zebra), celeb_a, edges2shoes, "
                    "edges2handbags or handbags2shoes.")
flags.DEFINE_integer("image_size", 32, "Training crop side (256 in the paper; a multiple of 4).")
flags.DEFINE_integer("load_size", None, "Resize to this side, then crop --image_size (286 in the paper).")
flags.DEFINE_bool("flip", True, "Random horizontal flips, as the reference.")
flags.DEFINE_integer("filters", 16, "Channels of the first conv of the generators and discriminators (64).")
flags.DEFINE_float("lambda_cycle", 10.0, "Cycle-consistency weight (lambda_A = lambda_B).")
flags.DEFINE_float("lambda_identity", 0.5, "Identity-loss weight relative to --lambda_cycle (0: off).")
flags.DEFINE_integer("pool_size", 50, "Past fakes kept for the discriminators (0: no pool).")
flags.DEFINE_integer("epochs_constant", 100, "Epochs at the initial learning rate.")
flags.DEFINE_integer("epochs_decay", 100, "Epochs of linear decay to 0 after them.")
flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch; default max(|A|, |B|) / --global_batch_size.")
flags.DEFINE_string("style_a", None, "celeb_a: attribute of domain A (e.g. Male, Blond_Hair).")
flags.DEFINE_string("style_b", None, "celeb_a: attribute of domain B (default: not style_a).")
flags.DEFINE_integer("num_samples", 8, "Test images per domain in the sample sheets.")
flags.DEFINE_integer("sample_every", 200, "Steps between sample sheets (checked every --log_every steps; one is "
                                          "always written at the end).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import keras

    from zoo import create_model
    from zoo.data import images
    from zoo.errors import ZooError
    from gan_common import train_and_export
    from zoo.training import precision, strategy as strategies
    from zoo.training.schedules import LinearWarmupDecay

    if not FLAGS.model.startswith("cyclegan"):
        raise ZooError(f"--model={FLAGS.model!r} is not a CycleGAN; choose cyclegan or cyclegan_6blocks")
    precision.set_policy(FLAGS.mixed_precision)
    strategy = strategies.from_flag(FLAGS.strategy, FLAGS.tpu)
    keras.utils.set_random_seed(FLAGS.seed)
    chief = strategies.is_chief(strategy)

    data = dict(data_dir=FLAGS.data_dir, download=FLAGS.download, seed=FLAGS.seed, load_size=FLAGS.load_size)
    if FLAGS.dataset == "celeb_a":
        data.update(style_a=FLAGS.style_a, style_b=FLAGS.style_b)
    if chief:
        print(f"{FLAGS.model} on {FLAGS.dataset}, {strategy.num_replicas_in_sync} replica(s)", flush=True)
    sample_a, sample_b = images.sample_images(FLAGS.dataset, FLAGS.image_size, FLAGS.num_samples, **data)
    steps_per_epoch = FLAGS.steps_per_epoch
    if not steps_per_epoch:
        largest = max(images.domain_sizes(FLAGS.dataset, "train", **data))
        steps_per_epoch = max(1, largest // FLAGS.global_batch_size)

    def dataset_fn(ctx):
        ds_a, ds_b = images.load_domains(FLAGS.dataset, "train", FLAGS.image_size, flip=FLAGS.flip,
                                         input_context=ctx, **data)
        return images.unpaired_batches(ds_a, ds_b, ctx.get_per_replica_batch_size(FLAGS.global_batch_size))

    with strategy.scope():
        model = create_model(
            FLAGS.model, image_size=FLAGS.image_size, filters=FLAGS.filters, discriminator_filters=FLAGS.filters,
            lambda_a=FLAGS.lambda_cycle, lambda_b=FLAGS.lambda_cycle, lambda_identity=FLAGS.lambda_identity,
            pool_size=FLAGS.pool_size, seed=FLAGS.seed)
        schedule = LinearWarmupDecay(
            FLAGS.learning_rate, total_steps=(FLAGS.epochs_constant + FLAGS.epochs_decay) * steps_per_epoch,
            hold_steps=FLAGS.epochs_constant * steps_per_epoch)

        def adam():  # the reference's Adam(lr, betas=(0.5, 0.999)); eps as PyTorch's
            return keras.optimizers.Adam(schedule, beta_1=0.5, beta_2=0.999, epsilon=1e-8)

        model.compile(generator_optimizer=adam(), discriminator_optimizer=adam())

    config = {flag: FLAGS[flag].value for flag in (
        "model", "dataset", "image_size", "load_size", "flip", "filters", "lambda_cycle", "lambda_identity",
        "pool_size", "epochs_constant", "epochs_decay", "style_a", "style_b", "global_batch_size",
        "learning_rate", "mixed_precision", "seed")}
    config["steps_per_epoch"] = steps_per_epoch
    train_and_export(model, strategy, FLAGS, dataset_fn, config, sample_a, sample_b)

if __name__ == "__main__":
    zoo_flags.run(main)
