"""Reading job folders back: a folder's INFO, the INFO of its earlier attempts, whether
an attempt began, and the verdict of its marker. What the folder holds and how it is
written is ``state.jobdir``'s; like it, nothing here follows a symbolic link.
"""
import os
import stat
from typing import List, Optional

from hog.state.files import open_read
from hog.state.jobdir import INFO, Layout


def _read_text(path: str) -> Optional[str]:
    """A file of a job folder, read without following a symbolic link, neither the
    folder nor the file (None if missing, unreadable, or a link)."""
    try:
        with open(open_read(path), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _parsed(text: Optional[str]) -> dict:
    """An INFO file's text as a mapping ({} if there is none or it is not one)."""
    if text is None:
        return {}
    import yaml  # yaml: only when an INFO file is read
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def read_info(layout: Layout, index: int) -> dict:
    """A job folder's INFO as a mapping ({} if missing, unreadable or a link)."""
    return _parsed(_read_text(layout.info_path(index)))


def attempt_began(layout: Layout, index: int, attempt: int) -> Optional[dict]:
    """Did ``attempt`` of job ``index`` begin? Its INFO if the folder holds that
    attempt's; {} if the folder holds streams and no INFO yet (the slot made this
    attempt's streams and may have spawned its job: an earlier attempt's INFO and streams
    are moved aside before a new attempt's streams are made, and a job handed ahead has
    its folder moved into place only as it starts); None: it never began."""
    info = read_info(layout, index)
    if info:
        return info if info.get("attempt") == attempt else None
    began = os.path.isfile(layout.out_path(index)) and not os.path.islink(layout.folder(index)) \
        and not os.path.lexists(layout.info_path(index))
    return {} if began else None


def earlier_attempts(layout: Layout, index: int) -> List[dict]:
    """The INFO of each earlier attempt kept in a job folder (``INFO.1``, ``INFO.2``, ...),
    oldest first; unreadable ones are left out."""
    folder = layout.folder(index)
    if os.path.islink(folder):
        return []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    numbered = sorted(int(n[len(INFO) + 1:]) for n in names
                      if n.startswith(INFO + ".") and n[len(INFO) + 1:].isdigit())
    found = (_parsed(_read_text(os.path.join(folder, f"{INFO}.{n}"))) for n in numbered)
    return [data for data in found if data]


def folder_verdict(layout: Layout, index: int) -> Optional[str]:
    """'succeeded' or 'failed' from the folder's marker (None if none); a folder or a
    marker that is a symbolic link counts for nothing."""
    if not _is_real(layout.folder(index), stat.S_ISDIR):
        return None
    if _is_real(layout.marker_path(index, True), stat.S_ISREG):
        return "succeeded"
    if _is_real(layout.marker_path(index, False), stat.S_ISREG):
        return "failed"
    return None


def _is_real(path: str, kind) -> bool:
    try:
        return bool(kind(os.lstat(path).st_mode))
    except OSError:
        return False
