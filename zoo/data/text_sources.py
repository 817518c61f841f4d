"""Text corpora as documents of sentences: text files, tensorflow-datasets, or the embedded default corpus.

A document is a list of sentences (non-empty strings); BERT's next-sentence task pairs sentences within a
document, so document boundaries matter.

Example:
```python
docs = load_documents(input_files=["corpus/*.txt"])          # one sentence per line, blank line = new document
docs = load_documents(tfds_name="imdb_reviews", tfds_text_key="text", data_dir="~/tensorflow_datasets")
docs = load_documents()                                       # the small corpus shipped in zoo/data/corpus/
```
"""

import importlib.resources
import re

from zoo.errors import ZooError

# A sentence ends at ".", "!" or "?" (optionally followed by one closing quote or bracket) plus whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'\)\]])\s+")


def load_documents(
    input_files=None,
    tfds_name=None,
    tfds_text_key="text",
    tfds_split="train",
    data_dir=None,
    download=False,
    max_documents=None,
):
    """Returns the documents (lists of sentences) of one source.

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

    With neither `input_files` nor `tfds_name`, the embedded default corpus is returned.
    """
    if max_documents is not None and max_documents < 1:
        raise ZooError(f"max_documents must be at least 1, got {max_documents}")
    if input_files and tfds_name:
        raise ZooError("give either --input_files or --tfds_name, not both")
    if tfds_name:
        return _tfds_documents(tfds_name, tfds_text_key, tfds_split, data_dir, download, max_documents)
    if input_files:
        return _file_documents(input_files, max_documents)
    return _default_documents(max_documents)


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


def default_corpus_dir():
    """The embedded default corpus: the `corpus/*.txt` files shipped inside the `zoo.data` package."""
    return importlib.resources.files("zoo.data").joinpath("corpus")


def _file_documents(input_files, max_documents):
    import tensorflow as tf

    if isinstance(input_files, str):
        input_files = [p for p in input_files.split(",") if p.strip()]
    paths = []
    for pattern in input_files:
        pattern = str(pattern).strip()
        if any(c in pattern for c in "*?["):
            matched = sorted(tf.io.gfile.glob(pattern))
            if not matched:
                raise ZooError(f"--input_files pattern {pattern!r} matches no file")
            paths.extend(matched)
        elif not tf.io.gfile.exists(pattern) or tf.io.gfile.isdir(pattern):
            raise ZooError(f"--input_files: no such file {pattern!r}")
        else:
            paths.append(pattern)
    documents = []
    for path in paths:
        try:
            with tf.io.gfile.GFile(path, "rb") as f:
                text = f.read().decode("utf-8")
        except UnicodeDecodeError as e:
            raise ZooError(f"--input_files: {path!r} is not UTF-8 text ({e.reason} at byte {e.start})") from None
        file_documents = parse_documents(text.splitlines())
        if not file_documents:
            raise ZooError(f"--input_files: {path!r} has no text (expected one sentence per line)")
        documents.extend(file_documents)
        if max_documents and len(documents) >= max_documents:
            break
    return documents[:max_documents] if max_documents else documents


def _tfds_documents(name, text_key, split, data_dir, download, max_documents):
    from zoo.data import tfds_offline

    ds = tfds_offline.load(name, split, data_dir=data_dir, download=download)
    features = ds.element_spec
    if not isinstance(features, dict) or text_key not in features:
        available = sorted(features) if isinstance(features, dict) else []
        raise ZooError(
            f"dataset {name!r} has no feature {text_key!r}; set --tfds_text_key to one of {available}"
        )
    documents = []
    for text in ds.map(lambda example: example[text_key]).as_numpy_iterator():
        if not isinstance(text, bytes):
            raise ZooError(f"feature {text_key!r} of dataset {name!r} is not text; choose another --tfds_text_key")
        sentences = split_sentences(text.decode("utf-8", errors="replace"))
        if sentences:
            documents.append(sentences)
            if max_documents and len(documents) >= max_documents:
                break
    if not documents:
        raise ZooError(f"split {split!r} of dataset {name!r} has no text in feature {text_key!r} (--tfds_text_key)")
    return documents


def _default_documents(max_documents):
    corpus = default_corpus_dir()
    files = [f for f in corpus.iterdir() if f.name.endswith(".txt")] if corpus.is_dir() else []
    files.sort(key=lambda f: f.name)
    documents = []
    for f in files:
        documents.extend(parse_documents(f.read_text(encoding="utf-8").splitlines()))
    if not documents:
        raise ZooError(
            f"the embedded default corpus (zoo/data/corpus/*.txt) is missing or empty in this install ({corpus}); "
            "reinstall zoo, or give --input_files or --tfds_name"
        )
    return documents[:max_documents] if max_documents else documents
