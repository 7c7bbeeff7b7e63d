"""The engine's loop logic, stepped in-process: ``Runner.step(now, ready)`` with the
clock in the test's hands, an ``InlineBackend`` whose jobs start and end when the
test says, and the job source read in this process (``tests.inline_backend``). No
process is started and nothing sleeps; the store is a real SQLite file and the job
folders are real.

Injection: the ``Runner`` is given a backend factory that returns an
``InlineBackend`` with the real local ``Scheduler`` as its admission, and an
``InlineContext`` as its process context, so the producer is read lazily in this
process.
"""
import itertools
import os
import signal
import socket
from typing import List, Optional

import pytest
from multiprocess.connection import wait

from hog.backends.attempt import Attempt
from hog.backends.base import Admission, Backend, Resizable
from hog.backends.factory import local_scheduler
from hog.config import RunConfig
from hog.engine import control
from hog.engine.control import TICK_S
from hog.engine.intake import INGEST_BATCH, LOOKAHEAD
from hog.engine.progress import EXIT_FAILED, EXIT_INT, EXIT_OK, EXIT_TERM, EXIT_USAGE
from hog.engine.runner import Runner
from hog.messages import Dispatch, StopHow
from hog.model import Job, Status
from hog.sources import SourceSpec
from hog.state.jobdir import Layout
from hog.state.jobread import read_info
from hog.state.store import Store
from tests.inline_backend import Clock, InlineBackend, InlineContext, RecordingDisplay

STEPS = 50      # turns a test allows for something to happen before it fails


class Engine:
    """One stepped runner: the runner, its clock and its inline backend."""

    def __init__(self, runner: Runner, clock: Clock, backend: InlineBackend):
        self.runner = runner
        self.st = runner.st
        self.clock = clock
        self.backend = backend
        self.finished = False

    def step(self) -> bool:
        """One turn at the current time, with what the backend has queued."""
        ready = list(self.backend.waitables()) if self.backend.pending else []
        self.finished = self.runner.step(self.clock(), ready)
        return self.finished

    def tick(self) -> bool:
        """Move the clock on to the next tick, and take one turn."""
        self.clock.advance(TICK_S)
        return self.step()

    def settle(self) -> bool:
        """Take turns (the clock standing still) until nothing more changes."""
        for _ in range(STEPS):
            before = (len(self.backend.submitted), self.st.received, self.backend.pending)
            if self.step():
                return True
            if before == (len(self.backend.submitted), self.st.received,
                          self.backend.pending):
                return False
        raise AssertionError("the runner kept changing")

    def run_all(self, status: Status = Status.SUCCEEDED) -> bool:
        """End every job as it is dispatched, until the run is finished."""
        for _ in range(STEPS):
            if self.settle():
                return True
            busy = list(self.backend.attempts)
            assert busy, "nothing runs, yet the run is not finished"
            for slot in busy:
                self.backend.end_job(slot, status)
        raise AssertionError("the run did not finish")

    def row(self, job_id: int):
        return self.st.store.row(job_id)

    def counts(self) -> dict:
        store = Store(self.st.layout.state_dir)
        try:
            return store.counts()
        finally:
            store.close()

    @property
    def display(self) -> RecordingDisplay:
        assert isinstance(self.st.display, RecordingDisplay)
        return self.st.display

    @property
    def messages(self) -> List[str]:
        return self.display.messages


class Engines:
    """Stepped runners over one output directory; each is shut down by the end of the
    test."""

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self.live: List[Engine] = []
        self.backends: List[InlineBackend] = []

    def _make_backend(self, config, ctx, layout: Layout, flags):
        sched = local_scheduler(config)
        backend = InlineBackend(layout, sorted(sched.slots), config.slots)
        self.backends.append(backend)
        return backend, sched

    def config(self, jobs, **options) -> RunConfig:
        source = None if jobs is None else SourceSpec("python", "loop-test", items=jobs)
        return RunConfig(source=source, slots=tuple(options.pop("slots", ("0",))),
                         output_dir=self.output_dir, display="quiet", grace=1.0, **options)

    def make(self, jobs, start: bool = True, **options) -> Engine:
        """A runner over ``jobs`` (a Python source; None: the store's queue only), its
        store opened and (``start``) its parts started."""
        clock = Clock()
        runner = Runner(self.config(jobs, **options), make_display=RecordingDisplay,
                        clock=clock, backend_factory=self._make_backend, ctx=InlineContext())
        engine = Engine(runner, clock, self.backends[-1])
        self.live.append(engine)
        runner.open()
        if start:
            runner.start()
        return engine

    def finish(self, engine: Engine) -> int:
        """Shut the runner down; its exit code."""
        self.live.remove(engine)
        engine.runner.shutdown()
        return engine.runner.report()


