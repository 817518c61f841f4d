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

from zoo import flags as zoo_flags
from zoo.flags import FREE, MODEL, Enum, Float, Int, String

MODELS = ("discogan", "discogan_bottleneck", "discogan_recongan", "discogan_gan")
SPEC = zoo_flags.declare(
    *zoo_flags.common(train_steps=300, global_batch_size=32, learning_rate=2e-4, model_dir="runs/discogan",
                      checkpoint_every=100, log_every=25),
    Enum("model", "discogan", MODELS,
         "discogan, discogan_bottleneck (the angle tasks' generator), discogan_recongan or discogan_gan."),
    String("dataset", "synthetic",
           "synthetic, celeb_a, edges2shoes, edges2handbags, handbags2shoes or cycle_gan/<config>."),
    Int("image_size", 64, "Image side (64 in the paper; a multiple of 16, at least 64).", role=MODEL, at_least=64),
    Int("filters", 16, "Channels of the first conv of every net (64 in the paper).", role=MODEL, at_least=1),
    Enum("loss", "code", ("code", "paper"),
         "code: the official code's GAN + feature matching + reconstruction with the rate curriculum; "
         "paper: GAN + reconstruction.", role=MODEL),
    Float("gan_weight", 0.1, "Weight of the GAN term in the code loss.", role=MODEL, at_least=0),
    Float("feature_matching_weight", 0.9, "Weight of the feature-matching term in the code loss (0: off).",
          role=MODEL, at_least=0),
    Float("starting_rate", 0.01, "Reconstruction rate during the curriculum.", role=MODEL, at_least=0, at_most=1),
    Float("default_rate", 0.5, "Reconstruction rate after the curriculum.", role=MODEL, at_least=0, at_most=1),
    Int("gan_curriculum", 10000, "Iterations of the curriculum (steps x update_interval).", role=MODEL, at_least=0),
    Int("update_interval", 3, "Iterations per discriminator step (one discriminator, then generator steps).",
        role=MODEL, at_least=2),
    Float("weight_decay", 1e-5, "PyTorch Adam's coupled L2 weight decay.", role=MODEL, at_least=0),
    String("style_a", None, "celeb_a: attribute of domain A (e.g. Male, Blond_Hair)."),
    String("style_b", None, "celeb_a: attribute of domain B (default: not style_a)."),
    String("constraint", None, "celeb_a: keep only images with this attribute == --constraint_type."),
    Int("constraint_type", 1, "celeb_a: 1 or -1, see --constraint.", choices=(1, -1)),
    Int("num_samples", 8, "Test images per domain in the sample sheets.", role=FREE, at_least=1),
    Int("sample_every", 100, "Steps between sample sheets (checked every --log_every steps; one is always "
        "written at the end).", role=FREE, at_least=1),
    checks=[lambda hp: None if hp.image_size % 16 == 0 else
            f"--image_size={hp.image_size} must be a multiple of 16 (the generator halves it four times)"],
)


def main(argv):
    del argv
    import keras

    from zoo import create_model
    from zoo.data import images
    from zoo.recipe_support.image_translation import train_and_export
    from zoo import recipe_support

    hp = SPEC.values()
    strategy, chief = recipe_support.setup(hp)

    data = dict(data_dir=hp.data_dir, download=hp.download, seed=hp.seed)
    if hp.dataset == "celeb_a":
        data.update(style_a=hp.style_a, style_b=hp.style_b, constraint=hp.constraint,
                    constraint_type=hp.constraint_type)
    if chief:
        print(f"{hp.model} on {hp.dataset}, {strategy.num_replicas_in_sync} replica(s)", flush=True)
    sample_a, sample_b = images.sample_images(hp.dataset, hp.image_size, hp.num_samples, **data)

    def dataset_fn(ctx):
        ds_a, ds_b = images.load_domains(hp.dataset, "train", hp.image_size, input_context=ctx, **data)
        batch = ctx.get_per_replica_batch_size(hp.global_batch_size)
        return images.unpaired_batches(ds_a, ds_b, batch, group=hp.update_interval)

    with strategy.scope():
        model = create_model(hp.model, **hp.model_args())

        def adam():  # the reference's Adam(lr, betas=(0.5, 0.999)); eps as PyTorch's
            return keras.optimizers.Adam(hp.learning_rate, beta_1=0.5, beta_2=0.999, epsilon=1e-8)

        model.compile(generator_optimizer=adam(), discriminator_optimizer=adam())

    train_and_export(model, strategy, hp, dataset_fn, hp.run_config(), sample_a, sample_b)


if __name__ == "__main__":
    zoo_flags.run(main)
