"""Byte-level language-model data: enwik8 as Transformer-XL prepared it, and any text as UTF-8 bytes.

enwik8 (`open_enwik8`) is the first 10^8 bytes of an English Wikipedia XML dump (the Hutter Prize file), read
from the raw `enwik8` file or the `enwik8.zip` that holds it. The standard preparation (awd-lstm-lm's
`prep_enwik8.py`, which Transformer-XL's `getdata.sh` runs, then Transformer-XL's `Vocab`) is followed
exactly: the last 2 x 5,000,000 bytes are the validation and the test split, the rest (the first 90M bytes)
is training; each byte is a token, except the newline byte, which the preparation turns into a line break
and the vocabulary's line reader drops; the vocabulary is every byte value present in the three splits,
most frequent first (ties in first-seen order): 204 symbols on the real file (205 byte values, newline
dropped), no `<unk>`, no `<eos>`.

Text (`byte_documents`) at char level: each document's UTF-8 bytes, newlines kept; the vocabulary is built
the same way from every split (as Transformer-XL's corpus does for its character sets), so no byte is unknown.

`vocab.txt` of a `ByteVocabulary` holds the byte value of id i, in decimal, on line i (the original's symbols).

Example:
```python
vocab, splits = open_enwik8("/data/enwik8.zip")           # or the unzipped "enwik8"
vocab.size                                                 # 204
splits["train"][:5], vocab.decode(splits["train"][:5])     # int32 ids, '<mediawiki'[:5]
small_vocab, small = open_enwik8("/tmp/tiny_enwik8", heldout_bytes=1000)   # a small file: 1000-byte held out
```
"""

import hashlib
import io
import zipfile

import numpy as np

from zoo.errors import ZooError

HELDOUT_BYTES = 5_000_000  # prep_enwik8.py's num_test_chars: validation and test take this many bytes each
NEWLINE = 10


def read_enwik8(path, flag="--enwik8_file"):
    """The bytes of the enwik8 file at `path`: the raw file, or a zip archive holding it (the member named
    `enwik8`, else the archive's only file). A missing or empty file is a one-line `ZooError` naming `flag`."""
    import tensorflow as tf

    if not path or not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
        raise ZooError(f"{flag}={path}: no such file; give the path of enwik8 or enwik8.zip "
                       "(http://mattmahoney.net/dc/enwik8.zip, downloaded beforehand)")
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
                name = "enwik8" if "enwik8" in names else (names[0] if len(names) == 1 else None)
                if name is None:
                    raise ZooError(f"{flag}={path} is a zip archive without an 'enwik8' member (it holds "
                                   f"{', '.join(names[:5]) or 'nothing'}); give enwik8.zip or the raw file")
                data = archive.read(name)
        except zipfile.BadZipFile as e:
            raise ZooError(f"{flag}={path} looks like a zip archive but cannot be read ({e}); give the raw "
                           "enwik8 file or an intact enwik8.zip") from None
    if not data:
        raise ZooError(f"{flag}={path} is empty; give the enwik8 file or enwik8.zip")
    return data


def split_enwik8(data, heldout_bytes=HELDOUT_BYTES, flag="--enwik8_heldout_bytes"):
    """{"train", "validation", "test"}: uint8 arrays of `data` (bytes) split as prep_enwik8.py does: test is
    the last `heldout_bytes` bytes, validation the `heldout_bytes` before them, train the rest; then the
    newline bytes are dropped from each (see the module)."""
    data = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray)) else np.asarray(data, np.uint8)
    if heldout_bytes < 1 or len(data) <= 2 * heldout_bytes:
        raise ZooError(f"{flag}={heldout_bytes} leaves no training bytes in a {len(data):,}-byte file (validation "
                       f"and test take {flag} bytes each); give a smaller {flag} or the full enwik8 file")
    parts = {"train": data[:-2 * heldout_bytes], "validation": data[-2 * heldout_bytes:-heldout_bytes],
             "test": data[-heldout_bytes:]}
    return {split: part[part != NEWLINE] for split, part in parts.items()}


def byte_documents(documents):
    """uint8 arrays of the UTF-8 bytes of `documents` (strings), newlines kept."""
    return [np.frombuffer(d.encode("utf-8"), np.uint8) for d in documents]


