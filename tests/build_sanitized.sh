#!/usr/bin/env bash
# The suite under AddressSanitizer and UndefinedBehaviorSanitizer: a CPU-only build with
# -DRINGTRAIN_SANITIZE=ON, then the unit tests (the CLI ones drive its sanitized binary) and the MPI tests
# on 2 ranks. Any error report fails the run (UBSan aborts; ASan stops at the first error). Leak checking
# is off: Open MPI and HDF5 keep allocations until exit by design.
# usage: build_sanitized.sh SOURCE_DIR BUILD_DIR MPIRUN
set -euo pipefail
src=$1 dir=$2 mpirun=$3
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
cmake -S "$src" -B "$dir" -DRINGTRAIN_CUDA=OFF -DRINGTRAIN_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" --target ringtrain ringtrain_tests ringtrain_mpi_tests -j2 >/dev/null
"$dir/tests/ringtrain_tests" --gtest_brief=1 --gtest_filter='-CudaEngine*'
"$mpirun" --oversubscribe -np 2 -x ASAN_OPTIONS -x UBSAN_OPTIONS "$dir/tests/ringtrain_mpi_tests" --gtest_brief=1
