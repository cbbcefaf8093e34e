#!/usr/bin/env bash
# Benchmark: `nsroot pack` against `tar | gzip/pigz/zstd`, side by side in one run.
#
# Usage: benches/pack.sh [RUNS]        (default 3 runs per command; the median is reported)
# Env:   NSROOT=path/to/nsroot (default: cargo build --release), BENCH_DIR=where to generate.
#
# Three trees are generated in a fresh directory (KF-EXT4-NOJOURNAL (docs/kernel-facts.md): no big rm -rf nearby):
#   small: ~50k small text-like files in nested directories
#   bins:  20,000 binary fragments of 16-512 bytes cut from the host's programs
#   large: a few large files (text-like and binary)
# gzip runs at -1, -3 and -6 beside nsroot's -L 1, 3 and 6, which are never larger than
# gzip's at the same level: compare speeds at equal size row against row.
# Reported per command: median wall time, MB/s of uncompressed tar, output size, peak RSS
# (GNU time's %M: the largest process of the pipeline), and ratios to `tar | gzip -6`.
set -euo pipefail

RUNS=${1:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
for tool in tar gzip pigz zstd python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install ${tool##*/})" >&2; exit 1; }
done
if [[ -z "${NSROOT:-}" ]]; then
    (cd "$here" && cargo build --release --quiet)
    NSROOT=$(. "$here/benches/common.sh" && release_bin "$here")
fi
base=$(mktemp -d "${BENCH_DIR:-/var/tmp}/nsroot-bench.XXXXXX")
trap 'rm -rf "$base"' EXIT

echo "generating trees in $base ..." >&2
python3 - "$base" <<'PY'
import os, random, sys
base = sys.argv[1]
rng = random.Random(42)
words = [''.join(rng.choice('abcdefghijklmnopqrstuvwxyz_') for _ in range(rng.randint(2, 10)))
         for _ in range(4000)]
def text(n):
    out, size = [], 0
    while size < n:
        line = ' '.join(rng.choice(words) for _ in range(rng.randint(3, 12))) + ';\n'
        out.append(line); size += len(line)
    return ''.join(out)[:n].encode()
small = os.path.join(base, 'small')
for i in range(50_000):
    d = os.path.join(small, f'd{i % 50:02}', f'e{i % 977:03}')
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f'f{i}.c'), 'wb') as f:
        f.write(text(int(rng.expovariate(1 / 3000))))
large = os.path.join(base, 'large')
os.makedirs(large)
chunk = text(8 << 20)
for name in ('a.txt', 'b.txt'):
    with open(os.path.join(large, name), 'wb') as f:
        for _ in range(12):
            f.write(chunk)
            chunk = chunk[1:] + chunk[:1]
PY
python3 - "$base" <<'PY'
import os, random, sys
rng = random.Random(7)
prog = open('/usr/bin/bash', 'rb').read()
d = os.path.join(sys.argv[1], 'bins')
os.makedirs(d)
for i in range(20_000):
    n = rng.randint(16, 512); at = rng.randrange(len(prog) - n)
    with open(os.path.join(d, f'b{i:05}'), 'wb') as f:
        f.write(prog[at:at + n])
PY
# Real machine code for the less compressible part: the host's binaries, 64 MiB of them.
find /usr/bin /usr/lib -type f -size +100k 2>/dev/null | sort | xargs cat 2>/dev/null \
    | head -c $((64 << 20)) > "$base/large/c.bin" || true

out=$base/out
mkdir "$out"
results=$base/results
: > "$results"

# run TREE NAME CMD: runs CMD (with $T the tree and $O the output) RUNS times.
run() {
    local tree=$1 name=$2 cmd=$3 i
    for i in $(seq "$RUNS"); do
        rm -f "$out/o"
        T=$base/$tree O=$out/o /usr/bin/time -f '%e %M' -o "$out/time" bash -c "$cmd"
        read -r secs rss < "$out/time"
        printf '%s\t%s\t%s\t%s\t%s\n' "$tree" "$name" "$secs" "$rss" "$(stat -c %s "$out/o")" >> "$results"
    done
}

ref='tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$T" -cf - .'
for tree in small bins large; do
    # Warm the page cache so every command reads from memory.
    tar -C "$base/$tree" -cf - . | cat > /dev/null
    tar_bytes=$("$NSROOT" pack "$base/$tree" -o - | wc -c)
    printf '%s\ttarbytes\t%s\n' "$tree" "$tar_bytes" >> "$results"
    run "$tree" "tar | gzip -6"        "$ref | gzip -6 > \$O"
    run "$tree" "tar | gzip -3"        "$ref | gzip -3 > \$O"
    run "$tree" "tar | gzip -1"        "$ref | gzip -1 > \$O"
    run "$tree" "tar | pigz -6 (2 thr)" "$ref | pigz -6 -p 2 > \$O"
    run "$tree" "tar | zstd -3 -T0"    "$ref | zstd -q -3 -T0 > \$O"
    run "$tree" "nsroot gz -j1"        "SOURCE_DATE_EPOCH=0 $NSROOT pack \$T -o \$O --format tar.gz -j 1"
    run "$tree" "nsroot gz -L3 -j1"    "SOURCE_DATE_EPOCH=0 $NSROOT pack \$T -o \$O --format tar.gz -L 3 -j 1"
    run "$tree" "nsroot gz -L1 -j1"    "SOURCE_DATE_EPOCH=0 $NSROOT pack \$T -o \$O --format tar.gz -L 1 -j 1"
    run "$tree" "nsroot gz -j2"        "SOURCE_DATE_EPOCH=0 $NSROOT pack \$T -o \$O --format tar.gz -j 2"
    run "$tree" "nsroot zst -j1"       "SOURCE_DATE_EPOCH=0 $NSROOT pack \$T -o \$O --format tar.zst -j 1"
    run "$tree" "nsroot zst -j2"       "SOURCE_DATE_EPOCH=0 $NSROOT pack \$T -o \$O --format tar.zst -j 2"
done

python3 - "$results" "$RUNS" <<'PY'
import sys, statistics
rows, tarbytes, order = {}, {}, []
for line in open(sys.argv[1]):
    f = line.rstrip('\n').split('\t')
    if f[1] == 'tarbytes':
        tarbytes[f[0]] = int(f[2]); continue
    key = (f[0], f[1])
    if key not in rows: order.append(key); rows[key] = []
    rows[key].append((float(f[2]), int(f[3]), int(f[4])))
print(f"runs per command: {sys.argv[2]} (median); CPUs: {__import__('os').cpu_count()}")
hdr = f"{'tree':6} {'command':22} {'secs':>6} {'MB/s':>7} {'out MiB':>8} {'size/gzip':>9} {'speed/gzip':>10} {'RSS MiB':>8}"
print(hdr); print('-' * len(hdr))
for tree in ('small', 'bins', 'large'):
    ref = rows[(tree, 'tar | gzip -6')]
    ref_t = statistics.median(r[0] for r in ref); ref_s = ref[0][2]
    print(f"{tree}: uncompressed tar {tarbytes[tree] / 1e6:.1f} MB")
    for key in [k for k in order if k[0] == tree]:
        rs = rows[key]
        t = statistics.median(r[0] for r in rs)
        rss = max(r[1] for r in rs) / 1024
        size = rs[0][2]
        mbs = tarbytes[tree] / 1e6 / t if t > 0 else float('inf')
        print(f"{tree:6} {key[1]:22} {t:6.2f} {mbs:7.1f} {size / 2**20:8.2f} {size / ref_s:9.3f} {ref_t / t:9.2f}x {rss:8.1f}")
PY
