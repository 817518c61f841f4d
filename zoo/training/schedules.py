"""Learning-rate schedules shared by recipes."""

import keras
from keras import ops


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
