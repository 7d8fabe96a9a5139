#!/usr/bin/env bash
# Runs the Python interop test against a running Orisun server.
#
#   interop/python/run.sh [ADDRESS [USER PASSWORD]]
#
# Without ADDRESS it builds the `orisun` binary, starts it on the embedded backend in a temporary
# directory on free ports, runs the test against it and stops it (SIGTERM). With ADDRESS
# (host:port) it uses that server; USER and PASSWORD default to admin / changeit.
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

if [ $# -eq 0 ]; then
    cargo build --quiet -p orisun --manifest-path "$root/Cargo.toml"
    bin="${CARGO_TARGET_DIR:-$root/target}/debug/orisun"
    data="$(mktemp -d)"
    log="$(mktemp)"
    ORISUN_HOST=127.0.0.1 ORISUN_GRPC_PORT=0 ORISUN_ADMIN_PORT=0 ORISUN_BACKEND=sqlite \
        ORISUN_DATA_DIR="$data" ORISUN_LOGGING_LEVEL=INFO "$bin" serve >"$log" 2>&1 &
    pid=$!
    trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$stubs" "$data" "$log"' EXIT
    for _ in $(seq 1 600); do
        grep -q "orisun is listening" "$log" && break
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$log" >&2
            echo "the server exited during start-up" >&2
            exit 1
        fi
        sleep 0.1
    done
    addr="$(grep -o 'grpc=[0-9.:]*' "$log" | head -1 | cut -d= -f2)"
    if [ -z "$addr" ]; then
        cat "$log" >&2
        echo "the server did not report its address" >&2
        exit 1
    fi
    set -- "$addr"
fi

PYTHONPATH="$stubs" "$venv/bin/python" "$here/interop_test.py" "$@"
