"""The part DiscoGAN and CycleGAN share: one optimizer for the generators, one for the discriminators."""

import keras
from keras import ops

from zoo.errors import ZooError
from zoo.ops import finite_or_nan


def per_example_mean(x):
    """Mean over all but the batch axis, in float32 (feed it to `zoo.ops.weighted_mean`)."""
    return ops.mean(ops.reshape(ops.cast(x, "float32"), (ops.shape(x)[0], -1)), axis=1)


class TwoPlayerModel(keras.Model):
    """An unpaired translation model trained by a custom `train_step` with two optimizers.

    Subclasses define `generator_variables` and `discriminator_variables` (what each optimizer updates),
    `generators` ({"a2b": net, "b2a": net}) and `translate_direction`. `compile` takes both optimizers
    (under mixed_float16 each is wrapped in a LossScaleOptimizer) and sets `optimizer` to the generators'
    one, whose learning rate the trainer logs; `build_optimizer_state` creates both optimizers' slots
    before a checkpoint is restored.
    """

    generator_optimizer = None
    discriminator_optimizer = None

    @property
    def generator_variables(self):
        raise NotImplementedError

    @property
    def discriminator_variables(self):
        raise NotImplementedError

    @property
    def generators(self):
        raise NotImplementedError

    def translate_direction(self, images, direction):
        """Inference-mode translation of [batch, S, S, 3] images in [0, 1] ("a2b" or "b2a"), in [0, 1]."""
        raise NotImplementedError

    def translate(self, a, b):
        """Translations of [batch, S, S, 3] images in [0, 1]: ab, aba, ba, bab, all in [0, 1]."""
        ab, ba = self.translate_direction(a, "a2b"), self.translate_direction(b, "b2a")
        return {"ab": ab, "aba": self.translate_direction(ab, "b2a"),
                "ba": ba, "bab": self.translate_direction(ba, "a2b")}

    def call(self, inputs):
        return {"ab": self.translate_direction(inputs["a"], "a2b"), "ba": self.translate_direction(inputs["b"], "b2a")}

    def compile(self, generator_optimizer, discriminator_optimizer, **kwargs):
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            wrap = keras.optimizers.LossScaleOptimizer
            generator_optimizer, discriminator_optimizer = (
                o if isinstance(o, wrap) else wrap(o) for o in (generator_optimizer, discriminator_optimizer))
        super().compile(optimizer=generator_optimizer, jit_compile=False, auto_scale_loss=False, **kwargs)
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer

    def build_optimizer_state(self):
        self.check_compiled()
        if not self.generator_optimizer.built:
            self.generator_optimizer.build(self.generator_variables)
        if not self.discriminator_optimizer.built:
            self.discriminator_optimizer.build(self.discriminator_variables)

    def apply_update(self, optimizer, grads, variables):
        """`optimizer.apply_gradients`; under loss scaling an overflow on any replica skips the step on all."""
        if getattr(optimizer, "dynamic_scale", None) is not None:
            grads = finite_or_nan(grads)
        optimizer.apply_gradients(zip(grads, variables))

    def check_compiled(self):
        if self.generator_optimizer is None:
            raise ZooError(f"compile the {type(self).__name__} with generator_optimizer= and "
                           "discriminator_optimizer= first")
