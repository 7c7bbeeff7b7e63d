"""Writing ``results.jsonl`` and ``results.csv`` so that each write encodes only what
changed: the files always hold what a whole write from the store gives, byte for byte
(``hog.state.results`` makes the records), but a write keeps the bytes of the jobs it
can show are unchanged.

A checkpoint marks the end of a run of finished jobs: how many jobs come before it,
the last one's number, the byte offsets in both files there (the CSV's header
included), and a digest of the store's rows of the jobs since the previous checkpoint.
Checkpoints cover only the leading run of finished jobs (every ``CHECK_EVERY`` jobs),
since those rarely change. The results mark (``RESULTS_MARK`` in the state folder)
keeps the checkpoints of the files last written. A write reads the store's rows again
(cheap), keeps the files up to the last checkpoint whose rows still give its digest,
and encodes the jobs after it: a retried job costs the jobs from its checkpoint on.

``ResultsSpool`` is a runner's: while the run goes, it encodes the jobs that finished,
in order, into files of its own in the state folder; at the end of the run those are
checked the same way, completed and moved into place, so the end of a run encodes only
the jobs that had not finished in order (``save_results``).
"""
import csv
import io
import json
import os
import sqlite3
import sys
import time
from dataclasses import dataclass
from itertools import chain, islice, takewhile
from typing import IO, Any, Iterator, List, Optional, Sequence, Tuple

from hog.model import Status
from hog.state.files import UnsafePath, refuse_symlink, replaced_atomically
from hog.state.identity import builtin_hash
from hog.state.jobdir import RESULTS_CSV, RESULTS_JSONL, RESULTS_MARK, RESULTS_SPOOL, Layout
from hog.state.reading import SweepReader
from hog.state.resultdates import checkpoint, date_after_store, date_results
from hog.state.results import PARAM, columns, record
from hog.state.rows import ResultRow

CHECK_EVERY = 1000              # jobs between two checkpoints at most
_MARK_VERSION = 2
_SETTLED = frozenset(s.value for s in Status.having("finished"))


@dataclass(frozen=True)
class Checkpoint:
    """The first ``count`` jobs, up to job ``last_id``, end at these byte offsets of the
    two files; ``digest``: of the store's rows since the previous checkpoint."""

    count: int
    last_id: int
    jsonl: int
    csv: int
    digest: str


def _digest(rows: Sequence[ResultRow]) -> str:
    """The digest of rows: of their values, exactly."""
    return _Digest().add(rows).hexdigest()


class _Digest:
    """``_digest`` of rows given a part at a time: the rows of a checkpoint that grows
    are each read once, not all again each time it grows."""

    def __init__(self) -> None:
        self.hash = builtin_hash("blake2b", ("_blake2", "hashlib"))(digest_size=16)
        self.count = 0

    def add(self, rows: Sequence[ResultRow]) -> "_Digest":
        self.hash.update("".join(map(tuple.__repr__, rows)).encode("utf-8",
                                                                   "backslashreplace"))
        self.count += len(rows)
        return self

    def hexdigest(self) -> str:
        return self.hash.hexdigest()        # (it may be added to after)


def _stat(file: Any) -> List[int]:
    """What tells the file apart from another: a path, or an open file (flushed)."""
    if not isinstance(file, str):
        file.flush()
    st = os.stat(file) if isinstance(file, str) else os.fstat(file.fileno())
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _visible(layout: Layout) -> Tuple[str, str]:
    return layout.sweep_file(RESULTS_JSONL), layout.sweep_file(RESULTS_CSV)


def _read_mark(layout: Layout, keys: Sequence[str]) -> Tuple[List[Checkpoint], List[Any]]:
    """The checkpoints of the last write and its files' ``_stat``, if the files are still
    the ones it wrote with these columns; ([], []) otherwise."""
    try:
        with open(os.path.join(layout.state_dir, RESULTS_MARK), encoding="utf-8") as f:
            mark = json.load(f)
        if mark.get("version") != _MARK_VERSION or mark.get("columns") != list(keys) \
                or mark.get("prefix") != layout.prefix \
                or mark.get("files") != [_stat(p) for p in _visible(layout)]:
            return [], []
        return [Checkpoint(*c) for c in mark["checkpoints"]], mark["files"]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return [], []


def _write_mark(layout: Layout, keys: Sequence[str], files: Sequence[List[int]],
                checkpoints: List[Checkpoint]) -> None:
    mark = {"version": _MARK_VERSION, "columns": list(keys), "prefix": layout.prefix,
            "files": list(files),
            "checkpoints": [[c.count, c.last_id, c.jsonl, c.csv, c.digest]
                            for c in checkpoints]}
    try:
        with replaced_atomically(os.path.join(layout.state_dir, RESULTS_MARK)) as f:
            json.dump(mark, f, separators=(",", ":"))
    except (OSError, UnsafePath):   # the next write is a whole one
        pass


