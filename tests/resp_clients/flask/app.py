"""The demo API of a sessionraft node on stock Flask sessions: Flask-Session (SESSION_TYPE
"redis") over redis-py, sessions in whatever speaks Redis at REDIS_URL (a redis-server, or a
sessionraft cluster's RESP door behind its load balancer), served by waitress (threaded).

    POST /api/counter   increments `counter` in the session: {"counter": n, "served_by": 0}
    GET  /api/counter   reads it (0 without a session):     {"counter": n, "served_by": 0}
    POST /api/logout    clears the session (DEL):            {"signed_out": true, "served_by": 0}
    GET  /healthz       "ok" once Redis answers PING

    REDIS_URL=redis://127.0.0.1:7200 .venv/bin/python app.py 127.0.0.1:8302   (or LISTEN_ADDR=...)
    REDIS_URL=rediss://127.0.0.1:7200 REDIS_CA=certs/ca.crt [REDIS_CERT=app.crt REDIS_KEY=app.key] ...

The cookie (`id`) holds the session id signed with SESSION_SECRET (a development default
otherwise): HttpOnly, SameSite=Lax, a browser session; the store keeps a session 30 minutes
(msgpack values, as Flask-Session 0.8 writes them). Flask-Session writes the session in
`save_session`, before the response leaves: a failed SET is a 503, never a 200.
"""

import logging
import os
import sys
import warnings
from datetime import timedelta

import redis
import waitress
from flask import Flask, jsonify, session
from flask_session import Session
from werkzeug.exceptions import InternalServerError

DEV_SECRET = "flask-app-dev-secret-change-me-0123456789abcdef"

log = logging.getLogger("flask_app")


def listen_address() -> str:
    addr = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("LISTEN_ADDR", "127.0.0.1:8302")
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"flask app: listen address must be HOST:PORT, got {addr!r}")
    return addr


def tls_options(redis_url: str) -> dict:
    """With a rediss:// URL: the CA to verify the server by (REDIS_CA, a PEM file; the system's
    roots otherwise) and a client certificate to present (REDIS_CERT + REDIS_KEY), for a door
    with `tls_auth_clients`. Without TLS in the URL these must not be set."""
    files = {
        "ssl_ca_certs": os.environ.get("REDIS_CA"),
        "ssl_certfile": os.environ.get("REDIS_CERT"),
        "ssl_keyfile": os.environ.get("REDIS_KEY"),
    }
    given = {k: v for k, v in files.items() if v}
    if not redis_url.startswith("rediss://"):
        if given:
            raise SystemExit("flask app: REDIS_CA/REDIS_CERT/REDIS_KEY are set but REDIS_URL is not rediss://")
        return {}
    if bool(files["ssl_certfile"]) != bool(files["ssl_keyfile"]):
        raise SystemExit("flask app: REDIS_CERT and REDIS_KEY go together")
    return given


def create_app(redis_url: str, secret: str) -> Flask:
    app = Flask(__name__)
    client = redis.Redis.from_url(redis_url, **tls_options(redis_url))
    app.config.update(
        SECRET_KEY=secret,
        SESSION_TYPE="redis",
        SESSION_REDIS=client,
        SESSION_KEY_PREFIX="session:",
        SESSION_PERMANENT=False,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=30),
        SESSION_COOKIE_NAME="id",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=False,
    )
    # Flask-Session 0.8 deprecates signing the session id (the id is 256 random bits) but
    # still does it; the cookie is signed like the other apps' cookies.
    app.config["SESSION_USE_SIGNER"] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        Session(app)

    def counter() -> int:
        value = session.get("counter", 0)
        return value if isinstance(value, int) else 0

    @app.post("/api/counter")
    def increment():
        session["counter"] = counter() + 1
        return jsonify(counter=session["counter"], served_by=0)

    @app.get("/api/counter")
    def read():
        return jsonify(counter=counter(), served_by=0)

    @app.post("/api/logout")
    def logout():
        session.clear()
        return jsonify(signed_out=True, served_by=0)

    @app.get("/healthz")
    def healthz():
        try:
            client.ping()
        except redis.RedisError as e:
            return f"redis not ready: {e}\n", 503, {"Content-Type": "text/plain"}
        return "ok\n", 200, {"Content-Type": "text/plain"}

    # A store failure surfaces while the session is opened (GET) or saved (SET/DEL), outside
    # the view: Flask turns it into a 500 whose original exception says what failed.
    @app.errorhandler(InternalServerError)
    def store_failed(e: InternalServerError):
        cause = e.original_exception
        if isinstance(cause, redis.RedisError):
            log.error("session store: %r", cause)
            return jsonify(error=f"session store: {cause}"), 503, {"Retry-After": "1"}
        log.error("internal error: %r", cause)
        return jsonify(error="internal error"), 500

    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    addr = listen_address()
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        raise SystemExit("flask app: REDIS_URL is not set (e.g. redis://127.0.0.1:6379)")
    secret = os.environ.get("SESSION_SECRET", DEV_SECRET)
    if len(secret) < 32:
        raise SystemExit("flask app: SESSION_SECRET must be at least 32 characters")
    app = create_app(redis_url, secret)
    log.info("serving on http://%s with sessions in %s", addr, redis_url)
    waitress.serve(app, listen=addr, threads=8, ident="flask-app")


if __name__ == "__main__":
    main()
