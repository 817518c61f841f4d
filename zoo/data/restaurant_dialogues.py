"""The embedded default for SUMBT: seeded, WOZ-like restaurant-booking dialogues, written in the official
SUMBT tsv + ontology format (see `zoo.data.dialogue_state`) and read back through the same reader.

The ontology has three informable slots, each with a handful of values, plus "do not care" (written
"dontcare" in the tsv, as the official files) and "none" (appended by the reader):
area (centre, north, south, east, west), food (8 cuisines), price range (cheap, moderate, expensive).

A dialogue alternates a system turn and a user turn, WOZ-style: the tsv's system column is the system
utterance BEFORE the user's (empty at turn 0), and the labels are the accumulated belief state. Users inform
one to three slots in one turn (with synonyms: "downtown" is centre, "upscale" is expensive), change their mind,
say they don't care about a slot (by name, or as the answer to the system's question, which needs the system
turn), accept or decline a value the system proposes ("Would you like the north?" "Yes please."), or say
unrelated things; the system asks, offers restaurants (whose attributes are distractors: offering is not the
user's choice) and confirms. Every dialogue ends with the user's goodbye.

Example:
    from zoo.data import restaurant_dialogues, dialogue_state
    path = restaurant_dialogues.write_default("/tmp/woz_like")       # train/dev/test.tsv + ontology.json
    data = dialogue_state.open_dialogue_state(path)
    data.sizes()   # {"train": (600, ~3.6k turns), "dev": (100, ...), "test": (100, ...)}
"""

import json
import os
import random

from zoo.paths import write_file_atomically

ONTOLOGY = {
    "area": ["centre", "north", "south", "east", "west"],
    "food": ["chinese", "indian", "italian", "british", "french", "thai", "korean", "spanish"],
    "price range": ["cheap", "moderate", "expensive"],
}
SLOTS = sorted(ONTOLOGY)
SIZES = {"train": 600, "dev": 100, "test": 100}
SEED = 1234
DONTCARE = "dontcare"

# How users and systems say a value (the first is the canonical one, as the ontology writes it).
SAY = {
    "centre": ["centre", "center", "city centre", "downtown", "middle of town"],
    "north": ["north", "northern part", "north side"], "south": ["south", "southern part", "south side"],
    "east": ["east", "eastern part", "east side"], "west": ["west", "western part", "west side"],
    "cheap": ["cheap", "inexpensive", "budget", "low priced"], "moderate": ["moderately priced", "moderate",
                                                                            "mid-range", "reasonably priced"],
    "expensive": ["expensive", "upscale", "pricey", "high end"],
}
INFORM = {
    "area": ["in the {v}", "somewhere in the {v} of town", "i would like the {v} please", "the {v} part of town",
             "near the {v}", "it should be in the {v}", "{v} please"],
    "food": ["{v} food", "i want {v} food", "something that serves {v} food", "i am in the mood for {v}",
             "how about {v}", "{v} cuisine please", "a {v} place"],
    "price range": ["in the {v} price range", "something {v}", "a {v} place", "i want it to be {v}",
                    "{v} please", "the price should be {v}"],
}
DONT_CARE = {
    "area": ["i don't care about the area", "any area is fine", "the location doesn't matter", "anywhere is fine"],
    "food": ["i don't care what kind of food", "any type of food is fine", "the cuisine doesn't matter",
             "i have no food preference"],
    "price range": ["i don't care about the price", "any price range is fine", "price doesn't matter",
                    "i have no preference on price"],
}
ASK = {
    "area": ["What part of town do you have in mind?", "Which area would you like?", "Do you have an area in mind?"],
    "food": ["What type of food would you like?", "What kind of cuisine are you looking for?",
             "Any preference on the food?"],
    "price range": ["What price range would you like?", "Do you have a price range in mind?",
                    "How much would you like to spend?"],
}
PROPOSE = {"area": "Would you like something in the {v}?", "food": "Would {v} food be alright?",
           "price range": "Would a {v} place be okay?"}
NAMES = ["the golden wok", "curry garden", "la margherita", "the eagle", "le gourmet", "bangkok city",
         "seoul kitchen", "la tasca", "the copper kettle", "royal spice"]
NO_PREFERENCE_ANSWERS = ["i don't care", "it doesn't matter", "no preference", "whatever you recommend",
                         "any is fine"]
YES = ["yes please", "yes, that's fine", "sure", "that sounds good", "yes"]
NO = ["no thanks", "no, not really", "no"]
UNRELATED = ["hmm, let me think", "is there parking nearby?", "sorry, can you repeat that?",
             "what's the weather like today?", "do they have outdoor seating?", "my friend is coming too",
             "can i bring a dog?", "i am not sure yet"]
OFFERS = ["How about {name}? It is a {p} {f} restaurant in the {a}.", "{name} serves {f} food in the {a}, and "
          "it is {p}.", "I found {name}, a {f} place in the {a} of town."]
GOODBYES = ["thank you, goodbye", "that's all, thanks", "great, thanks for your help", "bye"]
REQUESTS = ["can i have the address?", "what is the phone number?", "could you give me the postcode?"]
INFOS = ["The address is {n} Mill Road.", "The phone number is 01223 {n}.", "The postcode is C.B {n}."]


def _say(rng, value):
    return rng.choice(SAY.get(value, [value]))


def _inform(rng, slot, value):
    return rng.choice(INFORM[slot]).format(v=_say(rng, value))


