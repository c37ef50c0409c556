"""Repository rules that adapt Debian's packaged Bazel rules for offline use."""

def _debian_rules_cc_impl(rctx):
    # Debian ships rules_cc 0.0.4, which loads `use_cpp_toolchain` from a
    # @bazel_tools that Bazel 4.2.3 does not have: patch it to the label.
    res = rctx.execute(["cp", "-r", "/usr/share/bazel/rules/cc/.", "."])
    if res.return_code != 0:
        fail("copying /usr/share/bazel/rules/cc failed (is bazel-rules-cc installed? run tools/bootstrap): " + res.stderr)
    for f in [
        "cc/private/rules_impl/compiler_flag.bzl",
        "cc/private/rules_impl/cc_flags_supplier.bzl",
    ]:
        s = rctx.read(f).replace(', "use_cpp_toolchain")', ")")
        rctx.file(f, s.replace("use_cpp_toolchain()", '["@bazel_tools//tools/cpp:toolchain_type"]'))

debian_rules_cc = repository_rule(implementation = _debian_rules_cc_impl)

def _stub_coverage_tools_impl(rctx):
    rctx.file("BUILD", "\n".join([
        'package(default_visibility = ["//visibility:public"])',
        'filegroup(name = "coverage_report_generator")',
        'filegroup(name = "lcov_merger")',
        "",
    ]))

stub_coverage_tools = repository_rule(implementation = _stub_coverage_tools_impl)
