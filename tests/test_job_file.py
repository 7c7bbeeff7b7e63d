"""Text job files: one bash job per line, comments, blank lines, continuation lines,
and trailing ``# hog: key=value`` directives (and their errors, named by file:line)."""
import pytest

from .harness import (
    assert_no_traceback,
    err,
    info,
    job_dir,
    job_dirs,
    job_file,
    marker,
    out,
    run_hog,
    write,
)


def run_file(tmp_path, *lines, gpus="0"):
    job_file(tmp_path, *lines)
    return run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", gpus)


# ------------------------------------------------------------------ bash
def test_jobs_run_under_bash_not_sh(tmp_path):
    r = run_file(tmp_path,
                 'echo "$BASH_VERSION"',
                 '[[ abc == a* ]] && echo double-brackets',
                 'echo {1..3}',
                 'cat <(echo process-substitution)',
                 'a=(x y z); echo "${a[1]} ${#a[@]}"',
                 'shopt -q extglob || shopt -s extglob; echo $((6 * 7))')
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)).strip() != ""
    assert out(job_dir(tmp_path, 1)) == "double-brackets\n"
    assert out(job_dir(tmp_path, 2)) == "1 2 3\n"
    assert out(job_dir(tmp_path, 3)) == "process-substitution\n"
    assert out(job_dir(tmp_path, 4)) == "y 3\n"
    assert out(job_dir(tmp_path, 5)) == "42\n"


def test_pipes_quotes_subshells_and_and_chains_work(tmp_path):
    r = run_file(tmp_path,
                 "echo hello world | tr a-z A-Z | rev",
                 """echo 'single "quoted"' "double 'quoted'" "it's \\"escaped\\"" """,
                 "(cd / && pwd); pwd | grep -q / && echo still-here",
                 "true && echo one && false && echo never; echo after $?",
                 "false || echo fallback",
                 "echo $(echo nested $(echo deeper))",
                 "for i in 1 2 3; do printf '%s-' $i; done; echo")
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)) == "DLROW OLLEH\n"
    assert out(job_dir(tmp_path, 1)) == """single "quoted" double 'quoted' it's "escaped"\n"""
    assert out(job_dir(tmp_path, 2)) == "/\nstill-here\n"
    assert out(job_dir(tmp_path, 3)) == "one\nafter 1\n"
    assert out(job_dir(tmp_path, 4)) == "fallback\n"
    assert out(job_dir(tmp_path, 5)) == "nested deeper\n"
    assert out(job_dir(tmp_path, 6)) == "1-2-3-\n"


def test_a_hash_inside_quotes_or_a_plain_trailing_comment_is_left_to_bash(tmp_path):
    r = run_file(tmp_path,
                 "echo 'a # b' \"c # d\"",
                 "echo visible # an ordinary comment, not a directive",
                 "echo 'x#y'")
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)) == "a # b c # d\n"
    assert out(job_dir(tmp_path, 1)) == "visible\n"
    assert out(job_dir(tmp_path, 2)) == "x#y\n"


def test_each_line_is_a_separate_bash_process(tmp_path):
    r = run_file(tmp_path, "X=set-in-job-0; echo $$", 'echo "${X:-unset}"; echo $$')
    assert r.returncode == 0, r.stderr
    pid0 = out(job_dir(tmp_path, 0)).strip()
    lines1 = out(job_dir(tmp_path, 1)).split()
    assert lines1[0] == "unset"
    assert lines1[1] != pid0


# ------------------------------------------------------------------ skipping
def test_blank_lines_and_comment_lines_are_skipped_and_not_numbered(tmp_path):
    r = run_file(tmp_path,
                 "# a comment",
                 "",
                 "   ",
                 "\t",
                 "echo first",
                 "    # an indented comment",
                 "#echo not-a-job",
                 "",
                 "echo second")
    assert r.returncode == 0, r.stderr
    dirs = job_dirs(tmp_path)
    assert [d.name for d in dirs] == ["job_0", "job_1"]
    assert out(dirs[0]) == "first\n"
    assert out(dirs[1]) == "second\n"


def test_a_file_with_only_comments_runs_nothing_and_exits_0(tmp_path):
    r = run_file(tmp_path, "# nothing here", "", "   # nor here")
    assert r.returncode == 0, r.stderr
    assert job_dirs(tmp_path) == []
    assert_no_traceback(r.stderr)


def test_an_empty_file_runs_nothing_and_exits_0(tmp_path):
    write(tmp_path / "jobs.txt", "")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0, r.stderr
    assert job_dirs(tmp_path) == []


def test_last_line_without_newline_still_runs(tmp_path):
    write(tmp_path / "jobs.txt", "echo a\necho b")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 1)) == "b\n"


def test_crlf_line_endings_are_not_passed_to_bash(tmp_path):
    (tmp_path / "jobs.txt").write_bytes(b"echo one\r\necho two\r\n")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)) == "one\n"
    assert out(job_dir(tmp_path, 1)) == "two\n"


# ------------------------------------------------------------------ continuation
def test_trailing_backslash_continues_the_line(tmp_path):
    r = run_file(tmp_path,
                 "echo one \\",
                 "  two \\",
                 "  three",
                 "echo next")
    assert r.returncode == 0, r.stderr
    dirs = job_dirs(tmp_path)
    assert len(dirs) == 2
    assert out(dirs[0]).split() == ["one", "two", "three"]
    assert out(dirs[1]) == "next\n"
    command = info(dirs[0])["command"]
    assert "one" in command and "two" in command and "three" in command


