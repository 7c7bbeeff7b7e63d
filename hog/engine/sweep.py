"""Which sweep this run is: start, resume, join or ``--fresh``; recovery of what a
dead runner left behind, judged against the job folders.

``open_store`` runs first, before any process is started: it moves an old output
directory aside (``--fresh``), refuses an output directory that holds another
sweep or job folders without a queue, opens the store, recovers jobs left running
by a runner that died, and registers this runner. ``remove_unused_output`` undoes
the output directory of a run that never had a job.

``recover`` is the one recovery, at start and whenever a runner notices a dead peer
(``control``): for each job a dead runner left running, wait for its slot process
to finish writing its folder (the folder's lock), end whatever is left of the job
(its recorded process group and session, TERM, grace, KILL: ``spawn.end_leftovers``),
and only then settle it by its folder: succeeded, or queued again (a conditional
update, so of two runners recovering the same job only one does).
"""
import os
import shutil
import sqlite3
import time
from typing import Dict, List, Optional, Tuple

from hog.backends import spawn
from hog.backends.jobenv import job_dir_variable
from hog.config import source_key
from hog.engine import eligibility
from hog.engine.state import RunState
from hog.errors import HogError, InputError, SourceError, UsageError
from hog.model import JobProcess, JobTrace
from hog.sources import SourceSpec, open_source, watch
from hog.state.db import StoreCorrupt
from hog.state.files import check_location
from hog.state.folderlock import lock_folder
from hog.state.info import info_process
from hog.state.jobdir import Layout
from hog.state.jobread import attempt_began, folder_verdict, read_info
from hog.state.orphans import UNSTARTED
from hog.state.queuecheck import check_output, hog_folders
from hog.state.rows import REBUILT
from hog.state.store import DB_NAME, JobRow, RunnerRow, Store

WRITER_WAIT_S = 5.0     # beyond the grace: a dead runner's slot process ending its job


def open_store(st: RunState) -> None:
    root = st.layout.root
    if st.cfg.fresh:
        move_aside(st)
    st.created_root = not os.path.exists(root)
    check_output(st.layout, st.cfg.output_dir)
    try:
        st.layout.prepare_root()
    except OSError as e:
        raise UsageError(f"--output_dir {st.cfg.output_dir}: cannot be used as a "
                         f"directory ({e.strerror})") from None
    st.store = Store(st.layout.state_dir)
    recovered = recover(st)
    with st.store.transaction():
        live = st.store.live_runners()
        check_sweep(st, live)
        st.runner_id = st.store.register_runner(st.backend.label(), st.cfg.keep_alive,
                                                eligibility.capacity_of(st.cfg))
    st.joiner = bool(live)
    if recovered:
        st.notices.append(recovered_note(recovered))
    if st.joiner:
        st.source_done = True
        st.notices.append(f"joining {len(live)} active runner(s) on this queue")


def recover(st: RunState, wait: bool = True) -> List[Tuple[JobRow, str]]:
    """Recover the jobs dead runners left running (see the module's docstring);
    returns the (row, 'succeeded' | 'interrupted') pairs this runner settled.

    ``wait``: wait for the folders' writers (up to the grace and ``WRITER_WAIT_S``).
    Without it (a runner's tick: its own jobs must not wait), a job whose folder is
    still being written is left for a later call, until it has been so for that long."""
    rows = st.store.orphans(st.runner_id or None)
    if not rows:
        st.orphans_seen.clear()
        return []
    patience = st.cfg.grace + WRITER_WAIT_S
    locks = []
    if wait:
        deadline = time.monotonic() + patience
        locks = [lock_folder(st.layout.folder(row.id), max(0.0, deadline - time.monotonic()))
                 for row in rows]
    else:
        now, ready = time.monotonic(), []
        for row in rows:
            lock = lock_folder(st.layout.folder(row.id), 0.0)
            since = st.orphans_seen.setdefault(row.id, now)
            if lock is not None or not os.path.isdir(st.layout.folder(row.id)) \
                    or now - since >= patience:
                locks.append(lock)
                ready.append(row)
        rows = ready
    try:
        rows = st.store.still_orphans(rows)   # another runner may have been first
        traces = [JobTrace(job_process(st.layout, row),
                           job_dir_variable(st.layout.folder(row.id))) for row in rows]
        left = spawn.end_leftovers(traces, st.cfg.grace)
        if left:
            st.display.message(f"ended {sum(left.values())} process(es) left of "
                               f"{len(left)} job(s) whose runner died")
        judged = []
        for row in rows:
            judged.append(judge(st.layout, row))
            st.orphans_seen.pop(row.id, None)
        return st.store.requeue_orphans(judged)
    finally:
        for lock in locks:
            if lock is not None:
                lock.release()


