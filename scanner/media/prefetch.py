"""Background decoding: run a frame iterator in a second thread, a bounded number of items ahead.

FFmpeg releases the GIL while decoding, so decoding runs on a second core while the caller analyses
the previous frame.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

Item = TypeVar("Item")

_END = object()


class _Failed:
    """An exception raised by the source, carried to the consumer's thread."""

    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetched(source: Generator[Item, None, None], depth: int) -> Iterator[Item]:
    """Run `source` in a background thread, at most `depth` items ahead of the consumer.

    `source` is a generator, closed at the end. Errors are re-raised in the consumer's thread.
    When the consumer stops early (an exception, a closed generator), the thread stops after the
    item it is producing and closes `source` (for frames, that closes the container).
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for frame in source:
                if not put(frame):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failed(exc))
        finally:
            source.close()

    # The thread sees this thread's per-file limits (context variables), as the caller would.
    worker = threading.Thread(target=contextvars.copy_context().run, args=(run,), name="likeness-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        worker.join()

