"""``--resume-on-boot``: a sweep registered to start again by itself after a reboot,
under the user's account. This module owns what is registered and how.

What runs at boot is ``DIR/.hog/boot.sh``: it changes to the directory the sweep
was started from, sets the environment essentials it was started with (``PATH``,
``PYTHONPATH``, a virtual or conda environment, ``CUDA_VISIBLE_DEVICES``, ...) and
runs the same hog command (same source, same options, ``--fresh`` and ``--detach``
left out) with no terminal, its output appended to ``DIR/.hog/boot.log``. Running
that command resumes the sweep as running it again by hand does.

It is started by a systemd user unit ``hog-resume-KEY.service`` (enabled, in
``$XDG_CONFIG_HOME/systemd/user/``) where the user's systemd manager answers and
lingering is on (``loginctl show-user USER -p Linger``: without it, user units
start only at login), else by an ``@reboot`` line of the user's crontab tagged
``# hog-resume-on-boot KEY``. KEY is a digest of the output directory's path: one
registration per sweep, replaced when registered again. ``DIR/.hog/boot`` says how
it is registered (``hog status`` reads it).

The registration is removed when the sweep ends: its jobs are done, or a user
stopped it (``hog stop``, Ctrl-C). It is kept when the runner ends by SIGTERM (as
at shutdown), by a fatal error, or dies (SIGKILL, a power cut): then it resumes.
"""
import json
import os
import pwd
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Mapping, Optional, Sequence

from hog.state.jobdir import BOOT_MARK

if TYPE_CHECKING:
    import subprocess

SCRIPT = "boot.sh"
LOG = "boot.log"
MARK = BOOT_MARK
TAG = "# hog-resume-on-boot"
ENV_KEPT = ("PATH", "PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV",
            "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "LANG",
            "LC_ALL", "HOME", "USER", "LOGNAME")
TOOL_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Registration:
    how: str        # "systemd" | "crontab"
    name: str       # the unit's name, or the crontab line's tag
    script: str     # what runs at boot: /bin/sh SCRIPT

    def describe(self) -> str:
        if self.how == "systemd":
            return f"systemd user unit {self.name}"
        return f"@reboot line in the crontab ({self.name})"


class BootError(Exception):
    """The registration could not be made or removed (the tool's complaint)."""


def key(state_dir: str) -> str:
    import hashlib  # (with shlex and subprocess: not loaded by ``hog status``)
    return hashlib.sha256(os.path.abspath(state_dir).encode("utf-8", "surrogateescape")
                          ).hexdigest()[:12]


def unit_name(state_dir: str) -> str:
    return f"hog-resume-{key(state_dir)}.service"


def crontab_tag(state_dir: str) -> str:
    return f"{TAG} {key(state_dir)}"


def boot_args(argv: Sequence[str]) -> List[str]:
    """The hog arguments (canonical spelling) that resume a sweep started with
    ``argv``: without ``--detach`` (nothing waits at boot) and ``--fresh`` (that would
    move the sweep aside)."""
    return [a for a in argv if a not in ("--detach", "--fresh")]


def script_text(state_dir: str, args: Sequence[str], cwd: str, env: Mapping[str, str],
                python: str) -> str:
    import shlex
    state_dir = os.path.abspath(state_dir)
    q = shlex.quote
    lines = ["#!/bin/sh",
             "# written by hog --resume-on-boot: resumes this sweep after a reboot",
             f"cd {q(cwd)} || exit 1"]
    lines += [f"export {name}={q(env[name])}" for name in ENV_KEPT if name in env]
    lines.append(f"exec {q(python)} -m hog {' '.join(q(a) for a in args)} "
                 f"</dev/null >>{q(os.path.join(state_dir, LOG))} 2>&1")
    return "\n".join(lines) + "\n"


def unit_text(state_dir: str, script: str) -> str:
    return ("[Unit]\n"
            f"Description=hog sweep in {os.path.dirname(os.path.abspath(state_dir))} "
            f"(resumed after a reboot)\n\n"
            "[Service]\n"
            "Type=simple\n"
            f"ExecStart=/bin/sh {_systemd_quote(script)}\n\n"
            "[Install]\n"
            "WantedBy=default.target\n")


def crontab_line(state_dir: str, script: str) -> str:
    import shlex
    command = f"/bin/sh {shlex.quote(script)}".replace("%", "\\%")   # % ends a cron command
    return f"@reboot {command} {crontab_tag(state_dir)}"


