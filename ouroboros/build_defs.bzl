"""Bazel macros for the core and for plugins.

A plugin package's BUILD is one call:

    load("//ouroboros:build_defs.bzl", "ouroboros_plugin")
    ouroboros_plugin(
        name = "mlp",
        srcs = ["mlp.cc"],
        proto = "mlp.proto",                 # optional: its config section
        default_config = "default_config.json",  # models: the embedded config
    )

which makes :mlp_lib (for tests), :libouroboros_mlp.so (the plugin that main
loads), :mlp (an alias of the .so) and :format_test.
"""

load("//tools:format.bzl", "format_test")

def proto_cc_sources(name, src, imports = [], visibility = None):
    """Runs protoc on `src`, giving <base>.pb.h and <base>.pb.cc.

    Used instead of cc_proto_library so that the generated code can be linked
    into exactly one shared object (protobuf aborts on a descriptor registered
    twice) while its header stays available to everyone. `imports`: the
    project's .proto files that `src` imports (Debian's are found in
    /usr/include).
    """
    base = src[:-len(".proto")]
    native.genrule(
        name = name,
        srcs = [src] + imports,
        outs = [base + ".pb.h", base + ".pb.cc"],
        tools = ["@system//:protoc"],
        cmd = "$(location @system//:protoc) -I. -I/usr/include --cpp_out=$(GENDIR) $(location " + src + ")",
        visibility = visibility,
    )

# What every room of the core and its headers build on.
_SYSTEM_DEPS = [
    "@system//:absl",
    "@system//:glog",
    "@system//:protobuf",
    "@system//:torch",
]

def core_library(name, hdrs, srcs = [], deps = [], used_by = [], copts = [], extra_deps = []):
    """One room of the core: a sub-package's code and its public headers.

    Makes two targets. `name` holds the code; it is linked into
    //ouroboros:libouroboros_core.so and nowhere else, so that there is one
    registry however many plugins are loaded. `name + "_headers"` holds the
    headers alone; //ouroboros:core gathers them for main, the plugins and the
    tests, who get the code through the shared library.

    `deps`: the core rooms this one stands on, as full labels
    ("//ouroboros/base:base"). `used_by`: the packages above it that may stand
    on it; it is the visibility, so the BUILD files show the layering and
    Bazel refuses an arrow that would run back down.
    """
    visibility = ["//ouroboros:__pkg__"] + used_by
    native.cc_library(
        name = name,
        srcs = srcs,
        hdrs = hdrs,
        copts = copts,
        deps = deps + extra_deps + _SYSTEM_DEPS,
        linkstatic = 1,
        alwayslink = 1,
        visibility = visibility,
    )
    native.cc_library(
        name = name + "_headers",
        hdrs = hdrs,
        deps = [dep + "_headers" for dep in deps] + _SYSTEM_DEPS,
        visibility = visibility,
    )

def core_tests(names, deps = [], linkopts = []):
    """A cc_test per name, each <name>.cc beside the file it tests, built on
    //ouroboros:core (the shared library) like any other user of the core."""
    for name in names:
        native.cc_test(
            name = name,
            size = "small",
            srcs = [name + ".cc"],
            linkopts = linkopts,
            deps = deps + [
                "//ouroboros:core",
                "@system//:gtest_main",
                "@system//:torch",
            ],
        )

def embed_text(name, src, symbol):
    """A header `<name>.h` defining `constexpr char <symbol>[]` = src's text."""
    native.genrule(
        name = name,
        srcs = [src],
        outs = [name + ".h"],
        cmd = "(echo '// Generated from $< by embed_text(); do not edit.'; " +
              "echo '#pragma once'; " +
              "echo 'static constexpr char " + symbol + "[] = R\"ouroboros_embed('; " +
              "cat $<; echo ')ouroboros_embed\";') > $@",
    )

def ouroboros_plugin(name, srcs, proto = None, default_config = None, deps = [], hdrs = []):
    """A plugin: a static library for tests and the shared object main loads."""
    gen_srcs = []
    if proto:
        # A plugin's section may declare its defaults
        # ((ouroboros.default_value), config_options.proto).
        proto_cc_sources(
            name = name + "_proto",
            src = proto,
            imports = ["//ouroboros/config:config_options.proto"],
        )
        gen_srcs.append(":" + name + "_proto")
    if default_config:
        embed_text(name = "default_config", src = default_config, symbol = "kDefaultConfigJson")
        gen_srcs.append(":default_config")
    native.cc_library(
        name = name + "_lib",
        srcs = srcs + gen_srcs,
        hdrs = hdrs,
        deps = deps + [
            "//ouroboros:core",
            "//ouroboros/api:plugin_entry",
        ],
        alwayslink = 1,
        # Always static, also in tests: the queued registrations and the
        # entry point that reads them must end up in the same binary.
        linkstatic = 1,
        visibility = ["//visibility:public"],
    )
    native.cc_binary(
        name = "libouroboros_" + name + ".so",
        linkshared = 1,
        deps = [":" + name + "_lib"],
        visibility = ["//visibility:public"],
    )
    native.alias(
        name = name,
        actual = ":libouroboros_" + name + ".so",
        visibility = ["//visibility:public"],
    )
    format_test(
        name = "format_test",
        srcs = native.glob(["*.cc", "*.h", "*.proto"]),
    )
