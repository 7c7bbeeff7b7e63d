"""A handed job's folder made ahead: while the job before it runs, its slot makes the
folder, with its ``.OUT`` and ``.ERR``, under ``<output>/.hog/next/`` (named with the
slot's pid), and moves it into place with one rename as the job starts. The handoff
then waits for one metadata write instead of three (each 0.1-0.5 ms on a slow disk).
The two files are closed once made, and opened again as the job starts: nothing is
held open for writing meanwhile (a file system can still be remounted read-only).

The output directory never shows a folder for a job that has not started. A job given
back has its staged folder removed (``discard``); one that cannot be moved into place
(a folder of that name appeared meanwhile, the output directory is gone) is removed
and the folder made the usual way, which refuses what it always refuses. What a
killed slot left here is removed by the next slot that starts (``clear_stale``); the
folder itself goes, once empty, as a runner ends (``remove_if_empty``).
Only a job whose folder does not exist yet is staged: a folder with an earlier
attempt's files is opened the usual way, as its files move aside.
"""
import os
from typing import Optional, Tuple

from hog.proc import is_alive
from hog.state.files import open_dir
from hog.state.folderlock import FolderLock
from hog.state.jobdir import JobFolder, Layout

NEXT_DIR = "next"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC   # (the output directory: followed)


def next_dir(layout: Layout) -> str:
    return os.path.join(layout.state_dir, NEXT_DIR)


def stage(folder: JobFolder, lock_wait_s: float) -> Optional[FolderLock]:
    """Make ``folder`` under ``.hog/next/`` and open it there (``folder.fd``), with its
    writer lock (returned), as ``JobFolder.open_new`` would in place."""
    parent = next_dir(folder.layout)
    try:
        os.mkdir(parent, 0o700)     # (never .hog itself: a removed one is not made again)
    except FileExistsError:
        pass
    name = f"{folder.stem}.{os.getpid()}"
    parent_fd = open_dir(parent, owned=True)
    try:
        os.mkdir(name, 0o777, dir_fd=parent_fd)
        folder.staged = name
        folder.fd = open_dir(os.path.join(parent, name), parent_fd, owned=True)
    finally:
        os.close(parent_fd)
    return folder.lock(lock_wait_s)


def streams(folder: JobFolder) -> Tuple[int, int]:
    """The staged folder's ``.OUT`` and ``.ERR`` (made by ``JobFolder.streams`` when it
    was staged, then closed), opened for writing as they are, as its job starts."""
    flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    out = os.open(os.path.basename(folder.out_path), flags, dir_fd=folder.fd)
    try:
        return out, os.open(os.path.basename(folder.err_path), flags, dir_fd=folder.fd)
    except BaseException:
        os.close(out)
        raise


def publish(folder: JobFolder) -> bool:
    """Move the staged folder into place; False (nothing moved) if that name is taken
    by anything, even an empty folder, or the output directory is gone."""
    assert folder.staged is not None
    try:
        root = os.open(folder.layout.root, _DIR_FLAGS)
    except OSError:
        return False
    try:
        if _exists(folder.stem, root):
            return False
        parent = os.open(next_dir(folder.layout), _DIR_FLAGS)
        try:
            os.rename(folder.staged, folder.stem, src_dir_fd=parent, dst_dir_fd=root)
        finally:
            os.close(parent)
    except OSError:
        return False
    finally:
        os.close(root)
    folder.staged = None
    return True


def discard(folder: JobFolder) -> None:
    """Remove a staged folder and the two empty files in it (it never ran)."""
    name, folder.staged = folder.staged, None
    if name is None:
        return
    if folder.fd is not None:
        for stream in (folder.out_path, folder.err_path):
            try:
                os.unlink(os.path.basename(stream), dir_fd=folder.fd)
            except OSError:
                pass
    folder.close()
    try:
        os.rmdir(os.path.join(next_dir(folder.layout), name))
    except OSError:
        pass


def clear_stale(layout: Layout) -> None:
    """Remove what slots that are gone left staged (their pid no longer runs)."""
    parent = next_dir(layout)
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        pid = name.rsplit(".", 1)[-1]
        if not pid.isdigit() or is_alive(int(pid)):
            continue
        path = os.path.join(parent, name)
        try:
            for entry in os.listdir(path):
                os.unlink(os.path.join(path, entry))
            os.rmdir(path)
        except OSError:
            pass


def remove_if_empty(layout: Layout) -> None:
    """The run ends (its slots are gone): ``.hog/next/`` goes if nothing is left in it
    (a slot of another runner may still be using it: then it stays)."""
    try:
        os.rmdir(next_dir(layout))
    except OSError:
        pass


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True
