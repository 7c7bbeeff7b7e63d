"""The report's page: one self-contained HTML file built from a ``Sweep`` (the template,
CSS and script in ``assets/``, inlined), with its summary cards, the timeline's data,
a histogram of durations (inline SVG), the failed jobs' stderr and the runners."""
import html
import json
import os
import re
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence

from hog.model import Status, slot_label
from hog.state.rows import JobRow
from hog.state.runners import HEARTBEAT_S
from hog.views.report import pack
from hog.views.report.gather import Sweep
from hog.views.report.gpus import gpu_section, job_usage_columns
from hog.views.report.histogram import duration as short_duration
from hog.views.report.histogram import histogram
from hog.views.report.timeline import (
    Bar,
    Lane,
    Usage,
    capacity_steps,
    lanes_and_bars,
    runner_groups,
    runner_span,
    usage,
)
from hog.views.tail import err_tail

STATUS_ORDER = ("succeeded", "failed", "timeout", "interrupted", "cancelled", "skipped",
                "unschedulable", "running", "queued")
FAILED = Status.having("counts_as_failure")
COLORS = {"succeeded": "#2a9d8f", "failed": "#e63946", "timeout": "#f4a261",
          "interrupted": "#8d6cc4", "cancelled": "#9aa1a9", "skipped": "#c9ced4",
          "unschedulable": "#6b7280", "running": "#3d6fb6", "queued": "#dfe3e8"}
MAX_FAILURES_SHOWN = 200        # failed jobs listed with their stderr
OPEN_FAILURES = 3               # of those, shown unfolded
MAX_TAILS_READ = 2000           # failed jobs whose stderr is read for "common errors"
MAX_COMMAND = 300               # characters of a command kept for the timeline's tooltips
ASSETS = os.path.dirname(os.path.abspath(__file__))


def build(sweep: Sweep) -> str:
    """The whole page, as text."""
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
        "HISTOGRAM": histogram(sweep.rows, COLORS["succeeded"], COLORS["failed"]),
        "FAILURES": _failures(sweep, counts),
        "RUNNERS": _runners(sweep),
        "GPUS": gpu_section(sweep.gpu_looks, sweep.rows, sweep.layout.folder_name),
        "DATA": _script_json(data),
        "SCRIPT": _read_asset("report.js"),
    }
    # one pass, so that text from the sweep is never taken for a placeholder
    return re.sub(r"\{\{([A-Z]+)\}\}", lambda m: parts[m.group(1)], page)


def _read_asset(name: str) -> str:
    with open(os.path.join(ASSETS, "assets", name), encoding="utf-8") as f:
        return f.read()


