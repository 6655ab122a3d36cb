#!/usr/bin/env bash
# Rebuilds the committed seed objects and the mini libc archive the `link` target links
# against. Run by hand after editing src/; the outputs are committed so fuzzing needs no C
# compiler.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
flags=(-c -O1 -ffreestanding -fno-pic -fno-pie -fno-stack-protector -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables)
for name in start memcpy strlen syscall; do
    gcc "${flags[@]}" "src/$name.c" -o "$name.o"
done
rm -f libmini.a
ar rcs libmini.a memcpy.o strlen.o syscall.o
