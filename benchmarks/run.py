"""Side-by-side benchmarks: mpire_fault against mpire, multiprocessing.Pool, ProcessPoolExecutor and loky.

    python benchmarks/run.py [--quick] [--only a,b,...] [--out benchmarks/RESULTS.md] [--json PATH]

Every (benchmark, pool) pair runs in a fresh child process with a timeout, so
a pool that hangs (multiprocessing.Pool loses a task whose worker died) is
reported as "hangs" instead of stopping the run, and peak memory is that
child's own. Timings are the best of --repeat runs. Ratios are peer time
divided by ours: 1.0 or more means we are at least as fast.

The front-door cases (j to m, ``frontdoors.py``) each run one child holding
our front door and the class it replaces, timed in turn (ours, theirs, ours,
...) so both see the same load; they report the median of the rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from frontdoors import CASES  # noqa: E402
from peers import BENCHMARKS, PEERS, RATES, SPIN_VARIABLE, calibrate  # noqa: E402

GOALS = {
    "a": ("ratio", 1.0), "b": ("ratio", 1.0), "c": ("ratio", 1.0), "i": ("ratio", 1.0),
    "d": ("ms", 20.0), "e": ("ms", 100.0), "f": ("mib", 200.0),
    "g": ("rate", 1024.0), "h": ("rate", 1024.0),  # MiB/s, and 3x multiprocessing.Pool
}
RATE_RATIO = 3.0


def run_child(bench: str, peer: str, quick: bool, timeout: float) -> dict:
    cmd = [sys.executable, os.path.join(HERE, "peers.py"), bench, peer] + (["--quick"] if quick else [])
    return run_command(cmd, timeout)


def run_front_door(case: str, quick: bool, rounds: int | None, timeout: float) -> dict:
    cmd = [sys.executable, os.path.join(HERE, "frontdoors.py"), case] + (["--quick"] if quick else [])
    return run_command(cmd + (["--rounds", str(rounds)] if rounds else []), timeout)


def run_command(cmd: list[str], timeout: float) -> dict:
    """The last JSON line ``cmd`` prints; ``hangs`` after ``timeout`` s, ``error`` if it failed."""
    # A session of its own: on a timeout the whole group goes, the pool's workers included
    # (multiprocessing's workers outlive a killed parent).
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        return {"status": "hangs", "value": None}
    finally:
        try:
            os.killpg(child.pid, signal.SIGKILL)  # leftovers of a child that did finish
        except ProcessLookupError:
            pass
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if child.returncode != 0 or not lines:
        return {"status": "error", "value": None, "detail": (stderr or stdout)[-300:]}
    return json.loads(lines[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", default="a,i,b,c,d,e,f,g,h,j,k,l,m", help="comma-separated benchmarks")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated pools")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=None,
                        help="front-door cases: timed rounds of each side (default: frontdoors.py's)")
    parser.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    benches = [b for b in args.only.split(",") if b]
    peers = [p for p in args.peers.split(",") if p]
    unknown = [b for b in benches if b not in BENCHMARKS and b not in CASES] + [p for p in peers if p not in PEERS]
    if unknown:
        parser.error(f"unknown benchmark or pool: {', '.join(unknown)}")
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if "b" in benches and not os.environ.get(SPIN_VARIABLE):
        os.environ[SPIN_VARIABLE] = str(max(calibrate() for _ in range(5)))  # the children inherit it
    results: dict[str, dict[str, dict]] = {}
    for bench in benches:
        results[bench] = {}
        if bench in CASES:
            results[bench] = front_door(bench, args.quick, args.rounds)
            continue
        for peer in peers:
            runs = [run_child(bench, peer, args.quick, 120.0) for _ in range(1 if bench in "def" else args.repeat)]
            ok = [r for r in runs if r["status"] == "ok"]
            best = (max if bench in RATES else min)(ok, key=lambda r: r["value"]) if ok else runs[0]
            results[bench][peer] = best
            shown = f"{best['value']:.4g} {BENCHMARKS[bench][1]}" if best["status"] == "ok" else best["status"]
            print(f"{bench} {BENCHMARKS[bench][0]:<46} {peer:<20} {shown}", flush=True)
    table = render(results, args.quick)
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write(table)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    print(table)
    return 0


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def render(results: dict, quick: bool) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M')} with `python benchmarks/run.py{' --quick' if quick else ''}`: "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average at the end "
        f"{os.getloadavg()[0]:.2f}; mpire_fault {_version('mpire_fault')}, mpire {_version('mpire')}, "
        f"loky {_version('loky')}, joblib {_version('joblib')}. Two workers everywhere, start method fork.",
        "",
        "Ratio = peer / mpire_fault for times, mpire_fault / peer for MiB/s (above 1.0: we are faster).",
        "",
    ]
    for bench, per_peer in results.items():
        if bench in CASES:
            lines += render_front_door(bench, per_peer)
            continue
        title, unit = BENCHMARKS[bench]
        ours = per_peer.get("mpire_fault", {})
        lines += [f"## ({bench}) {title}", "", f"| pool | {unit} | ratio |", "| --- | --- | --- |"]
        for peer, result in per_peer.items():
            value = f"{result['value']:.4g}" if result["status"] == "ok" else result["status"]
            ratio = ""
            if result["status"] == "ok" and ours.get("status") == "ok" and ours["value"] and peer != "mpire_fault":
                ratio = f"{result['value'] / ours['value']:.2f}"
                if bench in RATES:
                    ratio = f"{ours['value'] / result['value']:.2f}"
            lines.append(f"| {peer} | {value} | {ratio} |")
        lines += ["", verdict(bench, per_peer), ""]
    return "\n".join(lines)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def front_door(case: str, quick: bool, rounds: int | None) -> dict:
    """Run one front-door case; the medians and the ratio (theirs / ours) added to what the child measured."""
    result = run_front_door(case, quick, rounds, 300.0)
    title, ours, theirs = CASES[case]
    if result["status"] == "ok":
        result["median_ours"], result["median_theirs"] = median(result["ours"]), median(result["theirs"])
        result["ratio"] = result["median_theirs"] / result["median_ours"]
        shown = (f"{ours} {result['median_ours']:.4g} s, {theirs} {result['median_theirs']:.4g} s, "
                 f"ratio {result['ratio']:.2f}")
    else:
        shown = result["status"]
    print(f"{case} {title:<46} {shown}", flush=True)
    return result


def render_front_door(case: str, result: dict) -> list[str]:
    title, ours, theirs = CASES[case]
    lines = [f"## ({case}) {title}", ""]
    if result["status"] != "ok":
        return lines + [f"Not measured: {result['status']} {result.get('detail', '')}".rstrip(), ""]
    rounds = len(result["ours"])
    lines += ["| pool | median s | fastest | slowest | ratio |", "| --- | --- | --- | --- | --- |"]
    for name, side in ((ours, "ours"), (theirs, "theirs")):
        ratio = f"{result['ratio']:.2f}" if side == "theirs" else ""
        lines.append(f"| {name} | {result['median_' + side]:.4g} | {min(result[side]):.4g} | "
                     f"{max(result[side]):.4g} | {ratio} |")
    state = "at least as fast" if result["ratio"] >= 1.0 else f"slower by {100 * (1 - result['ratio']):.0f}%"
    lines += ["", f"{rounds} rounds each, interleaved in one process (ours, theirs, ours, ...), warm pools; "
                  f"ratio of the medians {result['ratio']:.2f}: the front door is {state}.", ""]
    return lines


def verdict(bench: str, per_peer: dict) -> str:
    kind, target = GOALS[bench]
    ours = per_peer.get("mpire_fault", {})
    if ours.get("status") != "ok":
        return f"Goal: not measured (mpire_fault: {ours.get('status')})."
    if kind == "ratio":
        peers = [r["value"] for p, r in per_peer.items() if p != "mpire_fault" and r["status"] == "ok"]
        if not peers:
            return "Goal: no peer finished."
        ratio = min(peers) / ours["value"]
        state = "met" if ratio >= target else f"missed by {100 * (1 - ratio):.0f}%"
        return f"Goal: ratio >= 1.0 against the fastest peer; measured {ratio:.2f} ({state})."
    if kind == "rate":
        peer = per_peer.get("multiprocessing", {})
        ratio = ours["value"] / peer["value"] if peer.get("status") == "ok" and peer["value"] else None
        met = ours["value"] >= target and (ratio is None or ratio >= RATE_RATIO)
        shown = f"{ratio:.2f}x multiprocessing.Pool" if ratio is not None else "multiprocessing.Pool not measured"
        return (f"Goal: at least {target:g} MiB/s and {RATE_RATIO:g}x multiprocessing.Pool; measured "
                f"{ours['value']:.0f} MiB/s, {shown} ({'met' if met else 'missed'}).")
    state = "met" if ours["value"] < target else f"missed by {ours['value'] - target:.1f}"
    return f"Goal: under {target:g} {kind}; measured {ours['value']:.2f} ({state})."


if __name__ == "__main__":
    sys.exit(main())
