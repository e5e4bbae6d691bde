#!/usr/bin/env bash
# Runs every fuzz target of the module (each `func FuzzX` in a _test.go file) for the time given
# (default 1m). `make fuzz` runs them long; `make test` runs each briefly after the tests. A failure
# leaves its input under the package's testdata/fuzz/ for `go test` to replay.
set -euo pipefail
fuzztime=${1:-1m}
go=${GO:-go}
cd "$(dirname "$0")/.."
status=0
while read -r file; do
  pkg=./$(dirname "$file")
  for name in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | cut -d' ' -f2); do
    echo "== fuzz $pkg $name for $fuzztime"
    if ! "$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"; then
      echo "FAIL: fuzz $pkg $name"
      status=1
    fi
  done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | sort)
exit $status
