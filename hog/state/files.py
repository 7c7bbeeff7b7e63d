"""Files that other processes read while they change, and the times written in them;
and the rule that nothing hog writes follows a symbolic link.

``atomic_write`` and ``replaced_atomically`` replace a file in one step with
``os.replace`` (never remove-then-rename), so a reader sees the old file or the
whole new one. Their temporary file is created with ``O_EXCL | O_NOFOLLOW`` and a
target that is a symbolic link is refused (``UnsafePath``): nothing is ever written
through a link planted in a directory others can write to (by path; see
``atomic_write`` for a folder open by descriptor). Given ``dir_fd`` (a
directory opened with ``open_dir``), they work on the base name of ``path`` inside
that directory, and ``path`` only names it in messages. ``open_dir``,
``create_file``, ``open_append`` and ``open_read`` are the other ways in; ``check_location``
refuses a directory whose parent others could use to swap it. ``iso`` /
``from_iso`` are the time format of INFO and of the recovery that reads it back.
The job folders (``jobdir``), the store and the per-user registry of runners share
these; they know nothing of either.
"""
import errno
import grp
import os
import pwd
import stat
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any, Iterator, Optional

from hog.errors import HogError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_APPEND_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(HogError):
    """A path hog would have followed a symbolic link (or a directory someone else
    controls) to write; the message names it (exit 2)."""


def symlink_refused(path: str) -> UnsafePath:
    return UnsafePath(f"{path}: is a symbolic link; hog never writes through one in its "
                      f"output directory (someone may have planted it): remove it")


def _base(path: str, dir_fd: Optional[int]) -> str:
    return os.path.basename(path) if dir_fd is not None else path


