#!/usr/bin/env bash
# Runs the same cache-hit load against our edge and against nginx (proxy_cache), both in front
# of origin-mock on 127.0.0.1, and prints requests/s and p99 latency for each.
#
# Usage (from the repository root):
#   benches/compare-nginx.sh [--duration 10s] [--connections 64] [--threads 2]
#                            [--workers N] [--size 1024] [--rounds 2] [--nginx-http TEXT]
#                            [--protect]
#
#   --duration     length of each wrk run (wrk syntax: 10s, 1m)          default 10s
#   --connections  wrk connections kept open                             default 64
#   --threads      wrk threads                                           default 2
#   --workers      server threads: the edge's `threads` and nginx's
#                  `worker_processes` (the same for both)                default: number of cores
#   --size         object size in bytes (/bytes/N on origin-mock)        default 1024
#   --rounds       rounds; each round runs the edge then nginx           default 2
#   --nginx-http   extra directives for nginx's http block, e.g. 'sendfile on;'
#   --protect      the edge's object sits behind a route that requires a signed URL and
#                  applies a token-bucket limit (rate high enough never to refuse), and wrk
#                  asks for a signed link: the cost of the protection checks on every hit
#
# Installs wrk, nginx and cmake (Pingora's build needs it) with apt-get when missing, builds
# `target/release/cdn`, starts origin-mock, the edge and nginx on free loopback ports with
# configs in a temporary directory, warms one object into both caches, checks that the origin
# saw exactly one fetch per system, then runs wrk against each in turn. Everything it starts is
# stopped on exit (also on error or Ctrl-C) and the temporary directory is removed.
set -euo pipefail

DURATION=10s
CONNECTIONS=64
THREADS=2
WORKERS=""
SIZE=1024
ROUNDS=2
NGINX_HTTP=""
PROTECT=""

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

die() {
    echo "compare-nginx: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=${2:?--duration needs a value}; shift 2 ;;
        --connections) CONNECTIONS=${2:?--connections needs a value}; shift 2 ;;
        --threads) THREADS=${2:?--threads needs a value}; shift 2 ;;
        --workers) WORKERS=${2:?--workers needs a value}; shift 2 ;;
        --size) SIZE=${2:?--size needs a value}; shift 2 ;;
        --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
        --nginx-http) NGINX_HTTP=${2:?--nginx-http needs a value}; shift 2 ;;
        --protect) PROTECT=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

is_count() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }
is_count "$CONNECTIONS" || die "--connections must be a positive integer"
is_count "$THREADS" || die "--threads must be a positive integer"
is_count "$SIZE" || die "--size must be a positive integer"
is_count "$ROUNDS" || die "--rounds must be a positive integer"
[[ "$DURATION" =~ ^[0-9]+[smh]?$ ]] || die "--duration must look like 10s, 1m"
[ -n "$WORKERS" ] || WORKERS=$(nproc)
is_count "$WORKERS" || die "--workers must be a positive integer"
[ "$THREADS" -le "$CONNECTIONS" ] || die "--threads must not exceed --connections (wrk)"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ -f Cargo.toml ] && [ -d edge ] || die "run from the repository (could not find it at $ROOT)"

# --- 1. Tools -----------------------------------------------------------------------------------

NGINX=""
find_nginx() {
    if [ -x /usr/sbin/nginx ]; then
        NGINX=/usr/sbin/nginx
    else
        NGINX=$(command -v nginx || true)
    fi
}

find_nginx
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[ -n "$NGINX" ] || missing+=(nginx)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing: ${missing[*]}"
    command -v apt-get >/dev/null 2>&1 ||
        die "missing ${missing[*]} and no apt-get here: install them and run again"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}: run as root or install sudo"
        SUDO=sudo
    fi
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    find_nginx
    [ -n "$NGINX" ] || die "nginx still not found after installing it"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) first"

# --- 2. Build -----------------------------------------------------------------------------------