class _Encoder:
    """Encodes records into the two files' bytes, a batch at a time."""

    def __init__(self, layout: Layout, keys: Sequence[str]) -> None:
        self.layout = layout
        self.params = [k[len(PARAM):] for k in keys if k.startswith(PARAM)]
        self.dumps = json.JSONEncoder(separators=(", ", ": ")).encode
        self.text = io.StringIO()
        self.writer = csv.writer(self.text, lineterminator="\n")
        self.writer.writerow(keys)
        self.header = self._take()

    def encode(self, rows: Sequence[ResultRow]) -> Tuple[bytes, bytes]:
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
          ) -> Tuple[Optional[Checkpoint], List[ResultRow]]:
    """The last checkpoint up to which the store's rows still give the digests (None:
    none), and the rows read past it."""
    kept: Optional[Checkpoint] = None
    done = 0
    for cp in checkpoints:
        batch = list(islice(rows, cp.count - done))
        if len(batch) != cp.count - done or not batch or batch[-1][0] != cp.last_id \
                or _digest(batch) != cp.digest:
            return kept, batch
        kept, done = cp, cp.count
    return kept, []


def _append(rows: Iterator[ResultRow], encoder: _Encoder, jf: IO[bytes], cf: IO[bytes],
            at: Checkpoint, new: List[Checkpoint]) -> None:
    """Encode ``rows`` after checkpoint ``at`` into the files, adding to ``new`` a
    checkpoint every ``CHECK_EVERY`` jobs and at the end of the run of finished ones."""
    sizes = [at.jsonl, at.csv]
    count = at.count

    def put(batch: Sequence[ResultRow]) -> None:
        jb, cb = encoder.encode(batch)
        sizes[0] += jf.write(jb)
        sizes[1] += cf.write(cb)

    settled = True      # all jobs so far are finished: checkpoints go on
    while True:
        batch = list(islice(rows, CHECK_EVERY))
        if not batch:
            break
        if settled:
            cut = _settled(batch)
            if cut:
                put(batch[:cut])
                count += cut
                new.append(Checkpoint(count, batch[cut - 1][0], sizes[0], sizes[1],
                                      _digest(batch[:cut])))
            settled = cut == len(batch)
            batch = batch[cut:]
        if batch:
            put(batch)


def _settled(rows: Sequence[ResultRow]) -> int:
    """How many of ``rows`` from the first are finished."""
    return next((i for i, r in enumerate(rows) if r.status not in _SETTLED), len(rows))


class _Replaced(OSError):
    """Results files replaced since their mark was read (by another writer)."""


def _copy(path: str, out: IO[bytes], size: int, expected: List[int]) -> None:
    """The first ``size`` bytes of ``path`` into ``out``, if ``path`` is still the file
    the results mark describes (``expected``: its ``_stat``); OSError if not."""
    out.flush()
    with open(path, "rb") as f:
        if _stat(f) != expected:
            raise _Replaced(path)
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
    try:
        return _write(store, layout, whole)
    except _Replaced:       # another write came between: this one is a whole one
        return _write(store, layout, True)


def _write(store: SweepReader, layout: Layout, whole: bool) -> Tuple[str, str]:
    jsonl, csv_path = _visible(layout)
    keys = columns(store)
    checkpoints, stats = ([], []) if whole else _read_mark(layout, keys)
    encoder = _Encoder(layout, keys)
    rows = iter(store.result_rows())
    kept, pending = _kept(rows, checkpoints)
    new: List[Checkpoint] = []
    with replaced_atomically(jsonl, binary=True) as jf, \
            replaced_atomically(csv_path, binary=True) as cf:
        if kept is None:
            at = Checkpoint(0, -1, 0, cf.write(encoder.header), "")
        else:
            _copy(jsonl, jf, kept.jsonl, stats[0])
            _copy(csv_path, cf, kept.csv, stats[1])
            at = kept
            new = [c for c in checkpoints if c.count <= kept.count]
        _append(chain(pending, rows), encoder, jf, cf, at, new)
        written = [_stat(jf), _stat(cf)]    # these files, not any a later write puts there
    _write_mark(layout, keys, written, new)
    return jsonl, csv_path


