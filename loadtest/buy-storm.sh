#!/usr/bin/env bash
# Measures the buy storm on one engine setup: builds release binaries, starts a
# fresh haul, runs `loadtest buy-storm` RUNS times, stops haul.
#
#   loadtest/buy-storm.sh embedded|shared [RUNS] [loadtest options…]
#
# "shared" uses PostgreSQL at HAUL_BENCH_DATABASE_URL (default: a fresh
# haul_bench database on 127.0.0.1) and Redis at HAUL_BENCH_REDIS_URL
# (default redis://127.0.0.1:6379, keys under a fresh prefix).
set -euo pipefail
cd "$(dirname "$0")/.."
setup="${1:-embedded}"
runs="${2:-3}"
shift $(( $# > 2 ? 2 : $# ))
cargo build --release --quiet -p gateway -p loadtest

port=18180
data="$(mktemp -d)"
env_vars=(HAUL_DATA_DIR="$data" HAUL_LISTEN="127.0.0.1:$port" HAUL_LOG=warn
          HAUL_RATE_BUYER=off HAUL_RATE_ADDR=off HAUL_HOLDS_PER_ADDR=off)
admin="${HAUL_BENCH_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="haul_bench_$$"
haul=""
cleanup() {
    [[ -n "$haul" ]] && kill "$haul" 2>/dev/null && wait "$haul" 2>/dev/null
    if [[ "$setup" == shared ]]; then
        psql "$admin" -qc "drop database if exists $db with (force)" >/dev/null || true
    fi
    rm -rf "$data"
}
trap cleanup EXIT
case "$setup" in
    embedded) ;;
    shared)
        psql "$admin" -qc "create database $db" >/dev/null
        env_vars+=(HAUL_DATABASE_URL="${admin%/*}/$db"
                   HAUL_REDIS_URL="${HAUL_BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
                   HAUL_REDIS_PREFIX="haulbench$$")
        ;;
    *) echo "usage: $0 embedded|shared [RUNS] [loadtest options…]" >&2; exit 2 ;;
esac
key="$(env "${env_vars[@]}" target/release/haul seller create --name bench | awk '/^test_key/ {print $2}')"

env "${env_vars[@]}" target/release/haul --no-demo >"$data/haul.log" 2>&1 &
haul=$!
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.1
done

for i in $(seq 1 "$runs"); do
    echo "--- $setup run $i/$runs"
    target/release/loadtest buy-storm --url "http://127.0.0.1:$port" --api-key "$key" "$@"
done
