#!/usr/bin/env bash
# Measures the callback storm against PostgreSQL: builds release binaries,
# starts a fresh haul on a fresh PostgreSQL database, creates a seller, runs
# `loadtest callbacks` RUNS times (fresh orders each time), stops haul.
#
#   loadtest/callbacks.sh [RUNS] [loadtest options…]
#   e.g. loadtest/callbacks.sh 3 --orders 1000 --copies 3 --concurrency 64
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
shift $(( $# > 0 ? 1 : 0 ))
cargo build --release --quiet -p gateway -p loadtest

port=18190
data="$(mktemp -d)"
admin="${HAUL_BENCH_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="haul_bench_cb$$"
secret="bench-sandbox-secret-bench-sandbox-secret"
env_vars=(HAUL_DATA_DIR="$data" HAUL_LISTEN="127.0.0.1:$port" HAUL_LOG=warn
          HAUL_RATE_BUYER=off HAUL_RATE_ADDR=off HAUL_SANDBOX_SECRET="$secret"
          HAUL_DATABASE_URL="${admin%/*}/$db")
haul=""
cleanup() {
    [[ -n "$haul" ]] && kill "$haul" 2>/dev/null && wait "$haul" 2>/dev/null
    psql "$admin" -qc "drop database if exists $db with (force)" >/dev/null || true
    rm -rf "$data"
}
trap cleanup EXIT
psql "$admin" -qc "create database $db" >/dev/null
key="$(env "${env_vars[@]}" target/release/haul seller create --name bench | awk '/^test_key/ {print $2}')"
env "${env_vars[@]}" target/release/haul --no-demo >"$data/haul.log" 2>&1 &
haul=$!
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.1
done
for i in $(seq 1 "$runs"); do
    echo "--- callbacks run $i/$runs"
    target/release/loadtest callbacks --url "http://127.0.0.1:$port" --api-key "$key" --sandbox-secret "$secret" "$@"
done
