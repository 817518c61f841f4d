"""The train-and-export tail of the unpaired image-translation GAN recipes (discogan_train, cyclegan_train).

    hp = SPEC.values()
    with strategy.scope():
        model = create_model("discogan", **hp.model_args())
        model.compile(...)
    train_and_export(model, strategy, hp, dataset_fn, hp.run_config(), sample_a, sample_b)

`model` needs the image-translation API the GAN families share: `translate(a, b)` (the sample-sheet rows),
`translate_direction(images, direction)` and `generators` ({"a2b": ..., "b2a": ...}).
"""

import os


def train_and_export(model, strategy, hp, dataset_fn, config, sample_a, sample_b):
    """Trains `model` with the shared Trainer (sample sheets every `--sample_every` steps), prints the last logs
    and exports each generator to `<export_dir>/<direction>/` with the image-translation signatures.

    `hp`: the recipe's `zoo.flags.Values` (common flags plus image_size and sample_every).
    """
    from zoo.data import images
    from zoo.training.export import export_saved_model
    from zoo.training.strategy import is_chief
    from zoo.training.trainer import Trainer

    chief = is_chief(strategy)
    trainer = Trainer(
        model, strategy=strategy, model_dir=hp.model_dir, dataset_fn=dataset_fn, config=config,
        hooks=[images.sample_sheet_hook(
            model.translate, sample_a, sample_b, os.path.join(hp.model_dir, "samples"), hp.sample_every,
            hp.train_steps, lambda: trainer.summary_writer)],
        **hp.trainer_args())
    logs = trainer.train()
    if chief and logs:
        print(f"step {hp.train_steps}: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items())), flush=True)
    if hp.export_dir:
        for direction, generator in model.generators.items():
            endpoints = images.translation_endpoints(
                lambda x, d=direction: model.translate_direction(x, d), hp.image_size)
            path = export_saved_model(os.path.join(hp.export_dir, direction), generator, endpoints,
                                      strategy=strategy)
            if chief:
                print(f"exported {path}", flush=True)