@pytest.fixture
def engines(tmp_path):
    made = Engines(str(tmp_path / "out"))
    yield made
    for engine in list(made.live):
        made.finish(engine)


def other_store(e: Engine) -> Store:
    """Another connection to the queue, as a verb in another shell has."""
    return Store(e.st.layout.state_dir)


def commands(dispatches: List[Dispatch]) -> List[str]:
    return [d.job.command for d in dispatches]


# ------------------------------------------------------------------ the backend
def test_the_inline_backend_satisfies_the_backend_protocols(tmp_path):
    backend = InlineBackend(Layout(str(tmp_path), "job_"), [0])
    try:
        assert isinstance(backend, Backend)
        assert isinstance(backend, Resizable)
        assert isinstance(local_scheduler(RunConfig(source=None, slots=("0",))), Admission)
    finally:
        backend.shutdown([])


def test_an_event_from_the_backend_wakes_the_engines_wait(engines):
    e = engines.make(["true"])
    e.settle()
    watched = [o for o in e.runner.waitables() if e.backend.owns(o)]
    assert watched == e.backend.waitables()     # (the inline producer has no fd)
    assert wait(watched, 0) == []
    e.backend.start_job(0)
    assert wait(watched, 0) == watched
    e.step()
    assert wait(watched, 0) == []
    # (issue 11: a Started alone costs no commit; it is stored with the next writes)
    assert e.row(0).pid is None
    e.tick()
    assert e.row(0).pid == e.st.pids[0]


# ---------------------------------------------------------------------- ingest
def test_jobs_from_the_source_reach_the_store_in_source_order(engines):
    e = engines.make([f"echo {i}" for i in range(10)])
    e.settle()
    rows = list(e.st.store.all_rows())
    assert [(r.id, r.command) for r in rows] == [(i, f"echo {i}") for i in range(10)]
    assert commands(e.backend.submitted) == ["echo 0"]


def test_the_source_is_not_read_past_the_lookahead_while_slots_are_busy(engines):
    read = itertools.count()
    endless = (f"echo {next(read)}" for _ in itertools.count())
    e = engines.make(endless)
    e.settle()
    for _ in range(10):
        e.step()
    assert e.st.running                         # the one slot is busy all along
    taken = e.st.received
    assert LOOKAHEAD <= taken <= LOOKAHEAD + INGEST_BATCH + 4
    assert next(read) == taken                  # read exactly as far as taken
    for _ in range(10):
        e.step()
    assert e.st.received == taken
    assert e.counts() == {"running": 1, "queued": taken - 1}


def test_while_nothing_runs_the_first_jobs_are_handed_over_at_once(engines):
    e = engines.make([f"echo {i}" for i in range(100)], slots=("0", "1"))
    e.step()
    assert commands(e.backend.submitted) == ["echo 0", "echo 1"]
    assert e.st.received == 4                   # max(4, 2 * free slots)


def failing_after(n: int):
    for i in range(n):
        yield f"echo {i}"
    raise RuntimeError("the database went away")


def test_jobs_read_before_the_source_failed_still_run_and_the_run_fails(engines):
    e = engines.make(failing_after(2))
    assert e.run_all()
    assert commands(e.backend.submitted) == ["echo 0", "echo 1"]
    assert "the database went away" in e.st.source_error
    assert engines.finish(e) == EXIT_FAILED


def test_a_source_that_fails_before_its_first_job_is_a_usage_error(engines):
    e = engines.make(failing_after(0))
    assert e.settle()
    assert e.backend.submitted == []
    assert engines.finish(e) == EXIT_USAGE


# ---------------------------------------------------------------- dependencies
def test_a_job_after_another_waits_while_it_runs_and_starts_once_it_succeeded(engines):
    e = engines.make([{"cmd": "make data", "name": "data"},
                      {"cmd": "train", "after": "data"}], slots=("0", "1"))
    e.settle()
    assert commands(e.backend.submitted) == ["make data"]
    assert e.st.waiting_deps == {1}
    e.backend.end_job(0)
    e.settle()
    assert commands(e.backend.submitted) == ["make data", "train"]
    assert e.st.waiting_deps == set()
    assert e.run_all()
    assert engines.finish(e) == EXIT_OK


