# Shared set-up of the benchmark scripts (sourced, POSIX sh).

# release_bin [ROOT]: the release binary's path in the checkout at ROOT (default: the parent
# of the running script's directory). .cargo/config.toml builds for the host's triple, so it
# is target/<triple>/release/nsroot (target/release/nsroot from a build that overrode it).
release_bin() {
    root=$(cd "${1:-$(dirname "$0")/..}" && pwd)
    triple=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
    for b in "$root/target/$triple/release/nsroot" "$root/target/release/nsroot"; do
        [ -x "$b" ] && { echo "$b"; return 0; }
    done
    echo "$root/target/$triple/release/nsroot"
}
#
# bench_setup NAME BINARY WORKBASE TOOL...: checks BINARY and the TOOLs, makes a fresh work
# directory under WORKBASE (removed on exit) holding a world-readable copy of nsroot (the
# checkout may sit where the test user cannot enter), and defines `as_user` (as root: run as
# the unprivileged NSROOT_TEST_USER, default nsroot-test; otherwise as the caller). Sets
# $work, $nsroot, $user and $uid.
bench_setup() {
    name=$1 bin=$2 base=$3
    shift 3
    [ -x "$bin" ] || { echo "$name: no nsroot binary at $bin (cargo build --release)" >&2; exit 1; }
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$name: $tool is not installed" >&2; exit 1; }
    done
    work=$(mktemp -d "$base/nsroot-$name.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    chmod 755 "$work"
    cp "$bin" "$work/nsroot"
    chmod 755 "$work/nsroot"
    nsroot=$work/nsroot
    if [ "$(id -u)" = 0 ]; then
        user=${NSROOT_TEST_USER:-nsroot-test}
        id -u "$user" >/dev/null 2>&1 || {
            echo "$name: running as root needs the unprivileged user $user (useradd -m $user)" >&2
            exit 1
        }
        chown "$user" "$work"
        as_user() { setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"; }
    else
        user=$(id -un)
        as_user() { "$@"; }
    fi
    uid=$(as_user id -u)
}
