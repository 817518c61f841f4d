"""enwik8's standard preparation (split, newline dropped, byte vocabulary) on small generated files."""

import zipfile

import numpy as np
import pytest

from zoo.data import enwik8
from zoo.errors import ZooError


def test_split_keeps_the_last_two_heldout_blocks_and_drops_newlines():
    data = bytes(range(65, 91)) * 4  # 104 bytes
    data = data[:50] + b"\n" + data[51:]
    splits = enwik8.split_enwik8(data, heldout_bytes=20)
    raw = np.frombuffer(data, np.uint8)
    assert splits["test"].tolist() == raw[-20:].tolist()
    assert splits["validation"].tolist() == raw[-40:-20].tolist()
    assert splits["train"].tolist() == [b for b in raw[:-40].tolist() if b != 10]
    assert len(splits["train"]) == 63  # 64 bytes, one newline dropped


def test_paper_split_sizes_are_90m_5m_5m():
    # The real file's split, by index arithmetic on a stand-in of the same length (no 100 MB file needed).
    raw = np.zeros(100_000_000, np.uint8)
    parts = enwik8.split_enwik8(raw)
    assert [len(parts[s]) for s in ("train", "validation", "test")] == [90_000_000, 5_000_000, 5_000_000]


def test_vocabulary_is_the_bytes_present_most_frequent_first_ties_first_seen():
    vocab = enwik8.ByteVocabulary.build([np.frombuffer(b"abcbca", np.uint8), np.frombuffer(b"dc", np.uint8)])
    # counts: c 3, a 2, b 2 (a seen first), d 1
    assert vocab.byte_values == [ord("c"), ord("a"), ord("b"), ord("d")]
    assert vocab.encode(b"abcd").tolist() == [1, 2, 0, 3]
    assert vocab.decode([1, 2, 0, 3]) == "abcd"
    assert vocab.text() == "99\n97\n98\n100\n"
    with pytest.raises(ZooError, match="not in the vocabulary"):
        vocab.encode(b"abz")


def test_open_enwik8_reads_the_raw_file_and_the_zip_alike(tmp_path):
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list("<page>\n abcdefgh\u00e9"), size=3000)).encode("utf-8")
    raw = tmp_path / "enwik8"
    raw.write_bytes(text)
    with zipfile.ZipFile(tmp_path / "enwik8.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("enwik8", text)
    vocab, splits = enwik8.open_enwik8(str(raw), heldout_bytes=500)
    zvocab, zsplits = enwik8.open_enwik8(str(tmp_path / "enwik8.zip"), heldout_bytes=500)
    assert vocab.sha1 == zvocab.sha1 and all((splits[s] == zsplits[s]).all() for s in splits)
    present = set(text) - {10}
    assert vocab.size == len(present) and set(vocab.byte_values) == present  # 'é' is two bytes
    assert splits["test"].dtype == np.int32
    assert vocab.decode(splits["test"]) == text[-500:].replace(b"\n", b"").decode("utf-8", errors="replace")
    saved = tmp_path / "vocab.txt"
    vocab.save(str(saved))
    assert enwik8.ByteVocabulary.load(str(saved)).sha1 == vocab.sha1


def test_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(ZooError, match=r"--enwik8_file=.*no such file"):
        enwik8.read_enwik8(str(tmp_path / "missing"))
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ZooError, match="is empty"):
        enwik8.read_enwik8(str(tmp_path / "empty"))
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("a.txt", "x")
        z.writestr("b.txt", "y")
    with pytest.raises(ZooError, match="without an 'enwik8' member"):
        enwik8.read_enwik8(str(tmp_path / "other.zip"))
    with pytest.raises(ZooError, match="--enwik8_heldout_bytes=50 leaves no training bytes"):
        enwik8.split_enwik8(b"x" * 100, heldout_bytes=50)
    (tmp_path / "vocab.txt").write_text("<unk>\nthe\n", encoding="utf-8")
    with pytest.raises(ZooError, match="not a byte vocabulary"):
        enwik8.ByteVocabulary.load(str(tmp_path / "vocab.txt"))


def test_byte_documents_keep_newlines():
    docs = enwik8.byte_documents(["a\nb\n", "\u00e9"])
    assert docs[0].tolist() == [97, 10, 98, 10] and docs[1].tolist() == [0xC3, 0xA9]
