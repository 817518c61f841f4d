"""Gradient descent on a sequence model's negative log-likelihood, under `fit` or `zoo.training.Trainer`: one
task for every layer with a `log_likelihood(x, mask=...)` verb (`zoo.layers.LinearGaussianStateSpace`,
`zoo.layers.HiddenMarkovModel`).

    with strategy.scope():
        model = LikelihoodFit(zoo.layers.HiddenMarkovModel(2, zoo.layers.CategoricalEmission(6)))
        model.compile(optimizer=keras.optimizers.Adam(0.05))
    logs = model.train_step({"x": rolls, "mask": padding})     # {"loss": NLL per observed step}
"""

import keras
import tensorflow as tf

from zoo.ops import apply_gradients, weighted_mean


@keras.saving.register_keras_serializable(package="zoo")
class LikelihoodFit(keras.Model):
    """Fits `layer` by maximum likelihood: the loss is the negative log-likelihood per observed step over the
    global batch (Σ_sequences −log p(x) / Σ_sequences observed steps, `zoo.ops.weighted_mean`, so any replica
    count gives the same update). Batches are dicts {"x": observations [B, T, ...], "mask": [B, T] bool, True =
    missing or padding (TFP's convention)}; `call` returns the per-sequence log-likelihood [B].

    Args:
        layer: a layer with `log_likelihood(x, mask=None) -> [B]`.
    """

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def call(self, inputs):
        return self.layer.log_likelihood(inputs["x"], mask=inputs["mask"])

    def train_step(self, data):
        steps = tf.reduce_sum(tf.cast(tf.logical_not(tf.cast(data["mask"], tf.bool)), tf.float32), axis=1)
        with tf.GradientTape() as tape:
            log_likelihood = tf.cast(self(data), tf.float32)
            share, loss = weighted_mean(-log_likelihood / tf.maximum(steps, 1.0), steps)
        variables = self.trainable_variables
        apply_gradients(self.optimizer, tape.gradient(share, variables), variables)
        return {"loss": loss}
