"""zoo.recipe_support.bert_data: bert_pretrain's run config (runs made before KoBERT still resume) and the checks of
--init_checkpoint against the run (vocabulary, sequence length, casing)."""

import pytest

from zoo.data import wordpiece
from zoo.errors import ZooError

SPECIALS = wordpiece.RESERVED_TOKENS


# config.json of recipes/bert_pretrain.py as of c2b2247 (before KoBERT) for default flags, vocabulary_size=8000,
# vocab_sha1="abc": copied from running that recipe's SPEC.values().run_config(...) once.
OLD_DEFAULT_CONFIG = {
    "clip_norm": 1.0, "config": "tiny", "dropout": 0.1, "dupe_factor": 5, "eval_fraction": 0.1,
    "global_batch_size": 32, "input_files": None, "learning_rate": 0.001, "max_documents": None,
    "max_predictions": 20, "mixed_precision": "float32", "seed": 0, "seq_length": 128, "tfds_name": None,
    "tfds_split": "train", "tfds_text_key": "text", "train_files": None, "vocab_documents": 20000,
    "vocab_sha1": "abc", "vocab_size": 8000, "vocabulary_size": 8000, "warmup_steps": 60, "weight_decay": 0.01,
}

_CONFIG_SCRIPT = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("bert_pretrain", "recipes/bert_pretrain.py")
recipe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recipe)
from zoo import flags
from zoo.recipe_support import bert_data
class Vocabulary:
    sha1 = "abc"
    def __len__(self):
        return 8000
flags.parse(["bert_pretrain", "--model_dir=/nonexistent/m", *sys.argv[1:]])
print(json.dumps(bert_data.run_config(recipe.SPEC.values(), Vocabulary())))
"""


def _recipe_config(*flags):
    """bert_pretrain's config.json for `flags` (vocabulary: 8000 tokens, sha1 "abc"), in a fresh process."""
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run([sys.executable, "-c", _CONFIG_SCRIPT, *flags], cwd=root, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_default_run_config_is_the_one_before_kobert():
    """A run started before KoBERT resumes: its config.json is what the recipe writes now for the same flags."""
    assert _recipe_config() == OLD_DEFAULT_CONFIG
    assert _recipe_config("--init_checkpoint=/gone", "--tokenizer=wordpiece", "--corpus=en") == OLD_DEFAULT_CONFIG
    changed = _recipe_config("--whole_word_mask", "--tokenizer=sentencepiece", "--corpus=ko")
    assert changed == {**OLD_DEFAULT_CONFIG, "vocab_size": 8002, "whole_word_mask": True,
                       "tokenizer": "sentencepiece", "corpus": "ko"}
    kobert = _recipe_config("--config=kobert_tiny", "--tokenizer=sentencepiece")
    assert kobert == {**OLD_DEFAULT_CONFIG, "config": "kobert_tiny", "vocab_size": 8002}


def _checkpoint(directory, *, vocab_size=12, positions=32, vocabulary=True, tokenizer_config=None):
    """A Hugging Face checkpoint directory as far as the checks read it: config.json, a weights file, a vocab."""
    import json

    directory.mkdir()
    config = dict(vocab_size=vocab_size, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=16, max_position_embeddings=positions, type_vocab_size=2, hidden_act="gelu")
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "model.safetensors").write_bytes(b"")
    if vocabulary:
        wordpiece.write_vocabulary(SPECIALS + [f"w{i}" for i in range(vocab_size - 5)], str(directory / "vocab.txt"))
    if tokenizer_config is not None:
        (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return str(directory)


def _run_vocabulary(init_checkpoint, model_dir):
    from zoo.recipe_support import bert_data

    return bert_data.run_vocabulary(str(model_dir), vocab_file=None, vocab_size=100, train_files=None, source={},
                                    vocab_documents=10, init_checkpoint=init_checkpoint)


def test_init_checkpoint_without_a_vocabulary_is_refused(tmp_path):
    bare = _checkpoint(tmp_path / "bare", vocabulary=False)
    with pytest.raises(ZooError) as e:
        _run_vocabulary(bare, tmp_path / "m")
    assert str(e.value) == (f"--init_checkpoint={bare} has no vocab.txt or spiece.model beside it; pass the "
                            "checkpoint's vocabulary as --vocab_file")
    assert len(_run_vocabulary(_checkpoint(tmp_path / "ok"), tmp_path / "m")) == 12


def test_init_checkpoint_checks_sequence_length_size_and_case(tmp_path):
    from zoo.recipe_support import bert_data

    path = _checkpoint(tmp_path / "ckpt", positions=32)
    vocabulary = _run_vocabulary(path, tmp_path / "m")
    config = bert_data.init_backbone_config(path, vocabulary, 32)
    assert (config["vocabulary_size"], config["max_sequence_length"], config["hidden_dim"]) == (12, 32, 8)
    with pytest.raises(ZooError) as e:
        bert_data.init_backbone_config(path, vocabulary, 64)
    assert str(e.value) == (f"--seq_length=64 exceeds the 32 positions of --init_checkpoint={path}; use "
                            "--seq_length=32 or less")
    with pytest.raises(ZooError, match="vocabulary of 12 .* has 11; pass the checkpoint's own vocabulary"):
        bert_data.init_backbone_config(path, _wordpiece_vocabulary(vocabulary.tokens[:-1]), 32)

    uncased = _checkpoint(tmp_path / "uncased", tokenizer_config={"do_lower_case": True})
    assert bert_data.init_backbone_config(uncased, vocabulary, 32)["vocabulary_size"] == 12
    cased = _checkpoint(tmp_path / "cased", tokenizer_config={"do_lower_case": False})
    with pytest.raises(ZooError) as e:
        bert_data.init_backbone_config(cased, vocabulary, 32)
    assert "cased WordPiece model" in str(e.value) and "uncased only" in str(e.value) and "\n" not in str(e.value)
    preset = tmp_path / "preset"
    preset.mkdir()
    (preset / "tokenizer.json").write_text('{"class_name": "BertTokenizer", "config": {"lowercase": false}}')
    assert bert_data._cased(str(preset)) and not bert_data._cased(uncased) and not bert_data._cased(path)


def _wordpiece_vocabulary(tokens):
    from zoo.data.bert_vocabulary import BertVocabulary

    return BertVocabulary.from_wordpiece(tokens)


def test_sumbt_refuses_a_cased_wordpiece_checkpoint_too(tmp_path):
    """sumbt_train starts both encoders from --init_checkpoint with the same uncased WordPiece tokenizer."""
    from zoo.recipe_support import sumbt

    def vocabulary(checkpoint):
        return sumbt.run_vocabulary(str(tmp_path / "m"), None, vocab_file=None, init_checkpoint=checkpoint,
                                    config="bert_tiny", vocab_size=100, chief=False)

    assert len(vocabulary(_checkpoint(tmp_path / "uncased", tokenizer_config={"do_lower_case": True}))) == 12
    cased = _checkpoint(tmp_path / "cased", tokenizer_config={"do_lower_case": False})
    with pytest.raises(ZooError) as e:
        vocabulary(cased)
    assert "cased WordPiece model" in str(e.value) and "uncased only" in str(e.value) and "\n" not in str(e.value)
