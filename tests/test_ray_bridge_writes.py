"""The Ray bridge's writes of a job folder refused by the disk, driven in-process: a
fake Ray hands the bridge a task's stream (started, output, ended) and the folder's
writes raise ENOSPC a few times (or for good), as a full disk does.

The bridge never raises: it tells the runner once that the slot cannot write, keeps
the job (it is not ended for hog's own failure), tries again with a backoff, writes
each byte of output once, and reports ``Ended`` once; told to stop while it waits,
it gives the writes up and reports the outcome as it is. (The same on a real Ray
cluster and a real tmpfs: tests/test_ray_disk_full.py.)"""
import errno
import multiprocessing
import time

import pytest

from hog.backends import wire
from hog.backends.attempt import Attempt
from hog.messages import CannotWrite, Dispatch, Ended, Started, StopHow
from hog.model import Job, Status
from hog.state.diskguard import Backoff
from hog.state.jobdir import JobFolder, Layout

from .harness import MARKERS, info

bridge_mod = pytest.importorskip("hog.backends.ray.bridge")
pytest.importorskip("ray")
from hog.backends.ray.writes import FolderWrites  # noqa: E402 - (after the skip)

INFO = dict(host="node-host", node="ab" * 28, gpu_ids=["0"], pid=4242, leader_start="1",
            started=100.0)
ENDED = dict(status=None, exit_code=0, signal=None, ended=101.0, note="", pid=4242,
             started_ok=True)


class _Remote:
    def __init__(self, calls):
        self.calls = calls

    def options(self, **kw):
        return self

    def remote(self, *args):
        self.calls.append(args)


class FakeRay:
    class exceptions:
        class TaskCancelledError(Exception):
            pass

        class RayError(Exception):
            pass

    def __init__(self):
        self.ended_jobs = []

    def remote(self, fn):
        return _Remote(self.ended_jobs)

    def get(self, ref):
        return ref

    def cancel(self, gen):
        pass


def full(n=None):
    """A write that raises ENOSPC its first ``n`` calls (every call: None)."""
    count = [0]

    def wrap(real):
        def write(*args, **kw):
            count[0] += 1
            if n is None or count[0] <= n:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(*args, **kw)
        return write
    return wrap, count


@pytest.fixture
def bridge(tmp_path):
    parent, child = multiprocessing.Pipe()
    layout = Layout(str(tmp_path))
    layout.prepare_root()
    b = bridge_mod.Bridge(child, layout, 1.0, FakeRay())
    b.heard = lambda: [wire.receive(parent) for _ in iter(lambda: parent.poll(0), False)]
    yield b
    parent.close()
    child.close()


def task(b, items, slot=0):
    d = Dispatch(job=Job(index=slot, command="true"), slot=slot, gpu_ids=("0",),
                 name=f"job_{slot}", attempt=1)
    t = bridge_mod._Task(d, iter(items), FolderWrites(slot, b.layout.state_dir, b.send))
    t.writes.backoff = Backoff(0.001, 0.01)
    b.tasks[slot] = t
    return t


def drive(b, t, stop_after=None, limit_s=5.0):
    """The bridge's loop for one task, until it is ended (``stop_after``: stop it once
    its writes have waited that many tries)."""
    deadline = time.monotonic() + limit_s
    while t.d.slot in b.tasks:
        assert time.monotonic() < deadline, "the task never ended"
        b._retry_writes()
        if stop_after is not None and t.writes.waiting and stop_after() and t.kill is None:
            b._stop(t.d.slot, StopHow.KILL)
        if t.d.slot in b.tasks and not t.writes.waiting:
            b._advance(t.d.slot)
        time.sleep(0.001)


def test_output_and_the_ending_refused_for_a_while_are_written_once_when_space_returns(
        bridge, tmp_path, monkeypatch):
    out_wrap, out_tries = full(3)
    end_wrap, end_tries = full(2)
    real_some = Attempt.write_some
    first = [True]

    def half_then_full(self, kind, data):   # a short write first, as a filling disk does
        if first[0]:
            first[0] = False
            return real_some(self, kind, data[:len(data) // 2])
        return out_wrap(real_some)(self, kind, data)
    monkeypatch.setattr(Attempt, "write_some", half_then_full)
    monkeypatch.setattr(JobFolder, "finish", end_wrap(JobFolder.finish))
    t = task(bridge, [("started", INFO), ("out", b"0123456789\n"), ("out", b"more\n"),
                      ("ended", ENDED)])
    drive(bridge, t)
    heard = bridge.heard()
    kinds = [type(m).__name__ for m in heard]
    assert kinds.count("Started") == 1 and kinds.count("Ended") == 1, heard
    blocked = [m for m in heard if isinstance(m, CannotWrite)]
    assert blocked == [CannotWrite(0, "No space left on device"), CannotWrite(0, ""),
                       CannotWrite(0, "No space left on device"), CannotWrite(0, "")], heard
    assert heard.index(blocked[-1]) < kinds.index("Ended")     # cleared, then ended
    ended = heard[-1]
    assert isinstance(ended, Ended) and ended.outcome.status is Status.SUCCEEDED
    folder = tmp_path / "job_0"
    assert (folder / "job_0.OUT").read_bytes() == b"0123456789\nmore\n"   # each byte once
    assert [m for m in MARKERS if (folder / m).exists()] == ["SUCCESS"]
    assert info(folder)["status"] == "succeeded"
    assert out_tries[0] == 5 and end_tries[0] == 3
    assert not bridge.ray.ended_jobs        # the job was never ended by hog


def test_a_folder_that_cannot_be_made_waits_and_the_job_is_not_ended(bridge, tmp_path,
                                                                      monkeypatch):
    wrap, tries = full(4)
    monkeypatch.setattr(JobFolder, "open_new", wrap(JobFolder.open_new))
    t = task(bridge, [("started", INFO), ("out", b"hi\n"), ("ended", ENDED)])
    drive(bridge, t)
    heard = bridge.heard()
    assert isinstance(heard[0], CannotWrite) and heard[0].why
    assert [type(m).__name__ for m in heard].count("Started") == 1
    assert heard[-2:] == [CannotWrite(0, ""), heard[-1]] and isinstance(heard[-1], Ended)
    assert heard[-1].outcome.status is Status.SUCCEEDED and tries[0] == 5
    assert (tmp_path / "job_0" / "job_0.OUT").read_text() == "hi\n"
    assert (tmp_path / "job_0" / "SUCCESS").exists()
    assert not bridge.ray.ended_jobs


def test_told_to_stop_while_the_disk_refuses_it_gives_the_writes_up_and_reports_once(
        bridge, tmp_path, monkeypatch):
    wrap, tries = full(None)                # full for good
    monkeypatch.setattr(Attempt, "write_some", wrap(Attempt.write_some))
    t = task(bridge, [("started", INFO), ("out", b"lost\n"), ("ended", ENDED)])
    drive(bridge, t, stop_after=lambda: tries[0] >= 3)
    heard = bridge.heard()
    assert [m for m in heard if isinstance(m, CannotWrite)] == \
        [CannotWrite(0, "No space left on device")]
    ended = [m for m in heard if isinstance(m, Ended)]
    assert len(ended) == 1 and ended[0].outcome.status is Status.INTERRUPTED
    assert len(bridge.ray.ended_jobs) == 1  # the job ended because it was told to stop
    folder = tmp_path / "job_0"
    assert not any((folder / m).exists() for m in MARKERS)
    assert info(folder)["status"] == "running"      # what could be written, kept
    assert isinstance(heard[0], Started) or isinstance(heard[1], Started)
