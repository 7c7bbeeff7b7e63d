"""The report's histogram of job durations: an inline SVG of the jobs that ended,
succeeded and not, binned on a linear or (for a wide spread) log scale."""
import math
from typing import List, Optional

from hog.humanize import fmt_duration
from hog.model import Status
from hog.state.rows import JobRow


def histogram(rows: List[JobRow], ok_color: str, bad_color: str) -> str:
    """Durations of the jobs that ended, succeeded (``ok_color``) and not, as an inline
    SVG with its caption."""
    ok: List[float] = []
    bad: List[float] = []
    ran = {s.value for s in Status if s.finished and s.started_command}
    for r in rows:
        if r.started is not None and r.ended is not None and r.status in ran \
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
        if log:
            base, width = math.log10(lo), (math.log10(hi) - math.log10(lo)) / n
            log10 = math.log10
            where = [int((log10(v if v > lo else lo) - base) / width) for v in vals]
        else:
            base, width = edges[0], (edges[-1] - edges[0]) / n
            where = [int((v - base) / width) for v in vals]
        for i in where:
            out[n - 1 if i > n - 1 else (i if i > 0 else 0)] += 1
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
        label = f"{duration(edges[i])} to {duration(edges[i + 1])}"
        y = head + ph
        for count, color, cls in ((ok_n[i], ok_color, "ok"), (bad_n[i], bad_color, "bad")):
            if not count:
                continue
            bh = ph * count / top
            y -= bh
            parts.append(f'<rect class="bin {cls}" x="{x + 0.5:.1f}" y="{y:.1f}" '
                         f'width="{max(1.0, bw - 1):.1f}" height="{bh:.1f}" '
                         f'fill="{color}"><title>{label}: {count} '
                         f'{"succeeded" if cls == "ok" else "did not succeed"}</title></rect>')
    for i in _tick_indices(n):
        x = left + i * bw
        parts.append(f'<text class="axis" x="{x:.1f}" y="{h - bottom + 16}" '
                     f'text-anchor="middle">{duration(edges[i])}</text>')
    parts.append(f'<text class="axis" x="{left + pw / 2:.1f}" y="{h - 2}" '
                 f'text-anchor="middle">duration{" (log scale)" if log else ""}</text>')
    parts.append("</svg>")
    median = sorted(values)[len(values) // 2]
    caption = (f'<p class="caption">{len(values):,} jobs that ended; median '
               f'{duration(median)}; {len(bad):,} did not succeed (red).</p>')
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


def duration(s: Optional[float]) -> str:
    """Like the rest of hog (1m05s, 2h03m00s), and exact enough for short jobs."""
    if s is None:
        return "?"
    if s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 10:
        return f"{s:.1f}s"
    return fmt_duration(s)
