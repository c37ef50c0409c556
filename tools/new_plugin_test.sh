#!/usr/bin/env bash
# tools/new_plugin in a scratch copy of the tree: the files it writes, the
# plugins/BUILD entry, Google style, and its refusals. (That the result builds
# and passes its test is checked by hand: see README "Adding a plugin".)
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
(cd "$tree" && clang-format --style=file --dry-run --Werror plugins/my_family/*.cc plugins/my_family/*.h) \
  || fail "generated code is not clang-formatted"

if "$tree/tools/new_plugin" my_family 2>"$TEST_TMPDIR/err.txt"; then fail "overwrote an existing plugin"; fi
grep -q "already exists" "$TEST_TMPDIR/err.txt" || fail "no clear message for an existing plugin"
if "$tree/tools/new_plugin" Bad-Name 2>"$TEST_TMPDIR/err.txt"; then fail "accepted a bad name"; fi
grep -q "lower_snake_case" "$TEST_TMPDIR/err.txt" || fail "no clear message for a bad name"
echo "new_plugin_test: ok"
