"""One attempt of a job, as recorded in its folder: the one writer of every path.

``Attempt.open`` makes the folder (first moving whatever an earlier attempt left to
numbered names, marker first) and takes its writer lock (``JobFolder.lock``, let go
once the marker is written), ``streams`` makes ``.OUT`` and ``.ERR`` (new files, never
through a link), ``started`` writes INFO with the job's pid (and, locally, its group,
session and start time) while it runs, ``finished`` writes the final INFO and then the
marker (``hog.state.jobdir`` does the writes, relative to the folder's file descriptor)
and returns the ``Outcome``. ``ended_unrun`` is the ending of an attempt whose job did
not run, or whose executor vanished: ``hog: why`` is appended to its ``.ERR`` (an empty
``.OUT`` is made) before the same final INFO and marker. The consumer, the Ray bridge
and the runner (jobs skipped or unschedulable, lost slots) all end attempts here, so
every path leaves the same INFO fields and one marker.
"""
import os
import time
from typing import Dict, Iterable, Optional, Tuple

from hog.messages import Dispatch
from hog.model import NO_USAGE, JobProcess, Outcome, Status, Usage
from hog.state import staging
from hog.state.folderlock import FolderLock
from hog.state.info import info_fields, render_info
from hog.state.jobdir import JobFolder, Layout
from hog.state.rows import job_spec

LOCK_WAIT_S = 60.0


