#!/bin/sh
# Ownership benchmark (issue 5): over a fresh tree of ~50k files, a stat-heavy workload
# (`find -printf '%u %g %m'`, then `tar -cf /dev/null`) and a chown-heavy one (`chown -R 1:1`),
# each bare, under fakeroot, under nsroot and under `nsroot --no-emulate` (when nsroot has that
# flag), pinned to one CPU (`taskset -c 0`) and unpinned, as ratios to bare.
# Targets: with emulation, overhead at most half of fakeroot's; without it, within 3% of bare.
#
# Usage: benches/ownership.sh [NSROOT_BINARY]    (default: target/release/nsroot)
# Environment: FILES (default 50000), RUNS (default 5), WARMUP (default 1), BENCH_DIR (where
# the tree goes; default $TMPDIR or /var/tmp), NSROOT_TEST_USER (default nsroot-test: when run
# as root, every command runs as this unprivileged user), RUNNER=loop to time with a shell
# loop instead of hyperfine.
#
# Bare, an unprivileged user may not give files away, so its chown row runs
# `chown -R <own uid>:<own gid>`: the same walk and the same chown calls, which the kernel
# accepts. A session that cannot chown to 1:1 (nsroot before ownership emulation, or with
# --no-emulate) is reported as failing, not timed.
set -eu

FILES=${FILES:-50000}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
RUNNER=${RUNNER:-hyperfine}
command -v hyperfine >/dev/null || RUNNER=loop
bin=${1:-target/release/nsroot}
[ -x "$bin" ] || { echo "ownership.sh: no nsroot binary at $bin (cargo build --release)" >&2; exit 1; }
for tool in fakeroot taskset find tar; do
    command -v "$tool" >/dev/null || { echo "ownership.sh: $tool is not installed" >&2; exit 1; }
done

# A fresh directory that nothing was deleted from (KERNEL-NOTES.md item 20).
work=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/var/tmp}}/nsroot-ownership.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
cp "$bin" "$work/nsroot"
chmod 755 "$work/nsroot"
nsroot=$work/nsroot

if [ "$(id -u)" = 0 ]; then
    user=${NSROOT_TEST_USER:-nsroot-test}
    id -u "$user" >/dev/null 2>&1 || {
        echo "ownership.sh: running as root needs the unprivileged user $user (useradd -m $user)" >&2
        exit 1
    }
    chown "$user" "$work"
    as_user() { setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"; }
else
    user=$(id -un)
    as_user() { "$@"; }
fi
uid=$(as_user id -u)
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
cat > "$work/chown.sh" <<'CHOWN'
cd "$(dirname "$0")" && chown -R "$1" tree
CHOWN
chmod 644 "$work/stat.sh" "$work/chown.sh"

has_no_emulate=no
"$nsroot" --help 2>/dev/null | grep -q -- '--no-emulate' && has_no_emulate=yes

# The sessions, one a line: a label, then the command prefix (empty for bare).
sessions="bare|
fakeroot|fakeroot
nsroot|$nsroot"
[ $has_no_emulate = yes ] && sessions="$sessions
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
    "nsroot --no-emulate: $([ $has_no_emulate = yes ] && echo available || echo 'not available (no such flag yet)')"
printf '%s\n' "stat:  find tree -printf '%u %g %m\\n' >/dev/null && tar -cf /dev/null tree"
echo "chown: chown -R 1:1 tree  (bare: chown -R $uid:$gid tree)"
printf '%-6s %-9s %-20s %12s %10s\n' workload cpus session "median ms" "vs bare"
for workload in stat chown; do
    for pin in unpinned pinned; do
        [ $pin = pinned ] && pinner="taskset -c 0" || pinner=""
        bare_ms=
        echo "$sessions" | while IFS='|' read -r label prefix; do
            case $workload in
                stat) args="sh $work/stat.sh" ;;
                chown) [ "$label" = bare ] && args="sh $work/chown.sh $uid:$gid" ||
                    args="sh $work/chown.sh 1:1" ;;
            esac
            # One untimed run first: a session that fails is reported, not timed.
            # shellcheck disable=SC2086
            if ! err=$(as_user $prefix $args 2>&1 >/dev/null); then
                printf '%-6s %-9s %-20s %12s %10s  %s\n' "$workload" "$pin" "$label" fails - \
                    "$(printf '%s\n' "$err" | head -n 1)"
                continue
            fi
            # shellcheck disable=SC2086
            ms=$(median_ms "$pinner" $prefix $args)
            [ "$label" = bare ] && bare_ms=$ms
            printf '%-6s %-9s %-20s %12s %10s\n' "$workload" "$pin" "$label" "$ms" \
                "$(awk -v a="$ms" -v b="$bare_ms" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')"
        done
    done
done
echo "targets: nsroot overhead (ratio - 1) at most half of fakeroot's; nsroot --no-emulate <= 1.03x"
