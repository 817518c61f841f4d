"""Language-model data: text sources, the stream layout for truncated BPTT with carried state, tf.data.

Sources (`open_lm_corpus`): the embedded corpus (zoo/data/corpus, the default), text files (a blank line or a
new file starts a document; with `split_documents=False` each file is one document, read whole, blank lines
kept: Transformer-XL's WikiText-103 reading), or tensorflow-datasets from `--data_dir` (`tiny_shakespeare`:
one document per split; `lm1b`: one sentence per example, validation held out of train; `pg19`: one book per
example). The splits hold documents as raw strings; `LMVocabulary.encode` turns each into ids.

Layout (`stream_layout`): the global batch is B parallel streams; row r of every global batch continues
stream r, so a model that carries its state per row (zero it where `reset` is 1) sees each document in order.
Replica k of R reads rows [k*b, (k+1)*b), b = B / R, so every replica count sees the same global batches.
- `boundaries="reset"`: each document's ids are cut into segments of `seq_length` inputs (targets: the next
  ids of the same document), the tail segment padded with weight 0; the segments of all documents, in order,
  are cut into B streams of S = ceil(total segments / B) each (the last ones evened with all-padding segments:
  weight 0, reset 0), so padding is only documents' tails plus under B segments. `reset` is 1 on each
  document's first segment and on the first segment of each stream (where a document cut between two
  streams goes on, from zero state).
- `boundaries="continue"`: Zaremba's PTB reader: all ids joined, cut into B contiguous streams (lengths
  differing by at most one), `reset` only on the first batch; the last batch padded with weight 0.

Example:
```python
from zoo.data.lm_vocabulary import LMVocabulary
corpus = open_lm_corpus()                                           # the embedded corpus
vocab = LMVocabulary.build(corpus.documents("train"), "word", lowercase=True)
layout = stream_layout([vocab.encode(d) for d in corpus.documents("train")], global_batch_size=20, seq_length=20)
ds = lm_dataset(layout)   # repeating dicts: token_ids/targets int32 [20, 20], weights [20, 20], reset [20]
```
"""

import dataclasses
import math

import numpy as np

from zoo.data.distribute import per_replica_batch_size, pipeline_id
from zoo.errors import ZooError

DATASETS = ("embedded", "tiny_shakespeare", "lm1b", "pg19")
BOUNDARIES = ("reset", "continue")
_TFDS = {  # name: (text feature, its splits)
    "tiny_shakespeare": ("text", ("train", "validation", "test")),
    "lm1b": ("text", ("train", "test")),
    "pg19": ("book_text", ("train", "validation", "test")),
}


# === Sources ===


@dataclasses.dataclass
class LMCorpus:
    """A language-model source: `splits` maps "train", "validation" (and maybe "test") to documents (str)."""

    name: str
    splits: dict

    def documents(self, split):
        """The documents (raw strings) of `split`."""
        if split not in self.splits:
            raise ZooError(f"{self.name} has no {split!r} split; it has {', '.join(self.splits)}")
        return self.splits[split]


def open_lm_corpus(dataset="embedded", *, text_files=None, validation_files=None, test_files=None,
                   validation_fraction=0.1, data_dir=None, download=False, max_documents=None, seed=0,
                   split_documents=True):
    """The `LMCorpus` of `--dataset` or `--text_files` (see the module; `split_documents=False`: each text file
    is one document, blank lines included). Without a validation split, a seeded
    `validation_fraction` of the training documents is held out (of the lines of each document when there are
    fewer than 10 documents); the embedded corpus holds out a test split of the same size too."""
    if text_files:
        if dataset not in ("embedded", None):
            raise ZooError(f"give either --dataset={dataset} or --text_files, not both")
        train = _read_files(text_files, "--text_files", split_documents)
        splits = {"train": train}
        if validation_files:
            splits["validation"] = _read_files(validation_files, "--validation_files", split_documents)
        else:
            splits["train"], splits["validation"] = hold_out(train, validation_fraction, seed, "--text_files")
        if test_files:
            splits["test"] = _read_files(test_files, "--test_files", split_documents)
        return LMCorpus("files", splits)
    if validation_files or test_files:
        raise ZooError("--validation_files and --test_files go with --text_files")
    if dataset in ("embedded", None):
        from zoo.data.text_sources import load_documents

        docs = ["\n".join(sentences) + "\n" for sentences in load_documents()]
        rest, test = hold_out(docs, validation_fraction, seed + 1, "the embedded corpus")
        train, validation = hold_out(rest, validation_fraction, seed, "the embedded corpus")
        return LMCorpus("embedded", {"train": train, "validation": validation, "test": test})
    if dataset not in _TFDS:
        raise ZooError(f"unknown --dataset={dataset!r}; choose one of {', '.join(DATASETS)} or give --text_files")
    key, names = _TFDS[dataset]
    splits = {split: _tfds_documents(dataset, split, key, data_dir, download, max_documents)
              for split in names}
    if "validation" not in splits:
        splits["train"], splits["validation"] = hold_out(splits["train"], validation_fraction, seed, dataset)
    return LMCorpus(dataset, splits)


