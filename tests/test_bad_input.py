"""Bad input is an input error, never a crash: NUL bytes, lone surrogates, numbers that
do not fit, NaN and infinity, grid placeholders missing from the grid, typos of job
options, empty commands and slot counts beyond the bound. Each names its file and line;
in the first job hog exits 2 with nothing started, part-way through a stream it exits 1
and keeps what already ran."""
import os
import textwrap
import time

import pytest

from hog.errors import InputError, UsageError
from hog.gpus.spec import MAX_SLOTS, parse_gpus
from hog.sources.joboptions import MAX_RETRIES, job_kwargs
from hog.sources.text import check_readable, text_jobs
from hog.sources.watch import watch_jobs
from hog.sources.yaml import yaml_jobs
from hog.sources.yielder import job_from_item, yielder_jobs

from .harness import assert_no_traceback, job_dir, job_file, marker, out, run_hog, write


def text_error(tmp_path, *lines: str) -> str:
    path = job_file(tmp_path, *lines)
    with pytest.raises(InputError) as e:
        list(text_jobs(str(path)))
    return str(e.value)


def yaml_error(tmp_path, text: str) -> str:
    path = write(tmp_path / "jobs.yaml", textwrap.dedent(text).lstrip("\n"))
    with pytest.raises(InputError) as e:
        list(yaml_jobs(str(path)))
    return str(e.value)


def item_error(item) -> str:
    with pytest.raises(InputError) as e:
        job_from_item(item, 0, "sweep.py:7")
    return str(e.value)


def no_discovery():
    raise AssertionError("discovery must not run for an explicit spec")


# ------------------------------------------------------------- bad bytes
def test_a_nul_byte_in_a_command_is_an_input_error_naming_file_and_line(tmp_path):
    message = text_error(tmp_path, "echo fine", "echo a\x00b")
    assert message.startswith(f"{tmp_path}/jobs.txt:2: ")
    assert "NUL byte" in message


def test_a_nul_byte_in_a_yielded_command_or_name_is_an_input_error():
    assert "command of job 0 contains a NUL byte" in item_error("echo a\x00b")
    assert item_error({"cmd": "echo hi", "name": "a\x00b"}).startswith("sweep.py:7: the job name")


@pytest.mark.parametrize("option", [
    {"env": {"FOO": "a\x00b"}}, {"env": {"F\x00O": "x"}}, {"cwd": "/tmp\x00"},
    {"after": ["pr\x00ep"]}, {"gpu_ids": ["0\x00"]},
])
def test_a_nul_byte_in_any_job_option_is_an_input_error(option):
    with pytest.raises(InputError, match="^sweep.py:7: .*NUL byte"):
        job_kwargs(option, "sweep.py:7")


@pytest.mark.parametrize("name", ["A=B", ""])
def test_an_env_variable_name_that_is_empty_or_has_an_equals_sign_is_an_input_error(name):
    with pytest.raises(InputError, match=f"bad variable name '{name}' in env: expected a "
                                         f"non-empty name without '='"):
        job_kwargs({"env": {name: "1"}}, "sweep.py:7")


def test_a_lone_surrogate_from_a_yielder_is_an_input_error_naming_file_and_line(tmp_path):
    path = write(tmp_path / "sweep.py", 'def yielder():\n'
                                        '    yield "echo ok"\n'
                                        '    yield "echo \\udc80"\n')
    jobs = yielder_jobs(str(path))
    assert next(jobs).command == "echo ok"
    with pytest.raises(InputError) as e:
        next(jobs)
    assert str(e.value).startswith(f"{path}:3: the command of job 1 contains '\\udc80'")
    assert "lone surrogate" in str(e.value)


