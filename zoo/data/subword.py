"""A shared subword vocabulary for translation: SentencePiece (BPE by default), trained offline on source
and target text together, stored as one `.model` file (a serialized `ModelProto`) with the run.

Ids: pad 0, unk 1, BOS 2, EOS 3, then the learned pieces (`PAD_ID`, `UNK_ID`, `BOS_ID`, `EOS_ID`).
`SubwordModel.tokenize` is a TF op (keras-hub's `SentencePieceTokenizer` on tensorflow-text) usable inside
`tf.data`; `encode`/`decode` are the host-side (Python) forms, with `decode` stopping at EOS and dropping
pad and BOS. Neither adds BOS or EOS; the translation pipelines append EOS themselves.

Example:
    texts = ["I bought 23 apples.", "I bought twenty-three apples."] * 50
    model = train_subword_model(texts, vocab_size=60, path="/tmp/run/subword.model")
    model = load_subword_model("/tmp/run/subword.model")
    ids = model.encode("I bought 23 apples.")            # [.., ..] without EOS
    model.decode(ids + [EOS_ID, PAD_ID])                 # 'I bought 23 apples.'
    model.tokenize(tf.constant("I bought 23 apples."))   # the same ids as an int32 tensor
    model.sha1                                           # vocabulary_sha1(model.proto), for the run's config
"""

import functools
import hashlib
import io
import re

from zoo.errors import ZooError
from zoo.paths import write_file_atomically

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
MODEL_TYPES = ("bpe", "unigram", "char", "word")


def train_subword_model(texts, vocab_size, path=None, *, model_type="bpe", input_sentence_size=2_000_000,
                        character_coverage=1.0, split_digits=False, seed=0, num_threads=2):
    """Trains a SentencePiece model with the ids above on an iterable of sentences (str or UTF-8 bytes).

    Args:
        texts: sentences of both languages (read once, lazily; empty ones are skipped).
        vocab_size: the number of pieces, the 4 special ids included (`--vocab_size`).
        path: where to write the `.model` file (atomically: a temporary file renamed into place); optional.
        model_type: "bpe" (the paper's choice), "unigram", "char" or "word".
        input_sentence_size: at most this many sentences, a seeded reservoir sample of the stream, are used.
        character_coverage: the share of characters kept as pieces (1.0 keeps every character seen).
        split_digits: make every digit a piece of its own (numbers are then read digit by digit).
        seed: the sampling seed; the same texts and arguments give the same model, byte for byte.
        num_threads: SentencePiece's training threads.

    Returns the `SubwordModel`. A vocabulary too large (or too small) for the text is a one-line ZooError
    naming `--vocab_size` and the size SentencePiece can make.
    """
    if model_type not in MODEL_TYPES:
        raise ZooError(f"unknown subword model_type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}")
    if vocab_size <= EOS_ID + 1:
        raise ZooError(f"--vocab_size={vocab_size} leaves no room beyond the 4 special ids; use at least 100")
    texts = (t.decode("utf-8") if isinstance(t, bytes) else t for t in texts)
    proto = train_sentencepiece_proto(
        texts, vocab_size, seed=seed, model_type=model_type, pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID,
        eos_id=EOS_ID, pad_piece="<pad>", unk_piece="<unk>", bos_piece="<s>", eos_piece="</s>",
        character_coverage=character_coverage, input_sentence_size=input_sentence_size, split_digits=split_digits,
        num_threads=num_threads)
    model = SubwordModel(proto)
    if path is not None:
        model.save(path)
    return model


def train_sentencepiece_proto(sentences, vocab_size, *, seed=0, **options):
    """The serialized `ModelProto` SentencePiece trains on `sentences` (an iterable of str, read once; blank
    ones skipped) with `SentencePieceTrainer` `options` (ids, pieces, model_type, ...), seeded by `seed` and
    shuffling its input sample, so the same text and options give the same bytes. Training errors (empty text,
    a --vocab_size the text cannot fill) are one-line ZooErrors. Used by this module and
    `zoo.data.bert_vocabulary`."""
    import sentencepiece as spm

    counted = [0]

    def stream():
        for sentence in sentences:
            if sentence.strip():
                counted[0] += 1
                yield sentence

    writer = io.BytesIO()
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=stream(), model_writer=writer, vocab_size=vocab_size,
                                       shuffle_input_sentence=True, minloglevel=2, **options)
    except RuntimeError as e:
        raise ZooError(_training_error(str(e), vocab_size, counted[0])) from None
    if not counted[0]:
        raise ZooError(_training_error("", vocab_size, 0))
    return writer.getvalue()


def _training_error(message, vocab_size, sentences):
    if not sentences:
        return "cannot train a subword vocabulary: the training text is empty"
    high = re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", message)
    if high:
        return (f"--vocab_size={vocab_size} is too large for the training text ({sentences} sentences): "
                f"SentencePiece can make at most {high.group(2)} pieces from it; use a smaller --vocab_size")
    small = re.search(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)", message)
    if small:
        return (f"--vocab_size={vocab_size} is smaller than the {small.group(2)} distinct characters of the "
                f"training text; use a larger --vocab_size (or a lower character_coverage)")
    last = [line for line in message.splitlines() if line.strip()][-1]
    return f"SentencePiece could not train a vocabulary of --vocab_size={vocab_size}: {last.strip()}"


