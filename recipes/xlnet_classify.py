"""XLNet sequence classification and regression fine-tuning (zihangdai/xlnet run_classifier.py) under any
tf.distribute strategy: dev evaluation with early stopping, a GLUE-style report and a TF Serving export.

    python recipes/xlnet_classify.py                  # embedded topic task, xlnet_tiny, a minute on a CPU
    python recipes/xlnet_classify.py --init_checkpoint=runs/xlnet_pretrain    # from an xlnet_pretrain run
    python recipes/xlnet_classify.py --task=glue/stsb --data_dir=~/tensorflow_datasets --max_seq_length=128 \
        --init_checkpoint=xlnet_large/model.weights.h5 --spiece_model=xlnet_cased/spiece.model \
        --global_batch_size=32 --learning_rate=5e-5 --train_steps=1200 --warmup_steps=120   # xlnet README STS-B
    python recipes/xlnet_classify.py --task=tsv --train_file=train.tsv --dev_file=dev.tsv --text_a_column=0 \
        --label_column=1

Tasks (`zoo.data.xlnet_classification`): `embedded` (default: 5-way topic classification, as XLNet's DBpedia /
AG News runs, of two consecutive sentences of the embedded corpus's thematic articles, split by article so dev
is unseen articles), a local tensorflow-datasets `glue/<task>` (mnli: the matched dev set) or `imdb_reviews` in
--data_dir, or tab-separated files (--train_file, --dev_file, optional --test_file, with
--text_a_column, --text_b_column, --label_column). Inputs are the original's: `A <sep> B <sep> <cls>`, left
padded to --max_seq_length, segment ids A=0 B=1 CLS=2 PAD=4, the `<cls>` summary (last token).

Start (--init_checkpoint): an xlnet_pretrain run directory (its backbone shape, newest checkpoint and
spiece.model), or keras-hub XLNetBackbone weights (a .weights.h5 file or preset directory with config.json;
give its SentencePiece model with --spiece_model unless a spiece.model lies beside it). Without it, --config's
backbone starts from random weights and a vocabulary is trained on the training texts. A vocabulary of
another size than the checkpoint's embedding is refused (one line naming --spiece_model / --init_checkpoint).

Training: AdamW (--weight_decay, --adam_epsilon) with linear warm-up over --warmup_steps then linear decay, the
global gradient norm clipped at --clip_norm; the dev set is evaluated every --eval_every steps (loss, accuracy,
and GLUE's F1 for MRPC/QQP, Matthews' correlation for CoLA, Pearson/Spearman for STS-B) and training stops when
the task's headline metric has not improved for --patience evaluations; the best weights are restored, and
dev (and test, when it has labels) results, with the majority baseline, are printed and written to
<model_dir>/results.json. The default run (600 steps of 16, lr 1e-3, xlnet_tiny from random weights) took 48 s
on 2 shared CPU cores: 596 train / 148 dev examples, dev accuracy 0.635 at its best step 400 against a majority
baseline of 0.216 (results.json: best step 400, dev accuracy 0.6351, majority_baseline 0.2162; the embedded task
has no test split); with --seed=1 (another article split) dev 0.544 against 0.215. Training accuracy reaches
~0.99: the tiny model overfits ~600 examples, and the best dev weights are the ones kept. The export's
`serving_default` takes token_ids, segment_ids, padding_mask [batch, seq] (1 = real token) and returns logits,
probabilities and predictions (regression: predictions); assets/spiece.model. There is no string-input
endpoint: XLNet's SentencePiece tokenizer would need tensorflow-text's custom ops, which TF Serving's stock
build does not have. Stopped and started again with the same flags, a run resumes.
"""

import dataclasses

from zoo import flags as zoo_flags
from zoo.flags import FREE, MODEL, Bool, Enum, Float, Int, String

