#!/usr/bin/env bash
# Runs a Python test script with Debian's python3 (the one python3-torch is
# installed for), whatever python3 comes first on PATH.
exec /usr/bin/python3 "$@"
