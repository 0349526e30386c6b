"""Embeddings: the body of ``POST /v1/embeddings`` (validated once at the edge) and the values core passes on.

OpenAI's request shape: ``input`` is a string, a list of strings, or pre-tokenised input (a list of token ids,
or a list of such lists). Token ids are model-specific (tiktoken for OpenAI's models), so only OpenAI-format
upstreams take them; other wire formats skip such a request as input they cannot take.
"""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bkvy.models.types import RateLimitHint

MAX_INPUTS = 2048  # OpenAI's limit on one request's inputs
_CHARS_PER_TOKEN = 4  # the estimate for an upstream that does not count (Gemini's embedContent)

_INPUT_SHAPES = "a non-empty string, a list of non-empty strings, a list of token ids or a list of such lists"
_ClientId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-/]*$")]


class EmbeddingInput(NamedTuple):
    """What to embed: texts, or token arrays (exactly one of the two is non-empty), and the output size."""

    texts: tuple[str, ...] = ()
    token_arrays: tuple[tuple[int, ...], ...] = ()
    dimensions: int | None = None  # shorten each vector to this many numbers, where the model can
    user: str | None = None  # the end user's id, for the provider's abuse monitoring

    @property
    def size(self) -> int:
        """How many vectors the reply must hold."""
        return len(self.texts) or len(self.token_arrays)

    def estimated_tokens(self) -> int:
        """Input tokens: exact for token arrays, about four characters each for texts."""
        if self.token_arrays:
            return sum(len(ids) for ids in self.token_arrays)
        return sum(len(text) // _CHARS_PER_TOKEN + 1 for text in self.texts)


class EmbeddingCall(NamedTuple):
    """Everything an embeddings translator needs to build one upstream request."""

    base_url: str
    model: str
    api_key: str  # the key value; translators put it in headers only, never in the URL
    embedding: EmbeddingInput
    endpoint: str | None = None  # per-model override of the path, from config


class Embeddings(NamedTuple):
    """One upstream's vectors, in input order."""

    vectors: tuple[tuple[float, ...], ...]
    input_tokens: int | None  # None: the upstream did not say (estimated by the caller)
    model_reported: str | None = None
    rate_limit_hint: RateLimitHint | None = None


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class EmbeddingsBkvyIn(_In):
    """``extra_body={"bkvy": {...}}`` with the openai SDK."""

    max_wait_seconds: float | None = Field(default=None, ge=0.0, le=3600.0)
    client_id: _ClientId | None = None
    timeout_seconds: float | None = Field(default=None, gt=0.0, strict=True)
    hedge: bool = Field(default=True, strict=True)


class EmbeddingsIn(_In):
    """The body of ``POST /v1/embeddings``. Unknown fields are ignored and never forwarded."""

    model: str = Field(min_length=1, max_length=256)
    input: str | list[str] | list[int] | list[list[int]]
    dimensions: int | None = Field(default=None, ge=1, le=65_536, strict=True)
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = Field(default=None, max_length=256)
    bkvy: EmbeddingsBkvyIn = Field(default_factory=EmbeddingsBkvyIn)

    @field_validator("input", mode="before")
    @classmethod
    def _one_of_openais_shapes(cls, value: object) -> object:
        """One clear message for every wrong shape (a union's own errors name its internal branches)."""
        if isinstance(value, str):
            if not value:
                raise ValueError(f"must be {_INPUT_SHAPES}; got an empty string")
            return value
        if not isinstance(value, list) or not value:
            raise ValueError(f"must be {_INPUT_SHAPES}")
        if len(value) > MAX_INPUTS:
            raise ValueError(f"at most {MAX_INPUTS} inputs per request; got {len(value)}")
        if not (
            all(isinstance(item, str) and item for item in value)
            or _is_token_array(value)
            or all(isinstance(item, list) and _is_token_array(item) for item in value)
        ):
            raise ValueError(f"must be {_INPUT_SHAPES} (all of one kind; no empty string or list, no negative id)")
        return value

    def to_input(self) -> EmbeddingInput:
        texts, token_arrays = _split(self.input)
        return EmbeddingInput(texts, token_arrays, self.dimensions, self.user)


def _is_token_array(value: list[object]) -> bool:
    return bool(value) and all(type(item) is int and item >= 0 for item in value)


def _split(raw: str | list[str] | list[int] | list[list[int]]) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]:
    """``input`` as texts or token arrays (the schema let through one kind only)."""
    if isinstance(raw, str):
        return (raw,), ()
    texts = tuple(item for item in raw if isinstance(item, str))
    if texts:
        return texts, ()
    token_ids = tuple(item for item in raw if isinstance(item, int))
    if token_ids:
        return (), (token_ids,)
    return (), tuple(tuple(item) for item in raw if isinstance(item, list))
