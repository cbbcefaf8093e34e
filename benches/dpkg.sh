#!/bin/sh
# dpkg-buildpackage benchmark (issue 18): `dpkg-buildpackage -b -us -uc --rules-requires-root
# -r<cmd>` on real Debian source packages, alternating fakeroot, nsroot and (for packages
# with no foreign owners, NOEMULATE="pkg ...") `nsroot --no-emulate`, RUNS runs each (default
# 2). The figure is the time spent inside the gain-root command (summed over its calls in one
# build), the median per tool; the .debs of every run are compared with fakeroot's by sha256.
#
# Usage: benches/dpkg.sh [NSROOT_BINARY] DSC...   (each a .dsc downloaded with
# `apt-get source --download-only PKG`; build dependencies must be installed)
# As root, the builds run as the unprivileged NSROOT_TEST_USER (default nsroot-test).
set -eu
. "$(dirname "$0")/common.sh"
case ${1:-} in *.dsc) bin=$(release_bin) ;; *) bin=$1; shift ;; esac
RUNS=${RUNS:-2}
NOEMULATE=${NOEMULATE:-hello}
bench_setup dpkg "$bin" "${BENCH_DIR:-${TMPDIR:-/var/tmp}}" fakeroot dpkg-buildpackage dpkg-source
for dsc in "$@"; do cp "$(dirname "$dsc")"/"$(basename "$dsc" .dsc)"* "$(dirname "$dsc")"/*orig* "$work/" 2>/dev/null || true; done
chmod -R a+rX "$work"
cat > "$work/timeit" <<'T'
#!/bin/sh
# The gain-root command's time, appended to $TIMES in nanoseconds.
t0=$(date +%s%N); "$@"; st=$?; t1=$(date +%s%N)
echo $((t1 - t0)) >> "$TIMES"
exit $st
T
chmod 755 "$work/timeit"
echo "## dpkg-buildpackage: gain-root seconds, median of $RUNS runs, as uid $uid ($user)"
echo "$(uname -sr), $(nproc) CPUs, $(fakeroot --version 2>/dev/null | head -n 1)"
printf '%-12s %-22s %10s %10s  %s\n' package tool "median s" "vs fakeroot" ".debs vs fakeroot"
for dsc in "$@"; do
    name=$(basename "$dsc" .dsc)
    pkg=${name%%_*}
    tools="fakeroot|fakeroot
nsroot|$nsroot"
    case " $NOEMULATE " in *" $pkg "*) tools="$tools
nsroot --no-emulate|$nsroot --no-emulate" ;; esac
    run=1
    while [ $run -le "$RUNS" ]; do
        echo "$tools" | while IFS='|' read -r label cmd; do
            dir=$work/$pkg.$run.$(printf %s "$label" | tr -c 'a-z' _)
            as_user sh -c 'mkdir "$1" && cd "$1" && dpkg-source -x "$2" src >/dev/null 2>&1' sh \
                "$dir" "$work/$name.dsc"
            : > "$dir/times" && chmod 666 "$dir/times"
            (cd "$dir/src" && as_user env TIMES="$dir/times" dpkg-buildpackage -b -us -uc \
                --rules-requires-root -r"$work/timeit $cmd" >"$dir/log" 2>&1) ||
                { echo "$pkg: $label failed, see $dir/log" >&2; tail -5 "$dir/log" >&2; }
            awk '{ s += $1 } END { printf "%.3f\n", s / 1e9 }' "$dir/times" > "$dir/secs"
            (cd "$dir" && sha256sum ./*.deb 2>/dev/null | sed 's| \./| |' | sort) > "$dir/debs"
        done
        run=$((run + 1))
    done
    echo "$tools" | while IFS='|' read -r label cmd; do
        tag=$(printf %s "$label" | tr -c 'a-z' _)
        med=$(cat "$work/$pkg".*."$tag"/secs | sort -n | awk '{ v[NR] = $1 } END {
            printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
        fk=$(cat "$work/$pkg".*.fakeroot/secs | sort -n | awk '{ v[NR] = $1 } END {
            printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
        same=identical
        for d in "$work/$pkg".*."$tag"; do
            [ -s "$d/debs" ] || same="NO .deb"
            cmp -s "$d/debs" "$work/$pkg.1.fakeroot/debs" || same=DIFFERENT
        done
        printf '%-12s %-22s %10s %10s  %s\n' "$pkg" "$label" "$med" \
            "$(awk -v a="$med" -v b="$fk" 'BEGIN { printf "%.2fx", (b > 0) ? a / b : 0 }')" "$same"
        echo "  runs: $(cat "$work/$pkg".*."$tag"/secs | tr '\n' ' ')"
    done
done
