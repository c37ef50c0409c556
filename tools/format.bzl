"""format_test: fails when a file differs from clang-format's Google style."""

def format_test(name, srcs):
    native.sh_test(
        name = name,
        size = "small",
        srcs = ["//tools:format_check.sh"],
        args = ["$(location %s)" % s for s in srcs],
        data = srcs + ["//:.clang-format"],
    )
