#!/bin/sh
# Ownership benchmark (issue 5): over a fresh tree of ~50k files, a stat-heavy workload
# (`find -printf '%u %g %m'`, then `tar -cf /dev/null`), the same with numeric owners
# (`find -printf '%U %G %m'`: no user-name lookups, one stat per file) and a chown-heavy one
# (`chown -R 1:1`), each bare, under fakeroot, under nsroot with an empty store, under nsroot
# with recorded owners (`-i` of a state file holding 100 records, and of one recording every
# file), the same on the seccomp path alone (`NSROOT_FASTPATH=0`: no preload library, issue
# 18's "before"), and under `nsroot --no-emulate`, pinned to one CPU (`taskset -c 0`) and unpinned, as ratios to bare.
# Targets: with emulation, overhead at most half of fakeroot's; without it, within 3% of bare.
#
# Usage: benches/ownership.sh [NSROOT_BINARY]    (default: the release build)
# Environment: FILES (default 50000), RUNS (default 5), WARMUP (default 1), BENCH_DIR (where
# the tree goes; default $TMPDIR or /var/tmp), NSROOT_TEST_USER (default nsroot-test: when run
# as root, every command runs as this unprivileged user), RUNNER=loop to time with a shell
# loop instead of hyperfine, WORKLOADS (default "stat stat-numeric chown").
#
# Bare, an unprivileged user may not give files away, so its chown row runs
# `chown -R <own uid>:<own gid>`: the same walk and the same chown calls, which the kernel
# accepts. A session that cannot chown to 1:1 (`nsroot --no-emulate`, a single-id user
# namespace) is reported as failing, not timed.
#
# Reading the stat row: GNU find looks up the owner's name for every file (`%u %g`), and
# glibc's NSS code stats /etc/nsswitch.conf and fstats /etc/passwd and /etc/group each time:
# five stat calls per file, of which fakeroot (an LD_PRELOAD library) sees only find's own,
# while a seccomp filter sees all five. stat-numeric has one stat per file for everyone.
set -eu

FILES=${FILES:-50000}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
RUNNER=${RUNNER:-hyperfine}
WORKLOADS=${WORKLOADS:-stat stat-numeric chown}
command -v hyperfine >/dev/null || RUNNER=loop
# A fresh directory that nothing was deleted from (KF-EXT4-NOJOURNAL (docs/kernel-facts.md)).
. "$(dirname "$0")/common.sh"
bin=${1:-$(release_bin)}
bench_setup ownership "$bin" "${BENCH_DIR:-${TMPDIR:-/var/tmp}}" fakeroot taskset find tar
gid=$(as_user id -g)

# The tree: 100 directories of FILES/100 small files each, made by the user.
t0=$(date +%s%N)
as_user sh -c '
    cd "$1" && mkdir tree && cd tree
    per=$(($2 / 100)) d=0
    while [ $d -lt 100 ]; do
        mkdir "d$d" && (cd "d$d" && seq -f "f%05g" 1 "$per" | xargs touch && echo data > f00001)
        d=$((d + 1))
    done' sh "$work" "$FILES"
t1=$(date +%s%N)
count=$(find "$work/tree" | wc -l)

# The workloads, as scripts every session runs the same way: `sh SCRIPT`.
cat > "$work/stat.sh" <<STAT
cd "$work" && find tree -printf '%u %g %m\n' >/dev/null && tar -cf /dev/null tree
STAT
cat > "$work/stat-numeric.sh" <<STAT
cd "$work" && find tree -printf '%U %G %m\n' >/dev/null && tar --numeric-owner -cf /dev/null tree
STAT
cat > "$work/chown.sh" <<'CHOWN'
cd "$(dirname "$0")" && chown -R "$1" tree
CHOWN
chmod 644 "$work/stat.sh" "$work/stat-numeric.sh" "$work/chown.sh"

# Recorded owners for the "records" rows: one file a directory chowned, saved with -s.
as_user sh -c 'cd "$1" && "$2" -s state sh -c "chown 1:1 tree/d*/f00002"' sh "$work" "$nsroot" ||
    { echo "ownership.sh: cannot record owners with $nsroot -s" >&2; exit 1; }
records=$(as_user "$nsroot" -i "$work/state" sh -c "cd '$work' && find tree -user 1 | wc -l")
# And every file recorded (issue 18: records must not slow the stats of other files, nor
# these): the whole tree chowned, saved with -s.
as_user sh -c 'cd "$1" && "$2" -s state-all sh -c "chown -R 1:1 tree"' sh "$work" "$nsroot" ||
    { echo "ownership.sh: cannot record owners with $nsroot -s" >&2; exit 1; }

