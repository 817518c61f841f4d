"""Where a BERT pretraining run's vocabulary and TFRecord shards come from (recipes/bert_pretrain.py).

One code path: training always streams shards. `--train_files` names shards written by
recipes/bert_create_data.py; without it the documents (the embedded corpus, `--input_files` or `--tfds_name`)
are made into shards in `<model_dir>/data/` on the first run and reused after.

    vocabulary = run_vocabulary(model_dir, vocab_file=None, vocab_size=8000, train_files=None,
                                source={}, vocab_documents=20000)          # a zoo.data.bert_vocabulary.BertVocabulary
    train_files, eval_files = run_shards(model_dir, vocabulary, source={}, train_files=None, eval_files=None,
                                         seq_length=128, max_predictions=20, dupe_factor=5, seed=0,
                                         eval_fraction=0.1)
"""

import itertools
import os

from zoo.errors import ZooError

DATA_DIR = "data"  # under --model_dir
# The vocabulary `wordpiece.train_vocabulary` learns from the whole embedded corpus at this size (946 tokens),
# shipped so that the default run skips 13 s of training. Regenerate: python -m zoo.recipe_support.bert_data
DEFAULT_VOCAB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_vocab.txt")
DEFAULT_VOCAB_SIZE = 8000
# KoBERT's size. A SentencePiece vocabulary of the whole Korean corpus trains in about 1 s: none is shipped.
DEFAULT_SPIECE_SIZE = 8002
KINDS = ("wordpiece", "sentencepiece")


def default_vocab_size(tokenizer):
    """`--vocab_size` when not given: 8000 WordPiece tokens, or KoBERT's 8,002 SentencePiece pieces."""
    return DEFAULT_SPIECE_SIZE if tokenizer == "sentencepiece" else DEFAULT_VOCAB_SIZE


def run_vocabulary(model_dir, *, vocab_file, vocab_size, train_files, source, vocab_documents, tokenizer="wordpiece",
                   tokenizer_flag=None, init_checkpoint=None):
    """The run's vocabulary (a `BertVocabulary`, WordPiece or SentencePiece).

    In order: `--vocab_file` (vocab.txt or a .model); the run's own `<model_dir>/vocab.txt` or `spiece.model` (a
    resumed run keeps its vocabulary); the one written beside `--train_files`; the one beside `--init_checkpoint`;
    else one of kind `tokenizer` trained on the first `vocab_documents` documents of `source` (for the whole
    embedded English corpus at the default size, the shipped WordPiece `DEFAULT_VOCAB`, which is that).
    `tokenizer_flag` (`--tokenizer` as given, or None) must agree with the kind of a vocabulary file.
    """
    import tensorflow as tf

    from zoo.data import bert_vocabulary

    vocabulary = None
    own = bert_vocabulary.vocabulary_file_in(model_dir)
    if vocab_file:
        vocabulary = bert_vocabulary.load_bert_vocabulary(vocab_file)
    elif own:
        vocabulary = bert_vocabulary.load_bert_vocabulary(own)
    elif train_files:
        if not tf.io.gfile.glob(train_files.split(",")[0].strip()):
            raise ZooError(f"--train_files={train_files!r} matches no file; give the shards "
                           "recipes/bert_create_data.py wrote, e.g. '<output_dir>/*.tfrecord'")
        beside = _vocabulary_beside_shards(train_files)
        if beside is None:
            raise ZooError(f"--train_files={train_files}: no vocab.txt or spiece.model beside the shards; pass "
                           "--vocab_file (the vocabulary recipes/bert_create_data.py made them with)")
        vocabulary = bert_vocabulary.load_bert_vocabulary(beside)
    elif init_checkpoint:
        vocabulary = checkpoint_run_vocabulary(init_checkpoint)
    if vocabulary is not None:
        if tokenizer_flag and tokenizer_flag != vocabulary.kind:
            raise ZooError(f"--tokenizer={tokenizer_flag} but the vocabulary is {vocabulary.kind} "
                           f"({vocabulary.file_name}); drop --tokenizer or pass a matching --vocab_file")
        return vocabulary
    return train_run_vocabulary(source, vocab_size, vocab_documents, tokenizer)


