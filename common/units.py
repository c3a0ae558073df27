"""Size parsing: "2GB", "512MiB", "10 GiB" or an integer of bytes -> integer of bytes.

Decimal prefixes (kB, MB, GB, TB) are powers of 1000 and binary prefixes (KiB, MiB, GiB, TiB) powers
of 1024, as SI and IEC define them; a bare number is bytes. Units are case-insensitive, so "2gb" is
"2GB". Fractions are allowed ("1.5GiB") and rounded down to whole bytes.
"""

import re

_FACTORS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", re.ASCII)  # "٦٤MiB" is no size


def parse_size(value: object, what: str = "size") -> int:
    """Return the size in bytes; raise ValueError with a message naming `what` on bad input."""
    if isinstance(value, bool):
        raise ValueError(
            f"{what}: expected a size like '2GB' or an integer of bytes, got {value!r}"
        )
    number: int | str
    if isinstance(value, int):
        number, unit = value, ""
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if not match:
            raise ValueError(f"{what}: cannot parse {value!r} as a size (examples: 2GB, 512MiB)")
        number, unit = match.group(1), match.group(2).lower()
    else:
        raise ValueError(
            f"{what}: expected a size like '2GB' or an integer of bytes, got {value!r}"
        )
    if unit not in _FACTORS:
        raise ValueError(
            f"{what}: unknown unit {unit!r} (use B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        )
    if isinstance(number, str) and "." in number:
        whole, frac = number.split(".")
        size = int(whole) * _FACTORS[unit] + int(frac) * _FACTORS[unit] // 10 ** len(frac)
    else:
        size = int(number) * _FACTORS[unit]
    if size <= 0:
        raise ValueError(f"{what}: must be greater than zero, got {value!r}")
    return size


def format_size(size: int) -> str:
    """Human form for tables: the largest binary unit that gives a number >= 1 ("2 GiB")."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            number = size / factor
            text = f"{number:.1f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
    return f"{size} B"
