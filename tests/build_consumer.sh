#!/usr/bin/env bash
# ringtrain as another project uses it: installs this build into a fresh prefix, then configures, builds and
# runs tests/consumer (find_package(ringtrain), ringtrain::core) against that prefix alone.
# usage: build_consumer.sh CMAKE BUILD_DIR CONFIG CONSUMER_SOURCE WORK_DIR CXX_COMPILER
set -euo pipefail
cmake=$1 build=$2 config=$3 consumer=$4 work=$5 cxx=$6
rm -rf "$work"
"$cmake" --install "$build" --config "$config" --prefix "$work/prefix" >/dev/null
"$cmake" -S "$consumer" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE="$config" \
  -DCMAKE_CXX_COMPILER="$cxx" >"$work/configure.log" || { cat "$work/configure.log"; exit 1; }
"$cmake" --build "$work/build" --config "$config" -j2
out=$("$work/build/consumer")
echo "$out"
[[ $out == "consumer: conv(4,3,stride=1,pad=1),relu,maxpool(2),flatten,linear(3) -> [2, 3], 235 parameters, cpu path "* ]]
# The package is relocatable: no path into this source or build tree in what was installed.
if grep -rlF --include='*.cmake' -e "$build" -e "$(cd "$(dirname "$0")/.." && pwd)" "$work/prefix"; then
  echo "FAIL: the installed package config names the source or build tree"; exit 1
fi
echo PASS
