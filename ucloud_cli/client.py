"""A small REST client: authenticates with a session token bought with one TOTP code, turns HTTP
errors into ApiError. Its errors are CliErrors, which __main__ prints as `error: <message>` (exit
status 1).

The API accepts each TOTP code once (docs/api.md), so no client sends one per request:
`SessionAuth` exchanges a code for a session token (POST /v1/session) on first use and hands out
`Authorization: Bearer` headers; on a 401 the caller drops the token and gets a new one. The
token is cached in a file (`SessionCache`, one per API URL, realm, name and seed) so that
separate runs of the CLI share one session instead of each spending a code; a lock file makes
concurrent runs wait for the one that creates it. When a code was taken by someone else
(401, reason `token_reused`), the next step's code is used, which the API accepts with its
default window of one step either side. Transport-independent: the tests' in-process Flask
client, the lab helpers and the benchmarks use the same class.
"""

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import requests

from common.errors import UcloudError
from ucloud_cli.settings import Settings

STEP = 30  # seconds of a TOTP step
RENEW_BEFORE = 60  # a cached session this close to its expiry is replaced, not used
CREATE_ATTEMPTS = 4
LOCK_STALE = 120  # seconds after which a lock file is taken to be left by a crashed run


class CliError(UcloudError):
    """Something the user has to read; a UcloudError, so the project's errors have one base."""


class ApiUnreachable(CliError):
    """No HTTP answer at all (refused, unresolvable, timed out): distinct from an API refusal."""


