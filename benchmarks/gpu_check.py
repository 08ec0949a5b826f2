"""The GPU checks behind ``benchmarks/gpu_check.sh``: each step a child process with its own time
limit, the whole within :data:`BUDGET_S`; one Markdown table and one JSON file come out.

    python -m benchmarks.gpu_check OUT_DIR      # normally through benchmarks/gpu_check.sh

Steps: ``jaxninja check --against jax`` on the GPU (every row within the numerical contract),
``benchmarks.train_speed --device gpu`` (the single-run loops and K runs in one program up to
K = 1024), the lecture's run (200,000 steps) and its 8 seeds, both ``--device gpu``. A step that
fails or runs out of time is a row saying so; the others still run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BUDGET_S = 235  # the whole, under 4 minutes (the limits below sum to 230)
STEPS: list[tuple[str, list[str], int]] = [
    ("check", ["-m", "jaxninja", "check", "--against", "jax", "--json"], 35),
    (
        "speed",
        [
            "-m",
            "benchmarks.train_speed",
            "--device",
            "gpu",
            "--no-torch",
            "--rounds",
            "3",
            "--python-steps",
            "200",
            "--notebook-steps",
            "1",
            "--runs",
            "1,16,256,1024",
            "--runs-steps",
            "16000",
            "--runs-rounds",
            "2",
            "--runs-sequential-max",
            "16",
        ],
        75,
    ),
    ("lecture", ["-m", "jaxninja", "train", "--device", "gpu", "--samples", "5"], 60),
    (
        "seeds8",
        ["-m", "jaxninja", "train", "--device", "gpu", "--seeds", "8", "--samples", "2"],
        60,
    ),
]


def gpu_present() -> str | None:
    """The GPU jax sees, or None."""
    try:
        import jax

        gpus = jax.devices("gpu")
    except Exception:  # no CUDA plugin, no driver: jax raises RuntimeError or its own types
        return None
    return f"{gpus[0].device_kind} ({len(gpus)} device(s)), jax {jax.__version__}"


def run_step(name: str, argv: list[str], limit: int, out: Path) -> dict[str, Any]:
    """One step as a child process; its output kept in OUT/NAME.log."""
    extra = {"speed": ["--json", str(out / "speed.json")]}.get(name, [])
    if name in ("lecture", "seeds8"):
        extra = ["--out", str(out / name), "--overwrite"]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, *argv, *extra], capture_output=True, text=True, timeout=limit
        )
        status, text = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        status, text = "timeout", (err.stdout or b"").decode() + (err.stderr or b"").decode()
    (out / f"{name}.log").write_text(text)
    return {"step": name, "status": status, "seconds": time.perf_counter() - t0, "limit": limit}


def details(name: str, out: Path, log: str) -> str:
    """The step's numbers, for the table."""
    try:
        if name == "check":
            result = json.loads(log.strip().splitlines()[-1])
            return f"{len(result['rows'])} rows, all within the contract: {result['ok']}"
        if name == "speed":
            data = json.loads((out / "speed.json").read_text())
            a = data["loops"]["(a)"]["median"]
            runs = {k: v["median"] for k, v in data.get("runs", {}).items() if "program" in k}
            shown = ", ".join(f"{k.split()[0]} {v:,.0f}" for k, v in runs.items())
            return f"(a) {a:,.0f} steps/s; run-steps/s in one program: {shown}"
        if name == "lecture":
            s = json.loads((out / name / "summary.json").read_text())
            return (f"val {s['losses']['val']:.4f} (lecture 2.1099), {s['steps_per_s']:,.0f} "
                    f"steps/s, {s['wall_s']:.1f} s loop")  # fmt: skip
        if name == "seeds8":
            s = json.loads((out / name / "summary.json").read_text())
            v = s["over_runs"]["val"]
            return (f"val {v['mean']:.4f} ± {v['std']:.4f} over 8 [{v['min']:.4f}, "
                    f"{v['max']:.4f}], {s['wall_s']:.1f} s loop")  # fmt: skip
    except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
        return f"no numbers ({type(err).__name__}); see {name}.log"
    return ""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m benchmarks.gpu_check OUT_DIR\n")
        return 2
    out = Path(args[0])
    gpu = gpu_present()
    if gpu is None:
        print("gpu_check: jax sees no GPU here; nothing to measure")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    start, rows = time.perf_counter(), []
    for name, step_argv, limit in STEPS:
        left = int(BUDGET_S - (time.perf_counter() - start))
        if left < 10:
            rows.append({"step": name, "status": "skipped: out of time", "seconds": 0.0})
            continue
        row = run_step(name, step_argv, min(limit, left), out)
        row["details"] = details(name, out, (out / f"{name}.log").read_text())
        rows.append(row)
        print(f"{name}: {row['status']} in {row['seconds']:.0f} s; {row['details']}", flush=True)
    total = time.perf_counter() - start
    lines = [f"GPU check on {gpu}, {time.strftime('%Y-%m-%d %H:%M %Z')}, {total:.0f} s in all", ""]
    lines += ["| step | exit | seconds | result |", "|---|---|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r['step']} | {r['status']} | {r['seconds']:.0f} | {r.get('details', '')} |"
        )
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    (out / "gpu_check.json").write_text(json.dumps({"gpu": gpu, "total_s": total, "steps": rows}))
    print(f"wrote {out / 'gpu_check.md'} and {out / 'gpu_check.json'}")
    return 0 if all(r["status"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
