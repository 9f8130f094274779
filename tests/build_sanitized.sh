#!/usr/bin/env bash
# The suite in a second build: clang, AddressSanitizer + UndefinedBehaviorSanitizer (-DRINGTRAIN_SANITIZE=ON),
# the libFuzzer targets (-DRINGTRAIN_FUZZ=ON, run by fuzz_parsers.sh), CPU-only (-DRINGTRAIN_CUDA=OFF: every
# role's cuda_disabled.cpp must keep building and say why there is no GPU) and portable
# (-DRINGTRAIN_NATIVE=OFF, the default: the kernels choose AVX-512 at run time, so on a CPU with it the
# sanitizers watch the AVX-512 kernels; unit.portable runs the portable ones). Runs the unit tests (the CLI
# ones drive its sanitized binary) and the MPI tests on 2 ranks. Any report fails the run (UBSan aborts; ASan
# stops at the first error). Leak checking is off: Open MPI and HDF5 keep allocations until exit by design.
# -O0 with line tables only: this build's compile is the largest single share of CI's 30 minutes, and -O0
# compiles in 0.6-0.75 of -O1's time, while the tests it runs spend most of theirs starting processes, not
# computing; the reports still name file and line. A unity build, as the main one (CMakeLists.txt): clang 14
# at -O0 spends most of a file's time in the headers, and batches compile the whole build in about half.
# usage: build_sanitized.sh SOURCE_DIR BUILD_DIR MPIRUN
set -euo pipefail
src=$1 dir=$2 mpirun=$3
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
cmake -S "$src" -B "$dir" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DRINGTRAIN_CUDA=OFF \
  -DRINGTRAIN_NATIVE=OFF -DRINGTRAIN_SANITIZE=ON -DRINGTRAIN_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O0 -gline-tables-only -DNDEBUG" >/dev/null
cmake --build "$dir" --target ringtrain ringtrain_tests ringtrain_mpi_tests fuzz_model_spec fuzz_train_config \
  -j2 >/dev/null
out=$("$dir/src/ringtrain" devices)
echo "$out"
[[ $out == "cuda: none (no CUDA device: ringtrain was built with RINGTRAIN_CUDA=OFF)" ]]
# Not the preset parameter counts: building ResNet-18/50/101 and VGG-16 (220M random weights) takes 50 s here at
# -O0, and GPT-2 (124M) 29 s, for counts the main build checks too.
presets=ModelSpec.ResNetAndVggPresetsHaveTorchvisionsParameterCounts:TransformerModel.Gpt2PresetHasThePublishedParameterCount
"$dir/tests/ringtrain_tests" --gtest_brief=1 --gtest_filter="-CudaEngine*:$presets"
"$mpirun" --oversubscribe -np 2 -x ASAN_OPTIONS -x UBSAN_OPTIONS "$dir/tests/ringtrain_mpi_tests" --gtest_brief=1
