"""WordPiece vocabularies for BERT: trained offline with keras-hub, stored one token per line.

The vocabulary is uncased (lowercase, accents stripped) and starts with the special tokens
`[PAD] [CLS] [SEP] [UNK] [MASK]`, so `[PAD]` has id 0.

Example:
```python
vocab = train_vocabulary(load_documents(), vocab_size=8000, path="/tmp/run/vocab.txt")
vocab = load_vocabulary("/tmp/run/vocab.txt")
tokenizer = make_tokenizer(vocab)
tokenizer(["Hello world."])   # [[id("hello"), id("world"), id(".")]]
special_ids(vocab)["mask"]    # 4
```
"""

import os

from zoo.errors import ZooError
from zoo.paths import write_file_atomically

SPECIAL_TOKENS = {"pad": "[PAD]", "cls": "[CLS]", "sep": "[SEP]", "unk": "[UNK]", "mask": "[MASK]"}
RESERVED_TOKENS = list(SPECIAL_TOKENS.values())


def train_vocabulary(documents, vocab_size, path=None):
    """Learns an uncased WordPiece vocabulary of at most `vocab_size` tokens from documents of sentences.

    Uses keras-hub's `compute_word_piece_vocabulary` (tensorflow-text's learner, no network). The result can
    be smaller than `vocab_size` on a small corpus. When `path` is given the vocabulary is written there
    atomically (a temporary file renamed into place). Returns the list of tokens.
    """
    import tensorflow as tf
    from keras_hub.tokenizers import compute_word_piece_vocabulary

    if vocab_size <= len(RESERVED_TOKENS):
        raise ZooError(f"--vocab_size must exceed the {len(RESERVED_TOKENS)} special tokens, got {vocab_size}")
    sentences = [s for document in documents for s in document if s.strip()]
    if not sentences:
        raise ZooError("cannot train a WordPiece vocabulary: the corpus has no text")
    vocabulary = compute_word_piece_vocabulary(
        tf.data.Dataset.from_tensor_slices(sentences).batch(4096),
        vocab_size,
        lowercase=True,
        strip_accents=True,
        reserved_tokens=RESERVED_TOKENS,
    )
    if path is not None:
        write_vocabulary(vocabulary, path)
    return vocabulary


def vocabulary_sha1(vocabulary):
    """The fingerprint of a WordPiece vocabulary (token list) that configs and shard metadata record: the sha1
    of its tokens joined by newlines."""
    import hashlib

    return hashlib.sha1("\n".join(vocabulary).encode("utf-8")).hexdigest()


def write_vocabulary(vocabulary, path):
    """Writes one token per line to `path` via a temporary file and a rename, so it is never half-written."""
    write_file_atomically(path, "".join(token + "\n" for token in vocabulary))


def load_vocabulary(path):
    """Reads a vocabulary file (one token per line) and checks it is usable for BERT."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
        raise ZooError(f"vocabulary file {path!r} does not exist; fix --vocab_file or omit it to train one")
    with tf.io.gfile.GFile(path, "rb") as f:
        try:
            vocabulary = [line.strip() for line in f.read().decode("utf-8").splitlines()]
        except UnicodeDecodeError:
            raise ZooError(f"vocabulary file {path!r} is not UTF-8 text (--vocab_file)") from None
    try:
        check_vocabulary(vocabulary)
    except ZooError as e:
        raise ZooError(f"vocabulary file {path!r} (--vocab_file): {e}") from None
    return vocabulary


def check_vocabulary(vocabulary):
    """Raises ZooError unless the tokens are non-empty, unique and include every special token."""
    if not vocabulary:
        raise ZooError("the vocabulary is empty")
    if "" in vocabulary:
        raise ZooError(f"the vocabulary has an empty token at line {vocabulary.index('') + 1}")
    seen, duplicates = set(), []
    for token in vocabulary:
        if token in seen and token not in duplicates:
            duplicates.append(token)
        seen.add(token)
    if duplicates:
        raise ZooError(f"the vocabulary repeats tokens {duplicates[:5]}")
    missing = [t for t in RESERVED_TOKENS if t not in seen]
    if missing:
        raise ZooError(f"the vocabulary lacks the special tokens {missing}")


def make_tokenizer(vocabulary):
    """A keras-hub `WordPieceTokenizer` for `vocabulary` (a token list or a file path), uncased as trained."""
    from keras_hub.tokenizers import WordPieceTokenizer

    if isinstance(vocabulary, (str, os.PathLike)):
        vocabulary = load_vocabulary(os.fspath(vocabulary))
    else:
        vocabulary = list(vocabulary)
        check_vocabulary(vocabulary)
    return WordPieceTokenizer(
        vocabulary=vocabulary, lowercase=True, strip_accents=True, oov_token=SPECIAL_TOKENS["unk"]
    )


def special_ids(vocabulary):
    """The ids of the special tokens: a dict with keys pad, cls, sep, unk, mask."""
    index = {token: i for i, token in enumerate(vocabulary)}
    missing = [t for t in RESERVED_TOKENS if t not in index]
    if missing:
        raise ZooError(f"the vocabulary lacks the special tokens {missing}")
    return {name: index[token] for name, token in SPECIAL_TOKENS.items()}
