"""A small REST client: computes the TOTP token per request, turns API errors into CliError."""

from typing import Any

import pyotp
import requests

from ucloud_cli.settings import Settings


class CliError(Exception):
    """Shown on stderr; the CLI exits non-zero."""


class Client:
    def __init__(self, settings: Settings, timeout: float = 30.0) -> None:
        self.settings = settings
        self.totp = pyotp.TOTP(settings.seed)
        self.timeout = timeout
        self.http = requests.Session()

    def request(self, method: str, path: str, body: Any = None) -> Any:
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
            raise CliError(f"cannot reach the API at {self.settings.api}: {error}") from None
        try:
            data = answer.json()
        except ValueError:
            data = None
        if answer.status_code >= 400:
            message = data.get("error") if isinstance(data, dict) else None
            raise CliError(message or f"HTTP {answer.status_code} from {url}")
        return data

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)
