"""XLNet's SentencePiece vocabulary: special ids, offline training, foreign `.model` files, encoding as the original.

Layout (zihangdai/xlnet `data_utils.py` `special_symbols`, README `spm_train` command): a unigram model with
`<unk>`0 `<s>`1 `</s>`2 `<cls>`3 `<sep>`4 `<pad>`5 `<mask>`6 `<eod>`7 `<eop>`8. SentencePiece's own unk/bos/eos
take ids 0-2; `<cls> <sep> <pad> <mask> <eod>` are control symbols (never produced from text), `<eop>` and
`. ( ) " - – £ €` user-defined (always a piece of their own, `<eop>` may be written in the text at the end of a
paragraph's last line), exactly `--control_symbols=<cls>,<sep>,<pad>,<mask>,<eod>
--user_defined_symbols=<eop>,.,(,),",-,–,£,€`. `train_xlnet_vocabulary` makes that layout offline; a foreign
model (XLNet's own `spiece.model`) is read by piece names: the nine special pieces are looked up by name and
their ids kept (`special_ids`), so a model with another order still works, and one without them is refused.

Encoding (`prepro_utils.py`): `preprocess_text` (lower=False, remove_space=True, keep_accents=False: collapse
whitespace, `` `` ``/`''` -> `"`, NFKD, drop combining marks — the same normalisation as KoBERT's,
`zoo.data.bert_vocabulary.python_normalize`) then `encode_ids`, which re-splits every piece that ends in a
digit and a comma ("▁1990,") into the pieces of its digits plus "," (so "1990," is read as "1990" ","). The
re-split depends only on the piece, so here it is a table from each id to its replacement ids; `tokenize` runs
normalisation, SentencePiece and that table in TF ops (inside `tf.data`), `encode` the Python original; both
give the same ids.

Example:
```python
from zoo.data.xlnet_vocabulary import load_xlnet_vocabulary, train_xlnet_vocabulary

sentences = ["I was born in 1990, and this is false.", "The café opened in 2001, 2002 and 2003."] * 30
vocab = train_xlnet_vocabulary(sentences, 120)
vocab.special_ids["cls"], vocab.special_ids["eod"]   # (3, 7)
ids = vocab.encode("I was born in 1990, and this is falsé.")
vocab.tokenize(["I was born in 1990, and this is falsé."])[0].numpy().tolist() == ids   # True (TF ops)
vocab.decode(ids)                                   # 'I was born in 1990, and this is false.'
path = vocab.save("/tmp/run")                       # /tmp/run/spiece.model
vocab = load_xlnet_vocabulary(path)
```
"""

import functools
import os

import numpy as np

from zoo.data import bert_vocabulary, subword
from zoo.errors import ZooError
from zoo.paths import write_file_atomically

# name -> (piece, XLNet's id)
SPECIALS = {"unk": ("<unk>", 0), "bos": ("<s>", 1), "eos": ("</s>", 2), "cls": ("<cls>", 3), "sep": ("<sep>", 4),
            "pad": ("<pad>", 5), "mask": ("<mask>", 6), "eod": ("<eod>", 7), "eop": ("<eop>", 8)}
CONTROL_SYMBOLS = ("<cls>", "<sep>", "<pad>", "<mask>", "<eod>")
USER_DEFINED_SYMBOLS = ("<eop>", ".", "(", ")", '"', "-", "\u2013", "\u00a3", "\u20ac")
FILE_NAME = "spiece.model"
SPIECE_UNDERLINE = "\u2581"
# data_utils.py `_is_start_piece`: these single characters start a word (besides "▁..." and "<...>" pieces).
_START_PUNCTUATION = frozenset('!"#$%&"()*+,-./:;?@[\\]^_`{|}~')


def preprocess_text(text):
    """The original `preprocess_text(text, lower=False, remove_space=True, keep_accents=False)`, in Python."""
    return bert_vocabulary.python_normalize(text)


