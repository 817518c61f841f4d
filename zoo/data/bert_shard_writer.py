"""Writes BERT pretraining examples to sharded TFRecord files, streaming documents in bounded chunks.

The documents are read once, lazily, and cut into chunks of about `chunk_bytes` characters of text (at least
two documents each). Each chunk is tokenised and turned into examples exactly as `create_examples` does
(`bert_pretraining.create_instances`: shuffle the documents, `dupe_factor` passes, shuffle the instances),
with its own random generator:

    chunk 0 of the training split:  random.Random(seed)             (so a corpus that fits in one chunk gives
                                                                     exactly create_examples(..., seed=seed))
    every other chunk:              random.Random(f"{seed}:{split}:{chunk}")

The chunks are cut from the document order alone and each has its own generator, so which process makes a
chunk does not matter: `num_workers` processes (multiprocessing, spawn) make chunks in parallel, at most
`2 * num_workers` chunks in flight, and this process writes their examples in chunk order, dealing them
round-robin over the shards as the original's writers do (example i of the split goes to shard
i % num_shards). The output is the same file for file for any `num_workers`. Memory holds a bounded number of
chunks, whatever the corpus size. With `eval_fraction`, each document goes to the held-out split with that
probability (`random.Random(f"{seed}:eval")`, one draw per document in stream order).

Shards are written under temporary names and renamed when complete; `metadata.json` is written last, so a
killed run never leaves an output that looks complete (see `zoo.data.bert_shard_format`).

Example:
```python
from zoo.data import bert_shards, text_sources, wordpiece
vocab = bert_vocabulary.load_bert_vocabulary("vocab.txt")   # or a SentencePiece spiece.model
meta = bert_shards.write_pretraining_shards(
    text_sources.iter_documents(input_files="wiki/*.txt"), vocab, "/data/bert128",
    seq_length=128, max_predictions=20, dupe_factor=5, seed=0, num_shards=64, num_workers=4, eval_fraction=0.01)
meta["examples"]   # {"train": ..., "eval": ...}
```
"""

import collections
import json
import multiprocessing
import os
import random
import re
import sys
import time

from zoo.data import bert_pretraining, bert_vocabulary, text_sources
from zoo.data import bert_shard_format as fmt
from zoo.errors import ZooError

_SHARD_FILE = re.compile(r"^(train|eval)-\d{5}-of-\d{5}\.tfrecord(\.tmp-[0-9a-f]+)?$|^metadata\.json\.tmp-[0-9a-f]+$")


