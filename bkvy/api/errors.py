"""One place that turns errors into the failure envelope (SPEC §4)."""

from __future__ import annotations

import itertools
import logging
import math
import os

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bkvy.api.openai_format import error_body as openai_error_body
from bkvy.models.errors import BkvyError

log = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden",
               413: "body_too_large", 415: "unsupported_media_type"}


_REQUEST_ID_PREFIX = os.urandom(8).hex()     # per process, so ids stay unique across restarts and workers
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


_OPENAI_PATH_PREFIX = "/v1/"


def failure_body(path: str, request_id: str, status: int, code: str, message: str,
                 attempts: list[dict[str, object]] | None = None,
                 headers: dict[str, str] | None = None) -> tuple[dict[str, object], dict[str, str] | None]:
    """The failure envelope and its headers: OpenAI's on /v1/* (so its SDKs raise their classes), else bkvy's."""
    if path.startswith(_OPENAI_PATH_PREFIX):
        return openai_error_body(status, code, message), {**(headers or {}), "x-bkvy-request-id": request_id}
    body: dict[str, object] = {"success": False, "request_id": request_id, "error": {"code": code, "message": message}}
    if attempts:
        body["attempts"] = attempts
    return body, headers


def failure_payload(path: str, request_id: str, error: BkvyError) -> tuple[dict[str, object], dict[str, str] | None]:
    """A BkvyError's envelope; every 429 says when to retry, a 405 which methods to use."""
    headers = None
    retry_after_seconds = getattr(error, "retry_after_seconds", None)
    if retry_after_seconds is not None:
        headers = {"Retry-After": str(max(1, math.ceil(retry_after_seconds)))}
    allow = getattr(error, "allow", None)
    if allow is not None:
        headers = {"Allow": allow}
    return failure_body(path, request_id, error.status, error.code, error.message, error.attempts, headers)


def failure_response(request: Request, status: int, code: str, message: str,
                     attempts: list[dict[str, object]] | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    body, headers = failure_body(request.url.path, request_id_of(request), status, code, message, attempts, headers)
    return JSONResponse(body, status_code=status, headers=headers)


def bkvy_error_response(request: Request, error: BkvyError) -> JSONResponse:
    body, headers = failure_payload(request.url.path, request_id_of(request), error)
    return JSONResponse(body, status_code=error.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BkvyError)
    async def _bkvy_error(request: Request, error: BkvyError) -> JSONResponse:
        return bkvy_error_response(request, error)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
        location = ".".join(str(part) for part in first.get("loc", ()))
        return failure_response(request, 422, "validation_error", f"{location}: {first.get('msg')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(error.status_code, "http_error")
        return failure_response(request, error.status_code, code, str(error.detail), headers=error.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error("unhandled_error", extra={"request_id": request_id_of(request), "error": type(error).__name__})
        return failure_response(request, 500, "internal_error", "internal error; see the gateway log")
