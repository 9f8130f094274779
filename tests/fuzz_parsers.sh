#!/usr/bin/env bash
# A short libFuzzer run over the parsers users type into: model specs and `ringtrain train`'s flags and
# --config files. Builds the fuzz targets with clang (-DRINGTRAIN_FUZZ=ON: coverage, AddressSanitizer,
# UndefinedBehaviorSanitizer), then runs each for SECONDS from the seed corpus in tests/fuzz/corpus (copied:
# what the run finds stays in the build directory). A crash, a sanitizer report, a leak or an exception
# other than the parsers' own errors fails the test, and libFuzzer leaves the input that did it in BUILD_DIR.
# usage: fuzz_parsers.sh SOURCE_DIR BUILD_DIR SECONDS
set -euo pipefail
src=$1 dir=$2 seconds=$3
cmake -S "$src" -B "$dir" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DRINGTRAIN_CUDA=OFF \
  -DRINGTRAIN_FUZZ=ON -DRINGTRAIN_NATIVE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" --target fuzz_model_spec fuzz_train_config -j2 >/dev/null
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
for target in model_spec train_config; do
  corpus="$dir/corpus/$target"
  mkdir -p "$corpus"
  cp -n "$src/tests/fuzz/corpus/$target/"* "$corpus/"
  (cd "$dir" && "./tests/fuzz/fuzz_$target" -max_total_time="$seconds" -max_len=512 -print_final_stats=1 "$corpus" \
     2>"fuzz_$target.log") || { tail -40 "$dir/fuzz_$target.log"; exit 1; }
  echo "fuzz_$target: $(grep -m1 'stat::number_of_executed_units' "$dir/fuzz_$target.log" | awk '{print $2}') inputs in ${seconds} s, no finding"
done
