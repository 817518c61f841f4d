"""Learning-rate schedules shared by recipes."""

import keras
from keras import ops

from zoo.errors import ZooError


@keras.saving.register_keras_serializable(package="zoo")
class LinearWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak` over `warmup_steps`, constant for `hold_steps`, then linear decay to
    `end` at `total_steps` (BERT: warm-up then decay to 0; CycleGAN: hold then decay).

    Example:
        schedule = LinearWarmupDecay(1e-4, total_steps=1_000_000, warmup_steps=10_000)
        keras.optimizers.AdamW(schedule)
    """

    def __init__(self, peak, total_steps, warmup_steps=0, hold_steps=0, end=0.0):
        if total_steps < warmup_steps + hold_steps:
            raise ValueError(f"total_steps={total_steps} is shorter than warmup_steps + hold_steps")
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.hold_steps = int(hold_steps)
        self.end = float(end)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = self.peak * step / max(self.warmup_steps, 1)
        decay_start = self.warmup_steps + self.hold_steps
        fraction = ops.clip((step - decay_start) / max(self.total_steps - decay_start, 1), 0.0, 1.0)
        decayed = self.peak + (self.end - self.peak) * fraction
        return ops.where(step < self.warmup_steps, warmup, decayed)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "hold_steps": self.hold_steps, "end": self.end}


@keras.saving.register_keras_serializable(package="zoo")
class TransformerSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The Transformer's learning rate (Vaswani et al. 2017, §5.3): linear warm-up, then decay with the
    inverse square root of the step, `scale · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5)`.

    The peak, at `step == warmup_steps`, is `scale · (d_model · warmup_steps)^-0.5` (7.0e-4 for the base
    model: d_model 512, warm-up 4000). Steps count from 1 as in the paper: the schedule is called with
    Keras' `optimizer.iterations`, which is 0 at the first update, and uses `iterations + 1`, so the first
    update gets the formula's step-1 value, never 0 or infinity.

    Args:
        d_model: the model width (`hidden_dim`).
        warmup_steps: steps of linear warm-up (4000 in the paper).
        scale: a constant factor (1.0 in the paper; tensor2tensor's `learning_rate_constant`).

    Example:
        schedule = TransformerSchedule(d_model=512, warmup_steps=4000)
        optimizer = keras.optimizers.Adam(schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9)
        float(schedule(3999))  # the peak, about 7.0e-4
    """

    def __init__(self, d_model, warmup_steps=4000, scale=1.0):
        if d_model < 1 or warmup_steps < 1:
            raise ZooError(f"--warmup_steps={warmup_steps} and d_model={d_model} must both be at least 1")
        self.d_model = int(d_model)
        self.warmup_steps = int(warmup_steps)
        self.scale = float(scale)

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0  # optimizer.iterations is 0 at the first update
        factor = self.scale * self.d_model ** -0.5
        return factor * ops.minimum(ops.rsqrt(step), step * self.warmup_steps ** -1.5)

    def get_config(self):
        return {"d_model": self.d_model, "warmup_steps": self.warmup_steps, "scale": self.scale}
