"""``hog report DIR``: one self-contained HTML page about a sweep.

It shows the summary (counts per status, wall time, GPU-slot utilisation, runners),
a timeline of every attempt per slot (a Gantt chart drawn on a canvas, so 10,000 jobs
stay light), GPU-slot use over time with the idle gaps, a histogram of durations, and
each failed job with the end of its stderr. Everything is inline (CSS, the script in
``report.js``, SVG): the page needs no network. The store is opened read-only, so a
report can be made while runners work; ``results.jsonl`` / ``.csv`` are rewritten too.
"""
import html
import json
import math
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from hog.humanize import fmt_duration
from hog.errors import UsageError
from hog.state.jobdir import (REPORT_HTML, RESULTS_JSONL, STATE_DIR, Layout, err_tail,
                        replaced_atomically)
from hog.model import slot_label
from hog.state.results import Attempt, attempts, write_results
from hog.state.store import HEARTBEAT_S, JobRow, RunnerRow, Store, runner_alive

STATUS_ORDER = ("succeeded", "failed", "timeout", "interrupted", "cancelled", "skipped",
                "unschedulable", "running", "queued")
FAILED = ("failed", "timeout", "interrupted", "unschedulable", "skipped")
COLORS = {"succeeded": "#2a9d8f", "failed": "#e63946", "timeout": "#f4a261",
          "interrupted": "#8d6cc4", "cancelled": "#9aa1a9", "skipped": "#c9ced4",
          "unschedulable": "#6b7280", "running": "#3d6fb6", "queued": "#dfe3e8"}
MAX_FAILURES_SHOWN = 200        # failed jobs listed with their stderr
OPEN_FAILURES = 3               # of those, shown unfolded
MAX_TAILS_READ = 2000           # failed jobs whose stderr is read for "common errors"
MAX_COMMAND = 300               # characters of a command kept for the timeline's tooltips
ASSETS = os.path.dirname(os.path.abspath(__file__))


# ----------------------------------------------------------------- the data
@dataclass(frozen=True)
class Lane:
    """A timeline row: one slot of a group of runners (see ``runner_groups``)."""

    runner: Optional[int]       # the group's first runner
    slot: int
    gpu: str                    # the slot's GPU id; "" for a CPU slot

    @property
    def label(self) -> str:
        return f"GPU {self.gpu}" if self.slot >= 0 else "CPU"


@dataclass(frozen=True)
class Bar:
    lane: int
    attempt: Attempt
    end: float                  # the attempt's end, or now while it runs
    part: bool = False          # another GPU of a multi-GPU job (drawn on its slot too)


@dataclass(frozen=True)
class Sweep:
    directory: str
    layout: Layout
    source: Optional[str]
    rows: List[JobRow]
    runners: List[RunnerRow]
    alive: frozenset
    attempts: List[Attempt]
    now: float


def gather(store: Store, layout: Layout, directory: str, now: float) -> Sweep:
    rows = list(store.all_rows())
    runners = store.all_runners()
    alive = frozenset(r.id for r in runners if runner_alive(r))
    return Sweep(directory=directory, layout=layout, source=store.meta("source"), rows=rows,
                 runners=runners, alive=alive, attempts=attempts(rows, runners, layout),
                 now=now)


def runner_span(r: RunnerRow, alive: bool, now: float) -> Tuple[float, float]:
    """When a runner offered its slots. A runner that died stops at its last heartbeat
    (the ``ended`` a later recovery writes can be much later)."""
    if alive:
        return r.started, now
    last = r.heartbeat + HEARTBEAT_S
    end = min(r.ended, last) if r.ended is not None else last
    return r.started, max(r.started, end)


def runner_groups(sweep: Sweep) -> Dict[int, List[RunnerRow]]:
    """Runners that share timeline rows: on the same host with the same slots, one
    after the other (a sweep run again, or resumed). Keyed by the first one's id."""
    last_end: Dict[Optional[int], float] = {}
    for a in sweep.attempts:
        end = sweep.now if a.ended is None else a.ended
        last_end[a.runner] = max(last_end.get(a.runner, end), end)
    groups: Dict[int, List[RunnerRow]] = {}
    ends: Dict[int, float] = {}
    for r in sorted(sweep.runners, key=lambda r: (r.started, r.id)):
        start, end = runner_span(r, r.id in sweep.alive, sweep.now)
        end = max(end, last_end.get(r.id, end))
        key = next((k for k, members in groups.items() if members[0].host == r.host
                    and members[0].gpus == r.gpus and ends[k] <= start), r.id)
        groups.setdefault(key, []).append(r)
        ends[key] = max(ends.get(key, end), end)
    return groups


