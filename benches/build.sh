#!/usr/bin/env bash
# Benchmark: a cold `cargo build --release` of the `sipline` binary, as a new user's quick start
# runs it (issue 39): an empty target directory (dependencies already downloaded, so the figure is
# compilation alone), `--timings` for the per-crate report, then the wall time, the CPU time, and
# the ten crates that took longest. Takes 15-40 minutes on 2 cores; run it on an idle machine.
#
#   benches/build.sh                   # the release profile
#   PROFILE=dist benches/build.sh      # another profile
#   TARGET=/somewhere benches/build.sh # keep the target directory (default: a temp dir, removed)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
cargo fetch --locked -q
target=${TARGET:-$(mktemp -d)}
[ -n "${TARGET:-}" ] || trap 'rm -rf "$target"' EXIT
rm -rf "$target"
python3 - "$target" "$profile" <<'PY'
import glob, json, os, re, resource, shutil, subprocess, sys, time
target, profile = sys.argv[1], sys.argv[2]
start = time.perf_counter()
done = subprocess.run(
    ["cargo", "build", "--locked", "--profile", profile, "-p", "jobs", "--bin", "sipline", "--timings"],
    env={**os.environ, "CARGO_TARGET_DIR": target, "CARGO_TERM_COLOR": "never"},
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wall = time.perf_counter() - start
if done.returncode != 0:
    sys.exit(f"cargo build: exit {done.returncode}")
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = usage.ru_utime + usage.ru_stime
print(f"cold build ({profile}): {wall / 60:.1f} min wall, {cpu / 60:.1f} min CPU")
# The timings page embeds its units as a JSON array; each has a name, a version, a target kind
# and its duration in seconds.
report = sorted(glob.glob(f"{target}/cargo-timings/cargo-timing-*.html"))[-1]
html = open(report).read()
units = json.loads(re.search(r"const UNIT_DATA = (\[.*?\n\]);?\n", html, re.S).group(1))
units.sort(key=lambda u: -u["duration"])
print("longest units (s, crate, what):")
for u in units[:10]:
    print(f"  {u['duration']:7.1f}  {u['name']} {u['version']}  {u.get('target', '').strip() or 'lib'}")
kept = f"/tmp/sipline-build-timings-{profile}-{int(time.time())}.html"
shutil.copy(report, kept)
print(f"timings: {kept}")
PY
