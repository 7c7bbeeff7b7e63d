"""``hog report`` at scale: the page stays small for a large sweep yet keeps every
attempt (packed columns the page unpacks, so zooming into a time range shows the
attempts of that range), and GPU-slot utilisation follows slot changes over time."""
import os
import re
import sqlite3
import time
from pathlib import Path

import pytest

from hog.state.files import from_iso
from hog.state.jobdir import Layout
from hog.state.jobread import read_info
from hog.state.reading import SweepReader
from hog.views.report.html import STATUS_ORDER

from .harness import job_file, run_hog, start_hog, wait_for
from .test_report import (
    embedded_data,
    make_report,
    needs_chromium,
    render,
    synthetic_sweep,
    texts_of_class,
)


def _page(root: Path) -> str:
    return (root / "report.html").read_text()


@pytest.mark.timeout(240)
def test_a_20000_job_sweep_makes_a_page_of_under_30_bytes_a_job_with_every_attempt(tmp_path):
    small, big = tmp_path / "small", tmp_path / "big"
    synthetic_sweep(small, 2_000)
    counts = synthetic_sweep(big, 20_000)
    for root in (small, big):
        assert make_report(tmp_path, root.name).returncode == 0
    size_small, size_big = len(_page(small)), len(_page(big))
    assert size_big < 30 * 20_000, f"{size_big:,} bytes for 20,000 jobs"
    # the fixed part (style, script, summary) is paid once: ten times the jobs is
    # less than ten times the page
    assert size_big < 10 * size_small
    data = embedded_data(_page(big))
    bars = data["bars"]
    assert len(bars["s"]) == len(bars["e"]) == len(bars["job"]) == 20_000
    shown = {}
    for st in bars["st"]:
        shown[data["statuses"][st]] = shown.get(data["statuses"][st], 0) + 1
    assert shown == counts
    assert sorted(data["jobs"]["name"]) == sorted(f"seed-{i}" for i in range(20_000))


def test_the_packed_attempts_are_exactly_the_stores_to_the_millisecond(tmp_path):
    root = tmp_path / "sweep"
    synthetic_sweep(root, 300, slots="0,1,1", fail_every=7)
    assert make_report(tmp_path, "sweep").returncode == 0
    data = embedded_data(_page(root))
    store = SweepReader(str(root / ".hog"))
    try:
        rows = {r.id: r for r in store.all_rows()}
    finally:
        store.close()
    t0 = data["t0"]
    assert t0 == min(r.started for r in rows.values() if r.started is not None) or \
        t0 <= min(r.started for r in rows.values() if r.started is not None)
    bars, jobs = data["bars"], data["jobs"]
    seen = set()
    for i, j in enumerate(bars["job"]):
        row = rows[jobs["id"][j]]
        seen.add(row.id)
        assert bars["s"][i] == pytest.approx(row.started - t0, abs=0.0006)
        assert bars["e"][i] == pytest.approx(row.ended - t0, abs=0.0006)
        assert data["statuses"][bars["st"][i]] == row.status
        assert bars["x"][i] == row.exit_code and bars["att"][i] == row.attempt == 1
        assert data["lanes"][bars["lane"][i]]["slot"] == str(row.slot)
        assert jobs["name"][j] == row.name and jobs["cmd"][j] == row.command
    assert seen == set(rows)
    # within each slot's row the attempts come in time order
    for lane in range(len(data["lanes"])):
        starts = [s for s, ln in zip(bars["s"], bars["lane"]) if ln == lane]
        assert starts == sorted(starts)


@needs_chromium
@pytest.mark.timeout(240)
def test_zooming_into_a_time_range_of_a_large_sweep_draws_the_attempts_of_that_range(tmp_path):
    root = tmp_path / "sweep"
    counts = synthetic_sweep(root, 5_000)
    assert make_report(tmp_path, "sweep").returncode == 0
    page = root / "report.html"
    data = embedded_data(page.read_text())
    whole = render(page, tmp_path, budget_ms=20000).summary
    assert whole["errors"] == [] and whole["byStatus"] == counts
    bars = data["bars"]
    a, b = round(data["span"] * 0.4, 3), round(data["span"] * 0.41, 3)
    inside = {}
    for st, s, e in zip(bars["st"], bars["s"], bars["e"]):
        if e >= a and s <= b:
            inside[STATUS_ORDER[st]] = inside.get(STATUS_ORDER[st], 0) + 1
    zoomed = render(page, tmp_path, budget_ms=20000, fragment=f"#t={a:.3f}-{b:.3f}").summary
    assert zoomed["errors"] == []
    assert zoomed["view"] == pytest.approx([a, b], abs=0.001)
    assert zoomed["byStatus"] == inside and 0 < sum(inside.values()) < 100
    # the page counts slot use from the attempts: a point at each start, end and change
    moments = {round(t * 1000) for t in bars["s"] + bars["e"]} | set(data["capacity"]["t"])
    assert zoomed["usagePoints"] == len(moments)


