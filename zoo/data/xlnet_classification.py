"""XLNet sentence(-pair) classification data: GLUE / IMDB from local tensorflow-datasets, TSV files, an embedded
default; encoded as zihangdai/xlnet `classifier_utils.convert_single_example`; `tf.data` batches.

Layout of one example (`encode_pair`): `A <sep> [B <sep>] <cls>`, LEFT-padded to `max_seq_length`; segment ids
A=0 (A's <sep> too), B=1 (B's <sep> too), <cls>=2, padding=4; pad token id 0 as the original; the pair is cut to
`max_seq_length - 3` tokens by `truncate_seq_pair` (the longer one loses its last token, repeatedly; a single
text keeps its first `max_seq_length - 2`). The original's `input_mask` is 1 for PADDING; here it is converted
once, to `padding_mask` = 1 for real tokens (the zoo's convention). Batches: `token_ids`, `segment_ids`,
`padding_mask` int32 [B, T], `labels` int32 [B] (float32 for regression, STS-B), `weights` float32 [B] (0 for the
padding examples that fill an evaluation's last batch, the original's `is_real_example`).

Tasks (`load_task`):
- `glue/<task>` from `--data_dir` (all GLUE tasks; stsb is regression; mnli's "dev" is validation_matched and
  "dev_mismatched" validation_mismatched); GLUE test splits have no labels and are not loaded.
- `imdb_reviews` (train; its labelled test split is "dev" and "test", as the original evaluates on it).
- `tsv`: `--train_file`/`--dev_file`[/`--test_file`] with `text_a_column`, `text_b_column`, `label_column`
  (0-based), a header row skipped; the labels are the sorted set of the training file's (or `regression`).
- `embedded` (default): TOPIC classification (as XLNet's DBpedia / AG News runs) on the embedded English corpus
  (zoo/data/corpus): each thematic part file is one class (`EMBEDDED_TOPICS`: part-00 earth and weather, 01 food
  and household chemistry, 02 animals and plants, 03 machines, 04 everyday objects and their history; 05 and 06
  mix topics and are left out). An example is `EMBEDDED_SENTENCES` = 2 consecutive sentences of a document as
  text_a (non-overlapping; single sentences learn less: dev accuracy 0.52 against 0.64 in the default recipe run),
  the label its part's topic. The split is by DOCUMENT, per topic (seeded): 4 of each part's 20 articles go to
  dev, so dev measures generalisation to unseen articles: 596 train / 148 dev examples (seed 0), 116-127 per
  class in train, 28-32 in dev; the majority baseline on dev is 0.216 (32/148).

Example:
```python
from zoo.data import xlnet_classification, xlnet_vocabulary, text_sources

data = xlnet_classification.load_task("embedded", max_examples=512)     # the first 512 of each split
vocab = xlnet_vocabulary.train_xlnet_vocabulary(text_sources.load_documents(), 500)
train = xlnet_classification.encode_examples(data.splits["train"], vocab, max_seq_length=64)
dataset_fn = xlnet_classification.make_dataset_fn(train, global_batch_size=8)
batch = next(iter(dataset_fn(None)))          # token_ids [8, 64] ... labels [8], weights [8]
data.label_names, data.num_classes            # (['earth_and_weather', ..., 'machines', ...], 5)
```
"""

import csv
import dataclasses
import io

import numpy as np

from zoo.data.distribute import per_replica_batch_size, pipeline_id, shard, stream_seed
from zoo.errors import ZooError

# classifier_utils' ids; its SEG_ID_SEP = 3 is never used there either: a <sep> takes its A's/B's segment id
SEG_ID_A, SEG_ID_B, SEG_ID_CLS, SEG_ID_PAD = 0, 1, 2, 4
FEATURES = ("token_ids", "segment_ids", "padding_mask", "labels", "weights")
# tfds glue config -> (text_a feature, text_b feature or None, label names; None = regression)
GLUE = {
    "cola": ("sentence", None, ["unacceptable", "acceptable"]),
    "sst2": ("sentence", None, ["negative", "positive"]),
    "mrpc": ("sentence1", "sentence2", ["not_equivalent", "equivalent"]),
    "qqp": ("question1", "question2", ["not_duplicate", "duplicate"]),
    "stsb": ("sentence1", "sentence2", None),
    "mnli": ("premise", "hypothesis", ["entailment", "neutral", "contradiction"]),
    "qnli": ("question", "sentence", ["entailment", "not_entailment"]),
    "rte": ("sentence1", "sentence2", ["entailment", "not_entailment"]),
    "wnli": ("sentence1", "sentence2", ["not_entailment", "entailment"]),
}
TASKS = ("embedded", "imdb_reviews", "tsv") + tuple(f"glue/{name}" for name in GLUE)
# the embedded task: part file of zoo/data/corpus -> topic label (part-05/06 mix topics and are left out)
EMBEDDED_TOPICS = {"part-00.txt": "earth_and_weather", "part-01.txt": "food_and_household_chemistry",
                   "part-02.txt": "animals_and_plants", "part-03.txt": "machines",
                   "part-04.txt": "everyday_objects_and_history"}
