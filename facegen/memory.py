"""Handing freed memory back to the operating system after a request.

glibc keeps memory freed by a thread in that thread's malloc arena. A web app answers requests
on a pool of worker threads, so the tensors of one request, freed on one worker, stay resident
while the next request allocates afresh on another: resident memory climbs in steps of a few
hundred megabytes although nothing is leaked. ``malloc_trim(0)`` returns the free pages of every
arena to the system. Elsewhere (macOS, Windows, musl) there is nothing to do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_freed_memory() -> bool:
    """Return the free pages of every malloc arena to the system; True where that was possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def releasing_freed_memory(fn: F) -> F:
    """Decorate a request handler: once it has returned or raised, freed memory goes back."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            release_freed_memory()

    return wrapper  # type: ignore[return-value]
