"""A small ungleich-otp server for tests: the verify endpoint as docs/api.md describes it, served
over real HTTP on a free loopback port (the real server is a Django app we do not package)."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyotp
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from ucloud_aio.procs import free_port


def create_app(accounts: dict[tuple[str, str], str], verifiers: set[tuple[str, str]]) -> Flask:
    """accounts: (name, realm) -> seed; verifiers: accounts allowed to verify others."""
    app = Flask(__name__)

    def valid(name: Any, realm: Any, token: Any) -> bool:
        seed = accounts.get((name, realm))
        return bool(seed) and pyotp.TOTP(seed).verify(str(token), valid_window=1)

    @app.post("/ungleichotp/verify/")
    def verify() -> Any:
        body = request.get_json(silent=True) or {}
        verifier = (body.get("verifyname"), body.get("verifyrealm"))
        if verifier not in verifiers or not valid(*verifier, body.get("verifytoken")):
            return jsonify({"detail": "verifier not authorised"}), 403
        if not valid(body.get("name"), body.get("realm"), body.get("token")):
            return jsonify({"detail": "invalid token"}), 401
        return jsonify({"status": "OK"}), 200

    return app


@contextmanager
def running(accounts: dict[tuple[str, str], str], verifiers: set[tuple[str, str]]) -> Iterator[str]:
    """Serve in a thread; yields the base URL."""
    port = free_port()
    server = make_server("127.0.0.1", port, create_app(accounts, verifiers), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(5)