def lanes_and_bars(sweep: Sweep) -> Tuple[List[Lane], List[Bar]]:
    """Rows per slot of each runner group: every GPU slot it had (idle ones too), then
    the CPU slots that ran something. A multi-GPU job is drawn on its first slot and,
    as a part, on a free slot of each further GPU it held."""
    group_of = {r.id: key for key, members in runner_groups(sweep).items() for r in members}
    found: Dict[Tuple[Optional[int], int], Lane] = {}
    for r in sweep.runners:
        for i, gpu in enumerate(g for g in r.gpus.split(",") if g):
            found.setdefault((group_of[r.id], i), Lane(group_of[r.id], i, gpu))
    for a in sweep.attempts:
        key = (group_of.get(a.runner), a.slot)
        if key not in found:
            gpu = (a.gpus[0] if a.gpus else "?") if a.slot >= 0 else ""
            found[key] = Lane(key[0], a.slot, gpu)
    order = sorted(found.values(), key=lambda ln: (ln.runner is None, ln.runner or 0,
                                                  ln.slot < 0, abs(ln.slot)))
    index = {(ln.runner, ln.slot): i for i, ln in enumerate(order)}
    bars = []
    busy: Dict[int, List[Tuple[float, float]]] = {}
    for a in sweep.attempts:
        end = sweep.now if a.ended is None else a.ended
        lane = index[(group_of.get(a.runner), a.slot)]
        bars.append(Bar(lane, a, end))
        busy.setdefault(lane, []).append((a.started, end))
    for spans in busy.values():
        spans.sort()
    for a in sweep.attempts:
        if a.slot < 0 or len(a.gpus) < 2:
            continue
        end = sweep.now if a.ended is None else a.ended
        group = group_of.get(a.runner)
        used = {index[(group, a.slot)]}
        for gpu in a.gpus[1:]:
            for i, ln in enumerate(order):
                if ln.runner == group and ln.gpu == gpu and ln.slot >= 0 and i not in used \
                        and not _overlaps(busy.get(i, []), a.started, end):
                    used.add(i)
                    bars.append(Bar(i, a, end, part=True))
                    break
    return order, bars


def _overlaps(spans: List[Tuple[float, float]], start: float, end: float) -> bool:
    import bisect
    i = bisect.bisect_left(spans, (end,))
    return i > 0 and spans[i - 1][1] > start + 1e-6


@dataclass(frozen=True)
class Usage:
    times: List[float]          # step points, seconds since t0
    busy: List[int]             # GPU slots busy from times[i] on
    capacity: List[int]         # GPU slots offered by live runners
    cpu: List[int]              # CPU slots busy
    busy_s: float               # GPU slot-seconds busy
    offered_s: float            # GPU slot-seconds offered

    @property
    def utilisation(self) -> Optional[float]:
        return self.busy_s / self.offered_s if self.offered_s > 0 else None


def usage(sweep: Sweep, t0: float) -> Usage:
    events: Dict[float, List[int]] = {}

    def add(t: float, which: int, delta: int) -> None:
        events.setdefault(round(t - t0, 3), [0, 0, 0])[which] += delta

    for r in sweep.runners:
        n = len([g for g in r.gpus.split(",") if g])
        start, end = runner_span(r, r.id in sweep.alive, sweep.now)
        end = max([end] + [a.ended or sweep.now for a in sweep.attempts if a.runner == r.id]) \
            if n else end
        add(start, 2, n)
        add(end, 2, -n)
    for a in sweep.attempts:
        end = sweep.now if a.ended is None else a.ended
        which, k = (0, max(1, len(a.gpus))) if a.slot >= 0 else (1, 1)
        add(a.started, which, k)
        add(end, which, -k)
    times, busy, capacity, cpu = [], [], [], []
    b = c = cap = 0
    busy_s = offered_s = 0.0
    for t in sorted(events):
        if times:
            dt = t - times[-1]
            busy_s += min(busy[-1], capacity[-1]) * dt
            offered_s += capacity[-1] * dt
        db, dc, dcap = events[t]
        b, c, cap = b + db, c + dc, cap + dcap
        times.append(t)
        busy.append(b)
        cpu.append(c)
        capacity.append(cap)
    return Usage(times, busy, capacity, cpu, busy_s, offered_s)


