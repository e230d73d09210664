"""Planet's INI dialect, as Python 2's ConfigParser read it for PlanetPlanet and Venus:
sections of raw values, ``%(key)s`` interpolation from [DEFAULT], and typed values whose
errors name the file, the section and the key. What the keys mean is :mod:`planet.config`'s.
"""

from __future__ import annotations

import configparser
import math
import re

__all__ = ["DEFAULT_SECTION", "ConfigError", "IniSections", "plural", "read_sections"]

DEFAULT_SECTION = "DEFAULT"
_TRUE = frozenset({"1", "yes", "true", "on"})
_FALSE = frozenset({"0", "no", "false", "off"})
# Python 2's ConfigParser stopped after 10 rounds of substitution; so do we.
_MAX_INTERPOLATION_DEPTH = 10
# `%(name)s`, a literal `%%`, or a `%(` that starts no valid reference (an error).
_INTERPOLATION_RE = re.compile(r"%\(([^)]*)\)s|%%|%\(")
_REFERENCE_RE = re.compile(r"%\(([^)]*)\)s")
# Python 2 also took a line whose first word is `rem` as a comment.
_REM_LINE_RE = re.compile(r"^[rR][eE][mM](?=\s|$).*$", re.MULTILINE)
_INTEGER_RE = re.compile(r"[+-]?[0-9]+")
_SIZE_RE = re.compile(r"([0-9]+)\s*(?:([kmg])(?:i?b)?|b)?", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# A header can never contain a newline, so with this as configparser's default section,
# [DEFAULT] stays an ordinary section and its keys can be told apart from a section's own.
_NO_DEFAULT_SECTION = "\n"


class ConfigError(Exception):
    """str(err) is one complete line naming the file, the section and the key."""


def read_sections(text: str, path: str) -> dict[str, dict[str, str]]:
    """Split ``text`` into sections of raw values, [DEFAULT] included, in file order."""
    parser = configparser.RawConfigParser(
        strict=False,
        inline_comment_prefixes=(";",),
        default_section=_NO_DEFAULT_SECTION,
        interpolation=None,
    )
    text = text.removeprefix("\ufeff")
    # Replaced by a comment rather than removed, so that line numbers stay right.
    text = _REM_LINE_RE.sub("#", text)
    try:
        parser.read_string(text, source=path)
    except configparser.MissingSectionHeaderError as e:
        raise ConfigError(
            f"{path}: line {e.lineno}: expected a [section] header before {_line(text, e.lineno)!r}"
        ) from None
    except configparser.ParsingError as e:
        lineno = e.errors[0][0] if e.errors else 0
        more = f" (and {plural(len(e.errors) - 1, 'more bad line')})" if len(e.errors) > 1 else ""
        raise ConfigError(
            f"{path}: line {lineno}: not a key = value line: {_line(text, lineno)!r}{more}"
        ) from None
    except configparser.Error as e:
        raise ConfigError(f"{path}: {' '.join(str(e).split())}") from None
    sections: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        # Python 2 read a value of exactly "" as empty.
        sections[section] = {
            key: "" if value == '""' else value for key, value in parser.items(section)
        }
    return sections


def _line(text: str, lineno: int) -> str:
    """Line ``lineno`` (1-based) of ``text``, split the way configparser splits it."""
    lines = text.split("\n")
    return lines[lineno - 1].rstrip("\r") if 0 < lineno <= len(lines) else ""


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class IniSections:
    """The sections of one file, read as typed values; every bad value a :class:`ConfigError`."""

    def __init__(self, path: str, sections: dict[str, dict[str, str]]) -> None:
        self.path = path
        self.sections = sections
        self.defaults = sections.pop(DEFAULT_SECTION, {})
        # A key some %(key)s refers to is used, even when planet has no use for it itself.
        self.referenced = {
            ref.lower()
            for values in (self.defaults, *sections.values())
            for value in values.values()
            for ref in _REFERENCE_RE.findall(value)
        }

    def _error(self, section: str, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: [{section}] {key}: {message}")

    def raw(self, section: str, key: str) -> str | None:
        """The uninterpolated value of ``key`` in ``section``, falling back to [DEFAULT]."""
        value = self.sections[section].get(key)
        return self.defaults.get(key) if value is None else value

    def get(self, section: str, key: str) -> str | None:
        """The interpolated value of ``key``, or None when it is not set."""
        value = self.raw(section, key)
        if value is None or "%(" not in value:
            return value
        return self._interpolate(section, key, value)

    def _interpolate(self, section: str, key: str, value: str) -> str:
        lookup = {**self.defaults, **self.sections[section], "__name__": section}

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "%%":
                return "%"
            ref = match.group(1)
            if ref is None:
                raise self._error(
                    section, key, f"bad %(...)s reference in {value!r} (use %% for a %)"
                )
            ref = ref.lower()
            if ref not in lookup:
                raise self._error(
                    section,
                    key,
                    f"%({ref})s refers to a key set neither in [{section}] nor in [DEFAULT]",
                )
            return lookup[ref]

        for _ in range(_MAX_INTERPOLATION_DEPTH):
            value = _INTERPOLATION_RE.sub(substitute, value)
            if "%(" not in value:
                return value
        raise self._error(
            section,
            key,
            f"%(...)s references nested more than {_MAX_INTERPOLATION_DEPTH} deep "
            "(does a key refer to itself?)",
        )

    def seconds(self, section: str, key: str, minimum: float = 0.0) -> float | None:
        """A positive, finite number of seconds, at least ``minimum``."""
        value = self.get(section, key)
        if not value:
            return None
        try:
            seconds = float(value.strip())
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds):
            raise self._error(section, key, f"expected a number of seconds, got {value!r}")
        if seconds <= 0:
            raise self._error(
                section, key, f"expected a number of seconds greater than 0, got {value!r}"
            )
        if seconds < minimum:
            raise self._error(section, key, f"expected at least {minimum:g} seconds, got {value!r}")
        return seconds

    def count(self, section: str, key: str, minimum: int) -> int | None:
        """A whole number of at least ``minimum``."""
        value = self.get(section, key)
        if not value:
            return None
        if not _INTEGER_RE.fullmatch(value.strip()):
            raise self._error(section, key, f"expected a whole number, got {value!r}")
        number = int(value.strip())
        if number < minimum:
            raise self._error(
                section, key, f"expected a whole number of at least {minimum}, got {value!r}"
            )
        return number

    def flag(self, section: str, key: str) -> bool | None:
        """A yes/no value, spelt as Python 2's ConfigParser.getboolean accepted it."""
        value = self.get(section, key)
        if not value:
            return None
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise self._error(
            section, key, f"expected yes or no (true/false, on/off, 1/0), got {value!r}"
        )

    def choice(self, section: str, key: str, choices: tuple[str, ...]) -> str | None:
        """One of ``choices``, case-insensitively; returned as spelt in ``choices``."""
        value = self.get(section, key)
        if not value:
            return None
        for choice in choices:
            if value.strip().upper() == choice:
                return choice
        raise self._error(section, key, f"expected one of {', '.join(choices)}, got {value!r}")

    def size(self, section: str, key: str) -> int | None:
        """A positive number of bytes, optionally with a k/M/G (1024-based) suffix."""
        value = self.get(section, key)
        if not value:
            return None
        match = _SIZE_RE.fullmatch(value.strip())
        if not match:
            raise self._error(
                section,
                key,
                f"expected a size in bytes such as 15728640, 512k or 15M, got {value!r}",
            )
        size = int(match.group(1)) * _SIZE_FACTORS[(match.group(2) or "").lower()]
        if size < 1:
            raise self._error(section, key, f"expected a size of at least 1 byte, got {value!r}")
        return size
