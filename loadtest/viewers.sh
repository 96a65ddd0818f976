#!/usr/bin/env bash
# Measures viewer fan-out: builds release binaries, starts NODES fresh haul
# processes (one: embedded engines; more: one PostgreSQL database and Redis
# shared by all), runs `loadtest viewers` with VIEWERS spread over them, stops.
#
#   loadtest/viewers.sh VIEWERS [NODES] [loadtest options…]
#   e.g. loadtest/viewers.sh 10000 1 --rate 10 --duration 10
#        loadtest/viewers.sh 50000 3 --rate 2 --duration 10
#        SHARED=1 loadtest/viewers.sh 10000 1   (one node on PostgreSQL + Redis)
#
# A process here may keep at most `ulimit -Hn` files open (20000 on the
# machine the README's figures come from), so one node holds fewer viewers
# than that and 50k viewers need three nodes.
set -euo pipefail
cd "$(dirname "$0")/.."
viewers="${1:?usage: $0 VIEWERS [NODES] [loadtest options…]}"
nodes="${2:-1}"
shift $(( $# > 2 ? 2 : $# ))
ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet -p gateway -p loadtest

data="$(mktemp -d)"
admin="${HAUL_BENCH_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="haul_bench_v$$"
env_vars=(HAUL_LOG=warn HAUL_RATE_BUYER=off HAUL_RATE_ADDR=off HAUL_HOLDS_PER_ADDR=off HAUL_VIEWERS_PER_ADDR=1000000
          HAUL_TOKEN_SECRET="bench-secret-bench-secret-bench-secret")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if (( nodes > 1 )) || [[ -n "${SHARED:-}" ]]; then
        psql "$admin" -qc "drop database if exists $db with (force)" >/dev/null || true
        redis-cli -u "${HAUL_BENCH_REDIS_URL:-redis://127.0.0.1:6379}" --scan --pattern "haulbenchv$$:*" \
            | xargs -r -n 500 redis-cli -u "${HAUL_BENCH_REDIS_URL:-redis://127.0.0.1:6379}" del >/dev/null || true
    fi
    rm -rf "$data"
}
trap cleanup EXIT
if (( nodes > 1 )) || [[ -n "${SHARED:-}" ]]; then
    psql "$admin" -qc "create database $db" >/dev/null
    env_vars+=(HAUL_DATABASE_URL="${admin%/*}/$db"
               HAUL_REDIS_URL="${HAUL_BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
               HAUL_REDIS_PREFIX="haulbenchv$$")
else
    env_vars+=(HAUL_DATABASE_URL="sqlite://$data/haul.db")
fi
key="$(env "${env_vars[@]}" HAUL_DATA_DIR="$data" target/release/haul seller create --name bench | awk '/^test_key/ {print $2}')"

urls=()
for n in $(seq 1 "$nodes"); do
    port=$((18180 + n))
    env "${env_vars[@]}" HAUL_DATA_DIR="$data/n$n" HAUL_LISTEN="127.0.0.1:$port" \
        target/release/haul --no-demo >"$data/haul-$n.log" 2>&1 &
    pids+=($!)
    urls+=("http://127.0.0.1:$port")
    for _ in $(seq 1 100); do
        curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
        sleep 0.1
    done
done
per_worker=$(( viewers / nodes < 15000 ? viewers / nodes + 1 : 15000 ))
IFS=,
target/release/loadtest viewers --url "${urls[*]}" --gateway-pid "${pids[*]}" --api-key "$key" \
    --viewers "$viewers" --per-worker "$per_worker" "$@"
