"""PII masking: URLs, e-mails, resident ID numbers, bank cards, mainland-China mobiles, IPv4.

One combined regex scans each document once (documents with no digit, "@" or "www"
are skipped by a cheap check); a candidate is masked only if it passes validation:

- ``<ID_CARD>``: 18-character resident ID, ISO 7064 MOD 11-2 check character, a real
  birth date between 1900 and today, region code not starting with 0;
- ``<BANK_CARD>``: 16–19 digits (optionally grouped by spaces or dashes), first digit
  3–6 (card networks: UnionPay 62, Visa 4, Mastercard 5, JCB / Amex 3) and a valid Luhn
  check digit;
- ``<PHONE>``: 1[3-9] + 9 digits, optional +86 / 0086 / 86 prefix, optional space or dash
  groups 3-4-4; never inside a longer run of digits;
- ``<IP>``: dotted quad with every octet 0–255 and no leading zeros, not part of a longer
  dotted number;
- ``<EMAIL>``, ``<URL>``: by shape (URLs: http(s)/ftp scheme or www.).

A digit run that fails every check (a random 18-digit number with a wrong checksum) is
left as it is. Counters: ``pii:<type>`` and ``changed``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import BaseModel

from lmforge.corpus.step import TextStep

PLACEHOLDERS = {
    "url": "<URL>",
    "email": "<EMAIL>",
    "id_card": "<ID_CARD>",
    "bank_card": "<BANK_CARD>",
    "phone": "<PHONE>",
    "ip": "<IP>",
}

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_PATTERN = re.compile(
    r"(?P<url>(?:[Hh][Tt][Tt][Pp][Ss]?://|[Ff][Tt][Pp]://|[Ww]{3}\.)[A-Za-z0-9\-._~:/?#\[\]@!$&'*+,;=%]+[A-Za-z0-9/#=_\-])"
    r"|(?P<email>(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})"
    r"|(?P<id_card>(?<![0-9A-Za-z])[1-9][0-9]{16}[0-9Xx](?![0-9A-Za-z]))"
    r"|(?P<phone>(?<![0-9+])(?:(?:\+|00)?86[ \-]?)?1[3-9][0-9](?:[ \-]?[0-9]{4}){2}(?![0-9]))"
    r"|(?P<bank_card>(?<![0-9])[3-6][0-9]{3}(?:[ \-]?[0-9]{4}){2}(?:[ \-]?[0-9]{1,4}){1,2}(?![0-9]))"
    r"|(?P<ip>(?<![0-9.])" + _OCTET + r"(?:\." + _OCTET + r"){3}(?![0-9]|\.[0-9]))"
)
# every PII shape needs "@", "://", "www." or 7+ characters of digits / separators
_GATE = re.compile(r"@|://|[Ww]{3}\.|[0-9][0-9 .\-]{6}")

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def valid_id_card(number: str) -> bool:
    """18-character mainland resident ID: MOD 11-2 check character and a plausible birth date."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    if _ID_CHECK[total % 11] != number[17].upper():
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return date(1900, 1, 1) <= born <= date.today()


def luhn_ok(digits: str) -> bool:
    """Luhn (mod 10) check over a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def valid_bank_card(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    return 16 <= len(digits) <= 19 and digits.isdigit() and digits[0] in "3456" and luhn_ok(digits)


class PiiConfig(BaseModel, extra="forbid"):
    """Which PII types are masked (all by default)."""

    type: Literal["pii"] = "pii"
    enabled: bool = True
    url: bool = True
    email: bool = True
    id_card: bool = True
    bank_card: bool = True
    phone: bool = True
    ip: bool = True


class Pii(TextStep):
    name = "pii"

    def __init__(self, config: PiiConfig | None = None) -> None:
        self.config = config or PiiConfig()
        self._on = {k for k in PLACEHOLDERS if getattr(self.config, k)}

    def mask(self, text: str, counts: dict[str, int] | None = None) -> str:
        """``text`` with every validated PII span replaced by its placeholder."""
        if not self._on or not _GATE.search(text):
            return text
        counts = {} if counts is None else counts
        on = self._on

        def repl(m: re.Match) -> str:
            kind = m.lastgroup
            value = m.group()
            if kind == "id_card" and not valid_id_card(value):
                # an 18-digit run that is no ID may still be a card number
                kind = "bank_card" if value.isdigit() else None
            if kind == "bank_card" and not valid_bank_card(value):
                kind = None
            if kind is None or kind not in on:
                return value
            key = "pii:" + kind
            counts[key] = counts.get(key, 0) + 1
            return PLACEHOLDERS[kind]

        return _PATTERN.sub(repl, text)

    transform = mask


STEPS = {"pii": (PiiConfig, Pii)}