@needs_chromium
@pytest.mark.timeout(240)
def test_a_row_with_more_attempts_than_pixels_is_drawn_binned_with_no_failure_hidden(tmp_path):
    root = tmp_path / "sweep"
    counts = synthetic_sweep(root, 20_000)          # 2,500 attempts a row, ~1,300 pixels
    assert make_report(tmp_path, "sweep").returncode == 0
    page = root / "report.html"
    whole = render(page, tmp_path, budget_ms=20000).summary
    assert whole["errors"] == [] and whole["ganttMode"] == "binned"
    assert whole["byStatus"] == counts
    assert whole["failedBars"] == whole["failedVisible"] == counts["failed"]
    span = embedded_data(page.read_text())["span"]
    zoomed = render(page, tmp_path, budget_ms=20000,
                    fragment=f"#t={span / 2:.3f}-{span / 2 + span / 100:.3f}").summary
    assert zoomed["ganttMode"] == "bars"             # zoomed in: one bar per attempt
    assert zoomed["failedBars"] == zoomed["failedVisible"] > 0


def _info_span(layout: Layout, index: int):
    info = read_info(layout, index)
    return from_iso(info["started"]), from_iso(info["ended"])


@pytest.mark.timeout(120)
def test_utilisation_follows_a_slot_change_made_while_the_runner_runs(tmp_path):
    go = tmp_path / "go"
    jobs = job_file(tmp_path, f"while [ ! -e {go} ]; do sleep 0.02; done  # hog: name=held",
                    "sleep 0.6  # hog: name=second", "sleep 0.6  # hog: name=third")
    runner = start_hog(tmp_path, "--job_file", jobs, "--gpus", "0", "--display", "plain")
    wait_for(lambda: "start held" in runner.output, timeout=30, what="the first job")
    time.sleep(0.5)         # one slot, busy: a stretch the old figure charged for two
    assert run_hog(tmp_path, "gpus", "output", "0,0").returncode == 0
    wait_for(lambda: "slots are now" in runner.output, timeout=20, what="the slot change")
    wait_for(lambda: "start second" in runner.output, timeout=20, what="the new slot's job")
    go.touch()
    assert runner.wait(60) == 0, runner.output
    assert make_report(tmp_path, "output").returncode == 0

    # by hand: busy slot-seconds from the INFO files; offered: one slot from the runner's
    # start to the change, two from then to its end
    out = tmp_path / "output"
    layout = Layout(str(out))
    spans = [_info_span(layout, i) for i in range(3)]
    busy = sum(e - s for s, e in spans)
    db = sqlite3.connect(f"file:{out / '.hog' / 'hog.sqlite'}?mode=ro", uri=True)
    try:
        started, ended = db.execute("SELECT started, ended FROM runners").fetchone()
        changes = db.execute("SELECT at, gpus FROM slot_changes ORDER BY at").fetchall()
    finally:
        db.close()
    assert [g for _, g in changes] == ["0", "0,0"]
    changed = changes[1][0]
    end = max([ended] + [e for _, e in spans])
    offered = 1 * (changed - started) + 2 * (end - changed)
    expected = 100 * busy / offered
    old_figure = 100 * busy / (2 * (end - started))     # the new count over the whole life
    assert expected - old_figure > 3                    # the test tells the two apart
    cards = " ".join(texts_of_class(_page(out), "card"))
    shown = int(re.search(r"GPU-slot utilisation\s*(\d+)%", cards).group(1))
    assert abs(shown - expected) <= 1, (shown, expected, old_figure)


def test_results_files_are_kept_while_the_store_is_unchanged_and_rewritten_after(tmp_path):
    root = tmp_path / "sweep"
    synthetic_sweep(root, 50)
    for path in (root / ".hog").iterdir():       # the sweep ended a while ago
        os.utime(path, (time.time() - 5, time.time() - 5))
    assert make_report(tmp_path, "sweep").returncode == 0
    jsonl = root / "results.jsonl"
    first = jsonl.stat().st_mtime_ns
    assert len(jsonl.read_text().splitlines()) == 50
    assert make_report(tmp_path, "sweep").returncode == 0
    assert jsonl.stat().st_mtime_ns == first               # nothing changed: kept
    assert run_hog(tmp_path, "add", "sweep", "--", "echo one more").returncode == 0
    assert make_report(tmp_path, "sweep").returncode == 0
    lines = jsonl.read_text().splitlines()
    assert len(lines) == 51 and "one more" in lines[-1]


@pytest.mark.timeout(60)
def test_the_report_after_a_run_keeps_the_results_files_the_run_wrote(tmp_path):
    jobs = job_file(tmp_path, "true", "exit 3")
    assert run_hog(tmp_path, "--job_file", jobs, "--gpus", "0", "--display", "plain",
                   timeout=30).returncode == 1
    jsonl = tmp_path / "output" / "results.jsonl"
    written = jsonl.stat().st_mtime_ns
    assert make_report(tmp_path, "output").returncode == 0
    assert jsonl.stat().st_mtime_ns == written
    assert [line.count('"status": "failed"') for line in jsonl.read_text().splitlines()] \
        == [0, 1]
