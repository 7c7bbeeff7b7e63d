"""The command line's conventions: dashed options (gpu-hog's underscore spellings still
work), short options, "did you mean" for a mistyped verb or option, help for every
option, DIR defaulting to ``output``, shell completion, and the time on plain lines."""
import json
import os
import pty
import re
import select
import shutil
import subprocess
import time

import pytest

from hog.cli import PARSERS, VERBS
from hog.cli.completion import RUN

from .harness import (
    assert_no_traceback,
    hog_argv,
    hog_env,
    job_dir,
    job_file,
    job_rows,
    marker,
    run_hog,
    runner_rows,
    start_hog,
    status_counts,
    track,
    wait_for,
)

STAMP = r"\[hog \d\d:\d\d:\d\d\]"


def one_line(text):
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line message, got:\n{text}"
    return lines[0]


def quick_sweep(tmp_path, *lines):
    """A finished sweep in tmp_path/output: by default job_0 succeeds, job_1 fails."""
    job_file(tmp_path, *(lines or ("echo out0; echo err0 >&2", "exit 3")))
    r = run_hog(tmp_path, "-j", "jobs.txt", "-g", "0")
    assert r.returncode in (0, 1), r.stderr
    return tmp_path / "output"


# ------------------------------------------------------------------ spellings
@pytest.mark.parametrize("spelling", [
    ["--job-file", "jobs.txt", "--gpus", "0", "--output-dir", "o", "--display", "plain"],
    ["--job_file", "jobs.txt", "--gpus", "0", "--output_dir", "o", "--display", "plain"],
    ["--job_file=jobs.txt", "--gpus=0", "--output_dir=o", "--hook_timeout=5"],
    ["-j", "jobs.txt", "-g", "0", "-o", "o", "-q"],
    ["--job-f", "jobs.txt", "--gpus", "0", "--output", "o"],          # abbreviations
])
def test_dashed_underscore_short_and_abbreviated_spellings_all_run_the_sweep(tmp_path, spelling):
    job_file(tmp_path, "echo spelled")
    r = run_hog(tmp_path, *spelling)
    assert r.returncode == 0, r.stderr
    assert marker(job_dir(tmp_path, 0, output="o")) == "SUCCESS"


def test_help_shows_the_dashed_and_short_spellings_and_lists_the_underscore_ones(tmp_path):
    text = run_hog(tmp_path, "--help").stdout
    for shown in ("-j FILE, --job-file FILE", "-y FILE, --job-yielder FILE",
                  "-g SPEC, --gpus SPEC", "-o DIR, --output-dir DIR", "-q, --quiet",
                  "-d, --detach", "-V, --version"):
        assert shown in text, shown
    note = text[text.index("underscore spellings"):]
    for option in PARSERS[RUN]()._actions:
        for name in option.option_strings:
            assert name in text, name                       # every option is listed
            if name.startswith("--") and "-" in name[2:]:
                assert "--" + name[2:].replace("-", "_") in note, name


def test_hog_add_takes_short_and_both_spellings_of_its_options(tmp_path):
    out = quick_sweep(tmp_path)
    r = run_hog(tmp_path, "add", "-n", "short", "-g", "0", "-t", "30m", "-p", "3", "--", "true")
    assert r.returncode == 0, r.stderr
    r = run_hog(tmp_path, "add", "--gpu_ids", "0", "--name=under", "--", "true")
    assert r.returncode == 0, r.stderr
    names = {row["name"] for row in job_rows(out).values()}
    assert {"short", "under"} <= names


def test_the_short_options_of_logs_and_report(tmp_path):
    quick_sweep(tmp_path)
    assert run_hog(tmp_path, "logs", "-e", "0").stdout == "err0\n"
    r = run_hog(tmp_path, "report", "-o", "page.html")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "page.html").stat().st_size > 0


@pytest.mark.parametrize("detach", [["-d"], ["-qd"], ["--det"]])
def test_a_short_or_abbreviated_detach_starts_one_background_runner(tmp_path, detach):
    job_file(tmp_path, "while [ ! -e release ]; do sleep 0.05; done")
    r = run_hog(tmp_path, *detach, "-j", "jobs.txt", "-g", "0")
    assert r.returncode == 0, r.stderr
    assert "running in the background" in r.stdout
    (tmp_path / "release").touch()
    out = tmp_path / "output"
    wait_for(lambda: status_counts(out) == {"succeeded": 1} and
             all(row["ended"] for row in runner_rows(out)), 20, what="the detached sweep")
    log = (out / ".hog" / "runner.log").read_text()
    assert log.count("--- hog started") == 1, log         # the runner did not detach again
    assert len(runner_rows(out)) == 1