def checkpoint_run_vocabulary(init_checkpoint):
    """The `BertVocabulary` beside `--init_checkpoint` (its vocab.txt or SentencePiece model); one line if none."""
    from zoo.data import bert_vocabulary
    from zoo.models.bert.bert_checkpoints import checkpoint_vocabulary

    beside = checkpoint_vocabulary(init_checkpoint)
    if beside is None:
        raise ZooError(f"--init_checkpoint={init_checkpoint} has no vocab.txt or spiece.model beside it; pass "
                       "the checkpoint's vocabulary as --vocab_file")
    return bert_vocabulary.load_bert_vocabulary(beside, flag="--init_checkpoint")


def init_backbone_config(init_checkpoint, vocabulary, seq_length):
    """`BertBackbone` arguments of `--init_checkpoint`, checked against the run: its vocabulary size, its
    position table (`--seq_length`), and its casing (zoo's WordPiece tokenizer is uncased only)."""
    from zoo.models.bert import bert_checkpoints

    config = bert_checkpoints.backbone_config(init_checkpoint)
    if config["vocabulary_size"] != len(vocabulary):
        raise ZooError(f"--init_checkpoint={init_checkpoint} has a vocabulary of {config['vocabulary_size']} (its "
                       f"config) but the run's {vocabulary.kind} vocabulary has {len(vocabulary)}; pass the "
                       "checkpoint's own vocabulary as --vocab_file")
    if seq_length > config["max_sequence_length"]:
        raise ZooError(f"--seq_length={seq_length} exceeds the {config['max_sequence_length']} positions of "
                       f"--init_checkpoint={init_checkpoint}; use --seq_length={config['max_sequence_length']} or "
                       "less")
    check_uncased(init_checkpoint, vocabulary)
    return config


def check_uncased(init_checkpoint, vocabulary):
    """One line when `--init_checkpoint` is a cased WordPiece model: zoo's WordPiece tokenizer lowercases."""
    if vocabulary.kind == "wordpiece" and _cased(init_checkpoint):
        raise ZooError(f"--init_checkpoint={init_checkpoint} is a cased WordPiece model (its tokenizer config "
                       "does not lowercase) but zoo's WordPiece tokenizer is uncased only; use an uncased checkpoint")


def _cased(checkpoint):
    """True when the tokenizer config beside `checkpoint` keeps case: Hugging Face `tokenizer_config.json`
    with `"do_lower_case": false`, or a keras-hub preset's `tokenizer.json` with `"lowercase": false`."""
    import json

    directory = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(os.path.abspath(checkpoint))
    for name, read in (("tokenizer_config.json", lambda c: c.get("do_lower_case", True)),
                       ("tokenizer.json", lambda c: c.get("config", {}).get("lowercase", True))):
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                config = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and read(config) is False:
            return True
    return False


def config_defaults(config):
    """(tokenizer, corpus) of bert_pretrain's `--config` when `--tokenizer` / `--corpus` are not given."""
    return ("sentencepiece", "ko") if config.startswith("kobert") else ("wordpiece", "en")


def run_config(hp, vocabulary, backbone=None):
    """bert_pretrain's config.json (what must match to resume). For the flags bert_pretrain had before KoBERT
    it is exactly what that recipe wrote: `vocab_size` resolved to its effective default, and the flags added
    since (`tokenizer`, `corpus`, `whole_word_mask`) present only when not at their defaults for `--config`.
    `backbone`: the `--init_checkpoint` arguments (`init_backbone_config`) of a run that started from one."""
    tokenizer, corpus = config_defaults(hp.config)
    config = hp.run_config(vocabulary_size=len(vocabulary), vocab_sha1=vocabulary.sha1)
    config["vocab_size"] = hp.vocab_size or default_vocab_size(hp.tokenizer or tokenizer)
    for name, default in (("tokenizer", tokenizer), ("corpus", corpus), ("whole_word_mask", False)):
        if config.get(name) in (None, default):
            config.pop(name, None)
    if backbone is not None:
        config["init_backbone"] = dict(backbone)
    return config


