"""YAML job files at scale: the parse of a 10,000-job list with PyYAML's C loader
(what hog uses when PyYAML has it) against the pure-Python loader, and the first job of
a 1,000,000-point grid (grids are expanded lazily), each run in a fresh process so
that the figures include nothing cached.

Run: ``python benchmarks/bench_yaml.py [--reps 3] [--tree .]``; prints min / median /
max per measure, with the CPU seconds and peak RSS of the process.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Dict, List

CHILD = r"""
import resource, sys, time
sys.path.insert(0, sys.argv[1])
from hog.sources.yaml import read_yaml
t = time.perf_counter()
jobs = read_yaml(sys.argv[2], pure=sys.argv[3] == "pure")
if sys.argv[4] == "all":
    n = sum(1 for _ in jobs)
else:
    next(jobs)
    n = 1
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_SELF)
print(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024, n)
"""


def write_files(tmp: str) -> Dict[str, str]:
    flat = os.path.join(tmp, "list.yaml")
    with open(flat, "w") as f:
        f.write("jobs:\n")
        for i in range(10_000):
            f.write(f"  - {{cmd: python train.py --seed {i}, name: j{i}, gpus: 1}}\n")
    grid = os.path.join(tmp, "grid.yaml")
    with open(grid, "w") as f:
        f.write("jobs:\n  - sweep:\n      cmd: python train.py --a {a} --b {b} --c {c}\n"
                "      name: t\n      grid:\n"
                f"        a: {list(range(100))}\n        b: {list(range(100))}\n"
                f"        c: {list(range(100))}\n")
    return {"flat": flat, "grid": grid}


def measure(tree: str, path: str, loader: str, what: str) -> List[float]:
    out = subprocess.run([sys.executable, "-c", CHILD, tree, path, loader, what],
                         capture_output=True, text=True, check=True).stdout.split()
    return [float(x) for x in out]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--tree", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = p.parse_args()
    cases = [("10,000-job list, C loader", "flat", "c", "all"),
             ("10,000-job list, pure loader", "flat", "pure", "all"),
             ("10^6-point grid, first job", "grid", "c", "first")]
    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(tmp)
        got: Dict[str, List[List[float]]] = {name: [] for name, *_ in cases}
        for _ in range(args.reps):               # interleaved
            for name, key, loader, what in cases:
                got[name].append(measure(args.tree, files[key], loader, what))
    print("| measure | wall s min / median / max | CPU s median | peak RSS MB median |")
    print("|---|---|---|---|")
    for name, runs in got.items():
        walls = sorted(r[0] for r in runs)
        print(f"| {name} | {walls[0]:.3f} / {statistics.median(walls):.3f} / {walls[-1]:.3f} "
              f"| {statistics.median(r[1] for r in runs):.2f} "
              f"| {statistics.median(r[2] for r in runs) / 2 ** 20:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
