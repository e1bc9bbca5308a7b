#!/usr/bin/env python3
"""Runs one benchmark step and prints its wall time and peak RSS (the benches' shared timer).

    measure.py [--tail] LABEL COMMAND [ARG...]

--tail also prints the command's last line of output (a job's summary). A failing command
stops the benchmark with its exit code and the end of its stderr.
"""
import resource
import subprocess
import sys
import time

args = sys.argv[1:]
tail = args[:1] == ["--tail"]
if tail:
    args = args[1:]
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
