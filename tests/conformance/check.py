#!/usr/bin/env python3
"""Runs the AWS-recorded conformance corpus against the stepstream binary and compares the
failures with the committed list of known failures (known-failures.txt, one case name per
line, '#' comments allowed), which may only shrink:

* a case that fails and is not listed is a regression: exit 1;
* a listed case that now passes must be removed from the list: exit 1;
* otherwise exit 0.

    python3 tests/conformance/check.py --corpus ../shared/conformance --bin target/release/stepstream
"""
import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True, help="the conformance directory (with run.py)")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--jobs", default=str(os.cpu_count() or 2))
    ap.add_argument("--skip-feature", action="append", default=["jsonata", "variables"])
    args = ap.parse_args()

    runner = os.path.join(args.corpus, "run.py")
    if not os.path.exists(runner):
        print(f"conformance corpus not found at {args.corpus} (expected run.py there)")
        return 1
    cmd = [sys.executable, runner, "--bin", args.bin, "--jobs", args.jobs]
    for f in args.skip_feature:
        cmd += ["--skip-feature", f]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    out = proc.stdout
    failing = set()
    for line in out.splitlines():
        m = re.match(r"^(FAIL|CAUSE-ONLY|ERROR) ([^:]+):", line)
        if m:
            failing.add(m.group(2))
    summary = [l for l in out.splitlines() if re.match(r"^\d+ passed, \d+ failed$", l)]
    if not summary:
        print(out[-4000:])
        print(proc.stderr[-4000:])
        print("the conformance runner printed no summary line")
        return 1

    known = set()
    with open(os.path.join(HERE, "known-failures.txt"), encoding="utf-8") as fh:
        for line in fh:
            line = line.split("#", 1)[0].strip()
            if line:
                known.add(line)

    new = sorted(failing - known)
    fixed = sorted(known - failing)
    for line in out.splitlines():
        if any(line.startswith(f"{k} {n}:") for n in new for k in ("FAIL", "CAUSE-ONLY", "ERROR")):
            print("REGRESSION", line)
    for n in fixed:
        print(f"FIXED {n}: passes now; remove it from tests/conformance/known-failures.txt")
    print(f"conformance: {summary[-1]} ({len(known)} known failures, {len(new)} new, {len(fixed)} fixed)")
    return 1 if new or fixed else 0


if __name__ == "__main__":
    sys.exit(main())
