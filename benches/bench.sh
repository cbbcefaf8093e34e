#!/bin/sh
# Every benchmark section in one run, on one machine, with one release build: startup
# (issue 2), pack (benches/pack.sh, when present) and ownership (issue 5). Interceptors swing
# with CPU scheduling, so compare figures only within one run (KF-INTERCEPTOR-SCHED (docs/kernel-facts.md)).
#
# Usage: benches/bench.sh    (from anywhere; run as root, the commands run as the
# unprivileged NSROOT_TEST_USER, default nsroot-test). Each section's environment knobs
# (RUNS, WARMUP, FILES, RUNNER, ...) pass through.
set -eu

cd "$(dirname "$0")/.."
cargo build --release --quiet
. benches/common.sh
bin=$(release_bin "$PWD")
export NSROOT_BIN="$bin"

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
echo "# nsroot benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit"
echo "$(uname -srm), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')"
echo

status=0
benches/startup.sh "$bin" || status=1
echo
benches/build.sh "$bin" || status=1
echo
if [ -f benches/pack.sh ]; then
    # A bash script whose argument is the run count; it takes the binary from $NSROOT.
    NSROOT="$bin" bash benches/pack.sh || status=1
else
    echo "## pack: benches/pack.sh is not there yet, skipped"
fi
echo
benches/syscall.sh "$bin" || status=1
echo
benches/diff.sh "$bin" || status=1
echo
# Last, because its tree is deleted at the end: files created right after a large deletion
# are slow to create on these disks (KF-EXT4-NOJOURNAL (docs/kernel-facts.md)).
benches/ownership.sh "$bin" || status=1
exit $status
