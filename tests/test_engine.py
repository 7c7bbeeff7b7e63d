"""The engine stepped in-process: ``Runner.step(now)`` is one turn of the loop, with
the clock in the test's hands (ticks happen only when the test moves it on), real
slot processes (the local backend, forked) and a display that records what it is
told."""
import os
import time
from typing import List

import pytest
from multiprocess.connection import wait

from hog.config import RunConfig
from hog.engine.control import TICK_S
from hog.engine.progress import EXIT_FAILED, EXIT_OK
from hog.engine.runner import Runner
from hog.messages import Dispatch
from hog.sources import SourceSpec
from hog.state.store import Store
from tests.inline_backend import Clock, RecordingDisplay

LIMIT_S = 20.0      # a test that has not finished by then has hung


class Engines:
    """Runners over in-memory jobs, each with its own clock; every one is shut down
    by the end of the test."""

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self.live: List[Runner] = []

    def make(self, jobs, **options):
        """A set-up Runner over ``jobs`` (a Python source; or ``source=`` a SourceSpec),
        and its clock."""
        clock = Clock()
        source = options.pop("source", None) or \
            SourceSpec("python", "engine-test", items=list(jobs))
        config = RunConfig(source=source,
                           slots=options.pop("slots", ("0",)), output_dir=self.output_dir,
                           display="quiet", grace=1.0, **options)
        runner = Runner(config, make_display=RecordingDisplay, clock=clock)
        self.live.append(runner)
        runner.open()
        runner.start()
        return runner, clock

    def finish(self, runner: Runner) -> int:
        """Shut the runner down; its exit code."""
        self.live.remove(runner)
        runner.shutdown()
        return runner.report()


@pytest.fixture
def engines(tmp_path):
    made = Engines(str(tmp_path / "out"))
    yield made
    for runner in list(made.live):
        made.finish(runner)


def step_until(runner: Runner, clock: Clock, done=None) -> bool:
    """Step (the clock standing still) until ``done()`` holds, or the run is finished
    when ``done`` is None; waits on the runner's pipes between turns. Returns whether
    the run finished."""
    deadline = time.monotonic() + LIMIT_S
    ready: list = []
    while True:
        finished = runner.step(clock(), ready)
        if (done() if done is not None else finished):
            return finished
        assert not finished, "the run finished before the condition held"
        assert time.monotonic() < deadline, "the runner did not get there in time"
        ready = wait(runner.waitables(), 0.05)


def store_counts(runner: Runner) -> dict:
    store = Store(runner.st.layout.state_dir)
    try:
        return store.counts()
    finally:
        store.close()


def test_stepping_runs_every_job_into_its_folder_and_then_reports_finished(engines):
    runner, clock = engines.make(["echo hello", "exit 3"])
    assert step_until(runner, clock)
    layout = runner.st.layout
    assert os.path.exists(layout.marker_path(0, True))
    assert os.path.exists(layout.marker_path(1, False))
    with open(layout.out_path(0)) as f:
        assert f.read() == "hello\n"
    assert store_counts(runner) == {"succeeded": 1, "failed": 1}
    assert engines.finish(runner) == EXIT_FAILED


def test_each_claim_is_committed_before_its_job_is_sent_to_the_slot(engines):
    runner, clock = engines.make(["true", "true", "true"])
    backend = runner.st.backend
    seen = []
    submit = backend.submit

    def checked_submit(d: Dispatch) -> None:
        store = Store(runner.st.layout.state_dir)    # another connection: committed?
        try:
            seen.append(store.row(d.job.index).status)
        finally:
            store.close()
        submit(d)

    backend.submit = checked_submit
    assert step_until(runner, clock)
    # (a job handed ahead to a busy slot is committed as handed: issue 11's pre-dispatch)
    assert seen[0] == "running" and set(seen[1:]) <= {"running", "handed"}
    assert engines.finish(runner) == EXIT_OK


def test_a_drain_request_from_another_shell_takes_effect_on_the_next_tick(engines, tmp_path):
    go = tmp_path / "go"
    hold = f"while [ ! -e {go} ]; do sleep 0.01; done"
    runner, clock = engines.make([hold, "true", "true"])
    st = runner.st
    step_until(runner, clock, lambda: st.pids)          # the first job runs
    store = Store(st.layout.state_dir)
    try:
        assert store.request("drain") == 1
    finally:
        store.close()
    runner.step(clock())                                # no tick due: nothing changes
    assert not st.stopping
    runner.step(clock.advance(TICK_S))                  # the tick reads the request
    assert st.stopping
    assert st.stop_reason == "stopped by hog stop: no new jobs were started"
    go.touch()
    assert step_until(runner, clock)
    assert store_counts(runner) == {"succeeded": 1, "queued": 2}
    assert engines.finish(runner) == EXIT_OK


def test_a_failed_attempt_with_retries_left_is_queued_again_and_run(engines, tmp_path):
    mark = tmp_path / "tried"
    runner, clock = engines.make([{"cmd": f"[ -e {mark} ] || {{ touch {mark}; exit 1; }}",
                             "retries": 1}])
    assert step_until(runner, clock)
    display = runner.st.display
    assert any(m.endswith("attempt 1 ended failed; retrying") for m in display.messages)
    assert [o.attempt for o in display.ended] == [2]
    store = Store(runner.st.layout.state_dir)
    try:
        row = store.row(0)
        assert (row.status, row.attempt) == ("succeeded", 2)
    finally:
        store.close()


def test_a_cancel_request_stops_that_running_job_on_the_next_tick(engines, tmp_path):
    hold = f"while [ ! -e {tmp_path / 'never'} ]; do sleep 0.01; done"
    runner, clock = engines.make([hold, "true"])
    st = runner.st
    step_until(runner, clock, lambda: st.pids)
    store = Store(st.layout.state_dir)
    try:
        assert store.cancel(0) == "stopping"
    finally:
        store.close()
    clock.advance(TICK_S)
    assert step_until(runner, clock)
    assert store_counts(runner) == {"cancelled": 1, "succeeded": 1}
    assert [o.status.value for o in st.display.ended] == ["cancelled", "succeeded"]


def test_no_tick_runs_until_the_clock_reaches_it(engines):
    runner, clock = engines.make(["true"])
    st = runner.st
    runner.step(clock())
    first = st.next_tick
    assert first == clock() + TICK_S
    runner.step(clock.advance(TICK_S / 2))
    assert st.next_tick == first
    runner.step(clock.advance(TICK_S / 2))
    assert st.next_tick == first + TICK_S


def test_what_set_up_has_to_say_is_shown_once_the_display_has_started(engines):
    runner, clock = engines.make(["true"])
    assert step_until(runner, clock)
    assert engines.finish(runner) == EXIT_OK
    again, _ = engines.make(["true"], fresh=True)
    shown = again.st.display.messages
    assert len(shown) == 1 and shown[0].startswith("--fresh: moved the previous ")
