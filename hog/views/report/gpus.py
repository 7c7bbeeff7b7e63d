"""The report's GPU section: each GPU's memory in use over time (from the GPU monitor's
log, ``state.gpulog``) as an inline SVG, and the jobs that held a GPU but barely used
it (mean utilisation under ``IDLE_UTIL`` percent while they ran). Pure: text from data."""
import html
from typing import Dict, List, Optional, Sequence, Tuple

from hog.state.gpulog import Look
from hog.state.rows import JobRow
from hog.views.report import pack

IDLE_UTIL = 5.0                  # percent: below it, a job "barely used" its GPU(s)
MAX_LISTED = 50
PALETTE = ("#3d6fb6", "#e76f51", "#2a9d8f", "#8e6bb8", "#e9c46a", "#6c757d", "#d62828",
           "#219ebc")
GIB = 2 ** 30


def idle_holders(rows: Sequence[JobRow]) -> List[JobRow]:
    """Jobs given a GPU whose mean utilisation stayed under ``IDLE_UTIL`` %."""
    return [r for r in rows if r.gpus and r.gpu_util_mean is not None
            and r.gpu_util_mean < IDLE_UTIL]


def gpu_section(looks: Sequence[Look], rows: Sequence[JobRow], folder_name) -> str:
    if not looks:
        return ('<p class="empty">No GPU figures: the runner found neither NVML '
                '(<code>pip install gpu-hog[nvml]</code>) nor <code>nvidia-smi</code>.</p>')
    return _memory_chart(looks) + _idle_list(rows, folder_name)


def _memory_chart(looks: Sequence[Look]) -> str:
    t0, t1 = looks[0][0], max(looks[-1][0], looks[0][0] + 1e-3)
    gpus = sorted({g for _, by in looks for g in by}, key=lambda g: (len(g), g))
    top = max((used for _, by in looks for used, _ in by.values()), default=0) or GIB
    w, h, left, bottom, head, right = 760, 200, 56, 26, 10, 12
    pw, ph = w - left - right, h - bottom - head
    parts = [f'<svg class="gpumem" viewBox="0 0 {w} {h}" role="img" '
             f'aria-label="GPU memory over time per GPU">']
    for k in range(5):
        y = head + ph - ph * k / 4
        parts.append(f'<line class="grid" x1="{left}" x2="{w - right}" y1="{y:.1f}" '
                     f'y2="{y:.1f}"/><text class="axis" x="{left - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{top * k / 4 / GIB:.1f} GiB</text>')
    legend = []
    for n, gpu in enumerate(gpus):
        col = PALETTE[n % len(PALETTE)]
        points: List[Tuple[float, float]] = []
        for t, by in looks:
            if gpu in by:
                points.append((left + pw * (t - t0) / (t1 - t0),
                               head + ph - ph * by[gpu][0] / top))
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline fill="none" stroke="{col}" stroke-width="1.5" '
                     f'points="{path}"><title>GPU {html.escape(gpu)}</title></polyline>')
        legend.append(f'<span class="key"><i style="background:{col}"></i>GPU '
                      f'{html.escape(gpu)}</span>')
    parts.append(f'<text class="axis" x="{left + pw / 2:.1f}" y="{h - 6}" text-anchor="middle">'
                 f'{(t1 - t0) / 60:.1f} min sampled, {len(looks):,} looks</text></svg>')
    return f'<div class="legend">{"".join(legend)}</div>' + "".join(parts)


def _idle_list(rows: Sequence[JobRow], folder_name) -> str:
    idle = idle_holders(rows)
    if not idle:
        return (f'<p class="caption">No job held a GPU with a mean utilisation under '
                f'{IDLE_UTIL:g} %.</p>')
    items = "".join(
        f'<li data-job="{r.id}"><b>{html.escape(r.name or folder_name(r.id))}</b> '
        f'GPU {html.escape(r.gpus or "")}: {r.gpu_util_mean:g} % mean utilisation, '
        f'{_gib(r.gpu_mem_peak_bytes)} peak memory</li>' for r in idle[:MAX_LISTED])
    more = f"<li>... and {len(idle) - MAX_LISTED:,} more</li>" if len(idle) > MAX_LISTED else ""
    return (f'<p class="caption flag">{len(idle):,} job(s) held a GPU but barely used it '
            f'(mean utilisation under {IDLE_UTIL:g} %):</p><ul class="idle-gpu">{items}{more}'
            f'</ul>')


def _gib(n: Optional[int]) -> str:
    return "unknown" if n is None else f"{n / GIB:.2f} GiB"


def job_usage_columns(rows: Dict[int, JobRow], ids: Sequence[int]) -> Dict[str, list]:
    """Per job shown in the timeline: what its latest attempt used (its tooltip), as packed
    columns (``pack``)."""
    cols: Dict[str, list] = {"cpu": [], "rss": [], "gmem": [], "gutil": []}
    for i in ids:
        r = rows[i]
        cpu = None if r.cpu_user_s is None else round(r.cpu_user_s + (r.cpu_system_s or 0), 2)
        cols["cpu"].append(cpu)
        cols["rss"].append(r.max_rss_bytes)
        cols["gmem"].append(r.gpu_mem_peak_bytes)
        cols["gutil"].append(r.gpu_util_mean)
    return {key: pack.column(values) for key, values in cols.items()}
