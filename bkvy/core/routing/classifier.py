"""The automatic level (issue 18 §1): a deterministic, explainable guess of a request's level and domain.

``classify`` is pure (no I/O, no clock): it reads the messages' text (system prompt included), the generation
options and the number of images, counts cue words and symbols over a bounded sample (``_text_of``), and adds
weighted points (the cue tables are in ``classifier_cues``):

- domain: each domain's cue hits times its weight; the highest wins, "chat" when none reaches ``_DOMAIN_FLOOR``.
- level: points from the domain (``DOMAIN_POINTS``), the prompt's length, the requested output (``max_tokens``),
  tools, images, turns, a large JSON schema, multi-step and hard cues, minus points for "simple" cues. Fewer
  than ``MEDIUM_AT`` points → low, fewer than ``HIGH_AT`` → medium, else high.
- confidence: how far the points sit from the nearest threshold, and how clearly the domain won (0–1).

``features`` names what decided it (``code_blocks=2``, ``lang=python``, ``max_tokens=4000``): counts and kinds,
never text. Thresholds were set on the training split of ``benchmarks/data/classifier_eval.jsonl`` (every 5th
line held out); ``benchmarks/classifier_eval.py`` reports both, and the timing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from bkvy.core.routing import classifier_cues as cues
from bkvy.models.types import ChatMessage, GenerationOptions, IntelligenceLevel

# A long prompt is read as its head and its tail: the task is usually stated at one end, and the scan stays
# well under 1 ms whatever the size (benchmarks/classifier_eval.py: p99 for 1k/10k/100k-token prompts).
_SAMPLE_HEAD_CHARS = 2_000
_SAMPLE_TAIL_CHARS = 6_000
_SYSTEM_SAMPLE_CHARS = 2_000
_CHARS_PER_TOKEN = 4
_NO_OPTIONS = GenerationOptions()
_DOMAIN_FLOOR = 1.0  # weighted cue hits a domain needs to beat "chat"


@dataclass(frozen=True, slots=True)
class Classification:
    """The classifier's answer; ``features`` are short ``name`` or ``name=value`` cues, never message text."""

    level: IntelligenceLevel
    domain: str
    confidence: float  # 0–1
    features: tuple[str, ...]

    def header_value(self) -> str:
        """``x-bkvy-classification``: ``level=high; domain=code; confidence=0.82``."""
        return f"level={self.level.value}; domain={self.domain}; confidence={self.confidence:.2f}"

    def as_dict(self) -> dict[str, object]:
        return {
            "level": self.level.value,
            "domain": self.domain,
            "confidence": self.confidence,
            "features": list(self.features),
        }


@dataclass(frozen=True, slots=True)
class _Text:
    sample: str  # lower-cased head and tail of the user and assistant text
    words: Counter[bytes]  # the sample's words
    system_words: Counter[bytes]  # the system prompt's head's words
    prompt_tokens: int  # of the whole prompt, system prompt included (4 characters a token)
    turns: int  # user and assistant messages
    has_system: bool


def classify(
    messages: Sequence[ChatMessage], options: GenerationOptions = _NO_OPTIONS, *, images: int = 0
) -> Classification:
    """The level, domain, confidence (0–1) and deciding features of one request; ``images``: image parts.

    Deterministic; never raises on any text."""
    text = _text_of(messages)
    domain, domain_margin, features = _domain_of(text)
    points = cues.DOMAIN_POINTS[domain] + _size_points(text, options, features)
    points += _cue_points(text, features) + _option_points(options, images, features)
    if text.has_system:
        features.append("system_prompt")
    level = (
        IntelligenceLevel.LOW
        if points < cues.MEDIUM_AT
        else IntelligenceLevel.MEDIUM
        if points < cues.HIGH_AT
        else IntelligenceLevel.HIGH
    )
    margin = min(abs(points - cues.MEDIUM_AT), abs(points - cues.HIGH_AT))
    confidence = round(min(0.99, 0.45 + 0.2 * min(margin, 2.0) + 0.1 * min(domain_margin, 1.5)), 2)
    return Classification(level, domain, confidence, tuple(features))


def images_in(messages: Sequence[ChatMessage]) -> int:
    """How many image parts the messages carry."""
    return sum(
        1
        for message in messages
        if not isinstance(message.content, str)
        for part in message.content
        if part.get("type") == "image_url"
    )


def _text_of(messages: Sequence[ChatMessage]) -> _Text:
    system_parts = [m.text() for m in messages if m.role == "system"]
    other_parts = [m.text() for m in messages if m.role != "system"]
    body = "\n".join(other_parts)
    if len(body) > _SAMPLE_HEAD_CHARS + _SAMPLE_TAIL_CHARS:
        body = body[:_SAMPLE_HEAD_CHARS] + "\n" + body[-_SAMPLE_TAIL_CHARS:]
    sample = body.lower()
    system = "\n".join(system_parts)[:_SYSTEM_SAMPLE_CHARS].lower()
    total_chars = sum(map(len, system_parts)) + sum(map(len, other_parts))
    return _Text(
        sample,
        cues.words_of(sample),
        cues.words_of(system),
        total_chars // _CHARS_PER_TOKEN,
        len(other_parts),
        bool(system.strip()),
    )


