"""What happened in a sweep, as data: one record per job for scripts and notebooks
(``results.jsonl`` and ``results.csv`` beside the job folders), and every attempt of
every job for the report's timeline.

A record is flat (no nested values) and always has the same keys in the same order,
so ``pandas.read_json(path, lines=True)`` and ``pandas.read_csv(path)`` give a clean
frame: times are UTC ISO 8601 in ``started_at`` / ``ended_at`` (pandas parses those
names as datetimes) and seconds since the epoch in ``started_epoch`` / ``ended_epoch``.
After ``FIELDS`` come the grid parameters the sweep's jobs carry, ``param.<key>``
sorted by key (empty for a job without that parameter).

The files are written (atomically) by ``hog report`` and at the end of every runner's
run, and always hold what a full rebuild from the store would, byte for byte; the store
stays the source of truth. A write keeps what it can of the last one: the results mark
(``RESULTS_MARK`` in the state folder) holds, every ``CHECK_EVERY`` jobs of the
leading run of finished jobs, the byte offsets in both files and a digest of the
store's rows up to there. The next write reads the rows again (cheap), copies the
bytes up to the last checkpoint whose digest still matches, and encodes only the jobs
after it: a finished sweep that grows by ``hog add`` or is resumed re-encodes its tail,
a retry re-encodes from the retried job's checkpoint on.
"""
import csv
import hashlib
import io
import json
import math
import os
import sqlite3
import sys
import time
from dataclasses import dataclass
from itertools import islice
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from hog.model import Status, slot_label
from hog.state.files import UnsafePath, from_iso, replaced_atomically
from hog.state.jobdir import (
    RESULTS_CSV,
    RESULTS_JSONL,
    RESULTS_MARK,
    Layout,
    earlier_attempts,
    read_info,
)
from hog.state.reading import SweepReader
from hog.state.rows import JobRow, ResultRow, RunnerRow

FIELDS = ("index", "name", "folder", "command", "status", "exit_code", "signal", "attempts",
          "gpus", "slot", "runner", "host", "started_at", "ended_at", "started_epoch",
          "ended_epoch", "duration_s", "note", "in_source")
PARAM = "param."                # a grid parameter's column: param.lr
CHECK_EVERY = 1000              # jobs between two checkpoints of the results mark
_MARK_VERSION = 1
_SETTLED = frozenset(s.value for s in Status.having("finished"))


_SECONDS: Dict[int, str] = {}

RAN = tuple(s.value for s in Status.having("started_command"))   # had started its command


