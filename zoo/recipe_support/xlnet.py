"""What recipes/xlnet_pretrain.py and recipes/xlnet_classify.py need beyond the flags: XLNet-Large's pretraining
optimisation settings (the rest of its table is zoo.models.xlnet.PAPER_TRAINING), the run's SentencePiece
vocabulary, the held-out documents, the unigram baseline, the starting backbone of a fine-tuning run (an
xlnet_pretrain run directory or keras-hub XLNet weights) and the GLUE metrics of the classification report.

    training = paper_training(hp, given, use_paper=hp.paper_training)     # XLNet-Large's values not given
    vocabulary = run_vocabulary(model_dir, documents, spiece_model=None, vocab_size=1000, chief=True)
    start = init_source("runs/xlnet_pretrain")        # an InitSource: kind, path, backbone args, spiece.model
    load_backbone_weights(backbone, start)            # into an XLNetBackbone(**start.backbone)
    glue_metrics("glue/cola", labels=[1, 0, 1], predictions=[1, 1, 1])   # {"accuracy", "matthews_corrcoef"}
"""

import dataclasses
import json
import os

import numpy as np

from zoo.errors import ZooError

VOCAB_FILE = "spiece.model"  # under --model_dir and in the exports' assets
RESULTS_FILE = "results.json"  # xlnet_classify's report, under --model_dir
BACKBONE_KEY = "backbone"  # config.json of an xlnet_pretrain run: the XLNetBackbone arguments (a fine-tune reads it)

# XLNet-Large's optimisation, which `zoo.models.xlnet.PAPER_TRAINING["xlnet_large"]` (the README command's data
# and model flags: global batch 2048, seq_len 512, reuse_len 256, mem_len 384, perm_size 256, num_predict 85,
# mask_alpha 6, mask_beta 1, bi_data, dropout 0.1 / 0.1) leaves out: the paper's (§3.1 and the appendix's
# hyper-parameter table; it states batch 8192 where the README's command has 2048) 500K steps of Adam with weight
# decay 0.01 and epsilon 1e-6, peak 4e-4 after 40K warm-up steps then linear decay; train_gpu.py clips the global
# gradient norm at 1.0.
PAPER_OPTIMIZATION = {"train_steps": 500_000, "learning_rate": 4e-4, "warmup_steps": 40_000, "weight_decay": 0.01,
                      "adam_epsilon": 1e-6, "clip_norm": 1.0}


def paper_table():
    """XLNet-Large's pretraining values: `zoo.models.xlnet.PAPER_TRAINING["xlnet_large"]` and `PAPER_OPTIMIZATION`."""
    from zoo.models.xlnet import PAPER_TRAINING

    return {**PAPER_OPTIMIZATION, **PAPER_TRAINING["xlnet_large"]}


def paper_training(hp, given, use_paper):
    """The run's values of the `paper_table()` keys: each flag's value, or with `use_paper` the paper's value
    for every flag not given on the command line (`given(name)` False)."""
    table = paper_table()
    values = {key: hp[key] for key in table}
    if use_paper:
        values.update({key: value for key, value in table.items() if not given(key)})
    return values


def check_pretraining(training, replicas):
    """One-line errors, each naming its flag, for `paper_training`'s values that the data, the model or the
    replica count cannot honour, checked before any slow work (`zoo.data.xlnet_pretraining.check_options` checks
    the sequence layout: reuse_len, perm_size, num_predict, spans)."""
    t = training
    if t["warmup_steps"] > t["train_steps"]:
        raise ZooError(f"--warmup_steps={t['warmup_steps']} exceeds --train_steps={t['train_steps']}; lower "
                       "--warmup_steps")
    per_replica, rest = divmod(t["global_batch_size"], replicas)
    if rest:
        raise ZooError(f"--global_batch_size={t['global_batch_size']} must be a multiple of the {replicas} "
                       f"replicas; use e.g. --global_batch_size={max(1, per_replica) * replicas}")
    if t["bi_data"] and per_replica % 2:
        raise ZooError(f"--bi_data needs an even batch per replica, but --global_batch_size="
                       f"{t['global_batch_size']} gives {per_replica} on each of {replicas} replica(s); use "
                       f"--global_batch_size={2 * replicas * max(1, (per_replica + 1) // 2)} or drop --bi_data")


