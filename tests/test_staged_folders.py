"""A handed job's folder made ahead (``state.staging``): while the job before it runs,
the real slot process makes it under ``.hog/next/`` and moves it into place with one
rename as the job starts; given back, it leaves nothing; a name taken meanwhile is
refused as before; what a killed slot left there is removed by the next slot.
Real bash jobs held by a FIFO until the test lets them end."""
import os
import signal
from pathlib import Path

import pytest

from hog.backends.local import LocalBackend
from hog.messages import Ended, Withdrawn
from hog.model import Status
from hog.state.jobdir import Layout
from hog.state.jobread import read_info
from hog.state.staging import next_dir
from tests.harness import job_file, pid_alive, run_hog, wait_for
from tests.slot_support import dispatch, ended, events_until, start_slot


class Gate:
    """A FIFO a job reads from: it ends when the test opens and closes the other end."""

    def __init__(self, path: Path):
        self.path = path
        os.mkfifo(path)

    def command(self) -> str:
        return f"cat {self.path} > /dev/null"

    def open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY)
        os.close(fd)


@pytest.fixture
def slot(tmp_path):
    made = []

    def make() -> LocalBackend:
        backend = start_slot(str(tmp_path / "out"))
        made.append((backend, backend.procs[0].pid))
        return backend
    yield make
    for backend, pid in made:
        if backend.conns:
            backend.shutdown([])
        assert not pid_alive(pid)


def staged(layout: Layout) -> list:
    try:
        return sorted(os.listdir(next_dir(layout)))
    except FileNotFoundError:
        return []


def running_with_a_next_job(backend: LocalBackend, gate: Gate) -> None:
    """Job 0 runs (held by ``gate``); job 1 is handed to follow it and is staged."""
    backend.submit(dispatch(0, gate.command()))
    events_until(backend, lambda ev: ev)                   # job 0's Started
    backend.submit(dispatch(1, "echo one", ahead=True))
    wait_for(lambda: staged(backend.layout), what="job 1's folder made ahead")


def test_the_next_jobs_folder_is_made_ahead_and_moved_into_place_as_it_starts(slot, tmp_path):
    backend, gate = slot(), Gate(tmp_path / "gate")
    running_with_a_next_job(backend, gate)
    layout = backend.layout
    name, = staged(layout)
    assert name == f"job_1.{backend.procs[0].pid}"
    assert sorted(os.listdir(os.path.join(next_dir(layout), name))) == ["job_1.ERR",
                                                                         "job_1.OUT"]
    assert not os.path.lexists(layout.folder(1))        # never shown before it starts
    gate.open()
    events = events_until(backend, ended(1))
    assert [e.outcome.status for e in events if isinstance(e, Ended)] == \
        [Status.SUCCEEDED, Status.SUCCEEDED]
    assert Path(layout.out_path(1)).read_text() == "one\n"
    assert read_info(layout, 1)["status"] == "succeeded"
    assert sorted(os.listdir(layout.folder(1))) == ["INFO", "SUCCESS", "job_1.ERR",
                                                    "job_1.OUT"]
    assert staged(layout) == []


def test_a_handed_job_given_back_leaves_no_folder_anywhere(slot, tmp_path):
    backend, gate = slot(), Gate(tmp_path / "gate")
    running_with_a_next_job(backend, gate)
    backend.withdraw(0, 1)
    assert events_until(backend, lambda ev: ev) == [Withdrawn(0, 1)]
    assert staged(backend.layout) == [] and not os.path.lexists(backend.layout.folder(1))
    gate.open()
    events_until(backend, ended(0))
    assert not os.path.lexists(backend.layout.folder(1))


def test_a_link_planted_at_its_name_meanwhile_is_refused_as_ever(slot, tmp_path):
    backend, gate = slot(), Gate(tmp_path / "gate")
    running_with_a_next_job(backend, gate)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, backend.layout.folder(1))
    gate.open()
    last = events_until(backend, ended(1))[-1].outcome
    assert last.index == 1 and last.status is Status.FAILED and "link" in last.note
    assert list(elsewhere.iterdir()) == [] and staged(backend.layout) == []


def test_what_a_killed_slot_made_ahead_is_removed_by_the_next_slot(slot, tmp_path):
    backend, gate = slot(), Gate(tmp_path / "gate")
    running_with_a_next_job(backend, gate)
    job_pid = read_info(backend.layout, 0)["pid"]
    os.kill(backend.procs[0].pid, signal.SIGKILL)        # the slot, then the job's group
    backend.procs[0].join(10)
    os.killpg(job_pid, signal.SIGKILL)
    assert staged(backend.layout) != []                  # left behind
    backend.shutdown([])
    slot()                                               # a new slot on the same output
    wait_for(lambda: staged(backend.layout) == [], what="the stale folder removed")


def test_a_sweep_that_ends_leaves_no_staging_folder_behind(tmp_path):
    out, seen = tmp_path / "out", tmp_path / "seen"
    jobs = job_file(tmp_path, f"sleep 0.5; ls {out}/.hog/next > {seen}", "true", "true")
    r = run_hog(tmp_path, "--job_file", jobs, "--gpus", "0", "--output_dir", out)
    assert r.returncode == 0, r.stderr
    names = seen.read_text().split()        # job 1 was made ahead while job 0 ran
    assert len(names) == 1 and names[0].startswith("job_1."), names
    assert "hog.sqlite" in os.listdir(out / ".hog") and not (out / ".hog" / "next").exists()