def test_a_job_whose_dependency_failed_is_skipped_with_the_reason(engines):
    e = engines.make([{"cmd": "make data", "name": "data"},
                      {"cmd": "train", "after": "data", "name": "train"}])
    e.settle()
    e.backend.end_job(0, Status.FAILED)
    assert e.settle()
    assert commands(e.backend.submitted) == ["make data"]
    row = e.row(1)
    assert (row.status, row.note) == ("skipped", "its dependency data ended failed")
    assert any(m.startswith("train (") and m.endswith(
        "skipped: its dependency data ended failed") for m in e.messages)
    assert os.path.exists(e.st.layout.marker_path(1, False))
    with open(e.st.layout.err_path(1)) as f:
        assert f.read() == "hog: train: its dependency data ended failed\n"
    assert engines.finish(e) == EXIT_FAILED


def test_a_job_after_an_unknown_name_is_skipped_saying_so(engines):
    e = engines.make([{"cmd": "train", "after": "nothing"}])
    assert e.settle()
    assert e.backend.submitted == []
    assert e.row(0).note == "it is after 'nothing', but no job is named 'nothing'"
    assert engines.finish(e) == EXIT_FAILED


def test_a_job_after_one_further_on_in_a_stream_waits_for_it_and_runs_after_it(engines):
    jobs = [{"cmd": "evaluate", "after": "late"}] + [f"filler {i}" for i in range(12)] \
        + [{"cmd": "train", "name": "late"}]
    e = engines.make(jobs)      # one slot: "late" is read long after "evaluate" waits
    assert e.run_all()
    order = commands(e.backend.submitted)
    assert order.index("train") < order.index("evaluate")
    assert engines.finish(e) == EXIT_OK


def test_jobs_that_depend_on_each_other_do_not_keep_the_run_waiting_forever(engines):
    e = engines.make([{"cmd": "a", "name": "a", "after": "b"},
                      {"cmd": "b", "name": "b", "after": "a"},
                      {"cmd": "c", "name": "c", "after": "c"}])
    for _ in range(20):
        if e.tick():
            break
    assert e.backend.submitted == []
    assert e.finished
    rows = {r.name: r for r in e.runner.st.store.all_rows()}
    assert {n: rows[n].status for n in "abc"} == {n: "skipped" for n in "abc"}
    assert "its dependencies form a cycle: a -> b -> a" in rows["a"].note
    assert "its dependency a ended skipped" in rows["b"].note
    assert "its dependencies form a cycle: c -> c" in rows["c"].note


# ---------------------------------------------------------------------- claims
def test_every_job_is_claimed_and_committed_before_the_backend_sees_it(engines):
    e = engines.make(["a", "b", "c"])
    assert e.run_all()
    assert commands(e.backend.submitted) == ["a", "b", "c"]
    assert e.backend.committed == ["running"] * 3
    assert [d.attempt for d in e.backend.submitted] == [1, 1, 1]


def test_a_job_another_runner_claimed_first_is_not_dispatched(engines):
    e = engines.make(["a", "b"])
    e.settle()                                  # a runs; b waits in the ready list
    assert [job.command for _, job in e.st.ready] == ["b"]
    other = other_store(e)
    try:
        rival = other.register_runner("1")
        assert other.claim(1, 0, rival, 0, "1") == 1
        e.backend.end_job(0)
        assert e.settle()                       # no tick: b is still in the ready list
        assert commands(e.backend.submitted) == ["a"]
        assert other.row(1).runner == rival
    finally:
        other.close()
    assert e.st.sched.room() == 1               # the placement was released


# --------------------------------------------------------------------- retries
def test_a_failed_attempt_with_retries_left_is_queued_again_as_the_next_attempt(engines):
    e = engines.make([{"cmd": "flaky", "retries": 2}])
    e.settle()
    e.backend.end_job(0, Status.FAILED)
    e.settle()
    assert [d.attempt for d in e.backend.submitted] == [1, 2]
    assert e.row(0).status == "running" and e.row(0).attempt == 2
    assert e.messages[-1].endswith("attempt 1 ended failed; retrying")
    assert e.display.ended == []             # an attempt retried is not an outcome
    e.backend.end_job(0)
    assert e.settle()
    assert (e.row(0).status, e.row(0).attempt) == ("succeeded", 2)
    assert engines.finish(e) == EXIT_OK


