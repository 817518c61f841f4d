"""What recipes/transformer_xl_lm.py needs beyond the flags: the run's training and evaluation settings (the
paper's for a paper preset), its data as token streams, the learning-rate schedule and the results file.

    settings = training_settings(hp, PAPER_TRAINING[hp.config], lambda n: FLAGS[n].present, hp.train_steps)
    data = load_data(hp, "word", chief=True)              # vocabulary (<model_dir>/vocab.txt) and ids per split
    layouts = stream_layouts(data.ids, global_batch_size=16, tgt_len=32, eval_tgt_len=32)
    schedule = cosine_schedule(2.5e-4, warmup_step=0, max_step=200000, min_learning_rate=0.0)
"""

import dataclasses

from zoo.errors import ZooError

# Flags a preset's PAPER_TRAINING entry fills when not given (train and evaluation protocol).
TRAINING_KEYS = ("tgt_len", "mem_len", "clamp_len", "same_length", "global_batch_size", "learning_rate",
                 "warmup_step", "max_step", "clip_norm", "eval_tgt_len", "eval_mem_len", "eval_clamp_len",
                 "eval_same_length")
FALLBACK = {"warmup_step": 0, "clip_norm": 0.25}  # train.py's defaults, for a preset without them
# Settings kept out of the recorded config (config.json), so a finished run can be started again to train on.
FREE_SETTINGS = ("train_steps", "max_step")
PAPER_EVAL_BATCH_SIZE = 10  # pytorch/train.py's eval_batch_size, eval.py's --batch_size
PAPER_EVAL_EVERY = 4000  # pytorch/train.py's --eval-interval: eval_every and checkpoint_every of the paper presets
RESULTS_FILE = "results.json"


def training_settings(hp, paper, explicit, train_steps):
    """The run's settings (`TRAINING_KEYS` plus `train_steps`): each flag given (`explicit(name)`), else the
    preset's `PAPER_TRAINING` entry `paper` (None: none), else the flag's default. Then the derived ones:
    `max_step` (the cosine's length) is --max_step, else --train_steps when given, else the preset's;
    `train_steps` is --train_steps, else `max_step` (the original trains max_step steps); `train_steps` None
    with neither is a one-line error. Evaluation, when
    neither the flag nor the preset sets it: `eval_tgt_len` = `tgt_len`, `eval_mem_len` = `mem_len + tgt_len -
    eval_tgt_len` (pytorch/train.py's evaluation: the same attention span), `eval_clamp_len` = `clamp_len`,
    `eval_same_length` = `same_length`."""
    from zoo.recipe_support.language_model import paper_training

    paper = paper or {}
    values = paper_training(hp, paper, explicit, keys=TRAINING_KEYS)
    if not explicit("max_step"):
        values["max_step"] = train_steps if explicit("train_steps") or not paper.get("max_step") else \
            paper["max_step"]
    if values["max_step"] is None:
        raise ZooError("the preset has no max_step in its PAPER_TRAINING; give --train_steps")
    values["train_steps"] = train_steps if explicit("train_steps") else values["max_step"]
    for key, value in FALLBACK.items():
        if values[key] is None:
            values[key] = value
    for key in ("tgt_len", "mem_len"):
        if values[key] is None:
            raise ZooError(f"the preset has no {key} in its PAPER_TRAINING; give --{key}")
    if values["eval_tgt_len"] is None:
        values["eval_tgt_len"] = values["tgt_len"]
    if values["eval_mem_len"] is None:
        values["eval_mem_len"] = max(0, values["mem_len"] + values["tgt_len"] - values["eval_tgt_len"])
    if values["eval_clamp_len"] is None:
        values["eval_clamp_len"] = values["clamp_len"]
    if values["eval_same_length"] is None:
        values["eval_same_length"] = values["same_length"]
    if values["warmup_step"] >= values["max_step"]:
        raise ZooError(f"--warmup_step={values['warmup_step']} must be below --max_step={values['max_step']} "
                       "(the schedule's length; default --train_steps); lower --warmup_step")
    return values


@dataclasses.dataclass
class LMData:
    """A run's token streams: `name` of the source, `vocab` (an `LMVocabulary` or a `ByteVocabulary`),
    `ids` {split: list of int32 arrays (documents, joined into streams)}."""

    name: str
    vocab: object
    ids: dict


def load_data(hp, level, *, chief):
    """The `LMData` of the run: `--enwik8_file` (bytes, the standard preparation: `zoo.data.enwik8`), or the
    `open_lm_corpus` source (embedded corpus, `--text_files`, tfds `--dataset`) at word level (an
    `LMVocabulary` of the training text: `--vocab_size`, `--min_count`, `--lowercase`, `--tokenizer`: see
    `word_tokenizer`) or char level (UTF-8
    bytes, the vocabulary of the bytes of every split). The vocabulary is written to (or, on resume, checked
    against) `<model_dir>/vocab.txt`."""
    from zoo.data import enwik8
    from zoo.data import language_modeling as lm
    from zoo.data.lm_vocabulary import LMVocabulary
    from zoo.recipe_support.language_model import keep_vocabulary

    tokenizer = word_tokenizer(hp)
    if hp.enwik8_file:
        vocab, splits = enwik8.open_enwik8(hp.enwik8_file, hp.enwik8_heldout_bytes)
        data = LMData("enwik8", vocab, {split: [ids] for split, ids in splits.items()})
    else:
        corpus = lm.open_lm_corpus(hp.dataset, text_files=hp.text_files, validation_files=hp.validation_files,
                                   test_files=hp.test_files, validation_fraction=hp.validation_fraction,
                                   data_dir=hp.data_dir, download=hp.download,
                                   max_documents=hp.max_documents or None, seed=hp.seed,
                                   split_documents=level != "word" or tokenizer == "words")
        if level == "word":
            vocab = LMVocabulary.build(corpus.documents("train"), "word", vocab_size=hp.vocab_size or None,
                                       min_count=hp.min_count, lowercase=hp.lowercase, tokenizer=tokenizer)
            ids = {split: lm.encode_documents(vocab, docs) for split, docs in corpus.splits.items()}
        else:
            docs = {split: enwik8.byte_documents(d) for split, d in corpus.splits.items()}
            vocab = enwik8.ByteVocabulary.build([a for split in docs.values() for a in split])
            ids = {split: [vocab.encode(a) for a in arrays] for split, arrays in docs.items()}
        data = LMData(corpus.name, vocab, ids)
    if isinstance(data.vocab, enwik8.ByteVocabulary):
        load = enwik8.ByteVocabulary.load
    else:
        load = lambda path: LMVocabulary.load(path, "word", hp.lowercase, tokenizer)  # noqa: E731
    keep_vocabulary(hp.model_dir, data.vocab, _checked(load), chief=chief)
    return data


