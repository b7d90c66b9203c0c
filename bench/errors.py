"""The one user-facing error type: a bad config, name or input. The CLI turns it into exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The valid name closest to ``name`` (difflib ratio), or None when nothing is close."""
    found = difflib.get_close_matches(str(name), sorted(choices), n=1, cutoff=0.5)
    return found[0] if found else None


class ConfigError(Exception):
    """A problem the user can fix: says where (``file:line``), what, and what was probably meant."""

    def __init__(self, message: str, where: str | None = None, suggestion: str | None = None):
        self.message = message
        self.where = where
        self.suggestion = suggestion
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.suggestion:
            text += f" (did you mean '{self.suggestion}'?)"
        return text


def unknown_name(kind: str, name: object, choices: Iterable[str], where: str | None = None) -> ConfigError:
    """ConfigError for a name that is not among ``choices``, with the closest one suggested."""
    choices = list(choices)
    suggestion = closest(str(name), choices)
    listing = "" if suggestion else f"; valid: {', '.join(sorted(choices)) or '(none)'}"
    return ConfigError(f"unknown {kind} '{name}'{listing}", where, suggestion)
