"""create_app(config): the Flask application, one blueprint per resource."""

import logging
import os
import time
from typing import Any

import orjson
from flask import Flask, Response, g, jsonify, request
from flask.json.provider import JSONProvider
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from common.auth import OtpBackend, ReplayGuard, backend_from_config
from common.config import Config
from common.directory import LdapDirectory
from common.errors import UcloudError
from common.imagestore import IMAGE_STORES
from common.lockout import Lockout
from common.sessions import Sessions
from common.store import Store
from ucloud_api import (
    errors,
    firewall,
    hosts,
    images,
    networks,
    openapi,
    sessions,
    sshkeys,
    users,
    vms,
)
from ucloud_api.context import Services, authenticate_request

log = logging.getLogger(__name__)

HEALTH_DEADLINE = 0.5  # seconds /healthz waits for etcd: a health check must answer at once

REQUESTS = Counter("ucloud_api_requests_total", "API requests", ["method", "endpoint", "status"])
LATENCY = Histogram(
    "ucloud_api_request_seconds",
    "API request latency",
    ["method", "endpoint"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)


class OrjsonProvider(JSONProvider):
    """orjson: lists of 10,000 VMs encode in milliseconds instead of tens of them."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = args[0] if len(args) == 1 else (args or kwargs)
        # Flask's own class (the app's response_class is typed as werkzeug's sans-IO base)
        return Response(orjson.dumps(obj), mimetype="application/json")


def create_app(
    config: Config,
    store: Store | None = None,
    otp: OtpBackend | None = None,
    directory: LdapDirectory | None = None,
) -> Flask:
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = config.api_max_body
    # A request waits for etcd at most api_request_deadline, then answers 503: the worker
    # threads must not all hang while etcd is away.
    store = store or Store.from_config(config, retry_deadline=config.api_request_deadline)
    otp = otp or backend_from_config(config, store)
    app.extensions["ucloud"] = Services(
        config=config,
        store=store,
        otp=otp,
        images=IMAGE_STORES.load(config.image_store, config),
        lockout=Lockout(
            store,
            config.auth_lockout,
            config.auth_failures_per_identity,
            config.auth_failures_per_address,
        ),
        replay=ReplayGuard(store, config.auth_window),
        sessions=Sessions(store, config.session_ttl, otp, config.admin_realm),
        directory=directory or LdapDirectory.from_config(config),
    )
    errors.register(app)
    # VMs stored before the owner index existed get their entries (idempotent, cheap when done).
    indexed = vms.index_owners(store)
    if indexed:
        log.info("owner index: %d VM(s) of earlier versions indexed", indexed)

    @app.before_request
    def before() -> None:
        g.started = time.perf_counter()
        if request.path.startswith("/v1/") or request.path == "/v1":
            authenticate_request()

    @app.after_request
    def after(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unknown"
        REQUESTS.labels(request.method, endpoint, response.status_code).inc()
        if "started" in g:
            LATENCY.labels(request.method, endpoint).observe(time.perf_counter() - g.started)
        return response

    @app.get("/healthz")
    def healthz() -> Any:
        try:
            store.ping(HEALTH_DEADLINE)
        except UcloudError as error:
            return jsonify({"status": "unhealthy", "error": error.message}), 503
        return jsonify({"status": "ok"})

    @app.get("/metrics")
    def metrics() -> Response:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            data = generate_latest(registry)
        else:
            data = generate_latest()
        return Response(data, content_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json")
    def openapi_json() -> Any:
        return jsonify(openapi.document())

    for module in (vms, networks, hosts, users, sshkeys, images, firewall, sessions):
        app.register_blueprint(module.blueprint)
    return app


def close_app(app: Flask) -> None:
    """Stop the app's background work (the auth cache's watch); the store is the caller's."""
    services = app.extensions["ucloud"]
    services.otp.close()
    services.lockout.close()
    services.sessions.close()
    if services.directory is not None:
        services.directory.close()