def _opening(rng, slots, state):
    """A first user turn giving `slots` (their values already in `state`)."""
    if len(slots) >= 2 and rng.random() < 0.5:
        food = state.get("food")
        parts = ["i am looking for a"]
        if "price range" in slots:
            parts.append(_say(rng, state["price range"]))
        parts.append(f"{_say(rng, food)} restaurant" if "food" in slots else "restaurant")
        if "area" in slots:
            parts.append(f"in the {_say(rng, state['area'])}")
        return " ".join(parts)
    lead = rng.choice(["i need a restaurant", "hello, i want to find a place to eat", "hi, i am looking for a "
                                                                                       "restaurant"])
    return ", ".join([lead] + [_inform(rng, s, state[s]) for s in slots])


def generate_dialogue(rng):
    """One dialogue: a list of (user, system, {slot: value}) turns, the state accumulated."""
    goal = {s: rng.choice(ONTOLOGY[s] + [DONTCARE]) for s in SLOTS}
    state = {s: "none" for s in SLOTS}
    first = rng.sample(SLOTS, rng.choice([0, 1, 1, 2, 2, 3]))
    for s in first:
        state[s] = rng.choice(ONTOLOGY[s]) if goal[s] == DONTCARE else goal[s]
    user = _opening(rng, first, state) if first else rng.choice(["hello, i need a restaurant",
                                                                 "hi, can you help me find a place to eat?"])
    turns = [(user, "", dict(state))]
    for _ in range(rng.randint(2, 6)):
        unset = [s for s in SLOTS if state[s] == "none"]
        act = rng.random()
        if unset and act < 0.45:  # the system asks for a slot
            slot = rng.choice(unset)
            system = rng.choice(ASK[slot])
            answer = rng.random()
            if answer < 0.55:
                value = rng.choice(ONTOLOGY[slot])
                state[slot] = value
                user = _inform(rng, slot, value)
            elif answer < 0.75:
                state[slot] = DONTCARE
                user = rng.choice(NO_PREFERENCE_ANSWERS)  # only the system turn says which slot
            elif answer < 0.9:
                other = rng.choice([s for s in SLOTS if s != slot])  # not the slot the user doesn't care about
                value = rng.choice(ONTOLOGY[other])
                state[other] = value
                user = f"{_inform(rng, other, value)}, and {rng.choice(DONT_CARE[slot])}"
                state[slot] = DONTCARE
            else:
                user = rng.choice(UNRELATED)
        elif unset and act < 0.6:  # the system proposes a value
            slot = rng.choice(unset)
            value = rng.choice(ONTOLOGY[slot])
            system = PROPOSE[slot].format(v=_say(rng, value))
            if rng.random() < 0.6:
                state[slot] = value
                user = rng.choice(YES)
            else:
                user = rng.choice(NO)
        elif act < 0.8:  # the system offers a restaurant; the user may change their mind
            offered = {s: rng.choice(ONTOLOGY[s]) if state[s] in ("none", DONTCARE) else state[s] for s in SLOTS}
            system = rng.choice(OFFERS).format(name=rng.choice(NAMES), p=_say(rng, offered["price range"]),
                                               f=offered["food"], a=_say(rng, offered["area"]))
            if rng.random() < 0.5:
                slot = rng.choice(SLOTS)
                value = rng.choice([v for v in ONTOLOGY[slot] if v != state[slot]])
                state[slot] = value
                user = rng.choice(["actually, ", "no wait, ", "hmm, i changed my mind, ", ""]) + \
                    _inform(rng, slot, value) + rng.choice([" instead", ""])
            else:
                user = rng.choice(REQUESTS + YES)
        else:  # the system confirms; the user adds a slot, or says something unrelated
            known = [s for s in SLOTS if state[s] not in ("none", DONTCARE)]
            system = (f"You are looking for {_say(rng, state[known[0]])} {'food' if known[0] == 'food' else ''}"
                      .strip() + ", is that right?") if known else "Is there anything else I can help with?"
            if unset and rng.random() < 0.5:
                slot = rng.choice(unset)
                if rng.random() < 0.3:
                    state[slot] = DONTCARE
                    user = f"yes, and {rng.choice(DONT_CARE[slot])}"
                else:
                    value = rng.choice(ONTOLOGY[slot])
                    state[slot] = value
                    user = f"yes, {_inform(rng, slot, value)}"
            else:
                user = rng.choice(UNRELATED + YES)
        turns.append((user, system, dict(state)))
    system = rng.choice(INFOS).format(n=rng.randint(100, 999))
    turns.append((rng.choice(GOODBYES), system, dict(state)))
    return turns


def tsv_lines(dialogues, prefix):
    header = "# Dialogue ID\tTurn Index\tUser Utterance\tSystem Response\t" + "\t".join(SLOTS)
    lines = [header]
    for i, turns in enumerate(dialogues):
        for t, (user, system, state) in enumerate(turns):
            lines.append("\t".join([f"{prefix}{i}", str(t), user, system] + [state[s] for s in SLOTS]))
    return "\n".join(lines) + "\n"


def write_dataset(directory, *, seed=SEED, sizes=None):
    """Writes `train.tsv`, `dev.tsv`, `test.tsv` and `ontology.json` (values plus "do not care") in
    `directory`, atomically each; the same `seed` and `sizes` give the same bytes. Returns `directory`."""
    rng = random.Random(seed)
    for split, n in (sizes or SIZES).items():
        dialogues = [generate_dialogue(rng) for _ in range(n)]
        write_file_atomically(os.path.join(directory, f"{split}.tsv"), tsv_lines(dialogues, f"{split}-"))
    ontology = {s: ONTOLOGY[s] + ["do not care"] for s in SLOTS}
    write_file_atomically(os.path.join(directory, "ontology.json"), json.dumps(ontology, indent=1) + "\n")
    return directory


def write_default(directory):
    """The default data set in `directory` (written when its ontology.json is missing); returns `directory`."""
    if not os.path.isfile(os.path.join(directory, "ontology.json")):
        write_dataset(directory)
    return directory
