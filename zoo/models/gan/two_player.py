"""The part DiscoGAN and CycleGAN share: one optimizer for the generators, one for the discriminators."""

from keras import ops

from zoo.models.multi_optimizer import MultiOptimizerModel


def per_example_mean(x):
    """Mean over all but the batch axis, in float32 (feed it to `zoo.ops.weighted_mean`)."""
    return ops.mean(ops.reshape(ops.cast(x, "float32"), (ops.shape(x)[0], -1)), axis=1)


class TwoPlayerModel(MultiOptimizerModel):
    """An unpaired translation model trained by a custom `train_step` with two optimizers.

    Subclasses define `generator_variables` and `discriminator_variables` (what each optimizer updates),
    `generators` ({"a2b": net, "b2a": net}) and `translate_direction`. `compile` takes both optimizers; the
    rest (loss scaling, `apply_update`, `build_optimizer_state`, `model.optimizer`) is
    `MultiOptimizerModel`'s. `model.optimizer` is the generators' optimizer unless a subclass sets
    `step_optimizer` to the one that updates once per step.
    """

    optimizer_names = ("generator", "discriminator")
    step_optimizer = "generator"

    @property
    def generator_variables(self):
        raise NotImplementedError

    @property
    def discriminator_variables(self):
        raise NotImplementedError

    def optimizer_variables(self, name):
        return self.generator_variables if name == "generator" else self.discriminator_variables

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

    def compile(self, generator_optimizer=None, discriminator_optimizer=None, **kwargs):
        kwargs.setdefault("jit_compile", False)
        super().compile({"generator": generator_optimizer, "discriminator": discriminator_optimizer}, **kwargs)