def test_a_lone_surrogate_in_a_yaml_command_or_name_is_an_input_error(tmp_path):
    message = yaml_error(tmp_path, r"""
        jobs:
          - "echo \ud800"
        """)
    assert "jobs.yaml:2 (jobs[0]): the command contains '\\ud800'" in message
    message = yaml_error(tmp_path, r"""
        jobs:
          - {cmd: echo hi, name: "x\udfff"}
        """)
    assert "jobs.yaml:2 (jobs[0]): the job name contains '\\udfff'" in message


def test_emoji_and_other_valid_non_bmp_text_are_accepted(tmp_path):
    job = job_from_item({"cmd": "echo \U0001F600 \u4e2d", "name": "smile-\U0001F600",
                         "env": {"FACE": "\U0001F642"}}, 0, "sweep.py:7")
    assert job.command == "echo \U0001F600 \u4e2d" and job.name == "smile-\U0001F600"
    [text] = text_jobs(str(job_file(tmp_path, "echo \U0001F680 # hog: name=rocket-\U0001F680")))
    assert text.name == "rocket-\U0001F680"


def test_a_job_file_whose_name_is_not_utf8_is_an_input_error(tmp_path):
    path = os.fsdecode(os.path.join(os.fsencode(str(tmp_path)), b"jobs-\xff.txt"))
    with open(path, "w") as f:
        f.write("echo hi\n")
    with pytest.raises(InputError, match="job file's name holds a NUL byte or bytes that are "
                                         "not UTF-8; rename it"):
        check_readable(path, "job file")


def test_a_watched_script_whose_name_is_not_utf8_is_an_input_error(tmp_path):
    (tmp_path / "to_run").mkdir()
    with open(os.path.join(os.fsencode(str(tmp_path / "to_run")), b"s-\xff.sh"), "w") as f:
        f.write("echo hi\n")
    with pytest.raises(InputError, match="script's name is not valid UTF-8; rename it"):
        list(watch_jobs(str(tmp_path), True, scan_s=0.01, settle_s=0))
    assert os.listdir(os.fsencode(str(tmp_path / "to_run"))) == [b"s-\xff.sh"]


# ------------------------------------------------------------- numbers
@pytest.mark.parametrize("value", ["9223372036854775808", "-9223372036854775809",
                                   "99999999999999999999999"])
def test_a_priority_beyond_64_bits_is_an_input_error(tmp_path, value):
    message = text_error(tmp_path, f"echo hi # hog: priority={value}")
    assert message.startswith(f"{tmp_path}/jobs.txt:1: bad value '{value}' for 'priority'")
    assert "fits in 64 bits" in message
    assert "fits in 64 bits" in item_error({"cmd": "echo", "priority": int(value)})
    assert "fits in 64 bits" in item_error({"cmd": "echo", "priority": 1e300})


def test_the_64_bit_priority_bounds_are_accepted():
    assert job_kwargs({"priority": 2 ** 63 - 1}, "")["priority"] == 2 ** 63 - 1
    assert job_kwargs({"priority": -2 ** 63}, "")["priority"] == -2 ** 63


@pytest.mark.parametrize("value", ["25d", "30d", "1000000h", str(10 ** 30)])
def test_a_timeout_beyond_24_days_is_an_input_error(tmp_path, value):
    message = text_error(tmp_path, f"echo hi # hog: timeout={value}")
    assert message == (f"{tmp_path}/jobs.txt:1: bad value '{value}' for 'timeout': expected a "
                       f"duration of at most 24d (the longest timeout a slot can wait for)")


def test_a_timeout_of_24_days_is_accepted():
    assert job_kwargs({"timeout": "24d"}, "")["timeout"] == 24 * 86400


def test_retries_beyond_the_bound_are_an_input_error(tmp_path):
    assert job_kwargs({"retries": MAX_RETRIES}, "")["retries"] == MAX_RETRIES
    message = text_error(tmp_path, f"echo hi # hog: retries={MAX_RETRIES + 1}")
    assert message == (f"{tmp_path}/jobs.txt:1: bad value '{MAX_RETRIES + 1}' for 'retries': "
                       f"expected a whole number from 0 to {MAX_RETRIES}")
    assert "from 0 to" in item_error({"cmd": "echo", "retries": 10 ** 20})