def utc_iso(ts: Optional[float]) -> Optional[str]:
    """``2024-05-01T09:30:12.345+00:00`` (UTC, to the millisecond, truncated)."""
    if ts is None:
        return None
    frac, whole = math.modf(ts)         # rounded to microseconds as datetime does it
    second, micro = int(whole), round(frac * 1e6)
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    text = _SECONDS.get(second)
    if text is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        text = _SECONDS[second] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{text}.{micro // 1000:03d}+00:00"


def params_of(spec: Optional[str]) -> Dict[str, Any]:
    """The grid parameters in a job's ``spec`` JSON: {key: value}, in grid order."""
    if not spec:
        return {}
    try:
        pairs = json.loads(spec).get("params") or ()
        return {str(k): v for k, v in pairs}
    except (ValueError, TypeError, AttributeError):     # not what hog writes: no params
        return {}


def columns(store: SweepReader) -> Tuple[str, ...]:
    """The keys of every record of the sweep: ``FIELDS``, then its ``param.*``."""
    return FIELDS + tuple(PARAM + k for k in store.param_keys())


def record(row: ResultRow, layout: Layout, params: Sequence[str] = ()) -> dict:
    """The flat record of one job (its latest attempt); ``params``: the sweep's grid
    parameters (the ``param.*`` columns), each None where this job has no value."""
    (index, name, command, status, exit_code, signal, attempt, gpus, slot, runner, host,
     started, ended, note, in_source) = row[:15]
    if status == "running":
        ended = None
    folder = layout.folder_name(index)
    rec = {
        "index": index,
        "name": name or folder,
        "folder": folder,
        "command": command,
        "status": status,
        "exit_code": exit_code,
        "signal": signal,
        "attempts": attempt,
        "gpus": gpus or "",
        "slot": "" if slot is None else slot_label(slot),
        "runner": runner,
        "host": host,
        "started_at": None if started is None else utc_iso(started),
        "ended_at": None if ended is None else utc_iso(ended),
        "started_epoch": None if started is None else round(started, 3),
        "ended_epoch": None if ended is None else round(ended, 3),
        "duration_s": None if started is None or ended is None
        else round(max(0.0, ended - started), 3),
        "note": note,
        "in_source": bool(in_source),
    }
    if params:
        values = params_of(row.spec)
        for key in params:
            rec[PARAM + key] = values.get(key)
    return rec


def records(store: SweepReader, layout: Layout) -> Iterator[dict]:
    """Every job's record, by index: what ``results.jsonl`` holds."""
    params = store.param_keys()
    for row in store.result_rows():
        yield record(row, layout, params)


# ------------------------------------------------------------- the files
@dataclass(frozen=True)
class Checkpoint:
    """The first ``count`` jobs end at these byte offsets of the two files (the CSV's
    header included), and the store's rows for them had this digest."""

    count: int
    jsonl: int
    csv: int
    digest: str


def _stat(file: Any) -> List[int]:
    """What tells the file apart from another: a path, or an open file (flushed)."""
    if not isinstance(file, str):
        file.flush()
    st = os.stat(file) if isinstance(file, str) else os.fstat(file.fileno())
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _read_mark(layout: Layout, keys: Sequence[str], paths: Sequence[str]) -> List[Checkpoint]:
    """The checkpoints of the last write, if the files are still the ones it wrote with
    these columns; [] otherwise."""
    try:
        with open(os.path.join(layout.state_dir, RESULTS_MARK), encoding="utf-8") as f:
            mark = json.load(f)
        if mark.get("version") != _MARK_VERSION or mark.get("columns") != list(keys) \
                or mark.get("prefix") != layout.prefix \
                or mark.get("files") != [_stat(p) for p in paths]:
            return []
        return [Checkpoint(*c) for c in mark["checkpoints"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []


def _write_mark(layout: Layout, keys: Sequence[str], files: Sequence[List[int]],
                checkpoints: List[Checkpoint]) -> None:
    mark = {"version": _MARK_VERSION, "columns": list(keys), "prefix": layout.prefix,
            "files": list(files),
            "checkpoints": [[c.count, c.jsonl, c.csv, c.digest] for c in checkpoints]}
    try:
        with replaced_atomically(os.path.join(layout.state_dir, RESULTS_MARK)) as f:
            json.dump(mark, f, separators=(",", ":"))
    except (OSError, UnsafePath):   # the next write is a whole one
        pass


def _row_bytes(row: ResultRow) -> bytes:
    return repr(tuple(row)).encode("utf-8", "backslashreplace")


class _Encoder:
    """Encodes records into the two files' bytes, a batch at a time."""

    def __init__(self, layout: Layout, keys: Sequence[str]) -> None:
        self.layout = layout
        self.params = [k[len(PARAM):] for k in keys if k.startswith(PARAM)]
        self.dumps = json.JSONEncoder(separators=(", ", ": ")).encode
        self.text = io.StringIO()
        self.writer = csv.writer(self.text, lineterminator="\n")

    def header(self, keys: Sequence[str]) -> bytes:
        self.writer.writerow(keys)
        return self._take()

    def encode(self, rows: Iterable[ResultRow]) -> Tuple[bytes, bytes]:
        lines = []
        for row in rows:
            rec = record(row, self.layout, self.params)
            lines.append(self.dumps(rec))
            self.writer.writerow(["" if v is None else v for v in rec.values()])
        jsonl = "".join(line + "\n" for line in lines).encode("utf-8", "backslashreplace")
        return jsonl, self._take()

    def _take(self) -> bytes:
        data = self.text.getvalue().encode("utf-8", "backslashreplace")
        self.text.seek(0)
        self.text.truncate()
        return data


def _kept(rows: Iterator[ResultRow], checkpoints: List[Checkpoint]
          ) -> Tuple[Optional[Checkpoint], List[ResultRow], Any]:
    """The last checkpoint whose digest the store's rows still give (None: none), the
    rows read past it, and the digest of the rows up to it."""
    kept: Optional[Checkpoint] = None
    digest = hashlib.blake2b(digest_size=16)
    done = 0
    for cp in checkpoints:
        batch = list(islice(rows, cp.count - done))
        trial = digest.copy()
        trial.update(b"".join(map(_row_bytes, batch)))
        if len(batch) != cp.count - done or trial.hexdigest() != cp.digest:
            return kept, batch, digest
        kept, done, digest = cp, cp.count, trial
    return kept, [], digest


def _copy(path: str, out: Any, size: int) -> None:
    """The first ``size`` bytes of ``path`` into ``out``."""
    out.flush()
    with open(path, "rb") as f:
        left = size
        while left:
            sent = os.sendfile(out.fileno(), f.fileno(), None, left)
            if not sent:
                raise OSError(f"{path} is shorter than its results mark says")
            left -= sent


def write_results(store: SweepReader, layout: Layout, whole: bool = False) -> Tuple[str, str]:
    """Write ``results.jsonl`` and ``results.csv`` (each atomically), keeping what the
    last write's checkpoints show is unchanged (``whole``: encode every record);
    returns their paths."""
    paths = jsonl, csv_path = layout.sweep_file(RESULTS_JSONL), layout.sweep_file(RESULTS_CSV)
    keys = columns(store)
    checkpoints = [] if whole else _read_mark(layout, keys, paths)
    encoder = _Encoder(layout, keys)
    rows = iter(store.result_rows())
    kept, pending, digest = _kept(rows, checkpoints)
    new: List[Checkpoint] = []
    with replaced_atomically(jsonl, binary=True) as jf, \
            replaced_atomically(csv_path, binary=True) as cf:
        if kept is None:
            at = Checkpoint(0, 0, cf.write(encoder.header(keys)), digest.hexdigest())
        else:
            _copy(jsonl, jf, kept.jsonl)
            _copy(csv_path, cf, kept.csv)
            at = kept
            new = [c for c in checkpoints if c.count <= kept.count]
        settled = True      # all jobs so far are finished: checkpoints go on
        count = at.count
        batch: List[ResultRow] = []
        sizes = [at.jsonl, at.csv]

        def flush() -> None:
            jb, cb = encoder.encode(batch)
            jf.write(jb)
            cf.write(cb)
            sizes[0] += len(jb)
            sizes[1] += len(cb)
            batch.clear()

        for row in _chain(pending, rows):
            if settled and row.status not in _SETTLED:
                if batch:
                    flush()
                    new.append(Checkpoint(count, sizes[0], sizes[1], digest.hexdigest()))
                settled = False
            batch.append(row)
            count += 1
            if settled:
                digest.update(_row_bytes(row))
            if len(batch) >= CHECK_EVERY:
                flush()
                if settled:
                    new.append(Checkpoint(count, sizes[0], sizes[1], digest.hexdigest()))
        if batch:
            flush()
            if settled:
                new.append(Checkpoint(count, sizes[0], sizes[1], digest.hexdigest()))
        written = [_stat(jf), _stat(cf)]    # these files, not any a later write puts there
    _write_mark(layout, keys, written, new)
    return jsonl, csv_path


def _chain(first: List[ResultRow], rest: Iterator[ResultRow]) -> Iterator[ResultRow]:
    yield from first
    yield from rest


def save_results(store: SweepReader, layout: Layout) -> None:
    """``write_results`` for the end of a run: a failure is reported, never raised."""
    try:
        write_results(store, layout)
    except (OSError, sqlite3.Error, UnsafePath) as e:
        print(f"hog: could not write {layout.sweep_file(RESULTS_JSONL)}: {e}", file=sys.stderr)


# ------------------------------------------------------------------ attempts
@dataclass(frozen=True)
class Attempt:
    """One run of a job on a slot, for the timeline."""

    job: int                    # the job's index (folder number)
    attempt: int
    status: str                 # as the attempt ended; 'running' while it runs
    exit_code: Optional[int]
    signal: Optional[str]
    runner: Optional[int]
    host: Optional[str]
    slot: int                   # GPU slots 0, 1, ...; CPU slots -1, -2, ...
    gpus: Tuple[str, ...]
    started: float
    ended: Optional[float]      # None while it runs
    latest: bool                # False for an earlier attempt of a job run again




def attempts(rows: Iterable[JobRow], runners: List[RunnerRow], layout: Layout) -> List[Attempt]:
    """Every attempt that ran: the latest from the store, earlier ones from the INFO
    files kept in job folders (read only for jobs that ran more than once)."""
    hosts = {r.id: r.host for r in runners}
    out: List[Attempt] = []
    for row in rows:
        latest = _latest(row, hosts, layout)
        if latest is not None:
            out.append(latest)
        if row.attempt >= 2:
            for info in earlier_attempts(layout, row.id):
                a = _from_info(row, info, runners)
                if a is not None and a.attempt < row.attempt:
                    out.append(a)
    return out


def _latest(row: JobRow, hosts: Dict[int, str], layout: Layout) -> Optional[Attempt]:
    if row.started is None or row.slot is None or row.attempt < 1:
        return None
    status = row.status
    if status == "queued":              # an attempt ended and the job waits to run again
        info = read_info(layout, row.id)
        was = info.get("status") if info.get("attempt") == row.attempt else None
        status = was if was in RAN and was != "running" else "failed"
    elif status not in RAN or row.note == "cancelled before it started":
        return None
    ended = None if status == "running" else row.ended
    if ended is not None and ended < row.started:
        return None
    return Attempt(job=row.id, attempt=row.attempt, status=status, exit_code=row.exit_code,
                   signal=row.signal, runner=row.runner,
                   host=None if row.runner is None else hosts.get(row.runner),
                   slot=row.slot, gpus=tuple(g for g in (row.gpus or "").split(",") if g),
                   started=row.started, ended=ended, latest=row.status != "queued")


def _from_info(row: JobRow, info: dict, runners: List[RunnerRow]) -> Optional[Attempt]:
    started, ended = from_iso(info.get("started")), from_iso(info.get("ended"))
    slot, number = info.get("slot"), info.get("attempt")
    if started is None or ended is None or not isinstance(slot, int) \
            or not isinstance(number, int):
        return None
    host = info.get("host")
    runner = next((r.id for r in runners if r.host == host and r.started <= started
                   and (r.ended is None or started <= r.ended)), row.runner)
    gpus = info.get("gpus") or []
    return Attempt(job=row.id, attempt=number, status=str(info.get("status") or "failed"),
                   exit_code=info.get("exit_code"), signal=info.get("signal"), runner=runner,
                   host=host, slot=slot, gpus=tuple(str(g) for g in gpus), started=started,
                   ended=max(started, ended), latest=False)