def test_a_job_whose_retries_are_used_up_ends_failed(engines):
    e = engines.make([{"cmd": "broken", "retries": 1}])
    assert e.run_all(Status.FAILED)
    assert [d.attempt for d in e.backend.submitted] == [1, 2]
    assert (e.row(0).status, e.row(0).attempt) == ("failed", 2)
    assert [o.attempt for o in e.display.ended] == [2]
    assert engines.finish(e) == EXIT_FAILED


def test_a_timeout_counts_like_a_failure_for_retries(engines):
    e = engines.make([{"cmd": "slow", "retries": 1, "timeout": 5}])
    assert e.run_all(Status.TIMEOUT)
    assert [d.attempt for d in e.backend.submitted] == [1, 2]
    assert e.row(0).status == "timeout"
    assert engines.finish(e) == EXIT_FAILED


def test_no_retry_is_made_once_the_run_is_killing(engines):
    e = engines.make([{"cmd": "flaky", "retries": 3}])
    e.settle()
    control.kill_all(e.st, "killed")
    e.backend.end_job(0, Status.FAILED)
    assert e.settle()
    assert len(e.backend.submitted) == 1
    assert e.row(0).status == "failed"


# ------------------------------------------------------------ the store's mailbox
def request(e: Engine, how: str) -> None:
    other = other_store(e)
    try:
        assert other.request(how) == 1
    finally:
        other.close()


def test_a_drain_request_starts_nothing_new_lets_running_jobs_end_and_exits_0(engines):
    e = engines.make(["a", "b", "c"], slots=("0", "1"))
    e.settle()
    request(e, "drain")
    e.step()                                    # the clock has not moved: no tick
    assert not e.st.stopping
    e.tick()
    assert e.st.stopping
    e.backend.end_job(0)
    assert not e.settle()                       # slot 1 still runs; nothing new
    assert commands(e.backend.submitted) == ["a", "b"]
    e.backend.end_job(1)
    assert e.settle()
    assert e.counts() == {"succeeded": 2, "queued": 1}
    assert e.st.stop_reason == "stopped by hog stop: no new jobs were started"
    assert engines.finish(e) == EXIT_OK


def test_a_kill_request_stops_every_busy_slot_on_the_next_tick(engines):
    e = engines.make(["a", "b", "c"], slots=("0", "1"))
    e.settle()
    request(e, "kill")
    e.step()
    assert e.backend.stops == []
    e.tick()
    assert sorted(e.backend.stops) == [(0, StopHow.KILL), (1, StopHow.KILL)]
    for slot in (0, 1):
        e.backend.end_job(slot, StopHow.KILL.status)
    assert e.settle()
    assert e.counts() == {"interrupted": 2, "queued": 1}
    assert engines.finish(e) == EXIT_FAILED


def test_a_cancel_request_stops_only_that_jobs_slot_on_the_next_tick(engines):
    e = engines.make(["a", "b"], slots=("0", "1"))
    e.settle()
    other = other_store(e)
    try:
        assert other.cancel(1) == "stopping"
    finally:
        other.close()
    e.step()
    assert e.backend.stops == []
    e.tick()
    assert e.backend.stops == [(1, StopHow.CANCEL)]
    e.tick()                                    # asked once, not on every tick
    assert e.backend.stops == [(1, StopHow.CANCEL)]
    e.backend.end_job(1, StopHow.CANCEL.status)
    e.backend.end_job(0)
    assert e.settle()
    assert e.counts() == {"succeeded": 1, "cancelled": 1}
    assert engines.finish(e) == EXIT_OK


def test_a_job_added_from_another_shell_while_slots_are_busy_is_seen_on_the_next_tick(
        engines):
    e = engines.make(["a", "b"])
    e.settle()                                  # a runs; b waits in the ready list
    other = other_store(e)
    try:
        other.add([Job(index=0, command="urgent", priority=10)])
    finally:
        other.close()
    e.tick()                                    # the tick drops the ready list
    e.backend.end_job(0)
    e.settle()
    assert commands(e.backend.submitted) == ["a", "urgent"]


def test_without_a_tick_the_ready_list_fetched_before_is_kept(engines):
    e = engines.make(["a", "b"])
    e.settle()
    other = other_store(e)
    try:
        other.add([Job(index=0, command="urgent", priority=10)])
    finally:
        other.close()
    e.backend.end_job(0)
    e.settle()
    assert commands(e.backend.submitted) == ["a", "b"]


