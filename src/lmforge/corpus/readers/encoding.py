"""Text encoding detection for Chinese-heavy inputs: UTF-8 first, else GB18030 or Big5.

Detection looks at a sample (the first 64 KB); the file is then decoded line by line with
the detected codec, so a few bad bytes cost only the lines that hold them.
"""

from __future__ import annotations

import codecs
import re

CANDIDATES = ("utf-8", "gb18030", "big5")  # GB18030 is a superset of GBK and GB2312
_ASCII = bytes(range(128))
_CONTROL = bytes([*range(0x09), *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])  # not \t\n\v\f\r ESC
_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes surrogateescape could not decode
_NUL_AND_CONTROL = b"\x00" + _CONTROL
# A text file with a stray NUL or control byte is still text; binary formats (images,
# archives, executables, numeric arrays) hold a control byte in every ~10 (bytes(range(256))
# is 10.5 %; PNG/ZIP/ELF measured 8-40 %). Hand-written: the two libraries at hand decide
# "binary" on a single NUL (git's heuristic) or only as a side effect of full detection.
BINARY_CONTROL_SHARE = 0.05
BINARY_MIN_CONTROLS = 3  # below this a sample is judged text (a 9-byte file with one NUL)
# Checked longest first: the UTF-32 LE BOM starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def codec_name(encoding: str) -> str:
    """Python's canonical name of a codec ('GBK' -> 'gbk', 'utf8' -> 'utf-8'); LookupError if unknown."""
    return codecs.lookup(encoding).name


def bom_encoding(sample: bytes) -> str | None:
    """The codec a byte-order mark at the start of `sample` names (UTF-8/16/32), else None.
    The codec consumes the mark itself when decoding."""
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name
    return None


def control_bytes(sample: bytes) -> int:
    """Number of NUL and other control bytes (not tab, newlines, form feed, ESC)."""
    return len(sample) - len(sample.translate(None, _NUL_AND_CONTROL))


def looks_binary(sample: bytes) -> bool:
    """True when the share of control bytes says "not text" (a BOM says text).

    One NUL in a text file is a damaged line, not a binary file: the line is read (and the
    normalize step drops the control character) instead of losing the whole file."""
    if bom_encoding(sample) is not None:
        return False
    controls = control_bytes(sample)
    return controls >= BINARY_MIN_CONTROLS and controls > BINARY_CONTROL_SHARE * len(sample)


def needs_transcoding(encoding: str) -> bool:
    """True for codecs in which a newline is not the single byte b"\\n" (UTF-16/32): their
    lines cannot be split on bytes, so the stream is transcoded to UTF-8 first."""
    return "\n".encode(encoding) != b"\n"


def _trim_cut_char(sample: bytes) -> bytes:
    """Drop a multi-byte character the sample boundary may have cut in half."""
    cut = sample.rfind(b"\n")
    if cut >= len(sample) // 2:
        return sample[: cut + 1]
    return sample[:-3] if len(sample) > 3 else sample


def _errors(sample: bytes, encoding: str) -> int:
    """Number of undecodable byte sequences in `sample` under `encoding`."""
    return len(_ESCAPED.findall(sample.decode(encoding, errors="surrogateescape")))


def detect_encoding(sample: bytes, *, complete: bool = False) -> str | None:
    """The codec to read a text file with, from its first bytes; None if it is not text.

    `complete` says the sample is the whole file (so its end is not a cut character).
    Order: a UTF-8 BOM; valid UTF-8 (also when a few bytes are invalid but most non-ASCII
    characters decode: an UTF-8 file with some damage); charset-normalizer restricted to
    UTF-8 / GB18030 / Big5 (GB18030 and Big5 byte ranges overlap, so strict decoding alone
    cannot tell them apart; its coherence check can); else the candidate with the fewest
    errors, if they are rare; else UTF-8 for text (its bad lines are then counted) and None
    for binary-looking bytes (control characters). A UTF-16/32 byte-order mark names its
    codec; without one, a high share of NUL and control bytes (:func:`looks_binary`) means
    binary, while a few stray ones leave the text readable.
    """
    bom = bom_encoding(sample)
    if bom is not None:
        return bom
    if looks_binary(sample):
        return None
    if not complete:
        sample = _trim_cut_char(sample)
    if not sample:
        return "utf-8"
    text = sample.decode("utf-8", errors="surrogateescape")
    bad = len(_ESCAPED.findall(text))
    if bad == 0:
        return "utf-8"
    non_ascii_chars = len(text) - len(text.encode("ascii", errors="ignore").decode())
    valid_multibyte = non_ascii_chars - bad
    # GB18030 / Big5 text read as UTF-8 has ~4-6 invalid sequences per valid one (measured on
    # the review corpus); UTF-8 with some damage has far more valid than invalid ones.
    if valid_multibyte >= 2 * bad:
        return "utf-8"
    from charset_normalizer import from_bytes

    best = from_bytes(sample, cp_isolation=["utf_8", "gb18030", "big5"]).best()
    if best is not None:
        name = codec_name(best.encoding)
        if name != "utf-8" and _errors(sample, name) == 0:
            return name
    errors = {name: _errors(sample, name) for name in CANDIDATES}
    name = min(CANDIDATES, key=lambda n: (errors[n], CANDIDATES.index(n)))
    non_ascii_bytes = len(sample.translate(None, _ASCII))
    if errors[name] <= max(1, non_ascii_bytes // 100):
        return name
    controls = control_bytes(sample)
    if controls * 100 > len(sample):
        return None
    # Text, but in none of the candidates (Latin-1, Shift-JIS...): read it as UTF-8, so
    # that each line that does not decode is counted and named.
    return "utf-8"


def html_declared_encoding(head: bytes) -> str | None:
    """The charset an HTML page declares in its first bytes (<meta charset=...>), if Python
    knows it; GB2312/GBK are read as GB18030, their superset."""
    match = re.search(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", head, re.I)
    if not match:
        return None
    return normalize_declared(match.group(1).decode("ascii"))


def normalize_declared(declared: str) -> str | None:
    """A declared charset (HTTP header, HTML meta) as a Python codec name, widened to the
    superset browsers actually use (GB2312/GBK -> GB18030, Big5 -> CP950)."""
    try:
        name = codec_name(declared.strip())
    except LookupError:
        return None
    return {"gb2312": "gb18030", "gbk": "gb18030", "big5": "cp950"}.get(name, name)