# ----------------------------------------------------------------- the page
def build(sweep: Sweep) -> str:
    lanes, bars = lanes_and_bars(sweep)
    starts = [a.started for a in sweep.attempts] + [r.started for r in sweep.runners]
    t0 = min(starts) if starts else sweep.now
    use = usage(sweep, t0)
    t1 = max([use.times[-1] if use.times else 0.0] + [b.end - t0 for b in bars] + [0.001])
    counts = Counter(r.status for r in sweep.rows)
    data = _timeline_data(sweep, lanes, bars, use, t0, t1)
    page = _read_asset("report.html")
    parts = {
        "TITLE": html.escape(f"hog report: {sweep.directory}"),
        "HEADING": html.escape(os.path.basename(os.path.abspath(sweep.directory))),
        "SUBTITLE": _subtitle(sweep, t0),
        "CSS": _read_asset("report.css"),
        "SUMMARY": _summary(sweep, counts, use, t0, t1),
        "LEGEND": _legend(counts, bars, use),
        "HISTOGRAM": _histogram(sweep.rows),
        "FAILURES": _failures(sweep, counts),
        "RUNNERS": _runners(sweep),
        "DATA": _script_json(data),
        "SCRIPT": _read_asset("report.js"),
    }
    # one pass, so that text from the sweep is never taken for a placeholder
    return re.sub(r"\{\{([A-Z]+)\}\}", lambda m: parts[m.group(1)], page)


def _read_asset(name: str) -> str:
    with open(os.path.join(ASSETS, "assets", name), encoding="utf-8") as f:
        return f.read()


def _script_json(data) -> str:
    """JSON that is safe inside <script>: no '<', '>' or '&' outside escapes."""
    text = json.dumps(data, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _timeline_data(sweep: Sweep, lanes: List[Lane], bars: List[Bar], use: Usage, t0: float,
                   t1: float) -> dict:
    by_id = {r.id: r for r in sweep.rows}
    jobs: Dict[int, int] = {}
    job_cols = {"id": [], "name": [], "cmd": [], "attempts": []}
    cols = {"lane": [], "s": [], "e": [], "st": [], "job": [], "att": [], "x": [], "sig": [],
            "gpus": [], "flags": []}
    status_index = {s: i for i, s in enumerate(STATUS_ORDER)}
    for b in sorted(bars, key=lambda b: (b.lane, b.attempt.started)):
        a = b.attempt
        if a.job not in jobs:
            row = by_id[a.job]
            jobs[a.job] = len(jobs)
            job_cols["id"].append(row.id)
            job_cols["name"].append(row.name or sweep.layout.folder_name(row.id))
            job_cols["cmd"].append(row.command[:MAX_COMMAND])
            job_cols["attempts"].append(row.attempt)
        cols["lane"].append(b.lane)
        cols["s"].append(round(a.started - t0, 3))
        cols["e"].append(round(b.end - t0, 3))
        cols["st"].append(status_index.get(a.status, status_index["failed"]))
        cols["job"].append(jobs[a.job])
        cols["att"].append(a.attempt)
        cols["x"].append(a.exit_code)
        cols["sig"].append(a.signal)
        cols["gpus"].append(",".join(a.gpus))
        cols["flags"].append((0 if a.latest else 1) | (2 if b.part else 0)
                             | (4 if a.ended is None else 0))
    multi = len({ln.runner for ln in lanes}) > 1
    groups = runner_groups(sweep)
    lane_rows = []
    for ln in lanes:
        members = groups.get(ln.runner, [])
        group = "" if not multi else (
            f"runner{'s' if len(members) > 1 else ''} "
            f"{', '.join(str(r.id) for r in members)} on {members[0].host}"
            if members else "runner unknown")
        lane_rows.append({"label": ln.label, "slot": slot_label(ln.slot), "group": group,
                          "cpu": ln.slot < 0})
    return {
        "t0": t0, "span": t1, "now": round(sweep.now - t0, 3) if sweep.alive else None,
        "statuses": list(STATUS_ORDER), "colors": COLORS, "prefix": sweep.layout.prefix,
        "lanes": lane_rows, "bars": cols, "jobs": job_cols,
        "usage": {"t": use.times, "busy": use.busy, "cap": use.capacity, "cpu": use.cpu},
    }


def _subtitle(sweep: Sweep, t0: float) -> str:
    bits = [html.escape(os.path.abspath(sweep.directory))]
    if sweep.source:
        kind, _, path = sweep.source.partition(":")
        bits.append(f"{html.escape(kind)} source {html.escape(path)}")
    state = f"{len(sweep.alive)} runner(s) active" if sweep.alive else "no runner active"
    bits.append(state)
    bits.append(f"report made {html.escape(_clock(sweep.now, seconds=True))}")
    return " &middot; ".join(bits)


def _clock(ts: float, seconds: bool = False) -> str:
    return time.strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else ""), time.localtime(ts))