# === Pretraining data ===


def split_documents(source, validation_fraction, seed):
    """`(train, held_out)` documents (lists of sentences) of `source` (`text_sources.iter_documents`
    arguments): a seeded `validation_fraction` of the documents held out (`language_modeling.hold_out`)."""
    from zoo.data import language_modeling, text_sources

    documents = text_sources.load_documents(**source)
    if not documents:
        raise ZooError("the corpus has no document; give --input_files or --tfds_name with text")
    kept, held = language_modeling.hold_out(["\n".join(d) for d in documents], validation_fraction, seed,
                                            "the corpus")
    return [d.splitlines() for d in kept], [d.splitlines() for d in held]


def run_vocabulary(model_dir, documents, *, spiece_model, vocab_size, chief, source=None, init_checkpoint=None,
                   save=True):
    """The run's `XLNetVocabulary`: `--spiece_model`; else the `spiece.model` of a recorded run in
    `model_dir` (one with config.json: a resumed run keeps its own); else the one beside `source` (the
    checkpoint `--init_checkpoint=init_checkpoint` starts from); else a SentencePiece unigram model with
    XLNet's special ids trained on `documents`. With `save`, unless the run is recorded the chief saves it in
    `model_dir` (config.json then pins its SHA-1, so another one is refused on resume)."""
    from zoo.data import xlnet_vocabulary
    from zoo.training.trainer import CONFIG_FILE

    recorded = os.path.exists(os.path.join(model_dir, CONFIG_FILE))
    own = os.path.join(model_dir, VOCAB_FILE)
    if spiece_model:
        vocabulary = load_vocabulary(spiece_model, "--spiece_model")
    elif recorded and os.path.exists(own):
        vocabulary = load_vocabulary(own, "--model_dir")
    elif source is not None:
        if source.vocabulary is None:
            raise ZooError(f"--init_checkpoint={init_checkpoint} has no spiece.model beside it; pass its "
                           "SentencePiece model as --spiece_model")
        vocabulary = load_vocabulary(source.vocabulary, "--init_checkpoint")
    else:
        vocabulary = xlnet_vocabulary.train_xlnet_vocabulary(documents, vocab_size)
    if save and chief and not recorded:
        vocabulary.save(model_dir)
    return vocabulary


def load_vocabulary(path, flag):
    """An `XLNetVocabulary` read from a SentencePiece `.model` file; a missing file is one line naming `flag`."""
    from zoo.data import xlnet_vocabulary

    if not os.path.isfile(path):
        raise ZooError(f"{flag}={path}: no SentencePiece model there; give a spiece.model file")
    return xlnet_vocabulary.load_xlnet_vocabulary(path, flag=flag)


def vocabulary_file(model_dir, vocabulary, chief):
    """The vocabulary file for the export's assets: the run's own; other workers save a private copy."""
    import tempfile

    directory = model_dir if chief else tempfile.mkdtemp(prefix="zoo-spiece-")
    path = os.path.join(directory, VOCAB_FILE)
    if not os.path.exists(path):
        vocabulary.save(directory)
    return path


def held_out_layout(documents, vocabulary, *, seed, **shape):
    """The `PretrainingLayout` of the held-out documents (one pass), or one line naming --validation_fraction
    when they are too short to fill the batch."""
    from zoo.data import xlnet_pretraining

    try:
        return xlnet_pretraining.create_layout(documents, vocabulary, seed=seed, **shape)
    except ZooError as e:
        raise ZooError(f"the held-out documents (--validation_fraction): {e}; raise --validation_fraction") from None


