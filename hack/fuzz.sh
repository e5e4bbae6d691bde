#!/usr/bin/env bash
# Runs every fuzz target of the module (each `func FuzzX` in a _test.go file) for the time given
# (default 1m). `make fuzz` runs them long; `make test` runs each briefly after the tests. A failure
# leaves its input under the package's testdata/fuzz/ for `go test` to replay.
set -euo pipefail
fuzztime=${1:-1m}
go=${GO:-go}
cd "$(dirname "$0")/.."
status=0
# inputs counts the inputs saved under a target's testdata/fuzz folder (0 when there is none).
inputs() { if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
while read -r file; do
  pkg=./$(dirname "$file")
  for name in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | cut -d' ' -f2); do
    echo "== fuzz $pkg $name for $fuzztime"
    corpus="$(dirname "$file")/testdata/fuzz/$name"
    before=$(inputs "$corpus")
    for attempt in 1 2; do
      if "$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$out"; then
        break
      fi
      # When -fuzztime runs out while a worker is busy, go test can report "context deadline exceeded"
      # with no failing input: the toolchain's, not the target's. That, and only that (no new input saved
      # under testdata/fuzz), is run once more; anything else fails at once.
      if [ "$attempt" = 1 ] && grep -q 'context deadline exceeded' "$out" && [ "$(inputs "$corpus")" = "$before" ]; then
        echo "== fuzz $pkg $name: the fuzz time ran out mid-run (context deadline exceeded, no failing input): once more"
        continue
      fi
      echo "FAIL: fuzz $pkg $name"
      status=1
      break
    done
  done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | sort)
exit $status
