"""Every string a job carries comes back exactly from INFO, the marker, results.jsonl
and ``hog status --json``: emoji (beyond the BMP), control characters, quotes, YAML's
special words and very long lines. Printing such a name never crashes or vanishes,
even on an ASCII-only stdout, and never puts a raw control character on a terminal."""
import json
import re

import pytest
import yaml

from hog.state.info import render_info

from .harness import assert_no_traceback, job_dir, run_hog, write

HOSTILE = [
    "emoji-\U0001f600-\U0001f680",           # beyond the BMP: a surrogate pair in UTF-16
    "tab\there", "esc\x1b[31mred", "cr\rback", "del\x7fete", "ctl\x01\x1f-mid",
    'dq"uote', "sq'uote", "back\\slash", "co: lon", "- dash", "#hash", "&anchor", "*alias",
    "!tag", "%pct", "@at", "`tick", "{brace}", "[list]", "|pipe", ">fold", "?q",
    "yes", "no", "null", "~", "1e3", "0x1f", "true", "off", "3.0",
    "é-ü-中文-\u2028-\u0085-\ufeff", "x" * 5000,
]


@pytest.mark.parametrize("text", HOSTILE + ["  leading spaces", "trailing  ", "a\nb"])
def test_render_info_reads_back_exactly_with_yaml_safe_load(text):
    fields = {"name": text, "command": text, "gpus": [text, "0"], "exit_code": None}
    rendered = render_info(fields)
    rendered.encode("ascii")                # plain ASCII: no encoding can garble it
    assert yaml.safe_load(rendered) == fields


def _sweep(tmp_path, env=None):
    jobs = [{"name": f"{i}-{text}", "cmd": f"  true # {text}"} for i, text in enumerate(HOSTILE)]
    jobs.append({"name": "fails-\U0001f4a5\x1b[2J", "cmd": "exit 3 # \U0001f4a5"})
    write(tmp_path / "jobs.yaml", yaml.safe_dump({"jobs": jobs}, allow_unicode=True))
    result = run_hog(tmp_path, "--job_file", "jobs.yaml", "--gpus", "0,0", env=env)
    return jobs, result


def test_hostile_names_and_commands_round_trip_through_info_results_and_status(tmp_path):
    jobs, result = _sweep(tmp_path)
    assert result.returncode == 1, result.stderr       # the last job fails on purpose
    assert_no_traceback(result.stdout + result.stderr)
    for i, job in enumerate(jobs):
        folder = job_dir(tmp_path, i)
        info = yaml.safe_load((folder / "INFO").read_text(encoding="ascii"))
        assert (info["name"], info["command"]) == (job["name"], job["cmd"]), i
        marker = "FAILURE" if i == len(jobs) - 1 else "SUCCESS"
        assert yaml.safe_load((folder / marker).read_text()) == info
    rows = [json.loads(line) for line in
            (tmp_path / "output" / "results.jsonl").read_text().splitlines()]
    by_index = {r["index"]: r for r in rows}
    assert [(by_index[i]["name"], by_index[i]["command"]) for i in range(len(jobs))] \
        == [(j["name"], j["cmd"]) for j in jobs]
    status = run_hog(tmp_path, "status", "output", "--json")
    assert status.returncode == 0, status.stderr
    assert [f["name"] for f in json.loads(status.stdout)["failed"]] == [jobs[-1]["name"]]


def test_the_plain_display_on_an_ascii_only_stdout_escapes_instead_of_crashing(tmp_path):
    env = {"LANG": "C", "LC_ALL": "C", "PYTHONIOENCODING": "ascii"}
    jobs, result = _sweep(tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    text = result.stdout + result.stderr
    assert_no_traceback(text)
    assert "\x1b" not in text and "\r" not in text and "\x7f" not in text
    assert re.search(r"\[hog [\d:]+\] start 0-emoji-\\U0001f600-\\U0001f680", result.stdout)
    assert re.search(r"\[hog [\d:]+\] FAIL fails-\\U0001f4a5\\x1b\[2J exit 3", result.stdout)
    assert "fails-\\U0001f4a5\\x1b[2J" in result.stderr + result.stdout   # the summary
    status = run_hog(tmp_path, "status", "output", env=env)
    assert status.returncode == 0 and "fails-\\U0001f4a5\\x1b[2J" in status.stdout