# ------------------------------------------------------------------ did you mean
def test_a_mistyped_verb_is_one_line_naming_the_nearest_verb_exit_2(tmp_path):
    quick_sweep(tmp_path)
    for argv, verb in ((["stauts", "output"], "status"), (["atach"], "attach"),
                       (["reprot", "output"], "report")):
        r = run_hog(tmp_path, *argv)
        assert r.returncode == 2
        assert one_line(r.stderr) == f"hog: unknown command {argv[0]!r}; did you mean {verb!r}?"
        assert r.stdout == ""


def test_a_job_file_given_as_a_verb_says_how_to_run_it(tmp_path):
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, "jobs.txt")
    assert r.returncode == 2
    assert "hog --job-file jobs.txt" in one_line(r.stderr)
    assert not (tmp_path / "output").exists()


@pytest.mark.parametrize("argv, wrong, meant", [
    (["--job-fiel", "jobs.txt", "--gpus", "0"], "--job-fiel", "--job-file"),
    (["--job_fiel", "jobs.txt"], "--job_fiel", "--job-file"),
    (["-j", "jobs.txt", "--gpus", "0", "--outptu-dir", "o"], "--outptu-dir", "--output-dir"),
    (["status", "--jsno"], "--jsno", "--json"),
    (["logs", "0", "--folow"], "--folow", "--follow"),
    (["add", "--nmae", "x", "--", "true"], "--nmae", "--name"),
])
def test_a_mistyped_option_is_one_line_naming_the_nearest_option_exit_2(tmp_path, argv, wrong,
                                                                         meant):
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, *argv)
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert f"unrecognized option {wrong!r}; did you mean {meant!r}?" in line, line
    assert_no_traceback(r.stderr)
    assert not (tmp_path / "output").exists()


# ------------------------------------------------------------------ help
def test_every_option_and_argument_of_every_verb_has_help_text():
    assert set(PARSERS) == set(VERBS) | {RUN}
    missing = [f"{verb or 'hog'} {' / '.join(a.option_strings) or a.metavar or a.dest}"
               for verb, make in PARSERS.items() for a in make()._actions
               if not (a.help or "").strip()]
    assert missing == []


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_has_help_that_exits_0(tmp_path, verb):
    r = run_hog(tmp_path, verb, "--help")
    assert r.returncode == 0 and r.stderr == ""
    assert f"usage: hog {verb}" in r.stdout


def test_hog_gpus_help_shows_both_its_forms(tmp_path):
    text = run_hog(tmp_path, "gpus", "--help").stdout
    assert "hog gpus [-h]\n" in text
    assert "hog gpus [-h] [DIR] SPEC" in text
    assert "--runner ID" in text


# ------------------------------------------------------------------ DIR defaults to output
def test_the_verbs_that_only_read_default_to_the_output_directory(tmp_path):
    quick_sweep(tmp_path)
    r = run_hog(tmp_path, "status")
    assert r.returncode == 0 and "1 succeeded" in r.stdout and "1 failed" in r.stdout, r.stdout
    assert json.loads(run_hog(tmp_path, "status", "--json").stdout)["output_dir"] == "output"
    assert run_hog(tmp_path, "logs", "0").stdout == "out0\n"
    assert run_hog(tmp_path, "logs", "output", "0").stdout == "out0\n"   # two words: DIR JOB
    r = run_hog(tmp_path, "report")
    assert r.returncode == 0 and (tmp_path / "output" / "report.html").exists(), r.stderr
    r = run_hog(tmp_path, "attach")
    assert r.returncode == 0, r.stderr
    assert "output" in r.stdout


