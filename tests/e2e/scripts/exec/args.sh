#!/bin/sh
# Writes each argument it got into args.bin, NUL-terminated; with FAIL=1 (the last argument)
# it says why on stderr and exits 3.
for arg in "$@"; do printf '%s\0' "$arg"; done > args.bin
for last in "$@"; do :; done
if [ "$last" = 1 ]; then
  echo "starting the solver" >&2
  echo "solver diverged at step 7" >&2
  exit 3
fi
