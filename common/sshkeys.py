"""SSH public keys: what a user may store and hand to VMs.

A key is one OpenSSH public key line, `<type> <base64 blob> [comment]`. The blob must decode
and name the same type as the line, so a truncated or mangled paste is refused at the API
instead of silently not working inside the VM. Options (`from=...`) and private keys are
refused: the line ends up in authorized_keys of the user's VMs.
"""

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from common.errors import InvalidInput

# type -> number of SSH wire-format strings in its blob (RFC 4253 6.6, RFC 5656, PROTOCOL.u2f)
KEY_FIELDS = {
    "ssh-ed25519": 2,
    "ssh-rsa": 3,
    "ecdsa-sha2-nistp256": 3,
    "ecdsa-sha2-nistp384": 3,
    "ecdsa-sha2-nistp521": 3,
    "sk-ssh-ed25519@openssh.com": 3,
    "sk-ecdsa-sha2-nistp256@openssh.com": 4,
}
KEY_TYPES = tuple(KEY_FIELDS)
MAX_LENGTH = 8192  # a 16384-bit RSA key is ~2.8 KB


@dataclass(frozen=True)
class PublicKey:
    type: str
    blob: bytes
    comment: str

    @property
    def line(self) -> str:
        """The normalised authorized_keys line."""
        text = f"{self.type} {base64.b64encode(self.blob).decode()}"
        return f"{text} {self.comment}" if self.comment else text

    @property
    def fingerprint(self) -> str:
        """As `ssh-keygen -l` prints it (SHA256, unpadded base64)."""
        digest = base64.b64encode(hashlib.sha256(self.blob).digest()).decode()
        return "SHA256:" + digest.rstrip("=")


def parse(text: str) -> PublicKey:
    """One public key line, or InvalidInput saying what is wrong with it."""
    if not isinstance(text, str):
        raise InvalidInput("key: expected the public key as a string")
    line = text.strip()
    if not line:
        raise InvalidInput("key: empty")
    if len(line) > MAX_LENGTH:
        raise InvalidInput(f"key: longer than {MAX_LENGTH} characters")
    if "PRIVATE KEY" in line:
        raise InvalidInput("key: this is a private key; give the public key (the .pub file)")
    if "\n" in line or "\r" in line:
        raise InvalidInput("key: one key per request (the text has several lines)")
    parts = line.split(None, 2)
    kind = parts[0]
    if kind not in KEY_TYPES:
        raise InvalidInput(
            f"key: unsupported key type {kind[:40]!r} (supported: {', '.join(KEY_TYPES)};"
            " authorized_keys options are not accepted)"
        )
    if len(parts) < 2:
        raise InvalidInput("key: the base64 key data is missing")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("key: the key data is not valid base64") from None
    fields = _fields(blob)
    if not fields or fields[0] != kind.encode() or len(fields) != KEY_FIELDS[kind]:
        raise InvalidInput(f"key: the key data is not a {kind} key (truncated or mixed up?)")
    comment = parts[2].strip() if len(parts) > 2 else ""
    if any(ord(c) < 32 or ord(c) == 127 for c in comment):
        raise InvalidInput("key: the comment contains control characters")
    return PublicKey(kind, blob, comment)


def _fields(blob: bytes) -> list[bytes] | None:
    """The blob as SSH wire-format strings (uint32 length + bytes), None unless it is exactly
    a sequence of them."""
    fields, offset = [], 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            return None
        (length,) = struct.unpack(">I", blob[offset : offset + 4])
        offset += 4
        if offset + length > len(blob):
            return None
        fields.append(blob[offset : offset + length])
        offset += length
    return fields