def register(state_dir: str, args: Sequence[str], cwd: Optional[str] = None,
             env: Optional[Mapping[str, str]] = None) -> Registration:
    """Register the sweep whose store is ``state_dir``, started with hog ``args``."""
    state_dir = os.path.abspath(state_dir)
    for word in (state_dir, *(args or ())):
        if "\n" in word or "\r" in word:
            raise BootError("a path or option with a line break cannot be registered")
    script = os.path.join(state_dir, SCRIPT)
    env = os.environ if env is None else env
    _write(script, script_text(state_dir, args, cwd or os.getcwd(), env, sys.executable), 0o700)
    try:
        if use_systemd(env):
            name = unit_name(state_dir)
            folder = unit_folder(env)
            os.makedirs(folder, exist_ok=True)
            _write(os.path.join(folder, name), unit_text(state_dir, script), 0o644)
            _tool(["systemctl", "--user", "daemon-reload"])
            _tool(["systemctl", "--user", "enable", name])
            done = Registration("systemd", name, script)
        else:
            lines = [line for line in _crontab() if not _ours(line, state_dir)]
            _set_crontab(lines + [crontab_line(state_dir, script)])
            done = Registration("crontab", crontab_tag(state_dir), script)
    except BootError:
        if registered(state_dir) is None:     # nothing registered: nothing left of it
            os.unlink(script)
        raise
    _write(os.path.join(state_dir, MARK), json.dumps(done.__dict__) + "\n", 0o600)
    return done


def unregister(state_dir: str, env: Optional[Mapping[str, str]] = None) -> bool:
    """Remove the sweep's registration (if it has one); True if it had one."""
    state_dir = os.path.abspath(state_dir)
    found = registered(state_dir)
    if found is None:
        return False
    env = os.environ if env is None else env
    if found.how == "systemd":
        _tool(["systemctl", "--user", "disable", found.name])
        try:
            os.unlink(os.path.join(unit_folder(env), found.name))
        except FileNotFoundError:
            pass
        _tool(["systemctl", "--user", "daemon-reload"])
    else:
        lines = _crontab()
        kept = [line for line in lines if not _ours(line, state_dir)]
        if kept != lines:
            _set_crontab(kept)
    for name in (MARK, SCRIPT):
        try:
            os.unlink(os.path.join(state_dir, name))
        except FileNotFoundError:
            pass
    return True


def registered(state_dir: str) -> Optional[Registration]:
    """How the sweep is registered, from ``.hog/boot`` (None: it is not)."""
    try:
        with open(os.path.join(state_dir, MARK)) as f:
            data = json.load(f)
        return Registration(str(data["how"]), str(data["name"]), str(data["script"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def use_systemd(env: Mapping[str, str]) -> bool:
    """A systemd user manager answers and the user lingers (units start at boot)."""
    try:
        _tool(["systemctl", "--user", "show-environment"])
        user = env.get("USER") or pwd.getpwuid(os.getuid()).pw_name
        out = _tool(["loginctl", "show-user", user, "-p", "Linger"])
    except BootError:
        return False
    return out.strip() == "Linger=yes"


def unit_folder(env: Mapping[str, str]) -> str:
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "systemd", "user")


def _ours(line: str, state_dir: str) -> bool:
    return line.rstrip().endswith(crontab_tag(state_dir))


def _crontab() -> List[str]:
    """The user's crontab lines ([] when there is none)."""
    done = _run(["crontab", "-l"])
    if done.returncode != 0:
        if "no crontab" in done.stderr.lower():
            return []
        raise BootError(f"crontab -l: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout.splitlines()


def _set_crontab(lines: List[str]) -> None:
    done = _run(["crontab", "-"], "".join(line + "\n" for line in lines))
    if done.returncode != 0:
        raise BootError(f"crontab -: {done.stderr.strip() or f'exit {done.returncode}'}")


def _run(argv: List[str], text: Optional[str] = None) -> "subprocess.CompletedProcess[str]":
    """``argv`` run to its end (``text`` its input); ``BootError`` if it cannot be."""
    import subprocess
    try:
        return subprocess.run(argv, input=text, stdin=None if text is not None
                              else subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=TOOL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BootError(f"{' '.join(argv)}: {e}") from None


def _tool(argv: List[str]) -> str:
    done = _run(argv)
    if done.returncode != 0:
        raise BootError(f"{' '.join(argv)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout


def _systemd_quote(word: str) -> str:
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") \
        .replace("$", "$$") + '"'


def _write(path: str, text: str, mode: int) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