def _card(title: str, value: str, detail: str = "", cls: str = "") -> str:
    return (f'<div class="card {cls}"><div class="card-title">{title}</div>'
            f'<div class="card-value">{value}</div><div class="card-detail">{detail}</div></div>')


def _summary(sweep: Sweep, counts: Counter, use: Usage, t0: float, t1: float) -> str:
    total = sum(counts.values())
    done = sum(counts[s] for s in STATUS_ORDER if s not in ("queued", "running"))
    chips = "".join(
        f'<span class="chip" data-status="{s}"><i style="background:{COLORS[s]}"></i>'
        f'{counts[s]:,} {s}</span>' for s in STATUS_ORDER if counts.get(s))
    durations = sorted(a.ended - a.started for a in sweep.attempts
                       if a.latest and a.ended is not None)
    util = use.utilisation
    util_text = "&ndash;" if util is None else f"{100 * util:.0f}%"
    idle = use.offered_s - use.busy_s
    hosts = sorted({r.host for r in sweep.runners})
    gpu_time = sum(((a.ended or sweep.now) - a.started) * max(1, len(a.gpus))
                   for a in sweep.attempts if a.slot >= 0)
    cards = [
        _card("Jobs", f"{total:,}", f"{done:,} finished" + (
            f", {counts['running']:,} running" if counts.get("running") else "") + (
            f", {counts['queued']:,} queued" if counts.get("queued") else ""), "jobs"),
        _card("Wall time", _duration(t1) if sweep.attempts else "&ndash;",
              f"from {html.escape(_clock(t0))}" + (" (still running)" if sweep.alive else "")),
        _card("GPU-slot utilisation", util_text,
              f"busy {_duration(use.busy_s)} of {_duration(use.offered_s)} slot time"
              f" offered; idle {_duration(max(0.0, idle))}" if use.offered_s
              else "no runner has offered GPU slots yet", "util"),
        _card("Job durations", _duration(_quantile(durations, 0.5)) if durations
              else "&ndash;",
              f"median; p90 {_duration(_quantile(durations, 0.9))}, max "
              f"{_duration(durations[-1])}" if durations else "no job has ended yet"),
        _card("GPU time", _duration(gpu_time), "sum over jobs of duration &times; GPUs"),
        _card("Runners", f"{len(sweep.runners)}",
              html.escape(", ".join(hosts)) + (f"; {len(sweep.alive)} active"
                                                if sweep.alive else "")),
    ]
    return f'<div class="cards">{"".join(cards)}</div><div class="chips">{chips}</div>'


