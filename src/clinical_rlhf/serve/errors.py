"""Errors as OpenAI-style JSON bodies (`{"error": {"message", "type", "param", "code"}}`), so the
official clients raise their usual exception classes with our message.

Messages speak to the client and never echo a prompt, an answer or a key.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from clinical_rlhf.serve.schemas import SUPPORTED_FIELDS

logger = logging.getLogger("clinical_rlhf.serve")

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error"}
INVALID = 400
"""Every invalid request is a 400, as OpenAI answers it (FastAPI's default would be a 422)."""


class APIError(Exception):
    """An error the client gets as an HTTP status and an OpenAI-style body."""

    def __init__(self, status: int, message: str, code: str, *, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.code, param=self.param, headers=self.headers)


def error_response(status: int, message: str, code: str, *, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": _TYPES.get(status, "server_error"), "param": param,
                      "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc if part != "body"]
    return ".".join(parts) or "body"


def _validation_message(exc: RequestValidationError, endpoint: str | None) -> tuple[str, str | None]:
    """One line per problem, e.g. "`messages.0.role`: Input should be 'system', ...". Input values
    are left out: they may be patient text."""
    lines, first = [], None
    for item in exc.errors():
        where = _location(tuple(item.get("loc", ())))
        if item.get("type") != "json_invalid":
            first = first or where
        if item.get("type") == "extra_forbidden":
            supported = SUPPORTED_FIELDS.get(endpoint or "", [])
            hint = f"; supported fields: {', '.join(supported)}" if supported and "." not in where else ""
            lines.append(f"`{where}` is not supported by this server{hint}")
        elif item.get("type") == "json_invalid":
            lines.append("the body is not valid JSON")
        elif item.get("type") == "missing" and where == "body":
            lines.append("the body is empty; send a JSON object with Content-Type: application/json")
        else:
            message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
            lines.append(f"`{where}`: {message}")
    return "; ".join(lines) or "invalid request body", first


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        endpoint = request.scope.get("clinical_rlhf.endpoint")
        message, param = _validation_message(exc, endpoint)
        return error_response(INVALID, message, "invalid_request", param=param)

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(404, "no such endpoint; this server offers /v1/chat/completions, "
                                       "/v1/completions, /v1/feedback, /v1/models, /health, /ready and /metrics", "not_found")
        if exc.status_code == 405:
            return error_response(405, "this method is not allowed on this endpoint", "method_not_allowed")
        return error_response(exc.status_code, str(exc.detail), "http_error", headers=exc.headers)


def log_failure(what: str, exc: BaseException) -> None:
    """Log an exception's type and stack frames but not its message, which may quote the input."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    logger.error("%s: %s (message withheld: it may quote request text)\n%s", what, type(exc).__name__, frames)
