"""The runner loop's wait (``engine.poller.Poller``): one poll object kept from turn to
turn, over real socket pairs; what it is asked about changes between waits."""
import socket
import time

import pytest

from hog.engine.poller import Poller


@pytest.fixture
def pairs():
    made = [socket.socketpair() for _ in range(3)]
    yield made
    for a, b in made:
        a.close()
        b.close()


def test_only_what_is_readable_comes_back_and_a_quiet_wait_times_out(pairs):
    poller = Poller()
    (r0, w0), (r1, _), _ = pairs
    start = time.monotonic()
    assert poller.wait([r0, r1], 0.05) == []
    assert time.monotonic() - start >= 0.04
    w0.send(b"x")
    assert poller.wait([r0, r1], 5) == [r0]


def test_what_leaves_the_set_is_not_reported_and_what_joins_it_is(pairs):
    poller = Poller()
    (r0, w0), (r1, w1), (r2, w2) = pairs
    for w in (w0, w1, w2):
        w.send(b"x")
    assert set(poller.wait([r0, r1], 0)) == {r0, r1}
    assert poller.wait([r1], 0) == [r1]               # r0 readable, but no longer asked
    assert set(poller.wait([r1, r2], 0)) == {r1, r2}
    assert set(poller.wait([r0, r1, r2], 0)) == {r0, r1, r2}


def test_a_closed_other_end_counts_as_readable(pairs):
    poller = Poller()
    (r0, w0), _, _ = pairs
    w0.close()
    assert poller.wait([r0], 5) == [r0]
    assert r0.recv(1) == b""