class ResultsSpool:
    """A runner's results files in the making (in the state folder, named by its pid):
    ``advance`` encodes the jobs that finished since, in order, from time to time;
    ``finish`` checks, completes and moves them into place at the end of the run."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.paths = tuple(os.path.join(layout.state_dir, f"{RESULTS_SPOOL}.{os.getpid()}.{x}")
                           for x in ("jsonl", "csv"))
        self.files: List[IO[bytes]] = []
        self.keys: Tuple[str, ...] = ()
        self.encoder: Optional[_Encoder] = None
        self.start = Checkpoint(0, -1, 0, 0, "")
        self.checkpoints: List[Checkpoint] = []
        self.open: Optional[_Digest] = None     # the last checkpoint's rows, if it may grow
        self.broken = False

    def _open(self, store: SweepReader) -> None:
        self.keys = columns(store)
        self.encoder = _Encoder(self.layout, self.keys)
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        self.files = [open(os.open(p, flags, 0o644), "r+b") for p in self.paths]
        self.checkpoints, stats = _read_mark(self.layout, self.keys)
        if self.checkpoints:        # the last files' run of finished jobs, as it was
            last = self.checkpoints[-1]
            for path, f, size, expected in zip(_visible(self.layout), self.files,
                                               (last.jsonl, last.csv), stats):
                _copy(path, f, size, expected)
        else:
            self.start = Checkpoint(0, -1, 0, self.files[1].write(self.encoder.header), "")

    def _at(self) -> Checkpoint:
        return self.checkpoints[-1] if self.checkpoints else self.start

    def advance(self, store: SweepReader) -> None:
        """Encode the jobs that finished, in order, since the last call."""
        if self.broken:
            return
        try:
            if not self.files:
                self._open(store)
            assert self.encoder is not None
            while True:
                at = self._at()
                rows = list(takewhile(lambda r: r.status in _SETTLED,   # read no further
                                      store.result_rows(after=at.last_id, limit=CHECK_EVERY)))
                cut = len(rows)
                if not cut:
                    return
                jb, cb = self.encoder.encode(rows[:cut])
                self.files[0].write(jb)
                self.files[1].write(cb)
                segment = self.open if self.open is not None \
                    and self.open.count + cut <= CHECK_EVERY else None
                if segment is not None:
                    self.checkpoints.pop()      # (the last checkpoint grows)
                else:
                    segment = _Digest()
                segment.add(rows[:cut])
                self.checkpoints.append(Checkpoint(at.count + cut, rows[cut - 1][0],
                                                   at.jsonl + len(jb), at.csv + len(cb),
                                                   segment.hexdigest()))
                self.open = segment if segment.count < CHECK_EVERY else None
                if cut < CHECK_EVERY:
                    return
        except (OSError, sqlite3.Error, UnsafePath):     # the end of the run writes whole
            self.discard()

    def finish(self, store: SweepReader) -> bool:
        """Write the results files from the spool; False if it cannot be used."""
        if self.broken or not self.files or columns(store) != self.keys:
            self.discard()
            return False
        assert self.encoder is not None
        jf, cf = self.files
        rows = iter(store.result_rows())
        kept, pending = _kept(rows, self.checkpoints)
        at = kept or Checkpoint(0, -1, 0, 0, "")
        for f, size in ((jf, at.jsonl), (cf, at.csv)):
            f.flush()
            f.truncate(size)
            f.seek(size)
        if kept is None:
            at = Checkpoint(0, -1, 0, cf.write(self.encoder.header), "")
        new = [c for c in self.checkpoints if kept is not None and c.count <= kept.count]
        _append(chain(pending, rows), self.encoder, jf, cf, at, new)
        written = [_stat(jf), _stat(cf)]
        for f in self.files:
            f.close()
        self.files = []
        for spool, visible in zip(self.paths, _visible(self.layout)):
            refuse_symlink(visible)
            os.replace(spool, visible)
        _write_mark(self.layout, self.keys, written, new)
        self.broken = True      # used up
        return True

    def discard(self) -> None:
        """Give the spool up (the end of the run writes whole); never raises: closing
        flushes what is buffered, which a full disk refuses too."""
        self.broken = True
        for f in self.files:
            try:
                f.close()
            except OSError:
                pass
        self.files = []
        for path in self.paths:
            try:
                os.unlink(path)
            except OSError:
                pass


def save_results(store: SweepReader, layout: Layout,
                 spool: Optional[ResultsSpool] = None) -> None:
    """The results files at the end of a run (from ``spool`` where it can be used): a
    failure is reported, never raised."""
    try:
        checkpoint(store)
        read_from, version = time.time(), store.data_version()
        if spool is None or not spool.finish(store):
            write_results(store, layout)
        if store.data_version() != version:     # another shell wrote meanwhile
            date_results(layout, read_from)
        else:
            date_after_store(layout)
    except (OSError, sqlite3.Error, UnsafePath) as e:
        if spool is not None:
            spool.discard()
        print(f"hog: could not write {layout.sweep_file(RESULTS_JSONL)}: {e}", file=sys.stderr)