echo "==> cargo build --release --bin cdn"
cargo build --release --bin cdn
CDN="$ROOT/target/release/cdn"
[ -x "$CDN" ] || die "build produced no $CDN"

# --- 3. Start origin-mock, the edge and nginx ---------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cdn-vs-nginx.XXXXXX")
# nginx's workers run as `nobody` when started as root: they must reach the cache under $TMP.
chmod 755 "$TMP"
PIDS=()

stop_pid() {
    # Stops one process we started (and, for nginx, its workers), politely then firmly.
    local pid=$1 sig=$2 children i
    kill -0 "$pid" 2>/dev/null || return 0
    children=$(pgrep -P "$pid" 2>/dev/null || true)
    kill "-$sig" "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "compare-nginx: pid $pid ignored SIG$sig for 5 s, killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    for i in $children; do
        kill -KILL "$i" 2>/dev/null || true
    done
}

cleanup() {
    set +e
    trap - EXIT INT TERM
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[$i]}" TERM
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Free ports from 18081 upwards (the default demo uses 8080, 8081 and 9080).
NEXT_PORT=18081
free_port() {
    # Sets the variable named $1 to the next port nobody listens on.
    while port_in_use "$NEXT_PORT"; do
        NEXT_PORT=$((NEXT_PORT + 1))
        [ "$NEXT_PORT" -lt 19000 ] || die "no free port in 18081..18999"
    done
    printf -v "$1" '%s' "$NEXT_PORT"
    NEXT_PORT=$((NEXT_PORT + 1))
}
free_port ORIGIN_PORT
free_port EDGE_PORT
free_port ADMIN_PORT
free_port NGINX_PORT

cat >"$TMP/edge.toml" <<EOF
# Written by benches/compare-nginx.sh.
[edge]
listen = ["127.0.0.1:$EDGE_PORT"]
threads = $WORKERS
access_log = false

[edge.admin]
listen = "127.0.0.1:$ADMIN_PORT"

[[edge.origins]]
address = "127.0.0.1:$ORIGIN_PORT"

[edge.cache]
max_size = "256MiB"
EOF
if [ -n "$PROTECT" ]; then
    cat >>"$TMP/edge.toml" <<EOF

# --protect: every object needs a signed URL and passes a token bucket per client.
[[edge.routes]]
prefix = "/"
[edge.routes.signed]
[[edge.routes.signed.keys]]
kid = "bench"
secret = "benchmark-secret-not-for-production"
[edge.routes.rate_limit]
rate = 100000000
burst = 100000000
key = "client"
EOF
fi

mkdir -p "$TMP/nginx-cache" "$TMP/nginx-temp"
cat >"$TMP/nginx.conf" <<EOF
# Written by benches/compare-nginx.sh.
worker_processes $WORKERS;
error_log $TMP/nginx-error.log warn;
pid $TMP/nginx.pid;

events {
    worker_connections 4096;
}

http {
    access_log off;
    # sendfile and tcp_nopush stay at nginx's defaults (off). Debian's stock nginx.conf turns
    # both on, which here stalls each 100 KiB hit ~40 ms (1.6k req/s); try with --nginx-http.
    # nginx closes a client connection after 1000 requests by default; our edge does not.
    keepalive_requests 1000000;
    $NGINX_HTTP

    client_body_temp_path $TMP/nginx-temp/client_body;
    proxy_temp_path $TMP/nginx-temp/proxy;
    fastcgi_temp_path $TMP/nginx-temp/fastcgi;
    uwsgi_temp_path $TMP/nginx-temp/uwsgi;
    scgi_temp_path $TMP/nginx-temp/scgi;

    proxy_cache_path $TMP/nginx-cache levels=1:2 keys_zone=cdn:64m max_size=256m
                     inactive=60m use_temp_path=off;

    upstream origin {
        server 127.0.0.1:$ORIGIN_PORT;
        keepalive 64;
    }

    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache cdn;
            proxy_cache_lock on;
            add_header X-Cache-Status \$upstream_cache_status;
        }
    }
}
EOF

