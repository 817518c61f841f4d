"""BERT vocabularies of both kinds behind one interface: WordPiece (`vocab.txt`, uncased, the English BERT) and
SentencePiece (`.model`, KoBERT's layout and normalisation).

KoBERT's vocabulary, as found in its public sources:
- ids: `[UNK]`=0, `[PAD]`=1, `[CLS]`=2, `[SEP]`=3, `[MASK]`=4, 8,002 pieces in all. monologg/KoBERT-Transformers
  `tests/test_tokenizer.py` asserts exactly these ids and size for the converted `tokenizer_78b3253a26.model`
  and checks "한국어 모델을 공유합니다." -> `▁한국 어 ▁모델 을 ▁공유 합니다 .` -> `[2, 4958, 6855, 2046, 7088,
  1050, 7843, 54, 3]`, the same ids as the SKTBrain/KoBERT `kobert_hf/README.md` example. The HF wrapper
  (`kobert_hf/kobert_tokenizer/kobert_tokenizer.py`) subclasses `XLNetTokenizer`, whose ids are the
  SentencePiece model's own ids; the original gluonnlp path (`kobert/pytorch_kobert.py`) builds
  `BERTVocab.from_sentencepiece(vocab_file, padding_token="[PAD]")`, also the model's own order. So the special
  pieces live inside the `.model`, in the order above; `train_sentencepiece_vocabulary` makes that layout
  (unk/pad/bos/eos ids 0-3 named `[UNK] [PAD] [CLS] [SEP]`, `[MASK]` a control symbol at 4).
- Model type: unigram (the maintainer in SKTBrain/KoBERT#83: "Sentencepiece Unigram tokenizer"; trained on
  Korean Wikipedia/news text with 8k pieces, #56). Whether its `[CLS]`/`[SEP]`/`[MASK]` are control or
  user-defined pieces cannot be read from the public sources (the binary model is not in them). Ours are
  control pieces, never produced from raw text. A foreign `.model` (e.g. KoBERT's own
  `tokenizer_78b3253a26.model`) is read by piece names: the five special pieces are looked up by name.
- A lone "▁" piece starts a word (KoBERT cuts rare syllables as `▁ 셔`, monologg/KoBERT-Transformers#1); the
  piece after it continues that word for whole-word masking.
- Normalisation, as `XLNetTokenizer.preprocess_text` with KoBERT's `remove_space=True, keep_accents=False,
  do_lower_case=False`: collapse whitespace and strip, `` `` ``/`''` -> `"`, NFKD, drop combining characters;
  then the model's own normaliser (nmt_nfkc) inside SentencePiece recomposes Hangul. Done here in TF ops
  (`tensorflow_text.normalize_utf8` + regexes), so it runs inside `tf.data`. Not reproduced: XLNetTokenizer's
  re-splitting of pieces that end in a digit and a comma ("1,").

Example:
```python
import tensorflow as tf
from zoo.data.bert_vocabulary import load_bert_vocabulary, train_sentencepiece_vocabulary

vocab = train_sentencepiece_vocabulary(["한국어 모델을 공유합니다.", "대한민국은 민주공화국이다."] * 20, 60)
vocab.kind, vocab.special_ids["mask"]          # ('sentencepiece', 4)
ids = vocab.tokenizer(tf.constant(["한국어 모델"]))   # eager: a list of id lists (in tf.data: ragged int32)
vocab.detokenize(ids[0])                       # '한국어 모델'
path = vocab.save("/tmp/run")                  # /tmp/run/spiece.model
vocab = load_bert_vocabulary(path)             # or a WordPiece "vocab.txt"
```
"""

import functools
import os
import unicodedata

import numpy as np

from zoo.data import subword, wordpiece
from zoo.errors import ZooError
from zoo.paths import write_file_atomically

