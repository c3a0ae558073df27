"""The only place that maps errors to HTTP status codes and JSON bodies."""

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from common.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyAttempts,
    UcloudError,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger(__name__)

RETRY_AFTER = 2  # seconds a client should wait after a 503 (etcd away, an election)

STATUS = {
    InvalidInput: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooManyAttempts: 429,
    Unavailable: 503,
}


def error_response(message: str, status: int, reason: str | None = None) -> tuple[Response, int]:
    body = {"error": message} if reason is None else {"error": message, "reason": reason}
    return jsonify(body), status


def register(app: Flask) -> None:
    @app.errorhandler(UcloudError)
    def ucloud_error(error: UcloudError) -> tuple[Response, int]:
        status = next((code for kind, code in STATUS.items() if isinstance(error, kind)), 500)
        if status == 500:
            log.error("unexpected %s: %s", type(error).__name__, error.message)
            return error_response("internal error", 500)
        response, status = error_response(error.message, status, error.reason)
        if isinstance(error, Unauthenticated):
            # RFC 9110 11.6.1: a 401 names the scheme(s) that would work
            response.headers["WWW-Authenticate"] = 'Bearer realm="ucloud"'
        elif isinstance(error, Unavailable):
            response.headers["Retry-After"] = str(RETRY_AFTER)
        elif isinstance(error, TooManyAttempts):
            response.headers["Retry-After"] = str(error.retry_after)
        return response, status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        status = error.code or 500
        messages = {
            404: "no such endpoint",
            405: "method not allowed on this endpoint",
            413: f"request body too large (at most {app.config['MAX_CONTENT_LENGTH']} bytes)",
        }
        response, status = error_response(
            messages.get(status, error.description or error.name), status
        )
        # werkzeug's own headers (Allow on a 405, RFC 9110) survive the JSON body.
        for name, value in error.get_headers():
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
        return response, status

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return error_response("internal error", 500)
