#!/bin/sh
# Build set-up benchmark (issue 4): median wall time of `nsroot build` of an empty recipe
# (one step, `true`: the sealed sandbox's whole set-up and tear-down, the archive of an empty
# tree, log and manifest) against a bare `sh -c true` and `nsroot true` (run mode).
#
# Usage: benches/build.sh [NSROOT_BINARY]    (default: the release build)
# Environment: RUNS (default 30), NSROOT_TEST_USER (as root, commands run as this user).
set -eu

RUNS=${RUNS:-30}
. "$(dirname "$0")/common.sh"
bin=${1:-$(release_bin)}
bench_setup buildbench "$bin" "${TMPDIR:-/tmp}" hyperfine python3
mkdir -p "$work/empty/src"
cat > "$work/empty/recipe.toml" <<'TOML'
[package]
name = "empty"
version = "1.0"
summary = "nothing: the cost of the sandbox itself"
source_date_epoch = 1700000000

[source]
path = "src"

[build]
steps = ["true"]
TOML
[ "$(id -u)" = 0 ] && chown -R "$user" "$work"

cd "$work"
as_user hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/build.json" \
    -n "sh -c true" "sh -c true" \
    -n "nsroot true" "$nsroot true" \
    -n "nsroot build (empty recipe)" "$nsroot build $work/empty/recipe.toml -o $work/out" \
    >/dev/null
echo "## build set-up (median of $RUNS runs, ms)"
python3 - "$work/build.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["results"]
base = rows[0]["median"]
for r in rows:
    print(f"{r['command']:<30} {r['median'] * 1000:8.2f} ms  {r['median'] / base:7.1f}x sh -c true")
PY
