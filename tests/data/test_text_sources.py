"""Corpus loading: text files, tensorflow-datasets (a tiny dataset prepared offline), the embedded corpora."""

import re
import unicodedata

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from zoo.data import text_sources
from zoo.errors import ZooError


def write(path, text):
    path.write_bytes(text.encode("utf-8"))
    return str(path)


class ZooTestTinyText(tfds.core.GeneratorBasedBuilder):
    """Three reviews (one empty) in a `body` feature, prepared locally without network."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = tfds.features.FeaturesDict({"body": tfds.features.Text(), "stars": tf.int64})
        return tfds.core.DatasetInfo(builder=self, features=features)

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        texts = ["Great film. Loved it!\nWould watch again", "", "Too long? Yes. \"Boring.\" The end."]
        for i, text in enumerate(texts):
            yield i, {"body": text, "stars": i}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    ZooTestTinyText(data_dir=data_dir).download_and_prepare()
    return data_dir


def test_files_parse_into_documents(tmp_path):
    write(tmp_path / "b.txt", "Third doc one.\r\nThird doc two.\r\n")
    write(tmp_path / "a.txt", "\n\n  First doc, one.  \nFirst doc, two.\n\n\n \nSecond doc.\n\n")
    docs = text_sources.load_documents(input_files=[str(tmp_path / "*.txt")])
    # Globs are sorted; blank (or whitespace) lines split documents; each file starts a new document.
    assert docs == [["First doc, one.", "First doc, two."], ["Second doc."], ["Third doc one.", "Third doc two."]]
    comma_separated = f"{tmp_path / 'b.txt'},{tmp_path / 'a.txt'}"
    assert text_sources.load_documents(input_files=comma_separated)[0] == ["Third doc one.", "Third doc two."]
    assert len(text_sources.load_documents(input_files=[str(tmp_path / "*.txt")], max_documents=2)) == 2


def test_file_errors_name_the_file_and_flag(tmp_path):
    missing = str(tmp_path / "missing.txt")
    with pytest.raises(ZooError, match=r"--input_files.*missing\.txt"):
        text_sources.load_documents(input_files=[missing])
    with pytest.raises(ZooError, match=r"--input_files.*nothing\*\.txt.*matches no file"):
        text_sources.load_documents(input_files=[str(tmp_path / "nothing*.txt")])
    blank = write(tmp_path / "blank.txt", " \n\n\t\n")
    with pytest.raises(ZooError, match=r"--input_files.*blank\.txt.*has no text"):
        text_sources.load_documents(input_files=[blank])
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00text")
    with pytest.raises(ZooError, match=r"binary\.txt.*not UTF-8"):
        text_sources.load_documents(input_files=[str(binary)])
    with pytest.raises(ZooError, match="either --input_files or --tfds_name"):
        text_sources.load_documents(input_files=[blank], tfds_name="imdb_reviews")
    with pytest.raises(ZooError, match="max_documents"):
        text_sources.load_documents(input_files=[blank], max_documents=0)


def test_split_sentences_rule():
    text = 'One. Two!  Three? "Four." Five (six.) Seven\nEight\n\nNine... ten 3.5 units'
    assert text_sources.split_sentences(text) == [
        "One.", "Two!", "Three?", '"Four."', "Five (six.)", "Seven", "Eight", "Nine...", "ten 3.5 units"
    ]
    assert text_sources.split_sentences(" \n \n") == []


def test_tfds_documents(tfds_dir):
    docs = text_sources.load_documents(tfds_name="zoo_test_tiny_text", tfds_text_key="body", data_dir=tfds_dir)
    # The empty review is skipped; each review is one document split into sentences.
    assert sorted(docs) == sorted(
        [["Great film.", "Loved it!", "Would watch again"], ["Too long?", "Yes.", '"Boring."', "The end."]]
    )
    one = text_sources.load_documents(
        tfds_name="zoo_test_tiny_text", tfds_text_key="body", data_dir=tfds_dir, max_documents=1
    )
    assert len(one) == 1


def test_tfds_errors(tfds_dir, tmp_path):
    with pytest.raises(ZooError, match=r"no feature 'text'.*--tfds_text_key.*\['body', 'stars'\]"):
        text_sources.load_documents(tfds_name="zoo_test_tiny_text", data_dir=tfds_dir)
    with pytest.raises(ZooError, match="stars.*not text.*--tfds_text_key"):
        text_sources.load_documents(tfds_name="zoo_test_tiny_text", tfds_text_key="stars", data_dir=tfds_dir)
    with pytest.raises(ZooError, match="not present in --data_dir"):
        text_sources.load_documents(tfds_name="zoo_test_tiny_text", tfds_text_key="body", data_dir=str(tmp_path))
    with pytest.raises(ZooError, match="--data_dir"):
        text_sources.load_documents(tfds_name="zoo_test_tiny_text", tfds_text_key="body")


def test_default_corpus(tmp_path, monkeypatch):
    write(tmp_path / "1.txt", "Alpha one.\nAlpha two.\n\nBeta one.\n")
    write(tmp_path / "2.txt", "Gamma one.\n")
    write(tmp_path / "README.md", "not corpus text\n")
    monkeypatch.setattr(text_sources, "default_corpus_dir", lambda corpus="en": tmp_path)
    assert text_sources.load_documents() == [["Alpha one.", "Alpha two."], ["Beta one."], ["Gamma one."]]
    assert text_sources.load_documents(max_documents=1) == [["Alpha one.", "Alpha two."]]


def test_default_corpus_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(text_sources, "default_corpus_dir", lambda corpus="en": tmp_path / corpus)
    with pytest.raises(ZooError, match="embedded 'en' corpus.*missing.*--input_files"):
        text_sources.load_documents()
    with pytest.raises(ZooError, match=r"embedded 'ko' corpus \(zoo/data/corpus_ko/\*\.txt\) is missing"):
        text_sources.load_documents(corpus="ko")


def test_default_corpus_location():
    corpus = text_sources.default_corpus_dir()
    assert str(corpus).replace("\\", "/").endswith("zoo/data/corpus")
    assert str(text_sources.default_corpus_dir("ko")).replace("\\", "/").endswith("zoo/data/corpus_ko")


def test_corpus_argument_errors(tmp_path):
    with pytest.raises(ZooError, match=r"unknown embedded corpus 'fr'.*\['en', 'ko'\].*--corpus"):
        text_sources.load_documents(corpus="fr")
    text = write(tmp_path / "a.txt", "One.\n")
    with pytest.raises(ZooError, match="--corpus=ko names an embedded corpus"):
        text_sources.load_documents(input_files=[text], corpus="ko")
    assert text_sources.load_documents(input_files=[text], corpus="en") == [["One."]]
    assert text_sources.load_documents(input_files=[text], corpus=None) == [["One."]]
    assert text_sources.load_documents(corpus=None, max_documents=2) == text_sources.load_documents(max_documents=2)


# An article heading of the Korean corpus, e.g. "제3조(경범죄의 종류)" or "제8조의2(범칙금의 납부)";
# every other line is a sentence.
_KO_HEADING = re.compile(r"^제\d+조(의\d+)?\(.+\)$")


def _readme_counts(folder):
    """The counts stated in a corpus README: its "Counts:" line, numbers in the order the README gives them."""
    readme = (folder / "README.md").read_text(encoding="utf-8")
    line = next(line for line in readme.splitlines() if "Counts:" in line).split("Counts:", 1)[1]
    numbers = [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", line)]
    return dict(zip(["documents", "lines", "sentences", "headings", "characters", "bytes", "laws"], numbers))


def test_korean_corpus_matches_readme_and_suits_bert():
    folder = text_sources.default_corpus_dir("ko")
    docs = text_sources.load_documents(corpus="ko")
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".txt"))
    text = "".join(f.read_text(encoding="utf-8") for f in files)
    lines = [line for doc in docs for line in doc]
    headings = [line for line in lines if _KO_HEADING.match(line)]
    counts = _readme_counts(folder)
    assert counts["documents"] == len(docs) and counts["lines"] == len(lines)
    assert counts["headings"] == len(headings) and counts["sentences"] == len(lines) - len(headings)
    assert counts["characters"] == len(text) and counts["bytes"] == len(text.encode("utf-8"))
    # The format of the English corpus: no blank line at either end of a file, one blank line between documents.
    for f in files:
        content = f.read_text(encoding="utf-8")
        assert content.endswith("\n") and not content.endswith("\n\n") and not content.startswith("\n")
        assert "\n\n\n" not in content and "\r" not in content
    # Every document starts with an article heading and has at least two sentences (next-sentence prediction).
    assert all(_KO_HEADING.match(doc[0]) for doc in docs)
    assert min(sum(1 for line in doc if not _KO_HEADING.match(line)) for doc in docs) >= 2
    # NFC text, mostly Hangul, no Markdown or HTML or links; statute sentences end in "다.".
    assert unicodedata.normalize("NFC", text) == text
    letters = [c for c in text if c.isalpha()]
    hangul = [c for c in letters if "\uac00" <= c <= "\ud7a3"]
    assert len(hangul) / len(letters) > 0.8
    assert not re.search(r"[#*|\[\]<>`_~\\]|https?:|www\.|&[a-z]+;", text)
    sentences = [line for line in lines if not _KO_HEADING.match(line)]
    assert sum(s.endswith("다.") for s in sentences) / len(sentences) > 0.95
    assert text_sources.load_documents(corpus="ko", max_documents=3) == docs[:3]


def test_iter_documents_streams_lazily(tmp_path):
    first = write(tmp_path / "a.txt", "One.\nTwo.\n\nThree.\n")
    write(tmp_path / "b.txt", "Four.\n")
    (tmp_path / "c.txt").write_bytes(b"\xff\xfe broken")
    stream = text_sources.iter_documents(input_files=str(tmp_path / "*.txt"))
    assert stream.total_bytes == 18 + 6 + 9 and stream.bytes_read == 0
    documents = iter(stream)
    assert next(documents) == ["One.", "Two."]  # read before the broken file is reached
    assert stream.bytes_read == 18 and stream.documents_read == 0
    assert next(documents) == ["Three."] and next(documents) == ["Four."]
    with pytest.raises(ZooError, match=r"c\.txt.*not UTF-8 .* at byte 0"):
        next(documents)
    assert list(text_sources.iter_documents(input_files=[first], max_documents=1)) == [["One.", "Two."]]
    with pytest.raises(ZooError, match="matches no file"):  # globs are checked at once, before iterating
        text_sources.iter_documents(input_files=str(tmp_path / "none*.txt"))


@pytest.mark.parametrize("block_size", [1, 2, 3, 7, 64, 1 << 20])
def test_file_blocks_split_like_whole_files(tmp_path, block_size):
    text = "Ünïcödé ✓ one.\r\nTwo ✓.\r\n \t\r\n\r\nThree.\u2028Four.\n\n\n  Five.  \nSix"
    path = write(tmp_path / "a.txt", text)
    stream = text_sources.DocumentStream(len(text.encode("utf-8")))
    documents = list(text_sources._file_documents([path], stream, block_size=block_size))
    assert documents == text_sources.parse_documents(text.splitlines())
    assert documents == [["Ünïcödé ✓ one.", "Two ✓."], ["Three.", "Four."], ["Five.", "Six"]]
    assert stream.bytes_read == stream.total_bytes
    bad = tmp_path / "bad.txt"
    bad.write_bytes("ok ✓\nstill ok\n".encode("utf-8") + b"\xff\n")
    with pytest.raises(ZooError, match=r"bad\.txt.*not UTF-8 text \(invalid start byte at byte 16\)"):
        list(text_sources._file_documents([str(bad)], text_sources.DocumentStream(20), block_size=block_size))
