"""How alike two answers are, cheaply: the Jaccard index of their word sets (0 nothing shared, 1 the same words).

Why this measure: it is linear in the text, needs no model and no vocabulary, and reads well to an operator ("the
shadow's answer shares 60 % of its words with the primary's"). It ignores word order and counts, so it rewards
answers that say the same things in another order and is blind to a reordering that changes the meaning; a
character-trigram cosine would be kinder to typos and inflections but costs a vector per answer for little gain on
whole answers. It is a screen for drift, not a grade: a low mean says "read some pairs", never "worse".
"""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+")


def word_jaccard(first: str, second: str) -> float:
    """Shared words over all words, across the lower-cased words of each text; 1.0 when both have none."""
    first_words = set(_WORD.findall(first.lower()))
    second_words = set(_WORD.findall(second.lower()))
    union = first_words | second_words
    if not union:
        return 1.0
    return len(first_words & second_words) / len(union)
