"""Figures, the one table `make bench` prints, and what goes into bench/results.json."""

import operator
import os
import platform
import shutil
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any

from load import Pairs
from peers import node_version

_OPERATORS = {">=": operator.ge, "<=": operator.le, "<": operator.lt}


@dataclass
class Figure:
    """One target. `values` holds one figure per pair: ours/peer ratios, or (`absolute`)
    our own value; the target is judged on their median.
    """

    name: str
    ours: float
    peer: float
    peer_name: str
    unit: str
    values: list[float]
    op: str
    threshold: float
    absolute: bool = False
    ours_cores: float | None = None
    peer_cores: float | None = None
    errors: int = 0
    runs: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def met(self) -> bool:
        # A run with failed requests measured something else, so it cannot pass.
        return self.errors == 0 and _OPERATORS[self.op](self.median, self.threshold)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(median=self.median, min=min(self.values), max=max(self.values), met=self.met)
        return data


def compare(
    name: str,
    pairs: Pairs,
    peer_name: str,
    op: str,
    threshold: float,
    metric: str = "rps",
    unit: str = "req/s",
) -> Figure:
    """A ratio figure from side-by-side runs: ours/peer per pair for `metric`."""
    return Figure(
        name,
        ours=pairs.median("ours", metric),
        peer=pairs.median("peer", metric),
        peer_name=peer_name,
        unit=unit,
        values=pairs.ratios(metric),
        op=op,
        threshold=threshold,
        ours_cores=pairs.cores("ours"),
        peer_cores=pairs.cores("peer"),
        errors=pairs.errors(),
        runs={"ours": [asdict(r) for r in pairs.ours], "peer": [asdict(r) for r in pairs.peer]},
    )


def _amount(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _median_text(f: Figure) -> str:
    """Two decimals, or as many more as keep the median on its side of the target (0.946
    against >= 0.95 read "0.95 ... FAIL")."""
    judge = _OPERATORS[f.op]
    for decimals in range(2, 7):
        text = f"{f.median:.{decimals}f}"
        if judge(float(text), f.threshold) == judge(f.median, f.threshold):
            break
    return text


def table(figures: list[Figure]) -> list[str]:
    header = ("measure", "ours", "ceiling or peer", "ratio median (min-max)", "target", "result")
    header += ("cores ours/peer",)
    rows = [header]
    for f in figures:
        spread = f"{min(f.values):.2f}-{max(f.values):.2f}"
        if f.absolute:
            ours = f"{f.median:.1f} {f.unit} ({min(f.values):.1f}-{max(f.values):.1f})"
            ratio, target = "-", f"{f.op} {f.threshold:g} {f.unit}"
        else:
            ours, ratio = _amount(f.ours, f.unit), f"{_median_text(f)} ({spread})"
            target = f"{f.op} {f.threshold:g}"
        result = "PASS" if f.met else ("FAIL (errors)" if f.errors else "FAIL")
        peer = f"{_amount(f.peer, f.unit)} {f.peer_name}" if f.peer else f.peer_name
        cores = f"{_cores(f.ours_cores)}/{_cores(f.peer_cores)}"
        rows.append((f.name, ours, peer, ratio, target, result, cores))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [
        " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def machine() -> dict[str, Any]:
    """What the figures were measured on (loopback; every process shares these cores)."""
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    wrk = shutil.which("wrk") or "wrk"
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node_version(),
        "wrk": wrk_version.splitlines()[0] if wrk_version else "",
        "load_average_at_start": os.getloadavg(),
    }