def _quantile(values: Sequence[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def _legend(counts: Counter, bars: List[Bar], use: Usage) -> str:
    if not bars:
        return '<span class="empty">No job has started yet.</span>'
    shown = {b.attempt.status for b in bars}
    items = [f'<span class="key"><i style="background:{COLORS[s]}"></i>{s}</span>'
             for s in STATUS_ORDER if s in shown]
    if any(not b.attempt.latest for b in bars):
        items.append('<span class="key"><i class="hatched"></i>earlier attempt (run again)'
                     '</span>')
    if any(b.part for b in bars):
        items.append('<span class="key"><i class="part"></i>further GPU of a multi-GPU job'
                     '</span>')
    return "".join(items)


def _histogram(rows: List[JobRow]) -> str:
    """Durations of the jobs that ended, succeeded and not, as an inline SVG."""
    ok, bad = [], []
    for r in rows:
        if r.started is not None and r.ended is not None and r.status not in (
                "queued", "running", "skipped", "unschedulable") \
                and r.note != "cancelled before it started":
            (ok if r.status == "succeeded" else bad).append(max(0.0, r.ended - r.started))
    values = ok + bad
    if not values:
        return '<p class="empty">No job has ended yet.</p>'
    lo, hi = min(values), max(values)
    log = lo > 0 and hi / lo > 30
    n = max(5, min(40, int(math.sqrt(len(values))) + 1))
    if hi - lo < 1e-9:
        edges = [lo - 0.5, lo + 0.5] if lo >= 0.5 else [0.0, max(1.0, 2 * lo)]
        n = 1
    elif log:
        a, b = math.log10(lo), math.log10(hi)
        edges = [10 ** (a + (b - a) * i / n) for i in range(n + 1)]
    else:
        edges = [lo + (hi - lo) * i / n for i in range(n + 1)]

    def binned(vals):
        out = [0] * n
        for v in vals:
            if log:
                i = int((math.log10(max(v, lo)) - math.log10(lo)) / (
                    (math.log10(hi) - math.log10(lo)) / n))
            else:
                i = int((v - edges[0]) / ((edges[-1] - edges[0]) / n))
            out[min(n - 1, max(0, i))] += 1
        return out

    ok_n, bad_n = binned(ok), binned(bad)
    step = _nice_step(max(a + b for a, b in zip(ok_n, bad_n)) / 4)
    top = step * math.ceil(max(a + b for a, b in zip(ok_n, bad_n)) / step)
    w, h, left, bottom, right, head = 760, 230, 48, 34, 12, 12
    pw, ph = w - left - right, h - bottom - head
    parts = [f'<svg class="hist" viewBox="0 0 {w} {h}" role="img" '
             f'aria-label="histogram of job durations">']
    for k in range(round(top / step) + 1):          # horizontal grid and counts
        y = head + ph - ph * k * step / top
        parts.append(f'<line class="grid" x1="{left}" x2="{w - right}" y1="{y:.1f}" '
                     f'y2="{y:.1f}"/><text class="axis" x="{left - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{k * step:,}</text>')
    bw = pw / n
    for i in range(n):
        x = left + i * bw
        label = f"{_duration(edges[i])} to {_duration(edges[i + 1])}"
        y = head + ph
        for count, status, cls in ((ok_n[i], "succeeded", "ok"), (bad_n[i], "failed", "bad")):
            if not count:
                continue
            bh = ph * count / top
            y -= bh
            parts.append(f'<rect class="bin {cls}" x="{x + 0.5:.1f}" y="{y:.1f}" '
                         f'width="{max(1.0, bw - 1):.1f}" height="{bh:.1f}" '
                         f'fill="{COLORS[status]}"><title>{label}: {count} '
                         f'{"succeeded" if cls == "ok" else "did not succeed"}</title></rect>')
    for i in _tick_indices(n):
        x = left + i * bw
        parts.append(f'<text class="axis" x="{x:.1f}" y="{h - bottom + 16}" '
                     f'text-anchor="middle">{_duration(edges[i])}</text>')
    parts.append(f'<text class="axis" x="{left + pw / 2:.1f}" y="{h - 2}" '
                 f'text-anchor="middle">duration{" (log scale)" if log else ""}</text>')
    parts.append("</svg>")
    median = sorted(values)[len(values) // 2]
    caption = (f'<p class="caption">{len(values):,} jobs that ended; median '
               f'{_duration(median)}; {len(bad):,} did not succeed (red).</p>')
    return "".join(parts) + caption


def _tick_indices(n: int) -> List[int]:
    step = max(1, math.ceil(n / 8))
    return list(range(0, n + 1, step))


def _nice_step(raw: float) -> int:
    """1, 2, 5, 10, 20, 50, ... at least ``raw``."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m >= raw:
                return step * m
        step *= 10


def _duration(s: Optional[float]) -> str:
    """Like the rest of hog (1m05s, 2h03m00s), and exact enough for short jobs."""
    if s is None:
        return "?"
    if s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 10:
        return f"{s:.1f}s"
    return fmt_duration(s)


def _failures(sweep: Sweep, counts: Counter) -> str:
    failed = [r for r in sweep.rows if r.status in FAILED]
    if not failed:
        return '<p class="empty">No job failed.</p>'
    layout = sweep.layout
    tails = {r.id: err_tail(layout, r.id) for r in failed[:MAX_TAILS_READ]}
    common: Counter = Counter()         # last lines of stderr, numbers aside
    example: Dict[str, str] = {}
    for r in failed[:MAX_TAILS_READ]:
        last = next((line.strip() for line in reversed(tails[r.id].split("\n"))
                     if line.strip()), "")[:200] or f"(no stderr; {r.status})"
        key = re.sub(r"\d+", "#", last)
        common[key] += 1
        example.setdefault(key, last)
    out = []
    if len(failed) > 3 and len(common) < len(failed[:MAX_TAILS_READ]):
        items = "".join(f"<li><b>{n:,}&times;</b> <code>{html.escape(example[key])}</code>"
                        + (" <span class=\"dim\">(and alike)</span>" if n > 1 and key !=
                           example[key] else "") + "</li>"
                        for key, n in common.most_common(8))
        out.append(f'<div class="common"><h3>Most common last lines of stderr</h3>'
                   f'<ul>{items}</ul></div>')
    for n, r in enumerate(failed[:MAX_FAILURES_SHOWN]):
        name = r.name or layout.folder_name(r.id)
        if r.signal:
            how = f"killed by {r.signal}"
        elif r.exit_code is not None:
            how = f"exit code {r.exit_code}"
        else:
            how = html.escape(r.note or r.status)
        if r.status == "timeout" and r.job().timeout:
            how += f" at its {_duration(r.job().timeout)} timeout"
        duration = _duration(r.ended - r.started) \
            if r.started is not None and r.ended is not None else ""
        where = f"GPU {r.gpus}" if r.gpus else ("CPU" if r.slot is not None and r.slot < 0
                                                 else "")
        meta = " &middot; ".join(x for x in (
            f'<span class="st" style="background:{COLORS.get(r.status, "#999")}">'
            f'{r.status}</span>', how, duration, html.escape(where),
            f"attempt {r.attempt}" if r.attempt > 1 else "") if x)
        tail = tails.get(r.id)
        body = (f'<pre class="tail">{html.escape(tail)}</pre>' if tail else
                '<p class="empty">stderr is empty.</p>')
        note = f'<p class="note">{html.escape(r.note)}</p>' if r.note else ""
        out.append(
            f'<details class="failure" data-job="{r.id}"{" open" if n < OPEN_FAILURES else ""}>'
            f'<summary><b>{html.escape(name)}</b> '
            f'<span class="meta">{meta}</span></summary>'
            f'<div class="fbody"><p class="cmd"><code>{html.escape(r.command)}</code></p>{note}'
            f'<p class="path">{html.escape(layout.err_path(r.id))}</p>{body}</div></details>')
    if len(failed) > MAX_FAILURES_SHOWN:
        out.append(f'<p class="more">&hellip; and {len(failed) - MAX_FAILURES_SHOWN:,} more '
                   f'(all of them: <code>results.jsonl</code>, or <code>hog status '
                   f'{html.escape(sweep.directory)} --json</code>)</p>')
    return "".join(out)


def _runners(sweep: Sweep) -> str:
    if not sweep.runners:
        return '<p class="empty">No runner has worked on this sweep yet.</p>'
    rows = []
    ran = Counter(a.runner for a in sweep.attempts)
    for r in sweep.runners:
        alive = r.id in sweep.alive
        start, end = runner_span(r, alive, sweep.now)
        state = "active" if alive else ("ended" if r.ended is not None and
                                        r.ended <= r.heartbeat + 2 * HEARTBEAT_S else "died")
        rows.append(f"<tr><td>{r.id}</td><td>{html.escape(r.host)}</td><td>{r.pid}</td>"
                    f"<td><code>{html.escape(r.gpus)}</code></td>"
                    f"<td>{html.escape(_clock(start, True))}</td>"
                    f"<td>{_duration(end - start)}</td><td>{ran[r.id]:,}</td>"
                    f"<td>{state}</td></tr>")
    return ("<table class=\"runners\"><thead><tr><th>runner</th><th>host</th><th>pid</th>"
            "<th>--gpus</th><th>started</th><th>ran for</th><th>jobs run</th><th>state</th>"
            "</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


# ----------------------------------------------------------------- the verb
def write_report(directory: str, output: Optional[str] = None) -> str:
    """Write the report (and results.jsonl / .csv) for the sweep in ``directory``."""
    if not os.path.isdir(directory):
        raise UsageError(f"{directory}: no such directory")
    store = Store(os.path.join(directory, STATE_DIR), readonly=True)
    try:
        prefix = store.meta("prefix") or "job_"
        layout = Layout(os.path.abspath(directory), prefix)
        sweep = gather(store, layout, directory, time.time())
        page = build(sweep)
        try:
            write_results(store, layout)
        except OSError as e:
            print(f"hog: could not write {layout.sweep_file(RESULTS_JSONL)}: {e}",
                  file=sys.stderr)
    finally:
        store.close()
    path = output or layout.sweep_file(REPORT_HTML)
    try:
        with replaced_atomically(path) as f:
            f.write(page)
    except OSError as e:
        raise UsageError(f"{path}: cannot write the report ({e.strerror})") from None
    return path

