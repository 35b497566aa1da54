#!/bin/sh
# Builds lib/kernels.metallib from lib/kernels.metal with Apple's Metal compiler, and the host
# program run_model (main.m). macOS with Xcode or its command-line tools; not run by deepc.
set -eu
cd "$(dirname "$0")"
xcrun -sdk macosx metal -c ../lib/kernels.metal -o kernels.air
xcrun -sdk macosx metallib kernels.air -o ../lib/kernels.metallib
clang -O2 -fobjc-arc -framework Foundation -framework Metal main.m -o run_model
echo "built ../lib/kernels.metallib and run_model: ./run_model .. INPUT... OUTPUT..."