# --------------------------------------------------------------------- signals
def signal_turn(e: Engine, sig: int) -> None:
    """A signal arrives: its flag is counted, the wake-up fd written, the loop's
    signal handling runs (as ``run()`` does after its wait)."""
    e.st.flags.counts[sig] = e.st.flags.count(sig) + 1
    wake_r, wake_w = socket.socketpair()
    try:
        wake_r.setblocking(False)
        wake_w.send(b"\0")
        control.handle_signals(e.st, wake_r)
    finally:
        wake_r.close()
        wake_w.close()


def test_a_first_ctrl_c_drains_and_a_second_kills_the_running_jobs(engines):
    e = engines.make(["a", "b"])
    e.settle()
    signal_turn(e, signal.SIGINT)
    assert e.st.stopping and not e.st.killing
    assert e.backend.stops == []
    assert e.messages[-1].startswith("Ctrl-C: starting no new jobs; waiting for 1 running")
    signal_turn(e, signal.SIGINT)
    assert e.st.killing
    assert e.backend.stops == [(0, StopHow.KILL)]
    e.backend.end_job(0, Status.INTERRUPTED)
    assert e.settle()
    assert commands(e.backend.submitted) == ["a"]
    assert e.st.stop_reason == "stopped by a second Ctrl-C: running jobs were terminated"
    assert engines.finish(e) == EXIT_INT


def test_ctrl_c_with_every_job_ending_well_still_exits_130(engines):
    e = engines.make(["a", "b"])
    e.settle()
    signal_turn(e, signal.SIGINT)
    e.backend.end_job(0)
    assert e.settle()
    assert e.counts() == {"succeeded": 1, "queued": 1}
    assert engines.finish(e) == EXIT_INT


def test_sigterm_kills_the_running_jobs_and_exits_143(engines):
    e = engines.make(["a"])
    e.settle()
    signal_turn(e, signal.SIGTERM)
    assert e.backend.stops == [(0, StopHow.KILL)]
    e.backend.end_job(0, Status.INTERRUPTED)
    assert e.settle()
    assert engines.finish(e) == EXIT_TERM


# ------------------------------------------------------------ the backend's events
def test_a_lost_slot_records_its_job_interrupted_and_starts_a_new_slot(engines):
    e = engines.make(["a", "b"])
    e.settle()
    e.backend.start_job(0)
    e.step()
    e.backend.lose_slot(0, "its slot process died (exit code -9)")
    e.settle()
    assert e.backend.added == [0]
    row = e.row(0)
    assert row.status == "interrupted"
    assert row.note == "its slot process died (exit code -9)"
    assert read_info(e.st.layout, 0)["status"] == "interrupted"
    assert os.path.exists(e.st.layout.marker_path(0, False))
    assert "slot 0: its slot process died (exit code -9); starting a new one" in e.messages
    assert commands(e.backend.submitted) == ["a", "b"]       # the new slot gets b
    e.backend.end_job(0)
    assert e.settle()
    assert engines.finish(e) == EXIT_FAILED


def test_a_lost_slot_is_not_restarted_while_the_run_drains(engines):
    e = engines.make(["a", "b"])
    e.settle()
    signal_turn(e, signal.SIGINT)
    e.backend.lose_slot(0)
    assert e.settle()
    assert e.backend.added == []
    assert e.row(0).status == "interrupted"


def test_a_failed_backend_drains_the_run_with_its_message(engines):
    e = engines.make(["a", "b"])
    e.settle()
    e.backend.fail("the cluster went away")
    e.step()
    assert e.st.stopping and e.st.fatal == "the cluster went away"
    assert e.st.stop_reason == "the cluster went away"
    assert "the cluster went away" in e.messages
    e.backend.end_job(0)
    assert e.settle()
    assert commands(e.backend.submitted) == ["a"]
    assert engines.finish(e) == EXIT_FAILED


# --------------------------------------------------------------- unschedulable
def test_a_job_that_can_never_fit_ends_unschedulable_with_one_line(engines):
    e = engines.make([{"cmd": "big", "gpus": 2, "name": "big"}, "small"])
    assert e.run_all()
    assert commands(e.backend.submitted) == ["small"]
    assert e.row(0).status == "unschedulable"
    said = [m for m in e.messages if m.startswith("big")]
    assert len(said) == 1
    assert said[0].endswith("needs 2 GPUs; this runner has 1; it will not run")
    assert os.path.exists(e.st.layout.marker_path(0, False))
    assert engines.finish(e) == EXIT_FAILED


