"""Job sources: a text job file and a Python yielder, both read as streams.

Each source is an iterator of ``Job``s numbered from 0 in source order; nothing
reads ahead, so the first job can start before a long file has been read.
"""
import importlib.util
import os
import re
import shlex
import sys
import traceback
from typing import Any, Iterable, Iterator, Mapping, Optional, Tuple

from hog.errors import InputError
from hog.model import Job
from hog.sources.joboptions import job_kwargs

_DIRECTIVE = re.compile(r"(?:^|\s)#\s*hog:(.*)$")


class SourceError(Exception):
    """A source failed while being read (a yielder raised, a later line is bad).

    ``message`` already names the file and line.
    """


def check_readable(path: str, what: str) -> None:
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
    pending = None
    first = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise InputError("line is not valid UTF-8", f"{path}:{lineno}") from None
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


def parse_directive(command: str, where: str) -> dict:
    """Options from a trailing ``# hog: key=value ...`` comment ({} if none)."""
    m = _DIRECTIVE.search(command)
    if not m:
        return {}
    try:
        words = shlex.split(m.group(1))
    except ValueError as e:
        raise InputError(f"bad hog directive: {e}", where) from None
    raw = {}
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise InputError(f"bad hog directive item {word!r}: expected key=value", where)
        raw[key] = value
    if "cmd" in raw:
        raise InputError("a hog directive cannot set cmd", where)
    return job_kwargs(raw, where, bare_resources=True)


def text_jobs(path: str) -> Iterator[Job]:
    names = set()
    for index, (lineno, command) in enumerate(text_lines(path)):
        where = f"{path}:{lineno}"
        job = Job(index=index, command=command, where=where, **parse_directive(command, where))
        for dep in job.after:       # a stream can only look back: no cycles possible
            if dep not in names:
                raise InputError(f"job {job.name or index} is after {dep!r}, but no earlier "
                                 f"line names a job {dep!r}", where)
        if job.name:
            names.add(job.name)
        yield job


# ------------------------------------------------------------------ yielder
def load_yielder(path: str):
    """Import ``path`` and return its ``yielder`` function; InputError if that fails."""
    check_readable(path, "yielder file")
    spec = importlib.util.spec_from_file_location("hog_yielder", path)
    if spec is None or spec.loader is None:
        raise InputError("cannot be loaded as a Python file", path)
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)   # let the sweep import its neighbours
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise InputError(f"syntax error: {e.msg}", f"{path}:{e.lineno}") from None
    except BaseException as e:  # noqa: BLE001 - any failure of user code is reported
        raise InputError(f"loading it raised {_describe(e)}", _user_frame(e, path)) from None
    fn = getattr(module, "yielder", None)
    if not callable(fn):
        raise InputError("defines no yielder() function", path)
    return fn


def yielder_jobs(path: str) -> Iterator[Job]:
    fn = load_yielder(path)
    try:
        items = iter(fn())
    except BaseException as e:  # noqa: BLE001
        raise InputError(f"yielder() raised {_describe(e)}", _user_frame(e, path)) from None
    return _numbered_jobs(items, lambda index: _gen_where(items, path, index),
                          lambda e, index: f"{_user_frame(e, path)}: yielder() raised "
                                           f"{_describe(e)} after {index} job(s)")


def iterable_jobs(items: Iterable, label: str) -> Iterator[Job]:
    """Jobs from a Python iterable of command strings or mappings (``hog.run``); a
    generator's errors name its file and line."""
    items = iter(items)
    code = getattr(getattr(items, "gi_frame", None), "f_code", None)
    path = code.co_filename if code is not None else ""
    return _numbered_jobs(
        items, lambda index: _gen_where(items, path, index) if path else f"{label} (job {index})",
        lambda e, index: f"{_user_frame(e, path) if path else label}: the jobs of {label} "
                         f"raised {_describe(e)} after {index} job(s)")


def _numbered_jobs(items: Iterator, where_of, failure) -> Iterator[Job]:
    """Jobs numbered from 0 from an iterator of items; an item that fails to come is a
    ``SourceError`` (the jobs before it still run)."""
    index = 0
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except BaseException as e:  # noqa: BLE001
            raise SourceError(failure(e, index)) from None
        yield job_from_item(item, index, where_of(index))
        index += 1


def job_from_item(item: Any, index: int, where: str) -> Job:
    """A job from a command string or a mapping with ``cmd`` and job options."""
    if isinstance(item, str):
        command, options = item, {}
    elif isinstance(item, Mapping):
        command = item.get("cmd")
        if not isinstance(command, str):
            raise InputError(f"job {index} has no 'cmd' string", where)
        options = job_kwargs(item, where)
    else:
        raise InputError(f"job {index} is of type {type(item).__name__}; expected a command string "
                         f"or a mapping with 'cmd'", where)
    if not command.strip():
        raise InputError(f"job {index} has an empty command", where)
    return Job(index=index, command=command, where=where, **options)


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _user_frame(e: BaseException, path: str) -> str:
    """``path:line`` of the deepest traceback frame inside the user's file."""
    target = os.path.abspath(path)
    line: Optional[int] = None
    for frame, lineno in traceback.walk_tb(e.__traceback__):
        if os.path.abspath(frame.f_code.co_filename) == target:
            line = lineno
    return f"{path}:{line}" if line else path


def _gen_where(gen, path: str, index: int) -> str:
    frame = getattr(gen, "gi_frame", None)
    if frame is not None and os.path.abspath(frame.f_code.co_filename) == os.path.abspath(path):
        return f"{path}:{frame.f_lineno}"
    return f"{path} (job {index})"