export RUST_LOG=warn
echo "==> starting origin-mock on 127.0.0.1:$ORIGIN_PORT"
"$CDN" origin --listen "127.0.0.1:$ORIGIN_PORT" >"$TMP/origin.log" 2>&1 &
PIDS+=($!)
ORIGIN_PID=$!
echo "==> starting the edge on 127.0.0.1:$EDGE_PORT (admin $ADMIN_PORT, threads $WORKERS)"
"$CDN" edge --config "$TMP/edge.toml" >"$TMP/edge.log" 2>&1 &
PIDS+=($!)
EDGE_PID=$!
echo "==> starting nginx on 127.0.0.1:$NGINX_PORT (worker_processes $WORKERS): $("$NGINX" -v 2>&1)"
"$NGINX" -t -q -p "$TMP" -c "$TMP/nginx.conf" -g 'daemon off;' ||
    die "nginx rejected $TMP/nginx.conf"
"$NGINX" -p "$TMP" -c "$TMP/nginx.conf" -g 'daemon off;' >"$TMP/nginx.log" 2>&1 &
PIDS+=($!)
NGINX_PID=$!

wait_http() {
    # Waits (at most 10 s) until $2 answers; fails with the process's log if it dies or never does.
    local name=$1 url=$2 pid=$3 log=$4 i
    for i in $(seq 100); do
        if curl -s -o /dev/null --max-time 1 "$url"; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$log" >&2 || true
            die "$name exited during start-up"
        fi
        sleep 0.1
    done
    tail -n 20 "$log" >&2 || true
    die "$name did not answer $url within 10 s"
}
wait_http origin-mock "http://127.0.0.1:$ORIGIN_PORT/__stats" "$ORIGIN_PID" "$TMP/origin.log"
wait_http edge "http://127.0.0.1:$ADMIN_PORT/healthz" "$EDGE_PID" "$TMP/edge.log"
wait_http nginx "http://127.0.0.1:$NGINX_PORT/__stats" "$NGINX_PID" "$TMP/nginx-error.log"

# --- 4. Warm both caches with the same object ---------------------------------------------------

OBJECT="/bytes/$SIZE?cc=max-age%3D3600"
EDGE_URL="http://127.0.0.1:$EDGE_PORT$OBJECT"
if [ -n "$PROTECT" ]; then
    EDGE_URL=$("$CDN" sign --config "$TMP/edge.toml" "$EDGE_URL" --kid bench --ttl 1h)
fi
NGINX_URL="http://127.0.0.1:$NGINX_PORT$OBJECT"

origin_fetches() {
    # How many times origin-mock served /bytes/$SIZE since the last reset.
    curl -sf "http://127.0.0.1:$ORIGIN_PORT/__stats" |
        grep -o "\"/bytes/$SIZE\":[0-9]*" | head -n 1 | cut -d: -f2 || true
}