EMBEDDED_SENTENCES = 2  # consecutive sentences of a document per example
EMBEDDED_DEV_FRACTION = 0.2  # of each topic's documents


@dataclasses.dataclass
class ClassificationData:
    """`splits`: split name -> list of (text_a, text_b or None, label: int, or float for regression);
    `label_names` (empty for regression)."""

    name: str
    label_names: list
    splits: dict

    @property
    def is_regression(self):
        return not self.label_names

    @property
    def num_classes(self):
        """1 for regression (XLNetClassifier's convention), else the number of labels."""
        return 1 if self.is_regression else len(self.label_names)


def load_task(task="embedded", *, data_dir=None, download=False, train_file=None, dev_file=None, test_file=None,
              text_a_column=0, text_b_column=None, label_column=1, regression=False, max_examples=None, seed=0):
    """The `ClassificationData` of `--task` (see the module doc); a missing dataset or file is a one-line
    ZooError naming --data_dir / --task / the file flag. `max_examples` caps each split (first ones)."""
    if task in (None, "embedded"):
        data = _embedded(seed)
    elif task == "tsv":
        data = _tsv(train_file, dev_file, test_file, text_a_column, text_b_column, label_column, regression)
    elif task == "imdb_reviews":
        splits = {"train": _tfds("imdb_reviews", "train", "text", None, data_dir, download),
                  "dev": _tfds("imdb_reviews", "test", "text", None, data_dir, download)}
        splits["test"] = splits["dev"]
        data = ClassificationData("imdb_reviews", ["neg", "pos"], splits)
    elif task.startswith("glue/") and task[5:] in GLUE:
        name = task[5:]
        key_a, key_b, labels = GLUE[name]
        dev = {"dev": "validation_matched", "dev_mismatched": "validation_mismatched"} if name == "mnli" else {
            "dev": "validation"}
        splits = {split: _tfds(task, tfds_split, key_a, key_b, data_dir, download, labels is None)
                  for split, tfds_split in {"train": "train", **dev}.items()}
        data = ClassificationData(task, labels or [], splits)
    else:
        raise ZooError(f"unknown --task={task!r}; choose one of {', '.join(TASKS)}")
    if max_examples:
        data.splits = {k: v[:max_examples] for k, v in data.splits.items()}
    return data


def _tfds(name, split, key_a, key_b, data_dir, download, regression=False):
    from zoo.data import tfds_offline

    ds = tfds_offline.load(name, split, data_dir=data_dir, download=download)
    examples = []
    for ex in ds.as_numpy_iterator():
        text_a = ex[key_a].decode("utf-8", errors="replace").replace("<br />", " ")
        text_b = ex[key_b].decode("utf-8", errors="replace") if key_b else None
        label = float(ex["label"]) if regression else int(ex["label"])
        if regression or label >= 0:  # unlabelled (-1) examples are skipped
            examples.append((text_a, text_b, label))
    if not examples:
        raise ZooError(f"split {split!r} of {name!r} in --data_dir={data_dir} has no labelled example; check --task")
    return examples


def _tsv(train_file, dev_file, test_file, a_column, b_column, label_column, regression):
    if not train_file or not dev_file:
        raise ZooError("--task=tsv needs --train_file and --dev_file (tab-separated, header row, text and label "
                       "columns)")
    rows = {"train": _read_tsv(train_file, "--train_file"), "dev": _read_tsv(dev_file, "--dev_file")}
    if test_file:
        rows["test"] = _read_tsv(test_file, "--test_file")
    width = max(c for c in (a_column, b_column, label_column) if c is not None) + 1
    for split, lines in rows.items():
        if any(len(line) < width for line in lines):
            raise ZooError(f"the {split} TSV has a row with fewer than {width} columns; fix --text_a_column, "
                           "--text_b_column or --label_column")
    names = [] if regression else sorted({line[label_column] for line in rows["train"]})
    index = {name: i for i, name in enumerate(names)}
    splits = {}
    for split, lines in rows.items():
        unknown = {line[label_column] for line in lines} - set(index) if not regression else set()
        if unknown:
            raise ZooError(f"the {split} TSV has labels {sorted(unknown)[:5]} not in --train_file's {names[:10]}")
        try:
            splits[split] = [(line[a_column], line[b_column] if b_column is not None else None,
                              float(line[label_column]) if regression else index[line[label_column]])
                             for line in lines]
        except ValueError:
            raise ZooError(f"the {split} TSV has a non-numeric label in --label_column={label_column} "
                           "(regression)") from None
    return ClassificationData("tsv", names, splits)


