#!/bin/sh
# Per-call cost of an intercepted system call (issue 5): a small C program calls fstat(2)
# N times on one descriptor and prints the mean time per call, bare, under fakeroot, under
# nsroot (every fstat is a round trip to the supervisor, answered with CONTINUE on an empty
# store) and under `nsroot --no-emulate`, pinned to one CPU (`taskset -c 0`) and unpinned.
# Prints each session's overhead per call (its time minus bare) and nsroot's as a share of
# fakeroot's, the measure behind the ownership target (at most half).
#
# Usage: benches/syscall.sh [NSROOT_BINARY]    (default: the release build)
# Environment: CALLS (default 200000), ROUNDS (default 5: the median of that many runs).
set -eu

CALLS=${CALLS:-200000}
ROUNDS=${ROUNDS:-5}
. "$(dirname "$0")/common.sh"
bin=${1:-$(release_bin)}
bench_setup syscall "$bin" "${TMPDIR:-/tmp}" gcc fakeroot taskset
cat > "$work/fstat.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 200000;
    struct stat st;
    struct timespec a, b;
    int fd = open("/", O_RDONLY);
    if (fd < 0) return 1;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) fstat(fd, &st);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.3f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n / 1000.0);
    return 0;
}
C
gcc -O2 -o "$work/fstat" "$work/fstat.c"
chmod 755 "$work/fstat"

# median_us CMD...: the median of ROUNDS runs of CMD (which prints microseconds per call).
median_us() {
    i=0
    while [ "$i" -lt "$ROUNDS" ]; do
        as_user "$@" "$work/fstat" "$CALLS"
        i=$((i + 1))
    done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

echo "## syscall: fstat(2) x $CALLS, median of $ROUNDS runs, as uid $uid ($user)"
echo "$(uname -sr), $(nproc) CPUs, nsroot $("$nsroot" --version | cut -d' ' -f2)"
printf '%-9s %-18s %10s %12s\n' cpus session "us/call" "overhead us"
for cpus in unpinned pinned; do
    pin=""
    [ "$cpus" = pinned ] && pin="taskset -c 0"
    bare=$(median_us $pin env)
    fake=$(median_us $pin fakeroot)
    emul=$(median_us $pin "$nsroot")
    noemu=$(median_us $pin "$nsroot" --no-emulate)
    for row in "bare $bare" "fakeroot $fake" "nsroot $emul" "nsroot--no-emulate $noemu"; do
        set -- $row
        printf '%-9s %-18s %10s %12s\n' "$cpus" "$1" "$2" "$(echo "$2 $bare" | awk '{ printf "%.3f", $1 - $2 }')"
    done
    echo "$emul $fake $bare" | awk -v c="$cpus" '{ printf "%s: nsroot overhead per call = %.2f of fakeroot'\''s (target <= 0.5)\n", c, ($1 - $3) / ($2 - $3) }'
done