def test_continuation_with_and_chain_across_lines(tmp_path):
    r = run_file(tmp_path,
                 "true \\",
                 "  && echo joined \\",
                 "  && [[ -n x ]] && echo still-bash")
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)) == "joined\nstill-bash\n"
    assert len(job_dirs(tmp_path)) == 1


def test_an_escaped_backslash_at_line_end_does_not_continue(tmp_path):
    r = run_file(tmp_path, "echo 'a'\\\\", "echo b")
    assert r.returncode == 0, r.stderr
    assert len(job_dirs(tmp_path)) == 2
    assert out(job_dir(tmp_path, 0)) == "a\\\n"
    assert out(job_dir(tmp_path, 1)) == "b\n"


def test_a_comment_line_inside_a_continuation_belongs_to_the_job(tmp_path):
    # after a trailing backslash the next line is part of the command, whatever it holds
    r = run_file(tmp_path, "echo start \\", "  # tail", "echo other")
    assert r.returncode == 0, r.stderr
    assert [out(d) for d in job_dirs(tmp_path)] == ["start\n", "other\n"]


# ------------------------------------------------------------------ directives
def test_directive_sets_the_job_name(tmp_path):
    r = run_file(tmp_path, 'echo "$HOG_JOB_NAME"  # hog: name=warmup', "echo plain")
    assert r.returncode == 0, r.stderr
    d0, d1 = job_dirs(tmp_path)
    assert d0.name == "job_0"            # folders are numbered; the name goes to INFO
    assert info(d0)["name"] == "warmup"
    assert out(d0) == "warmup\n"
    assert info(d1)["name"] == "job_1"


def test_directive_values_may_be_quoted(tmp_path):
    r = run_file(tmp_path, 'echo "$HOG_JOB_NAME" # hog: name="lr 0.1, warm" gpus=1')
    assert r.returncode == 0, r.stderr
    assert info(job_dir(tmp_path, 0))["name"] == "lr 0.1, warm"
    assert out(job_dir(tmp_path, 0)) == "lr 0.1, warm\n"


def test_directive_with_several_options(tmp_path):
    r = run_file(tmp_path,
                 'echo "[$CUDA_VISIBLE_DEVICES]" # hog: name=cpu-job gpus=0 timeout=30s',
                 gpus="0,1")
    assert r.returncode == 0, r.stderr
    d = job_dir(tmp_path, 0)
    assert info(d)["name"] == "cpu-job"
    assert info(d)["gpus"] == []
    assert out(d) == "[]\n"


def test_directive_gpus_2_gives_the_job_two_gpus(tmp_path):
    r = run_file(tmp_path, 'echo "$CUDA_VISIBLE_DEVICES" # hog: gpus=2', gpus="0,1")
    assert r.returncode == 0, r.stderr
    assert sorted(out(job_dir(tmp_path, 0)).strip().split(",")) == ["0", "1"]


def test_the_word_hog_in_an_ordinary_comment_is_not_a_directive(tmp_path):
    r = run_file(tmp_path, "echo ok # hogs all GPUs: gpus=9")
    assert r.returncode == 0, r.stderr
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS"


@pytest.mark.parametrize("directive, named", [
    ("gpus=two", "gpus"),
    ("gpus=-1", "gpus"),
    ("timeout=soon", "timeout"),
    ("timeout=0", "timeout"),
    ("retries=x", "retries"),
    ("name=", "name"),
    ("justaword", "justaword"),
    ("foo=lots", "foo"),
    ("cmd=ls", "cmd"),
    ("name='unterminated", ""),
])
def test_bad_directive_on_the_first_job_is_an_input_error_naming_file_and_line(
        tmp_path, directive, named):
    r = run_file(tmp_path, "# header", "", f"echo hi # hog: {directive}", "echo later")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "jobs.txt:3" in r.stderr
    assert named in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert_no_traceback(r.stderr)
    assert job_dirs(tmp_path) == []


def test_bad_directive_on_a_later_line_is_reported_with_file_and_line(tmp_path):
    r = run_file(tmp_path, "echo a", "echo b", "", "echo c # hog: gpus=many", "echo d")
    assert r.returncode in (1, 2), (r.stdout, r.stderr)
    assert "jobs.txt:4" in r.stderr
    assert "gpus" in r.stderr
    assert_no_traceback(r.stderr)
    # the bad job and those after it never ran
    for d in job_dirs(tmp_path):
        assert out(d) in ("a\n", "b\n")


def test_a_line_that_is_not_utf8_is_an_error_naming_file_and_line(tmp_path):
    (tmp_path / "jobs.txt").write_bytes(b"echo \xff\xfe bad\n")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 2
    assert "jobs.txt:1" in r.stderr
    assert_no_traceback(r.stderr)


def test_resource_directive_the_runner_lacks_makes_the_job_unschedulable(tmp_path):
    r = run_file(tmp_path, "echo ok", "echo never # hog: foo=5", "echo also-ok")
    assert r.returncode == 1, r.stderr
    d = job_dir(tmp_path, 1)
    assert marker(d) == "FAILURE"
    assert info(d)["status"] == "unschedulable"
    assert out(d) == ""
    assert "foo" in r.stderr and "job_1" in r.stderr
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS"
    assert marker(job_dir(tmp_path, 2)) == "SUCCESS"
    assert "foo" in err(d)
