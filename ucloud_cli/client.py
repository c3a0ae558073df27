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
        # Given with every request: requests lets REQUESTS_CA_BUNDLE override a Session's verify.
        self.verify: str | bool = settings.ca_file or True

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
                method, url, json=body, headers=headers, timeout=self.timeout, verify=self.verify
            )
        except requests.RequestException as error:
            raise _unreachable(self.settings.api, error, self.settings.ca_file) from None
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