def test_the_verbs_that_change_the_queue_default_to_the_output_directory(tmp_path):
    out = quick_sweep(tmp_path)
    r = run_hog(tmp_path, "retry", "--failed")
    assert r.returncode == 0 and "queued 1 job(s) again" in r.stdout, r.stderr
    r = run_hog(tmp_path, "add", "--", "echo", "added")
    assert r.returncode == 0 and "added 1 job(s) (#2)" in r.stdout, r.stderr
    r = run_hog(tmp_path, "kill", "2")
    assert r.returncode == 0 and "job 2: cancelled" in r.stdout, r.stderr
    r = run_hog(tmp_path, "kill", "output", "1")             # the first word holds a sweep
    assert r.returncode == 0 and "job 1: cancelled" in r.stdout, r.stderr
    assert status_counts(out) == {"succeeded": 1, "cancelled": 2}
    r = run_hog(tmp_path, "stop")
    assert r.returncode == 0 and "no runner is active on output" in r.stdout
    r = run_hog(tmp_path, "gpus", "0,1")                     # one word: SPEC
    assert r.returncode == 2 and one_line(r.stderr) == "hog: error: no active runner on output"


def test_hog_gpus_with_a_spec_changes_the_live_runner_on_output(tmp_path):
    job_file(tmp_path, "while [ ! -e release ]; do sleep 0.05; done")
    runner = start_hog(tmp_path, "-j", "jobs.txt", "-g", "0", "--display", "plain")
    wait_for(lambda: "start job_0" in runner.stdout, 15, what="job_0's start")
    r = run_hog(tmp_path, "gpus", "0,0")
    assert r.returncode == 0 and "will use --gpus 0,0" in r.stdout, r.stderr
    (tmp_path / "release").touch()
    assert runner.wait(20) == 0


def test_a_verb_without_dir_and_without_an_output_directory_says_so(tmp_path):
    for argv in (["status"], ["logs", "0"], ["kill", "0"], ["retry", "--failed"], ["stop"],
                 ["report"], ["attach"], ["gpus", "0"], ["rebuild"]):
        r = run_hog(tmp_path, *argv)
        assert r.returncode == 2, argv
        line = one_line(r.stderr)
        assert "no sweep in ./output" in line and f"hog {argv[0]} DIR" in line, line