def train_run_vocabulary(source, vocab_size, vocab_documents, tokenizer):
    """A vocabulary of kind `tokenizer` trained on the first `vocab_documents` documents of `source`, or the
    shipped WordPiece one when that is the whole embedded English corpus at the default size."""
    import tensorflow as tf

    from zoo.data import bert_vocabulary, text_sources, wordpiece

    if tokenizer not in KINDS:
        raise ZooError(f"unknown --tokenizer={tokenizer!r}; choose one of {', '.join(KINDS)}")
    documents = list(itertools.islice(text_sources.iter_documents(**source), vocab_documents))
    if tokenizer == "sentencepiece":
        return bert_vocabulary.train_sentencepiece_vocabulary(documents, vocab_size)
    english = _embedded(source) and source.get("corpus", "en") == "en"
    shipped = english and vocab_size == DEFAULT_VOCAB_SIZE and len(documents) == len(text_sources.load_documents())
    if shipped and tf.io.gfile.exists(DEFAULT_VOCAB):
        return bert_vocabulary.load_bert_vocabulary(DEFAULT_VOCAB)
    return bert_vocabulary.BertVocabulary.from_wordpiece(wordpiece.train_vocabulary(documents, vocab_size))


def train_default_vocabulary():
    """The vocabulary `DEFAULT_VOCAB` holds, trained again (13 s on 2 cores): a WordPiece token list."""
    from zoo.data import text_sources, wordpiece

    return wordpiece.train_vocabulary(text_sources.load_documents(), DEFAULT_VOCAB_SIZE)


def run_shards(model_dir, vocabulary, *, source, train_files, eval_files, seq_length, max_predictions, dupe_factor,
               seed, eval_fraction, verbose=True, chief=True, wait=3600.0, whole_word_mask=False):
    """`(train_files, eval_files)`: checked shard lists (`eval_files` None when there is no held-out split).

    Without `train_files`, the documents of `source` (`text_sources.iter_documents` arguments; {} is the
    embedded corpus, {"corpus": "ko"} the Korean one) are written to `<model_dir>/data/` with an
    `eval_fraction` held-out split, once, by the chief; the other workers wait (at most `wait` seconds) for its
    `metadata.json`, written last. `vocabulary`: a `BertVocabulary` (or a WordPiece token list).
    """
    from zoo.data import bert_shards

    if not train_files:
        data_dir = os.path.join(model_dir, DATA_DIR)
        if not chief:
            _wait_for_shards(data_dir, wait)
        settings = dict(seq_length=seq_length, max_predictions=max_predictions, dupe_factor=dupe_factor, seed=seed,
                        eval_fraction=eval_fraction, whole_word_mask=whole_word_mask)
        if not _embedded(source):
            train_files, made_eval = _ensure_shards(data_dir, vocabulary, source, settings, verbose)
        else:
            train_files, made_eval = bert_shards.ensure_default_shards(
                data_dir, vocabulary, max_documents=source.get("max_documents"), corpus=source.get("corpus"),
                verbose=verbose, **settings)
        eval_files = eval_files or made_eval
    sha1 = bert_shards.vocabulary_sha1(vocabulary)
    checked = dict(vocab_sha1=sha1, seq_length=seq_length, max_predictions=max_predictions)
    train = bert_shards.check_shards(train_files, flag="--train_files", **checked)
    held_out = bert_shards.check_shards(eval_files, flag="--eval_files", **checked) if eval_files else None
    return train, held_out


def _wait_for_shards(data_dir, wait):
    import time

    from zoo.data import bert_shard_format as fmt

    start = time.monotonic()
    while fmt.read_metadata(data_dir) is None:
        if time.monotonic() - start > wait:
            raise ZooError(f"the chief did not finish the shards in {data_dir} within {wait:g} s; check the chief's "
                           "log, or make them first with recipes/bert_create_data.py and pass --train_files")
        time.sleep(2.0)


