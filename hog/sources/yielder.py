"""Python job sources: a yielder file's ``yielder()`` and an in-memory iterable.

Each item is a command string or a mapping with ``cmd`` and job options; jobs are
numbered from 0 as they come, and nothing reads ahead. Errors name the user's file
and line: a yielder that fails to load is an ``InputError``, one that raises
part-way through is a ``SourceError`` (the jobs before it still run).
"""
import importlib.util
import os
import sys
import traceback
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

from hog.errors import InputError, SourceError
from hog.model import Job
from hog.sources.joboptions import check_text, job_kwargs
from hog.sources.text import check_readable


def load_yielder(path: str) -> Callable[[], Iterable[Any]]:
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
    """Jobs from the ``yielder()`` of the Python file ``path``, as it yields them."""
    fn = load_yielder(path)
    try:
        items = iter(fn())
    except BaseException as e:  # noqa: BLE001
        raise InputError(f"yielder() raised {_describe(e)}", _user_frame(e, path)) from None
    return _numbered_jobs(items, lambda index: _gen_where(items, path, index),
                          lambda e, index: f"{_user_frame(e, path)}: yielder() raised "
                                           f"{_describe(e)} after {index} job(s)")


def iterable_jobs(items: Iterable[Any], label: str) -> Iterator[Job]:
    """Jobs from a Python iterable of command strings or mappings (``hog.run``); a
    generator's errors name its file and line."""
    it = iter(items)
    code = getattr(getattr(it, "gi_frame", None), "f_code", None)
    path = code.co_filename if code is not None else ""
    return _numbered_jobs(
        it, lambda index: _gen_where(it, path, index) if path else f"{label} (job {index})",
        lambda e, index: f"{_user_frame(e, path) if path else label}: the jobs of {label} "
                         f"raised {_describe(e)} after {index} job(s)")


def _numbered_jobs(items: Iterator[Any], where_of: Callable[[int], str],
                   failure: Callable[[BaseException, int], str]) -> Iterator[Job]:
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
    options: Mapping[str, Any]
    if isinstance(item, str):
        command, options = item, {}
    elif isinstance(item, Mapping):
        cmd = item.get("cmd")
        if not isinstance(cmd, str):
            raise InputError(f"job {index} has no 'cmd' string", where)
        command, options = cmd, job_kwargs(item, where)
    else:
        raise InputError(f"job {index} is of type {type(item).__name__}; expected a command string "
                         f"or a mapping with 'cmd'", where)
    if not command.strip():
        raise InputError(f"job {index} has an empty command", where)
    check_text(command, f"the command of job {index}", where)
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


def _gen_where(gen: Iterator[Any], path: str, index: int) -> str:
    frame = getattr(gen, "gi_frame", None)
    if frame is not None and os.path.abspath(frame.f_code.co_filename) == os.path.abspath(path):
        return f"{path}:{frame.f_lineno}"
    return f"{path} (job {index})"