# The sessions, one a line: a label, then the command prefix (empty for bare).
sessions="bare|
fakeroot|fakeroot
nsroot (empty store)|$nsroot
nsroot -i ($records recs)|$nsroot -i $work/state
nsroot -i (all recs)|$nsroot -i $work/state-all
seccomp only, empty|env NSROOT_FASTPATH=0 $nsroot
seccomp only, $records recs|env NSROOT_FASTPATH=0 $nsroot -i $work/state
nsroot --no-emulate|$nsroot --no-emulate"

# median_ms PIN CMD...: the median wall time of CMD in milliseconds, as the user.
median_ms() {
    pin=$1
    shift
    if [ "$RUNNER" = hyperfine ]; then
        json=$work/result.json
        # shellcheck disable=SC2086
        as_user $pin hyperfine -N --style none --warmup "$WARMUP" --runs "$RUNS" \
            --export-json "$json" "$*" >/dev/null 2>"$work/hyperfine.err" ||
            { cat "$work/hyperfine.err" >&2; exit 1; }
        grep -o '"median": *[0-9.eE+-]*' "$json" | sed 's/.*: *//' |
            awk '{ printf "%.1f\n", $1 * 1000 }'
    else
        # shellcheck disable=SC2086
        as_user $pin sh -c '
            runs=$1 warmup=$2 i=0
            shift 2
            while [ $i -lt "$warmup" ]; do "$@" >/dev/null; i=$((i + 1)); done
            i=0
            while [ $i -lt "$runs" ]; do
                t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N)
                echo $((t1 - t0)); i=$((i + 1))
            done' sh "$RUNS" "$WARMUP" "$@" |
            sort -n | awk '{ v[NR] = $1 } END {
                m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                printf "%.1f\n", m / 1e6 }'
    fi
}

echo "## ownership: $count entries ($(( (t1 - t0) / 1000000 )) ms to create) in $work"
echo "median of $RUNS runs after $WARMUP warm-up, as uid $uid ($user), runner: $RUNNER"
echo "load average before: $(cut -d" " -f1-3 /proc/loadavg)"
echo "$(uname -sr), $(nproc) CPUs, nsroot $($nsroot --version 2>/dev/null | awk '{ print $NF }')," \
    "$(fakeroot --version 2>/dev/null | head -n 1)"
printf '%s\n' "stat:         find tree -printf '%u %g %m\\n' >/dev/null && tar -cf /dev/null tree"
printf '%s\n' "stat-numeric: find tree -printf '%U %G %m\\n' >/dev/null && tar --numeric-owner -cf /dev/null tree"
echo "chown:        chown -R 1:1 tree  (bare: chown -R $uid:$gid tree)"
printf '%-12s %-9s %-22s %10s %8s %10s\n' workload cpus session "median ms" "vs bare" overhead
for workload in $WORKLOADS; do
    for pin in unpinned pinned; do
        [ $pin = pinned ] && pinner="taskset -c 0" || pinner=""
        bare_ms=
        fk_over=
        echo "$sessions" | while IFS='|' read -r label prefix; do
            case $workload in
                stat*) args="sh $work/$workload.sh" ;;
                chown) [ "$label" = bare ] && args="sh $work/chown.sh $uid:$gid" ||
                    args="sh $work/chown.sh 1:1" ;;
            esac
            # One untimed run first: a session that fails is reported, not timed.
            # shellcheck disable=SC2086
            if ! err=$(as_user $prefix $args 2>&1 >/dev/null); then
                printf '%-12s %-9s %-22s %10s %8s %10s  %s\n' "$workload" "$pin" "$label" fails - - \
                    "$(printf '%s\n' "$err" | head -n 1)"
                continue
            fi
            # shellcheck disable=SC2086
            ms=$(median_ms "$pinner" $prefix $args)
            [ "$label" = bare ] && bare_ms=$ms
            over=$(awk -v a="$ms" -v b="$bare_ms" 'BEGIN { if (b > 0) printf "%.2f", a / b - 1; else print "-" }')
            [ "$label" = fakeroot ] && fk_over=$over
            # Against the targets: emulation within half of fakeroot's overhead, --no-emulate 3%.
            verdict=
            case $label in
                nsroot\ --no-emulate) verdict=$(awk -v o="$over" 'BEGIN { print (o <= 0.03) ? "meets" : "misses" }') ;;
                nsroot*|seccomp*) [ -n "$fk_over" ] &&
                    verdict=$(awk -v o="$over" -v f="$fk_over" 'BEGIN { printf "%s (%.2f of fakeroot overhead)", (o <= f / 2) ? "meets" : "misses", (f > 0) ? o / f : 0 }') ;;
            esac
            printf '%-12s %-9s %-22s %10s %8s %10s  %s\n' "$workload" "$pin" "$label" "$ms" \
                "$(awk -v a="$ms" -v b="$bare_ms" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')" \
                "$over" "$verdict"
        done
    done
done
echo "targets: nsroot overhead (ratio - 1) at most half of fakeroot's; nsroot --no-emulate <= 1.03x"