headers_of() {
    # The response headers of GET $1, checking the status is 200 and the body has $SIZE bytes.
    local out
    out=$(curl -s -D - -o "$TMP/body" -w '%{http_code} %{size_download}\n' "$1")
    local status_size=${out##*$'\n'}
    [ "$status_size" = "200 $SIZE" ] || die "GET $1 answered '$status_size', expected '200 $SIZE'"
    printf '%s\n' "$out" | tr -d '\r'
}

curl -sf -X POST "http://127.0.0.1:$ORIGIN_PORT/__reset" >/dev/null || die "origin-mock reset failed"
echo "==> warming $OBJECT ($SIZE bytes) into both caches"
headers_of "$EDGE_URL" >/dev/null
edge_second=$(headers_of "$EDGE_URL")
grep -iq '^cache-status:.*hit' <<<"$edge_second" ||
    die "the edge's second response is not a hit:"$'\n'"$edge_second"
headers_of "$NGINX_URL" >/dev/null
nginx_second=$(headers_of "$NGINX_URL")
grep -iq '^x-cache-status: *HIT' <<<"$nginx_second" ||
    die "nginx's second response is not a HIT:"$'\n'"$nginx_second"
fetches=$(origin_fetches)
[ "$fetches" = 2 ] ||
    die "origin-mock served /bytes/$SIZE ${fetches:-0} times during warm-up, expected 2 (one per system)"
echo "    edge:  $(grep -i '^cache-status:' <<<"$edge_second")"
echo "    nginx: $(grep -i '^x-cache-status:' <<<"$nginx_second")"
echo "    origin-mock fetches of /bytes/$SIZE: $fetches (one per system)"

# --- 5. Load ------------------------------------------------------------------------------------

to_ms() {
    # wrk prints latencies as 812.00us, 1.23ms, 1.05s or 1.00m.
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000
        else if (v ~ /ms$/) n = n
        else if (v ~ /m$/) n *= 60000
        else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

RESULTS=()
run_wrk() {
    local system=$1 round=$2 url=$3 out rps p99 errors
    echo
    echo "==> round $round: $system: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency $url"
    # In the background, so that a signal to this script stops the run at once.
    wrk "-t$THREADS" "-c$CONNECTIONS" "-d$DURATION" --latency "$url" >"$TMP/wrk.out" 2>&1 &
    PIDS+=($!)
    wait $! || { cat "$TMP/wrk.out" >&2; die "wrk failed"; }
    unset 'PIDS[-1]'
    out=$(cat "$TMP/wrk.out")
    sed 's/^/    /' <<<"$out"
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    [ -n "$rps" ] && [ -n "$p99" ] || die "could not parse wrk's output"
    errors=$(awk '/Socket errors|Non-2xx/ {print}' <<<"$out" | tr '\n' ' ')
    RESULTS+=("$system $round $rps $(to_ms "$p99") ${errors:+ERRORS}")
}

for round in $(seq "$ROUNDS"); do
    run_wrk edge "$round" "$EDGE_URL"
    run_wrk nginx "$round" "$NGINX_URL"
done

fetches=$(origin_fetches)
echo
echo "==> origin-mock fetches of /bytes/$SIZE after all runs: $fetches (2 = every load request was a hit)"

# --- 6. Report ----------------------------------------------------------------------------------

echo
echo "=== edge vs nginx: cache hits of a $SIZE-byte object ==="
echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine:  $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(uname -sr)"
echo "servers:  edge threads = nginx worker_processes = $WORKERS; edge access_log off, nginx access_log off"
echo "nginx:    $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), proxy_cache on disk in the temporary directory (its normal configuration; hits are read from the page cache)${NGINX_HTTP:+; extra: $NGINX_HTTP}"
echo "load:     wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency; wrk runs on the same cores as the server under test"
echo
printf '%-8s %5s %12s %10s\n' system round "req/s" "p99 ms"
for r in "${RESULTS[@]}"; do
    read -r system round rps p99 flag <<<"$r"
    printf '%-8s %5s %12s %10s %s\n' "$system" "$round" "$rps" "$p99" "${flag:-}"
done
printf '%s\n' "${RESULTS[@]}" | awk '
    $1 == "edge"  { if ($3 > er) er = $3; if (ep == "" || $4 < ep) ep = $4 }
    $1 == "nginx" { if ($3 > nr) nr = $3; if (np == "" || $4 < np) np = $4 }
    END {
        printf "\nbest of rounds: edge %.0f req/s, p99 %.3f ms; nginx %.0f req/s, p99 %.3f ms\n", er, ep, nr, np
        printf "edge/nginx req/s: %.2f (higher is better for the edge)\n", er / nr
        printf "edge/nginx p99:   %.2f (lower is better for the edge)\n", ep / np
    }'
if printf '%s\n' "${RESULTS[@]}" | grep -q ERRORS; then
    echo "note: runs marked ERRORS had socket errors or non-2xx responses (see wrk's output above)"
fi