def _script_json(data: Any) -> str:
    """JSON that is safe inside <script>: no '<', '>' or '&' outside escapes."""
    text = json.dumps(data, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _timeline_data(sweep: Sweep, lanes: List[Lane], bars: List[Bar], use: Usage, t0: float,
                   t1: float) -> Dict[str, Any]:
    """The timeline's data, packed (``pack``): every attempt with its times in ms since
    ``t0``, in (lane, start) order; the page counts GPU- and CPU-slot use from them."""
    by_id = {r.id: r for r in sweep.rows}
    jobs: Dict[int, int] = {}
    job_rows: List[JobRow] = []
    per_lane = [0] * len(lanes)
    starts: List[int] = []
    lengths: List[int] = []
    job_of: List[int] = []
    sts: List[int] = []
    atts: List[int] = []
    exits: List[Optional[int]] = []
    sigs: List[Optional[str]] = []
    gpus: List[str] = []
    flags: List[int] = []
    status_index = {s: i for i, s in enumerate(STATUS_ORDER)}
    failed = status_index["failed"]
    lane_gpu = [ln.gpu for ln in lanes]
    for b in sorted(bars, key=lambda b: (b.lane, b.attempt.started)):
        a = b.attempt
        j = jobs.get(a.job)
        if j is None:
            j = jobs[a.job] = len(job_rows)
            job_rows.append(by_id[a.job])
        per_lane[b.lane] += 1
        s = int((a.started - t0) * 1000 + 0.5)     # ms; never negative
        starts.append(s)
        lengths.append(int((b.end - t0) * 1000 + 0.5) - s)
        job_of.append(j)
        sts.append(status_index.get(a.status, failed))
        atts.append(a.attempt)
        exits.append(a.exit_code)
        sigs.append(a.signal)
        g = ",".join(a.gpus)
        gpus.append("" if g == lane_gpu[b.lane] else g)     # "": the lane's GPU
        flags.append((0 if a.latest else 1) | (2 if b.part else 0)
                     | (4 if a.ended is None else 0))
    cols = {"perLane": per_lane, "s": pack.column(starts, delta=True),
            "d": pack.column(lengths), "job": pack.column(job_of, delta=True),
            "st": pack.column(sts), "att": pack.column(atts), "x": pack.column(exits),
            "sig": pack.column(sigs), "gpus": pack.column(gpus), "flags": pack.column(flags)}
    job_cols = {
        "id": pack.column([r.id for r in job_rows], delta=True),
        "name": pack.texts([r.name or sweep.layout.folder_name(r.id) for r in job_rows]),
        "cmd": pack.texts([r.command[:MAX_COMMAND] for r in job_rows]),
        "attempts": pack.column([r.attempt for r in job_rows])}
    steps: Dict[int, int] = {}
    for at, n in capacity_steps(sweep):
        t = round((at - t0) * 1000)
        steps[t] = steps.get(t, 0) + n
    capacity = {"t": sorted(steps), "n": [steps[t] for t in sorted(steps)]}
    multi = len({ln.runner for ln in lanes}) > 1
    groups = runner_groups(sweep)
    lane_rows = []
    for ln in lanes:
        members = groups.get(ln.runner, []) if ln.runner is not None else []
        group = "" if not multi else (
            f"runner{'s' if len(members) > 1 else ''} "
            f"{', '.join(str(r.id) for r in members)} on {members[0].host}"
            if members else "runner unknown")
        lane_rows.append({"label": ln.label, "slot": slot_label(ln.slot), "group": group,
                          "cpu": ln.slot < 0})
    return {
        "t0": t0, "span": t1, "now": round(sweep.now - t0, 3) if sweep.alive else None,
        "statuses": list(STATUS_ORDER), "colors": COLORS, "prefix": sweep.layout.prefix,
        "lanes": lane_rows, "bars": cols, "capacity": capacity,
        "jobs": {**job_cols, **job_usage_columns(by_id, [r.id for r in job_rows])},
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
    done = sum(counts[s] for s in STATUS_ORDER if Status(s).finished)
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
        _card("Wall time", short_duration(t1) if sweep.attempts else "&ndash;",
              f"from {html.escape(_clock(t0))}" + (" (still running)" if sweep.alive else "")),
        _card("GPU-slot utilisation", util_text,
              f"busy {short_duration(use.busy_s)} of {short_duration(use.offered_s)} slot time"
              f" offered; idle {short_duration(max(0.0, idle))}" if use.offered_s
              else "no runner has offered GPU slots yet", "util"),
        _card("Job durations", short_duration(_quantile(durations, 0.5)) if durations
              else "&ndash;",
              f"median; p90 {short_duration(_quantile(durations, 0.9))}, max "
              f"{short_duration(durations[-1])}" if durations else "no job has ended yet"),
        _card("GPU time", short_duration(gpu_time), "sum over jobs of duration &times; GPUs"),
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
            how += f" at its {short_duration(r.job().timeout)} timeout"
        duration = short_duration(r.ended - r.started) \
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
                    f"<td>{short_duration(end - start)}</td><td>{ran[r.id]:,}</td>"
                    f"<td>{state}</td></tr>")
    return ("<table class=\"runners\"><thead><tr><th>runner</th><th>host</th><th>pid</th>"
            "<th>--gpus</th><th>started</th><th>ran for</th><th>jobs run</th><th>state</th>"
            "</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
            + "".join(f'<p class="note">{html.escape(line)}</p>' for line in sweep.health))