class XLNetVocabulary:
    """A loaded XLNet SentencePiece model (module doc): `proto`, `pieces`, `vocabulary_size`, `special_ids`,
    `sha1`, `encode`/`encode_pieces`/`decode` (Python), `tokenize` (TF ops), `start_pieces`, `save`."""

    def __init__(self, proto):
        from zoo.data.subword import sentencepiece_processor

        self.proto = bytes(proto)
        self._processor = sentencepiece_processor(self.proto, "pass a .model file to --spiece_model")
        self.pieces = [self._processor.id_to_piece(i) for i in range(self._processor.get_piece_size())]
        index = {piece: i for i, piece in enumerate(self.pieces)}
        missing = [piece for piece, _ in SPECIALS.values() if piece not in index]
        if missing:
            raise ZooError(f"the SentencePiece model lacks XLNet's special pieces {missing}; pass XLNet's "
                           "spiece.model or one from train_xlnet_vocabulary to --spiece_model")
        self.special_ids = {name: index[piece] for name, (piece, _) in SPECIALS.items()}

    def __len__(self):
        return len(self.pieces)

    def __repr__(self):
        return f"XLNetVocabulary({len(self)} pieces, sha1 {self.sha1[:10]})"

    def __getstate__(self):  # picklable: the processor and tokenizer are made again
        return {"proto": self.proto}

    def __setstate__(self, state):
        self.__init__(state["proto"])

    @property
    def vocabulary_size(self):
        return len(self.pieces)

    @property
    def standard_layout(self):
        """True when the special ids are XLNet's own (0-8), as in the released checkpoints."""
        return all(self.special_ids[name] == i for name, (_, i) in SPECIALS.items())

    @functools.cached_property
    def sha1(self):
        """SHA-1 (hex) of the serialized model: the vocabulary's fingerprint in configs and checkpoints."""
        return subword.vocabulary_sha1(self.proto)

    @functools.cached_property
    def start_pieces(self):
        """bool [V]: `_is_start_piece` of each piece ("▁..." or "<..." or one punctuation character): where an
        n-gram span may begin and where a word begins for span masking."""
        return np.array([p.startswith(SPIECE_UNDERLINE) or p.startswith("<") or p in _START_PUNCTUATION
                         for p in self.pieces], bool)

    @functools.cached_property
    def functional_ids(self):
        """The ids that are never prediction targets: `<sep>` and `<cls>` (`_local_perm`'s functional tokens)."""
        return (self.special_ids["sep"], self.special_ids["cls"])

    def encode_pieces(self, text):
        """`prepro_utils.encode_pieces` on `preprocess_text(text)`: pieces with the digit-comma re-split."""
        pieces = []
        for piece in self._processor.encode_as_pieces(preprocess_text(text)):
            pieces.extend(self._resplit_piece(piece) or [piece])
        return pieces

    def _resplit_piece(self, piece):
        """The original's replacement of a piece ending in a digit and ",", or None for any other piece."""
        if not (len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit()):
            return None
        pieces = self._processor.encode_as_pieces(piece[:-1].replace(SPIECE_UNDERLINE, ""))
        if piece[0] != SPIECE_UNDERLINE and pieces and pieces[0][0] == SPIECE_UNDERLINE:
            pieces = pieces[1:] if len(pieces[0]) == 1 else [pieces[0][1:]] + pieces[1:]
        return pieces + [piece[-1]]

    def encode(self, text):
        """`prepro_utils.encode_ids(sp, preprocess_text(text))`: a list of ids (pieces not in the vocabulary,
        such as a stripped re-split piece, are `<unk>`)."""
        return [self._processor.piece_to_id(piece) for piece in self.encode_pieces(text)]

    def decode(self, ids):
        """Text of an id sequence (list, numpy or tensor); control pieces decode to nothing."""
        ids = ids.numpy() if hasattr(ids, "numpy") else ids
        return self._processor.decode([int(i) for i in ids])

    @functools.cached_property
    def _resplit_table(self):
        """A ragged [V, None] int32 constant: row i = the ids piece i becomes after the digit-comma re-split."""
        import tensorflow as tf

        rows = []
        for i, piece in enumerate(self.pieces):
            pieces = self._resplit_piece(piece)
            rows.append([i] if pieces is None else [self._processor.piece_to_id(p) for p in pieces])
        with tf.init_scope():
            return tf.ragged.constant(rows, dtype=tf.int32)

    @functools.cached_property
    def _tokenizer(self):
        return bert_vocabulary.normalizing_sentencepiece_tokenizer(self.proto)

    def tokenize(self, texts):
        """TF ops: a tf.string vector [N] -> ragged int32 [N, None] (a scalar -> int32 [n]), the ids `encode`
        gives; usable inside `tf.data` and `tf.function`."""
        import tensorflow as tf

        texts = tf.convert_to_tensor(texts, tf.string)
        scalar = texts.shape.rank == 0
        ids = self._tokenizer.tokenize(tf.reshape(texts, [-1]))
        if not isinstance(ids, tf.RaggedTensor):  # eager keras-hub path may return lists / dense
            ids = tf.ragged.constant(ids, dtype=tf.int32) if isinstance(ids, list) else tf.RaggedTensor.from_tensor(ids)
        ids = tf.cast(ids, tf.int32)
        ids = tf.gather(self._resplit_table, ids).merge_dims(1, 2)
        return ids[0] if scalar else ids

    def save(self, directory):
        """Writes `spiece.model` into `directory` atomically; returns its path."""
        path = os.path.join(directory, FILE_NAME)
        write_file_atomically(path, self.proto)
        return path


