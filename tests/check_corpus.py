#!/usr/bin/env python3
"""Runs a case corpus (the AWS-recorded ASL conformance corpus, or the official JSONata test
suite as converted in shared/jsonata) against the stepstream binary through the corpus's own
run.py, and compares the failures with a committed list of known failures (one case name per
line, '#' comments allowed), which may only shrink:

* a case that fails and is not listed is a regression: exit 1;
* a listed case that now passes must be removed from the list: exit 1;
* otherwise exit 0.

    python3 tests/check_corpus.py --corpus ../shared/conformance --known tests/conformance/known-failures.txt --bin target/release/stepstream
    python3 tests/check_corpus.py --corpus ../shared/jsonata --known tests/jsonata/known-failures.txt --bin target/release/stepstream -- --pass-limits
"""
import argparse
import os
import re
import subprocess
import sys

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True, help="the conformance directory (with run.py)")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--jobs", default=str(os.cpu_count() or 2))
    ap.add_argument("--known", required=True, help="the known-failures list")
    ap.add_argument("runner_args", nargs="*", help="more arguments for run.py (after --)")
    args = ap.parse_args()

    runner = os.path.join(args.corpus, "run.py")
    if not os.path.exists(runner):
        print(f"conformance corpus not found at {args.corpus} (expected run.py there)")
        return 1
    cmd = [sys.executable, runner, "--bin", args.bin, "--jobs", args.jobs]
    cmd += args.runner_args
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
    with open(args.known, encoding="utf-8") as fh:
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
        print(f"FIXED {n}: passes now; remove it from {args.known}")
    name = os.path.basename(os.path.normpath(args.corpus))
    print(f"{name}: {summary[-1]} ({len(known)} known failures, {len(new)} new, {len(fixed)} fixed)")
    return 1 if new or fixed else 0


if __name__ == "__main__":
    sys.exit(main())