class ByteVocabulary:
    """Byte value <-> id: `byte_values[i]` is the byte of id i (see the module docstring). "Char level"
    here (recipes/transformer_xl_lm.py, enwik8) means UTF-8 bytes; `zoo.data.lm_vocabulary.LMVocabulary`'s
    char level (recipes/rnn_lm.py) means Unicode code points."""

    level = "char"

    def __init__(self, byte_values):
        values = [int(b) for b in byte_values]
        if not values or any(not 0 <= b < 256 for b in values) or len(set(values)) != len(values):
            raise ZooError("a byte vocabulary lists distinct byte values 0..255, one per line")
        self.byte_values = values
        self.table = np.full(256, -1, np.int32)
        self.table[values] = np.arange(len(values), dtype=np.int32)

    @property
    def size(self):
        """The number of ids (the model's vocabulary_size)."""
        return len(self.byte_values)

    @classmethod
    def build(cls, arrays):
        """The vocabulary of the bytes in `arrays` (uint8 arrays, in order): every value present, most
        frequent first, ties in first-seen order (Transformer-XL's `Counter.most_common`)."""
        counts = np.zeros(256, np.int64)
        for a in arrays:
            counts += np.bincount(np.asarray(a, np.uint8), minlength=256)
        present = np.flatnonzero(counts)
        if not len(present):
            raise ZooError("the text has no bytes to build a vocabulary from")
        first = {}
        offset = 0
        for a in arrays:  # first occurrences, chunk by chunk, until every present value is seen
            for start in range(0, len(a), 1 << 20):
                chunk = np.asarray(a[start:start + (1 << 20)], np.uint8)
                values, index = np.unique(chunk, return_index=True)
                for v, i in zip(values.tolist(), index.tolist()):
                    first.setdefault(v, offset + start + i)
                if len(first) == len(present):
                    break
            offset += len(a)
            if len(first) == len(present):
                break
        order = sorted(present.tolist(), key=lambda b: (-counts[b], first[b]))
        return cls(order)

    def encode(self, data):
        """int32 ids of `data` (a uint8 array, bytes, or a str as UTF-8); a byte outside the vocabulary is a
        `ZooError`."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        data = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray)) else np.asarray(data, np.uint8)
        ids = self.table[data]
        if len(ids) and ids.min() < 0:
            bad = sorted(set(data[ids < 0].tolist()))
            raise ZooError(f"byte value(s) {', '.join(map(str, bad[:5]))} are not in the vocabulary; build it from "
                           "text that holds them")
        return ids

    def decode(self, ids):
        """The text of `ids` (UTF-8, undecodable bytes replaced)."""
        values = np.asarray(self.byte_values, np.uint8)[np.clip(np.asarray(ids).reshape(-1), 0, self.size - 1)]
        return values.tobytes().decode("utf-8", errors="replace")

    def text(self):
        """The contents of vocab.txt."""
        return "".join(f"{b}\n" for b in self.byte_values)

    @property
    def sha1(self):
        """SHA-1 of vocab.txt's contents and the kind (compared when a run resumes)."""
        return hashlib.sha1(f"bytes\n{self.text()}".encode("utf-8")).hexdigest()

    def save(self, path):
        """Writes vocab.txt (atomically)."""
        from zoo.paths import write_file_atomically

        write_file_atomically(path, self.text())

    @classmethod
    def load(cls, path):
        """Reads a vocab.txt written by `save`."""
        import tensorflow as tf

        if not tf.io.gfile.exists(path):
            raise ZooError(f"no vocabulary file {path!r}")
        with tf.io.gfile.GFile(path, "rb") as f:
            lines = f.read().decode("utf-8", errors="replace").split()
        try:
            return cls(int(line) for line in lines)
        except ValueError:
            raise ZooError(f"{path!r} is not a byte vocabulary (one byte value per line); use a new --model_dir"
                           ) from None


def open_enwik8(path, heldout_bytes=HELDOUT_BYTES):
    """(`ByteVocabulary`, {split: int32 ids}) of the enwik8 file at `path` (see the module)."""
    splits = split_enwik8(read_enwik8(path), heldout_bytes)
    vocab = ByteVocabulary.build([splits["train"], splits["validation"], splits["test"]])
    return vocab, {split: vocab.encode(part) for split, part in splits.items()}
