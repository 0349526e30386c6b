"""The classifier's cue tables and thresholds (``core.routing.classifier``): what counts, and how much.

Words are whole lower-case words (``words_of``); phrases and symbols are counted with ``str.count``. Splitting
the sample's bytes once (``bytes.translate`` and ``split``) and a ``Counter`` replaced one regex alternation per
domain: ~4.4 ms → ~0.19 ms p50 on a 10k-token prompt (benchmarks/classifier_eval.py; a regex ``findall`` of words
instead of the byte split cost ~0.1 ms more). Points and thresholds were set on the training split of
benchmarks/data/classifier_eval.jsonl only.
"""

from __future__ import annotations

import re
from collections import Counter


def _vocabulary(words: str) -> frozenset[bytes]:
    return frozenset(word.encode() for word in words.split())


_WORD_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_+#")
# Any other byte (spaces, punctuation, the bytes of a non-ASCII letter) ends a word.
_WORD_SPLIT = bytes(byte if byte in _WORD_BYTES else 0x20 for byte in range(256))


def words_of(lower_text: str) -> Counter[bytes]:
    """Each word of lower-cased text, counted."""
    return Counter(lower_text.encode("utf-8", "ignore").translate(_WORD_SPLIT).split())


FENCE = re.compile(r"```([a-z0-9_+#-]*)")
ARITHMETIC = re.compile(r"\d\s*[+*/^=]\s*\d|\d\s+-\s+\d")  # a spaced minus: not a date
# A code fence's language tag is shown as ``lang=...`` only when it is one of these (never free text).
LANGUAGES = frozenset(
    word.decode()
    for word in _vocabulary(
        "python py javascript js typescript ts go golang rust java c cpp c++ csharp cs sql bash sh shell kotlin "
        "swift ruby php haskell scala html css json yaml toml dockerfile r julia lua perl elixir"
    )
)
ARITHMETIC_SCAN_CHARS = 2_000  # the end of the prompt, where a question's numbers are

DOMAIN_WORDS = {
    "code": _vocabulary(
        "python javascript typescript golang rust java c++ sql regex bash kotlin haskell dockerfile react node "
        "function bug refactor compile compiler unit test tests api endpoint segfault exception traceback stack "
        "code script class method struct git terminal repo repository debug pytest npm kubernetes typeerror"
    ),
    "math": _vocabulary(
        "prove proof theorem lemma integral derivative equation polynomial probability eigenvalues eigenvalue "
        "eigenvectors matrix modulo prime primes divisible converges convergence inequality calculate compute "
        "solve variance sequence induction sum sqrt congruent integers simplify"
    ),
    "reasoning": _vocabulary(
        "analyze analyse analysis compare comparison tradeoffs trade offs pros cons evaluate implications "
        "strategy strategic recommend recommendation should why cause causes assess assessment justify argue "
        "argument critique decide decision risks risk consequences scenarios reasoning deduce plan"
    ),
    "creative": _vocabulary(
        "poem poems story stories haiku limerick limericks song lyrics screenplay novel fiction fictional "
        "character characters imagine rhyme rhyming sonnet fable dialogue slogan tagline narrative chapter plot "
        "villain creative toast play brainstorm"
    ),
    "extraction": _vocabulary(
        "extract extraction parse fields field json csv table classify categorize categorise label labels tag "
        "summarize summarise summary tl dr translate translation reformat convert normalize normalise entities "
        "sentiment pull receipt invoice schema"
    ),
}
DOMAIN_WEIGHTS = {"code": 1.0, "math": 1.2, "reasoning": 1.0, "creative": 1.3, "extraction": 1.0}
DOMAIN_POINTS = {"code": 1.5, "math": 1.5, "reasoning": 1.5, "creative": 1.5, "extraction": 0.0, "chat": 0.0}
CODE_SYMBOLS = ("def ", "();", "=>", "{\n", "import ", "#include", "std::", "console.", "return ")
MATH_SYMBOLS = ("\\frac", "\\int", "\\sum", "\\sqrt", "\\mathbb", "^")  # "$": dollars too

MULTI_STEP_WORDS = _vocabulary(
    "then finally multistep thorough thoroughly comprehensive each design architecture exhaustive phased steps"
)
MULTI_STEP_PHRASES = ("step by step", "step-by-step", "walk me through", "first,", "\n1.", "\n2.")
HARD_WORDS = _vocabulary(
    "prove rigorous rigorously race deadlock concurrency concurrent distributed scalability optimize optimise "
    "security vulnerabilities vulnerability complexity edge formal formally derive invariant leak latency "
    "migration migrate threat olympiad proof infinitely equilibrium spectral contour generalise generalize "
    "asymptotic atomic lock thread"
)
SIMPLE_WORDS = _vocabulary("thanks thank define briefly synonym spell typo")
SIMPLE_OPENINGS = ("hi", "hello", "hey", "ok", "yes", "good morning", "good night")
# A short question that opens like a look-up (fewer than LOOKUP_TOKENS): a fact, a command, a definition.
LOOKUP_OPENINGS = (
    "what is", "what's", "what does", "how do i", "how do you", "who ", "which ", "is ", "can you remind"
)  # fmt: skip
LOOKUP_TOKENS = 16
OPEN_ENDED_WORDS = _vocabulary("explain explanation describe history habits checklist practical tell work advice")

# Sizes, in tokens (4 characters a token), and the points between levels.
TINY_PROMPT_TOKENS = 12
SOME_INPUT_TOKENS = 150  # a text to work on, not a question
LONG_PROMPT_TOKENS = 1_500
HUGE_PROMPT_TOKENS = 6_000
SHORT_OUTPUT_TOKENS = 100
LONG_OUTPUT_TOKENS = 2_000
HUGE_OUTPUT_TOKENS = 4_000
LARGE_SCHEMA_CHARS = 1_500  # a JSON schema this long has many fields to get right
MEDIUM_AT = 1.5
HIGH_AT = 3.0
