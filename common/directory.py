"""Users and their ssh public keys from an LDAP directory (python-ldap).

Entries are found by `(<user attribute>=<name>)` under the base DN; their `sshPublicKey` values
(the openssh-lpk schema) are the user's directory keys. An unreachable directory is an
`Unavailable` error naming its URI, never a crash and never the bind password, so callers can
fall back to what they last read. One connection is kept and re-opened when the server dropped
it, so a restarted server is picked up without restarting ucloud.
"""

import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ldap
import ldap.filter

from common.errors import Unavailable

if TYPE_CHECKING:
    from common.config import Config

log = logging.getLogger(__name__)

KEY_ATTRIBUTE = "sshPublicKey"


@dataclass(frozen=True)
class DirectoryUser:
    """One directory entry: the user's name and the ssh public keys stored with it."""

    name: str
    ssh_keys: tuple[str, ...]  # the entry's sshPublicKey values, stripped, as text


class LdapDirectory:
    """Read-only access to the users under `base_dn`; safe to share between threads.

    python-ldap connections must not be used by two threads at once, and opening one per request
    would bind on every API call, so one connection is kept behind a lock. `timeout` bounds the
    TCP connect, the bind and each search, so a hung directory costs a request about `timeout`
    seconds, not forever.
    """

    def __init__(
        self,
        uri: str,
        base_dn: str,
        bind_dn: str = "",
        bind_password: str = "",
        user_attribute: str = "uid",
        timeout: float = 2.0,
    ) -> None:
        if not timeout > 0:  # libldap reads 0 or less as "wait forever"
            raise ValueError(f"LDAP timeout must be positive, got {timeout}")
        self.uri = uri
        self.base_dn = base_dn
        self.bind_dn = bind_dn
        self._password = bind_password  # only ever passed to the bind, never into a message
        self.user_attribute = user_attribute
        self.timeout = timeout
        self._connection: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # without the password, should one end up in a log
        return f"LdapDirectory({self.uri!r}, {self.base_dn!r}, bind_dn={self.bind_dn!r})"

    @classmethod
    def from_config(cls, config: "Config") -> "LdapDirectory | None":
        """The configured directory, None when `ldap_uri` is empty (no directory)."""
        if not config.ldap_uri:
            return None
        return cls(
            config.ldap_uri,
            config.ldap_base_dn,
            config.ldap_bind_dn,
            config.ldap_bind_password,
            config.ldap_user_attribute,
            config.ldap_timeout,
        )

    def user(self, name: str) -> DirectoryUser | None:
        """The user's entry, None when the directory has no such user.

        The directory matches case-insensitively (uid is caseIgnoreMatch); only an entry with a
        value exactly equal to `name` counts, so "Carol" never gets carol's keys. Two entries
        claiming the same name are ambiguous: neither one's keys are handed out.
        """
        escaped = ldap.filter.escape_filter_chars(name)
        matches = [
            (dn, attributes)
            for dn, attributes in self._search(f"({self.user_attribute}={escaped})")
            if name.encode() in attributes.get(self.user_attribute.lower(), [])
        ]
        if len(matches) > 1:
            dns = ", ".join(dn for dn, _ in matches)
            log.warning("LDAP directory %s: %r names %s: none used", self.uri, name, dns)
            return None
        return DirectoryUser(name, self._keys(matches[0][1])) if matches else None

    def users(self) -> list[DirectoryUser]:
        """Every entry under the base DN with the user attribute, named by its first value."""
        found = []
        for _, attributes in self._search(f"({self.user_attribute}=*)"):
            try:
                name = attributes[self.user_attribute.lower()][0].decode()
            except (KeyError, IndexError, UnicodeDecodeError):
                continue
            found.append(DirectoryUser(name, self._keys(attributes)))
        return found

    def close(self) -> None:
        """Unbinds; a later call opens a new connection."""
        with self._lock:
            self._drop()

    def _search(self, query: str) -> list[tuple[str, dict[str, list[bytes]]]]:
        """Entries (dn, attributes by lowercase name) matching `query`, or Unavailable.

        A kept connection the server has closed (restart, idle timeout) fails with SERVER_DOWN
        on first use: that one is retried once on a fresh connection. A fresh connection failing
        is not retried, so an unreachable directory costs one timeout, not two.
        """
        with self._lock:
            reused = self._connection is not None
            try:
                return self._search_once(query)
            except ldap.SERVER_DOWN as error:
                self._drop()
                if not reused:
                    raise self._unavailable(error) from None
                log.info("LDAP directory %s closed the connection: reconnecting", self.uri)
            except ldap.LDAPError as error:
                self._drop()
                raise self._unavailable(error) from None
            try:
                return self._search_once(query)
            except ldap.LDAPError as error:
                self._drop()
                raise self._unavailable(error) from None

    def _search_once(self, query: str) -> list[tuple[str, dict[str, list[bytes]]]]:
        if self._connection is None:
            self._connection = self._connect()
        results = self._connection.search_st(
            self.base_dn,
            ldap.SCOPE_SUBTREE,
            query,
            [self.user_attribute, KEY_ATTRIBUTE],
            timeout=self.timeout,
        )
        # Referrals come back as (None, [urls]): not followed, not entries. Attribute names are
        # lowered: servers may spell them differently from the configuration ("UID", "uid").
        return [
            (dn, {name.lower(): values for name, values in attrs.items()})
            for dn, attrs in results
            if dn is not None and isinstance(attrs, dict)
        ]

    def _connect(self) -> Any:
        try:
            connection = ldap.initialize(self.uri)
        except ldap.LDAPError:
            raise Unavailable(f"LDAP directory {self.uri!r}: not a valid LDAP URI") from None
        connection.set_option(ldap.OPT_NETWORK_TIMEOUT, self.timeout)  # TCP connect
        connection.set_option(ldap.OPT_TIMEOUT, self.timeout)  # waiting for any answer
        connection.set_option(ldap.OPT_REFERRALS, 0)
        connection.protocol_version = ldap.VERSION3
        connection.simple_bind_s(self.bind_dn, self._password)  # "" and "": anonymous
        return connection

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(ldap.LDAPError):
                self._connection.unbind_s()
            self._connection = None

    def _unavailable(self, error: ldap.LDAPError) -> Unavailable:
        """The error for callers: the URI and python-ldap's description, nothing of the
        request (the bind password is never part of it)."""
        if isinstance(error, ldap.TIMEOUT):
            reason = f"no answer within {self.timeout:g} s"
        elif isinstance(error, ldap.NO_SUCH_OBJECT):  # a configuration error, not "no users"
            reason = f"base DN {self.base_dn!r} not found"
        else:
            details = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
            reason = str(details.get("desc") or type(error).__name__)
            if details.get("info"):  # the server's diagnostic, e.g. why a bind was refused
                reason += f" ({details['info']})"
        return Unavailable(f"LDAP directory {self.uri} unavailable: {reason}")

    @staticmethod
    def _keys(attributes: dict[str, list[bytes]]) -> tuple[str, ...]:
        """The entry's sshPublicKey values as text; undecodable or blank values are skipped."""
        keys = []
        for raw in attributes.get(KEY_ATTRIBUTE.lower(), []):
            try:
                text = raw.decode().strip()
            except UnicodeDecodeError:
                continue
            if text:
                keys.append(text)
        return tuple(keys)
