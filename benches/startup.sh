#!/bin/sh
# Startup benchmark (issue 2): median wall time of `nsroot true` against
# `unshare --user --map-root-user --mount --pid --ipc --fork true` and `fakeroot true`, each
# pinned to one CPU (`taskset -c 0`) and unpinned, with the ratios nsroot/unshare (target:
# at most 1.2) and fakeroot/nsroot (target: at least 10). Also `env true`: two execs and
# nothing else, the floor of any prefix command that runs its command in a new process
# image; fakeroot/floor is the best fakeroot/nsroot ratio any such command could reach here.
#
# Usage: benches/startup.sh [NSROOT_BINARY]    (default: the release build)
# Environment: RUNS (default 200), WARMUP (default 20), NSROOT_TEST_USER (default
# nsroot-test: when run as root, every command runs as this unprivileged user, as users do).
# RUNNER=loop (or hyperfine missing) times with a shell loop over `date +%s%N` instead of
# hyperfine; that adds the cost of forking `date` to every run.
set -eu

RUNS=${RUNS:-200}
RUNNER=${RUNNER:-hyperfine}
command -v hyperfine >/dev/null || RUNNER=loop
WARMUP=${WARMUP:-20}
. "$(dirname "$0")/common.sh"
bin=${1:-$(release_bin)}
bench_setup startup "$bin" "${TMPDIR:-/tmp}" unshare fakeroot taskset

# Fail early, with the tool's own message, if a command does not work here.
for cmd in "$nsroot true" "unshare --user --map-root-user --mount --pid --ipc --fork true" "fakeroot true"; do
    # shellcheck disable=SC2086
    as_user $cmd || { echo "startup.sh: \`$cmd\` fails as $user" >&2; exit 1; }
done

# measure PIN: prints the five medians in milliseconds: nsroot, unshare, fakeroot,
# nsroot --no-emulate and env true.
# PIN is "taskset -c 0" or empty; the pinning applies to the runner and so to its children.
measure() {
    if [ "$RUNNER" = hyperfine ]; then
        json=$work/result.json
        # shellcheck disable=SC2086
        as_user $1 hyperfine -N --style none --warmup "$WARMUP" --runs "$RUNS" \
            --export-json "$json" \
            "$nsroot true" \
            "unshare --user --map-root-user --mount --pid --ipc --fork true" \
            "fakeroot true" \
            "$nsroot --no-emulate true" \
            "env true" >/dev/null 2>"$work/hyperfine.err" ||
            { cat "$work/hyperfine.err" >&2; exit 1; }
        # hyperfine writes one "median" line per command, in command order, in seconds.
        grep -o '"median": *[0-9.eE+-]*' "$json" | sed 's/.*: *//' |
            awk '{ printf "%s%.3f", (NR > 1 ? " " : ""), $1 * 1000 } END { print "" }'
    else
        for cmd in "$nsroot true" "unshare --user --map-root-user --mount --pid --ipc --fork true" "fakeroot true" "$nsroot --no-emulate true" "env true"; do
            # shellcheck disable=SC2086
            as_user $1 sh -c '
                cmd=$1 runs=$2 warmup=$3 i=0
                while [ $i -lt "$warmup" ]; do $cmd; i=$((i + 1)); done
                i=0
                while [ $i -lt "$runs" ]; do
                    t0=$(date +%s%N); $cmd; t1=$(date +%s%N)
                    echo $((t1 - t0)); i=$((i + 1))
                done' sh "$cmd" "$RUNS" "$WARMUP" |
                sort -n | awk '{ v[NR] = $1 } END {
                    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                    printf "%.3f\n", m / 1e6 }'
        done | paste -sd' '
    fi
}

runner=hyperfine
[ "$RUNNER" = hyperfine ] || runner="shell loop (date +%s%N)"
echo "## startup: median of $RUNS runs after $WARMUP warm-up, as uid $uid ($user), runner: $runner"
echo "$(uname -sr), $(nproc) CPUs, nsroot $($nsroot --version 2>/dev/null | awk '{ print $NF }')"
echo "load average before: $(cut -d" " -f1-3 /proc/loadavg)"
printf '%-9s %10s %10s %10s %15s %16s %18s %22s %14s %15s\n' cpus "nsroot ms" "unshare ms" "fakeroot ms" \
    nsroot/unshare fakeroot/nsroot "no-emulate ms" "no-emulate/unshare" "env true ms" "fakeroot/floor"
for pin in unpinned pinned; do
    [ $pin = pinned ] && pinner="taskset -c 0" || pinner=""
    medians=$(measure "$pinner") || exit 1
    # shellcheck disable=SC2086
    set -- $medians
    printf '%-9s %10s %10s %11s %15s %16s %18s %22s %14s %15s\n' "$pin" "$1" "$2" "$3" \
        "$(awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }')" \
        "$(awk -v a="$3" -v b="$1" 'BEGIN { printf "%.1fx", a / b }')" "$4" \
        "$(awk -v a="$4" -v b="$2" 'BEGIN { printf "%.2fx", a / b }')" "$5" \
        "$(awk -v a="$3" -v b="$5" 'BEGIN { printf "%.1fx", a / b }')"
done
echo "targets: nsroot/unshare <= 1.20x, fakeroot/nsroot >= 10x (reachable only where fakeroot/floor >= 10x)"
