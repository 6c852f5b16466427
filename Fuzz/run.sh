#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/Sources) and runs each for SECONDS, seeded with the golden
# Flask-SSE vectors, the committed seeds (Fuzz/Corpus) and every past crash (Fuzz/Regressions).
#   usage: Fuzz/run.sh SECONDS [TARGET ...]     (default: every target)
# New corpus entries go to .build-fuzz/corpus, crashes to .build-fuzz/artifacts; exits non-zero
# when any target crashed or broke an invariant. Prints executions per target at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
# Swift's own crash backtracer fights AddressSanitizer over a crashing process: leave crashes to ASan.
export SWIFT_BACKTRACE=enable=no
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz-payload fuzz-json fuzz-query fuzz-last-event-id fuzz-http fuzz-h2 fuzz-redis-url fuzz-sentinel-reply fuzz-cluster-reply)
# make fuzz keeps its own scratch path; make test passes FUZZ_SCRATCH=.build, where the
# dependencies are already built (only the broker's modules are compiled again, instrumented).
scratch="${FUZZ_SCRATCH:-.build-fuzz}"
vectors=(Tests/FlaskSSEVectors/Fixtures/flask-sse-vectors.jsonl ${FUZZ_VECTORS:-})

build_start=$SECONDS
for target in "${targets[@]}"; do
    SSE_FUZZ=1 swift build --scratch-path "$scratch" --manifest-cache local --product "$target" || exit 1
done
echo "fuzz build: $((SECONDS - build_start)) s"
bin="$(SSE_FUZZ=1 swift build --scratch-path "$scratch" --manifest-cache local --show-bin-path)"
rm -rf "$scratch/seeds"
python3 Fuzz/seeds.py "$scratch/seeds" "${vectors[@]}"
mkdir -p "$scratch/artifacts" "$scratch/logs"

failed=()
summary=()
for target in "${targets[@]}"; do
    corpus="$scratch/corpus/$target"
    mkdir -p "$corpus" "$scratch/seeds/$target" "Fuzz/Corpus/$target" "Fuzz/Regressions/$target"
    log="$scratch/logs/$target.log"
    # The first directory receives new inputs; the others are only read.
    "$bin/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$scratch/artifacts/$target-" \
        "$corpus" "Fuzz/Regressions/$target" "Fuzz/Corpus/$target" "$scratch/seeds/$target" >"$log" 2>&1
    status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    units=$(find "$corpus" -type f | wc -l)
    if [ $status -ne 0 ]; then
        failed+=("$target")
        echo "== $target FAILED (exit $status); log $log"
        grep -E 'invariant broken|Fatal error|ERROR: |SUMMARY|Test unit written|Running: ' "$log" | head -20
    fi
    summary+=("$(printf '%-20s %12s executions in %4s s (%s exec/s), corpus %s%s' "$target" "${runs:-?}" "$seconds" "${rate:-?}" "$units" \
        "$([ $status -ne 0 ] && echo ', CRASH')")")
done
printf '%s\n' "${summary[@]}"
[ ${#failed[@]} -eq 0 ] || { echo "fuzz failures: ${failed[*]} (inputs in $scratch/artifacts)"; exit 1; }
