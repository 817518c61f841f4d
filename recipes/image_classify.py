"""Image classification with NASNet-A, PNASNet-5 or RandWire under any tf.distribute strategy, evaluated on
held-out images and exported for TF Serving.

    python recipes/image_classify.py                       # small NASNet-A on the embedded shapes, minutes on a CPU
    python recipes/image_classify.py --model=randwire_small --model_dir=runs/randwire
    python recipes/image_classify.py --model=nasnet_a_cifar --size=full --aux_head --dataset=cifar10 \
        --data_dir=~/tensorflow_datasets --global_batch_size=32 --train_steps=937500 --learning_rate=0.025 \
        --weight_decay=5e-4 --clip_norm=5 --eval_every=10000 --strategy=mirrored   # slim's CIFAR NASNet-A
    python recipes/image_classify.py --model=nasnet_a_mobile --size=full --dataset=imagenet2012 \
        --data_dir=gs://bucket/tfds --optimizer=rmsprop --lr_schedule=exponential --learning_rate=0.04 \
        --global_batch_size=1024 --label_smoothing=0.1 --strategy=tpu --tpu=local --mixed_precision=mixed_bfloat16
    python recipes/image_classify.py --image_dir=photos/ --model=randwire_small --image_size=64

Data: the embedded shapes (default, offline), tensorflow-datasets `cifar10`, `cifar100`, `imagenet2012`,
`imagenette` in --data_dir, or a folder --image_dir/<class>/*.jpg (or its train/ and validation/ folders).
Images are fed in [-1, 1]; augmentation is CIFAR's pad-and-crop up to 64 pixels, the Inception crop above.
--size=cpu (the default) builds a CPU-sized network of --model's family with the real cells (NASNet-A:
one cell per stage, 96 penultimate filters), so the default run fits a CPU in a few minutes; --size=small is
the registry's test config, --size=full the preset. --model_overrides='{"num_blocks": 2}' changes any
network argument.

The loss is slim's: label smoothing, the auxiliary head's loss (weight --aux_weight) and L2 decay of conv and
dense kernels (--weight_decay, slim's scale); drop path ramps up over --train_steps. With several replicas,
--sync_batch_norm takes BatchNorm statistics over the global batch, so the run equals a one-device one.
Validation loss, top-1 and top-5 go to TensorBoard every --eval_every steps. At the end (the trainer's last
evaluation): a results table, example predictions, the confusion matrix in <model_dir>/confusion_matrix.png,
each RandWire stage's wiring in <model_dir>/wiring/, and the export <export_dir>/<version>/ with
`serving_default` (float images -> probabilities, top-k classes and scores) and `classify_bytes` (JPEG/PNG
bytes -> top-k class names and scores); assets/labels.txt holds the class names. Stopped and started again
with the same flags, a run resumes.
"""

from zoo import flags as zoo_flags
from zoo.flags import FREE, MODEL, Bool, Enum, Float, Int, String
from zoo.recipe_support.image_flags import image_data_flags


IMAGE_DATA_FLAGS, IMAGE_DATA_CHECKS = image_data_flags()
SPEC = zoo_flags.declare(
    *zoo_flags.common(train_steps=300, global_batch_size=32, learning_rate=0.05, model_dir="runs/image_classify",
                      checkpoint_every=100, log_every=50),
    String("model", "nasnet_a_cifar", "A registered image classifier (python -m zoo list): nasnet_*, pnasnet_*, "
           "randwire_*."),
    Enum("size", "cpu", ("cpu", "small", "full"), "Network size: cpu (the family's CPU demo config: the real "
         "cells, few and narrow), small (the registry's test config) or full (the preset)."),
    String("model_overrides", None, "JSON object of further create_model arguments, e.g. '{\"num_cells\": 6}'."),
    *IMAGE_DATA_FLAGS,
    Float("label_smoothing", 0.1, "Label smoothing of the training loss.", at_least=0, below=1),
    Float("aux_weight", 0.4, "Weight of the auxiliary head's loss (networks built with aux_head).", at_least=0),
    Float("weight_decay", 4e-5, "slim's L2 scale: loss += scale * sum(w^2) / 2 over conv/dense kernels "
          "(4e-5 ImageNet NASNet/PNASNet, 5e-4 CIFAR).", at_least=0),
    Float("drop_path_rate", None, "Final drop-path rate (default: the preset's).", at_least=0, below=1),
    Float("dropout", None, "Dropout before the classifier (default: the preset's).", at_least=0, below=1),
    Bool("aux_head", None, "Build the auxiliary head (default: the preset's)."),
    Float("bn_momentum", None, "BatchNorm moving-average momentum (default: the preset's, e.g. 0.9997 for "
          "NASNet-A ImageNet; 0.9 with --size=cpu or small, whose short runs need statistics that keep up).",
          at_least=0, below=1),
    Bool("sync_batch_norm", False, "BatchNorm statistics over the global batch (all replicas), so any replica "
         "count trains as one device; costs an all-reduce per BatchNorm.", role=MODEL),
    Float("clip_norm", 0.0, "Clip the global gradient norm to this (0: off; slim: 5 CIFAR, 10 mobile).", at_least=0),
    Enum("optimizer", "nesterov", ("momentum", "nesterov", "rmsprop"), "SGD with momentum, Nesterov, or "
         "RMSProp(decay 0.9, momentum 0.9, eps 1.0) as slim's ImageNet runs."),
    Float("momentum", 0.9, "Momentum of the optimizer.", at_least=0, below=1),
    Enum("lr_schedule", "cosine", ("cosine", "exponential"), "Cosine decay to 0 over --train_steps, or "
         "staircase exponential decay by --decay_rate every --decay_epochs."),
    Float("decay_rate", 0.97, "Exponential schedule: factor per decay period.", above=0, at_most=1),
    Float("decay_epochs", 2.4, "Exponential schedule: epochs per decay period.", above=0),
    Int("top_k", 5, "Classes (and scores) returned by the export.", role=FREE, at_least=1),
    Int("num_examples", 8, "Validation images whose predictions are printed at the end.", role=FREE, at_least=0),
    checks=IMAGE_DATA_CHECKS,
)


