"""The embedded translation task: English sentences with numbers in digits -> the same with numbers in words.

Each pair is a short sentence from one of ~45 templates with random names, places, weekdays and objects,
and one or two numbers written in digits; the target is the same sentence with every number written out
in English words (US style, no "and": 4,521 -> "four thousand five hundred twenty-one"):

    source: "The 21st visitor paid 12.05 dollars for 1,300 apples."
    target: "The twenty-first visitor paid twelve point zero five dollars for one thousand three hundred apples."

Numbers: cardinals 0 to 999,999 (as many of each digit count, written with a thousands separator half the
time from 1,000 up), ordinals "1st" to "9999th" ("3rd" -> "third", "1,204th" -> "one thousand two hundred
fourth"), days "1st" to "31st", decimals "0.5" to "999.99" (digits after the point read one by one), small
counts 1 to 99. A quantity agrees with its noun ("1 apple" -> "one apple"); a sentence that starts with a
number starts with a capital word ("Forty apples ...").

Why copying or memorising fails: every number must be rewritten, and numbers from 1,000 up are split
between the splits by a fixed hash of the number (90% train, 5% validation, 5% test), so no validation or
test number >= 1,000 ever appears in training; below 1,000 the numbers are shared (they are the building
blocks). Sentences are unique across all splits (validation and test sources never occur in train).
Sizes: train 20,000, validation 500, test 500; generated deterministically in about 0.3 s.

Example:
    pairs = embedded_pairs("validation")       # [(source, target), ...], 500 pairs, always the same
    cardinal_words(4521)                        # 'four thousand five hundred twenty-one'
    ordinal_words(21)                           # 'twenty-first'
"""

import functools
import random
import re

from zoo.errors import ZooError

SIZES = {"train": 20_000, "validation": 500, "test": 500}

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                      "nine": "ninth", "twelve": "twelfth"}

ITEMS = [("apple", "apples"), ("book", "books"), ("chair", "chairs"), ("bottle", "bottles"),
         ("ticket", "tickets"), ("stamp", "stamps"), ("orange", "oranges"), ("candle", "candles"),
         ("pencil", "pencils"), ("box", "boxes"), ("sheep", "sheep"), ("tomato", "tomatoes"),
         ("bicycle", "bicycles"), ("letter", "letters"), ("coin", "coins"), ("shirt", "shirts"),
         ("egg", "eggs"), ("tree", "trees"), ("lamp", "lamps"), ("map", "maps"), ("cup", "cups"),
         ("window", "windows"), ("brick", "bricks"), ("flower", "flowers"), ("glass", "glasses"),
         ("child", "children"), ("mouse", "mice"), ("loaf of bread", "loaves of bread")]
PEOPLE = ("Anna Ben Carla David Elena Farid Grace Hugo Ines Jonas Kemal Lucia Marco Nadia Omar Priya Quentin "
          "Rosa Samuel Tanja Ulrich Vera Wei Yusuf Zoe").split()
CITIES = ("Paris Berlin Lisbon Madrid Rome Vienna Prague Oslo Dublin Warsaw Athens Cairo Tokyo Lima Quito "
          "Nairobi Toronto Sydney Seoul Munich").split()
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()

# {n} cardinal 0..999,999; {s} count 1..99; {o} ordinal 1..9999; {t} day 1st..31st; {d} decimal;
# {q} a cardinal and an item noun that agrees with it; {p} person; {c} city; {w} weekday.
TEMPLATES = (
    "I bought {q} at the market.", "{p} has {q}.", "The train leaves at {s} and arrives at {s}.",
    "There are {n} people living in {c}.", "{p} finished {o} in the race.",
    "The temperature dropped to {d} degrees on {w}.", "We sold {q} last year and {q} this year.",
    "Please turn to page {n}.", "The {o} visitor received a prize.", "{p} ran {d} kilometres on {w}.",
    "The ticket costs {d} dollars.", "Our team scored {s} points in the {o} game.", "The library owns {q}.",
    "{c} is {n} kilometres away.", "{p} was born on the {t} of May.", "It is the {o} time I have asked.",
    "The box weighs {d} kilograms.", "{p} and {p} counted {q}.", "The company hired {n} workers in {c}.",
    "Room {n} is on the {o} floor.", "About {n} fans watched the match on {w}.",
    "The recipe needs {d} cups of flour.", "He waited {s} minutes for bus {n}.",
    "The population grew from {n} to {n}.", "Add {n} and {n} to get the total.", "The farm has {q} and {q}.",
    "{p} celebrates the {o} anniversary on {w}.", "The bridge is {d} metres long.",
    "Flight {n} departs from gate {s}.", "The museum in {c} received {q} as a gift.",
    "Only {n} tickets were left for the {o} show.", "The score was {s} to {s}.", "{p} owes {p} {n} euros.",
    "The shop in {c} sells {q} every day.", "The price rose by {d} percent.", "My grandmother is {s} years old.",
    "The {o} chapter has {n} pages.", "We planted {q} near the river.",
    "The car drove {n} miles before the {o} stop.", "{q} were delivered to {c} on {w}.",
    "{n} runners started the marathon.", "Is it true that {p} has {q}?", "The meeting moved to the {t} of June.",
    "The {t} of March is a {w}.", "{n}", "{p} paid {d} dollars for {q}.", "The {o} visitor paid {d} dollars for {q}.",
)
_SLOT = re.compile(r"\{(\w)\}")


