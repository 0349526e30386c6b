"""One place that turns errors into the failure envelope (SPEC §4)."""

from __future__ import annotations

import logging
import math
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bkvy.api.openai_format import error_body as openai_error_body
from bkvy.models.errors import BkvyError

log = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden",
               413: "body_too_large", 415: "unsupported_media_type"}


def request_id_of(request: Request) -> str:
    request_id = getattr(request.state, "request_id", None)
    if request_id is None:
        request_id = request.state.request_id = uuid.uuid4().hex
    return request_id


_OPENAI_PATH_PREFIX = "/v1/"


def failure_response(request: Request, status: int, code: str, message: str,
                     attempts: list[dict[str, object]] | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    if request.url.path.startswith(_OPENAI_PATH_PREFIX):   # OpenAI's envelope, so its SDKs raise their classes
        headers = {**(headers or {}), "x-bkvy-request-id": request_id_of(request)}
        return JSONResponse(openai_error_body(status, code, message), status_code=status, headers=headers)
    body: dict[str, object] = {"success": False, "request_id": request_id_of(request),
                               "error": {"code": code, "message": message}}
    if attempts:
        body["attempts"] = attempts
    return JSONResponse(body, status_code=status, headers=headers)


def bkvy_error_response(request: Request, error: BkvyError) -> JSONResponse:
    headers = None
    retry_after_seconds = getattr(error, "retry_after_seconds", None)   # every 429 says when to retry
    if retry_after_seconds is not None:
        headers = {"Retry-After": str(max(1, math.ceil(retry_after_seconds)))}
    return failure_response(request, error.status, error.code, error.message, error.attempts, headers)


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
