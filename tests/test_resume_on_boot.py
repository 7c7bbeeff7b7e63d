"""``--resume-on-boot``: the sweep is registered to start again by itself after a
reboot (a systemd user unit where the user lingers, an @reboot crontab line
otherwise), shown by ``hog status``, removed when the sweep ends. The command
registered is exactly what resumes it: run as cron would at boot (no terminal, a
bare environment, another directory) after the runner was SIGKILLed, every job
ends exactly once.

The real systemctl, loginctl and crontab are never touched: fakes first on PATH
record their arguments and keep the crontab in a file."""
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from hog import boot
from tests.harness import TAG_VAR, job_file, lines_of, wait_for, write

FAKES = {
    "crontab": """#!/bin/bash
echo "crontab $*" >> {d}/calls
case "$1" in
  -l) [ -f {d}/crontab ] && exec cat {d}/crontab
      echo "no crontab for $USER" >&2; exit 1 ;;
  -)  [ -f {d}/refuse ] && {{ echo "crontab: you are not allowed to use this program" >&2
                            exit 1; }}
      cat > {d}/crontab.new && mv {d}/crontab.new {d}/crontab ;;
  *)  echo "fake crontab: unsupported: $*" >&2; exit 9 ;;
esac
""",
    "systemctl": """#!/bin/bash
echo "systemctl $*" >> {d}/calls
if [ "$*" = "--user show-environment" ]; then
  [ -f {d}/systemd ] || {{ echo "Failed to connect to bus" >&2; exit 1; }}
  echo "PATH=/usr/bin"
fi
""",
    "loginctl": """#!/bin/bash
echo "loginctl $*" >> {d}/calls
echo "Linger=$(cat {d}/linger 2>/dev/null || echo no)"
""",
}


class Fakes:
    def __init__(self, tmp: Path, systemd: bool = False, linger: bool = False):
        self.dir = tmp / "fake"
        self.bin = tmp / "fakebin"
        self.dir.mkdir()
        self.bin.mkdir()
        for name, text in FAKES.items():
            exe = self.bin / name
            exe.write_text(text.format(d=self.dir))
            exe.chmod(0o755)
        if systemd:
            write(self.dir / "systemd", "")
        write(self.dir / "linger", "yes\n" if linger else "no\n")
        self.config = tmp / "config"
        self.env = {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
                    "XDG_CONFIG_HOME": str(self.config)}

    @property
    def calls(self) -> list:
        path = self.dir / "calls"
        return path.read_text().splitlines() if path.exists() else []

    @property
    def crontab(self) -> list:
        path = self.dir / "crontab"
        return path.read_text().splitlines() if path.exists() else []


def gated_jobs(tmp: Path, n: int, gate: Path, ledger: Path) -> Path:
    return job_file(tmp, *[f"while [ ! -e {gate} ]; do sleep 0.02; done; echo {i} >> {ledger}"
                           for i in range(n)])


@pytest.mark.timeout(60)
def test_without_lingering_an_at_reboot_crontab_line_runs_the_same_command_until_the_end(hq):
    fakes = Fakes(hq.tmp)
    write(fakes.dir / "crontab", "0 3 * * * /usr/bin/backup  # someone else's\n")
    gate, ledger = hq.tmp / "gate", hq.tmp / "ledger"
    gated_jobs(hq.tmp, 2, gate, ledger)
    runner = hq.start("--job-file", "jobs.txt", "--gpus", "0", "--resume_on_boot",
                      env=fakes.env)
    out = hq.tmp / "output"
    wait_for(lambda: len(fakes.crontab) == 2, timeout=20, what="the @reboot line")
    state = out / ".hog"
    script = state / boot.SCRIPT
    assert fakes.crontab == ["0 3 * * * /usr/bin/backup  # someone else's",
                             f"@reboot /bin/sh {script} {boot.crontab_tag(str(state))}"]
    text = script.read_text()
    assert f"cd {hq.tmp} || exit 1\n" in text
    assert f"export PATH={fakes.env['PATH']}\n" in text
    assert re.search(r"-m hog --job-file jobs\.txt --gpus 0 --resume-on-boot "
                     r"</dev/null >>\S*/output/\.hog/boot\.log 2>&1\n", text), text
    assert not any(c.startswith("systemctl --user enable") for c in fakes.calls)
    status = hq.run("status", out)
    assert "resumes after a reboot: @reboot line in the crontab" in status.stdout, status.stdout
    assert hq.status(out)["resume_on_boot"]["how"] == "crontab"
    write(gate, "")
    assert runner.wait(30) == 0, runner.output
    assert fakes.crontab == ["0 3 * * * /usr/bin/backup  # someone else's"]
    assert not script.exists()
    assert hq.status(out)["resume_on_boot"] is None


@pytest.mark.timeout(60)
def test_with_systemd_and_lingering_a_user_unit_is_enabled_and_removed_at_the_end(hq):
    fakes = Fakes(hq.tmp, systemd=True, linger=True)
    gate, ledger = hq.tmp / "gate", hq.tmp / "ledger"
    d = hq.tmp / "w"
    write(d / "to_run" / "s1", f"while [ ! -e {gate} ]; do sleep 0.02; done; echo s1 >> {ledger}\n")
    os.utime(d / "to_run" / "s1", (0, 0))
    watcher = hq.start("watch", d, "--gpus", "0", "--resume-on-boot", env=fakes.env)
    state = d / "output" / ".hog"
    name = boot.unit_name(str(state))
    unit = fakes.config / "systemd" / "user" / name
    wait_for(lambda: f"systemctl --user enable {name}" in fakes.calls, timeout=20,
             what="the unit to be enabled")
    assert f'ExecStart=/bin/sh "{state / boot.SCRIPT}"\n' in unit.read_text()
    assert "WantedBy=default.target" in unit.read_text()
    assert f"-m hog watch {d} --gpus 0 --resume-on-boot <" in (state / boot.SCRIPT).read_text()
    assert "systemd user unit" in hq.run("status", d).stdout     # the watched directory
    assert not any(c.startswith("crontab") for c in fakes.calls)
    write(gate, "")
    assert watcher.wait(30) == 0, watcher.output
    assert f"systemctl --user disable {name}" in fakes.calls
    assert not unit.exists()