def write_pretraining_shards(documents_or_sources, vocabulary, output_dir, *, seq_length, max_predictions,
                             dupe_factor=5, seed=12345, num_shards=1, num_workers=1, eval_fraction=0.0,
                             num_eval_shards=1, eval_dupe_factor=1, short_seq_prob=0.1, masked_lm_prob=0.15,
                             chunk_bytes=4 << 20, tokenize_batch_size=4096, source=None, overwrite=False,
                             verbose=True, whole_word_mask=False):
    """Writes pretraining examples of a document stream to TFRecord shards in `output_dir`; returns the metadata.

    Args:
        documents_or_sources: an iterable of documents (lists of sentence strings; e.g. a
            `text_sources.iter_documents(...)` stream, read once, lazily) or a dict of `iter_documents` arguments.
        vocabulary: a `BertVocabulary`, a WordPiece token list or a vocabulary file (vocab.txt or .model); it is
            also written to `<output_dir>/vocab.txt` (WordPiece) or `<output_dir>/spiece.model` (SentencePiece).
        seq_length, max_predictions, dupe_factor, short_seq_prob, masked_lm_prob: as `create_examples`.
        seed: the seed of the chunks' random generators (see the module docstring).
        num_shards: training shards; examples are dealt round-robin over them.
        num_workers: processes that tokenise and make examples (1: this process only).
        eval_fraction: probability that a document is held out for `<output_dir>/eval/` shards.
        num_eval_shards, eval_dupe_factor: shards and passes of the held-out split (1 pass: each held-out
            sentence is seen once).
        chunk_bytes: characters of text per chunk: the memory bound, and the reach of random next sentences.
        source: a description of the documents for `metadata.json` (default: the dict of source arguments).
        overwrite: replace a complete output; otherwise one is refused.
        verbose: print a progress line to stderr.
        whole_word_mask: mask whole words (`bert_pretraining`'s module docstring).

    Returns:
        The dict written to `metadata.json`: settings, vocabulary sha1, per-split document and example counts,
        per-shard example counts and sizes, and the `train_files` / `eval_files` globs.
    """
    bert_pretraining.check_arguments(seq_length, max_predictions, dupe_factor, short_seq_prob, masked_lm_prob)
    _check_writer_arguments(num_shards, num_workers, eval_fraction, num_eval_shards, eval_dupe_factor, chunk_bytes)
    vocabulary = bert_vocabulary.as_vocabulary(vocabulary)
    stream = documents_or_sources
    if isinstance(documents_or_sources, dict):
        stream = text_sources.iter_documents(**documents_or_sources)
        source = source or json.dumps(documents_or_sources, sort_keys=True, default=str)
    _prepare_output_dir(output_dir, overwrite)
    params = dict(seq_length=seq_length, max_predictions=max_predictions, short_seq_prob=short_seq_prob,
                  masked_lm_prob=masked_lm_prob, tokenize_batch_size=tokenize_batch_size,
                  whole_word_mask=bool(whole_word_mask))
    counts = {"train": num_shards, "eval": num_eval_shards if eval_fraction > 0 else 0}
    shards = {split: _ShardSet(output_dir, split, n) for split, n in counts.items() if n}
    progress = _Progress(stream, verbose)
    try:
        totals = _run(stream, vocabulary, params, shards, progress, seed=seed, num_workers=num_workers,
                      chunk_bytes=chunk_bytes, eval_fraction=eval_fraction,
                      dupe_factors={"train": dupe_factor, "eval": eval_dupe_factor})
        _check_totals(totals, eval_fraction)
        files = {}
        for shard_set in shards.values():
            files.update(shard_set.close())
    except BaseException:
        for shard_set in shards.values():
            shard_set.abort()
        raise
    progress.done(totals)
    vocabulary.save(output_dir)
    metadata = {
        "format": "zoo-bert-pretraining-shards", "format_version": fmt.FORMAT_VERSION,
        "vocab_sha1": vocabulary.sha1, "vocab_size": len(vocabulary), "vocab_kind": vocabulary.kind,
        "vocab_file": vocabulary.file_name, "whole_word_mask": bool(whole_word_mask),
        "seq_length": seq_length, "max_predictions": max_predictions, "dupe_factor": dupe_factor,
        "eval_dupe_factor": eval_dupe_factor, "short_seq_prob": short_seq_prob, "masked_lm_prob": masked_lm_prob,
        "seed": seed, "chunk_bytes": chunk_bytes, "eval_fraction": eval_fraction, "source": source,
        "documents": {split: totals[split]["documents"] for split in shards},
        "examples": {split: totals[split]["examples"] for split in shards},
        "chunks": {split: totals[split]["chunks"] for split in shards},
        "shards": files,
        "train_files": os.path.basename(fmt.split_pattern("", "train")),
        "eval_files": fmt.split_pattern("", "eval") if "eval" in shards else None,
    }
    fmt.write_atomically(os.path.join(output_dir, fmt.METADATA_FILE), json.dumps(metadata, indent=1) + "\n")
    return metadata


class _ChunkMaker:
    """Turns one chunk of documents into serialised examples (in a worker process, or in this one)."""

    def __init__(self, vocabulary, params):
        self.tokenizer = vocabulary.tokenizer
        self.vocab_size = len(vocabulary)
        self.ids = vocabulary.special_ids
        self.word_starts = vocabulary.word_starts if params["whole_word_mask"] else None
        self.params = params

    def __call__(self, job):
        split, index, seed, dupe_factor, documents = job
        p = self.params
        tokenized = bert_pretraining.tokenize_documents(documents, self.tokenizer, p["tokenize_batch_size"])
        if len(tokenized) < 2:
            return split, len(tokenized), []

        def convert(instance):
            return fmt.serialize(bert_pretraining.instance_features(
                instance, p["seq_length"], p["max_predictions"], self.ids["pad"]))

        records = bert_pretraining.create_instances(
            tokenized, random.Random(seed), self.vocab_size, self.ids, seq_length=p["seq_length"],
            max_predictions=p["max_predictions"], dupe_factor=dupe_factor, short_seq_prob=p["short_seq_prob"],
            masked_lm_prob=p["masked_lm_prob"], convert=convert, word_starts=self.word_starts)
        return split, len(tokenized), records


