"""One place that turns errors into the failure envelope (SPEC §4), for the hot paths and FastAPI alike.

``failure_of`` maps any exception to a ``Failure`` (status, code, message, headers); ``failure_body`` shapes it
for the path (OpenAI's envelope on /v1/*, bkvy's elsewhere). ``api.hot_path`` calls both directly; FastAPI's
exception handlers (``install_error_handlers``) call them through ``_failure_response``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bkvy.api.anthropic_format import ANTHROPIC_PATHS, anthropic_status
from bkvy.api.anthropic_format import error_body as anthropic_error_body
from bkvy.api.openai_format import error_body as openai_error_body
from bkvy.api.openai_format import request_id_headers
from bkvy.models.errors import BkvyError, MethodNotAllowed

log = logging.getLogger(__name__)

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    401: "unauthorized",
    403: "forbidden",
    413: "body_too_large",
    415: "unsupported_media_type",
}
_INTERNAL_MESSAGE = "internal error; see the gateway log"
_OPENAI_PATH_PREFIX = "/v1/"


_REQUEST_ID_PREFIX = os.urandom(8).hex()  # per process, so ids stay unique across restarts and workers
_request_numbers = itertools.count(1)


def new_request_id() -> str:
    """32 hex characters, unique: a random per-process prefix and a counter (no syscall per request).
    Request ids name a request in records and logs; they are not secrets."""
    return f"{_REQUEST_ID_PREFIX}{next(_request_numbers):016x}"


def request_id_of(request: Request) -> str:
    request_id = getattr(request.state, "request_id", None)
    if request_id is None:
        request_id = request.state.request_id = new_request_id()
    return request_id


@dataclass(frozen=True, slots=True)
class Failure:
    """What the client is told: the status, a stable snake_case code, a message without request content."""

    status: int
    code: str
    message: str
    headers: dict[str, str] | None = None
    attempts: list[dict[str, Any]] | None = None
    param: str | None = None  # the request field at fault (OpenAI's ``param``)


def method_not_allowed(method: str, route: str, allowed: Iterable[str]) -> MethodNotAllowed:
    """The 405 of every route; ``route`` is the route's template, never the raw (client-written) path."""
    allow = ", ".join(sorted(allowed))
    return MethodNotAllowed(f"{method} is not allowed on {route}; use {allow}", allow=allow)


def failure_of(error: Exception, *, method: str, route: str, request_id: str) -> Failure:
    """Any exception as a Failure. Anything that is not ours is logged by class name and becomes a plain 500:
    a bug's message may hold request content, so it never reaches the client or the log.

    ``route`` is the route's template (a hot path is its own). On /v1/messages Anthropic's statuses (400 for 422,
    529 for 503): its SDK picks its classes by them. On the rest of /v1/* a bad parameter is 400, not 422: OpenAI
    answers 400 ``invalid_request_error`` naming ``param``, and its SDKs raise ``BadRequestError`` for it."""
    failure = _failure_of(error, method=method, route=route, request_id=request_id)
    if route in ANTHROPIC_PATHS:
        return dataclasses.replace(failure, status=anthropic_status(failure.status))
    if failure.status == 422 and route.startswith(_OPENAI_PATH_PREFIX):
        return dataclasses.replace(failure, status=400)
    return failure


def _failure_of(error: Exception, *, method: str, route: str, request_id: str) -> Failure:
    if isinstance(error, BkvyError):
        return _bkvy_failure(error)
    if isinstance(error, RequestValidationError):
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
        location = ".".join(str(part) for part in first.get("loc", ()))
        param = str(first["loc"][-1]) if first.get("loc") else None  # a path or query parameter's name
        return Failure(422, "validation_error", f"{location}: {first.get('msg')}", param=param)
    if isinstance(error, StarletteHTTPException):
        if error.status_code == 405:
            allow = (error.headers or {}).get("Allow", "")
            return _bkvy_failure(method_not_allowed(method, route, allow.split(", ")))
        return Failure(
            error.status_code,
            _HTTP_CODES.get(error.status_code, "http_error"),
            str(error.detail),
            dict(error.headers) if error.headers else None,
        )
    log.error("unhandled_error", extra={"request_id": request_id, "error": type(error).__name__})
    return Failure(500, BkvyError.code, _INTERNAL_MESSAGE)


def _bkvy_failure(error: BkvyError) -> Failure:
    """A BkvyError's failure; every 429 says when to retry, a 405 which methods to use."""
    headers = None
    retry_after_seconds = getattr(error, "retry_after_seconds", None)
    if retry_after_seconds is not None:
        headers = {"Retry-After": str(max(1, math.ceil(retry_after_seconds)))}
    allow = getattr(error, "allow", None)
    if allow is not None:
        headers = {"Allow": allow}
    return Failure(error.status, error.code, error.message, headers, error.attempts, error.param)


def failure_body(path: str, request_id: str, failure: Failure) -> tuple[dict[str, object], dict[str, str] | None]:
    """The failure envelope and its headers: Anthropic's on /v1/messages, OpenAI's on the rest of /v1/* (so their
    SDKs raise their classes), else bkvy's."""
    if path in ANTHROPIC_PATHS:
        return (
            anthropic_error_body(failure.status, failure.code, failure.message, request_id),
            {**(failure.headers or {}), "x-bkvy-request-id": request_id, "request-id": request_id},
        )
    if path.startswith(_OPENAI_PATH_PREFIX):
        return (
            openai_error_body(failure.status, failure.code, failure.message, failure.param),
            {**(failure.headers or {}), **request_id_headers(request_id)},
        )
    body: dict[str, object] = {
        "success": False,
        "request_id": request_id,
        "error": {"code": failure.code, "message": failure.message},
    }
    if failure.attempts:
        body["attempts"] = failure.attempts
    return body, failure.headers


async def _failure_response(request: Request, error: Exception) -> JSONResponse:
    request_id = request_id_of(request)
    route = getattr(request.scope.get("route"), "path", None) or "unmatched"
    failure = failure_of(error, method=request.method, route=route, request_id=request_id)
    body, headers = failure_body(request.url.path, request_id, failure)
    return JSONResponse(body, status_code=failure.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """FastAPI's handlers: one function for our errors, its validation errors, HTTP errors and the rest."""
    for error_class in (BkvyError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(error_class, _failure_response)
