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
            imports = ["//ouroboros:config_options.proto"],
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
            "//ouroboros:plugin_entry",
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