class Attempt:
    """The folder of ``d``'s attempt, and what is known of it so far."""

    def __init__(self, layout: Layout, d: Dispatch, folder: JobFolder):
        self.d = d
        self.folder = folder
        self.path = folder.path
        self.out_path = folder.out_path
        self.err_path = folder.err_path
        self.pid: Optional[int] = None
        self.start_time: Optional[float] = None
        self.gpu_ids: Tuple[str, ...] = tuple(d.gpu_ids)
        self.host: Optional[str] = None          # set where it ran elsewhere (Ray)
        self.node: Optional[str] = None
        self.proc: Optional[JobProcess] = None
        self.fds: Dict[str, int] = {}
        self.lock: Optional[FolderLock] = None
        self.ended = False      # (reopen) the folder already holds this attempt's ending
        self.made = False       # (stage) its .OUT and .ERR are made, to be opened as they are

    @classmethod
    def open(cls, layout: Layout, d: Dispatch) -> "Attempt":
        """A new attempt (run, or ended unrun: skipped, unschedulable): make the folder,
        or first move whatever an earlier attempt left there to numbered names (its
        marker first), whichever attempt number that was, so nothing is overwritten.
        ``UnsafePath`` if the folder or one of those files is a link (nothing written)."""
        folder = JobFolder(layout, d.job.index)
        # held from before anything moves until the marker is written; a recovering
        # runner holds it only briefly
        lock = folder.open_new(LOCK_WAIT_S)
        attempt = cls(layout, d, folder)
        attempt.lock = lock
        return attempt

    @classmethod
    def stage(cls, layout: Layout, d: Dispatch) -> "Attempt":
        """A handed job's attempt made ahead (``state.staging``): its folder and streams
        under ``.hog/next/`` until ``publish`` moves them into place as it starts, or
        ``discard`` removes them. Raises as ``open`` and ``streams`` do (made nothing)."""
        folder = JobFolder(layout, d.job.index)
        attempt = cls(layout, d, folder)
        try:
            attempt.lock = staging.stage(folder, LOCK_WAIT_S)
            attempt.streams()
            attempt.close_output()  # (none open for writing until the job starts: a file
            attempt.made = True     # system can still be remounted read-only meanwhile)
        except BaseException:
            attempt.discard()
            raise
        return attempt

    def publish(self) -> bool:
        """The staged folder moved into place (False: nothing moved; ``discard`` it)."""
        return staging.publish(self.folder)

    def discard(self) -> None:
        """A staged attempt that will not run: its folder and streams removed."""
        self.close_output()
        self.release()
        staging.discard(self.folder)

    @classmethod
    def reopen(cls, layout: Layout, d: Dispatch, pid: Optional[int] = None) -> "Attempt":
        """An attempt whose writer is gone: its folder as it is, when what is there is
        this attempt's (unended, INFO of this attempt and pid); otherwise the writer never
        got to make it, and what an earlier attempt left is moved aside as in ``open``.
        The folder's writer lock is taken (as ``open`` does) before it is looked at: two
        writers ending one attempt at once end it once."""
        folder = JobFolder(layout, d.job.index)
        lock = folder.open_existing(LOCK_WAIT_S)
        ended = folder.ended_attempt(d.attempt)     # ended by the other writer: left so
        if not ended and not folder.holds_attempt(d.attempt, pid):
            folder.move_aside()
        attempt = cls(layout, d, folder)
        attempt.lock = lock
        attempt.pid = pid
        attempt.ended = ended
        return attempt

    @staticmethod
    def refused(d: Dispatch, why: str, ended: Optional[float] = None) -> Outcome:
        """The outcome of an attempt whose folder could not be used safely (``why``, from
        ``UnsafePath``): failed, with nothing written anywhere."""
        now = time.time() if ended is None else ended
        return Outcome(index=d.job.index, name=d.name, slot=d.slot, status=Status.FAILED,
                       exit_code=None, signal=None, started=now, ended=now, pid=None,
                       attempt=d.attempt, err_path="", note=why)

    # ---------------------------------------------------------- running
    def streams(self) -> Tuple[int, int]:
        """``.OUT`` and ``.ERR``, made new for this attempt and open for writing: what
        the job's stdout and stderr are (spawn), or what ``write`` appends to (Ray)."""
        if not self.fds:
            out, err = staging.streams(self.folder) if self.made else self.folder.streams()
            self.fds = {"out": out, "err": err}
        return self.fds["out"], self.fds["err"]

    def open_output(self) -> None:
        """Open ``.OUT`` and ``.ERR`` for ``write`` (new, empty), for output that arrives
        as data rather than through the job's own file descriptors (Ray)."""
        self.streams()

    def write(self, kind: str, data: bytes) -> None:
        """Append ``data`` to the ``"out"`` or ``"err"`` opened by ``open_output``."""
        view = memoryview(data)
        while view:
            view = view[self.write_some(kind, view):]

    def write_some(self, kind: str, data: memoryview) -> int:
        """One write of ``data`` (or its start) to ``"out"`` or ``"err"``: how many
        bytes went (all of them where the stream is not open: nothing to write to)."""
        fd = self.fds.get(kind)
        return len(data) if fd is None else os.write(fd, data)

    def close_output(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}

    def started(self, pid: int, started: float, host: Optional[str] = None,
                node: Optional[str] = None, gpu_ids: Optional[Iterable[str]] = None,
                proc: Optional[JobProcess] = None) -> None:
        """The job's process runs: INFO says so. ``host``, ``node`` and ``gpu_ids`` are
        given where the backend chose them (Ray); ``proc``, the job's identity, where it
        runs on this machine (INFO keeps it: what recovery ends after a crash)."""
        self.pid = pid
        self.proc = proc
        self.start_time = started
        if gpu_ids is not None:
            self.gpu_ids = tuple(gpu_ids)
        if host is not None:
            self.host, self.node = host, node
        self.folder.write_info(self._fields(Status.RUNNING, started=started))

    # ------------------------------------------------------------ endings
    def finished(self, status: Status, exit_code: Optional[int], signal: Optional[str],
                 ended: float, note: str = "", started: Optional[float] = None,
                 usage: Usage = NO_USAGE) -> Outcome:
        """The attempt ended: the final INFO, then the marker; its ``Outcome``. INFO ends
        with the CPU figures of ``usage`` (the GPU ones are the runner's: ``add_gpu_usage``)."""
        self.close_output()
        outcome = self.outcome(status, exit_code, signal, ended, note, started, usage)
        fields = self._fields(status, exit_code=exit_code, signal=signal,
                              started=outcome.started, ended=ended)
        fields.update((k, v) for k, v in usage.fields().items()     # last; None: unknown
                      if not k.startswith("gpu_"))
        self.folder.finish(fields, outcome)
        self.folder.close()         # (kept open while a refused write may be tried again)
        self.release()
        return outcome

    def release(self) -> None:
        """Let go of the folder's writer lock (the marker is written, or the writer gives
        up): a runner recovering the job no longer waits for it."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def outcome(self, status: Status, exit_code: Optional[int], signal: Optional[str],
                ended: float, note: str = "", started: Optional[float] = None,
                usage: Usage = NO_USAGE) -> Outcome:
        """The ``Outcome`` ``finished`` records (nothing is written): also what is
        reported when the folder cannot be written."""
        if started is None:
            started = self.start_time if self.start_time is not None else ended
        d = self.d
        return Outcome(index=d.job.index, name=d.name, slot=d.slot, status=status,
                       exit_code=exit_code, signal=signal, started=started, ended=ended,
                       pid=self.pid, attempt=d.attempt, err_path=self.err_path, note=note,
                       usage=usage)

    def ended_unrun(self, status: Status, why: str, note: Optional[str] = None,
                    started: Optional[float] = None, ended: Optional[float] = None) -> Outcome:
        """The attempt ended without a result of its own (it could not start, was never
        to run, or its executor vanished): ``hog: why`` goes to its ``.ERR``, then as
        ``finished``. ``note`` (default ``why``) is the outcome's note."""
        line = f"hog: {why}\n".encode("utf-8", "backslashreplace")
        if self.ended:
            pass                    # its ending is written: nothing is added to it
        elif self.fds:
            self.write("err", line)
        else:
            self.folder.append(self.err_path, line)
            self.folder.append(self.out_path, b"")
        if ended is None:
            ended = time.time()
        return self.finished(status, None, None, ended, why if note is None else note,
                             started=started)

    def _fields(self, status: Status, **times) -> dict:
        d = self.d
        fields = info_fields(name=d.name, index=d.job.index, command=d.job.command,
                             gpu_ids=self.gpu_ids, slot=d.slot, pid=self.pid,
                             attempt=d.attempt, status=status, **times)
        # what ``hog rebuild`` needs to recreate the job's row from its folder
        fields.update(origin=d.job.where, source_pos=d.source_pos, options=job_spec(d.job),
                      ident=d.ident)
        if d.rerun:
            fields.update(rerun=d.rerun, oom_retry=d.oom_retry)
        if self.host is not None:
            fields["host"] = self.host
            fields["node"] = self.node
        if self.proc is not None:
            fields.update(pgid=self.proc.pgid, sid=self.proc.sid, proc_start=self.proc.start)
        return fields


def add_gpu_usage(layout: Layout, index: int, usage: Usage) -> None:
    """Append the GPU figures of ``usage`` to the INFO of job ``index``'s attempt that has
    just ended (the runner's, as it records the outcome, before anything can start the
    job again). Appended in place, so the marker, a hard link to INFO, says the same.
    A folder that cannot be written (gone, a link, the disk refusing) keeps its INFO."""
    fields = {k: v for k, v in usage.fields().items() if k.startswith("gpu_")}
    text = render_info(fields).encode("ascii")
    if os.path.islink(layout.folder(index)):
        return
    try:
        fd = os.open(layout.info_path(index), os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        os.write(fd, text)
    except OSError:
        pass
    finally:
        os.close(fd)
