"""DiscoGAN (Kim et al., 2017): two generators, two discriminators and the official training schedule."""

import keras
import tensorflow as tf
from keras import ops

from zoo.errors import ZooError
from zoo.models.gan.two_player import TwoPlayerModel, per_example_mean
from zoo.ops import cross_replica_sum, global_step, num_replicas, weighted_mean

ARCHS = ("discogan", "recongan", "gan")
LOSSES = ("code", "paper")


def _bce(logits, target):
    """Per-example binary cross-entropy of sigmoid(logits) against a constant target."""
    labels = ops.full_like(logits, target)
    return per_example_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def _global_batch_mean(x):
    """Mean over the global batch (all replicas) of a [batch, ...] tensor."""
    x = ops.cast(x, "float32")
    total = cross_replica_sum(ops.sum(x, axis=0))
    count = cross_replica_sum(ops.cast(ops.shape(x)[0], "float32"))
    return total / count


@keras.saving.register_keras_serializable(package="zoo")
class DiscoGAN(TwoPlayerModel):
    """DiscoGAN as trained by SKTBrain/DiscoGAN `image_translation.py`.

    Naming follows the official code: `generator_b` maps A -> B, `generator_a` maps B -> A, and
    `discriminator_a`/`discriminator_b` judge domains A/B. Images are in [0, 1].

    Losses of one direction, A -> B -> A (the other is symmetric):
    - GAN: non-saturating BCE of discriminator_b on generator_b(A); discriminators: 0.5·BCE(real, 1) +
      0.5·BCE(fake, 0), real and fake in separate batch-norm passes as in the reference.
    - feature matching (FM): Σ over discriminator features of mean((E_batch f(real) - E_batch f(fake))²).
    - reconstruction: MSE(generator_a(generator_b(A)), A).
    `loss="code"` (the official code): ((gan_weight·GAN + feature_matching_weight·FM)·(1 - rate) +
    rate·recon), with rate = `starting_rate` for the first `gan_curriculum` iterations, then
    `default_rate`. `loss="paper"`: GAN + recon (the paper's L_GAN + L_CONST; no FM, no curriculum).
    `arch`: "discogan" trains both directions; "recongan" only A -> B -> A with discriminator_b;
    "gan" only A -> B (its code loss is gan_weight·GAN + feature_matching_weight·FM, no reconstruction).

    Schedule: one optimizer step per iteration, discriminators when `iteration % update_interval == 0`,
    generators otherwise. A `train_step` runs `update_interval` iterations in order (one discriminator
    step, then generator steps), so its batch is a dict of `a`, `b` images shaped
    [update_interval, batch, S, S, 3], a fresh batch per iteration as in the reference. Every iteration
    runs all nets in training mode, as the reference does, so batch-norm statistics move in all of them.
    Iteration numbers come from the step: train step `s` (`zoo.ops.global_step`) runs iterations
    `s·update_interval` ... `s·update_interval + update_interval - 1`. `model.optimizer` is the discriminators'
    optimizer, the one that updates once per step, so outside the Trainer its `iterations` count steps.
    `weight_decay` is PyTorch Adam's coupled L2 (weight_decay·w added to the gradients; 1e-5 in the
    reference), not Keras' decoupled decay.

    Losses are the replica's share of the global-batch losses and batch norm is synchronised, so a step on
    N replicas equals a step on one device with the same global batch.

    Args:
        generator_a, generator_b: `DiscoGANGenerator`s (B -> A and A -> B).
        discriminator_a, discriminator_b: `DiscoGANDiscriminator`s.
        arch: "discogan", "recongan" or "gan".
        loss: "code" or "paper".
        gan_weight, feature_matching_weight: weights of the GAN and FM terms in the code loss (0.1, 0.9).
        starting_rate, default_rate, gan_curriculum: the reconstruction-rate curriculum (0.01, 0.5, 10000).
        update_interval: iterations per discriminator step (3).
        weight_decay: coupled L2 coefficient (1e-5).

    Example:
        model = zoo.create_model("discogan", filters=16)
        model.compile(generator_optimizer=keras.optimizers.Adam(2e-4, 0.5, 0.999, 1e-8),
                      discriminator_optimizer=keras.optimizers.Adam(2e-4, 0.5, 0.999, 1e-8))
        logs = model.train_step({"a": a, "b": b})   # a, b: [3, batch, 64, 64, 3]
        images = model.translate(a[0], b[0])       # {"ab", "aba", "ba", "bab"}
    """

    step_optimizer = "discriminator"  # one update per train step
    config_aliases = {"loss": "loss_mode"}  # `loss` is keras.Model's compiled loss

    def __init__(
        self,
        generator_a,
        generator_b,
        discriminator_a,
        discriminator_b,
        arch="discogan",
        loss="code",
        gan_weight=0.1,
        feature_matching_weight=0.9,
        starting_rate=0.01,
        default_rate=0.5,
        gan_curriculum=10000,
        update_interval=3,
        weight_decay=1e-5,
        **kwargs,
    ):
        if arch not in ARCHS:
            raise ZooError(f"unknown DiscoGAN arch {arch!r}; choose one of: {', '.join(ARCHS)}")
        if loss not in LOSSES:
            raise ZooError(f"unknown DiscoGAN loss {loss!r}; choose 'code' (official code) or 'paper'")
        if int(update_interval) < 2:
            raise ZooError(f"update_interval must be at least 2 (1 discriminator step per interval), got "
                           f"{update_interval}")
        super().__init__(**kwargs)
        self.generator_a = generator_a
        self.generator_b = generator_b
        self.discriminator_a = discriminator_a
        self.discriminator_b = discriminator_b
        self.arch = arch
        self.loss_mode = loss
        self.gan_weight = float(gan_weight)
        self.feature_matching_weight = float(feature_matching_weight)
        self.starting_rate = float(starting_rate)
        self.default_rate = float(default_rate)
        self.gan_curriculum = int(gan_curriculum)
        self.update_interval = int(update_interval)
        self.weight_decay = float(weight_decay)
        self.image_size = generator_b.input_shape[1]
        self.built = True

    # === Set-up ===

    @property
    def generator_nets(self):
        """The generators the arch trains (one optimizer over all of them, as in the reference)."""
        return [self.generator_b] if self.arch == "gan" else [self.generator_a, self.generator_b]

    @property
    def discriminator_nets(self):
        return [self.discriminator_a, self.discriminator_b] if self.arch == "discogan" else [self.discriminator_b]

    @property
    def generator_variables(self):
        return [v for net in self.generator_nets for v in net.trainable_variables]

    @property
    def discriminator_variables(self):
        return [v for net in self.discriminator_nets for v in net.trainable_variables]

    def _check_images(self, images, name):
        expected = (self.image_size, self.image_size, 3)
        if tuple(images.shape[-3:]) != expected:
            raise ZooError(f"DiscoGAN {name} images must be [..., {self.image_size}, {self.image_size}, 3] "
                           f"(the model's image_size), got shape {tuple(images.shape)}; resize the data or "
                           f"build the model with image_size={images.shape[-2]}")

    # === Losses ===

    def rate(self, iteration):
        """The code loss's reconstruction rate at `iteration` (a scalar tensor)."""
        return tf.where(iteration < self.gan_curriculum, self.starting_rate, self.default_rate)

    def _run_nets(self, a, b):
        """All nets in training mode, as every reference iteration does; returns global losses."""
        ab = self.generator_b(a, training=True)
        ba = self.generator_a(b, training=True)
        aba = self.generator_a(ab, training=True)
        bab = self.generator_b(ba, training=True)
        out = {}
        for domain, real, fake in (("a", a, ba), ("b", b, ab)):
            disc = getattr(self, f"discriminator_{domain}")
            d_real, d_fake = disc(real, training=True), disc(fake, training=True)
            out[f"d_{domain}"] = _combine(
                [(0.5, weighted_mean(_bce(d_real["logits"], 1.0))), (0.5, weighted_mean(_bce(d_fake["logits"], 0.0)))])
            out[f"gan_{domain}"] = weighted_mean(_bce(d_fake["logits"], 1.0))
            fm = sum(
                ops.mean(ops.square(_global_batch_mean(r) - _global_batch_mean(f)))
                for r, f in zip(d_real["features"], d_fake["features"])
            )
            out[f"fm_{domain}"] = (fm / num_replicas(), fm)
        out["recon_a"] = weighted_mean(per_example_mean(ops.square(ops.cast(aba, "float32") - a)))
        out["recon_b"] = weighted_mean(per_example_mean(ops.square(ops.cast(bab, "float32") - b)))
        return out

    def _objectives(self, out, iteration):
        """(generator, discriminator) losses as (share, total) pairs, per the arch and loss mode."""
        rate = self.rate(iteration)

        def direction(target, source):  # generator loss of source -> target -> source
            gan, fm, recon = out[f"gan_{target}"], out[f"fm_{target}"], out[f"recon_{source}"]
            if self.loss_mode == "paper":
                return _combine([(1.0, gan), (1.0, recon)])
            adversarial = [(self.gan_weight * (1.0 - rate), gan), (self.feature_matching_weight * (1.0 - rate), fm)]
            return _combine(adversarial + [(rate, recon)])

        if self.arch == "discogan":
            g = _combine([(1.0, direction("b", "a")), (1.0, direction("a", "b"))])
            d = _combine([(1.0, out["d_a"]), (1.0, out["d_b"])])
        elif self.arch == "recongan":
            g, d = direction("b", "a"), out["d_b"]
        elif self.loss_mode == "paper":
            g, d = out["gan_b"], out["d_b"]
        else:
            g = _combine([(self.gan_weight, out["gan_b"]), (self.feature_matching_weight, out["fm_b"])])
            d = out["d_b"]
        return g, d

    # === Steps ===

    def _optimize(self, name, variables, loss_fn):
        """Differentiates loss_fn()'s share with respect to `variables` and applies it with optimizer `name`,
        plus PyTorch Adam's coupled L2 (`weight_decay`); returns loss_fn()'s outputs."""
        with tf.GradientTape() as tape:
            share, outputs = loss_fn()
            scaled = self.scaled_loss(name, share)
        self.apply_update(name, tape.gradient(scaled, variables), variables, weight_decay=self.weight_decay)
        return outputs

    def discriminator_step(self, a, b, iteration):
        """One discriminator iteration on image batches `a`, `b`; returns the global logs."""

        def loss_fn():
            out = self._run_nets(a, b)
            return self._objectives(out, iteration)[1][0], out

        out = self._optimize("discriminator", self.discriminator_variables, loss_fn)
        return {"d_loss_a": out["d_a"][1], "d_loss_b": out["d_b"][1]}

    def generator_step(self, a, b, iteration):
        """One generator iteration on image batches `a`, `b`; returns the global logs."""

        def loss_fn():
            out = self._run_nets(a, b)
            (g_share, g_total), _ = self._objectives(out, iteration)
            return g_share, (out, g_total)

        out, g_total = self._optimize("generator", self.generator_variables, loss_fn)
        logs = {"g_loss": g_total}
        if self.loss_mode == "code":
            logs["rate"] = self.rate(iteration)
        for key in ("gan_a", "gan_b", "fm_a", "fm_b", "recon_a", "recon_b"):
            logs[key] = out[key][1]
        return logs

    def train_step(self, data):
        self.check_compiled()
        a, b = data["a"], data["b"]
        for name, images in (("a", a), ("b", b)):
            self._check_images(images, name)
            if images.shape.rank != 5 or images.shape[0] != self.update_interval:
                raise ZooError(f"DiscoGAN.train_step needs {name!r} shaped [update_interval="
                               f"{self.update_interval}, batch, S, S, 3] (one batch per iteration), got "
                               f"{tuple(images.shape)}; batch with "
                               "zoo.data.images.unpaired_batches(..., group=update_interval)")
        a, b = ops.cast(a, "float32"), ops.cast(b, "float32")
        start = global_step(self) * self.update_interval
        logs = self.discriminator_step(a[0], b[0], start)
        for j in range(1, self.update_interval):
            logs.update(self.generator_step(a[j], b[j], start + j))
        logs["d_loss"] = logs["d_loss_a"] + logs["d_loss_b"] if self.arch == "discogan" else logs["d_loss_b"]
        return logs

    # === Inference ===

    @property
    def generators(self):
        return {"a2b": self.generator_b, "b2a": self.generator_a}

    def translate_direction(self, images, direction):
        return self.generators[direction](ops.cast(images, "float32"), training=False)


def _combine(terms):
    """Σ weight·(share, total) over (weight, (share, total)) pairs."""
    share = sum(w * s for w, (s, _) in terms)
    total = sum(w * t for w, (_, t) in terms)
    return share, total