def load_subword_model(path):
    """Reads a SentencePiece `.model` file written by `train_subword_model` (or any with the ids above)."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
        raise ZooError(f"subword model {path!r} does not exist; fix --vocab_file or omit it to train one")
    with tf.io.gfile.GFile(path, "rb") as f:
        proto = f.read()
    try:
        return SubwordModel(proto)
    except ZooError as e:
        raise ZooError(f"subword model {path!r} (--vocab_file): {e}") from None


def vocabulary_sha1(model):
    """The SHA-1 (hex) of a subword model's serialized proto (a `SubwordModel`, bytes or a path): the
    vocabulary's fingerprint, recorded in the run's config and checked against checkpoints."""
    if isinstance(model, SubwordModel):
        proto = model.proto
    elif isinstance(model, (bytes, bytearray)):
        proto = bytes(model)
    else:
        proto = load_subword_model(model).proto
    return hashlib.sha1(proto).hexdigest()


def sentencepiece_processor(proto, fix):
    """A `sentencepiece.SentencePieceProcessor` of the serialized model `proto`; a proto that does not parse is
    a one-line ZooError ending with `fix` (what to pass instead)."""
    import sentencepiece as spm

    try:
        return spm.SentencePieceProcessor(model_proto=bytes(proto))
    except (RuntimeError, OSError, TypeError):
        raise ZooError(f"not a SentencePiece model (the proto does not parse); {fix}") from None


class SubwordModel:
    """A loaded SentencePiece model (see the module docstring): `proto` bytes, `vocabulary_size`, `sha1`,
    `encode`/`decode` on the host and `tokenize` as a TF op."""

    def __init__(self, proto):
        self.proto = bytes(proto)
        self._processor = sentencepiece_processor(self.proto, "pass a .model file written by "
                                                              "zoo.data.subword.train_subword_model")
        ids = (self._processor.pad_id(), self._processor.unk_id(), self._processor.bos_id(), self._processor.eos_id())
        if ids != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise ZooError(f"the SentencePiece model has pad/unk/bos/eos ids {ids}, expected (0, 1, 2, 3); "
                           "train it with zoo.data.subword.train_subword_model")

    @property
    def vocabulary_size(self):
        return self._processor.get_piece_size()

    @property
    def sha1(self):
        return vocabulary_sha1(self.proto)

    def save(self, path):
        """Writes the `.model` file via a temporary file and a rename, so it is never half-written."""
        write_file_atomically(path, self.proto)

    def encode(self, text):
        """Host-side ids (a list of ints; a list of lists for a list of texts), without BOS or EOS."""
        return self._processor.encode(text, out_type=int)

    def decode(self, ids):
        """Text of one id sequence (list, numpy or tensor): stops at the first EOS, drops pad and BOS."""
        ids = [int(i) for i in (ids.numpy() if hasattr(ids, "numpy") else ids)]
        if EOS_ID in ids:
            ids = ids[:ids.index(EOS_ID)]
        return self._processor.decode([i for i in ids if i not in (PAD_ID, BOS_ID)])

    def id_to_piece(self, index):
        return self._processor.id_to_piece(int(index))

    @functools.cached_property
    def keras_tokenizer(self):
        """keras-hub's `SentencePieceTokenizer` on this proto (int32 ids, no BOS/EOS; a tf.data-ready layer)."""
        import tensorflow as tf
        from keras_hub.tokenizers import SentencePieceTokenizer

        # Made eagerly (init_scope) and used once: its TF SentencePiece resource is created then, and one
        # created while tracing a tf.data function could not be captured by the next dataset.
        with tf.init_scope():
            tokenizer = SentencePieceTokenizer(proto=self.proto, dtype="int32", _allow_python_workflow=False)
            tokenizer.tokenize(tf.constant([""]))
        return tokenizer

    @functools.lru_cache(maxsize=None)
    def _eager_tokenize(self, rank):
        import tensorflow as tf

        return tf.function(self.keras_tokenizer.tokenize, input_signature=[tf.TensorSpec([None] * rank, tf.string)],
                           autograph=False)

    def tokenize(self, text):
        """int32 ids of a string tensor: [n] for a scalar, a RaggedTensor [batch, None] for a vector; TF ops,
        usable inside `tf.data` and `tf.function` (and eagerly, where they run as a `tf.function`)."""
        import tensorflow as tf

        text = tf.convert_to_tensor(text, tf.string)
        if tf.executing_eagerly():  # keras-hub's layer runs its Python path eagerly; keep the TF one
            return self._eager_tokenize(text.shape.rank)(text)
        # Plain TF ops: autograph's conversion of keras-hub's code would only cost seconds of tracing.
        return tf.autograph.experimental.do_not_convert(self.keras_tokenizer.tokenize)(text)
