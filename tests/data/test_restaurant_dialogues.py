"""zoo.data.restaurant_dialogues: the embedded SUMBT default, written in the official format and read back."""

import collections
import json
import random
import re

import numpy as np

from zoo.data import dialogue_state, restaurant_dialogues as rd

SMALL = {"train": 60, "dev": 10, "test": 10}


def test_written_in_the_official_format_and_read_back(tmp_path):
    path = rd.write_dataset(str(tmp_path / "a"), sizes=SMALL)
    assert sorted(p.name for p in tmp_path.joinpath("a").iterdir()) == ["dev.tsv", "ontology.json", "test.tsv",
                                                                        "train.tsv"]
    ontology = json.loads((tmp_path / "a" / "ontology.json").read_text())
    assert list(ontology) == ["area", "food", "price range"] and ontology["area"][-1] == "do not care"
    header = (tmp_path / "a" / "train.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["# Dialogue ID", "Turn Index", "User Utterance", "System Response", "area", "food",
                      "price range"]
    data = dialogue_state.open_dialogue_state(path)  # every value is in the ontology: no error
    assert {split: n for split, (n, _) in data.sizes().items()} == SMALL
    assert data.labels[0] == ["centre", "north", "south", "east", "west", "do not care", "none"]
    for dialogue in data.splits["train"]:
        assert dialogue.turns[0][1] == "" and all(turn[1] for turn in dialogue.turns[1:])  # system before user


def test_seeded_and_deterministic(tmp_path):
    rd.write_dataset(str(tmp_path / "a"), sizes=SMALL)
    rd.write_dataset(str(tmp_path / "b"), sizes=SMALL)
    rd.write_dataset(str(tmp_path / "c"), sizes=SMALL, seed=7)
    a, b, c = ((tmp_path / d / "train.tsv").read_text() for d in "abc")
    assert a == b and a != c


def test_belief_state_accumulates_and_varies():
    rng = random.Random(0)
    dialogues = [rd.generate_dialogue(rng) for _ in range(300)]
    acts = collections.Counter()
    for turns in dialogues:
        assert turns[-1][0] in rd.GOODBYES
        start = ("", "", {slot: "none" for slot in rd.SLOTS})
        for (_, _, before), (user, _, after) in zip([start] + turns, turns):
            for slot in rd.SLOTS:  # once set, a slot never goes back to none
                assert before[slot] == "none" or after[slot] != "none"
            changed = [s for s in rd.SLOTS if before[s] != after[s]]
            acts["several" if len(changed) > 1 else "one" if changed else "none"] += 1
            acts["dontcare"] += any(after[s] == "dontcare" and before[s] != "dontcare" for s in rd.SLOTS)
            acts["change"] += any(before[s] not in ("none", "dontcare") and after[s] not in (before[s], "dontcare")
                                  for s in rd.SLOTS)
            acts["bare yes"] += bool(changed) and user in rd.YES  # the value is in the system's turn only
    total = sum(acts[k] for k in ("several", "one", "none"))
    for act in ("several", "one", "none", "dontcare", "change", "bare yes"):
        assert acts[act] > 0.02 * total, (act, acts)


def test_default_majority_baseline_is_low(tmp_path):
    """The default split sizes; the most frequent training state is right on few test turns."""
    data = dialogue_state.open_dialogue_state(rd.write_default(str(tmp_path / "d")))
    assert {split: n for split, (n, _) in data.sizes().items()} == rd.SIZES
    labels = {}
    for split in ("train", "test"):
        rows = [[turn[2] for turn in d.turns] + [[-1] * 3] * (12 - len(d.turns)) for d in data.splits[split]]
        labels[split] = np.array(rows)
    baseline = dialogue_state.majority_baseline(labels["train"], labels["test"])
    assert baseline["joint_accuracy"] < 0.1 and baseline["slot_accuracy"] < 0.3


def test_no_turn_informs_and_dismisses_the_same_slot():
    """"<inform>, and i don't care about <slot>": the inform is about another slot (its label would otherwise
    contradict the text: the old generator did this in 18 of 3,578 default training turns)."""
    rng = random.Random(0)
    phrases = {slot: [p for v in rd.ONTOLOGY[slot] for p in rd.SAY.get(v, [v])] for slot in rd.SLOTS}
    checked = 0
    for _ in range(2000):
        for user, _, state in rd.generate_dialogue(rng):
            for slot in rd.SLOTS:
                for dismissal in rd.DONT_CARE[slot]:
                    if user.endswith(f", and {dismissal}") and not user.startswith("yes, and "):
                        said = user[:-len(f", and {dismissal}")]
                        checked += 1
                        assert state[slot] == rd.DONTCARE
                        assert not any(re.search(rf"\b{re.escape(p)}\b", said) for p in phrases[slot]), user
    assert checked > 100