GLUE = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")
TASKS = ("embedded", *(f"glue/{t}" for t in GLUE), "imdb_reviews", "tsv")
CONFIGS = ("xlnet_tiny", "xlnet_base", "xlnet_large")
_COMMON = [dataclasses.replace(p, default=100) if p.name == "eval_every" else p
           for p in zoo_flags.common(train_steps=600, global_batch_size=16, learning_rate=1e-3,
                                     model_dir="runs/xlnet_classify", checkpoint_every=100, log_every=50)]
SPEC = zoo_flags.declare(
    *_COMMON,
    Enum("task", "embedded", TASKS, "embedded (5 topics of the embedded corpus's articles), glue/<task> or "
         "imdb_reviews (tensorflow-datasets in --data_dir), or tsv (--train_file, --dev_file)."),
    String("train_file", None, "--task=tsv: the training file (tab-separated).", role=FREE),
    String("dev_file", None, "--task=tsv: the dev file.", role=FREE),
    String("test_file", None, "--task=tsv: an optional test file (with labels, to be reported).", role=FREE),
    Int("text_a_column", 0, "--task=tsv: column of the first text.", at_least=0),
    Int("text_b_column", None, "--task=tsv: column of the second text (none: single sentences).", at_least=0),
    Int("label_column", 1, "--task=tsv: column of the label.", at_least=0),
    Bool("regression", False, "--task=tsv: the labels are numbers to regress (else class names)."),
    Int("max_examples", None, "Use at most this many examples of each split (the first ones).", at_least=1),
    Enum("config", "xlnet_tiny", CONFIGS, "Backbone preset when there is no --init_checkpoint."),
    String("init_checkpoint", None, "An xlnet_pretrain run directory, or keras-hub XLNetBackbone weights "
           "(.weights.h5 or a preset directory). Read by a new run only.", role=FREE),
    String("spiece_model", None, "The SentencePiece model (default: the one of --init_checkpoint, else one trained "
           "on the training texts).", role=FREE),
    Int("vocab_size", 1000, "Pieces of the vocabulary trained when there is none.", at_least=16),
    Int("max_seq_length", 64, "Tokens per example, <sep>s and <cls> included (the original: 128; IMDB 512).",
        at_least=4),
    Float("dropout", 0.1, "Hidden dropout of the backbone and the summary (the original: 0.1).", role=MODEL,
          at_least=0, below=1),
    Float("attention_dropout", 0.1, "Dropout on attention probabilities (the original: 0.1).", role=MODEL,
          at_least=0, below=1),
    Int("warmup_steps", 60, "Linear warm-up steps before the linear decay to 0.", at_least=0),
    Float("weight_decay", 0.0, "AdamW weight decay, not on biases and layer norms (the original: 0).", at_least=0),
    Float("adam_epsilon", 1e-8, "Adam epsilon (run_classifier.py: 1e-8).", above=0),
    Float("clip_norm", 1.0, "Clip the global gradient norm to this (0: off; the original: 1.0).", at_least=0),
    Int("patience", 5, "Stop when the dev headline metric has not improved for this many evaluations (0: never).",
        role=FREE, at_least=0),
    checks=[
        lambda hp: None if hp.warmup_steps <= hp.train_steps else
        f"--warmup_steps={hp.warmup_steps} exceeds --train_steps={hp.train_steps}; lower --warmup_steps",
        lambda hp: None if hp.task == "tsv" or not (hp.train_file or hp.dev_file or hp.test_file) else
        "--train_file/--dev_file/--test_file are read with --task=tsv; add --task=tsv or drop them",
        lambda hp: None if hp.task != "tsv" or (hp.train_file and hp.dev_file) else
        "--task=tsv needs --train_file and --dev_file",
    ],
)
NEVER = 2 ** 31 - 1  # the patience of --patience=0