def _read_tsv(path, flag):
    import tensorflow as tf

    if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
        raise ZooError(f"{flag}: no such file {path!r}")
    with tf.io.gfile.GFile(path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    lines = [line for line in csv.reader(io.StringIO(text), delimiter="\t", quotechar=None) if line][1:]
    if not lines:
        raise ZooError(f"{flag}: {path!r} has no rows after its header")
    return lines


def _embedded(seed, sentences_per_example=None):
    from zoo.data.text_sources import default_corpus_dir, parse_documents

    per_example = sentences_per_example or EMBEDDED_SENTENCES
    folder = default_corpus_dir("en")
    rng = np.random.default_rng(seed)
    splits = {"train": [], "dev": []}
    for label, part in enumerate(EMBEDDED_TOPICS):
        path = folder.joinpath(part)
        if not path.is_file():
            raise ZooError(f"the embedded corpus file zoo/data/corpus/{part} is missing in this install; reinstall "
                           "zoo, or give --task=tsv with --train_file and --dev_file")
        documents = parse_documents(path.read_text(encoding="utf-8").splitlines())
        order = rng.permutation(len(documents))
        dev_count = max(1, round(EMBEDDED_DEV_FRACTION * len(documents)))
        for split, chosen in (("dev", order[:dev_count]), ("train", order[dev_count:])):
            for i in sorted(chosen):
                doc = documents[i]
                splits[split] += [(" ".join(doc[j:j + per_example]), None, label)
                                  for j in range(0, len(doc) - per_example + 1, per_example)]
    splits = {k: [v[i] for i in rng.permutation(len(v))] for k, v in splits.items()}
    return ClassificationData("embedded", list(EMBEDDED_TOPICS.values()), splits)


def truncate_seq_pair(tokens_a, tokens_b, max_length):
    """`_truncate_seq_pair`: pops the last token of the longer list (B on ties) until both fit `max_length`."""
    while len(tokens_a) + len(tokens_b) > max_length:
        (tokens_a if len(tokens_a) > len(tokens_b) else tokens_b).pop()


def encode_pair(tokens_a, tokens_b, max_seq_length, sep_id, cls_id, pad_id=0):
    """`convert_single_example` on token ids: (token_ids, segment_ids, padding_mask) lists (module doc)."""
    tokens_a, tokens_b = list(tokens_a), list(tokens_b) if tokens_b else None
    if tokens_b:
        truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
    else:
        tokens_a = tokens_a[:max_seq_length - 2]
    tokens = tokens_a + [sep_id]
    segments = [SEG_ID_A] * len(tokens)
    if tokens_b:
        tokens += tokens_b + [sep_id]
        segments += [SEG_ID_B] * (len(tokens_b) + 1)
    tokens.append(cls_id)
    segments.append(SEG_ID_CLS)
    pad = max_seq_length - len(tokens)
    return [pad_id] * pad + tokens, [SEG_ID_PAD] * pad + segments, [0] * pad + [1] * len(tokens)


def encode_examples(examples, vocabulary, max_seq_length, is_regression=None):
    """numpy arrays (`FEATURES`) of (text_a, text_b, label) examples with an `XLNetVocabulary`; the label dtype
    is float32 for regression (float labels) and int32 otherwise."""
    if max_seq_length < 4:
        raise ZooError(f"--max_seq_length={max_seq_length} leaves no room for text beside <sep> <sep> <cls>")
    if not examples:
        raise ZooError("no examples to encode; check --task and its files")
    if is_regression is None:
        is_regression = isinstance(examples[0][2], float)
    sep, cls = vocabulary.special_ids["sep"], vocabulary.special_ids["cls"]
    rows = [encode_pair(vocabulary.encode(a), vocabulary.encode(b) if b else None, max_seq_length, sep, cls)
            for a, b, _ in examples]
    return {"token_ids": np.array([r[0] for r in rows], np.int32),
            "segment_ids": np.array([r[1] for r in rows], np.int32),
            "padding_mask": np.array([r[2] for r in rows], np.int32),
            "labels": np.array([e[2] for e in examples], np.float32 if is_regression else np.int32),
            "weights": np.ones(len(examples), np.float32)}


def pad_examples(arrays, multiple):
    """`arrays` with padding examples (all padding, label 0, weight 0) appended up to a multiple of `multiple`."""
    n = len(arrays["labels"])
    extra = -n % multiple
    if not extra:
        return arrays
    out = {k: np.concatenate([v, np.zeros((extra,) + v.shape[1:], v.dtype)]) for k, v in arrays.items()}
    out["segment_ids"][n:] = SEG_ID_PAD
    return out


def make_dataset_fn(arrays, global_batch_size, *, training=True, seed=0, shuffle_buffer=2048):
    """`dataset_fn(input_context)` of per-replica batches of encoded `arrays`.

    training: shuffled (seeded per pipeline, the same order every run), repeating, last partial batch dropped;
    else one pass in order, the last global batch filled with weight-0 padding examples so every replica gets
    the same number of full batches and no real example is lost."""

    def dataset_fn(input_context=None):
        import tensorflow as tf

        b = per_replica_batch_size(global_batch_size, input_context)
        data = arrays if training else pad_examples(arrays, global_batch_size)
        ds = tf.data.Dataset.from_tensor_slices(data)
        if training:
            ds = shard(ds, input_context)
            ds = ds.shuffle(shuffle_buffer, seed=stream_seed(seed, pipeline_id(input_context)),
                            reshuffle_each_iteration=True).repeat()
        else:
            ds = shard(ds.batch(b, drop_remainder=True), input_context)  # padded: nothing dropped
            return ds.prefetch(tf.data.AUTOTUNE)
        return ds.batch(b, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    return dataset_fn
