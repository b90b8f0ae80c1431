"""Bytes before text: binary data, encodings, and where a bad byte is (offset, line, column).

A file (or block) holding control bytes other than tab, CR and newline is named as binary data at
its byte offset and line before any field is parsed, and a byte that does not decode in the
declared ``encoding`` is named the same way. Other encodings than UTF-8 (polars reads only UTF-8)
are transcoded by the readers; they must be ASCII-compatible, so that newlines and separators are
the same bytes.
"""

from __future__ import annotations

import codecs
import os
import re
from pathlib import Path

import numpy as np

from data_pipeline.errors import ConfigError, DataFormatError

DEFAULT_ENCODING = "utf-8"
SNIFF_BYTES = 1 << 16  # how much of a file is checked for binary data before parsing starts
# C0 control characters other than tab, LF and CR: never in text logs; NUL marks binary files,
# and the unit separator would also break the one-string-per-line read below.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_ASCII_PROBE = "\t\n\r ,;:|\"'{}[]0123456789abcdefxyzABCDEFXYZ.-_"


def check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataFormatError(p, "file not found", expected="an existing file")
    if p.is_dir():
        raise DataFormatError(p, "is a folder", expected="a file")
    if p.stat().st_size == 0:
        raise DataFormatError(p, "file is empty", expected="at least one row", found="0 bytes")
    return p


def check_encoding(encoding: str | None) -> str:
    """The codec's canonical name (``utf-8``, ``iso8859-1``, ...). Unknown codecs, and codecs in
    which newline, tab and ASCII digits are not single ASCII bytes (UTF-16/32), are a ConfigError:
    the readers cut files into lines on the byte ``\\n``."""
    name = encoding or DEFAULT_ENCODING
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise ConfigError(
            "--encoding", f"unknown encoding {name!r}; expected a codec name such as utf-8, latin-1 or cp1252"
        ) from None
    try:
        compatible = _ASCII_PROBE.encode(info.name) == _ASCII_PROBE.encode("ascii")
    except (UnicodeError, LookupError):
        compatible = False
    if not compatible:
        raise ConfigError(
            "--encoding", f"{name!r} is not ASCII-compatible; convert the file to UTF-8 first (e.g. with iconv)"
        )
    return info.name


def is_utf8(encoding: str | None) -> bool:
    return check_encoding(encoding) == "utf-8"


def check_text_file(path: str | os.PathLike, encoding: str | None = DEFAULT_ENCODING) -> Path:
    """``check_file`` plus a look at the first 64 KiB: binary data or bytes that do not decode are
    named (byte offset, line, column) before any parsing, so a wrong file gets one clear line."""
    p = check_file(path)
    with open(p, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    check_text_bytes(p, head, encoding=encoding, complete=len(head) < SNIFF_BYTES)
    return p


def check_text_bytes(
    path: str | os.PathLike,
    data: bytes,
    *,
    offset: int = 0,
    first_line: int = 1,
    encoding: str | None = DEFAULT_ENCODING,
    complete: bool = True,
) -> None:
    """Raise a DataFormatError at the first control byte or undecodable byte of ``data`` (which
    starts at byte ``offset``, line ``first_line`` of the file). ``complete=False``: ``data`` may
    end inside a multi-byte character, which is not an error."""
    arr = np.frombuffer(data, dtype=np.uint8)
    low = arr < 0x20
    if np.count_nonzero(low) != sum(data.count(c) for c in (b"\t", b"\n", b"\r")):
        bad = np.flatnonzero(low & (arr != 0x09) & (arr != 0x0A) & (arr != 0x0D))
        raise _byte_error(path, data, int(bad[0]), offset, first_line, "binary data, not text", "text")
    enc = check_encoding(encoding)
    try:
        data.decode(enc)
    except UnicodeDecodeError as err:
        if complete or err.start < len(data) - 4:
            raise _byte_error(path, data, err.start, offset, first_line, None, _encoding_hint(enc)) from None


def _encoding_hint(encoding: str) -> str:
    if encoding == "utf-8":
        return "UTF-8 text (pass the file's encoding with --encoding, e.g. --encoding latin-1)"
    return f"text in {encoding} (the --encoding given)"


def _byte_error(
    path, data: bytes, pos: int, offset: int, first_line: int, message: str | None, expected: str
) -> DataFormatError:
    line_start = data.rfind(b"\n", 0, pos) + 1
    line = first_line + data.count(b"\n", 0, pos)
    return DataFormatError(
        path,
        message,
        line=line,
        expected=expected,
        found=f"byte 0x{data[pos]:02x} at byte offset {offset + pos} (column {pos - line_start + 1})",
    )


def find_text_error(path: str | os.PathLike, encoding: str | None = DEFAULT_ENCODING) -> DataFormatError | None:
    """The first binary or undecodable byte of a whole file, read block by block (a diagnosis for
    when a parser failed), or None if the file is clean text."""
    offset, line, carry = 0, 1, b""
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            data = carry + chunk
            cut = data.rfind(b"\n") + 1 or len(data)
            whole, carry = data[:cut], data[cut:]
            try:
                check_text_bytes(path, whole, offset=offset, first_line=line, encoding=encoding)
            except DataFormatError as exc:
                return exc
            offset += len(whole)
            line += whole.count(b"\n")
        if carry:
            try:
                check_text_bytes(path, carry, offset=offset, first_line=line, encoding=encoding)
            except DataFormatError as exc:
                return exc
    return None