@pytest.mark.timeout(90)
def test_the_registered_boot_command_resumes_a_sigkilled_sweep_and_every_job_ends_once(hq):
    fakes = Fakes(hq.tmp)
    gate, ledger = hq.tmp / "gate", hq.tmp / "ledger"
    n = 6
    job_file(hq.tmp, *[f"if [ {i} -ge 2 ]; then while [ ! -e {gate} ]; do sleep 0.02; done; "
                       f"fi; echo {i} >> {ledger}" for i in range(n)])
    runner = hq.start("--job-file", "jobs.txt", "--gpus", "0,0", "--resume-on-boot",
                      env=fakes.env)
    out = hq.tmp / "output"

    def two_done_two_running():
        counts = hq.status(out)["counts"]
        return (counts["succeeded"], counts["running"]) == (2, 2)
    wait_for(lambda: len(fakes.crontab) == 1 and two_done_two_running(), timeout=30,
             interval=0.2, what="two jobs recorded, two running, and the @reboot line")
    jobs = hq.job_pids()
    runner.signal_group(signal.SIGKILL)             # a power cut: the runner's group and
    for pid in jobs:                                # each job's (a session of its own)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    runner.wait(10)
    hq.wait_no_processes(timeout=10)
    write(gate, "")
    line = fakes.crontab[0]
    assert line.startswith("@reboot ")
    command = line[len("@reboot "):]
    at_boot = {"HOME": str(hq.tmp), "LOGNAME": "someone", "SHELL": "/bin/sh",
               "PATH": "/usr/bin:/bin", TAG_VAR: os.environ[TAG_VAR]}   # what cron gives
    done = subprocess.run(["/bin/sh", "-c", command], cwd="/", env=at_boot,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    log = out / ".hog" / boot.LOG
    assert done.returncode == 0, done.stderr + (log.read_text() if log.exists() else "")
    assert sorted(lines_of(ledger), key=int) == [str(i) for i in range(n)]
    assert "succeeded" in log.read_text()
    assert fakes.crontab == []                     # the sweep ended: no more resuming
    counts = hq.status(out)["counts"]
    assert counts["succeeded"] == n


@pytest.mark.timeout(60)
def test_a_registration_the_system_refuses_is_said_and_the_sweep_runs_anyway(hq):
    fakes = Fakes(hq.tmp)
    write(fakes.dir / "refuse", "")
    job_file(hq.tmp, "echo one", "echo two")
    r = hq.run("--job-file", "jobs.txt", "--gpus", "0", "--resume-on-boot", env=fakes.env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "could not register the sweep (crontab -: crontab: you are not allowed" in r.stderr
    assert not (hq.tmp / "output" / ".hog" / boot.SCRIPT).exists()
    assert hq.status(hq.tmp / "output")["counts"]["succeeded"] == 2
    assert hq.status(hq.tmp / "output")["resume_on_boot"] is None


def test_paths_with_spaces_and_percent_signs_are_quoted_for_cron_systemd_and_sh(tmp_path):
    state = str(tmp_path / "runs 100%" / ".hog")
    script = os.path.join(state, boot.SCRIPT)
    line = boot.crontab_line(state, script)
    assert line.startswith(f"@reboot /bin/sh '{tmp_path}/runs 100\\%/.hog/boot.sh' ")
    assert f'ExecStart=/bin/sh "{tmp_path}/runs 100%%/.hog/boot.sh"\n' in \
        boot.unit_text(state, script)
    text = boot.script_text(state, ["--job-file", "my jobs.txt"], "/some where",
                            {"PATH": "/bin", "SECRET": "x"}, "/usr/bin/python3")
    assert "cd '/some where' || exit 1\nexport PATH=/bin\nexec /usr/bin/python3 -m hog " \
           "--job-file 'my jobs.txt' </dev/null" in text
    assert "SECRET" not in text
    assert boot.boot_args(["--job-file", "j", "--fresh", "--detach", "--resume-on-boot"]) == \
        ["--job-file", "j", "--resume-on-boot"]


@pytest.mark.timeout(60)
def test_sigterm_as_at_shutdown_keeps_the_registration_and_ctrl_c_removes_it(hq):
    fakes = Fakes(hq.tmp)
    gate, ledger = hq.tmp / "gate", hq.tmp / "ledger"
    gated_jobs(hq.tmp, 3, gate, ledger)
    out = hq.tmp / "output"
    for sig, code, kept in ((signal.SIGTERM, 143, True), (signal.SIGINT, 130, False)):
        runner = hq.start("--job-file", "jobs.txt", "--gpus", "0", "--resume-on-boot",
                          env=fakes.env)
        wait_for(lambda: len(fakes.crontab) == 1 and hq.status(out)["counts"]["running"] == 1,
                 timeout=20, interval=0.2, what="a job running and the @reboot line")
        runner.signal(sig)
        if sig == signal.SIGINT:
            runner.wait_output("starting no new jobs")
            write(gate, "")
        assert runner.wait(20) == code, runner.output
        assert (len(fakes.crontab) == 1) is kept
        assert (hq.status(out)["resume_on_boot"] is not None) is kept
