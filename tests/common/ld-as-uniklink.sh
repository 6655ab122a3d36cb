#!/bin/sh
# Stands in for `cargo-uniklink` so the differential harness can be checked against a known
# linker: `UNIKLINK_TEST_LINKER=tests/common/ld-as-uniklink.sh cargo test --test differential`
# (and `--test differential_aarch64`) must pass, but for the known_bug_* tests, which expect
# uniklink's bugs. Takes uniklink's command line and runs GNU ld; the inputs go in one group
# because uniklink accepts archives before the objects that need them.
set -eu
[ "${1:-}" = link ] && shift
out=
entry=_start
# uniklink collects unreachable sections by default.
gc=--gc-sections
strip=
while [ $# -gt 0 ]; do
	case "$1" in
	-o) out=$2; shift 2 ;;
	--entry) entry=$2; shift 2 ;;
	--no-gc) gc=; shift ;;
	--strip) strip=-s; shift ;;
	*) break ;;
	esac
done
# The GNU ld for the inputs' machine: e_machine 183 is aarch64.
ld=ld
[ "$(od -An -j18 -N2 -tu2 "$1" | tr -d ' ')" = 183 ] && ld=aarch64-linux-gnu-ld
exec "$ld" -static $gc $strip -e "$entry" -o "$out" --start-group "$@" --end-group
