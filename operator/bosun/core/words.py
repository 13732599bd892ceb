"""The one reading of what people type into settings (environment variables, Namespace annotations and
the ``approve`` and ``cancel`` annotations on a task): yes or no, and comma-separated names.

One strict set, so a word means the same wherever it is written: ``cancel=approved`` does not cancel and
``BOSUN_FOUR_EYES=enabled`` is refused instead of guessed. The README documents ``true``; ``yes``, ``on``
and ``1`` are what YAML and shell habits produce for the same intent.
"""

from __future__ import annotations

TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})


def is_true(value: str) -> bool:
    """Whether ``value`` says yes (case and surrounding blanks ignored); every other word says no."""
    return value.strip().lower() in TRUE_WORDS


def parse_bool(raw: str, where: str) -> bool:
    """A setting that must say yes or no; anything else is refused, naming ``where`` (the variable or
    annotation to fix), because a misread safety switch must not silently fall back to either side."""
    value = raw.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ValueError(f"{where}={raw!r} is not a boolean; set it to true or false")


def names(raw: str) -> tuple[str, ...]:
    """A comma-separated list of names, blanks around each dropped and empty entries skipped."""
    return tuple(name.strip() for name in raw.split(",") if name.strip())
