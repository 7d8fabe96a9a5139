#!/usr/bin/env bash
# Runs the older-clients interop test against a running Orisun server.
#
#   interop/python_legacy/run.sh ADDRESS [USER PASSWORD]
#
# Uses the virtualenv of interop/python (same pinned grpcio and grpcio-tools, created once under
# target/interop-venv; ORISUN_PY_VENV overrides it), generates Python stubs from the 2025 proto
# (crates/orisun-proto/proto/legacy/eventstore_2025.proto, package `eventstore`) and from today's
# eventstore.proto, admin.proto and pubsub.proto into a temporary directory, and runs legacy_test.py.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
requirements="$root/interop/python/requirements.txt"
venv="${ORISUN_PY_VENV:-$root/target/interop-venv}"
stamp="$venv/.requirements"

if [ $# -lt 1 ]; then
    echo "usage: $0 ADDRESS [USER PASSWORD]" >&2
    exit 2
fi

if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$stamp"; then
    echo "creating $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$stamp"
fi

stubs="$(mktemp -d)"
trap 'rm -rf "$stubs"' EXIT
"$venv/bin/python" -m grpc_tools.protoc \
    -I "$root/crates/orisun-proto/proto/legacy" \
    --python_out="$stubs" --grpc_python_out="$stubs" \
    eventstore_2025.proto
"$venv/bin/python" -m grpc_tools.protoc \
    -I "$root/crates/orisun-proto/proto" \
    --python_out="$stubs" --grpc_python_out="$stubs" \
    eventstore.proto admin.proto pubsub.proto

PYTHONPATH="$stubs" "$venv/bin/python" "$here/legacy_test.py" "$@"
