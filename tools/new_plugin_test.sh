#!/usr/bin/env bash
# tools/new_plugin in a scratch copy of the tree: the files it writes, the
# plugins/BUILD entry, Google style, and its refusals. That what it writes
# builds, trains and passes its test: plugins/scaffold_example is its output,
# built and tested by `bazel test //...`, and this test fails when a fresh
# scaffold differs from it (regenerate it with the commands printed below).
set -euo pipefail
ws="$TEST_SRCDIR/ouroboros"
tree="$TEST_TMPDIR/tree"
rm -rf "$tree"; mkdir -p "$tree/tools" "$tree/plugins" "$tree/configs"
cp "$ws/tools/new_plugin" "$tree/tools/"
cp "$ws/plugins/BUILD" "$tree/plugins/BUILD"
cp "$ws/.clang-format" "$tree/"
chmod u+w "$tree/plugins/BUILD"

fail() { echo "FAIL: $*" >&2; exit 1; }

"$tree/tools/new_plugin" my_family > "$TEST_TMPDIR/out.txt"
for f in BUILD my_family.h my_family.cc my_family.proto my_family_test.cc \
         default_config.json README.md; do
  [ -s "$tree/plugins/my_family/$f" ] || fail "plugins/my_family/$f not written"
done
[ -s "$tree/configs/my_family.json" ] || fail "configs/my_family.json not written"
grep -q '"//plugins/my_family",' "$tree/plugins/BUILD" || fail "not added to plugins/BUILD"
grep -q '"//plugins/mlp",' "$tree/plugins/BUILD" || fail "plugins/BUILD lost an entry"
grep -q 'OUROBOROS_REGISTER_MODEL("my_family"' "$tree/plugins/my_family/my_family.cc" \
  || fail "no registration"
grep -q 'class MyFamily : public Model' "$tree/plugins/my_family/my_family.cc" \
  || fail "class name not CamelCase"
grep -q 'OUROBOROS_REGISTER_DATA_SOURCE(kRingsDataSource' "$tree/plugins/my_family/my_family.cc" \
  || fail "no data source registration"
grep -q 'absl::StatusOr<double> TrainStep(' "$tree/plugins/my_family/my_family.cc" \
  || fail "no training step of its own"
(cd "$tree" && clang-format --style=file --dry-run --Werror plugins/my_family/*.cc plugins/my_family/*.h plugins/my_family/*.proto) \
  || fail "generated code is not clang-formatted"

if "$tree/tools/new_plugin" my_family 2>"$TEST_TMPDIR/err.txt"; then fail "overwrote an existing plugin"; fi
grep -q "already exists" "$TEST_TMPDIR/err.txt" || fail "no clear message for an existing plugin"
if "$tree/tools/new_plugin" Bad-Name 2>"$TEST_TMPDIR/err.txt"; then fail "accepted a bad name"; fi
grep -q "lower_snake_case" "$TEST_TMPDIR/err.txt" || fail "no clear message for a bad name"
# The checked-in example is exactly what the scaffold writes today.
"$tree/tools/new_plugin" scaffold_example > /dev/null
for f in "$tree"/plugins/scaffold_example/*; do
  checked_in="$ws/plugins/scaffold_example/$(basename "$f")"
  if ! diff -u "$checked_in" "$f" > "$TEST_TMPDIR/diff.txt"; then
    cat "$TEST_TMPDIR/diff.txt" >&2
    fail "plugins/scaffold_example/$(basename "$f") is not what tools/new_plugin writes now; regenerate it: rm -r plugins/scaffold_example && cp plugins/BUILD /tmp/b && tools/new_plugin scaffold_example && cp /tmp/b plugins/BUILD && rm configs/scaffold_example.json"
  fi
done
[ "$(ls "$ws/plugins/scaffold_example" | wc -l)" = "$(ls "$tree/plugins/scaffold_example" | wc -l)" ] \
  || fail "plugins/scaffold_example has other files than a fresh scaffold"
echo "new_plugin_test: ok"
