"""`read_ahead`: a file's chunks produced on a thread of their own while the consumer COPYs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import closing

import pytest

from b2b_pipeline.filedrop.reader import read_ahead


def test_items_arrive_in_order_and_the_producer_runs_elsewhere() -> None:
    threads: set[str] = set()

    def produce() -> Iterator[int]:
        for i in range(100):
            threads.add(threading.current_thread().name)
            yield i

    assert list(read_ahead(produce(), depth=3)) == list(range(100))
    assert threads == {"b2b-read-ahead"}


def test_the_producer_stays_at_most_depth_items_ahead() -> None:
    produced: list[int] = []

    def produce() -> Iterator[int]:
        for i in range(50):
            produced.append(i)
            yield i

    ahead = read_ahead(produce(), depth=2)
    assert next(ahead) == 0
    time.sleep(0.3)  # time enough for a producer that does not wait to run to the end
    # two in the queue, one taken, and one produced and waiting for room
    assert len(produced) <= 4
    assert list(ahead) == list(range(1, 50))


def test_an_exception_of_the_producer_is_raised_in_its_place() -> None:
    def produce() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("line 3: broken")

    got: list[int] = []
    with pytest.raises(ValueError, match="line 3: broken"):
        for item in read_ahead(produce()):
            got.append(item)
    assert got == [1, 2]


def test_closing_it_early_stops_the_producer_and_closes_its_source() -> None:
    closed = threading.Event()

    def produce() -> Iterator[int]:
        try:
            i = 0
            while True:  # endless: only closing stops it
                yield i
                i += 1
        finally:
            closed.set()

    before = {t.name for t in threading.enumerate()}
    with closing(read_ahead(produce(), depth=2)) as ahead:
        assert next(ahead) == 0
        assert next(ahead) == 1
    assert closed.wait(5)
    assert "b2b-read-ahead" not in {t.name for t in threading.enumerate()} - before