def main(argv):
    del argv
    import os

    import keras
    import tensorflow as tf

    from zoo import create_model, recipe_support
    from zoo.data import xlnet_classification
    from zoo.models.xlnet import XLNetBackbone, XLNetClassifier
    from zoo.models.xlnet.xlnet_serving import classifier_endpoints
    from zoo.recipe_support import xlnet as support
    from zoo.paths import write_json_atomically
    from zoo.registry import trainable_params
    from zoo.training.early_stopping import EarlyStopping
    from zoo.training.export import export_saved_model
    from zoo.training.schedules import LinearWarmupDecay
    from zoo.training.trainer import CONFIG_FILE, Trainer

    hp = SPEC.values()
    strategy, chief = recipe_support.setup(hp)
    task = xlnet_classification.load_task(hp.task, data_dir=hp.data_dir, download=hp.download, seed=hp.seed,
                                          train_file=hp.train_file, dev_file=hp.dev_file, test_file=hp.test_file,
                                          text_a_column=hp.text_a_column, text_b_column=hp.text_b_column,
                                          label_column=hp.label_column, regression=hp.regression,
                                          max_examples=hp.max_examples)
    # A resumed run keeps its backbone (config.json); --init_checkpoint is read by a new one only.
    recorded = _recorded_config(os.path.join(hp.model_dir, CONFIG_FILE))
    resumed = tf.train.latest_checkpoint(hp.model_dir) is not None and recorded is not None
    source = support.init_source(hp.init_checkpoint) if hp.init_checkpoint and not resumed else None
    texts = [text for a, b, _ in task.splits["train"] for text in (a, b) if text]
    vocabulary = support.run_vocabulary(hp.model_dir, texts, spiece_model=hp.spiece_model, vocab_size=hp.vocab_size,
                                        chief=chief, source=source, init_checkpoint=hp.init_checkpoint, save=False)
    if source is not None:
        support.check_vocabulary(vocabulary, source, hp.init_checkpoint)
    backbone_args = (recorded or {}).get(support.BACKBONE_KEY) if resumed else None
    if backbone_args is None and source is not None:
        backbone_args = {**source.backbone}
    arrays = {split: xlnet_classification.encode_examples(examples, vocabulary, hp.max_seq_length,
                                                          is_regression=task.is_regression)
              for split, examples in task.splits.items()}
    # Every split but train has labels (GLUE's unlabelled test sets are not loaded); imdb's test is its dev.
    labelled = [s for s in task.splits if s != "train" and not (s == "test" and task.splits[s] is task.splits["dev"])]

    with strategy.scope():
        dropouts = hp.model_args()
        if backbone_args is not None:  # fine-tuning reads every row forwards: no bi_data
            backbone = XLNetBackbone(**{**backbone_args, **dropouts, "bi_data": False})
        else:
            backbone = create_model(hp.config, vocabulary_size=len(vocabulary), **dropouts)
        model = XLNetClassifier(backbone, task.num_classes, dropout=hp.dropout, clip_norm=hp.clip_norm or None)
        if source is not None:
            support.load_backbone_weights(backbone, source)
        schedule = LinearWarmupDecay(hp.learning_rate, hp.train_steps, warmup_steps=hp.warmup_steps)
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=hp.weight_decay, epsilon=hp.adam_epsilon)
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        model.compile(optimizer=optimizer)
    regression = task.is_regression
    baselines = {s: support.majority_metrics(hp.task, arrays["train"]["labels"], arrays[s]["labels"],
                                             regression=regression) for s in labelled}
    if chief:
        sizes = ", ".join(f"{len(arrays[s]['labels']):,} {s}" for s in arrays)
        start = f"--init_checkpoint={hp.init_checkpoint}" if source else ("resumed" if resumed else "random weights")
        print(f"{task.name}: {sizes} examples, {task.num_classes if task.num_classes > 1 else 'regression'}"
              f"{' classes' if task.num_classes > 1 else ''}; {trainable_params(model):,} parameters ({start}); "
              f"vocabulary {len(vocabulary):,}; {hp.max_seq_length} tokens; {strategy.num_replicas_in_sync} "
              f"replica(s); majority baseline on dev: {_describe(baselines.get('dev', {}))}", flush=True)

    def dataset_fn(ctx):
        return xlnet_classification.make_dataset_fn(arrays["train"], hp.global_batch_size, seed=hp.seed)(ctx)

    def eval_fn(split):
        return xlnet_classification.make_dataset_fn(arrays[split], hp.global_batch_size, training=False)

    @tf.function(reduce_retracing=True, autograph=False)
    def forward(inputs):
        return model(inputs, training=False)

    def glue_extra(split):
        return lambda: support.glue_metrics(hp.task, arrays[split]["labels"],
                                            _predict(forward, arrays[split], task.num_classes), regression=regression)

    glue_extras = regression or hp.task in ("glue/cola", "glue/mrpc", "glue/qqp", "glue/stsb")
    extras = [glue_extra("dev")] if glue_extras else []
    backbone_config = {k: v for k, v in backbone.get_config().items() if k not in ("name", "trainable", "dtype")}
    config = hp.run_config(vocabulary_size=len(vocabulary), vocab_sha1=vocabulary.sha1,
                           task_sha1=support.task_sha1(task), **{support.BACKBONE_KEY: backbone_config})
    metric = support.primary_metric(hp.task, regression)
    stopping = EarlyStopping(metric, patience=hp.patience or NEVER, mode="max")
    trainer = Trainer(model, strategy=strategy, model_dir=hp.model_dir, dataset_fn=dataset_fn, config=config,
                      eval_dataset_fn=eval_fn("dev"), eval_extras=extras, early_stopping=stopping,
                      **hp.trainer_args())
    if chief and recorded is None:  # a new run: its vocabulary (config.json then pins its SHA-1)
        vocabulary.save(hp.model_dir)
    logs = trainer.train()
    trainer.restore_best()
    best = {"step": int(logs["best_step"]), metric: float(logs[f"best/{metric}"])}
    trainer.eval_steps = None  # the report sees every example
    report = {"task": hp.task, "best": best, "stopped_early": bool(logs.get("stopped_early"))}
    for split in labelled:
        trainer.eval_extras = [glue_extra(split)]
        results = trainer.evaluate(eval_fn(split))
        report[split] = {k: float(v) for k, v in results.items()}
        report[split]["majority_baseline"] = baselines[split]
    if chief:
        for split in labelled:
            print(f"{split}: {_describe(report[split])} (majority baseline {_describe(baselines[split])})", flush=True)
        print(f"weights of step {best['step']} (best dev {metric} {best[metric]:.4f}); wrote "
              f"{write_json_atomically(os.path.join(hp.model_dir, support.RESULTS_FILE), report)}", flush=True)
    if hp.export_dir:
        assets = {support.VOCAB_FILE: support.vocabulary_file(hp.model_dir, vocabulary, chief)}
        path = export_saved_model(hp.export_dir, model, classifier_endpoints(model), assets=assets, strategy=strategy)
        if chief:
            print(f"exported {path}", flush=True)


def _recorded_config(path):
    """The config.json of a run in --model_dir, or None (none, or damaged: the trainer then says so)."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _predict(forward, arrays, num_classes, batch_size=64):
    """Host predictions of `forward` (the model in inference mode) over `arrays` (class ids, or values for
    regression)."""
    import numpy as np

    out = []
    for start in range(0, len(arrays["labels"]), batch_size):
        inputs = {k: arrays[k][start:start + batch_size] for k in ("token_ids", "segment_ids", "padding_mask")}
        logits = np.asarray(forward(inputs))
        out.append(logits[:, 0] if num_classes == 1 else logits.argmax(-1))
    return np.concatenate(out) if out else np.zeros((0,))


def _describe(metrics):
    return ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()) if isinstance(v, float))


if __name__ == "__main__":
    zoo_flags.run(main)