def recovered_note(recovered: List[Tuple[JobRow, str]]) -> str:
    again = sum(1 for _, s in recovered if s == "interrupted")
    unstarted = sum(1 for _, s in recovered if s == "handed")
    ran = len(recovered) - unstarted
    note = (f"recovered {ran} job(s) left running by a runner that died: "
            f"{again} queued again, {ran - again} had succeeded")
    if unstarted:
        note += f"; {unstarted} handed to its slots, never started: queued again"
    return note


def job_process(layout: Layout, row: JobRow) -> Optional[JobProcess]:
    """Who the job ``row`` was, where it ran on this machine: the store's record, else
    its INFO's (written by its slot process before the runner heard of it)."""
    if row.pid is not None and row.pgid is not None and row.proc_start:
        return JobProcess(row.pid, row.pgid, row.sid or row.pgid, row.proc_start)
    return info_process(read_info(layout, row.id), row.attempt)


def judge(layout: Layout, row: JobRow) -> Tuple[JobRow, Optional[str], dict]:
    """(row, verdict, INFO) of a dead runner's job, for ``requeue_orphans``. A handed job
    counts as started once its attempt began (its folder moved into place as its slot
    started it, streams or INFO there), as when a slot vanishes (``engine.slotloss``):
    its runner and slot may have died before either told the store."""
    if row.status == "handed":
        began = attempt_began(layout, row.id, row.attempt)
        if began is None:
            return row, UNSTARTED, {}
        return row, folder_verdict(layout, row.id) if began else None, began
    verdict, info = folder_state(layout, row) or (None, {})
    return row, verdict, info


def folder_state(layout: Layout, row: JobRow) -> Optional[Tuple[str, dict]]:
    verdict = folder_verdict(layout, row.id)
    return None if verdict is None else (verdict, read_info(layout, row.id))


def check_sweep(st: RunState, live: List[RunnerRow]) -> None:
    """Decide whether this run starts a sweep, resumes it, or joins it."""
    prefix = st.store.meta("prefix")
    if prefix is not None and prefix != st.cfg.prefix:
        raise UsageError(f"{st.cfg.output_dir}/ holds a sweep with --prefix {prefix!r}; "
                         f"use the same prefix, or another --output_dir")
    st.store.set_meta("prefix", st.cfg.prefix)
    if st.cfg.source is None:
        return
    mine = source_key(st.cfg.source)
    theirs = st.store.meta("source")
    if theirs is None:
        st.store.set_meta("source", mine)
        # a queue rebuilt from the folders (hog rebuild) resumes: what failed runs again
        st.resume = not live and st.store.meta(REBUILT) is not None
    elif theirs != mine:
        counts = st.store.counts()
        done = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        raise UsageError(
            f"{st.cfg.output_dir}/ holds another sweep ({theirs.split(':', 1)[1]}: "
            f"{done}); to run {st.cfg.source.path} use another --output_dir, or --fresh "
            f"to move the old one aside; to queue its jobs in this sweep: "
            f"hog add {st.cfg.output_dir} --job_file {st.cfg.source.path}")
    else:
        st.resume = not live
    if not live:
        st.store.set_meta("ingest_done", "0")
        if st.cfg.source.kind == "watch":   # scripts left in running/ run again
            path = st.cfg.source.path
            st.store.forget_unstarted(watch.to_run_prefix(path))   # read again from to_run/
            st.store.retry(r.id for r in st.store.rows_with_status("interrupted")
                           if r.name and watch.left_running(path, r.name))
        else:       # jobs are found again by identity as the source is read
            st.store.begin_reading()