def _embedded(source):
    """True when `source` (`iter_documents` arguments) names the embedded corpus."""
    return not (source.get("input_files") or source.get("tfds_name"))


def _ensure_shards(data_dir, vocabulary, source, settings, verbose):
    """Shards of `source` in `data_dir`: reused when complete, else written (to a staging name, then renamed,
    so workers racing to create them leave one complete copy)."""
    import tensorflow as tf

    from zoo.data import bert_shard_format as fmt
    from zoo.data import bert_shards

    if fmt.read_metadata(data_dir) is None:
        if tf.io.gfile.exists(data_dir):  # an incomplete earlier attempt: redo it in place
            bert_shards.write_pretraining_shards(dict(source), vocabulary, data_dir, verbose=verbose, **settings)
        else:
            staging = fmt.temporary_name(data_dir.rstrip("/\\"))
            bert_shards.write_pretraining_shards(dict(source), vocabulary, staging, verbose=verbose, **settings)
            try:
                tf.io.gfile.rename(staging, data_dir)
            except (tf.errors.OpError, OSError):  # another worker got there first
                tf.io.gfile.rmtree(staging)
    eval_pattern = fmt.split_pattern(data_dir, "eval") if settings["eval_fraction"] > 0 else None
    return fmt.split_pattern(data_dir, "train"), eval_pattern


def _vocabulary_beside_shards(pattern):
    """The vocabulary file written beside shards (named in their metadata.json, else either kind's name)."""
    from zoo.data import bert_shard_format as fmt
    from zoo.data import bert_vocabulary

    metadata_path = _beside_shards(pattern, fmt.METADATA_FILE)
    names = list(bert_vocabulary.FILE_NAMES.values())
    if metadata_path:
        names.insert(0, fmt.vocabulary_file(fmt.read_metadata(os.path.dirname(metadata_path))))
    for name in names:
        path = _beside_shards(pattern, name)
        if path:
            return path
    return None


def _beside_shards(pattern, name):
    """`name` in the folder of the first file `pattern` matches, or the folder above (eval shards); or None."""
    import tensorflow as tf

    first = next(iter(sorted(tf.io.gfile.glob(pattern.split(",")[0].strip()))), None)
    if first is None:
        return None  # check_shards reports the empty glob
    directory = os.path.dirname(first)
    for folder in (directory, os.path.dirname(directory)):
        candidate = os.path.join(folder, name)
        if tf.io.gfile.exists(candidate):
            return candidate
    return None


def shard_metadata(files):
    """The `metadata.json` of the folder holding `files` (or the one above), or None."""
    from zoo.data import bert_shard_format as fmt

    path = _beside_shards(files[0], fmt.METADATA_FILE) if files else None
    return fmt.read_metadata(os.path.dirname(path)) if path else None


def unigram_baseline(eval_files, *, seq_length, max_predictions, max_batches=50):
    """Held-out MLM accuracy of always predicting the most frequent masked token (of the first batches read)."""
    import numpy as np

    from zoo.data import bert_pretraining, bert_shards

    ds = bert_shards.make_shard_dataset(eval_files, 256, None, seq_length=seq_length, max_predictions=max_predictions,
                                        eval=True, flag="--eval_files")
    batches = [{k: b[k].numpy() for k in ("mask_ids", "mask_weights")} for b in ds.take(max_batches)]
    if not batches:
        return 0.0
    return bert_pretraining.unigram_baseline({k: np.concatenate([b[k] for b in batches]) for k in batches[0]})


if __name__ == "__main__":  # python -m zoo.recipe_support.bert_data: regenerates DEFAULT_VOCAB
    from zoo.data import wordpiece

    wordpiece.write_vocabulary(train_default_vocabulary(), DEFAULT_VOCAB)
    print(f"wrote {DEFAULT_VOCAB}")