_WORKER_MAKER = None


def _init_worker(vocabulary, params):
    global _WORKER_MAKER
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)  # the processes are the parallelism
    tf.config.threading.set_inter_op_parallelism_threads(1)
    _WORKER_MAKER = _ChunkMaker(vocabulary, params)


def _run_job(job):
    return _WORKER_MAKER(job)


def chunk_seed(seed, split, index):
    """The seed of chunk `index` of `split`: `seed` itself for the first training chunk (see the module doc)."""
    return seed if (split, index) == ("train", 0) else f"{seed}:{split}:{index}"


def _run(stream, vocabulary, params, shards, progress, *, seed, num_workers, chunk_bytes, eval_fraction,
         dupe_factors):
    totals = {split: {"documents": 0, "examples": 0, "chunks": 0} for split in shards}
    pending = collections.deque()
    if num_workers > 1:
        pool = multiprocessing.get_context("spawn").Pool(num_workers, _init_worker, (vocabulary, params))
        submit = lambda job: pending.append(pool.apply_async(_run_job, (job,)))  # noqa: E731
        in_flight = 2 * num_workers
    else:
        pool, maker = None, _ChunkMaker(vocabulary, params)
        submit = lambda job: pending.append(maker(job))  # noqa: E731
        in_flight = 0

    def collect(limit):
        while len(pending) > limit:
            result = pending.popleft()
            split, documents, records = result.get() if pool else result
            for record in records:
                shards[split].write(record)
            totals[split]["documents"] += documents
            totals[split]["examples"] += len(records)
            totals[split]["chunks"] += 1
            progress.update(totals)

    chunkers = {split: _Chunker(split, chunk_bytes, seed, dupe_factors[split]) for split in shards}
    split_rng = random.Random(f"{seed}:eval")
    try:
        for document in stream:
            if isinstance(document, str) or not all(isinstance(s, str) for s in document):
                raise ZooError("each document must be a list of sentence strings (see zoo.data.text_sources)")
            split = "eval" if eval_fraction > 0 and split_rng.random() < eval_fraction else "train"
            for job in chunkers[split].add(document):
                submit(job)
                collect(in_flight)
            progress.update(totals)
        for chunker in chunkers.values():
            for job in chunker.finish():
                submit(job)
                collect(in_flight)
        collect(0)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return totals


class _Chunker:
    """Cuts one split's documents into chunks of at least `chunk_bytes` characters and 2 documents.

    A closed chunk is held until the next one has 2 documents, so a last chunk too small for next-sentence
    pairs is merged into it instead.
    """

    def __init__(self, split, chunk_bytes, seed, dupe_factor):
        self.split, self.chunk_bytes, self.seed, self.dupe_factor = split, chunk_bytes, seed, dupe_factor
        self.current, self.size, self.held, self.index = [], 0, None, 0

    def add(self, document):
        jobs = []
        self.current.append(document)
        self.size += sum(map(len, document))
        if self.held is not None and len(self.current) >= 2:
            jobs.append(self._job(self.held))
            self.held = None
        if self.size >= self.chunk_bytes and len(self.current) >= 2:
            self.held, self.current, self.size = self.current, [], 0
        return jobs

    def finish(self):
        if self.held is not None and len(self.current) < 2:
            self.held, self.current = self.held + self.current, []
        chunks = [c for c in (self.held, self.current) if c]
        self.held, self.current = None, []
        return [self._job(c) for c in chunks]

    def _job(self, documents):
        job = (self.split, self.index, chunk_seed(self.seed, self.split, self.index), self.dupe_factor, documents)
        self.index += 1
        return job


