"""Training: the strategy factory (`strategy`), the one loop (`trainer.Trainer`, also `zoo.training.Trainer`),
checkpoint safety (`checkpoints`), early stopping and best weights (`early_stopping`), carried per-replica
state (`carried_state`), joining a cluster (`connect`), the exporter (`export`), schedules and precision.
Modules import TensorFlow when used, so `zoo.flags` can import `zoo.training.strategy` cheaply."""


def __getattr__(name):  # zoo.training.Trainer without importing TensorFlow for every zoo.training import
    if name == "Trainer":
        from zoo.training.trainer import Trainer

        return Trainer
    raise AttributeError(f"module 'zoo.training' has no attribute {name!r}")
