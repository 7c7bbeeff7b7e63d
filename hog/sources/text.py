"""Text job files: one command per line, with an optional ``# hog:`` directive.

A text source is an iterator of ``Job``s numbered from 0 in file order; nothing
reads ahead, so the first job can start before a long file has been read. This
module also owns ``check_readable``, used for every file source. A bad line part-way
through is a ``hog.errors.SourceError`` (the jobs before it still run).

``-`` (``STDIN``) is standard input, read as it comes (a job starts before the writer
closes the pipe); its lines are named ``<stdin>:N``.
"""
import os
import re
import shlex
from typing import Any, BinaryIO, Dict, Iterator, Optional, Set, Tuple

from hog.errors import InputError
from hog.model import Job
from hog.sources.joboptions import check_text, job_kwargs

_DIRECTIVE = re.compile(r"(?:^|\s)#\s*hog:(.*)$")
STDIN = "-"                  # the job file name that means standard input
STDIN_LABEL = "<stdin>"      # how its lines are named in messages and origins


def shown_name(path: str) -> str:
    return STDIN_LABEL if path == STDIN else path


def _open_lines(path: str) -> BinaryIO:
    """The job file's bytes: standard input (a copy of fd 0, so closing it leaves the
    process's own stdin alone) for ``-``."""
    if path == STDIN:
        return os.fdopen(os.dup(0), "rb")
    return open(path, "rb")


def check_readable(path: str, what: str) -> None:
    """An InputError unless ``path`` is a readable file whose name hog can record."""
    try:
        check_text(path, f"the name of the {what}", "")
    except InputError:
        shown = path.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
        raise InputError(f"the {what}'s name holds a NUL byte or bytes that are not UTF-8; "
                         f"rename it", shown) from None
    if not os.path.exists(path):
        raise InputError(f"{what} not found", path)
    if os.path.isdir(path):
        raise InputError(f"{what} is a directory, expected a file", path)
    if not os.access(path, os.R_OK):
        raise InputError(f"{what} is not readable", path)


# --------------------------------------------------------------------- text
def text_lines(path: str) -> Iterator[Tuple[int, str]]:
    """(first line number, command) for each job of a text job file.

    Blank lines and lines starting with ``#`` are skipped; a line ending in an odd
    number of backslashes continues on the next line.
    """
    pending: Optional[str] = None
    first = 0
    label = shown_name(path)
    with _open_lines(path) as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise InputError("line is not valid UTF-8", f"{label}:{lineno}") from None
            if pending is None:
                stripped = line.strip()
                if not stripped or stripped.startswith("#"):
                    continue
                first, pending = lineno, ""
            trailing = len(line) - len(line.rstrip("\\"))
            if trailing % 2 == 1:
                pending += line[:-1]
                continue
            yield first, pending + line
            pending = None
    if pending is not None and pending.strip():
        yield first, pending


def parse_directive(command: str, where: str) -> Dict[str, Any]:
    """Options from a trailing ``# hog: key=value ...`` comment ({} if none)."""
    m = _DIRECTIVE.search(command)
    if not m:
        return {}
    try:
        words = shlex.split(m.group(1))
    except ValueError as e:
        raise InputError(f"bad hog directive: {e}", where) from None
    raw: Dict[str, str] = {}
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise InputError(f"bad hog directive item {word!r}: expected key=value", where)
        raw[key] = value
    if "cmd" in raw:
        raise InputError("a hog directive cannot set cmd", where)
    return job_kwargs(raw, where, bare_resources=True)


def text_jobs(path: str) -> Iterator[Job]:
    names: Set[str] = set()
    for index, (lineno, command) in enumerate(text_lines(path)):
        where = f"{shown_name(path)}:{lineno}"
        check_text(command, "the command", where)
        options = parse_directive(command, where)
        if not _DIRECTIVE.sub("", command).strip():
            raise InputError("the command is empty (only a hog directive)"
                             if options else "the command is empty", where)
        job = Job(index=index, command=command, where=where, **options)
        for dep in job.after:       # a stream can only look back: no cycles possible
            if dep not in names:
                raise InputError(f"job {job.name or index} is after {dep!r}, but no earlier "
                                 f"line names a job {dep!r}", where)
        if job.name:
            names.add(job.name)
        yield job

