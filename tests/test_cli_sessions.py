"""The CLI's session cache: runs of ucloud-cli (real processes) against the API served over HTTP
share one session, the cache holds no seed, a refused session is renewed, logout revokes."""

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from werkzeug.serving import make_server

from common.store import keys
from tests.conftest import Api, make_config, serving_api
from tests.test_sessions import fresh_step, totp_headers
from ucloud_aio.procs import free_port

ROOT = Path(__file__).parent.parent


@pytest.fixture
def served(store, etcd_server, tmp_path) -> Iterator[tuple[Api, str]]:
    """The API app over real HTTP on a free loopback port."""
    with serving_api(store, make_config(etcd_server, tmp_path), tmp_path) as api:
        port = free_port()
        server = make_server("127.0.0.1", port, api.app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield api, f"http://127.0.0.1:{port}"
        finally:
            server.shutdown()
            thread.join(5)


def user_env(api: Api, url: str, name: str, cache: Path) -> dict[str, str]:
    seed = api.user(name).seed
    environ = {k: v for k, v in os.environ.items() if not k.startswith("UCLOUD_")}
    return {
        **environ,
        "UCLOUD_CONFIG": "/nonexistent",
        "UCLOUD_API": url,
        "UCLOUD_NAME": name,
        "UCLOUD_REALM": "users",
        "UCLOUD_SEED": seed,
        "XDG_CACHE_HOME": str(cache),
    }


def start(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ucloud_cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ucloud_cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def sessions_of(api: Api, name: str) -> list[str]:
    return [e.key for e in api.store.list(keys.SESSION).entries if e.value["name"] == name]


def test_cli_runs_in_one_step_share_one_cached_session(served, tmp_path: Path) -> None:
    """Before: every run sent the current code; now the second would be refused as a replay,
    so runs share a session from the cache (a lock file makes the others wait for the first)."""
    api, url = served
    cache = tmp_path / "cache"
    env = user_env(api, url, "alice", cache)
    fresh_step()
    runs = [start(env, "vm", "list", "--json") for _ in range(3)]
    for process in runs:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert json.loads(out) == []
    assert len(sessions_of(api, "alice")) == 1
    assert run(env, "network", "list", "--json").returncode == 0
    assert len(sessions_of(api, "alice")) == 1
    # the cache: a 0700 directory, one 0600 file with the token, never the seed
    directory = cache / "ucloud" / "sessions"
    assert directory.stat().st_mode & 0o777 == 0o700
    files = list(directory.iterdir())
    assert [f.suffix for f in files] == [".json"]
    assert files[0].stat().st_mode & 0o777 == 0o600
    text = files[0].read_text()
    assert env["UCLOUD_SEED"] not in text
    assert set(json.loads(text)) == {"token", "expires", "step"}


def test_runs_with_separate_caches_in_one_step_both_get_in(served, tmp_path: Path) -> None:
    """Two machines (two caches) start a session in the same 30 s step: the one whose code was
    taken uses the next step's code instead of failing."""
    api, url = served
    env = user_env(api, url, "alice", tmp_path / "one")
    other = {**env, "XDG_CACHE_HOME": str(tmp_path / "two")}
    fresh_step()
    runs = [start(env, "vm", "list"), start(other, "vm", "list")]
    for process in runs:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    assert len(sessions_of(api, "alice")) == 2


def test_a_refused_session_is_renewed(served, tmp_path: Path) -> None:
    api, url = served
    env = user_env(api, url, "alice", tmp_path / "cache")
    fresh_step()
    assert run(env, "vm", "list").returncode == 0
    [first] = sessions_of(api, "alice")
    api.store.delete(first)  # revoked behind the CLI's back (or expired)
    again = run(env, "vm", "list")
    assert again.returncode == 0, again.stderr
    assert len(sessions_of(api, "alice")) == 1 and sessions_of(api, "alice") != [first]


def test_logout_revokes_and_forgets(served, tmp_path: Path) -> None:
    api, url = served
    cache = tmp_path / "cache"
    env = user_env(api, url, "alice", cache)
    start = fresh_step()
    assert run(env, "vm", "list").returncode == 0
    token = json.loads(next((cache / "ucloud" / "sessions").glob("*.json")).read_text())["token"]
    done = run(env, "logout")
    assert done.returncode == 0 and "1 session(s) revoked" in done.stdout, done.stderr
    assert sessions_of(api, "alice") == []
    # the file forgets the token, and keeps the step of the code spent (not to replay it)
    [kept] = (cache / "ucloud" / "sessions").glob("*.json")
    assert "token" not in json.loads(kept.read_text())
    refused = api.app.test_client().get("/v1/vm", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    again = run(env, "logout")
    assert again.returncode == 0 and "no session to revoke" in again.stdout
    # --all: every session of the identity, from anywhere
    assert run(env, "vm", "list").returncode == 0  # the next step's code: this one is spent
    seed = env["UCLOUD_SEED"]
    elsewhere = api.app.test_client().post(
        "/v1/session", headers=totp_headers("alice", "users", pyotp.TOTP(seed).at(start - 30))
    )
    assert elsewhere.status_code == 201 and len(sessions_of(api, "alice")) == 2
    everywhere = run(env, "logout", "--all")
    assert everywhere.returncode == 0 and "2 session(s) revoked" in everywhere.stdout
    assert sessions_of(api, "alice") == []
    other = {"Authorization": f"Bearer {elsewhere.json['token']}"}
    assert api.app.test_client().get("/v1/vm", headers=other).status_code == 401