@pytest.mark.parametrize("option", [
    {"timeout": float("nan")}, {"timeout": float("inf")}, {"timeout": 10 ** 400},
    {"resources": {"mem": float("nan")}}, {"resources": {"mem": float("inf")}},
    {"resources": {"mem": 10 ** 400}}, {"gpus": float("nan")}, {"gpus": float("inf")},
    {"priority": float("nan")}, {"priority": float("inf")}, {"retries": float("inf")},
])
def test_nan_and_infinite_numbers_are_input_errors(option):
    with pytest.raises(InputError, match="^sweep.py:7: bad (value|amount)"):
        job_kwargs(option, "sweep.py:7")


def test_nan_and_infinity_in_yaml_and_overflowing_digits_in_text_are_input_errors(tmp_path):
    assert "bad value inf for 'timeout'" in yaml_error(tmp_path, """
        jobs:
          - {cmd: echo hi, timeout: .inf}
        """)
    assert "bad amount nan for resource 'mem'" in yaml_error(tmp_path, """
        jobs:
          - {cmd: echo hi, resources: {mem: .nan}}
        """)
    huge = "1" + "0" * 400                     # a float of it is infinite
    assert "bad amount" in text_error(tmp_path, f"echo hi # hog: mem={huge}")


# ------------------------------------------------------------- grid placeholders
def test_a_grid_placeholder_missing_from_the_grid_is_an_input_error(tmp_path):
    message = yaml_error(tmp_path, """
        jobs:
          - echo first
          - sweep:
              cmd: python train.py --lr {lr} --seed {seed}
              grid: {seed: [1, 2]}
        """)
    assert message == (f"{tmp_path}/jobs.yaml:3 (jobs[1]): the sweep's cmd uses {{lr}}, but "
                       f"the grid has no 'lr' (grid: seed); write {{{{lr}}}} for a literal {{lr}}")


def test_a_name_placeholder_missing_from_the_grid_is_an_input_error(tmp_path):
    assert "the sweep's name uses {model}" in yaml_error(tmp_path, """
        sweeps:
          - cmd: run --lr {lr}
            name: "{model}-{lr}"
            grid: {lr: [1]}
        """)


def test_doubled_braces_are_a_literal_placeholder(tmp_path):
    path = write(tmp_path / "jobs.yaml", textwrap.dedent("""
        jobs:
          - sweep:
              cmd: "awk '{{print}}' {lr}"
              grid: {lr: [3]}
        """))
    [job] = yaml_jobs(str(path))
    assert job.command == "awk '{print}' 3"


# ------------------------------------------------------------- option typos
@pytest.mark.parametrize("key, meant", [
    ("timout", "timeout"), ("timeoutt", "timeout"), ("tiemout", "timeout"),
    ("retires", "retries"), ("prority", "priority"), ("Timeout", "timeout"),
    ("gpu", "gpus"), ("nmae", "name"), ("afterr", "after"),
])
def test_an_option_key_one_edit_from_a_known_option_is_refused_with_a_suggestion(
        tmp_path, key, meant):
    message = text_error(tmp_path, f"echo hi # hog: {key}=1")
    assert message == (f"{tmp_path}/jobs.txt:1: unknown job option {key!r}: "
                       f"did you mean {meant!r}?")
    assert f"did you mean {meant!r}?" in item_error({"cmd": "echo", key: 1})


def test_a_typo_in_yaml_defaults_gets_a_suggestion(tmp_path):
    message = yaml_error(tmp_path, """
        defaults: {timout: 1h}
        jobs: [echo hi]
        """)
    assert message == f"{tmp_path}/jobs.yaml: defaults: unknown job option 'timout': " \
                      f"did you mean 'timeout'?"


