"""Errors for bad dataset input: always name the file and say what was expected."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class DatasetError(ValueError):
    """A dataset on disk does not match the layout the loader expects."""


def unwrap_worker_error(exc: BaseException) -> BaseException:
    """A DataLoader worker's exception arrives as "Caught X in DataLoader worker process 0.
    Original Traceback ...": return an exception of the same type holding only the original
    message (which names the file), so commands can show it as one line."""
    text = str(exc)
    if not text.startswith("Caught "):
        return exc
    last = [line for line in text.splitlines() if line.strip()][-1]
    name = type(exc).__name__
    message = last.split(f"{name}: ", 1)[1] if f"{name}: " in last else last
    try:
        return type(exc)(message)
    except TypeError:  # an exception type whose constructor takes other arguments
        return exc


def unwrapped_worker_errors(batches: Iterable[T]) -> Iterator[T]:
    """Iterate ``batches`` (e.g. a DataLoader), re-raising loader workers' errors with
    :func:`unwrap_worker_error` (other errors pass unchanged)."""
    iterator = iter(batches)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            clean = unwrap_worker_error(exc)
            if clean is exc:
                raise
            raise clean from None
        yield item