def unigram_accuracy(train, held_out, train_steps=200):
    """Held-out target accuracy of always predicting the most frequent training target (of the first
    `train_steps` global batches): the baseline the model must beat. `train`, `held_out`: `PretrainingLayout`s
    (`target_ids`)."""
    counts = np.bincount(train.target_ids(max_steps=train_steps))
    targets = held_out.target_ids()
    return float(np.mean(targets == np.argmax(counts))) if targets.size and counts.size else 0.0


# === Fine-tuning: where the backbone starts ===


@dataclasses.dataclass
class InitSource:
    """A fine-tuning run's starting point: `kind` ("pretrain_run" | "keras_hub"), `path` (the checkpoint
    prefix or weights file), `backbone` (XLNetBackbone arguments), `vocabulary` (its spiece.model path, or
    None when it has none beside it), `vocab_sha1` (the vocabulary an xlnet_pretrain run recorded)."""

    kind: str
    path: str
    backbone: dict
    vocabulary: str = None
    vocab_sha1: str = None


def init_source(init_checkpoint):
    """The `InitSource` of `--init_checkpoint`: an xlnet_pretrain run directory (config.json with the
    backbone's arguments, spiece.model, TF checkpoints), or keras-hub XLNet weights (a preset directory, or a
    bare `.weights.h5` whose shapes give the sizes; `zoo.models.xlnet.xlnet_checkpoints` reads both)."""
    import tensorflow as tf

    path = init_checkpoint
    if not os.path.exists(path):
        raise ZooError(f"--init_checkpoint={path} does not exist; give an xlnet_pretrain --model_dir or keras-hub "
                       "XLNetBackbone weights (.weights.h5 or a preset directory)")
    directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    beside = os.path.join(directory, VOCAB_FILE)
    beside = beside if os.path.exists(beside) else None
    if os.path.isdir(path) and tf.train.latest_checkpoint(path):
        config = _read_json(os.path.join(path, "config.json"), path)
        if BACKBONE_KEY not in config:
            raise ZooError(f"--init_checkpoint={path} is not an xlnet_pretrain run (its config.json has no "
                           f"{BACKBONE_KEY!r}); give a run directory of recipes/xlnet_pretrain.py")
        return InitSource("pretrain_run", tf.train.latest_checkpoint(path), dict(config[BACKBONE_KEY]), beside,
                          config.get("vocab_sha1"))
    from zoo.models.xlnet.xlnet_checkpoints import locate_keras_hub_weights  # the one reader of keras-hub layouts

    _, sizes = locate_keras_hub_weights(path, "--init_checkpoint")
    return InitSource("keras_hub", path, {k: int(v) for k, v in sizes.items()}, beside)


def _read_json(path, flag_value):
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
        assert isinstance(value, dict)
        return value
    except (OSError, ValueError, AssertionError):
        raise ZooError(f"--init_checkpoint={flag_value}: {path} is missing or not a JSON object; an xlnet_pretrain "
                       "run directory or a keras-hub preset has one") from None


def check_vocabulary(vocabulary, source, init_checkpoint):
    """One line when the run's vocabulary cannot be the checkpoint's: another model than the one an
    xlnet_pretrain run recorded, or another size than the checkpoint's embedding."""
    if source.vocab_sha1 and vocabulary.sha1 != source.vocab_sha1:
        raise ZooError(f"the run's spiece.model (SHA-1 {vocabulary.sha1[:12]}) is not the one --init_checkpoint="
                       f"{init_checkpoint} was trained with ({source.vocab_sha1[:12]}); drop --spiece_model to use "
                       "the checkpoint's own")
    size = source.backbone["vocabulary_size"]
    if len(vocabulary) != size:
        raise ZooError(f"--init_checkpoint={init_checkpoint} has a vocabulary of {size} pieces but the run's "
                       f"spiece.model has {len(vocabulary)}; pass the checkpoint's own model as --spiece_model")