def word_tokenizer(hp):
    """--tokenizer, else "whitespace_eos" (Transformer-XL's WikiText-103 reading) for `--text_files` and
    "words" (punctuation split off) for the raw text of the embedded corpus and tensorflow-datasets."""
    return hp.tokenizer or ("whitespace_eos" if hp.text_files else "words")


def _checked(load):
    """`load`, with a vocab.txt of the other kind (word / byte) reported as the vocabulary mismatch it is."""
    def read(path):
        try:
            return load(path)
        except ZooError as e:
            raise ZooError(f"{path} holds another kind of vocabulary than this data and flags give ({e}); use a "
                           "new --model_dir, or the data and flags of that run to resume it") from None
    return read


def eval_batch_size(flag, global_batch_size, *, paper):
    """The streams of the validation and test splits: `flag` (--eval_batch_size), else eval.py's 10 for a paper
    preset (`paper`), else `global_batch_size`; never more than `global_batch_size` (the model's memory rows)."""
    value = flag or (min(PAPER_EVAL_BATCH_SIZE, global_batch_size) if paper else global_batch_size)
    if value > global_batch_size:
        raise ZooError(f"--eval_batch_size={value} is above --global_batch_size={global_batch_size} (the memory "
                       f"rows); give --eval_batch_size={global_batch_size} or less")
    return value


def intervals(trainer_args, *, paper, explicit):
    """`trainer_args` with train.py's `PAPER_EVAL_EVERY` as `eval_every` and `checkpoint_every` for a paper
    preset (`paper`) where the flag was not given (`explicit(name)` False); the tiny preset keeps the flags'."""
    args = dict(trainer_args)
    for flag in ("eval_every", "checkpoint_every"):
        if paper and not explicit(flag):
            args[flag] = PAPER_EVAL_EVERY
    return args


def stream_layouts(ids, *, global_batch_size, tgt_len, eval_tgt_len, eval_batch_size=None):
    """{split: `StreamLayout`}: every split as contiguous streams (`boundaries="continue"`: Transformer-XL's
    LMOrderedIterator), training as `global_batch_size` streams in rows of `tgt_len` tokens, the others as
    `eval_batch_size` (default `global_batch_size`) streams of `eval_tgt_len`."""
    from zoo.data import language_modeling as lm

    layouts = {}
    for split, documents in ids.items():
        T = tgt_len if split == "train" else eval_tgt_len
        B = global_batch_size if split == "train" else eval_batch_size or global_batch_size
        try:
            layouts[split] = lm.stream_layout(documents, B, T, "continue")
        except ZooError as e:
            raise ZooError(f"the {split} split: {e}") from None
    return layouts


def check_cutoffs(cutoffs, vocabulary_size, level):
    """A one-line error unless `cutoffs` (the adaptive softmax's cluster bounds) rise strictly between 0 and
    `vocabulary_size` (char level: none; bytes use a plain softmax)."""
    cutoffs = list(cutoffs or ())
    if level == "char" and cutoffs:
        raise ZooError(f"--cutoffs={','.join(map(str, cutoffs))} is for word level; bytes use a plain softmax, "
                       "drop --cutoffs")
    if any(b <= a for a, b in zip([0] + cutoffs, cutoffs + [vocabulary_size])):
        raise ZooError(f"--cutoffs={','.join(map(str, cutoffs))} must rise strictly and stay below the vocabulary "
                       f"size {vocabulary_size:,}; give smaller --cutoffs (or --cutoffs= for a plain softmax)")
    return cutoffs


def cosine_schedule(learning_rate, *, warmup_step, max_step, min_learning_rate=0.0):
    """The original's rate (pytorch/train.py `--scheduler cosine`): cosine annealing from `learning_rate` to
    `min_learning_rate` (eta_min) over `max_step` updates; with `warmup_step`, a linear warm-up from 0 first
    and the cosine over the remaining steps (as tf/train_gpu.py; train.py starts its cosine at step 0 and
    gives the very first update the full rate). A Keras `CosineDecay` of the optimizer's step."""
    import keras

    if min_learning_rate > learning_rate:
        raise ZooError(f"--min_learning_rate={min_learning_rate:g} is above --learning_rate={learning_rate:g}")
    alpha = min_learning_rate / learning_rate
    if warmup_step:
        return keras.optimizers.schedules.CosineDecay(0.0, decay_steps=max_step - warmup_step, alpha=alpha,
                                                      warmup_target=learning_rate, warmup_steps=warmup_step)
    return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max_step, alpha=alpha)
