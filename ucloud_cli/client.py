"""A small REST client: computes the TOTP token per request, turns HTTP errors into ApiError.
Its errors are CliErrors, which __main__ prints as `error: <message>` (exit status 1)."""

from typing import Any

import pyotp
import requests

from common.errors import UcloudError
from ucloud_cli.settings import Settings


class CliError(UcloudError):
    """Something the user has to read; a UcloudError, so the project's errors have one base."""


class ApiUnreachable(CliError):
    """No HTTP answer at all (refused, unresolvable, timed out): distinct from an API refusal."""


class ApiError(CliError):
    """The API answered with an HTTP error. Callers decide by `status`, never by the message,
    which is the API's to reword."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Client:
    """The API as one user: a fresh TOTP token on every request, as the API wants."""

    def __init__(self, settings: Settings, timeout: float = 30.0) -> None:
        self.settings = settings
        self.totp = pyotp.TOTP(settings.seed)
        self.timeout = timeout
        self.http = requests.Session()

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The decoded JSON answer; ApiError(status, the API's message) for status >= 400."""
        headers = {
            "X-Ucloud-Name": self.settings.name,
            "X-Ucloud-Realm": self.settings.realm,
            "X-Ucloud-Token": self.totp.now(),
        }
        url = self.settings.api + path
        try:
            answer = self.http.request(
                method, url, json=body, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as error:
            raise ApiUnreachable(f"cannot reach the API at {self.settings.api}: {error}") from None
        try:
            data = answer.json()
        except ValueError:
            data = None
        if answer.status_code >= 400:
            message = data.get("error") if isinstance(data, dict) else None
            raise ApiError(answer.status_code, message or f"HTTP {answer.status_code} from {url}")
        return data

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)