class _ShardSet:
    """The open shards of one split: temporary files, renamed to their names by `close`."""

    def __init__(self, output_dir, split, count):
        import tensorflow as tf

        self.names = [fmt.shard_name(split, i, count) for i in range(count)]
        self.paths = [os.path.join(output_dir, name) for name in self.names]
        tf.io.gfile.makedirs(os.path.dirname(self.paths[0]))
        self.tmp = [fmt.temporary_name(path) for path in self.paths]
        self.writers = [tf.io.TFRecordWriter(path) for path in self.tmp]
        self.counts = [0] * count
        self.split, self.written = split, 0

    def write(self, record):
        shard = self.written % len(self.writers)
        self.writers[shard].write(record)
        self.counts[shard] += 1
        self.written += 1

    def close(self):
        import tensorflow as tf

        files = {}
        for name, path, tmp, writer, count in zip(self.names, self.paths, self.tmp, self.writers, self.counts):
            writer.close()
            tf.io.gfile.rename(tmp, path, overwrite=True)
            files[name] = {"split": self.split, "examples": count, "bytes": tf.io.gfile.stat(path).length}
        return files

    def abort(self):
        import tensorflow as tf

        for tmp, writer in zip(self.tmp, self.writers):
            writer.close()
            if tf.io.gfile.exists(tmp):
                tf.io.gfile.remove(tmp)


class _Progress:
    """A one-line progress report on stderr: in place on a terminal, else a line every 30 seconds."""

    def __init__(self, stream, verbose):
        self.stream, self.verbose = stream, verbose
        self.tty = verbose and sys.stderr.isatty()
        self.start = self.last = time.monotonic()

    def update(self, totals, final=False):
        now = time.monotonic()
        if not self.verbose or (not final and now - self.last < (0.5 if self.tty else 30.0)):
            return
        self.last = now
        examples = sum(t["examples"] for t in totals.values())
        documents = getattr(self.stream, "documents_read", None)
        line = f"bert shards: {examples:,} examples ({examples / max(now - self.start, 1e-9):,.0f}/s)"
        if documents is not None:
            line += f", {documents:,} documents read"
        if getattr(self.stream, "total_bytes", None):
            line += f", {100 * self.stream.bytes_read / self.stream.total_bytes:.0f}% of the input"
        line += f", {now - self.start:.0f} s"
        print(("\r" if self.tty else "") + line, end="\n" if final or not self.tty else "", file=sys.stderr, flush=True)

    def done(self, totals):
        self.update(totals, final=True)


def _check_writer_arguments(num_shards, num_workers, eval_fraction, num_eval_shards, eval_dupe_factor, chunk_bytes):
    if num_shards < 1:
        raise ZooError(f"--num_shards must be at least 1, got {num_shards}")
    if num_workers < 1:
        raise ZooError(f"--num_workers must be at least 1, got {num_workers}")
    if not 0.0 <= eval_fraction < 1.0:
        raise ZooError(f"--eval_fraction must be in [0, 1), got {eval_fraction}")
    if num_eval_shards < 1 or eval_dupe_factor < 1:
        raise ZooError("num_eval_shards and eval_dupe_factor must be at least 1")
    if chunk_bytes < 1:
        raise ZooError(f"chunk_bytes must be positive, got {chunk_bytes}")


def _check_totals(totals, eval_fraction):
    train = totals["train"]
    if train["documents"] < 2 or train["examples"] == 0:
        raise ZooError(
            f"next-sentence prediction needs at least 2 documents with text, found {train['documents']}; "
            "separate documents with a blank line in --input_files or give a larger corpus"
        )
    if eval_fraction > 0 and totals["eval"]["examples"] == 0:
        raise ZooError(
            f"--eval_fraction={eval_fraction} held out {totals['eval']['documents']} document(s), too few for "
            "next-sentence pairs (at least 2 are needed); raise --eval_fraction or give a larger corpus"
        )


def _prepare_output_dir(output_dir, overwrite):
    """Refuses a complete output (unless `overwrite`) and removes shard files a killed run left behind."""
    import tensorflow as tf

    metadata = os.path.join(output_dir, fmt.METADATA_FILE)
    if tf.io.gfile.exists(metadata):
        if not overwrite:
            raise ZooError(
                f"--output_dir={output_dir} already holds complete shards ({fmt.METADATA_FILE}); "
                "choose another --output_dir or delete that one"
            )
        tf.io.gfile.remove(metadata)  # from here on the output is incomplete until the new metadata is written
    for directory in (output_dir, os.path.join(output_dir, fmt.EVAL_DIR)):
        if tf.io.gfile.isdir(directory):
            for name in tf.io.gfile.listdir(directory):
                if _SHARD_FILE.match(name):
                    tf.io.gfile.remove(os.path.join(directory, name))
    tf.io.gfile.makedirs(output_dir)