def load_backbone_weights(backbone, source):
    """Copies `source`'s weights into `backbone` (built): the backbone of an xlnet_pretrain checkpoint (its
    `lm_bias`, memories and optimizer slots are left behind), or keras-hub weights by path
    (`zoo.models.xlnet.xlnet_checkpoints.load_keras_hub_weights`). A checkpoint of another shape is one line."""
    import tensorflow as tf

    if source.kind == "keras_hub":
        from zoo.models.xlnet.xlnet_checkpoints import load_keras_hub_weights

        return load_keras_hub_weights(backbone, source.path)
    from zoo.models.xlnet import XLNetPretrainer

    # A Trainer checkpoint reaches every trainable variable through the optimizer (model/optimizer/
    # _trainable_variables/<i>, in the pretrainer's order), the others through the model's attributes: follow
    # both, as a resumed run does, so the check below covers every weight.
    order = XLNetPretrainer(backbone, 1, mem_len=0, reuse_len=0).trainable_variables
    checkpoint = tf.train.Checkpoint(model=tf.train.Checkpoint(
        backbone=backbone, optimizer=tf.train.Checkpoint(_trainable_variables=list(order))))
    try:
        status = checkpoint.read(source.path)
        status.expect_partial()  # the pretrainer's lm_bias, memories and optimizer stay behind
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
        raise ZooError(f"--init_checkpoint: {source.path} does not hold this backbone's weights "
                       f"({str(e).splitlines()[0][:200]})") from None
    return source.path


# === Classification report ===

PRIMARY = {"glue/cola": "matthews_corrcoef", "glue/stsb": "pearson"}  # else accuracy (GLUE's headline numbers)
WITH_F1 = ("glue/mrpc", "glue/qqp")


def primary_metric(task, regression=False):
    """The dev metric early stopping watches: GLUE's headline one for `task` (Pearson for any regression)."""
    return "pearson" if regression else PRIMARY.get(task, "accuracy")


def glue_metrics(task, labels, predictions, regression=False):
    """GLUE's metrics of `predictions` against `labels`, computed as GLUE's own scripts do (scikit-learn,
    scipy): accuracy, plus F1 of class 1 for MRPC/QQP and Matthews' correlation for CoLA; Pearson and
    Spearman correlations for STS-B and any `regression` task (0 where a side is constant)."""
    import warnings

    from scipy import stats
    from sklearn import metrics

    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if regression or task == "glue/stsb":
        if labels.size < 2 or np.ptp(labels) == 0 or np.ptp(predictions) == 0:
            return {"pearson": 0.0, "spearman": 0.0}
        return {"pearson": float(stats.pearsonr(labels, predictions)[0]),
                "spearman": float(stats.spearmanr(labels, predictions)[0])}
    out = {"accuracy": float(np.mean(labels == predictions)) if labels.size else 0.0}
    with warnings.catch_warnings():  # an empty class gives 0, as GLUE's scorer
        warnings.simplefilter("ignore")
        if task in WITH_F1:
            out["f1"] = float(metrics.f1_score(labels, predictions, pos_label=1, zero_division=0))
        if task == "glue/cola":
            out["matthews_corrcoef"] = float(metrics.matthews_corrcoef(labels, predictions))
    return out


def majority_metrics(task, train_labels, labels, regression=False):
    """The metrics of always predicting the most frequent training label (its mean for regression)."""
    train_labels = np.asarray(train_labels)
    if regression or task == "glue/stsb":
        return glue_metrics(task, labels, np.full(len(labels), float(np.mean(train_labels))), regression=True)
    values, counts = np.unique(train_labels, return_counts=True)
    return glue_metrics(task, labels, np.full(len(labels), values[np.argmax(counts)]))


def task_sha1(task):
    """SHA-1 of a `ClassificationData`'s examples and labels: config.json pins the data a run trains on."""
    import hashlib

    text = json.dumps({"labels": task.label_names, "splits": task.splits}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()
