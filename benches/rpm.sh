#!/bin/sh
# Package writers (issue 15): `nsroot build` of a recipe that installs a tree of ~1,600 files
# (about 22 MB of text and binary fragments) as .rpm, .pkg.tar.zst and .tar.zst, against
# `rpmbuild -bb` of a spec installing the same files with one %attr line per file (what a
# spec needs for recorded owners), each with the same payload compression: zstd -19 (as
# Fedora's rpmbuild), then gzip -9 (where compression weighs less). Both copy the tree into their install root first; rpmbuild's
# __os_install_post (strip, compress man pages...) is switched off so both do only that
# copy and the package. Median wall time of RUNS runs (hyperfine).
#
# Usage: benches/rpm.sh [NSROOT_BINARY]    (default: the release build)
# Environment: RUNS (default 3), NSROOT_TEST_USER (as root, commands run as this user).
set -eu

RUNS=${RUNS:-3}
. "$(dirname "$0")/common.sh"
bin=${1:-$(release_bin)}
bench_setup rpmbench "$bin" "${BENCH_DIR:-/var/tmp}" hyperfine python3 rpmbuild
python3 - "$work/tree/src/data" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(15)
words = [''.join(rng.choice('abcdefghijklmnopqrstuvwxyz_') for _ in range(rng.randint(2, 10)))
         for _ in range(3000)]
prog = open('/usr/bin/bash', 'rb').read()
for i in range(1500):
    d = os.path.join(root, f'd{i % 30:02}')
    os.makedirs(d, exist_ok=True)
    n = int(rng.expovariate(1 / 10000))
    text = ' '.join(rng.choice(words) for _ in range(n // 6 + 1))[:n]
    with open(os.path.join(d, f'f{i}.txt'), 'w') as f:
        f.write(text)
for i in range(100):
    off = rng.randrange(0, len(prog) - 100_000)
    with open(os.path.join(root, f'bin{i}'), 'wb') as f:
        f.write(prog[off:off + rng.randint(50_000, 100_000)])
PY
cat > "$work/tree/recipe.toml" <<'TOML'
[package]
name = "bigtree"
version = "1.0"
summary = "a tree of 1,600 files"
license = "MIT"
source_date_epoch = 1700000000

[source]
path = "src"

[install]
steps = ['mkdir -p "$DESTDIR/usr/share/bigtree"', 'cp -a data/. "$DESTDIR/usr/share/bigtree/"']
TOML
cp "$work/tree/recipe.toml" "$work/tree/recipe-gzip.toml"
printf '\n[rpm]\ncompression = "gzip"\n' >> "$work/tree/recipe-gzip.toml"
{
    cat <<SPEC
Name: bigtree
Version: 1.0
Release: 1
License: MIT
Summary: a tree of 1,600 files
BuildArch: noarch

%description
The same files as the recipe's.

%install
mkdir -p %{buildroot}/usr/share/bigtree
cp -a $work/tree/src/data/. %{buildroot}/usr/share/bigtree/

%files
%dir %attr(0755,root,root) /usr/share/bigtree
SPEC
    (cd "$work/tree/src/data" && find . -mindepth 1 | LC_ALL=C sort | while read -r f; do
        if [ -d "$f" ]; then
            echo "%dir %attr(0755,root,root) /usr/share/bigtree/${f#./}"
        else
            echo "%attr(0644,root,root) /usr/share/bigtree/${f#./}"
        fi
    done)
} > "$work/bigtree.spec"
size=$(du -sb "$work/tree/src/data" | cut -f1)
[ "$(id -u)" = 0 ] && chown -R "$user" "$work"

cd "$work"
rb="rpmbuild -bb --quiet --define '_topdir $work/top' --define '__os_install_post %{nil}' \
--define '_binary_payload w19.zstdio' $work/bigtree.spec"
rbgz="rpmbuild -bb --quiet --define '_topdir $work/topgz' --define '__os_install_post %{nil}' \
--define '_binary_payload w9.gzdio' $work/bigtree.spec"
as_user hyperfine --warmup 1 --runs "$RUNS" --export-json "$work/rpm.json" \
    -n "nsroot build --format tar.zst" "$nsroot build $work/tree/recipe.toml -o $work/out --format tar.zst" \
    -n "nsroot build --format rpm" "$nsroot build $work/tree/recipe.toml -o $work/out --format rpm" \
    -n "nsroot build --format pkg.tar.zst" "$nsroot build $work/tree/recipe.toml -o $work/out --format pkg.tar.zst" \
    -n "rpmbuild -bb (%attr per file)" "$rb" \
    -n "nsroot build --format rpm, gzip" "$nsroot build $work/tree/recipe-gzip.toml -o $work/outgz --format rpm" \
    -n "rpmbuild -bb (%attr per file), gzip" "$rbgz" \
    >/dev/null
echo "## package writers: $(find "$work/tree/src/data" -mindepth 1 | wc -l) entries, $((size / 1000000)) MB (median of $RUNS runs)"
python3 - "$work/rpm.json" "$size" "$work" <<'PY'
import json, os, sys
rows = json.load(open(sys.argv[1]))["results"]
size = int(sys.argv[2])
w = sys.argv[3]
outs = {
    "tar.zst": f"{w}/out/bigtree_1.0-1_amd64.tar.zst",
    "rpm, gzip": f"{w}/outgz/bigtree_1.0-1_amd64.rpm",
    "--format rpm": f"{w}/out/bigtree_1.0-1_amd64.rpm",
    "pkg.tar.zst": f"{w}/out/bigtree_1.0-1_amd64.pkg.tar.zst",
    "file), gzip": f"{w}/topgz/RPMS/noarch/bigtree-1.0-1.noarch.rpm",
    "rpmbuild": f"{w}/top/RPMS/noarch/bigtree-1.0-1.noarch.rpm",
}
for r in rows:
    out = next((p for k, p in outs.items() if k in r["command"]), None)
    got = os.path.getsize(out) if out and os.path.exists(out) else 0
    print(f"{r['command']:<36} {r['median']:7.2f} s  {size / r['median'] / 1e6:6.1f} MB/s  "
          f"{got / 1e6:6.2f} MB output")
PY