KINDS = ("wordpiece", "sentencepiece")
FILE_NAMES = {"wordpiece": "vocab.txt", "sentencepiece": "spiece.model"}
SPECIAL_PIECES = {"unk": "[UNK]", "pad": "[PAD]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
WORD_START = "\u2581"  # SentencePiece's "▁"


class BertVocabulary:
    """A BERT vocabulary: `kind`, `tokens`, `special_ids`, `sha1`, `tokenizer`, `word_starts`, `save`."""

    def __init__(self, kind, tokens, special_ids, proto=None):
        if kind not in KINDS:
            raise ZooError(f"unknown vocabulary kind {kind!r}; choose one of {', '.join(KINDS)} (--tokenizer)")
        self.kind, self.tokens, self.special_ids, self.proto = kind, list(tokens), dict(special_ids), proto

    @classmethod
    def from_wordpiece(cls, tokens):
        """Wraps a WordPiece token list (`zoo.data.wordpiece`: uncased, `[PAD] [CLS] [SEP] [UNK] [MASK]`)."""
        tokens = list(tokens)
        wordpiece.check_vocabulary(tokens)
        return cls("wordpiece", tokens, wordpiece.special_ids(tokens))

    @classmethod
    def from_sentencepiece(cls, proto):
        """Wraps a serialized SentencePiece model; the special pieces are found by name (see the module doc)."""
        from zoo.data.subword import sentencepiece_processor

        proto = bytes(proto)
        processor = sentencepiece_processor(proto, "pass a .model file to --vocab_file")
        tokens = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
        index = {piece: i for i, piece in enumerate(tokens)}
        missing = [piece for piece in SPECIAL_PIECES.values() if piece not in index]
        if missing:
            raise ZooError(f"the SentencePiece model lacks the BERT special pieces {missing} (--vocab_file); "
                           "train one with zoo.data.bert_vocabulary.train_sentencepiece_vocabulary")
        return cls("sentencepiece", tokens, {name: index[piece] for name, piece in SPECIAL_PIECES.items()}, proto)

    def __len__(self):
        return len(self.tokens)

    def __repr__(self):
        return f"BertVocabulary({self.kind}, {len(self)} tokens, sha1 {self.sha1[:10]})"

    def __getstate__(self):  # picklable for worker processes: the tokenizer is made again there
        return {k: v for k, v in self.__dict__.items() if k in ("kind", "tokens", "special_ids", "proto")}

    @functools.cached_property
    def sha1(self):
        """WordPiece: sha1 of the tokens joined by newlines (as shards and configs always recorded it);
        SentencePiece: sha1 of the serialized model."""
        if self.kind == "wordpiece":
            return wordpiece.vocabulary_sha1(self.tokens)
        return subword.vocabulary_sha1(self.proto)

    @property
    def file_name(self):
        return FILE_NAMES[self.kind]

    @functools.cached_property
    def word_starts(self):
        """bool [V]: True where a piece starts a word (WordPiece: no `##`; SentencePiece: a leading "▁");
        [CLS], [SEP], [PAD] and [MASK] count as words of their own. [UNK] follows the rule of its kind: in
        WordPiece it replaces a whole word; in SentencePiece it stands for unknown characters without a "▁",
        which continue the word before them ("한😀국어" -> `▁ 한 [UNK] 국 어`, one word)."""
        if self.kind == "wordpiece":
            starts = [not t.startswith("##") for t in self.tokens]
        else:
            starts = [t.startswith(WORD_START) for t in self.tokens]
        starts = np.array(starts, bool)
        starts[[self.special_ids[name] for name in ("cls", "sep", "pad", "mask")]] = True
        return starts

    @functools.cached_property
    def tokenizer(self):
        """A keras-hub tokenizer: tf.string [N] -> ragged int32 ids, TF ops only (tf.data-safe)."""
        if self.kind == "wordpiece":
            return wordpiece.make_tokenizer(self.tokens)
        return normalizing_sentencepiece_tokenizer(self.proto)

    def detokenize(self, ids):
        """Host-side text of a list of ids (special pieces dropped)."""
        ids = [int(i) for i in ids if int(i) not in self.special_ids.values()]
        if self.kind == "sentencepiece":
            return self._processor.decode(ids)
        return " ".join(self.tokens[i] for i in ids).replace(" ##", "")

    @functools.cached_property
    def _processor(self):
        import sentencepiece as spm

        return spm.SentencePieceProcessor(model_proto=self.proto)

    def save(self, directory):
        """Writes `vocab.txt` or `spiece.model` into `directory` atomically; returns its path."""
        import tensorflow as tf

        tf.io.gfile.makedirs(directory)
        path = os.path.join(directory, self.file_name)
        if self.kind == "wordpiece":
            wordpiece.write_vocabulary(self.tokens, path)
        else:
            write_file_atomically(path, self.proto)
        return path


def vocabulary_file_in(directory):
    """The `vocab.txt` or `spiece.model` in `directory` (a run's own vocabulary), or None."""
    import tensorflow as tf

    for name in FILE_NAMES.values():
        path = os.path.join(directory, name)
        if tf.io.gfile.exists(path):
            return path
    return None


def as_vocabulary(vocabulary):
    """A `BertVocabulary` from one, a WordPiece token list, or a vocabulary file path."""
    if isinstance(vocabulary, BertVocabulary):
        return vocabulary
    if isinstance(vocabulary, (str, os.PathLike)):
        return load_bert_vocabulary(os.fspath(vocabulary))
    return BertVocabulary.from_wordpiece(vocabulary)


def load_bert_vocabulary(path, flag="--vocab_file"):
    """Reads a WordPiece `vocab.txt` (one token per line) or a SentencePiece `.model` (by its content)."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
        raise ZooError(f"vocabulary file {path!r} does not exist; fix {flag} or omit it to train one")
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    text = None
    if not path.endswith(".model"):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            pass  # binary: a SentencePiece model under another name
    if text is None:
        try:
            return BertVocabulary.from_sentencepiece(data)
        except ZooError as e:
            raise ZooError(f"vocabulary file {path!r} ({flag}): {e}") from None
    return BertVocabulary.from_wordpiece(wordpiece.load_vocabulary(path))


def python_normalize(text):
    """KoBERT's `preprocess_text` in Python (for training text; the tokenizer does the same in TF ops)."""
    text = " ".join(text.strip().split()).replace("``", '"').replace("''", '"')
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c))


