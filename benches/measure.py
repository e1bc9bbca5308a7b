#!/usr/bin/env python3
"""Runs one benchmark step and prints its wall time and peak RSS (the benches' shared timer).

    measure.py [--tail] [--grep REGEX] [--key] LABEL COMMAND [ARG...]

--tail also prints the command's last line of output (a job's summary); --grep prints the
lines of its stderr (colour codes stripped) that match REGEX, from `part=` on where they
have it; --key adds a line `##KEY=SECONDS` (KEY the label up to its first colon) for a
script that collects the figures afterwards. A failing command stops the benchmark with its
exit code and the end of its stderr.
"""
import re
import resource
import subprocess
import sys
import time

args = sys.argv[1:]
tail = key = False
grep = None
while args and args[0].startswith("--"):
    flag = args.pop(0)
    if flag == "--tail":
        tail = True
    elif flag == "--key":
        key = True
    elif flag == "--grep" and args:
        grep = re.compile(args.pop(0))
    else:
        sys.exit(f"unknown option {flag}\n{__doc__}")
if len(args) < 2:
    sys.exit(__doc__)
label, cmd = args[0], args[1:]
start = time.perf_counter()
done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - start
peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
if done.returncode != 0:
    sys.exit(f"{label}: exit {done.returncode}\n{done.stderr[-2000:]}")
print(f"{label:<56} {wall:8.2f} s wall  {peak_mib:8.1f} MiB peak RSS", flush=True)
lines = done.stdout.strip().splitlines()
if tail and lines:
    print("    " + lines[-1][:230], flush=True)
if grep:
    for line in done.stderr.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        if grep.search(line):
            print("    " + line[line.find("part=") if "part=" in line else -60 :][:100])
if key:
    print(f"##{label.split(':')[0]}={wall:.3f}", flush=True)