def test_with_another_live_runner_a_job_that_never_fits_is_left_to_it(engines):
    e = engines.make([{"cmd": "big", "gpus": 2, "name": "big"}, "small"], start=False)
    other = other_store(e)
    try:
        other.register_runner("0,1")        # this process: alive
        e.runner.start()
        assert e.run_all()
        assert commands(e.backend.submitted) == ["small"]
        assert e.row(0).status == "queued"
        [message] = e.messages
        assert message.startswith("big needs 2 GPUs; this runner has 1; it waits for runner ")
        assert message.endswith(f"(pid {os.getpid()}, GPUs 0,1)")
    finally:
        other.close()


# -------------------------------------------------------------------- recovery
def left_running_by_a_dead_runner(output_dir: str, commands_: List[str]) -> Layout:
    """A queue whose jobs a runner (on another host, its heartbeat long stale) had
    claimed and started when it died."""
    layout = Layout(os.path.abspath(output_dir), "job_")
    layout.prepare_root()
    store = Store(layout.state_dir)
    try:
        store.set_meta("prefix", "job_")
        ids = store.add([Job(index=0, command=c) for c in commands_])
        dead = store.register_runner("0")
        for job_id in ids:
            assert store.claim(job_id, 0, dead, 0, "0") == 1
            store.started(job_id, 4242, 1.0)
        store.db.execute("UPDATE runners SET host = 'gone-host', heartbeat = 0 WHERE id = ?",
                         (dead,))
        store.db.commit()
    finally:
        store.close()
    return layout


def write_attempt(layout: Layout, index: int, command: str,
                  status: Optional[Status]) -> None:
    """Job ``index``'s folder as the dead runner's slot left it: ended as ``status``,
    or still running (None)."""
    d = Dispatch(job=Job(index=index, command=command), slot=0, gpu_ids=("0",),
                 name=layout.folder_name(index))
    attempt = Attempt.open(layout, d)
    attempt.started(4242, 1.0)
    if status is not None:
        attempt.finished(status, 0 if status is Status.SUCCEEDED else 1, None, 2.0)


def test_on_start_a_job_whose_folder_says_success_is_recovered_as_succeeded(engines):
    layout = left_running_by_a_dead_runner(engines.output_dir, ["done", "cut short"])
    write_attempt(layout, 0, "done", Status.SUCCEEDED)
    write_attempt(layout, 1, "cut short", None)
    e = engines.make(None)
    row = e.row(0)
    assert (row.status, row.note) == ("succeeded", "recovered from its folder")
    again = e.row(1)
    assert again.status == "queued"
    assert again.note.startswith("interrupted: its runner (pid ")
    assert again.note.endswith(") died; queued again")
    assert e.messages == ["recovered 2 job(s) left running by a runner that died: "
                          "1 queued again, 1 had succeeded"]
    assert e.run_all()
    assert commands(e.backend.submitted) == ["cut short"]
    assert e.backend.submitted[0].attempt == 2
    assert engines.finish(e) == EXIT_OK


def test_on_start_a_job_whose_folder_says_failure_is_queued_again(engines):
    layout = left_running_by_a_dead_runner(engines.output_dir, ["failed"])
    write_attempt(layout, 0, "failed", Status.FAILED)
    e = engines.make(None)
    assert e.row(0).status == "queued"
    assert e.run_all()
    assert commands(e.backend.submitted) == ["failed"]


# ------------------------------------------------------------------ exit codes
@pytest.mark.parametrize("ending, code", [
    ("all succeeded", EXIT_OK),
    ("one failed", EXIT_FAILED),
    ("ctrl-c", EXIT_INT),
    ("sigterm", EXIT_TERM),
])
def test_the_exit_code_says_how_the_run_ended(engines, ending, code):
    e = engines.make(["a", "b"])
    e.settle()
    if ending == "ctrl-c":
        signal_turn(e, signal.SIGINT)
    elif ending == "sigterm":
        signal_turn(e, signal.SIGTERM)
    status = Status.FAILED if ending == "one failed" else Status.SUCCEEDED
    assert e.run_all(status if ending != "sigterm" else Status.INTERRUPTED)
    assert engines.finish(e) == code