def test_a_resource_far_from_every_option_is_still_a_resource(tmp_path):
    [job] = text_jobs(str(job_file(tmp_path, "echo hi # hog: mem=20G tpu=1 licence=2")))
    assert dict(job.resources) == {"mem": 20 * 2 ** 30, "tpu": 1.0, "licence": 2.0}


# ------------------------------------------------------------- empty commands
def test_an_empty_command_is_an_input_error(tmp_path):
    assert text_error(tmp_path, "echo first", "\\", "") == \
        f"{tmp_path}/jobs.txt:2: the command is empty"
    assert text_error(tmp_path, "\\", "  # hog: gpus=0") == \
        f"{tmp_path}/jobs.txt:1: the command is empty (only a hog directive)"
    assert item_error("   ") == "sweep.py:7: job 0 has an empty command"
    assert "a job needs a non-empty 'cmd'" in yaml_error(tmp_path, """
        jobs:
          - {cmd: "  "}
        """)


# ------------------------------------------------------------- slot counts
@pytest.mark.parametrize("spec", ["0-9999", "0x2000", "0-1023,0", "0-999999999999x999999999"])
def test_a_slot_count_beyond_the_bound_is_a_usage_error(spec):
    started = time.monotonic()
    with pytest.raises(UsageError) as e:
        parse_gpus(spec, no_discovery)
    assert str(e.value) == (f"--gpus {spec!r}: more than {MAX_SLOTS} slots; hog runs at most "
                            f"{MAX_SLOTS} slots at once")
    assert time.monotonic() - started < 1       # counted, never built


def test_exactly_the_bound_of_slots_is_accepted():
    assert len(parse_gpus(f"0-{MAX_SLOTS // 2 - 1}x2", no_discovery)) == MAX_SLOTS


# ------------------------------------------------------------- end to end
def assert_one_line_exit_2_nothing_started(tmp_path, r, *words):
    assert r.returncode == 2, r.stderr
    assert_no_traceback(r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hog: error: "), r.stderr
    for word in words:
        assert word in lines[0], r.stderr
    assert not (tmp_path / "output").exists()


def test_a_nul_byte_in_the_first_command_exits_2_with_nothing_started(tmp_path):
    job_file(tmp_path, "echo a\x00b")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert_one_line_exit_2_nothing_started(tmp_path, r, "jobs.txt:1: ", "NUL byte")


def test_a_lone_surrogate_from_a_yielder_exits_2_with_nothing_started(tmp_path):
    write(tmp_path / "sweep.py", 'def yielder():\n    yield "echo \\ud800"\n')
    r = run_hog(tmp_path, "--job_yielder", "sweep.py", "--gpus", "0")
    assert_one_line_exit_2_nothing_started(tmp_path, r, "sweep.py:2: ", "lone surrogate")


def test_gpus_beyond_the_slot_bound_exit_2_with_nothing_started(tmp_path):
    job_file(tmp_path, "echo hi")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0-9999")
    assert_one_line_exit_2_nothing_started(tmp_path, r, "more than 1024 slots")


def test_a_bad_priority_part_way_through_exits_1_and_keeps_what_ran(tmp_path):
    job_file(tmp_path, "echo first", "echo second # hog: priority=99999999999999999999")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 1, r.stderr
    assert_no_traceback(r.stderr)
    assert "jobs.txt:2: bad value '99999999999999999999' for 'priority'" in r.stderr
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS"
    assert out(job_dir(tmp_path, 0)) == "first\n"
    assert not job_dir(tmp_path, 1).exists()


def test_emoji_commands_and_names_run_end_to_end(tmp_path):
    write(tmp_path / "sweep.py", 'def yielder():\n'
                                 '    yield {"cmd": "echo \\U0001F600",\n'
                                 '           "name": "smile-\\U0001F600"}\n')
    r = run_hog(tmp_path, "--job_yielder", "sweep.py", "--gpus", "0")
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)) == "\U0001F600\n"
