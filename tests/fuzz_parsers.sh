#!/usr/bin/env bash
# A short libFuzzer run over the parsers users type into: model specs, and `ringtrain train`'s flags and
# --config files. The targets come from the sanitized build (build_sanitized.sh: clang, coverage,
# AddressSanitizer, UndefinedBehaviorSanitizer); each runs SECONDS from the seed corpus in tests/fuzz/corpus
# (copied: what a run adds stays in the build directory). A crash, a hang (over 5 s an input), a sanitizer
# report, a leak, or an exception other than the parsers' own errors fails the test, and libFuzzer leaves the
# input that did it in BUILD_DIR.
# usage: fuzz_parsers.sh SOURCE_DIR BUILD_DIR SECONDS
set -euo pipefail
src=$1 dir=$2 seconds=$3
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
for target in model_spec train_config; do
  corpus="$dir/corpus/$target"
  mkdir -p "$corpus"
  cp -n "$src/tests/fuzz/corpus/$target/"* "$corpus/"
  (cd "$dir" && "./tests/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=5 -max_len=512 -print_final_stats=1 \
     "$corpus" >/dev/null 2>"fuzz_$target.log") || { tail -40 "$dir/fuzz_$target.log"; exit 1; }
  echo "fuzz_$target: $(awk '/stat::number_of_executed_units/ {print $2}' "$dir/fuzz_$target.log") inputs in" \
    "$seconds s, no finding"
done