def test_the_ready_list_is_kept_only_while_a_new_batch_sorts_after_it(engines):
    """A batch from the source leaves the ready list as it is only when nothing in it
    may run first: no higher priority, none queued again, a list still long enough to
    choose from and not only jobs waiting for others."""
    from hog.engine.intake import still_the_head
    from hog.engine.state import READY_AHEAD
    e = engines.make(["true"] * (READY_AHEAD + 10))
    e.settle()
    st = e.st
    assert len(st.ready) >= READY_AHEAD // 2
    later = [Job(index=10_000, command="later")]
    assert still_the_head(st, later, again=0)
    assert not still_the_head(st, [Job(index=10_001, command="urgent", priority=1)], again=0)
    assert not still_the_head(st, later, again=1)           # an old number queued again
    st.waiting_deps.update(job.index for _, job in st.ready)
    assert not still_the_head(st, later, again=0)           # nothing in it can start
    st.waiting_deps.clear()
    while len(st.ready) >= READY_AHEAD // 2:
        st.ready.pop()
    assert not still_the_head(st, later, again=0)           # too few left to choose from


def test_the_ready_list_counts_its_cpu_only_jobs_through_every_change():
    """``RunState.ready`` keeps the count that lets a turn with only CPU slots free skip
    a head of GPU jobs without going through it."""
    from hog.engine.state import Ready
    ready = Ready()
    entries = [(object(), Job(index=i, command="true", gpus=0 if i % 3 == 0 else 1))
               for i in range(12)]

    def recount() -> int:
        return sum(not job.gpus for _, job in ready)
    ready.extend(entries[:8])
    assert ready.cpu_jobs == recount() == 3
    ready.remove(entries[3])
    ready.insert(0, entries[9])
    ready.append(entries[10])
    ready.pop()
    ready.popleft()
    assert ready.cpu_jobs == recount() == 2
    ready.clear()
    assert ready.cpu_jobs == recount() == 0


def test_an_idle_runner_stores_only_the_first_jobs_of_a_batch_and_the_rest_next(engines):
    """The producer sends a file's jobs in batches: a runner with idle slots stores only
    what they can start at once (the first job starts sooner), the rest of the batch on
    its next turn, in order, none lost."""
    import pickle

    from hog.messages import JobMsg, SourceEnd
    jobs = [Job(index=i, command=f"echo {i}", where=f"loop-test:{i + 1}") for i in range(65)]
    e = engines.make(["true"])
    e.st.queue._reader.messages = iter([pickle.dumps(JobMsg(tuple(jobs[:1]))),
                                        pickle.dumps(JobMsg(tuple(jobs[1:]))),
                                        pickle.dumps(SourceEnd(65))])
    e.step()
    assert e.st.received == 4 and len(e.st.taken_ahead) == 61   # (one slot: room for 4)
    assert [d.job.command for d in e.backend.submitted] == ["echo 0"]
    for _ in range(3 * len(jobs)):
        if e.settle():
            break
        for slot in list(e.backend.attempts):
            e.backend.end_job(slot, Status.SUCCEEDED)
    assert e.finished
    assert e.st.received == 65 and not e.st.taken_ahead
    assert sorted(d.job.command for d in e.backend.submitted) == \
        sorted(f"echo {i}" for i in range(65))
    assert [r.command for r in e.st.store.all_rows()] == [f"echo {i}" for i in range(65)]


def test_a_finished_sweep_run_again_is_read_in_growing_batches_not_a_few_jobs_a_turn(
        engines):
    """An idle runner stores a few jobs a turn, so the first one starts at once; but a
    turn whose jobs start nothing (they had succeeded already) doubles the next, so
    a finished sweep of 200 jobs is read again in a handful of turns, not 50."""
    jobs = [f"true {i}" for i in range(200)]
    first = engines.make(jobs)
    for _ in range(3 * len(jobs)):
        if first.settle():
            break
        for slot in list(first.backend.attempts):
            first.backend.end_job(slot, Status.SUCCEEDED)
    assert engines.finish(first) == 0
    again = engines.make(jobs)
    turns = 1
    while not again.step():
        turns += 1
        assert turns < 100, "read a few jobs a turn"
    assert turns <= 10, turns             # 4, 8, 16, 32, 64, 128
    assert again.st.received == 200 and not again.backend.submitted
    assert again.counts() == {"succeeded": 200}
