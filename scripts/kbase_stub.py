"""Local stand-in for the KBase auth2 service (standard library only).

The real KBase auth service needs MongoDB and an identity provider. This stub answers the
handful of client-facing endpoints exactly as described in ``/work/shared/KBASE_AUTH.md`` so
that tests and ``make dev`` can run without it. It has no dependencies beyond the Python
standard library and starts instantly.

Usage::

    python scripts/kbase_stub.py --host 127.0.0.1 --port 8081 --seed scripts/kbase_seed.json

``--port 0`` picks a free port. Once listening, exactly one line is printed to stdout (and
flushed) so a harness can read the port::

    kbase-stub listening on http://127.0.0.1:8081/

SIGTERM or SIGINT stops it cleanly (exit status 0).

In-process use (tests)::

    server, base_url = start_stub("127.0.0.1", 0, seed)   # serves in a daemon thread
    ...
    stop_stub(server)

KBase endpoints (all answers are JSON with ``Content-Type: application/json``)
-----------------------------------------------------------------------------
The token is taken from the ``Authorization`` header as is, with no scheme: a value of
``Bearer xyz`` is simply an unknown token.

``GET /``
    ``{"version": "0.8.0", "servicename": "Authentication Service", "servertime": <ms>,
    "gitcommithash": "stub"}``; no token needed.
``GET /api/V2/token``
    ``{"type", "id", "created", "expires", "name", "user", "custom", "cachefor", "mfa"}``;
    times are milliseconds since the epoch, ``cachefor`` is a duration in milliseconds.
``GET /api/V2/me``
    ``{"user", "anonid", "local", "display", "email", "created", "lastlogin", "customroles",
    "roles", "idents", "policyids"}``. For a disabled account: 403 / appcode 20010 and all of
    that user's tokens are deleted at that moment (later calls get 401 / 10020).
``GET /api/V2/users/?list=a,b`` (trailing slash optional)
    ``{"a": "<display name>", ...}``; unknown names are left out; empty or absent list
    gives ``{}``. Needs a valid token.

Like the real service, ``/api/V2/token`` and ``/api/V2/users/`` only check that the token
exists and has not expired; only ``/api/V2/me`` checks whether the account is disabled.

Errors use the KBase envelope::

    {"error": {"httpcode": 401, "httpstatus": "Unauthorized", "appcode": 10020,
               "apperror": "Invalid token", "message": "10020 Invalid token",
               "callid": "<random hex>", "time": <ms>}}

* no or empty ``Authorization`` header -> 400, appcode 10010 "No authentication token";
* unknown or expired token -> 401, appcode 10020 "Invalid token";
* disabled account on ``/api/V2/me`` -> 403, appcode 20010 "Account disabled";
* unknown path -> 404, wrong method -> 405, simulated outage -> 500. These errors are not
  application errors, so ``appcode`` is ``null`` and ``apperror`` is the HTTP status text
  (the real service omits both keys; the stub keeps the envelope shape fixed).

Test-control endpoints (NOT part of KBase; no auth; never affected by the outage mode)
-------------------------------------------------------------------------------------
``POST /_stub/users``
    Body: one user object in the seed format. Adds the user, or replaces it together with
    all of its tokens. A token entry without ``"token"`` gets a random one. Answers
    ``{"user": <name>, "tokens": [<token strings>]}``.
``POST /_stub/users/<name>/disable``
    Marks the account disabled (its tokens stay until the next ``/api/V2/me`` call).
    Answers ``{"user": <name>, "disabled": true}``; unknown user -> 404.
``POST /_stub/tokens/<token>/expire``
    Sets the token's expiry time to now, so it is rejected from now on. Answers
    ``{"expired": true}``; unknown token -> 404. (``<token>`` is URL-decoded.)
``GET /_stub/stats``
    ``{"me": <n>, "token": <n>, "users": <n>}``: the number of requests that reached
    ``/api/V2/me``, ``/api/V2/token`` and ``/api/V2/users/`` (successful or not, including
    requests answered by a simulated outage).
``POST /_stub/stats/reset``
    Sets all counters to zero; answers the (zeroed) stats.
``POST /_stub/mode``
    Body ``{"mode": "normal"|"error500"|"html502"|"slow", "delay_s": <float>}``. Applies to
    every non-``/_stub/`` request: ``error500`` answers 500 with the KBase envelope,
    ``html502`` answers 502 with a non-JSON HTML body (like a reverse proxy whose backend is
    down), ``slow`` sleeps ``delay_s`` seconds (default 1.0) and then answers normally,
    ``normal`` restores normal service. Answers ``{"mode": <mode>, "delay_s": <float>}``.

Seed format (``--seed`` file and ``POST /_stub/users`` body)::

    {"users": [{"user": "alice", "display": "Alice Liddell", "email": "alice@example.org",
                "customroles": ["BERDL_USER"], "disabled": false,
                "tokens": [{"token": "...", "type": "Login", "expires_in_ms": 2592000000,
                            "cachefor_ms": 300000}]}]}

Token fields ``type`` (default "Login"), ``expires_in_ms`` (default 30 days; counted from
when the seed is loaded; may be negative for an already-expired token), ``cachefor_ms``
(default 300000) and ``name`` (default null) are optional.

The server is quiet: it never logs requests unless ``--verbose`` is given, and it never
prints or logs tokens.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "KBaseStubServer",
    "SeedError",
    "StubState",
    "load_seed",
    "main",
    "make_server",
    "start_stub",
    "stop_stub",
]

VERSION: Final = "0.8.0"
SERVICE_NAME: Final = "Authentication Service"
DEFAULT_CACHEFOR_MS: Final = 300_000
DEFAULT_EXPIRES_IN_MS: Final = 30 * 24 * 3600 * 1000
DEFAULT_DELAY_S: Final = 1.0
MODES: Final = ("normal", "error500", "html502", "slow")
TOKEN_TYPES: Final = ("Login", "Agent", "Developer", "Service")
# KBase paths and the stats counter each one increments ("/" is not counted)
COUNTED_PATHS: Final = {
    "/api/V2/me": "me",
    "/api/V2/token": "token",
    "/api/V2/users": "users",
    "/api/V2/users/": "users",
}

HTML_502: Final = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)

APP_NO_TOKEN: Final = (10010, "No authentication token")
APP_INVALID_TOKEN: Final = (10020, "Invalid token")
APP_DISABLED: Final = (20010, "Account disabled")
APP_MISSING_PARAMETER: Final = (10030, "Missing input parameter")
APP_ILLEGAL_PARAMETER: Final = (10040, "Illegal input parameter")


def now_ms() -> int:
    """Current time in milliseconds since the epoch."""
    return int(time.time() * 1000)


class SeedError(ValueError):
    """The seed (or a ``POST /_stub/users`` body) is malformed."""


@dataclass
class UserRecord:
    user: str
    display: str
    email: str
    customroles: list[str]
    disabled: bool
    anonid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: int = field(default_factory=now_ms)


@dataclass
class TokenRecord:
    user: str
    type: str
    expires: int
    cachefor: int
    name: str | None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: int = field(default_factory=now_ms)


def _require_str(obj: dict[str, Any], key: str, default: str | None = None) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str):
        raise SeedError(f"{key!r} must be a string")
    return value


def _require_int(obj: dict[str, Any], key: str, default: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SeedError(f"{key!r} must be an integer")
    return value


def parse_user(obj: Any) -> tuple[UserRecord, list[tuple[str, TokenRecord]]]:
    """Validate one seed user object; return the user and its ``(token, record)`` pairs."""
    if not isinstance(obj, dict):
        raise SeedError("a user must be a JSON object")
    name = _require_str(obj, "user")
    if not name:
        raise SeedError("'user' must not be empty")
    roles = obj.get("customroles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise SeedError("'customroles' must be a list of strings")
    disabled = obj.get("disabled", False)
    if not isinstance(disabled, bool):
        raise SeedError("'disabled' must be a boolean")
    user = UserRecord(
        user=name,
        display=_require_str(obj, "display", name),
        email=_require_str(obj, "email", ""),
        customroles=list(roles),
        disabled=disabled,
    )
    raw_tokens = obj.get("tokens", [])
    if not isinstance(raw_tokens, list):
        raise SeedError("'tokens' must be a list")
    created = now_ms()
    tokens: list[tuple[str, TokenRecord]] = []
    for raw in raw_tokens:
        if not isinstance(raw, dict):
            raise SeedError("a token must be a JSON object")
        token = _require_str(raw, "token", uuid.uuid4().hex)
        if not token.strip() or token != token.strip():
            raise SeedError("a token must be non-empty and have no surrounding whitespace")
        token_type = _require_str(raw, "type", "Login")
        if token_type not in TOKEN_TYPES:
            raise SeedError(f"token 'type' must be one of {TOKEN_TYPES}")
        token_name = raw.get("name")
        if token_name is not None and not isinstance(token_name, str):
            raise SeedError("token 'name' must be a string or null")
        record = TokenRecord(
            user=name,
            type=token_type,
            created=created,
            expires=created + _require_int(raw, "expires_in_ms", DEFAULT_EXPIRES_IN_MS),
            cachefor=_require_int(raw, "cachefor_ms", DEFAULT_CACHEFOR_MS),
            name=token_name,
        )
        tokens.append((token, record))
    return user, tokens


class StubState:
    """All mutable state of the stub, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users: dict[str, UserRecord] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self.stats: dict[str, int] = {"me": 0, "token": 0, "users": 0}
        self.mode = "normal"
        self.delay_s = DEFAULT_DELAY_S

    def load(self, seed: dict[str, Any]) -> None:
        """Add every user of a seed document (``{"users": [...]}``)."""
        users = seed.get("users", [])
        if not isinstance(users, list):
            raise SeedError("'users' must be a list")
        parsed = [parse_user(u) for u in users]
        for user, tokens in parsed:
            self.put_user(user, tokens)

    def put_user(self, user: UserRecord, tokens: list[tuple[str, TokenRecord]]) -> None:
        """Add or replace a user together with all of its tokens."""
        with self.lock:
            self.delete_tokens_locked(user.user)
            self.users[user.user] = user
            for token, record in tokens:
                self.tokens[token] = record

    def delete_tokens_locked(self, name: str) -> None:
        """Delete all tokens of a user; the caller holds ``self.lock``."""
        for token in [t for t, rec in self.tokens.items() if rec.user == name]:
            del self.tokens[token]

    def lookup(self, token: str) -> TokenRecord | None:
        """The live (known and unexpired) token record, or ``None``."""
        with self.lock:
            record = self.tokens.get(token)
            if record is None or record.expires <= now_ms():
                return None
            return record

    def count(self, key: str) -> None:
        with self.lock:
            self.stats[key] += 1


