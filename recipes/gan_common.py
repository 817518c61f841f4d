"""The train-and-export tail shared by the image-translation GAN recipes (discogan_train, cyclegan_train)."""

import os


def train_and_export(model, strategy, flags, dataset_fn, config, sample_a, sample_b):
    """Trains `model` with the shared Trainer (sample sheets every `--sample_every` steps), prints the last logs
    and exports each generator to `<export_dir>/<direction>/` with the image-translation signatures."""
    from zoo.data import images
    from zoo.training.export import export_saved_model
    from zoo.training.strategy import is_chief
    from zoo.training.trainer import Trainer

    chief = is_chief(strategy)
    trainer = Trainer(
        model, strategy=strategy, model_dir=flags.model_dir, dataset_fn=dataset_fn,
        global_batch_size=flags.global_batch_size, train_steps=flags.train_steps,
        checkpoint_every=flags.checkpoint_every, log_every=flags.log_every, jit_compile=flags.jit_compile,
        config=config, hooks=[images.sample_sheet_hook(
            model.translate, sample_a, sample_b, os.path.join(flags.model_dir, "samples"), flags.sample_every,
            flags.train_steps, lambda: trainer.summary_writer)])
    logs = trainer.train()
    if chief and logs:
        print(f"step {flags.train_steps}: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items())), flush=True)
    if flags.export_dir:
        for direction, generator in model.generators.items():
            endpoints = images.translation_endpoints(
                lambda x, d=direction: model.translate_direction(x, d), flags.image_size)
            path = export_saved_model(os.path.join(flags.export_dir, direction), generator, endpoints,
                                      strategy=strategy)
            if chief:
                print(f"exported {path}", flush=True)
