"""common/directory.py against a real slapd: users, keys, filter escaping, down and back."""

import time

import pytest

from common.directory import LdapDirectory
from common.errors import Unavailable
from tests.slapd import Slapd
from tests.test_ssh_keys import make_key


def directory(slapd: Slapd, **options: object) -> LdapDirectory:
    return LdapDirectory(slapd.uri, slapd.base_dn, slapd.bind_dn, slapd.bind_password, **options)


def test_users_and_keys(slapd: Slapd) -> None:
    slapd.add_user("carol", [make_key(1), make_key(2)])
    slapd.add_user("dave", [])
    users = directory(slapd)
    carol = users.user("carol")
    assert carol is not None and carol.ssh_keys == (make_key(1), make_key(2))
    assert users.user("dave").ssh_keys == ()
    assert users.user("nobody") is None
    assert sorted(u.name for u in users.users()) == ["carol", "dave"]
    for hostile in ("*", "carol)(uid=*", "c*", "\\2a"):
        assert users.user(hostile) is None  # escaped: never matches other entries
    users.close()


def test_down_and_back(slapd: Slapd) -> None:
    slapd.add_user("carol", [make_key(1)])
    users = directory(slapd, timeout=1.0)
    assert users.user("carol") is not None
    slapd.stop()
    started = time.monotonic()
    with pytest.raises(Unavailable) as error:
        users.user("carol")
    assert time.monotonic() - started < 2.0
    assert slapd.uri in error.value.message and slapd.bind_password not in error.value.message
    slapd.start()
    assert users.user("carol").ssh_keys == (make_key(1),)
    users.close()


def test_wrong_password_is_unavailable_without_the_password(slapd: Slapd) -> None:
    users = LdapDirectory(slapd.uri, slapd.base_dn, slapd.bind_dn, "not-the-password")
    with pytest.raises(Unavailable) as error:
        users.user("carol")
    assert "not-the-password" not in error.value.message and "Invalid credentials" in str(
        error.value.message
    )
