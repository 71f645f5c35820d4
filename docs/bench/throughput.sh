#!/usr/bin/env bash
# The preset next to the bare hyper-util client over loopback: an
# `evenkeel sim` with no quota to speak of and no faults, HTTP/1.1 and
# HTTP/2 (prior knowledge), 1, 16 and 256 callers. Each cell runs bare,
# preset, bare, preset, ... (--rounds of each) and reports medians.
#
#   docs/bench/throughput.sh [SECS_PER_RUN] [ROUNDS]
#
# Results are in docs/bench/throughput.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}
rounds=${2:-3}
cargo build --release -p evenkeel-cli
bin=target/release/evenkeel
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" sim --listen "127.0.0.1:$port" --rate 1e9 --burst 1000000000 --latency-ms 0 >/dev/null &
sim=$!
trap 'kill "$sim"' EXIT
sleep 1
for proto in "" --http2; do
    for callers in 1 16 256; do
        "$bin" load --url "http://127.0.0.1:$port/v1/messages" --method POST --body-bytes 64 \
            -c "$callers" --duration "$secs" --compare-bare --rounds "$rounds" $proto
        echo
    done
done
