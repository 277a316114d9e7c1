"""Video-style titles: a minority name the label, most carry partial cues, some none, some foreign."""

from __future__ import annotations

import numpy as np

from mmrt.training.datagen.config import DIGITS, TextKnobs

FOREIGN = {
    "de": ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"),
    "es": ("cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"),
    "fr": ("zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"),
}
NAMED_ONE = ("my son counting to {a}", "{a} little ducks in a row", "learning the number {a}",
             "{a} o'clock news intro", "we found {a} shells on the beach", "lucky number {a}!")
NAMED_TWO = ("{a} and {b} at the park", "counting {a}, then {b}", "{a} cats and {b} dogs",
             "numbers {a} and {b} song")
FOREIGN_TEMPLATES = {
    "de": ("mein Sohn zählt bis {a}", "die Zahl {a}", "{a} kleine Enten"),
    "es": ("mi hijo cuenta hasta {a}", "el número {a}", "{a} patitos"),
    "fr": ("mon fils compte jusqu'à {a}", "le chiffre {a}", "{a} petits canards"),
}
NO_CUE = ("weekend vlog", "unboxing my new camera", "rainy afternoon at home", "best of the summer",
          "grandma's kitchen", "a quiet walk in the woods", "trying the new recipe",
          "road trip highlights", "morning routine", "what happened today")
DECOR = ("", "", "", " (official video)", " #shorts", " [HD]", " - full version", "!!")


def _cue(d: int, rng: np.random.Generator) -> str:
    """A partial cue about digit d: parity, range, or a small sum (never the digit's own word)."""
    kinds = ["parity", "range", "more", "less"]
    if d == 0:
        kinds.remove("more")
    if d == 9:
        kinds.remove("less")
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "parity":
        return ("an even number of candles", "an odd number of candles")[d % 2]
    if kind == "more":
        return f"one more than {DIGITS[d - 1]}"
    if kind == "less":
        return f"one less than {DIGITS[d + 1]}"
    lo = int(rng.integers(max(0, d - 3), d + 1))
    hi = int(rng.integers(d, min(9, d + 3) + 1))
    if lo == hi:
        return f"a number bigger than {DIGITS[d - 1]}" if d > 0 else "the smallest number"
    return f"somewhere between {DIGITS[lo]} and {DIGITS[hi]}"


def make_title(rng: np.random.Generator, digits: list[int], knobs: TextKnobs) -> tuple[str, str]:
    """(title, kind) with kind in named / cue / foreign / none."""
    u = rng.random()
    if u < knobs.named:
        kind = "named"
        if len(digits) == 2:
            pool = NAMED_TWO
            text = pool[int(rng.integers(len(pool)))].format(a=DIGITS[digits[0]], b=DIGITS[digits[1]])
        else:
            text = NAMED_ONE[int(rng.integers(len(NAMED_ONE)))].format(a=DIGITS[digits[0]])
    elif u < knobs.named + knobs.cue:
        kind, text = "cue", _cue(digits[int(rng.integers(len(digits)))], rng)
    elif u < knobs.named + knobs.cue + knobs.foreign:
        kind = "foreign"
        lang = sorted(FOREIGN)[int(rng.integers(len(FOREIGN)))]
        templates = FOREIGN_TEMPLATES[lang]
        d = digits[int(rng.integers(len(digits)))]
        text = templates[int(rng.integers(len(templates)))].format(a=FOREIGN[lang][d])
    else:
        kind, text = "none", NO_CUE[int(rng.integers(len(NO_CUE)))]
    return text + DECOR[int(rng.integers(len(DECOR)))], kind