def train_xlnet_vocabulary(documents_or_sentences, vocab_size, path=None, *, character_coverage=0.99995, seed=0,
                           num_threads=2, input_sentence_size=10_000_000):
    """Trains a unigram SentencePiece vocabulary in XLNet's layout (module doc) on preprocessed text.

    `documents_or_sentences`: sentence strings or documents (lists of them). `vocab_size` (`--vocab_size`,
    XLNet: 32000) counts the special and user-defined pieces; it is an upper bound (a small corpus gives fewer).
    `path` (a file), when given, receives the `.model` atomically. Same text and arguments -> the same bytes.
    """
    if vocab_size <= len(SPECIALS) + len(USER_DEFINED_SYMBOLS):
        raise ZooError(f"--vocab_size={vocab_size} leaves no room beyond XLNet's 17 special and user-defined "
                       "pieces; use at least 100")
    sentences = (preprocess_text(sentence) for item in documents_or_sentences
                 for sentence in ([item] if isinstance(item, str) else item))
    proto = subword.train_sentencepiece_proto(
        sentences, vocab_size, seed=seed, model_type="unigram", unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        control_symbols=list(CONTROL_SYMBOLS), user_defined_symbols=list(USER_DEFINED_SYMBOLS),
        hard_vocab_limit=False, character_coverage=character_coverage, input_sentence_size=input_sentence_size,
        num_threads=num_threads)
    vocabulary = XLNetVocabulary(proto)
    if path is not None:
        write_file_atomically(path, vocabulary.proto)
    return vocabulary


def load_xlnet_vocabulary(path, flag="--spiece_model"):
    """Reads a SentencePiece `.model` (XLNet's own `spiece.model` or one written here); a directory means its
    `spiece.model`."""
    import tensorflow as tf

    if tf.io.gfile.isdir(path):
        path = os.path.join(path, FILE_NAME)
    if not tf.io.gfile.exists(path):
        raise ZooError(f"SentencePiece model {path!r} does not exist; fix {flag} or omit it to train one")
    with tf.io.gfile.GFile(path, "rb") as f:
        proto = f.read()
    try:
        return XLNetVocabulary(proto)
    except ZooError as e:
        raise ZooError(f"{path!r} ({flag}): {e}") from None
