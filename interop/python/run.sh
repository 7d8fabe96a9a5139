#!/usr/bin/env bash
# Runs the Python interop test against a running Orisun server.
#
#   interop/python/run.sh [ADDRESS] [USER] [PASSWORD]     (default 127.0.0.1:5005 admin changeit)
#
# Creates (once) a virtualenv under target/interop-venv with the pinned grpcio and grpcio-tools,
# generates the Python stubs from crates/orisun-proto/proto into a temporary directory, and runs
# interop_test.py. ORISUN_PY_VENV overrides the virtualenv location.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${ORISUN_PY_VENV:-$root/target/interop-venv}"
stamp="$venv/.requirements"

if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
    echo "creating $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi

stubs="$(mktemp -d)"
trap 'rm -rf "$stubs"' EXIT
"$venv/bin/python" -m grpc_tools.protoc \
    -I "$root/crates/orisun-proto/proto" \
    --python_out="$stubs" --grpc_python_out="$stubs" \
    eventstore.proto admin.proto

PYTHONPATH="$stubs" exec "$venv/bin/python" "$here/interop_test.py" "$@"