def cardinal_words(n):
    """English words of an integer 0 <= n < 10**9, US style without "and": 4521 -> 'four thousand five
    hundred twenty-one'."""
    if not 0 <= n < 10 ** 9:
        raise ZooError(f"cardinal_words takes 0 <= n < 1,000,000,000, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("-" + _ONES[n % 10] if n % 10 else "")
    if n < 1000:
        return _ONES[n // 100] + " hundred" + (" " + cardinal_words(n % 100) if n % 100 else "")
    for size, name in ((10 ** 6, "million"), (1000, "thousand")):
        if n >= size:
            return cardinal_words(n // size) + " " + name + (" " + cardinal_words(n % size) if n % size else "")


def ordinal_words(n):
    """English ordinal of 1 <= n < 10**9: 3 -> 'third', 21 -> 'twenty-first', 1200 -> 'one thousand two hundredth'."""
    words = cardinal_words(n)
    head, sep, last = max(words.rpartition(" "), words.rpartition("-"), key=lambda p: len(p[0]))
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def ordinal_suffix(n):
    """The digits form of an ordinal: 1 -> '1st', 12 -> '12th', 23 -> '23rd'."""
    if n % 100 in (11, 12, 13):
        return f"{n}th"
    return f"{n}" + {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def decimal_words(text):
    """Words of a decimal written in digits: '12.05' -> 'twelve point zero five'."""
    whole, _, fraction = text.replace(",", "").partition(".")
    words = cardinal_words(int(whole))
    if fraction:
        words += " point " + " ".join(_ONES[int(c)] for c in fraction)
    return words


def number_split(n):
    """The split that owns a number >= 1,000 ('train', 'validation' or 'test'; a fixed hash: 90/5/5%);
    smaller numbers are shared by every split."""
    if n < 1000:
        return None
    bucket = (n * 2654435761 % 2 ** 32) * 20 // 2 ** 32
    return "validation" if bucket == 0 else "test" if bucket == 1 else "train"


def _digits(n, rng):
    return f"{n:,}" if n >= 1000 and rng.random() < 0.5 else str(n)


def _number(rng, split, high_digits, minimum=0):
    """A number with 1..high_digits digits (as many of each length), owned by `split` or shared."""
    while True:
        k = rng.randint(1, high_digits)
        n = rng.randrange(10 ** (k - 1) if k > 1 else minimum, 10 ** k)
        if number_split(n) in (None, split):
            return n


def _fill(slot, rng, split):
    """(source text, target text) of one slot."""
    if slot == "n":
        n = _number(rng, split, 6)
        return _digits(n, rng), cardinal_words(n)
    if slot == "s":
        n = rng.randint(1, 99)
        return str(n), cardinal_words(n)
    if slot == "o":
        n = _number(rng, split, 4, minimum=1)
        return ordinal_suffix(n) if n < 1000 else _digits(n, rng) + ordinal_suffix(n)[-2:], ordinal_words(n)
    if slot == "t":
        n = rng.randint(1, 31)
        return ordinal_suffix(n), ordinal_words(n)
    if slot == "d":
        places = rng.randint(1, 2)
        text = f"{rng.randrange(0, 10 ** rng.randint(1, 3))}.{rng.randrange(10 ** places):0{places}d}"
        return text, decimal_words(text)
    if slot == "q":
        n = _number(rng, split, 6)
        singular, plural = rng.choice(ITEMS)
        noun = singular if n == 1 else plural
        return f"{_digits(n, rng)} {noun}", f"{cardinal_words(n)} {noun}"
    word = rng.choice({"p": PEOPLE, "c": CITIES, "w": WEEKDAYS}[slot])
    return word, word


def _sentence(rng, split):
    template = rng.choice(TEMPLATES)
    source, target, end = [], [], 0
    for match in _SLOT.finditer(template):
        src, tgt = _fill(match.group(1), rng, split)
        source += [template[end:match.start()], src]
        target += [template[end:match.start()], tgt]
        end = match.end()
    source, target = "".join(source) + template[end:], "".join(target) + template[end:]
    return source, target[:1].upper() + target[1:]


@functools.lru_cache(maxsize=4)
def _generate(seed):
    taken, splits = set(), {}
    for index, split in enumerate(SIZES):  # train first: validation and test sources avoid it
        rng = random.Random(seed * 1000 + index)
        pairs = []
        while len(pairs) < SIZES[split]:
            source, target = _sentence(rng, split)
            if source not in taken:
                taken.add(source)
                pairs.append((source, target))
        splits[split] = tuple(pairs)
    return splits


def embedded_pairs(split="train", seed=0):
    """The (source, target) pairs of one split of the embedded task, in a fixed order (see the module)."""
    if split not in SIZES:
        raise ZooError(f"the embedded translation task has splits {', '.join(SIZES)}, not {split!r}")
    return list(_generate(seed)[split])
