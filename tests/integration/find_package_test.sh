#!/usr/bin/env bash
# Installs this build into a temporary prefix and builds examples/integrator against it with
# find_package(Bastion), as an integrator's CMake project would, then runs the example.
set -euo pipefail
build_dir="$1"
example_src="$2"
link_flags="${3:-}"  # e.g. the sanitizer runtimes, for a sanitizer build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" > "$work/install.log"
cmake -S "$example_src" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_EXE_LINKER_FLAGS="$link_flags" > "$work/configure.log" \
  || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" -j2 > "$work/build.log" || { cat "$work/build.log"; exit 1; }
"$work/build/integrator_example"
