"""Machine-readable results: ``results.jsonl`` / ``results.csv`` (one flat record per
job, the same keys every time, written at the end of every run and by ``hog report``)
and ``hog status DIR --json``."""
import csv
import json
import socket
from datetime import datetime
from pathlib import Path

import pytest

from .harness import info, job_dirs, job_file, run_hog, start_hog, wait_for

FIELDS = ["index", "name", "folder", "command", "status", "exit_code", "signal", "attempts",
          "gpus", "slot", "runner", "host", "started_at", "ended_at", "started_epoch",
          "ended_epoch", "duration_s", "note", "in_source",
          # what the latest attempt used (None where not known)
          "cpu_user_s", "cpu_system_s", "max_rss_bytes", "gpu_mem_peak_bytes", "gpu_util_mean"]
TYPES = {"index": (int,), "name": (str,), "folder": (str,), "command": (str,),
         "status": (str,), "exit_code": (int, type(None)), "signal": (str, type(None)),
         "attempts": (int,), "gpus": (str,), "slot": (str,), "runner": (int, type(None)),
         "host": (str, type(None)), "started_at": (str, type(None)),
         "ended_at": (str, type(None)), "started_epoch": (float, int, type(None)),
         "ended_epoch": (float, int, type(None)), "duration_s": (float, int, type(None)),
         "note": (str,), "in_source": (bool,), "cpu_user_s": (float, int, type(None)),
         "cpu_system_s": (float, int, type(None)), "max_rss_bytes": (int, type(None)),
         "gpu_mem_peak_bytes": (int, type(None)), "gpu_util_mean": (float, int, type(None))}
STATUSES = ["queued", "running", "succeeded", "failed", "interrupted", "timeout", "cancelled",
            "skipped", "unschedulable"]

JOBS = [
    "echo ok; sleep 0.2                                     # hog: name=ok",
    "echo 'bad, \"quoted\"' >&2; exit 4                       # hog: name=bad",
    "if [ \"$HOG_ATTEMPT\" -lt 2 ]; then exit 1; fi           # hog: name=flaky retries=1",
    "echo cpu                                               # hog: name=cpu gpus=0",
    "sleep 0.2                                              # hog: name=pair gpus=2",
    "sleep 30                                               # hog: name=slow timeout=1s",
    "true                                                   # hog: name=never after=bad",
]


def read_jsonl(path: Path):
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines]


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@pytest.mark.timeout(120)
def test_every_run_ends_by_writing_one_flat_record_per_job_with_the_same_keys(tmp_path):
    jobs = job_file(tmp_path, *JOBS)
    r = run_hog(tmp_path, "--job_file", jobs, "--gpus", "0,1", "--cpu_slots", "1",
                "--display", "plain", timeout=90)
    assert r.returncode == 1, r.stderr
    out = tmp_path / "output"
    records = read_jsonl(out / "results.jsonl")
    assert [rec["index"] for rec in records] == list(range(len(JOBS)))
    for rec in records:
        assert list(rec) == FIELDS                          # same keys, same order
        for key, value in rec.items():                      # flat: no lists, no mappings
            assert isinstance(value, TYPES[key]), (key, value)
    by_name = {rec["name"]: rec for rec in records}
    assert {n: rec["status"] for n, rec in by_name.items()} == {
        "ok": "succeeded", "bad": "failed", "flaky": "succeeded", "cpu": "succeeded",
        "pair": "succeeded", "slow": "timeout", "never": "skipped"}
    assert by_name["bad"]["exit_code"] == 4 and by_name["ok"]["exit_code"] == 0
    assert by_name["slow"]["exit_code"] is None and by_name["slow"]["signal"] == "SIGTERM"
    assert by_name["flaky"]["attempts"] == 2 and by_name["ok"]["attempts"] == 1
    assert by_name["cpu"]["gpus"] == "" and by_name["cpu"]["slot"] == "cpu0"
    assert sorted(by_name["pair"]["gpus"].split(",")) == ["0", "1"]
    assert by_name["never"]["started_at"] is None and by_name["never"]["duration_s"] is None

    # every job that ran agrees with its folder's INFO
    for folder in job_dirs(tmp_path):
        rec = records[int(folder.name.split("_")[1])]
        meta = info(folder)
        if rec["status"] == "skipped":
            continue
        assert rec["folder"] == folder.name and rec["command"] == meta["command"]
        assert rec["status"] == meta["status"] and rec["exit_code"] == meta["exit_code"]
        assert rec["gpus"] == ",".join(meta["gpus"]) and rec["attempts"] == meta["attempt"]
        assert rec["slot"] == (str(meta["slot"]) if meta["slot"] >= 0
                               else f"cpu{-meta['slot'] - 1}")
        assert rec["host"] == socket.gethostname() == meta["host"] and rec["runner"] == 1
        assert rec["started_at"].endswith("+00:00")                     # UTC
        assert abs(epoch(rec["started_at"]) - rec["started_epoch"]) < 0.002
        assert abs(epoch(rec["ended_at"]) - rec["ended_epoch"]) < 0.002
        assert abs(rec["started_epoch"] - epoch(meta["started"])) < 0.002
        assert abs(rec["ended_epoch"] - epoch(meta["ended"])) < 0.002
        assert abs(rec["duration_s"] - meta["duration_s"]) < 0.002

    # the CSV holds the same table: a header of the keys, then the same values as text
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == FIELDS and len(rows) == len(records) + 1
    for rec, row in zip(records, rows[1:]):
        assert row == ["" if v is None else str(v) for v in rec.values()]
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]   # written atomically


