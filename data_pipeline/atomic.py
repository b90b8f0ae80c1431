"""Outputs that appear whole or not at all.

Every file a command writes goes first to a temporary file in the destination folder (same file
system, so the final ``os.replace`` is atomic) and is renamed into place only when the whole command
succeeded; on any error the temporaries are removed and no file with a final name is touched. Parent
folders are created (and removed again, when they were new and are still empty, if the command fails). An unknown extension is refused up front with a ``ConfigError`` naming the
option and the accepted extensions, before any work is done.

Several outputs of one command (say ``plan.json`` and its ``--plot``) are committed together by
``AtomicOutputs``: none is renamed until every writer has finished.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from data_pipeline.errors import ConfigError


def _default_file_mode() -> int:
    """What ``open(path, "w")`` would give: 0666 less the umask (read once, at import)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()


def check_suffix(path: str | os.PathLike, suffixes: tuple[str, ...] | None, option: str) -> Path:
    """``path`` as a Path if its name ends in one of ``suffixes`` (case-insensitive); else a
    ConfigError naming ``option`` and the accepted extensions."""
    p = Path(path)
    if suffixes and not any(p.name.lower().endswith(s.lower()) for s in suffixes):
        raise ConfigError(option, f"{p}: unknown output extension; expected one of {', '.join(suffixes)}")
    if p.exists() and p.is_dir():
        raise ConfigError(option, f"{p} is a folder; expected a file name")
    return p


class AtomicOutputs:
    """Temporary paths for named outputs, renamed onto the final paths together on success.

    ``outputs`` maps a name (the CLI option, used in errors) to ``(path, accepted_suffixes)``; a None
    path is skipped. Use as a context manager: ``with AtomicOutputs({...}) as tmp: write(tmp["--out"])``.
    """

    def __init__(self, outputs: Mapping[str, tuple[str | os.PathLike | None, tuple[str, ...] | None]]) -> None:
        self.final: dict[str, Path] = {}
        for option, (path, suffixes) in outputs.items():
            if path is not None:
                self.final[option] = check_suffix(path, suffixes, option)
        self.tmp: dict[str, Path] = {}
        self.made: list[Path] = []  # folders this object created, removed again on failure

    def __enter__(self) -> dict[str, Path]:
        try:
            for option, final in self.final.items():
                missing = [p for p in (final.parent, *final.parent.parents) if not p.exists()]
                final.parent.mkdir(parents=True, exist_ok=True)
                self.made += missing
                # Keep the final suffix: writers such as matplotlib pick the format from it.
                fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{final.suffix}", dir=final.parent)
                os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; the output is an ordinary file
                os.close(fd)
                self.tmp[option] = Path(tmp)
        except OSError as exc:
            self._cleanup()
            raise ConfigError(option, f"cannot write {final}: {exc.strerror or exc}") from None
        return dict(self.tmp)

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self._cleanup()
            return False
        for option, tmp in self.tmp.items():
            if not tmp.exists() or tmp.stat().st_size == 0:
                self._cleanup()
                raise ConfigError(option, f"nothing was written to {self.final[option]}")
        for option, tmp in self.tmp.items():
            os.replace(tmp, self.final[option])
        self.tmp.clear()
        self.made.clear()
        return False

    def _cleanup(self) -> None:
        for tmp in self.tmp.values():
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
        self.tmp.clear()
        for folder in self.made:  # deepest first: a failed command leaves no new folder either
            try:
                folder.rmdir()
            except OSError:  # not empty (something else wrote there) or already gone
                pass
        self.made.clear()


@contextmanager
def atomic_path(path: str | os.PathLike, suffixes: tuple[str, ...] | None = None, option: str = "--out") -> Iterator[Path]:
    """One output: yields a temporary path; on success it replaces ``path``."""
    with AtomicOutputs({option: (path, suffixes)}) as tmp:
        yield tmp[option]


def write_text_atomic(path: str | os.PathLike, text: str, option: str = "--out") -> Path:
    with atomic_path(path, None, option) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any, option: str = "--json", **dumps: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, **{"indent": 2, **dumps}), option)
