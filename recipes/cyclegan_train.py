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

from zoo import flags as zoo_flags
from zoo.flags import FREE, MODEL, Bool, Enum, Float, Int, String

SPEC = zoo_flags.declare(
    *zoo_flags.common(train_steps=600, global_batch_size=4, learning_rate=2e-4, model_dir="runs/cyclegan",
                      checkpoint_every=200, log_every=50),
    Enum("model", "cyclegan_6blocks", ("cyclegan", "cyclegan_6blocks"), "cyclegan (9 residual blocks) or "
         "cyclegan_6blocks."),
    String("dataset", "synthetic",
           "synthetic, cycle_gan/<config> (e.g. cycle_gan/horse2zebra), celeb_a, edges2shoes, edges2handbags or "
           "handbags2shoes."),
    Int("image_size", 32, "Training crop side (256 in the paper; a multiple of 4).", role=MODEL, at_least=4),
    Int("load_size", None, "Resize to this side, then crop --image_size (286 in the paper).", at_least=1),
    Bool("flip", True, "Random horizontal flips, as the reference."),
    Int("filters", 16, "Channels of the first conv of the generators and discriminators (64).", role=MODEL,
        arg=("filters", "discriminator_filters"), at_least=1),
    Float("lambda_cycle", 10.0, "Cycle-consistency weight (lambda_A = lambda_B).", role=MODEL,
          arg=("lambda_a", "lambda_b"), at_least=0),
    Float("lambda_identity", 0.5, "Identity-loss weight relative to --lambda_cycle (0: off).", role=MODEL,
          at_least=0),
    Int("pool_size", 50, "Past fakes kept for the discriminators (0: no pool).", role=MODEL, at_least=0),
    Int("epochs_constant", 100, "Epochs at the initial learning rate.", at_least=0),
    Int("epochs_decay", 100, "Epochs of linear decay to 0 after them.", at_least=0),
    Int("steps_per_epoch", None, "Steps per epoch; default max(|A|, |B|) / --global_batch_size.", at_least=1),
    String("style_a", None, "celeb_a: attribute of domain A (e.g. Male, Blond_Hair)."),
    String("style_b", None, "celeb_a: attribute of domain B (default: not style_a)."),
    Int("num_samples", 8, "Test images per domain in the sample sheets.", role=FREE, at_least=1),
    Int("sample_every", 200, "Steps between sample sheets (checked every --log_every steps; one is always "
        "written at the end).", role=FREE, at_least=1),
    checks=[lambda hp: None if hp.epochs_constant + hp.epochs_decay > 0 else
            "--epochs_constant + --epochs_decay must be at least 1 (the learning-rate schedule's length)"],
)


def main(argv):
    del argv
    import keras

    from zoo import create_model
    from zoo.data import images
    from zoo.recipe_support.image_translation import train_and_export
    from zoo import recipe_support
    from zoo.training.schedules import LinearWarmupDecay

    hp = SPEC.values()
    strategy, chief = recipe_support.setup(hp)

    data = dict(data_dir=hp.data_dir, download=hp.download, seed=hp.seed, load_size=hp.load_size)
    if hp.dataset == "celeb_a":
        data.update(style_a=hp.style_a, style_b=hp.style_b)
    if chief:
        print(f"{hp.model} on {hp.dataset}, {strategy.num_replicas_in_sync} replica(s)", flush=True)
    sample_a, sample_b = images.sample_images(hp.dataset, hp.image_size, hp.num_samples, **data)
    steps_per_epoch = hp.steps_per_epoch
    if not steps_per_epoch:
        largest = max(images.domain_sizes(hp.dataset, "train", **data))
        steps_per_epoch = max(1, largest // hp.global_batch_size)

    def dataset_fn(ctx):
        ds_a, ds_b = images.load_domains(hp.dataset, "train", hp.image_size, flip=hp.flip,
                                         input_context=ctx, **data)
        return images.unpaired_batches(ds_a, ds_b, ctx.get_per_replica_batch_size(hp.global_batch_size))

    with strategy.scope():
        model = create_model(hp.model, **hp.model_args(seed=hp.seed))
        schedule = LinearWarmupDecay(
            hp.learning_rate, total_steps=(hp.epochs_constant + hp.epochs_decay) * steps_per_epoch,
            hold_steps=hp.epochs_constant * steps_per_epoch)

        def adam():  # the reference's Adam(lr, betas=(0.5, 0.999)); eps as PyTorch's
            return keras.optimizers.Adam(schedule, beta_1=0.5, beta_2=0.999, epsilon=1e-8)

        model.compile(generator_optimizer=adam(), discriminator_optimizer=adam())

    config = hp.run_config(steps_per_epoch=steps_per_epoch)  # the derived value, not the flag's None
    train_and_export(model, strategy, hp, dataset_fn, config, sample_a, sample_b)


if __name__ == "__main__":
    zoo_flags.run(main)