@pytest.mark.timeout(120)
def test_each_runner_and_hog_report_rewrite_the_results(tmp_path):
    jobs = job_file(tmp_path, "exit 2  # hog: name=first", "true  # hog: name=second")
    r = run_hog(tmp_path, "--job_file", jobs, "--gpus", "0", "--display", "plain")
    assert r.returncode == 1
    out = tmp_path / "output"
    assert [rec["status"] for rec in read_jsonl(out / "results.jsonl")] == ["failed",
                                                                           "succeeded"]
    r = run_hog(tmp_path, "add", "output", "--name", "third", "--", "echo", "hi")
    assert r.returncode == 0, r.stderr
    assert len(read_jsonl(out / "results.jsonl")) == 2     # nothing ran since
    r = run_hog(tmp_path, "--job_file", jobs, "--gpus", "0", "--display", "plain")
    records = read_jsonl(out / "results.jsonl")
    assert [(rec["name"], rec["status"], rec["attempts"]) for rec in records] == [
        ("first", "failed", 2), ("second", "succeeded", 1), ("third", "succeeded", 1)]

    (out / "results.jsonl").unlink()
    (out / "results.csv").unlink()
    r = run_hog(tmp_path, "report", "output")
    assert r.returncode == 0, r.stderr
    assert read_jsonl(out / "results.jsonl") == records
    assert (out / "results.csv").read_text().count("\n") == 4


@pytest.mark.timeout(120)
def test_pandas_reads_the_results_without_any_cleanup(tmp_path):
    import pandas as pd  # in the test extra: this is the check that matters
    jobs = job_file(tmp_path, *JOBS)
    run_hog(tmp_path, "--job_file", jobs, "--gpus", "0,1", "--cpu_slots", "1",
            "--display", "plain", timeout=90)
    out = tmp_path / "output"
    frame = pd.read_json(out / "results.jsonl", lines=True)
    assert list(frame.columns) == FIELDS and len(frame) == len(JOBS)
    assert str(frame["started_at"].dtype).startswith("datetime64")
    assert str(frame["ended_at"].dtype).startswith("datetime64")
    assert frame["duration_s"].dtype.kind == "f" and frame["index"].dtype.kind == "i"
    ran = frame[frame["status"] != "skipped"]
    spans = (ran["ended_at"] - ran["started_at"]).dt.total_seconds()
    assert ((spans - ran["duration_s"]).abs() < 0.002).all()
    assert frame.set_index("name").loc["bad", "exit_code"] == 4
    table = pd.read_csv(out / "results.csv")
    assert list(table.columns) == FIELDS and len(table) == len(JOBS)
    assert (table["status"] == frame["status"]).all()


# ------------------------------------------------------------- hog status --json
@pytest.mark.timeout(120)
def test_status_json_always_has_every_key_and_every_status_count(tmp_path):
    go = tmp_path / "go"
    jobs = job_file(tmp_path, "exit 5  # hog: name=broken",
                    f"while [ ! -e {go} ]; do sleep 0.05; done  # hog: name=held", "true")
    hog = start_hog(tmp_path, "--job_file", jobs, "--gpus", "0,1", "--display", "plain")

    def status():
        r = run_hog(tmp_path, "status", "output", "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    wait_for((tmp_path / "output" / ".hog" / "hog.sqlite").exists, timeout=30, what="the store")
    st = wait_for(lambda: (lambda s: s if s["counts"]["failed"] == 1 and s["running"]
                           and s["running"][0]["pid"] else None)(status()),
                  timeout=30, what="one failed job and one running")
    assert {"output_dir", "source", "schema_version", "time", "total", "counts", "runners",
            "running", "failed"} <= set(st)
    assert list(st["counts"]) == STATUSES and st["total"] == 3
    assert st["counts"]["succeeded"] + st["counts"]["queued"] == 1
    runner = st["runners"][0]
    assert runner["pid"] == hog.pid and runner["alive"] and runner["gpus"] == "0,1"
    (held,) = st["running"]
    assert held["name"] == "held" and held["folder"] == "job_1" and held["gpus"] in ("0", "1")
    (broken,) = st["failed"]
    assert (broken["name"], broken["folder"], broken["status"], broken["exit_code"]) == (
        "broken", "job_0", "failed", 5)
    assert {"signal", "attempt", "gpus", "slot", "started", "ended", "note"} <= set(broken)
    go.touch()
    assert hog.wait(60) == 1
    st = status()
    assert st["counts"] == {**dict.fromkeys(STATUSES, 0), "succeeded": 2, "failed": 1}
    assert st["running"] == [] and st["runners"] == []
