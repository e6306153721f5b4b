#!/usr/bin/env python3
"""An adversarial bad-input probe of the trainctl CLI (issue 23, item 4).

Each case runs the real CLI in a fresh temporary working directory with a temporary HOME, and is judged
automatically: CLEAN when the exit code is the documented one, no traceback is printed, the message names the
culprit, no payload ran (a marker file outside the run dir), nothing was written outside the allowed places, and
it ended within its time limit. Anything else is a FINDING with the reason.

    python bench/probe/probe.py --trainctl-python .venv/bin/python --jobs 2 [--only PATTERN] [--out report.json]

The cases live in cases_*.py beside this file; fixtures.py makes the files they start from.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fixtures  # noqa: E402

TRACEBACK = "Traceback (most recent call last)"
# Benign writes of libraries into HOME (font caches).
HOME_NOISE = ("home/.cache/**", "home/.config/matplotlib/**", "home/.config/matplotlib", "home/.cache",
              "home/.config", "home/.cache/matplotlib")


@dataclass
class Ctx:
    """What a case's setup and checks see."""
    root: Path
    cwd: Path
    home: Path
    outside: Path
    marker: Path
    base: dict[str, Path]
    python: str


@dataclass
class Case:
    id: str
    cls: str
    argv: list[str]                      # after `python -m trainctl`; may hold {cwd} {outside} {marker} {home}
    expect: tuple[int, ...] = (2,)
    msg: tuple[str, ...] = ()             # any of these (case-insensitive, whitespace-insensitive) when rc != 0
    setup: Callable[[Ctx], None] | None = None
    timeout: float = 60.0
    allow: tuple[str, ...] = ()           # extra allowed writes (globs over cwd/..., home/..., outside/...)
    signal: dict[str, Any] | None = None  # {"sig": "INT"|"TERM", "after": s, "when": glob, "twice": bool}
    parallel: list[list[str]] | None = None  # several commands at once (argv is then ignored)
    judge: Callable[[list[dict], Ctx], list[str]] | None = None  # extra checks for parallel cases
    post: Callable[[Ctx], list[str]] | None = None               # extra checks after the run
    note: str = ""


def fill(arg: str, ctx: Ctx) -> str:
    return (arg.replace("{cwd}", str(ctx.cwd)).replace("{outside}", str(ctx.outside))
            .replace("{marker}", str(ctx.marker)).replace("{home}", str(ctx.home)))


def snapshot(ctx: Ctx) -> dict[str, tuple]:
    snap: dict[str, tuple] = {}
    for label, top in (("cwd", ctx.cwd), ("home", ctx.home), ("outside", ctx.outside)):
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            rel = os.path.relpath(dirpath, ctx.root)
            rel = label + rel[len(top.name):] if rel.startswith(top.name) else rel
            snap[rel] = ("dir",)
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                p = os.path.join(dirpath, name)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                snap[f"{rel}/{name}"] = ("file", st.st_size, st.st_mtime_ns)
    return snap


def changed(before: dict, after: dict) -> list[str]:
    out = []
    for k, v in after.items():
        if k not in before:
            out.append(k)
        elif v != before[k] and v[0] == "file":
            out.append(k)
    out += [f"{k} (removed)" for k in before if k not in after]
    return sorted(out)


