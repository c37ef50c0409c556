"""The documentation holds: every link in every Markdown file of the
repository resolves (a file that exists, a heading that exists), and the
config reference is what tools/config_reference makes of today's .proto
files.

Reads the source tree itself (found through README.md's runfiles link), so
that a link to any file in the repository can be checked; the test is tagged
`external` so Bazel runs it every time instead of trusting a cached pass.
"""
import os
import re
import subprocess
import sys
import unittest

RUNFILES = os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"])
ROOT = os.path.dirname(os.path.realpath(os.path.join(RUNFILES, "README.md")))

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
IMG = re.compile(r"<img\s[^>]*src=\"([^\"]+)\"")
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")


def markdown_files():
  for directory, subdirectories, files in os.walk(ROOT):
    subdirectories[:] = sorted(
        d for d in subdirectories
        if not d.startswith((".", "bazel-")) and d != "node_modules")
    for name in sorted(files):
      if name.endswith(".md"):
        yield os.path.join(directory, name)


def github_slug(heading):
  """The anchor GitHub gives a heading: lower case, punctuation dropped
  (letters, digits, spaces, '-' and '_' kept), spaces to '-'."""
  text = INLINE_CODE.sub(lambda m: m.group(0)[1:-1], heading.strip().lower())
  text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
  text = re.sub(r"[^\w\- ]", "", text)
  return text.replace(" ", "-")


def anchors_of(path):
  anchors, seen, in_fence = set(), {}, False
  with open(path, encoding="utf-8") as f:
    for line in f:
      if FENCE.match(line):
        in_fence = not in_fence
        continue
      heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
      if heading and not in_fence:
        slug = github_slug(heading.group(1))
        count = seen.get(slug, 0)
        anchors.add(slug if count == 0 else "%s-%d" % (slug, count))
        seen[slug] = count + 1
  return anchors


def links_of(path):
  """(line number, target) of every link outside code."""
  in_fence = False
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      if FENCE.match(line):
        in_fence = not in_fence
        continue
      if in_fence:
        continue
      text = INLINE_CODE.sub("", line)
      for pattern in (LINK, IMG):
        for match in pattern.finditer(text):
          yield number, match.group(1)


def broken_links():
  problems, anchor_cache = [], {}
  for path in markdown_files():
    for number, target in links_of(path):
      if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, mailto:, ...
        continue
      file_part, _, anchor = target.partition("#")
      resolved = (os.path.normpath(os.path.join(os.path.dirname(path), file_part))
                  if file_part else path)
      where = "%s:%d: %s" % (os.path.relpath(path, ROOT), number, target)
      if not os.path.exists(resolved):
        problems.append(where + ": no such file")
        continue
      if not os.path.realpath(resolved).startswith(ROOT + os.sep):
        problems.append(where + ": outside the repository")
        continue
      if anchor and resolved.endswith(".md"):
        if resolved not in anchor_cache:
          anchor_cache[resolved] = anchors_of(resolved)
        if anchor not in anchor_cache[resolved]:
          problems.append(where + ": no heading with anchor #" + anchor)
  return problems


class DocsTest(unittest.TestCase):

  def test_every_markdown_link_resolves(self):
    files = list(markdown_files())
    self.assertGreater(len(files), 10, "the walk found the repository's .md files")
    self.assertEqual(broken_links(), [])

  def test_the_config_reference_is_current(self):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "config_reference"), "--check"],
        capture_output=True, text=True)
    self.assertEqual(result.returncode, 0, result.stderr)

  def test_the_checks_catch_what_they_should(self):
    # The slugs GitHub makes of this repository's kind of headings.
    self.assertEqual(github_slug("Training runs (the Trainer)"),
                     "training-runs-the-trainer")
    self.assertEqual(github_slug("`model_config` (`quine.proto`)"),
                     "model_config-quineproto")
    self.assertEqual(github_slug("A quine that is a fixed point (issue #27, in progress)"),
                     "a-quine-that-is-a-fixed-point-issue-27-in-progress")
    # Links inside code are not links; links in text and <img> are.
    scratch = os.path.join(os.environ["TEST_TMPDIR"], "sample.md")
    with open(scratch, "w") as f:
      f.write("# Title\n[a](x.md) `[b](y.md)` <img src=\"z.png\" width=\"9\">\n"
              "```\n[c](w.md)\n```\n![d](v.png#k)\n")
    self.assertEqual([t for _, t in links_of(scratch)], ["x.md", "z.png", "v.png#k"])
    self.assertEqual(anchors_of(scratch), {"title"})


if __name__ == "__main__":
  unittest.main()