def test_a_first_word_that_is_a_directory_without_a_sweep_is_named(tmp_path):
    quick_sweep(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    r = run_hog(tmp_path, "kill", "elsewhere", "0")
    assert r.returncode == 2
    assert "elsewhere: not a sweep's directory" in one_line(r.stderr)


# ------------------------------------------------------------------ completion
def complete(script, *words):
    """What the completion function offers for ``hog WORDS`` (the last word being typed)."""
    line = ["hog", *words]
    shell = (f"source {script}\n"
             f"COMP_WORDS=({' '.join(repr(w) for w in line)}); COMP_CWORD={len(line) - 1}\n"
             "_hog_complete\n"
             'printf "%s\\n" "${COMPREPLY[@]}"\n')
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", shell], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return [w for w in r.stdout.splitlines() if w]


@pytest.fixture
def bash_script(tmp_path):
    r = run_hog(tmp_path, "completion", "bash")
    assert r.returncode == 0, r.stderr
    path = tmp_path / "hog.bash"
    path.write_text(r.stdout)
    return path


def test_the_bash_completion_completes_verbs_options_and_choices(bash_script):
    assert sorted(complete(bash_script, "st")) == ["status", "stop"]
    assert complete(bash_script, "sta") == ["status"]
    assert sorted(complete(bash_script, "")) == sorted(VERBS)
    assert sorted(complete(bash_script, "--job")) == ["--job-file", "--job-yielder"]
    assert complete(bash_script, "-j", "jobs.txt", "--output") == ["--output-dir"]
    assert complete(bash_script, "--display", "l") == ["live"]
    assert complete(bash_script, "status", "--j") == ["--json"]
    assert "--follow" in complete(bash_script, "logs", "output", "-")
    assert sorted(complete(bash_script, "completion", "")) == ["bash", "zsh"]
    assert complete(bash_script, "-j", "") == []             # a value: the shell's file names


def test_the_zsh_script_is_the_bash_one_under_bashcompinit(tmp_path, bash_script):
    r = run_hog(tmp_path, "completion", "zsh")
    assert r.returncode == 0, r.stderr
    assert "bashcompinit" in r.stdout
    assert "complete -o default -F _hog_complete hog" in r.stdout
    body = bash_script.read_text().split("\n", 2)[2]
    assert r.stdout.endswith(body)


def zsh_completes(tmp_path, script, typed):
    """What an interactive zsh (compinit, then ``script`` sourced) shows after each of
    ``typed`` followed by TAB: the line, and the listed choices if several match."""
    master, slave = pty.openpty()
    home = tmp_path / "zhome"
    home.mkdir(exist_ok=True)
    proc = track(subprocess.Popen(["zsh", "-f", "-i"], stdin=slave, stdout=slave, stderr=slave,
                                  cwd=str(tmp_path), start_new_session=True,
                                  env={**os.environ, "TERM": "dumb", "HOME": str(home)}))
    os.close(slave)
    seen = b""

    def read_until(test, timeout=10.0):
        nonlocal seen
        deadline = time.monotonic() + timeout
        while not test(seen) and time.monotonic() < deadline:
            if select.select([master], [], [], 0.05)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
        return seen.decode(errors="replace")

    try:
        os.write(master, f"autoload -U compinit && compinit -u; source {script}; "
                         "PS1='RE''ADY> '\n".encode())      # the echo does not say READY
        read_until(lambda b: b"READY> " in b)
        shown = []
        for text in typed:
            seen = b""
            os.write(master, text.encode() + b"\t")
            shown.append(read_until(lambda b: _completed(b, text.encode()), timeout=5))
            os.write(master, b"\x15")                   # Ctrl-U: a fresh line
        return shown
    finally:
        proc.kill()
        proc.wait()
        os.close(master)


def _completed(seen: bytes, typed: bytes) -> bool:
    """After ``typed`` the line editor added a completion (ending in a space) or listed
    the choices and drew the prompt again."""
    after = seen.split(typed, 1)[1] if typed in seen else b""
    return after.endswith(b" ") or b"READY> " in after


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_the_zsh_completion_completes_verbs_options_and_choices(tmp_path):
    script = tmp_path / "hog.zsh"
    script.write_text(run_hog(tmp_path, "completion", "zsh").stdout)
    verb, options, choice = zsh_completes(tmp_path, script, ["hog sta", "hog --job-",
                                                              "hog --display l"])
    assert "hog status " in verb, verb
    assert "--job-file" in options and "--job-yielder" in options, options
    assert "hog --display live " in choice, choice


# ------------------------------------------------------------------ plain lines' time
def test_plain_start_and_end_lines_carry_the_time(tmp_path):
    job_file(tmp_path, "true", "exit 4")
    r = run_hog(tmp_path, "-j", "jobs.txt", "-g", "0", "--display", "plain")
    lines = [line for line in r.stdout.splitlines() if "job_" in line and "hog:" not in line]
    assert len(lines) == 4, r.stdout
    assert re.match(STAMP + r" start job_0 slot 0 gpus 0 pid \d+$", lines[0]), lines
    assert re.match(STAMP + r" done job_0 exit 0 in ", lines[1]), lines
    assert re.match(STAMP + r" FAIL job_1 exit 4 in ", lines[3]), lines
    now = time.strftime("%H:%M")                        # within the minute (or the one before)
    before = time.strftime("%H:%M", time.localtime(time.time() - 60))
    assert lines[0][5:10] in (now, before), lines[0]


def test_attach_plain_lines_carry_the_time(tmp_path):
    job_file(tmp_path, "while [ ! -e release ]; do sleep 0.05; done", "true")
    runner = start_hog(tmp_path, "-j", "jobs.txt", "-g", "0", "--display", "quiet")
    wait_for(lambda: (tmp_path / "output" / ".hog").is_dir() and
             status_counts(tmp_path / "output").get("running"), 15, what="job_0 running")
    log = tmp_path / "attach.out"
    with open(log, "w") as out:
        proc = track(subprocess.Popen(hog_argv("attach"), cwd=str(tmp_path), env=hog_env(),
                                      stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT))
        wait_for(lambda: "start job_0" in log.read_text(), 15, what="attach's start line")
        (tmp_path / "release").touch()
        assert proc.wait(30) == 0
    assert runner.wait(20) == 0
    text = log.read_text()
    for event in ("start job_0", "done job_0", "start job_1", "done job_1"):
        assert re.search(r"^" + STAMP + " " + event, text, re.M), (event, text)
