"""CycleGAN (Zhu et al., 2017) as trained by junyanz/pytorch-CycleGAN-and-pix2pix `cycle_gan_model.py`."""

import keras
import tensorflow as tf
from keras import ops

from zoo.errors import ZooError
from zoo.models.gan.image_pool import ImagePool
from zoo.models.gan.patchgan_discriminator import PatchGANDiscriminator
from zoo.models.gan.two_player import TwoPlayerModel, per_example_mean
from zoo.ops import weighted_mean


def _lsgan(scores, target):
    """Per-example LSGAN loss: mean squared distance of the patch scores to 1 (real) or 0 (fake)."""
    return per_example_mean(ops.square(ops.cast(scores, "float32") - target))


def _l1(x, y):
    return per_example_mean(ops.abs(ops.cast(x, "float32") - ops.cast(y, "float32")))


@keras.saving.register_keras_serializable(package="zoo")
class CycleGAN(TwoPlayerModel):
    """Two ResNet generators, two PatchGAN discriminators, LSGAN + cycle + identity losses, image pools.

    Naming follows the reference code: `generator_a` (G) maps A -> B, `generator_b` (F) maps B -> A,
    `discriminator_a` (D_Y) judges domain B, `discriminator_b` (D_X) judges domain A. The nets work in
    [-1, 1]; `train_step`, `translate` and `call` take and return images in [0, 1].

    One `train_step` on a batch dict {"a", "b"} of [batch, S, S, 3] images in [0, 1] does, as the reference:
    1. generator step (discriminators fixed): LSGAN MSE(D(fake), 1) for both directions, cycle L1 weighted
       by lambda_a / lambda_b (10), identity L1 weighted by lambda_identity·lambda (0.5·10 = 5);
    2. discriminator step: 0.5·(MSE(D(real), 1) + MSE(D(pool(fake)), 0)) for each discriminator, where the
       fakes are those of step 1 (before the generator update), drawn through a pool of 50 past fakes.
    The pool is global over replicas and the losses are the replica's share of the global-batch losses,
    so N replicas equal one device with the same global batch.

    Args:
        generator_a, generator_b: `ResnetGenerator`s (A -> B and B -> A).
        discriminator_a, discriminator_b: `PatchGANDiscriminator`s (for B and for A).
        image_size: side of the square training images (for the pools and input checks).
        lambda_a, lambda_b: cycle-loss weights (10).
        lambda_identity: identity-loss weight relative to lambda (0.5; 0 disables it).
        pool_size: past fakes kept per pool (50; 0 disables the pool).
        seed: seed of the pools' draws.

    Example:
        model = zoo.create_model("cyclegan_6blocks", image_size=32, filters=8)
        schedule = LinearWarmupDecay(2e-4, total_steps=200 * steps_per_epoch, hold_steps=100 * steps_per_epoch)
        model.compile(generator_optimizer=keras.optimizers.Adam(schedule, 0.5, 0.999, 1e-8),
                      discriminator_optimizer=keras.optimizers.Adam(schedule, 0.5, 0.999, 1e-8))
        logs = model.train_step({"a": a, "b": b})
        images = model.translate(a, b)   # {"ab", "aba", "ba", "bab"} in [0, 1]
    """

    def __init__(
        self,
        generator_a,
        generator_b,
        discriminator_a,
        discriminator_b,
        image_size=256,
        lambda_a=10.0,
        lambda_b=10.0,
        lambda_identity=0.5,
        pool_size=50,
        seed=0,
        **kwargs,
    ):
        if not isinstance(image_size, int) or image_size < 4 or image_size % 4:
            raise ZooError(f"CycleGAN image_size must be a multiple of 4 (256 in the paper), got {image_size!r}")
        layers = getattr(discriminator_a, "num_layers", 3)
        if PatchGANDiscriminator.output_size(image_size, layers) < 1:
            smallest = next(s for s in range(4, 4096, 4) if PatchGANDiscriminator.output_size(s, layers) >= 1)
            raise ZooError(f"CycleGAN image_size={image_size} is too small for a {layers}-layer PatchGAN; use at "
                           f"least {smallest}")
        super().__init__(**kwargs)
        self.generator_a = generator_a
        self.generator_b = generator_b
        self.discriminator_a = discriminator_a
        self.discriminator_b = discriminator_b
        self.image_size = image_size
        self.lambda_a = float(lambda_a)
        self.lambda_b = float(lambda_b)
        self.lambda_identity = float(lambda_identity)
        self.pool_size = int(pool_size)
        self.seed = int(seed)
        shape = (image_size, image_size, 3)
        pool = dict(dtype=self.dtype_policy)
        self.fake_a_pool = ImagePool(pool_size, shape, seed=2 * seed, name="fake_a_pool", **pool)
        self.fake_b_pool = ImagePool(pool_size, shape, seed=2 * seed + 1, name="fake_b_pool", **pool)
        self.built = True

    # === Set-up ===

    @property
    def generator_variables(self):
        return self.generator_a.trainable_variables + self.generator_b.trainable_variables

    @property
    def discriminator_variables(self):
        return self.discriminator_a.trainable_variables + self.discriminator_b.trainable_variables

    def _check_images(self, images, name):
        expected = (self.image_size, self.image_size, 3)
        if images.shape.rank != 4 or tuple(images.shape[1:]) != expected:
            raise ZooError(f"CycleGAN {name} images must be [batch, {self.image_size}, {self.image_size}, 3] "
                           f"(the model's image_size), got shape {tuple(images.shape)}; resize/crop the data or "
                           f"build the model with image_size={images.shape[-2]}")

    # === Steps ===

    def generator_step(self, real_a, real_b):
        """Updates both generators on [-1, 1] batches; returns (logs, fake_a, fake_b) with the fakes made
        before the update."""
        with tf.GradientTape() as tape:
            fake_b = self.generator_a(real_a, training=True)
            rec_a = self.generator_b(fake_b, training=True)
            fake_a = self.generator_b(real_b, training=True)
            rec_b = self.generator_a(fake_a, training=True)
            gan_a = weighted_mean(_lsgan(self.discriminator_a(fake_b, training=True), 1.0))
            gan_b = weighted_mean(_lsgan(self.discriminator_b(fake_a, training=True), 1.0))
            cycle_a = weighted_mean(_l1(rec_a, real_a))
            cycle_b = weighted_mean(_l1(rec_b, real_b))
            terms = [(1.0, gan_a), (1.0, gan_b), (self.lambda_a, cycle_a), (self.lambda_b, cycle_b)]
            logs = {"g_gan_a": gan_a[1], "g_gan_b": gan_b[1], "cycle_a": cycle_a[1], "cycle_b": cycle_b[1]}
            if self.lambda_identity > 0:
                idt_a = weighted_mean(_l1(self.generator_a(real_b, training=True), real_b))
                idt_b = weighted_mean(_l1(self.generator_b(real_a, training=True), real_a))
                terms += [(self.lambda_b * self.lambda_identity, idt_a), (self.lambda_a * self.lambda_identity, idt_b)]
                logs.update({"identity_a": idt_a[1], "identity_b": idt_b[1]})
            share = sum(w * s for w, (s, _) in terms)
            logs["g_loss"] = sum(w * t for w, (_, t) in terms)
            scaled = self.scaled_loss("generator", share)
        variables = self.generator_variables
        self.apply_update("generator", tape.gradient(scaled, variables), variables)
        return logs, tf.stop_gradient(fake_a), tf.stop_gradient(fake_b)

    def discriminator_step(self, real_a, real_b, fake_a, fake_b):
        """Updates both discriminators on [-1, 1] batches, showing them fakes drawn through the pools."""
        fake_b = self.fake_b_pool.query(fake_b)
        fake_a = self.fake_a_pool.query(fake_a)
        with tf.GradientTape() as tape:
            logs, share = {}, 0.0
            for name, disc, real, fake in (("a", self.discriminator_a, real_b, fake_b),
                                           ("b", self.discriminator_b, real_a, fake_a)):
                real_loss = weighted_mean(_lsgan(disc(real, training=True), 1.0))
                fake_loss = weighted_mean(_lsgan(disc(fake, training=True), 0.0))
                share += 0.5 * (real_loss[0] + fake_loss[0])
                logs[f"d_loss_{name}"] = 0.5 * (real_loss[1] + fake_loss[1])
            scaled = self.scaled_loss("discriminator", share)
        variables = self.discriminator_variables
        self.apply_update("discriminator", tape.gradient(scaled, variables), variables)
        return logs

    def train_step(self, data):
        self.check_compiled()
        for name in ("a", "b"):
            self._check_images(data[name], name)
        real_a = ops.cast(data["a"], "float32") * 2.0 - 1.0
        real_b = ops.cast(data["b"], "float32") * 2.0 - 1.0
        logs, fake_a, fake_b = self.generator_step(real_a, real_b)
        logs.update(self.discriminator_step(real_a, real_b, fake_a, fake_b))
        return logs

    # === Inference ===

    @property
    def generators(self):
        return {"a2b": self.generator_a, "b2a": self.generator_b}

    def translate_direction(self, images, direction):
        return (self.generators[direction](ops.cast(images, "float32") * 2.0 - 1.0, training=False) + 1.0) / 2.0