def hold_out(documents, fraction, seed, what):
    """(kept, held out): a seeded `fraction` of the documents (at least one), in their order; with fewer than 10
    documents, the last `fraction` of the lines of each document instead."""
    if not 0 < fraction < 1:
        raise ZooError(f"--validation_fraction={fraction} must be above 0 and below 1")
    if len(documents) >= 10:
        held = np.zeros(len(documents), bool)
        held[np.random.default_rng(seed).choice(len(documents), max(1, round(fraction * len(documents))),
                                                replace=False)] = True
        return ([d for d, h in zip(documents, held) if not h], [d for d, h in zip(documents, held) if h])
    kept, out = [], []
    for doc in documents:
        lines = doc.splitlines(keepends=True)
        n = round(fraction * len(lines))
        if n >= 1 and len(lines) - n >= 1:
            kept.append("".join(lines[:-n]))
            out.append("".join(lines[-n:]))
        else:
            kept.append(doc)
    if not out:
        raise ZooError(f"{what} is too short to hold out --validation_fraction={fraction:g} of its lines; give "
                       "more text, raise --validation_fraction or give --validation_files")
    return kept, out


def _read_files(files, flag, split_documents=True):
    """The documents of text files: a blank line or a new file starts one; lines are kept as they are. With
    `split_documents=False`, each file's whole text (newlines normalised to "\\n") is one document."""
    import tensorflow as tf

    from zoo.data.text_sources import resolve_files

    documents = []
    for path in resolve_files(files, flag):
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ZooError(f"{flag}: {path!r} is not UTF-8 text ({e.reason} at byte {e.start})") from None
        if not split_documents:
            if not text.strip():
                raise ZooError(f"{flag}: {path!r} has no text")
            documents.append(text.replace("\r\n", "\n").replace("\r", "\n"))
            continue
        found, lines = False, []
        for line in text.replace("\r\n", "\n").split("\n") + [""]:
            if line.strip():
                lines.append(line + "\n")
            elif lines:
                documents.append("".join(lines))
                found, lines = True, []
        if not found:
            raise ZooError(f"{flag}: {path!r} has no text")
    return documents


def _tfds_documents(name, split, key, data_dir, download, max_documents):
    from zoo.data import tfds_offline

    ds = tfds_offline.load(name, split, data_dir=data_dir, download=download)
    if max_documents:
        ds = ds.take(max_documents)
    docs = []
    for example in ds.as_numpy_iterator():
        text = example[key].decode("utf-8", errors="replace")
        if text.strip():
            docs.append(text.strip("\n") + "\n")
    if not docs:
        raise ZooError(f"split {split!r} of dataset {name!r} has no text")
    return docs


# === Layout ===


@dataclasses.dataclass
class StreamLayout:
    """One epoch of global batches: `token_ids`, `targets` (int32), `weights` (float32) [steps, B, T] and
    `reset` (float32) [steps, B]."""

    token_ids: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    reset: np.ndarray

    @property
    def steps(self):
        """Global batches per epoch."""
        return self.token_ids.shape[0]

    @property
    def global_batch_size(self):
        """B: streams, the rows of a global batch."""
        return self.token_ids.shape[1]

    @property
    def seq_length(self):
        """T: tokens per row of a batch."""
        return self.token_ids.shape[2]

    @property
    def tokens(self):
        """Real (weight 1) target tokens per epoch."""
        return int(self.weights.sum())

    @property
    def padding(self):
        """The share of target positions that are padding."""
        return 1.0 - self.tokens / self.weights.size


