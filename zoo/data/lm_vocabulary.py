"""Language-model vocabularies: word level (PTB style) or character level, saved as `vocab.txt`.

- word level: each line of text is split into words and punctuation (`tokenize_words`), optionally
  lowercased, and followed by `<eos>`; the `vocab_size` most frequent training tokens (ties in first-seen
  order) with at least `min_count` occurrences are kept, `<unk>` (id 0) and `<eos>` (id 1) included; every
  other word reads as `<unk>`.
- word level with `tokenizer="whitespace_eos"` (Transformer-XL's `Vocab.tokenize` for WikiText-103):
  every line, blank ones included, is `line.strip().split()` plus `<eos>`; nothing else is split, so a
  literal `<unk>` in the text is one token (the unk id) and `@,@`, `@-@`, `@.@` stay single tokens. Read
  such files as one stream each (`open_lm_corpus(..., split_documents=False)`).
- char level: every character (Unicode code point, newline included) of the training text, most frequent
  first, after `<unk>` (id 0) for characters never seen. (recipes/transformer_xl_lm.py's char level reads
  UTF-8 bytes instead: `zoo.data.enwik8.ByteVocabulary`.)

`vocab.txt` holds token i on line i (UTF-8). Backslash, whitespace and unprintable characters are written
as `\\uXXXX` escapes, so the newline and space tokens of a char vocabulary stay one line each.

Example:
```python
vocab = LMVocabulary.build(["The cat sat.\\nA dog ran!"], level="word", lowercase=True)
ids = vocab.encode("the cat ran.")          # int32 [the, cat, ran, ., <eos>]
vocab.decode(ids)                           # 'the cat ran .\\n'
vocab.save("/tmp/run/vocab.txt"); LMVocabulary.load("/tmp/run/vocab.txt", level="word", lowercase=True)
wt = LMVocabulary.build([" = A = \n\n 1 @,@ 000 <unk> \n"], "word", tokenizer="whitespace_eos")
wt.tokenize(" = A = \n\n 1 @,@ 000 <unk> \n")   # ['=', 'A', '=', '<eos>', '<eos>', '1', '@,@', '000', '<unk>', '<eos>']
```
"""

import collections
import hashlib
import re

import numpy as np

from zoo.errors import ZooError

UNK, EOS = "<unk>", "<eos>"
LEVELS = ("word", "char")
TOKENIZERS = ("words", "whitespace_eos")  # word level: punctuation split off (default), or Transformer-XL's
# A word: letters/digits, with inner apostrophes, hyphens, periods or commas ("don't", "x-ray", "3.14",
# "1,000"); any other non-space character is a token of its own.
_WORD = re.compile(r"\w+(?:['\u2019\-.,]\w+)*|[^\w\s]")
_ESCAPE = re.compile(r"\\(\\|u[0-9a-f]{4}|U[0-9a-f]{8})")


def tokenize_words(line, lowercase=False):
    """The word-level tokens of one line (no `<eos>`): words with punctuation split off."""
    return _WORD.findall(line.lower() if lowercase else line)


def tokenize_lines(text, tokenizer="words", lowercase=False):
    """The word-level tokens of `text` with `<eos>` per line: "words" (`tokenize_words`, blank lines
    skipped) or "whitespace_eos" (`line.strip().split() + ["<eos>"]` on every line, as a file is iterated:
    a final newline ends the last line, it does not start an empty one)."""
    if lowercase:
        text = text.lower()
    tokens = []
    if tokenizer == "whitespace_eos":
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        if lines[-1] == "":
            lines.pop()
        for line in lines:
            tokens.extend(line.strip().split())
            tokens.append(EOS)
        return tokens
    for line in text.split("\n"):
        words = tokenize_words(line)
        if words:
            tokens.extend(words)
            tokens.append(EOS)
    return tokens


def _check_tokenizer(tokenizer):
    if tokenizer not in TOKENIZERS:
        raise ZooError(f"unknown --tokenizer={tokenizer!r}; choose {' or '.join(TOKENIZERS)}")