class KBaseStubServer(ThreadingHTTPServer):
    """A threading HTTP server carrying the stub's state."""

    daemon_threads = True
    block_on_close = False  # do not wait for slow or keep-alive handler threads on close
    # socketserver's default listen backlog is 5: a login storm opening dozens of connections
    # at once overflowed it, dropped SYNs and turned a healthy stand-in into connect timeouts
    # (the real KBase sits behind a proper server). Issue 12.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], state: StubState, verbose: bool = False):
        self.state = state
        self.verbose = verbose
        super().__init__(address, StubHandler)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        host_str = host.decode() if isinstance(host, bytes) else str(host)
        if ":" in host_str:
            host_str = f"[{host_str}]"
        return f"http://{host_str}:{port}/"


class StubHandler(BaseHTTPRequestHandler):
    """Request handler; one instance per connection."""

    protocol_version = "HTTP/1.1"
    server_version = "kbase-stub"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are closed after this many seconds
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms stalls

    # ------------------------------------------------------------------ plumbing

    @property
    def stub(self) -> KBaseStubServer:
        server = self.server
        assert isinstance(server, KBaseStubServer)
        return server

    @property
    def state(self) -> StubState:
        return self.stub.state

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request logging (it could include tokens in paths)."""

    def _log_request(self, status: int) -> None:
        if not self.stub.verbose:
            return
        path = urlsplit(self.path).path
        if path.startswith("/_stub/tokens/"):
            path = "/_stub/tokens/<redacted>/" + path.rsplit("/", 1)[-1]
        sys.stderr.write(f"kbase-stub {self.command} {path} -> {status}\n")
        sys.stderr.flush()

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            return b""
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._log_request(status)

    def _send_json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"))

    def _send_error(
        self,
        status: int,
        app: tuple[int, str] | None = None,
        detail: str | None = None,
    ) -> None:
        httpstatus = HTTPStatus(status).phrase
        if app is None:
            appcode: int | None = None
            apperror = httpstatus
            message = apperror
        else:
            appcode, apperror = app
            message = f"{appcode} {apperror}"
        if detail:
            message = f"{message}: {detail}"
        self._send_json(
            status,
            {
                "error": {
                    "httpcode": status,
                    "httpstatus": httpstatus,
                    "appcode": appcode,
                    "apperror": apperror,
                    "message": message,
                    "callid": uuid.uuid4().hex[:16],
                    "time": now_ms(),
                }
            },
        )

    # ------------------------------------------------------------------ dispatch

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        body = self._read_body()
        parts = urlsplit(self.path)
        path = parts.path
        try:
            if path.startswith("/_stub/"):
                self._control(path, body)
            else:
                self._kbase(path, parts.query)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # ------------------------------------------------------------------ KBase API

    def _kbase(self, path: str, query: str) -> None:
        counter = COUNTED_PATHS.get(path)
        if counter is not None:
            self.state.count(counter)

        with self.state.lock:
            mode, delay_s = self.state.mode, self.state.delay_s
        if mode == "slow":
            time.sleep(delay_s)
        elif mode == "error500":
            self._send_error(500, detail="simulated outage (kbase-stub)")
            return
        elif mode == "html502":
            self._send(502, HTML_502, "text/html")
            return

        if path != "/" and counter is None:
            self._send_error(404, detail=path)
            return
        if self.command not in ("GET", "HEAD"):
            self._send_error(405, detail=f"{self.command} {path}")
            return
        if path == "/":
            self._send_json(
                200,
                {
                    "version": VERSION,
                    "servicename": SERVICE_NAME,
                    "servertime": now_ms(),
                    "gitcommithash": "stub",
                },
            )
            return

        raw = self.headers.get("Authorization")
        token = raw.strip() if raw else ""
        if not token:
            self._send_error(400, APP_NO_TOKEN)
            return
        record = self.state.lookup(token)
        if record is None:
            self._send_error(401, APP_INVALID_TOKEN)
            return

        if counter == "token":
            self._send_json(
                200,
                {
                    "type": record.type,
                    "id": record.id,
                    "created": record.created,
                    "expires": record.expires,
                    "name": record.name,
                    "user": record.user,
                    "custom": {},
                    "cachefor": record.cachefor,
                    "mfa": "Unknown",
                },
            )
        elif counter == "me":
            self._me(token, record)
        else:
            self._users(query)

    def _me(self, token: str, record: TokenRecord) -> None:
        state = self.state
        with state.lock:
            user = state.users.get(record.user)
            if user is None or token not in state.tokens:
                # user replaced or tokens deleted meanwhile
                payload = None
                disabled = False
            elif user.disabled:
                state.delete_tokens_locked(user.user)
                payload = None
                disabled = True
            else:
                disabled = False
                payload = {
                    "user": user.user,
                    "anonid": user.anonid,
                    "local": False,
                    "display": user.display,
                    "email": user.email,
                    "created": user.created,
                    "lastlogin": user.created,
                    "customroles": list(user.customroles),
                    "roles": [],
                    "idents": [],
                    "policyids": [],
                }
        if disabled:
            self._send_error(403, APP_DISABLED)
        elif payload is None:
            self._send_error(401, APP_INVALID_TOKEN)
        else:
            self._send_json(200, payload)

    def _users(self, query: str) -> None:
        values = parse_qs(query, keep_blank_values=True).get("list", [])
        names = [n.strip() for v in values for n in v.split(",") if n.strip()]
        with self.state.lock:
            result = {n: self.state.users[n].display for n in names if n in self.state.users}
        self._send_json(200, result)

    # ------------------------------------------------------------------ control API

    def _control(self, path: str, body: bytes) -> None:
        state = self.state
        segments = [unquote(s) for s in path.split("/")[2:]]  # after "", "_stub"
        method = self.command

        if segments == ["stats"] and method == "GET":
            with state.lock:
                self._send_json(200, dict(state.stats))
            return
        if segments == ["stats", "reset"] and method == "POST":
            with state.lock:
                state.stats = {"me": 0, "token": 0, "users": 0}
                stats = dict(state.stats)
            self._send_json(200, stats)
            return
        if segments == ["mode"] and method == "POST":
            self._set_mode(body)
            return
        if segments == ["users"] and method == "POST":
            self._put_user(body)
            return
        if len(segments) == 3 and segments[0] == "users" and segments[2] == "disable":
            if method != "POST":
                self._send_error(405)
                return
            with state.lock:
                user = state.users.get(segments[1])
                if user is not None:
                    user.disabled = True
            if user is None:
                self._send_error(404, detail="no such user")
            else:
                self._send_json(200, {"user": user.user, "disabled": True})
            return
        if len(segments) == 3 and segments[0] == "tokens" and segments[2] == "expire":
            if method != "POST":
                self._send_error(405)
                return
            with state.lock:
                record = state.tokens.get(segments[1])
                if record is not None:
                    record.expires = min(record.expires, now_ms())
            if record is None:
                self._send_error(404, detail="no such token")
            else:
                self._send_json(200, {"expired": True})
            return
        if segments in (["stats"], ["stats", "reset"], ["mode"], ["users"]):
            self._send_error(405)
            return
        self._send_error(404, detail="no such control endpoint")

    def _json_body(self, body: bytes) -> Any:
        try:
            return json.loads(body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None

    def _set_mode(self, body: bytes) -> None:
        obj = self._json_body(body)
        if not isinstance(obj, dict) or obj.get("mode") not in MODES:
            self._send_error(400, APP_ILLEGAL_PARAMETER, f"mode must be one of {MODES}")
            return
        delay = obj.get("delay_s", DEFAULT_DELAY_S)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            self._send_error(400, APP_ILLEGAL_PARAMETER, "delay_s must be a number >= 0")
            return
        with self.state.lock:
            self.state.mode = str(obj["mode"])
            self.state.delay_s = float(delay)
            answer = {"mode": self.state.mode, "delay_s": self.state.delay_s}
        self._send_json(200, answer)

    def _put_user(self, body: bytes) -> None:
        obj = self._json_body(body)
        if obj is None:
            self._send_error(400, APP_MISSING_PARAMETER, "body must be a JSON user object")
            return
        try:
            user, tokens = parse_user(obj)
        except SeedError as exc:
            self._send_error(400, APP_ILLEGAL_PARAMETER, str(exc))
            return
        self.state.put_user(user, tokens)
        self._send_json(200, {"user": user.user, "tokens": [t for t, _ in tokens]})


# ---------------------------------------------------------------------- public API


def load_seed(path: str) -> dict[str, Any]:
    """Read a seed JSON file (``{"users": [...]}``)."""
    with open(path, encoding="utf-8") as fh:
        seed = json.load(fh)
    if not isinstance(seed, dict):
        raise SeedError("the seed must be a JSON object")
    return seed


def make_server(
    host: str, port: int, seed: dict[str, Any] | None = None, verbose: bool = False
) -> KBaseStubServer:
    """Create (bind) the server with the given seed loaded; does not start serving."""
    state = StubState()
    state.load(seed or {})
    return KBaseStubServer((host, port), state, verbose=verbose)


def start_stub(
    host: str, port: int, seed: dict[str, Any] | None = None
) -> tuple[KBaseStubServer, str]:
    """Start the stub in a daemon thread; return the server and its base URL.

    ``port`` 0 picks a free port. The base URL ends with a slash, e.g.
    ``http://127.0.0.1:54321/``. Stop it with :func:`stop_stub`.
    """
    server = make_server(host, port, seed)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="kbase-stub",
        daemon=True,
    )
    thread.start()
    return server, server.base_url


def stop_stub(server: KBaseStubServer) -> None:
    """Stop a server started with :func:`start_stub` and release its socket."""
    server.shutdown()
    server.server_close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local stand-in for the KBase auth2 service.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8081, help="port to bind (0 = any free)")
    parser.add_argument("--seed", help="seed JSON file with users and tokens")
    parser.add_argument(
        "--verbose", action="store_true", help="log method, path and status (never tokens)"
    )
    args = parser.parse_args(argv)

    seed = load_seed(args.seed) if args.seed else {}
    server = make_server(args.host, args.port, seed, verbose=args.verbose)
    # Stop cleanly on SIGTERM, and on SIGINT even when started in the background (where a
    # non-interactive shell makes the process inherit an ignored SIGINT).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    print(f"kbase-stub listening on {server.base_url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