def stream_layout(documents, global_batch_size, seq_length, boundaries="reset"):
    """The `StreamLayout` of `documents` (int id arrays) in B = `global_batch_size` streams (see the module)."""
    if boundaries not in BOUNDARIES:
        raise ZooError(f"unknown --document_boundaries={boundaries!r}; choose reset or continue")
    if global_batch_size < 1 or seq_length < 1:
        raise ZooError(f"--global_batch_size ({global_batch_size}) and --seq_length ({seq_length}) must be positive")
    documents = [np.asarray(d, np.int32) for d in documents if len(d) >= 2]
    if not documents:
        raise ZooError("the text has no document of two or more tokens to predict from; give more text")
    if boundaries == "continue":
        return _continuous(np.concatenate(documents), global_batch_size, seq_length)
    B, T = global_batch_size, seq_length
    inputs, targets, weights, starts = [], [], [], []
    for d in documents:
        n = math.ceil((len(d) - 1) / T)  # segments of this document
        padded = np.zeros(n * T + 1, np.int32)
        padded[:len(d)] = d
        inputs.append(padded[:-1])
        targets.append(padded[1:])
        weights.append(np.arange(n * T) < len(d) - 1)
        starts.append(np.arange(n) == 0)
    total = sum(len(s) for s in starts)
    steps = math.ceil(total / B)

    def streams(parts, dtype, per_segment):
        a = np.zeros((B * steps, T) if not per_segment else (B * steps,), dtype)
        a[:total] = np.concatenate(parts).reshape((total, T) if not per_segment else (total,))
        a = a.reshape((B, steps) + a.shape[1:])
        return np.ascontiguousarray(np.swapaxes(a, 0, 1))

    reset = streams(starts, np.float32, True)
    real = np.arange(B * steps).reshape(B, steps).T < total  # [steps, B]: not a padding segment
    reset[0] = real[0]  # a stream's first segment starts a piece (the rest of a cut document)
    return StreamLayout(streams(inputs, np.int32, False), streams(targets, np.int32, False),
                        streams(weights, np.float32, False), reset)


def _continuous(ids, B, T):
    if len(ids) < 2 * B:
        raise ZooError(f"{len(ids)} tokens cannot fill {B} streams (--global_batch_size) of two tokens or more; "
                       "give more text or lower --global_batch_size")
    base, extra = divmod(len(ids), B)
    lengths = np.array([base + (r < extra) for r in range(B)])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    steps = math.ceil((lengths.max() - 1) / T)
    positions = np.arange(steps * T + 1)
    index = np.minimum(starts[:, None] + positions[None, :], len(ids) - 1)
    streams = np.where(positions[None, :] < lengths[:, None], ids[index], 0).astype(np.int32)  # [B, steps*T+1]
    valid = (positions[None, 1:] < lengths[:, None]).astype(np.float32)

    def batches(a):
        return np.ascontiguousarray(a.reshape(B, steps, T).transpose(1, 0, 2))

    reset = np.zeros((steps, B), np.float32)
    reset[0] = 1.0
    return StreamLayout(batches(streams[:, :-1]), batches(streams[:, 1:]), batches(valid), reset)


# === tf.data ===


def lm_dataset(layout, input_context=None, repeat=True):
    """Per-replica batches of `layout` for this input pipeline: dicts of "token_ids", "targets" [b, T],
    "weights" [b, T], "reset" [b]. A pipeline serving replicas k..k+n-1 yields, for each global batch in turn,
    the rows of replica k, then k+1, ... (the order `distribute_datasets_from_function` hands batches to its
    replicas), so `skip(steps * replicas / pipelines)` lands on global step `steps`. `repeat`: epochs without
    end (training), else one pass (evaluation: the same number of batches on every replica)."""
    import tensorflow as tf

    B = layout.global_batch_size
    b = per_replica_batch_size(B, input_context)
    replicas = B // b
    pipelines = input_context.num_input_pipelines if input_context is not None else 1
    if replicas % pipelines:
        raise ZooError(f"{replicas} replicas do not split evenly over {pipelines} input pipelines")
    local, first = replicas // pipelines, pipeline_id(input_context) * (replicas // pipelines)

    def view(a):
        rest = a.shape[2:]
        a = a.reshape((layout.steps, replicas, b) + rest)[:, first:first + local]
        return a.reshape((layout.steps * local, b) + rest)

    ds = tf.data.Dataset.from_tensor_slices({
        "token_ids": view(layout.token_ids), "targets": view(layout.targets), "weights": view(layout.weights),
        "reset": view(layout.reset)})
    if repeat:
        ds = ds.repeat()
    return ds.prefetch(tf.data.AUTOTUNE)


def encode_documents(vocabulary, documents):
    """int32 id arrays of `documents` (strings) with `vocabulary` (an `LMVocabulary`)."""
    return [vocabulary.encode(d) for d in documents]


def unigram_perplexity(train, evaluation, vocabulary_size):
    """Perplexity on `evaluation`'s real targets of the add-one unigram model of `train`'s (two `StreamLayout`s):
    the baseline a language model must beat."""
    counts = np.bincount(train.targets[train.weights > 0], minlength=vocabulary_size) + 1.0
    log_p = np.log(counts / counts.sum())
    return float(np.exp(-log_p[evaluation.targets[evaluation.weights > 0]].mean()))
