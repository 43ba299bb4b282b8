"""Flow patterns (``validate.regex``) run with a time limit, and a probe for slow ones.

Python's ``re`` backtracks: a pattern such as ``[^@\\s]+@[^@\\s]+\\.[^@\\s]+`` takes time
quadratic in the answer, and nested repeats such as ``(a+)+`` exponential time, while the event
loop (every chat) waits. Answers are matched with the ``regex`` package, which can stop a match
after a timeout; ``check`` runs :func:`slow_input` on every pattern so a slow one is caught
before it ships.
"""
from __future__ import annotations

import functools
import logging
import time
from typing import Optional

import regex

from .constants import MAX_TEXT, REGEX_TIMEOUT_S

log = logging.getLogger(__name__)

# Characters to build hostile answers from: the usual classes, plus the pattern's own literals.
_SAMPLES = ("a", "0", " ", ".", "@", "-", "_", "'", "é")
SLOW_S = 0.01  # a probe answer slower than this (10 ms) makes a pattern "slow"


def fullmatch(pattern: str, value: str, timeout: float = REGEX_TIMEOUT_S) -> bool:
    """``pattern`` matches all of ``value``; a match that runs past ``timeout`` counts as no match."""
    try:
        return regex.fullmatch(pattern, value, timeout=timeout) is not None
    except TimeoutError:
        log.warning("validate.regex gave up after %.0f ms on a %d-character answer", timeout * 1000, len(value))
        return False


def _alphabet(pattern: str) -> tuple[list[str], list[str]]:
    """Single characters, and two-character units ("a@", "a."), to build probe answers from."""
    literals = [c for c in pattern if not c.isalnum() and c not in "\\[]()^$*+?{}|,:=!<>"]
    chars = list(dict.fromkeys(_SAMPLES + tuple(literals)))[:16]
    units = chars + ["a" + c for c in dict.fromkeys(literals) if c != "a"][:8]
    return chars, units


def _seconds(compiled: "regex.Pattern[str]", answer: str) -> float:
    """How long the pattern takes on ``answer`` (the best of three when it looks slow, so a busy
    machine does not make a good pattern look bad)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        try:
            compiled.fullmatch(answer, timeout=SLOW_S * 5)
        except TimeoutError:
            return SLOW_S * 5
        best = min(best, time.perf_counter() - started)
        if best <= SLOW_S:
            break
    return best


@functools.lru_cache(maxsize=256)
def slow_input(pattern: str, length: Optional[int] = None) -> Optional[str]:
    """A hostile answer of at most ``length`` characters (default: Telegram's 4,096) that the
    pattern needs more than :data:`SLOW_S` to match or reject, or None. Built as a head, a long
    run of one unit and a tail ("a@" + "." * 4000 + "@"): what makes backtracking patterns slow."""
    n = max(8, min(int(length or MAX_TEXT), MAX_TEXT))
    chars, units = _alphabet(pattern)
    compiled = regex.compile(pattern)
    for head in units:
        for run in units:
            body = head + run * ((n - len(head) - 1) // len(run))
            for tail in chars + ["!"]:
                answer = body + tail
                if _seconds(compiled, answer) > SLOW_S:
                    return answer
    return None