def allowed(path: str, patterns: tuple[str, ...]) -> bool:
    p = path.removesuffix(" (removed)")
    return any(fnmatch.fnmatch(p, pat) for pat in patterns)


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def trainctl_env(ctx: Ctx, mpl: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINCTL", "HYDRA", "PYTHON"))}
    env.update(HOME=str(ctx.home), PROBE_MARKER=str(ctx.marker), MPLCONFIGDIR=str(mpl), COLUMNS="120",
               PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    return env


def run_one(argv: list[str], ctx: Ctx, env: dict, timeout: float, sig: dict | None) -> dict:
    cmd = [ctx.python, "-m", "trainctl", *[fill(a, ctx) for a in argv]]
    out_f = open(ctx.root / f"stdout.{id(argv)}", "w+")
    err_f = open(ctx.root / f"stderr.{id(argv)}", "w+")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ctx.cwd, env=env, stdout=out_f, stderr=err_f, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    sent: list[str] = []
    timed_out = False
    if sig:
        signum = signal.SIGINT if sig.get("sig", "INT") == "INT" else signal.SIGTERM
        deadline = t0 + sig.get("max_wait", 40.0)
        if sig.get("when"):
            while time.monotonic() < deadline and proc.poll() is None and not list(ctx.cwd.glob(sig["when"])):
                time.sleep(0.05)
        time.sleep(sig.get("after", 0.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signum)
            sent.append(signum.name)
            if sig.get("twice"):
                time.sleep(sig.get("gap", 0.3))
                if proc.poll() is None:
                    os.killpg(proc.pid, signum)
                    sent.append(signum.name)
    try:
        proc.wait(timeout=max(1.0, timeout - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    wall = time.monotonic() - t0
    out_f.seek(0)
    err_f.seek(0)
    res = {"cmd": cmd, "rc": proc.returncode, "stdout": out_f.read(), "stderr": err_f.read(), "wall_s": round(wall, 2),
           "timed_out": timed_out, "signals_sent": sent}
    out_f.close()
    err_f.close()
    return res


def judge(case: Case, results: list[dict], ctx: Ctx, writes: list[str]) -> list[str]:
    reasons: list[str] = []
    for r in results:
        text = r["stdout"] + r["stderr"]
        if r["timed_out"]:
            reasons.append(f"hang: killed after {case.timeout:.0f} s")
        if TRACEBACK in text:
            tb = text[text.index(TRACEBACK):]
            r["traceback"] = tb[:4000]
            lines = [ln for ln in tb.splitlines() if ln.strip() and not ln.startswith((" ", TRACEBACK))]
            reasons.append(f"traceback ({lines[0][:160] if lines else ''})")
    if ctx.marker.exists():
        reasons.append("PAYLOAD RAN: the marker file outside the run dir exists")
    rcs = [r["rc"] for r in results]
    if case.parallel is None:
        r = results[0]
        expect = case.expect
        if case.signal and not r["signals_sent"]:
            expect = tuple(expect) + (0,)  # it ended before the signal could be sent
        if not r["timed_out"] and r["rc"] not in expect:
            reasons.append(f"exit code {r['rc']}, expected {'/'.join(map(str, expect))}")
        if r["rc"] not in (0,) and case.msg and r["rc"] in expect:
            blob = squash(r["stdout"] + r["stderr"])
            if not any(squash(m) in blob for m in case.msg):
                reasons.append(f"message does not name the culprit (wanted one of {list(case.msg)})")
        if r["rc"] not in (0,) and r["rc"] in expect and not case.signal and not (r["stdout"] + r["stderr"]).strip():
            reasons.append("no message at all")
    if case.judge:
        reasons += case.judge(results, ctx)
    ok_rc = {0, 130, 143}
    allow = tuple(case.allow) + HOME_NOISE + ("cwd/runs/**/*lock*", "cwd/**/.probe_*")
    if any(rc in ok_rc for rc in rcs):
        allow += ("cwd/runs", "cwd/runs/**")
    bad = [w for w in writes if not allowed(w, allow)]
    if bad:
        reasons.append("wrote outside the allowed places: " + ", ".join(bad[:6]) + (" ..." if len(bad) > 6 else ""))
    if any(rc in (130, 143) for rc in rcs) or any(rc == 2 for rc in rcs):
        torn = [w for w in writes if w.endswith((".tmp", ".partial")) or "/.tmp" in w]
        if torn:
            reasons.append("half-written files left: " + ", ".join(torn[:4]))
    if case.post:
        reasons += case.post(ctx)
    return reasons


def run_case(case: Case, work: Path, base: dict[str, Path], python: str, mpl: Path) -> dict:
    root = work / case.id
    shutil.rmtree(root, ignore_errors=True)
    ctx = Ctx(root=root, cwd=root / "cwd", home=root / "home", outside=root / "outside",
              marker=root / "outside" / "PWNED", base=base, python=python)
    for d in (ctx.cwd, ctx.home, ctx.outside):
        d.mkdir(parents=True)
    (ctx.outside / "bashrc").write_text("# stand-in for ~/.bashrc\n")
    t0 = time.monotonic()
    try:
        if case.setup:
            case.setup(ctx)
    except Exception as exc:  # a broken case is the harness's fault: say so, do not count it
        return {"id": case.id, "cls": case.cls, "status": "ERROR", "reasons": [f"setup failed: {exc!r}"],
                "results": []}
    before = snapshot(ctx)
    env = trainctl_env(ctx, mpl)
    if case.parallel:
        with ThreadPoolExecutor(len(case.parallel)) as pool:
            results = list(pool.map(lambda a: run_one(a, ctx, env, case.timeout, None), case.parallel))
    else:
        results = [run_one(case.argv, ctx, env, case.timeout, case.signal)]
    writes = changed(before, snapshot(ctx))
    reasons = judge(case, results, ctx, writes)
    status = "FINDING" if reasons else "CLEAN"
    for r in results:
        r["stdout"], r["stderr"] = r["stdout"][-1500:], r["stderr"][-2500:]
    rec = {"id": case.id, "cls": case.cls, "status": status, "reasons": reasons, "writes": writes[:40],
           "results": results, "note": case.note, "case_s": round(time.monotonic() - t0, 1)}
    if status == "CLEAN":
        shutil.rmtree(root, ignore_errors=True)
    return rec


def all_cases() -> list[Case]:
    import importlib

    cases: list[Case] = []
    for f in sorted(HERE.glob("cases_*.py")):
        cases += importlib.import_module(f.stem).cases()
    ids = Counter(c.id for c in cases)
    dup = [i for i, n in ids.items() if n > 1]
    if dup:
        raise SystemExit(f"duplicate case ids: {dup}")
    return cases


def shell_line(cmd: list[str]) -> str:
    import shlex

    return "trainctl " + " ".join(shlex.quote(a) for a in cmd[3:])


def main() -> int:
    # A shell's background job starts with SIGINT ignored, and children inherit an ignored signal: give the
    # cases the default disposition back (a handled signal is reset to the default across exec).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--trainctl-python", required=True, help="the python that has trainctl installed")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default=None, help="regex over case id or class")
    ap.add_argument("--out", default="probe_report.json")
    ap.add_argument("--work", default=None, help="where cases run (default: a new temp dir; findings kept)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--shuffle", type=int, default=None, help="run the cases in a seeded random order")
    ap.add_argument("--summarize", default=None, help="summarize the .partial.jsonl of an unfinished run and exit")
    args = ap.parse_args()
    if args.summarize:
        recs = [json.loads(line) for line in open(args.summarize) if line.strip()]
        summarize(recs, args.trainctl_python, Path(args.work or "."), time.monotonic(), args.out)
        return 0
    cases = all_cases()
    if args.only:
        rx = re.compile(args.only)
        cases = [c for c in cases if rx.search(c.id) or rx.search(c.cls)]
    if args.shuffle is not None:
        import random

        random.Random(args.shuffle).shuffle(cases)
    if args.list:
        for c in cases:
            print(f"{c.cls:14} {c.id:40} {' '.join(c.argv if not c.parallel else c.parallel[0])}")
        print(len(cases), "cases")
        return 0
    python = str(Path(args.trainctl_python).absolute())
    work = Path(args.work or tempfile.mkdtemp(prefix="trainctl_probe_"))
    work.mkdir(parents=True, exist_ok=True)
    mpl = work / "_mplconfig"
    mpl.mkdir(exist_ok=True)
    t0 = time.monotonic()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINCTL", "HYDRA"))}
    base_env.update(HOME=str(work / "_basehome"), MPLCONFIGDIR=str(mpl), CUDA_VISIBLE_DEVICES="")
    print(f"probe: training the base runs in {work}/_base ...", flush=True)
    base = fixtures.make_base_runs(work / "_base", python, base_env)
    if any(c.id.startswith("report-") or c.cls in ("sweep-report", "signal") for c in cases):
        base["sweep"] = fixtures.make_base_sweep(work / "_base", python, base_env)
    print(f"probe: {len(cases)} cases, {args.jobs} workers, work dir {work}", flush=True)
    records: list[dict] = []
    done = 0
    partial = open(Path(args.out).with_suffix(".partial.jsonl"), "w")
    with ThreadPoolExecutor(args.jobs) as pool:
        for rec in pool.map(lambda c: run_case(c, work, base, python, mpl), cases):
            records.append(rec)
            partial.write(json.dumps(rec, default=str) + "\n")
            partial.flush()
            done += 1
            if rec["status"] != "CLEAN":
                print(f"  [{done}/{len(cases)}] {rec['status']} {rec['id']}: {'; '.join(rec['reasons'])[:300]}",
                      flush=True)
            elif done % 25 == 0:
                print(f"  [{done}/{len(cases)}] ...", flush=True)
    summarize(records, python, work, t0, args.out)
    return 0


def summarize(records: list[dict], python: str, work: Path, t0: float, out: str) -> None:
    """The per-class table, every finding with its command and reasons, and the JSON report."""
    invocations = sum(max(1, len(r["results"])) for r in records)
    by_cls: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        by_cls[r["cls"]][r["status"]] += 1
        by_cls[r["cls"]]["cases"] += 1
    print(f"\n{'class':16} {'cases':>6} {'clean':>6} {'findings':>9} {'errors':>7}")
    for cls in sorted(by_cls):
        c = by_cls[cls]
        print(f"{cls:16} {c['cases']:6} {c['CLEAN']:6} {c['FINDING']:9} {c['ERROR']:7}")
    clean = sum(r["status"] == "CLEAN" for r in records)
    findings = [r for r in records if r["status"] == "FINDING"]
    print(f"{'total':16} {len(records):6} {clean:6} {len(findings):9}   invocations {invocations}, "
          f"clean {100 * clean / max(1, len(records)):.1f} %, {time.monotonic() - t0:.0f} s")
    if findings:
        print("\nfindings:")
    for r in findings:
        cmds = " && ".join(shell_line(x["cmd"]) for x in r["results"])
        print(f"- [{r['cls']}] {r['id']}: {cmds}\n    " + "\n    ".join(r["reasons"]))
    report = {"trainctl_python": python, "work": str(work), "cases": len(records), "invocations": invocations,
              "clean": clean, "findings": len(findings), "wall_s": round(time.monotonic() - t0, 1),
              "by_class": {k: dict(v) for k, v in by_cls.items()}, "records": records}
    Path(out).write_text(json.dumps(report, indent=1, default=str))
    print(f"\nreport: {out}; case dirs of findings kept under {work}")


if __name__ == "__main__":
    sys.exit(main())
