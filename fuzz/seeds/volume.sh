#!/usr/bin/env bash
# Rebuilds the `volume` target's seeds, fuzz/corpus/volume/: littlefs disk images made by
# `cargo uniklink disk` (the stable build of this checkout), each the smallest disk (64 KiB,
# 16 blocks) with its trailing zeros cut, which the target pads back. Run by hand after a
# change to the disk format; the images are committed. The same commands make the same
# images (littlefs writes no times, and its allocator starts from a checksum of the volume).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$root/fuzz/corpus/volume
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

disk() { (cd "$root" && cargo uniklink disk "$@"); }
# An image as a seed: without the zeros after its last written byte.
keep() { perl -0777 -pe 's/\0+\z//' "$work/$1.img" >"$out/$1"; }

rm -rf "$out"
mkdir -p "$out"

# A freshly formatted volume: the superblock pair and an empty root.
disk create "$work/empty.img" --size 64KiB
keep empty

# A small tree: nested directories (each its own metadata pair), files inline in their
# directory's metadata and one in a block of its own, an empty file and an empty directory,
# and a file written twice (its first version superseded in the same metadata).
mkdir -p tree/etc/conf.d tree/var/empty
printf 'port = 80\n' >tree/etc/conf.d/10-port.toml
printf 'name = "app"\n' >tree/etc/app.conf
: >tree/etc/empty
seq 1 200 >tree/numbers
disk create "$work/tree.img" --size 64KiB
disk put -r "$work/tree.img" "$work/tree" /
printf 'name = "app2"\n' >app.conf
disk put "$work/tree.img" "$work/app.conf" /etc/app.conf
keep tree

# One file of several blocks: littlefs links them in a skip list (CTZ).
seq 1 3000 >big.txt
disk create "$work/big.img" --size 64KiB
disk put "$work/big.img" "$work/big.txt" /big.txt
keep big

ls -l "$out"
