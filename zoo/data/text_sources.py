"""Text corpora as documents of sentences: text files, tensorflow-datasets, or an embedded corpus (English or Korean).

A document is a list of sentences (non-empty strings); BERT's next-sentence task pairs sentences within a
document, so document boundaries matter.

Example:
```python
docs = load_documents(input_files=["corpus/*.txt"])          # one sentence per line, blank line = new document
docs = load_documents(tfds_name="imdb_reviews", tfds_text_key="text", data_dir="~/tensorflow_datasets")
docs = load_documents()                                       # the small corpus shipped in zoo/data/corpus/
docs = load_documents(corpus="ko")                            # Korean statutes shipped in zoo/data/corpus_ko/
for doc in iter_documents(input_files="wiki/*.txt"):          # the same documents, read lazily (bounded memory)
    ...
```
"""

import importlib.resources
import re

from zoo.errors import ZooError

# The embedded corpora: name -> folder of `*.txt` files inside the `zoo.data` package (see each folder's README.md).
EMBEDDED_CORPORA = {"en": "corpus", "ko": "corpus_ko"}

# A sentence ends at ".", "!" or "?" (optionally followed by one closing quote or bracket) plus whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'\)\]])\s+")


def load_documents(*args, **kwargs):
    """Returns the documents (lists of sentences) of one source, all in memory: `list(iter_documents(...))`.

    With neither `input_files` nor `tfds_name`, the embedded corpus `corpus` ("en" by default, or "ko").
    """
    return list(iter_documents(*args, **kwargs))


def iter_documents(
    input_files=None,
    tfds_name=None,
    tfds_text_key="text",
    tfds_split="train",
    data_dir=None,
    download=False,
    max_documents=None,
    corpus="en",
):
    """The documents of one source, read lazily: a single-pass `DocumentStream`.

    Args:
        input_files: paths or globs (a list, or one comma-separated string) of text files with one sentence
            per line and a blank line between documents. Each file also starts a new document.
        tfds_name: a tensorflow-datasets text dataset, read from `data_dir` (see `zoo.data.tfds_offline`).
            Each example's `tfds_text_key` feature is one document, split into sentences by `split_sentences`.
        tfds_text_key: the text feature of `tfds_name`.
        tfds_split: the split of `tfds_name` to read.
        data_dir: the tensorflow-datasets directory holding `tfds_name`.
        download: let tensorflow-datasets download `tfds_name` if it is not in `data_dir`.
        max_documents: keep at most this many (non-empty) documents.
        corpus: which embedded corpus to read when neither `input_files` nor `tfds_name` is given: "en" (short
            English encyclopedic articles, zoo/data/corpus/; None means "en") or "ko" (Korean statutes,
            zoo/data/corpus_ko/).

    With neither `input_files` nor `tfds_name`, the embedded corpus `corpus`. Arguments, globs and the dataset
    are checked at once; a file's content errors (not UTF-8, no text) are raised when the stream reaches it.
    Memory holds one document (and one 1 MiB block of a file) at a time.
    """
    if max_documents is not None and max_documents < 1:
        raise ZooError(f"max_documents must be at least 1, got {max_documents}")
    if input_files and tfds_name:
        raise ZooError("give either --input_files or --tfds_name, not both")
    corpus = "en" if corpus is None else corpus
    if corpus not in EMBEDDED_CORPORA:
        raise ZooError(f"unknown embedded corpus {corpus!r}; choose one of {sorted(EMBEDDED_CORPORA)} (--corpus)")
    if corpus != "en" and (input_files or tfds_name):
        raise ZooError(f"--corpus={corpus} names an embedded corpus; drop it, or drop --input_files/--tfds_name")
    if tfds_name:
        stream = DocumentStream(None)
        stream._documents = _tfds_documents(tfds_name, tfds_text_key, tfds_split, data_dir, download)
    elif input_files:
        paths = resolve_files(input_files)
        stream = DocumentStream(sum(_file_size(p) for p in paths))
        stream._documents = _file_documents(paths, stream)
    else:
        stream = DocumentStream(None)
        stream._documents = _default_documents(corpus)
    stream._max_documents = max_documents
    return stream


class DocumentStream:
    """A single pass over the documents of one source (see `iter_documents`).

    `bytes_read` and `total_bytes` (text files only; `None` otherwise) tell how far the pass has come;
    `documents_read` counts the documents yielded so far.
    """

    def __init__(self, total_bytes):
        self.total_bytes = total_bytes
        self.bytes_read = 0 if total_bytes is not None else None
        self.documents_read = 0
        self._documents = iter(())
        self._max_documents = None

    def __iter__(self):
        for document in self._documents:
            yield document
            self.documents_read += 1
            if self._max_documents and self.documents_read >= self._max_documents:
                return