def main(argv):
    del argv
    import os

    from zoo import recipe_support
    from zoo.data import image_classification as data_lib
    from zoo.models.nas.image_classifier import ImageClassifier
    from zoo.registry import trainable_params
    from zoo.recipe_support import image_classification as support
    from zoo.training.export import export_saved_model
    from zoo.training.trainer import Trainer

    hp = SPEC.values()
    strategy, chief = recipe_support.setup(hp)
    support.check_model(hp.model)
    data = data_lib.open_dataset(hp.dataset, image_dir=hp.image_dir, data_dir=hp.data_dir, download=hp.download,
                                 validation_fraction=hp.validation_fraction)
    image_size = hp.image_size or (32 if data.native_size and data.native_size <= 64 else 224)
    overrides = {k: hp[k] for k in ("drop_path_rate", "dropout", "aux_head", "bn_momentum") if hp[k] is not None}
    if hp.sync_batch_norm:
        overrides["sync_batch_norm"] = True
    if hp.model_overrides:
        overrides.update(support.parse_overrides(hp.model_overrides))

    with strategy.scope():
        network = support.build_network(hp.model, num_classes=data.num_classes, image_size=image_size,
                                        size=hp.size, overrides=overrides)
        model = ImageClassifier(network, label_smoothing=hp.label_smoothing, aux_weight=hp.aux_weight,
                                weight_decay=hp.weight_decay, total_steps=hp.train_steps,
                                clip_norm=hp.clip_norm or None)
        epoch = max(1, (data.sizes.get("train") or 10 * hp.global_batch_size) // hp.global_batch_size)
        schedule = support.make_schedule(hp.lr_schedule, hp.learning_rate, train_steps=hp.train_steps,
                                         decay_steps=hp.decay_epochs * epoch, decay_rate=hp.decay_rate)
        model.compile(optimizer=support.make_optimizer(hp.optimizer, schedule, hp.momentum))
    if chief:
        sizes = ", ".join(f"{n:,} {split}" for split, n in data.sizes.items() if n)
        print(f"{hp.model} ({hp.size} size): {trainable_params(network):,} "
              f"parameters, {image_size}x{image_size} inputs; {data.name}: {data.num_classes} classes"
              f"{', ' + sizes + ' images' if sizes else ''}; {strategy.num_replicas_in_sync} replica(s)", flush=True)

    def dataset_fn(ctx):
        return data_lib.train_dataset(data, image_size, hp.global_batch_size, ctx, seed=hp.seed)

    def eval_dataset_fn(ctx):
        return data_lib.eval_dataset(data, image_size, hp.global_batch_size, ctx)

    config = hp.run_config(dataset=data.name, image_size=image_size, class_names=list(data.class_names))
    trainer = Trainer(model, strategy=strategy, model_dir=hp.model_dir, dataset_fn=dataset_fn,
                      eval_dataset_fn=eval_dataset_fn, config=config, **hp.trainer_args())
    # train() evaluates at the end (also when a finished run is started again): that is the final evaluation.
    results, confusion = support.final_results(trainer.train())
    labels_file = os.path.join(hp.model_dir, "labels.txt")
    if chief:
        print("\n".join(support.results_table(results, confusion, data.class_names, model.top_k, data.name)))
        if hp.num_examples:
            print("example predictions (true -> predicted):")
            print("\n".join(support.example_predictions(
                model, data_lib.eval_dataset(data, image_size, hp.num_examples), data.class_names, hp.num_examples)))
        path = support.write_confusion_png(os.path.join(hp.model_dir, "confusion_matrix.png"), confusion,
                                           data.class_names, f"{hp.model} on {data.name}: top-1 {results['top1']:.1%}")
        print(f"confusion matrix: {path}")
        for path in support.draw_wiring(network, hp.model_dir):
            print(f"wiring: {path}")
        support.write_class_names(labels_file, data.class_names)
    if hp.export_dir:
        if not chief:  # other workers write a throw-away export; they need their own copy of the labels
            import tempfile

            labels_file = support.write_class_names(
                os.path.join(tempfile.mkdtemp(prefix="zoo-labels-"), "labels.txt"), data.class_names)
        path = export_saved_model(hp.export_dir, network, support.serving_endpoints(model, data.class_names, hp.top_k),
                                  assets={"labels.txt": labels_file}, strategy=strategy)
        if chief:
            print(f"exported {path}", flush=True)


if __name__ == "__main__":
    zoo_flags.run(main)
