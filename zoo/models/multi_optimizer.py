"""One design for models whose custom `train_step` drives several optimizers (GANs, DGR's scholar).

`MultiOptimizerModel` keeps an optimizer map, name -> optimizer, each over its own variables, and does in
one place what every such model needs: loss scaling under `mixed_float16`, PyTorch-style coupled weight
decay, skipping an overflowed step on every replica, and building all optimizer slots before a
checkpoint is restored.
"""

import keras
import tensorflow as tf

from zoo.errors import ZooError
from zoo.layers.config import Configurable
from zoo.ops import finite_or_nan, num_replicas


def coupled_weight_decay(grads, variables, weight_decay, optimizer=None):
    """Adds PyTorch's coupled L2 (`torch.optim.Adam(weight_decay=wd)`: wd·w added to the gradient, before
    the moments) to this replica's gradients of a *scaled* loss share.

    The optimizer sums gradients over replicas, so each replica adds wd·w / replicas; under a
    `LossScaleOptimizer` the gradients are multiplied by its scale, so the decay is too (the optimizer then
    divides both by it). Not Keras' decoupled `weight_decay` (AdamW).
    """
    if not weight_decay:
        return grads
    decay = weight_decay / num_replicas()
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        decay = decay * optimizer.dynamic_scale
    return [g + tf.cast(decay, g.dtype) * tf.cast(v, g.dtype) for g, v in zip(grads, variables)]


class MultiOptimizerModel(Configurable, keras.Model):
    """A model trained by its own `train_step` with one optimizer per group of variables.

    Subclasses set `optimizer_names` (e.g. ("generator", "discriminator")), define
    `optimizer_variables(name)` (the variables that optimizer updates) and `step_optimizer` (below), and
    call `compile(optimizers={name: optimizer, ...})` from a `compile` with their own keyword arguments.

    - Each optimizer is the attribute `<name>_optimizer` (so checkpoints name it so); `optimizers` is the map.
    - Loss scaling is decided from the model's dtype policy: under `mixed_float16` every optimizer is
      wrapped in a `LossScaleOptimizer` (`scaled_loss` scales a loss for it; `apply_update` makes an
      overflow on any replica skip the step on all, see `zoo.ops.finite_or_nan`).
    - `apply_update(name, grads, variables, weight_decay)` adds PyTorch's coupled L2 the one way
      (`coupled_weight_decay`) and applies the gradients.
    - `build_optimizer_state()` creates every optimizer's slots (the Trainer calls it before restoring).
    - `model.optimizer` is the step optimizer: the one that applies exactly one update per `train_step`
      (`step_optimizer` names it; it may depend on the model's mode, and `select_step_optimizer()`
      re-points `optimizer` when the mode changes). Its `iterations` therefore count train steps: that is
      what `zoo.ops.global_step(model)` falls back to outside the Trainer, and the learning rate the
      Trainer logs is its.

    Example:
        class TwoNets(MultiOptimizerModel):
            optimizer_names = ("first", "second")
            step_optimizer = "first"

            def optimizer_variables(self, name):
                return getattr(self, name).trainable_variables

        model.compile(optimizers={"first": keras.optimizers.Adam(), "second": keras.optimizers.Adam()})
        model.build_optimizer_state()
        model.apply_update("first", grads, model.first.trainable_variables, weight_decay=1e-5)
    """

    optimizer_names = ()
    step_optimizer = None

    def optimizer_variables(self, name):
        """The variables the optimizer `name` updates."""
        raise NotImplementedError

    @property
    def optimizers(self):
        """{name: optimizer} (empty before `compile`)."""
        found = {name: getattr(self, f"{name}_optimizer", None) for name in self.optimizer_names}
        return {name: opt for name, opt in found.items() if opt is not None}

    def compile(self, optimizers, **kwargs):
        """Takes {name: optimizer} for every name in `optimizer_names`; other arguments go to `keras.Model.compile`."""
        missing = [n for n in self.optimizer_names if optimizers.get(n) is None]
        unknown = sorted(set(optimizers) - set(self.optimizer_names))
        if missing or unknown:
            raise ZooError(f"{type(self).__name__}.compile needs one optimizer for each of "
                           f"{', '.join(self.optimizer_names)}; missing: {', '.join(missing) or 'none'}, "
                           f"unknown: {', '.join(unknown) or 'none'}")
        loss_scaled = self.dtype_policy.name == "mixed_float16"
        for name in self.optimizer_names:
            optimizer = optimizers[name]
            if loss_scaled and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            setattr(self, f"{name}_optimizer", optimizer)
        super().compile(optimizer=self.optimizers[self.step_optimizer], auto_scale_loss=False, **kwargs)

    def select_step_optimizer(self):
        """Points `optimizer` at the current `step_optimizer` (call when the mode that picks it changes)."""
        if self.optimizers:
            self.optimizer = self.optimizers[self.step_optimizer]

    def check_compiled(self):
        if len(self.optimizers) != len(self.optimizer_names):
            raise ZooError(f"compile the {type(self).__name__} first: it trains with one optimizer for each of "
                           f"{', '.join(self.optimizer_names)}")

    def build_optimizer_state(self):
        """Creates every optimizer's variables over its own variables, so a checkpoint restores into them."""
        self.check_compiled()
        for name, optimizer in self.optimizers.items():
            if not optimizer.built:
                optimizer.build(self.optimizer_variables(name))

    def scaled_loss(self, name, loss):
        """`loss` multiplied by the loss scale of optimizer `name` (unchanged without loss scaling)."""
        return self.optimizers[name].scale_loss(loss)

    def apply_update(self, name, grads, variables, weight_decay=0.0):
        """Applies this replica's gradients of `scaled_loss(name, share)` with optimizer `name`, plus coupled L2
        `weight_decay`; under loss scaling an overflow on any replica skips the step on every replica."""
        optimizer = self.optimizers[name]
        grads = coupled_weight_decay(grads, variables, weight_decay, optimizer)
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            grads = finite_or_nan(grads)
        optimizer.apply_gradients(zip(grads, variables))