def split_sentences(text):
    """Splits raw text into sentences: at every line break, then after `.`, `!` or `?` followed by space.

    The rule is deliberately simple (an abbreviation such as "Mr. Smith" also ends a sentence); empty
    pieces are dropped and surrounding whitespace is stripped.
    """
    sentences = []
    for line in text.splitlines():
        sentences.extend(s.strip() for s in _SENTENCE_END.split(line.strip()) if s.strip())
    return sentences


def parse_documents(lines):
    """Groups lines (one sentence each) into documents at blank lines."""
    documents = [[]]
    for line in lines:
        line = line.strip()
        if line:
            documents[-1].append(line)
        elif documents[-1]:
            documents.append([])
    return [d for d in documents if d]


def default_corpus_dir(corpus="en"):
    """The folder of an embedded corpus ("en": `corpus/`, "ko": `corpus_ko/`): `*.txt` files shipped inside the
    `zoo.data` package."""
    return importlib.resources.files("zoo.data").joinpath(EMBEDDED_CORPORA[corpus])


def resolve_files(files, flag="--input_files"):
    """The paths named by `files` (a list, or a comma-separated string, of paths and globs), in order, globs
    sorted; a glob that matches nothing or a missing file is a one-line `ZooError` naming `flag`."""
    import tensorflow as tf

    if isinstance(files, str):
        files = [p for p in files.split(",") if p.strip()]
    paths = []
    for pattern in files or []:
        pattern = str(pattern).strip()
        if any(c in pattern for c in "*?["):
            matched = sorted(tf.io.gfile.glob(pattern))
            if not matched:
                raise ZooError(f"{flag} pattern {pattern!r} matches no file")
            paths.extend(matched)
        elif not tf.io.gfile.exists(pattern) or tf.io.gfile.isdir(pattern):
            raise ZooError(f"{flag}: no such file {pattern!r}")
        else:
            paths.append(pattern)
    return paths


def _file_size(path):
    import tensorflow as tf

    return tf.io.gfile.stat(path).length


def _file_documents(paths, stream, block_size=1 << 20):
    """Documents of each file in turn, read in blocks cut at line ends (the same lines as `str.splitlines`)."""
    import tensorflow as tf

    for path in paths:
        found, document, offset, rest = False, [], 0, b""
        with tf.io.gfile.GFile(path, "rb") as f:
            while True:
                block = f.read(block_size)
                data = rest + block
                cut = len(data) if not block else data.rfind(b"\n") + 1
                data, rest = data[:cut], data[cut:]
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise ZooError(
                        f"--input_files: {path!r} is not UTF-8 text ({e.reason} at byte {offset + e.start})"
                    ) from None
                offset += len(data)
                stream.bytes_read += len(data)
                for line in text.splitlines():
                    line = line.strip()
                    if line:
                        document.append(line)
                    elif document:
                        found = True
                        yield document
                        document = []
                if not block:
                    break
        if document:
            found = True
            yield document
        if not found:
            raise ZooError(f"--input_files: {path!r} has no text (expected one sentence per line)")


def _tfds_documents(name, text_key, split, data_dir, download):
    from zoo.data import tfds_offline

    ds = tfds_offline.load(name, split, data_dir=data_dir, download=download)
    features = ds.element_spec
    if not isinstance(features, dict) or text_key not in features:
        available = sorted(features) if isinstance(features, dict) else []
        raise ZooError(
            f"dataset {name!r} has no feature {text_key!r}; set --tfds_text_key to one of {available}"
        )
    return _tfds_texts(ds.map(lambda example: example[text_key]), name, split, text_key)


def _tfds_texts(ds, name, split, text_key):
    found = False
    for text in ds.as_numpy_iterator():
        if not isinstance(text, bytes):
            raise ZooError(f"feature {text_key!r} of dataset {name!r} is not text; choose another --tfds_text_key")
        sentences = split_sentences(text.decode("utf-8", errors="replace"))
        if sentences:
            found = True
            yield sentences
    if not found:
        raise ZooError(f"split {split!r} of dataset {name!r} has no text in feature {text_key!r} (--tfds_text_key)")


def _default_documents(corpus="en"):
    folder = default_corpus_dir(corpus)
    files = [f for f in folder.iterdir() if f.name.endswith(".txt")] if folder.is_dir() else []
    files.sort(key=lambda f: f.name)
    missing = ZooError(
        f"the embedded {corpus!r} corpus (zoo/data/{EMBEDDED_CORPORA[corpus]}/*.txt) is missing or empty in this "
        f"install ({folder}); reinstall zoo, or give --input_files or --tfds_name"
    )
    if not files:
        raise missing

    def documents():
        found = False
        for f in files:
            for document in parse_documents(f.read_text(encoding="utf-8").splitlines()):
                found = True
                yield document
        if not found:
            raise missing

    return documents()