def _unreachable(api: str, error: requests.RequestException, ca_file: str | None) -> ApiUnreachable:
    """ApiUnreachable; a certificate that failed verification explained, with what to do."""
    if isinstance(error, requests.exceptions.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(
        error
    ):
        against = f"the CA in {ca_file}" if ca_file else "the system's CAs (no ca_file given)"
        return ApiUnreachable(
            f"cannot reach the API at {api}: certificate verify failed: its TLS certificate is not"
            f" signed by {against}, or does not name the host in the URL. Give the CA that signed"
            " it with --ca-file, UCLOUD_CA_FILE or ca_file in the CLI config."
            f" ({error})"
        )
    hint = ""
    if isinstance(error, requests.exceptions.SSLError) and "WRONG_VERSION_NUMBER" in str(error):
        hint = " (an https URL, but the API seems to serve plain HTTP)"
    elif api.startswith("http://") and "RemoteDisconnected" in str(error):
        hint = " (the API closed the connection: if it serves HTTPS, use an https URL)"
    return ApiUnreachable(f"cannot reach the API at {api}: {error}{hint}")


class ApiError(CliError):
    """The API answered with an HTTP error. Callers decide by `status` (and `reason`, the API's
    stable word for some errors), never by the message, which is the API's to reword."""

    def __init__(self, status: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def api_error(status: int, data: Any, where: str) -> ApiError:
    message = data.get("error") if isinstance(data, dict) else None
    reason = data.get("reason") if isinstance(data, dict) else None
    return ApiError(status, message or f"HTTP {status} from {where}", reason)


@dataclass(frozen=True)
class Cached:
    """A session token (None once revoked or refused) and the TOTP step of the code last spent
    on a session, so that the next one starts after it instead of replaying it."""

    token: str | None
    expires: float  # epoch seconds, by this machine's clock (of the step, when no token)
    step: int

    def fresh(self) -> bool:
        return self.token is not None and self.expires - time.time() > RENEW_BEFORE

    def spent(self) -> "Cached":
        """Without its token; kept while its step's code could still be replayed."""
        return Cached(None, (self.step + 2) * STEP, self.step)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "ucloud" / "sessions"


class SessionCache:
    """One session token in a 0600 file under $XDG_CACHE_HOME/ucloud/sessions/ (the directory
    0700), named by a hash of the API URL, realm, name and seed: another seed or cloud never
    finds it. It holds the token, its expiry and the TOTP step last spent, never the seed."""

    def __init__(self, settings: Settings, directory: Path | None = None) -> None:
        self.directory = directory or cache_dir()
        identity = "\0".join((settings.api, settings.realm, settings.name, settings.seed))
        self.path = self.directory / (hashlib.sha256(identity.encode()).hexdigest() + ".json")
        self._lock_path = self.path.with_suffix(".lock")

    def load(self) -> Cached | None:
        try:
            data = json.loads(self.path.read_text())
            token = data.get("token")
            return Cached(
                str(token) if token else None, float(data["expires"]), int(data.get("step", 0))
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # none yet, or unreadable: a new session replaces it

    def save(self, cached: Cached) -> None:
        self._make_directory()
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        record: dict[str, Any] = {"expires": cached.expires, "step": cached.step}
        if cached.token is not None:
            record["token"] = cached.token
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(record, handle)
        os.replace(temporary, self.path)
        self._prune()

    def _prune(self) -> None:
        """Remove the expired sessions of other clouds and seeds (best effort)."""
        for path in self.directory.glob("*.json"):
            try:
                if float(json.loads(path.read_text())["expires"]) < time.time():
                    path.unlink()
            except (OSError, ValueError, KeyError, TypeError):
                continue

    def _make_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)

    @contextlib.contextmanager
    def lock(self, timeout: float = 90.0) -> Iterator[None]:
        """Exclusive among processes (a file made with O_EXCL: portable, no fcntl)."""
        self._make_directory()
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.close(os.open(self._lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                break
            except FileExistsError:
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - self._lock_path.stat().st_mtime > LOCK_STALE:
                        self._lock_path.unlink()
                        continue
                if time.monotonic() > deadline:
                    raise CliError(f"session cache {self._lock_path} stays locked") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                self._lock_path.unlink()


# POST /v1/session with these headers -> (HTTP status, decoded JSON or None)
PostSession = Callable[[dict[str, str]], tuple[int, Any]]


class SessionAuth:
    """Bearer headers for one identity, the session bought with a TOTP code when needed."""

    def __init__(
        self, settings: Settings, post_session: PostSession, cache: SessionCache | None = None
    ) -> None:
        self.settings = settings
        self.totp = pyotp.TOTP(settings.seed)
        self.post_session = post_session
        self.cache = cache
        self._current: Cached | None = None
        self._lock = threading.Lock()

    @property
    def token(self) -> str | None:
        """The token in use, if any (without creating one)."""
        if self._current is None and self.cache is not None:
            self._current = self.cache.load()
        return self._current.token if self._current is not None else None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._session().token}"}

    def totp_headers(self, code: str | None = None) -> dict[str, str]:
        return {
            "X-Ucloud-Name": self.settings.name,
            "X-Ucloud-Realm": self.settings.realm,
            "X-Ucloud-Token": code or self.totp.now(),
        }

    def invalidate(self, token: str) -> None:
        """The API refused `token` (expired, revoked): forget it, here and in the cache."""
        self._drop(token)

    def forget(self) -> None:
        """Drop the session (after revoking it): a new one is made on next use."""
        self._drop(None)

    def _drop(self, token: str | None) -> None:
        """Forget `token` (None: whatever token there is), keeping the step last spent."""
        if self._current is not None and token in (None, self._current.token):
            self._current = self._current.spent()
        if self.cache is not None:
            with self.cache.lock():
                cached = self.cache.load()
                if (
                    cached is not None
                    and cached.token is not None
                    and token in (None, cached.token)
                ):
                    self.cache.save(cached.spent())

    def _session(self) -> Cached:
        current = self._current
        if current is not None and current.fresh():
            return current
        with self._lock:  # threads of one process: one of them makes the session
            return self._renew()

    def _renew(self) -> Cached:
        if self._current is not None and self._current.fresh():
            return self._current
        if self.cache is None:
            self._current = self._create(self._current.step if self._current else 0)
            return self._current
        with self.cache.lock():
            cached = self.cache.load()  # another run may have made one meanwhile
            if cached is None or not cached.fresh():
                cached = self._create(cached.step if cached else 0)
                self.cache.save(cached)
            self._current = cached
        return cached

    def _create(self, spent: int) -> Cached:
        """A new session, paid with the code of the first step after `spent` that is valid
        now. When the API answers that a code was used already (by another client), the next
        step's is accepted already (the API's default window is one step either side); beyond
        that, the step is waited for."""
        step = max(int(time.time()) // STEP, spent + 1)
        for _attempt in range(CREATE_ATTEMPTS):
            wait = (step - 1) * STEP - time.time()
            if wait > 0:
                time.sleep(wait + 0.2)
            status, data = self.post_session(self.totp_headers(self.totp.at(step * STEP)))
            if status == 201 and isinstance(data, dict):
                return Cached(str(data["token"]), time.time() + float(data["ttl"]), step)
            error = api_error(status, data, "POST /v1/session")
            if status == 401 and error.reason == "token_reused":
                step += 1
            elif status == 401 and step > int(time.time()) // STEP:
                # refused as not valid yet (the API's window is 0 steps): wait for its step
                wait = step * STEP - time.time()
                if wait > 0:
                    time.sleep(wait + 0.2)
            else:
                raise error  # a wrong seed, an unknown user; 429, 503
        raise ApiError(401, "could not get a session: every TOTP code tried was used already")


class Client:
    """The API as one user, through a session (SessionAuth) cached for other runs."""

    def __init__(
        self,
        settings: Settings,
        timeout: float = 30.0,
        cache: SessionCache | bool = True,
    ) -> None:
        """cache: True: the CLI's cache file (SessionCache); False: in this object only."""
        self.settings = settings
        self.timeout = timeout
        self.http = requests.Session()
        # Given with every request: requests lets REQUESTS_CA_BUNDLE override a Session's verify.
        self.verify: str | bool = settings.ca_file or True
        if cache is True:
            cache = SessionCache(settings)
        self.auth = SessionAuth(settings, self._post_session, cache or None)

    @classmethod
    def of(
        cls, api: str, name: str, realm: str, seed: str, ca_file: str | None = None, **options: Any
    ) -> "Client":
        return cls(Settings(api.rstrip("/"), name, realm, seed, ca_file), **options)

    def _send(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
        url = self.settings.api + path
        try:
            return self.http.request(
                method, url, json=body, headers=headers, timeout=self.timeout, verify=self.verify
            )
        except requests.RequestException as error:
            raise _unreachable(self.settings.api, error, self.settings.ca_file) from None

    def _post_session(self, headers: dict[str, str]) -> tuple[int, Any]:
        answer = self._send("POST", "/v1/session", None, headers)
        return answer.status_code, _json(answer)

    def response(self, method: str, path: str, body: Any = None) -> requests.Response:
        """The raw answer, authenticated; a refused session is replaced once (a 401 means the
        request was not carried out, so sending it again is safe)."""
        for attempt in range(2):
            headers = self.auth.headers()
            answer = self._send(method, path, body, headers)
            if answer.status_code != 401 or attempt:
                return answer
            self.auth.invalidate(headers["Authorization"].split(" ", 1)[1])
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The decoded JSON answer; ApiError(status, the API's message) for status >= 400."""
        answer = self.response(method, path, body)
        data = _json(answer)
        if answer.status_code >= 400:
            raise api_error(answer.status_code, data, self.settings.api + path)
        return data

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def logout(self, everywhere: bool = False) -> int | None:
        """Revoke the session (everywhere: every session of this identity, made with a new
        session if there is none) and forget it; how many the API revoked, None when there was
        no session to revoke."""
        token = self.auth.token
        if token is None and not everywhere:
            return None
        path = "/v1/session?all=1" if everywhere else "/v1/session"
        try:
            if token is None:
                return int(self.request("DELETE", path)["revoked"])
            answer = self._send("DELETE", path, None, {"Authorization": f"Bearer {token}"})
            if answer.status_code == 401 and not everywhere:
                return 0  # expired or revoked already
            if answer.status_code == 401:
                return int(self.request("DELETE", path)["revoked"])
            data = _json(answer)
            if answer.status_code >= 400:
                raise api_error(answer.status_code, data, self.settings.api + path)
            return int(data["revoked"])
        finally:
            self.auth.forget()


def _json(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None
