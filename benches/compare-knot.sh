#!/usr/bin/env bash
# DNS throughput of our gslb against Knot DNS, in one run on this machine.
#
# Our gslb runs the full request path: a CIDR table of regions (longest-prefix match), EDNS
# Client Subnet in every query (so the answer depends on the subnet and carries a scope), and
# active health checks of its edges (probing a live origin-mock every 100 ms). Knot serves the
# same name from a static zone. dnsperf sends the same queries (with the same ECS option) to
# each in turn and we print both rates and the ratio.
#
#   benches/compare-knot.sh                 # 15 s per server
#   SECONDS_PER_RUN=30 CLIENTS=8 benches/compare-knot.sh
#
# Installs knot and dnsperf with apt-get when missing. Only loopback addresses are used.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN=${SECONDS_PER_RUN:-15}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-200}
GSLB_PORT=${GSLB_PORT:-25353}
KNOT_PORT=${KNOT_PORT:-25354}
ADMIN_PORT=${ADMIN_PORT:-29353}
ORIGIN_PORT=${ORIGIN_PORT:-28081}

need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v knotd >/dev/null || need+=(knot)
if ((${#need[@]})); then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "building the release binary (fat LTO: the first build takes several minutes)..." >&2
cargo build --release --bin cdn >&2
cdn=target/release/cdn

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The edges' health endpoint: origin-mock answers 200 to any path (no load figure: load 0).
"$cdn" origin --listen "127.0.0.1:$ORIGIN_PORT" >"$work/origin.log" 2>&1 &
pids+=($!)

cat >"$work/gslb.toml" <<EOF
[gslb]
listen = ["127.0.0.1:$GSLB_PORT"]
admin_listen = "127.0.0.1:$ADMIN_PORT"
udp_sockets = 0
policy = "consistent_hash"

[gslb.health]
interval = "100ms"
timeout = "90ms"

[[gslb.zones]]
name = "cdn.example.com"
nameservers = ["ns1.cdn.example.com"]
hostmaster = "hostmaster.cdn.example.com"
cdn_names = ["www.cdn.example.com"]

[[gslb.regions]]
name = "us"
latitude = 38.9
longitude = -77.0
networks = ["10.0.0.0/8", "198.51.100.0/24", "2001:db8:1::/48"]

[[gslb.regions]]
name = "eu"
latitude = 50.1
longitude = 8.7
networks = ["192.0.2.0/24", "10.1.0.0/16", "2001:db8:2::/48"]

[[gslb.regions]]
name = "ap"
latitude = 35.7
longitude = 139.7
networks = ["203.0.113.0/24", "10.2.0.0/16"]

[[gslb.edges]]
name = "us-1"
ipv4 = "127.0.0.11"
region = "us"
health_url = "http://127.0.0.1:$ORIGIN_PORT/healthz"

[[gslb.edges]]
name = "us-2"
ipv4 = "127.0.0.12"
region = "us"
health_url = "http://127.0.0.1:$ORIGIN_PORT/healthz"

[[gslb.edges]]
name = "eu-1"
ipv4 = "127.0.0.21"
region = "eu"
health_url = "http://127.0.0.1:$ORIGIN_PORT/healthz"

[[gslb.edges]]
name = "ap-1"
ipv4 = "127.0.0.31"
region = "ap"
health_url = "http://127.0.0.1:$ORIGIN_PORT/healthz"
EOF
"$cdn" gslb --config "$work/gslb.toml" >"$work/gslb.log" 2>&1 &
pids+=($!)

mkdir -p "$work/knot"
cat >"$work/knot/cdn.example.com.zone" <<'EOF'
$ORIGIN cdn.example.com.
$TTL 30
@    SOA ns1 hostmaster 1 3600 600 604800 30
@    NS  ns1
ns1  A   127.0.0.1
www  A   127.0.0.11
EOF
cat >"$work/knot/knot.conf" <<EOF
server:
    rundir: "$work/knot"
    listen: 127.0.0.1@$KNOT_PORT
database:
    storage: "$work/knot"
log:
  - target: stderr
    any: warning
zone:
  - domain: cdn.example.com
    storage: "$work/knot"
    file: cdn.example.com.zone
EOF
knotd -c "$work/knot/knot.conf" >"$work/knot.log" 2>&1 &
pids+=($!)

# Wait (bounded) until both answer.
for _ in $(seq 100); do
    if dig +time=1 +tries=1 @127.0.0.1 -p "$GSLB_PORT" www.cdn.example.com +short 2>/dev/null | grep -q . &&
        dig +time=1 +tries=1 @127.0.0.1 -p "$KNOT_PORT" www.cdn.example.com +short 2>/dev/null | grep -q .; then
        break
    fi
    sleep 0.1
done
dig @127.0.0.1 -p "$GSLB_PORT" www.cdn.example.com +subnet=192.0.2.0/24 +short >&2 || true

echo "www.cdn.example.com A" >"$work/queries.txt"
# ECS option 8: family 1 (IPv4), source /24, scope 0, address 192.0.2.
ecs="8:000118""00""c00002"

run() {
    dnsperf -s 127.0.0.1 -p "$1" -d "$work/queries.txt" -l "$SECONDS_PER_RUN" -c "$CLIENTS" \
        -q "$OUTSTANDING" -e -E "$ecs" 2>&1 | tee "$work/dnsperf-$1.log" >&2
    awk '/Queries per second:/ {print int($4)}' "$work/dnsperf-$1.log"
}

echo "== dnsperf against our gslb (geo + ECS + health checks) ==" >&2
ours=$(run "$GSLB_PORT")
echo "== dnsperf against Knot $(knotd --version | awk '{print $NF}') (static zone) ==" >&2
knot=$(run "$KNOT_PORT")

probes=$(curl -s "http://127.0.0.1:$ADMIN_PORT/edges" | grep -o '"probes":[0-9]*' | head -1 || true)
echo
echo "gslb: $ours qps   knot: $knot qps   ratio gslb/knot: $(awk -v a="$ours" -v b="$knot" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
echo "(health checks ran during the test: first edge $probes)"