def is_symlink(path: str, dir_fd: Optional[int] = None) -> bool:
    try:
        st = os.stat(_base(path, dir_fd), dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return stat.S_ISLNK(st.st_mode)


def refuse_symlink(path: str, dir_fd: Optional[int] = None) -> None:
    if is_symlink(path, dir_fd):
        raise symlink_refused(path)


def open_dir(path: str, dir_fd: Optional[int] = None, owned: bool = False) -> int:
    """A directory's file descriptor, opened without following a symbolic link (one is
    refused); with ``owned``, one that another user owns is refused too."""
    try:
        fd = os.open(_base(path, dir_fd), _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR) and is_symlink(path, dir_fd):
            raise symlink_refused(path) from None
        raise
    if owned:
        uid = os.fstat(fd).st_uid
        if uid != os.geteuid():
            os.close(fd)
            raise UnsafePath(f"{path}: owned by uid {uid}, not by you (uid {os.geteuid()}); "
                             f"hog writes only into folders it made: remove or rename it")
    return fd


def create_file(path: str, dir_fd: Optional[int] = None, mode: int = 0o644) -> int:
    """A new file, opened for writing; never an existing one, never through a link."""
    try:
        return os.open(_base(path, dir_fd), _NEW_FLAGS, mode, dir_fd=dir_fd)
    except FileExistsError:
        refuse_symlink(path, dir_fd)
        raise


def open_append(path: str, dir_fd: Optional[int] = None, mode: int = 0o644) -> int:
    """A file opened to append to (made if missing), never through a link."""
    try:
        return os.open(_base(path, dir_fd), _APPEND_FLAGS, mode, dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise symlink_refused(path) from None
        raise


def open_read(path: str) -> int:
    """A file in a job folder (or the output directory) opened to read, following a
    link neither for the file nor for the folder that holds it (``OSError`` if either
    is one): a planted link never shows another file's content in hog's views."""
    folder = os.open(os.path.dirname(path) or ".", _DIR_FLAGS)
    try:
        return os.open(os.path.basename(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                       dir_fd=folder)
    finally:
        os.close(folder)


def _temporary(path: str, dir_fd: Optional[int]) -> tuple:
    """(name, fd) of a new temporary file beside ``path``; a stale one of a dead process
    that had this pid is removed first (unlink removes a link, never its target)."""
    tmp = f"{_base(path, dir_fd)}.tmp{os.getpid()}"
    try:
        return tmp, os.open(tmp, _NEW_FLAGS, 0o644, dir_fd=dir_fd)
    except FileExistsError:
        os.unlink(tmp, dir_fd=dir_fd)
        return tmp, os.open(tmp, _NEW_FLAGS, 0o644, dir_fd=dir_fd)


def _discard(tmp: str, dir_fd: Optional[int]) -> None:
    try:
        os.unlink(tmp, dir_fd=dir_fd)
    except OSError:
        pass


def iso(ts: Optional[float]) -> Optional[str]:
    """ISO 8601 with the local UTC offset, to the millisecond."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")


def from_iso(value: object) -> Optional[float]:
    """Seconds since the epoch from an INFO time (None if absent or malformed)."""
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def atomic_write(path: str, text: str, dir_fd: Optional[int] = None) -> None:
    """Write ``text`` to ``path`` so that readers see all of it or nothing. By path, a
    target that is a link is refused; in a folder open as ``dir_fd`` (checked when it
    was opened) a link that appeared since is replaced, never followed."""
    if dir_fd is None:
        refuse_symlink(path)
    tmp, fd = _temporary(path, dir_fd)
    try:
        try:
            view = memoryview(text.encode("utf-8", "surrogateescape"))
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, _base(path, dir_fd), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        _discard(tmp, dir_fd)
        raise


@contextmanager
def replaced_atomically(path: str, dir_fd: Optional[int] = None,
                        binary: bool = False) -> Iterator[IO[Any]]:
    """A text file to write that replaces ``path`` in one step when the block ends
    without an error (readers see the old file or the whole new one, never a part);
    on an error ``path`` is left as it was. ``binary``: a file of bytes."""
    refuse_symlink(path, dir_fd)
    tmp, fd = _temporary(path, dir_fd)
    try:
        with (open(fd, "wb") if binary else
              open(fd, "w", encoding="utf-8", errors="backslashreplace", newline="")) as f:
            yield f
        os.replace(tmp, _base(path, dir_fd), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        _discard(tmp, dir_fd)
        raise


def check_location(path: str, what: str = "--output_dir") -> None:
    """Refuse a directory that another user could swap for a link of their own: one in
    a parent others can write to is accepted only when that parent is sticky (like
    /tmp) and the directory (and the link to it, if ``path`` is one) is yours."""
    me = os.geteuid()
    for place in dict.fromkeys((os.path.abspath(path), os.path.realpath(path))):
        parent = os.path.dirname(place)
        try:
            pst = os.stat(parent)
        except FileNotFoundError:
            continue                # made below it by makedirs, by this user
        if not _writable_by_others(pst, me):
            continue
        if not pst.st_mode & stat.S_ISVTX:
            raise UnsafePath(
                f"{what} {path}: its parent {parent} is writable by others and not sticky "
                f"(mode {stat.S_IMODE(pst.st_mode):o}), so anyone could replace it; use a "
                f"directory of your own, or make the parent sticky (chmod +t {parent})")
        try:
            uid = os.lstat(place).st_uid
        except FileNotFoundError:
            continue                # to be made now, by this user
        if uid != me:
            raise UnsafePath(f"{what} {path}: owned by uid {uid}, not by you (uid {me}), in "
                             f"{parent} that others can write to; use a directory of your own")


def _writable_by_others(st: os.stat_result, me: int) -> bool:
    """Others can write to this directory: anyone may, or its group may and the group is
    more than this user's own (a user-private group is not others)."""
    mode = st.st_mode
    if mode & stat.S_IWOTH:
        return True
    if not mode & stat.S_IWGRP:
        return False
    return not _private_group(st.st_gid, me)


def _private_group(gid: int, me: int) -> bool:
    try:
        group = grp.getgrgid(gid)
        user = pwd.getpwuid(me)
    except KeyError:
        return False
    return user.pw_gid == gid and set(group.gr_mem) <= {user.pw_name}
