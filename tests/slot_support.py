"""A real slot process (``LocalBackend``'s consumer, forked) driven message by message:
for the tests of what a slot does with the jobs the runner hands it."""
import os
import time
from typing import Callable, List

import multiprocess

from hog.backends.local import LocalBackend
from hog.messages import Dispatch, Ended
from hog.model import Job
from hog.state.jobdir import Layout


def start_slot(root: str) -> LocalBackend:
    """One slot (0, on GPU "0") writing job folders into ``root``."""
    layout = Layout(root)
    os.makedirs(layout.state_dir, exist_ok=True)
    backend = LocalBackend(multiprocess.get_context("fork"), layout, grace=1.0, slots=[0],
                           gpus=["0"])
    backend.start()
    return backend


def dispatch(index: int, command: str, ahead: bool = False) -> Dispatch:
    return Dispatch(job=Job(index=index, command=command, where=f"test:{index}"), slot=0,
                    gpu_ids=("0",), name=f"job_{index}", ahead=ahead)


def events_until(backend: LocalBackend, done: Callable[[list], bool],
                 timeout: float = 20.0) -> List:
    """The slot's events until ``done(events)``."""
    conn = backend.conns[0]
    events: list = []
    deadline = time.monotonic() + timeout
    while not done(events):
        assert conn.poll(max(0.0, deadline - time.monotonic())), f"no more events: {events}"
        events += backend.receive(conn)
    return events


def ended(index: int) -> Callable[[list], bool]:
    return lambda events: any(isinstance(e, Ended) and e.outcome.index == index
                              for e in events)
