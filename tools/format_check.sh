#!/usr/bin/env bash
# Checks the given files against .clang-format (Google style).
# Fix with: clang-format -i <files>
set -euo pipefail
if ! command -v clang-format >/dev/null; then
  echo "clang-format not found: run tools/bootstrap" >&2
  exit 1
fi
[ $# -gt 0 ] || { echo "format_check: no files given" >&2; exit 1; }
clang-format --style=file --dry-run --Werror "$@"
echo "format_check: $# files follow .clang-format"