def _ranges(codepoints):
    runs, start, prev = [], None, None
    for c in codepoints:
        if start is None or c != prev + 1:
            if start is not None:
                runs.append((start, prev))
            start = c
        prev = c
    if start is not None:
        runs.append((start, prev))
    return "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in runs)


# Characters with a non-zero canonical combining class (what `unicodedata.combining` drops), and Python's
# `str.split()` whitespace, as RE2 classes.
_COMBINING = "[" + _ranges(c for c in range(0x110000) if unicodedata.combining(chr(c))) + "]"
_WHITESPACE = "[" + _ranges(c for c in range(0x110000) if chr(c).isspace()) + "]+"


def normalize(text):
    """The TF form of `python_normalize`: a tf.string tensor of any shape, normalised element-wise."""
    import tensorflow as tf
    import tensorflow_text as tf_text

    text = tf.strings.regex_replace(text, _WHITESPACE, " ")
    text = tf.strings.regex_replace(text, "^ | $", "")
    text = tf.strings.regex_replace(text, "``|''", '"')
    text = tf_text.normalize_utf8(text, "NFKD")
    return tf.strings.regex_replace(text, _COMBINING, "")


def normalizing_sentencepiece_tokenizer(proto):
    """keras-hub's `SentencePieceTokenizer` for the serialized model `proto`, after `normalize` (XLNet's
    `preprocess_text` with keep_accents=False, which KoBERT's tokenizer inherits), inside TF ops."""
    import tensorflow as tf
    from keras_hub.tokenizers import SentencePieceTokenizer

    class BertSentencePieceTokenizer(SentencePieceTokenizer):
        """keras-hub's SentencePieceTokenizer after KoBERT's normalisation (`normalize`)."""

        def tokenize(self, inputs):
            return super().tokenize(normalize(tf.convert_to_tensor(inputs, tf.string)))

    # Made eagerly (init_scope), as zoo.data.subword does: its TF resource must not be created while tracing.
    with tf.init_scope():
        tokenizer = BertSentencePieceTokenizer(proto=proto, dtype="int32", _allow_python_workflow=False)
        tokenizer.tokenize(tf.constant([""]))
    return tokenizer


def train_sentencepiece_vocabulary(documents_or_sentences, vocab_size, path=None, *, model_type="unigram",
                                   character_coverage=0.9995, seed=0, num_threads=2,
                                   input_sentence_size=2_000_000):
    """Trains a SentencePiece BERT vocabulary in KoBERT's layout (module doc) on normalised text.

    `documents_or_sentences`: sentence strings or documents (lists of them). `vocab_size` (`--vocab_size`)
    counts the 5 special pieces; it is an upper bound (SentencePiece's soft limit): a small corpus gives fewer.
    `path`, when given, receives the `.model` file atomically. Same text and arguments -> the same bytes.
    """
    if vocab_size <= len(SPECIAL_PIECES):
        raise ZooError(f"--vocab_size must exceed the {len(SPECIAL_PIECES)} special pieces, got {vocab_size}")
    sentences = (python_normalize(sentence) for item in documents_or_sentences
                 for sentence in ([item] if isinstance(item, str) else item))
    proto = subword.train_sentencepiece_proto(
        sentences, vocab_size, seed=seed, model_type=model_type, unk_id=0, unk_piece="[UNK]", pad_id=1,
        pad_piece="[PAD]", bos_id=2, bos_piece="[CLS]", eos_id=3, eos_piece="[SEP]", control_symbols=["[MASK]"],
        hard_vocab_limit=False, character_coverage=character_coverage, input_sentence_size=input_sentence_size,
        num_threads=num_threads)
    vocabulary = BertVocabulary.from_sentencepiece(proto)
    if path is not None:
        write_file_atomically(path, vocabulary.proto)
    return vocabulary