def _hits(words: Counter[bytes], vocabulary: frozenset[bytes]) -> int:
    return sum(words[word] for word in vocabulary if word in words)


def _domain_of(text: _Text) -> tuple[str, float, list[str]]:
    features: list[str] = []
    scores = {
        name: (_hits(text.words, vocabulary) + 0.5 * _hits(text.system_words, vocabulary)) * cues.DOMAIN_WEIGHTS[name]
        for name, vocabulary in cues.DOMAIN_WORDS.items()
    }
    fences = cues.FENCE.findall(text.sample)
    if fences:
        blocks = (len(fences) + 1) // 2
        scores["code"] += 3.0 * blocks
        features.append(f"code_blocks={blocks}")
        lang = next((tag for tag in fences if tag), None)
        if lang is not None:
            features.append(f"lang={lang if lang in cues.LANGUAGES else 'other'}")
    scores["code"] += 0.5 * min(sum(text.sample.count(symbol) for symbol in cues.CODE_SYMBOLS), 20)
    math_symbols = sum(text.sample.count(symbol) for symbol in cues.MATH_SYMBOLS)
    math_symbols += len(cues.ARITHMETIC.findall(text.sample, max(0, len(text.sample) - cues.ARITHMETIC_SCAN_CHARS)))
    if math_symbols:
        scores["math"] += min(math_symbols, 10) * 0.6
        features.append("math")
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    (best, best_score), (_, second_score) = ranked[0], ranked[1]
    if best_score < _DOMAIN_FLOOR:
        return "chat", _DOMAIN_FLOOR - best_score, features
    features.append(f"{best}_cues={best_score:g}")
    return best, min(best_score - second_score, 3.0) / 2.0, features


def _cue_points(text: _Text, features: list[str]) -> float:
    points = 0.0
    multi_step = _hits(text.words, cues.MULTI_STEP_WORDS) + sum(text.sample.count(p) for p in cues.MULTI_STEP_PHRASES)
    if multi_step >= 2:
        points += 1.0 if multi_step < 5 else 2.0
        features.append(f"multi_step={multi_step}")
    hard = _hits(text.words, cues.HARD_WORDS)
    if hard:
        points += min(hard, 3) * 1.0
        features.append(f"hard_cues={hard}")
    if text.prompt_tokens < 200 and (
        _hits(text.words, cues.SIMPLE_WORDS) or text.sample.startswith(cues.SIMPLE_OPENINGS)
    ):
        points -= 1.5
        features.append("simple")
    open_ended = _hits(text.words, cues.OPEN_ENDED_WORDS)
    if open_ended:
        points += min(open_ended, 2) * 0.75
        features.append(f"open_ended={open_ended}")
    if text.prompt_tokens < cues.LOOKUP_TOKENS and text.sample.startswith(cues.LOOKUP_OPENINGS):
        points -= 1.0
        features.append("lookup")
    return points


def _option_points(options: GenerationOptions, images: int, features: list[str]) -> float:
    points = 0.0
    if options.tools:
        points += 0.75 if len(options.tools) < 4 else 1.75
        features.append(f"tools={len(options.tools)}")
    if images:
        points += 1.0
        features.append(f"images={images}")
    if options.json_schema is not None:
        features.append("json_schema")
        points += 1.0 if len(str(options.json_schema.schema)) > cues.LARGE_SCHEMA_CHARS else 0.5
    return points


def _size_points(text: _Text, options: GenerationOptions, features: list[str]) -> float:
    points = 0.0
    tokens = text.prompt_tokens
    features.append(f"prompt_tokens={tokens}")
    if tokens >= cues.HUGE_PROMPT_TOKENS:
        points += 2.0
    elif tokens >= cues.LONG_PROMPT_TOKENS:
        points += 1.25
    elif tokens >= cues.SOME_INPUT_TOKENS:
        points += 0.75
    elif tokens < cues.TINY_PROMPT_TOKENS:
        points -= 0.5
    if text.turns >= 6:
        points += 0.5
        features.append(f"turns={text.turns}")
    max_tokens = options.max_tokens
    if max_tokens is not None:
        features.append(f"max_tokens={max_tokens}")
        if max_tokens >= cues.HUGE_OUTPUT_TOKENS:
            points += 2.0
        elif max_tokens >= cues.LONG_OUTPUT_TOKENS:
            points += 1.0
        elif max_tokens <= cues.SHORT_OUTPUT_TOKENS:
            points -= 1.0
    return points
