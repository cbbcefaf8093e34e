#!/bin/sh
# `nsroot diff` on archives with many entries (issue 16): peak RSS and seconds, beside GNU
# tar listing both archives and diff(1) comparing the listings (what a user would do without
# nsroot). Three cases: 100,000 empty entries against a one-entry archive (a 99,999-line
# report), against a variant with one mode changed (one line), and 100,000 entries with
# 3,000-byte names against themselves (no report).
#
# Usage: benches/diff.sh [BINARY]   (python3 makes the archives; /usr/bin/time measures)
set -eu
. "$(dirname "$0")/common.sh"
bin=${1:-$(release_bin)}
bench_setup diff "$bin" "${TMPDIR:-/tmp}" python3 /usr/bin/time tar
python3 - "$work" <<'PY'
import io, sys, tarfile
work = sys.argv[1]
def make(name, n, long=False, changed=None):
    with tarfile.open(f"{work}/{name}", "w:gz", format=tarfile.PAX_FORMAT) as t:
        for i in range(n):
            if long:
                path = "/".join([f"d{i:07d}" + "x" * 92] * 29) + f"/f{i:07d}"
                path = path[:3000]
            else:
                path = f"./f{i:06d}"
            info = tarfile.TarInfo(path)
            info.mtime = 1700000000
            info.mode = 0o600 if i == changed else 0o644
            t.addfile(info, io.BytesIO(b""))
make("many.tar.gz", 100000)
make("one.tar.gz", 1)
make("many1.tar.gz", 100000, changed=5000)
make("long.tar.gz", 100000, long=True)
PY
chmod 644 "$work"/*.tar.gz
echo "## diff: peak RSS (MiB) and seconds, nsroot diff vs tar -tvf both | diff"
printf '%-28s %12s %9s %12s %9s %8s\n' case nsroot_MiB nsroot_s tar_MiB tar_s s_ratio
for pair in "many.tar.gz one.tar.gz" "many.tar.gz many1.tar.gz" "long.tar.gz long.tar.gz"; do
    set -- $pair
    cd "$work"
    as_user /usr/bin/time -f '%M %e' -o n.time "$nsroot" diff "$1" "$2" >/dev/null || true
    as_user /usr/bin/time -f '%M %e' -o t.time sh -c \
        "tar -tvf $1 > a.lst; tar -tvf $2 > b.lst; diff a.lst b.lst > /dev/null" || true
    n=$(tail -1 n.time) t=$(tail -1 t.time)
    echo "$1 $2 $n $t" | awk '{printf "%-28s %12.1f %9.2f %12.1f %9.2f %8.2f\n",
        $1" "$2, $3/1024, $4, $5/1024, $6, ($6 > 0 ? $4/$6 : 0)}'
done
