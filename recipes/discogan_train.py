"""DiscoGAN (Kim et al., 2017) on two unpaired image domains, under any tf.distribute strategy.

    python recipes/discogan_train.py                      # built-in synthetic discs <-> squares, a few minutes
    python recipes/discogan_train.py --strategy=mirrored --model_dir=runs/discogan
    python recipes/discogan_train.py --dataset=edges2shoes --data_dir=/data/pix2pix --filters=64 \
        --global_batch_size=500 --train_steps=20000     # the official script's settings (20000 x 3 iterations)
    python recipes/discogan_train.py --dataset=celeb_a --style_a=Male --data_dir=~/tensorflow_datasets

One step is `--update_interval` (3) official iterations: a discriminator step, then generator steps, each on
a fresh batch. The default run uses --filters=16 to fit a CPU; --filters=64 is the paper's size. Sample
sheets (rows: A, A->B, A->B->A, B, B->A, B->A->B on fixed test images) go to <model_dir>/samples/ and
TensorBoard; the generators are exported to <export_dir>/a2b and <export_dir>/b2a (TF Serving layout) with
`serving_default` (float images in [0, 1]) and `translate_bytes` (JPEG/PNG bytes in, PNG bytes out).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from zoo import flags as zoo_flags  # noqa: E402

zoo_flags.define_common_flags(train_steps=300, global_batch_size=32, learning_rate=2e-4,
                              model_dir="runs/discogan", export_dir="runs/discogan/export",
                              checkpoint_every=100, log_every=25)
flags.DEFINE_string("model", "discogan",
                    "discogan, discogan_bottleneck (the angle tasks' generator), discogan_recongan or discogan_gan.")
flags.DEFINE_string("dataset", "synthetic",
                    "synthetic, celeb_a, edges2shoes, edges2handbags, handbags2shoes or cycle_gan/<config>.")
flags.DEFINE_integer("image_size", 64, "Image side (64 in the paper; a multiple of 16, at least 64).")
flags.DEFINE_integer("filters", 16, "Channels of the first conv of every net (64 in the paper).")
flags.DEFINE_enum("loss", "code", ["code", "paper"],
                  "code: the official code's GAN + feature matching + reconstruction with the rate curriculum; "
                  "paper: GAN + reconstruction.")
flags.DEFINE_float("gan_weight", 0.1, "Weight of the GAN term in the code loss.")
flags.DEFINE_float("feature_matching_weight", 0.9, "Weight of the feature-matching term in the code loss (0: off).")
flags.DEFINE_float("starting_rate", 0.01, "Reconstruction rate during the curriculum.")
flags.DEFINE_float("default_rate", 0.5, "Reconstruction rate after the curriculum.")
flags.DEFINE_integer("gan_curriculum", 10000, "Iterations of the curriculum (steps x update_interval).")
flags.DEFINE_integer("update_interval", 3, "Iterations per discriminator step.")
flags.DEFINE_float("weight_decay", 1e-5, "PyTorch Adam's coupled L2 weight decay.")
flags.DEFINE_string("style_a", None, "celeb_a: attribute of domain A (e.g. Male, Blond_Hair).")
flags.DEFINE_string("style_b", None, "celeb_a: attribute of domain B (default: not style_a).")
flags.DEFINE_string("constraint", None, "celeb_a: keep only images with this attribute == --constraint_type.")
flags.DEFINE_integer("constraint_type", 1, "celeb_a: 1 or -1, see --constraint.")
flags.DEFINE_integer("num_samples", 8, "Test images per domain in the sample sheets.")
flags.DEFINE_integer("sample_every", 100, "Steps between sample sheets (checked every --log_every steps; one is "
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

    if not FLAGS.model.startswith("discogan"):
        raise ZooError(f"--model={FLAGS.model!r} is not a DiscoGAN; choose discogan, discogan_bottleneck, "
                       "discogan_recongan or discogan_gan")
    precision.set_policy(FLAGS.mixed_precision)
    strategy = strategies.from_flag(FLAGS.strategy, FLAGS.tpu)
    keras.utils.set_random_seed(FLAGS.seed)
    chief = strategies.is_chief(strategy)

    data = dict(data_dir=FLAGS.data_dir, download=FLAGS.download, seed=FLAGS.seed)
    if FLAGS.dataset == "celeb_a":
        data.update(style_a=FLAGS.style_a, style_b=FLAGS.style_b, constraint=FLAGS.constraint,
                    constraint_type=FLAGS.constraint_type)
    if chief:
        print(f"{FLAGS.model} on {FLAGS.dataset}, {strategy.num_replicas_in_sync} replica(s)", flush=True)
    sample_a, sample_b = images.sample_images(FLAGS.dataset, FLAGS.image_size, FLAGS.num_samples, **data)

    def dataset_fn(ctx):
        ds_a, ds_b = images.load_domains(FLAGS.dataset, "train", FLAGS.image_size, input_context=ctx, **data)
        batch = ctx.get_per_replica_batch_size(FLAGS.global_batch_size)
        return images.unpaired_batches(ds_a, ds_b, batch, group=FLAGS.update_interval)

    with strategy.scope():
        model = create_model(
            FLAGS.model, image_size=FLAGS.image_size, filters=FLAGS.filters, loss=FLAGS.loss,
            gan_weight=FLAGS.gan_weight, feature_matching_weight=FLAGS.feature_matching_weight,
            starting_rate=FLAGS.starting_rate, default_rate=FLAGS.default_rate,
            gan_curriculum=FLAGS.gan_curriculum, update_interval=FLAGS.update_interval,
            weight_decay=FLAGS.weight_decay)

        def adam():  # the reference's Adam(lr, betas=(0.5, 0.999)); eps as PyTorch's
            return keras.optimizers.Adam(FLAGS.learning_rate, beta_1=0.5, beta_2=0.999, epsilon=1e-8)

        model.compile(generator_optimizer=adam(), discriminator_optimizer=adam())

    config = {flag: FLAGS[flag].value for flag in (
        "model", "dataset", "image_size", "filters", "loss", "gan_weight", "feature_matching_weight",
        "starting_rate", "default_rate", "gan_curriculum", "update_interval", "weight_decay", "style_a", "style_b",
        "constraint", "constraint_type", "global_batch_size", "learning_rate", "mixed_precision", "seed")}
    train_and_export(model, strategy, FLAGS, dataset_fn, config, sample_a, sample_b)

if __name__ == "__main__":
    zoo_flags.run(main)