def forget_unstarted_scripts(st: RunState) -> None:
    """A watch ending: the scripts it queued but did not start are still in to_run/;
    their rows go (the next watch queues them again), unless another runner on this
    queue may still start them."""
    if st.cfg.source is None or st.cfg.source.kind != "watch":
        return
    try:
        if not any(r.id != st.runner_id for r in st.store.live_runners()):
            st.store.forget_unstarted(watch.to_run_prefix(st.cfg.source.path))
    except (OSError, sqlite3.Error):    # the disk refuses it: the next watch drops them
        pass


def move_aside(st: RunState) -> None:
    note = move_output_aside(st.layout, st.cfg.output_dir, st.cfg.source)
    if note:
        st.notices.append(note)


def move_output_aside(layout: Layout, output_dir: str,
                      source: Optional[SourceSpec]) -> Optional[str]:
    """``--fresh``: move the output directory aside (to DIR.old-TIME), once the source
    has proved readable and no runner is active on it; the notice to show. An output
    directory another user could swap (``check_location``) is refused first: nothing
    is moved in a parent others can write to."""
    root = layout.root
    check_location(root)
    if not os.path.exists(root) or not os.listdir(root):
        return None
    check_first_job(source)             # a source that proves invalid moves nothing
    db = os.path.join(layout.state_dir, DB_NAME)
    if os.path.exists(db):
        try:
            probe: Optional[Store] = Store(layout.state_dir, create=False)
        except StoreCorrupt:
            probe = None                 # no runner can be using it: move it aside too
        try:
            if probe is not None and probe.live_runners():
                raise UsageError(f"--fresh: a runner is still active on "
                                 f"{output_dir}/; stop it first (hog stop)")
        finally:
            if probe is not None:
                probe.close()
    aside = f"{root}.old-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while os.path.exists(aside):
        aside = f"{root}.old-{time.strftime('%Y%m%d-%H%M%S')}-{n}"
        n += 1
    os.rename(root, aside)
    return f"--fresh: moved the previous {output_dir}/ to {aside}"


def check_first_job(source: Optional[SourceSpec]) -> None:
    """``InputError`` unless the source can be read and its first job is valid: a job
    file (text, YAML) is read up to its first job, a yielder file must compile (it is
    not imported here: its code runs once, in the producer)."""
    if source is None or source.kind not in ("text", "yaml", "yielder"):
        return
    try:
        if source.kind == "yielder":
            with open(source.path, "rb") as f:
                compile(f.read(), source.path, "exec")
            return
        first = next(iter(open_source(source)), None)
    except SyntaxError as e:
        raise InputError(f"{e.msg}; nothing was moved", f"{source.path}:{e.lineno}") from None
    except (OSError, ValueError) as e:
        raise InputError(f"cannot be read ({e}); nothing was moved", source.path) from None
    except (HogError, SourceError) as e:
        raise InputError(f"{e}; --fresh: nothing was moved") from None
    if first is None:
        raise InputError("--fresh: the job file holds no job; nothing was moved", source.path)


def remove_unused_output(st: RunState) -> None:
    """Nothing ran and nothing was queued: leave no empty output directory behind."""
    if st.created_root and not any(store_counts(st.layout).values()) \
            and not hog_folders(st.layout.root):
        shutil.rmtree(st.layout.root, ignore_errors=True)


def not_started(layout: Layout) -> int:
    """Queued jobs left for a later run (not those that left the source); 0 if the
    queue is gone (nothing is created to count them)."""
    try:
        store = Store(layout.state_dir, create=False)
    except HogError:
        return 0
    try:
        return store.runnable_count()
    finally:
        store.close()


def store_counts(layout: Layout) -> Dict[str, int]:
    """The queue's counts ({} if it is gone: nothing is created to count them)."""
    try:
        store = Store(layout.state_dir, create=False)
    except HogError:
        return {}
    try:
        return store.counts()
    finally:
        store.close()