def escape_token(token):
    """A token as one line of vocab.txt: backslash, whitespace and unprintable characters as escapes."""
    out = []
    for c in token:
        if c == "\\":
            out.append("\\\\")
        elif c.isspace() or not c.isprintable():
            out.append(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
        else:
            out.append(c)
    return "".join(out)


def unescape_token(line):
    """The inverse of `escape_token`."""
    return _ESCAPE.sub(lambda m: "\\" if m.group(1) == "\\" else chr(int(m.group(1)[1:], 16)), line)


class LMVocabulary:
    """Token <-> id maps of a word- or char-level language model (see the module docstring).

    Args:
        tokens: the tokens in id order; `<unk>` first (and `<eos>` second at word level).
        level: "word" or "char".
        lowercase: lowercase text before looking it up.
        tokenizer: word level: "words" (punctuation split off) or "whitespace_eos" (Transformer-XL's).
    """

    def __init__(self, tokens, level="word", lowercase=False, tokenizer="words"):
        if level not in LEVELS:
            raise ZooError(f"unknown --level={level!r}; choose word or char")
        _check_tokenizer(tokenizer)
        tokens = list(tokens)
        head = [UNK, EOS] if level == "word" else [UNK]
        if tokens[:len(head)] != head:
            raise ZooError(f"a {level}-level vocabulary starts with {', '.join(head)}; got {tokens[:len(head)]}")
        if len(set(tokens)) != len(tokens):
            raise ZooError("the vocabulary lists a token twice")
        if level == "char" and any(len(t) != 1 for t in tokens[1:]):
            raise ZooError("a char-level vocabulary holds single characters; is this a word-level vocab.txt?")
        self.tokens, self.level, self.lowercase = tokens, level, bool(lowercase)
        self.tokenizer = tokenizer if level == "word" else "words"
        self.ids = {t: i for i, t in enumerate(tokens)}
        self.unk_id = 0
        self.eos_id = 1 if level == "word" else None

    @property
    def size(self):
        """The number of ids (the model's vocabulary_size)."""
        return len(self.tokens)

    @classmethod
    def build(cls, texts, level="word", vocab_size=None, min_count=1, lowercase=False, tokenizer="words"):
        """The vocabulary of `texts` (an iterable of strings, e.g. the training documents).

        `vocab_size` counts `<unk>` (and `<eos>`); None keeps every token seen at least `min_count` times.
        """
        if level not in LEVELS:
            raise ZooError(f"unknown --level={level!r}; choose word or char")
        _check_tokenizer(tokenizer)
        counts = collections.Counter()
        for text in texts:
            if level == "word":
                counts.update(tokenize_lines(text, tokenizer, lowercase))
            else:
                counts.update(text.lower() if lowercase else text)
        head = [UNK, EOS] if level == "word" else [UNK]
        if not counts:
            raise ZooError("the training text has no tokens to build a vocabulary from")
        if vocab_size is not None and vocab_size <= len(head):
            raise ZooError(f"--vocab_size={vocab_size} must exceed the {len(head)} special tokens ({', '.join(head)})")
        # most_common sorts stably by count, so ties keep first-seen order (deterministic for given text).
        ranked = [t for t, n in counts.most_common() if n >= min_count and t not in head]
        if vocab_size is not None:
            ranked = ranked[:vocab_size - len(head)]
        return cls(head + ranked, level, lowercase, tokenizer)

    def tokenize(self, text):
        """The tokens of `text`: words and `<eos>` per line (`tokenize_lines`), or its characters."""
        if self.level == "char":
            return list(text.lower() if self.lowercase else text)
        return tokenize_lines(text, self.tokenizer, self.lowercase)

    def encode(self, text):
        """int32 ids of `text` (unknown tokens -> `<unk>`)."""
        ids = self.ids
        return np.fromiter((ids.get(t, 0) for t in self.tokenize(text)), np.int32)

    def decode(self, ids):
        """Text of `ids`: word tokens joined by spaces with `<eos>` as a line break; chars joined as they are."""
        tokens = [self.tokens[int(i)] if 0 <= int(i) < self.size else UNK for i in np.asarray(ids).reshape(-1)]
        if self.level == "char":
            return "".join(tokens)
        lines, line = [], []
        for t in tokens:
            if t == EOS:
                lines.append(" ".join(line) + "\n")
                line = []
            else:
                line.append(t)
        return "".join(lines) + " ".join(line)

    def text(self):
        """The contents of vocab.txt."""
        return "".join(escape_token(t) + "\n" for t in self.tokens)

    @property
    def sha1(self):
        """SHA-1 of vocab.txt's contents plus the level, case and tokenizer settings (compared when a run
        resumes)."""
        kind = f"{self.level} lowercase={self.lowercase}"
        if self.tokenizer != "words":
            kind += f" tokenizer={self.tokenizer}"
        return hashlib.sha1(f"{kind}\n{self.text()}".encode("utf-8")).hexdigest()

    def save(self, path):
        """Writes vocab.txt (atomically)."""
        from zoo.paths import write_file_atomically

        write_file_atomically(path, self.text())

    @classmethod
    def load(cls, path, level="word", lowercase=False, tokenizer="words"):
        """Reads a vocab.txt written by `save`."""
        import tensorflow as tf

        if not tf.io.gfile.exists(path):
            raise ZooError(f"no vocabulary file {path!r}")
        with tf.io.gfile.GFile(path, "rb") as f:
            try:
                text = f.read().decode("utf-8")
            except UnicodeDecodeError:
                raise ZooError(f"{path!r} is not a UTF-8 vocab.txt") from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if not lines:
            raise ZooError(f"{path!r} is empty; delete it to build the vocabulary again")
        return cls([unescape_token(line) for line in lines], level, lowercase, tokenizer)
