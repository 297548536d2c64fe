//! The `cdn bench …` command line: flag definitions (clap) and what each subcommand runs and
//! prints. The `cdn` binary embeds [`BenchCommand`] and calls [`run`].

use crate::compare::{self, CompareOptions};
use crate::dns::{self, Cidr, DnsOptions, Names, Transport};
use crate::hitratio::{self, CacheSize, HitRatioOptions, TraceSource};
use crate::http::{self, default_threads, HttpOptions};
use crate::load::{Pace, Stop};
use crate::workload::{Popularity, SizeModel, Trace};
use crate::BenchError;
use cdn_config::HumanDuration;
use clap::{Args, Subcommand};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `cdn bench …`: load generators, peer comparison, hit-ratio lab.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Load an HTTP cache (ours or any) and report req/s, latency, errors, hit ratio, offload.
    Http(HttpArgs),
    /// Load a DNS server and report queries/s, latency and answer codes.
    Dns(DnsArgs),
    /// Run the same workloads against our edge, nginx and Varnish; print one table.
    Compare(CompareArgs),
    /// Replay a trace through our cache policies next to Bélády and the top-C bound.
    Hitratio(HitRatioArgs),
}

/// How long, how hard, and how to report: the flags `http` and `dns` share.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Run this long (e.g. 10s, 1m). Default: 10s unless --requests is given.
    #[arg(
        long,
        short = 'd',
        value_name = "DURATION",
        conflicts_with = "requests"
    )]
    duration: Option<HumanDuration>,
    /// Send exactly this many requests, then stop.
    #[arg(long, short = 'n', value_name = "N")]
    requests: Option<u64>,
    /// Connections (or UDP sockets) kept open, each with one request in flight.
    #[arg(long, short = 'c', value_name = "N", default_value_t = 64)]
    connections: usize,
    /// Open loop: send at this total rate (requests/s) and measure latency from each request's
    /// intended send time. Without it: closed loop, as fast as answers come.
    #[arg(long, value_name = "PER_SECOND")]
    rate: Option<f64>,
    /// Worker threads of the load generator. Default: one per core.
    #[arg(long, short = 't', value_name = "N")]
    threads: Option<usize>,
    /// Longest wait for one answer (connect included).
    #[arg(long, value_name = "DURATION")]
    timeout: Option<HumanDuration>,
    /// Seed of the random choices (runs with the same seed ask for the same objects).
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Print the results as JSON (no table, no progress bar).
    #[arg(long)]
    json: bool,
    /// Draw latency percentiles and throughput over time into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

impl LoadArgs {
    fn pace(&self) -> Result<Pace, BenchError> {
        match self.rate {
            None => Ok(Pace::Closed),
            Some(rate) if rate.is_finite() && rate > 0.0 => Ok(Pace::Open { rate }),
            Some(rate) => Err(BenchError::usage(format!(
                "--rate must be a positive number, got {rate}"
            ))),
        }
    }

    fn stop(&self) -> Result<Stop, BenchError> {
        match (self.requests, self.duration) {
            (Some(0), _) => Err(BenchError::usage("--requests must be at least 1")),
            (Some(n), _) => Ok(Stop::Count(n)),
            (None, Some(d)) if d.get().is_zero() => {
                Err(BenchError::usage("--duration must be more than 0"))
            }
            (None, Some(d)) => Ok(Stop::Duration(d.get())),
            (None, None) => Ok(Stop::Duration(Duration::from_secs(10))),
        }
    }

    fn threads(&self) -> Result<usize, BenchError> {
        match self.threads {
            Some(0) => Err(BenchError::usage("--threads must be at least 1")),
            Some(n) => Ok(n),
            None => Ok(default_threads()),
        }
    }
}

/// `cdn bench http`.
#[derive(Args, Debug)]
pub struct HttpArgs {
    /// Target URL(s), e.g. http://127.0.0.1:8080/bytes/{size}?k={key}: `{key}` is each
    /// request's key and `{size}` its object size; with several keys and no `{key}`, `k={key}`
    /// is appended to the query. Connections are shared out among the targets.
    #[arg(required = true, value_name = "URL")]
    urls: Vec<String>,
    #[command(flatten)]
    load: LoadArgs,
    /// Requests follow Zipf popularity with this exponent over --keys keys (key 1 hottest).
    #[arg(long, value_name = "ALPHA", conflicts_with_all = ["uniform", "trace"])]
    zipf: Option<f64>,
    /// Requests spread evenly over --keys keys.
    #[arg(long, conflicts_with = "trace")]
    uniform: bool,
    /// Distinct keys for --zipf and --uniform.
    #[arg(long, value_name = "K", default_value_t = 10_000)]
    keys: u64,
    /// Replay this trace: one `KEY_OR_PATH [SIZE]` per line, in order (cycled).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Object size for `{size}`: fixed (1KiB) or drawn once per key, log-uniformly (1KiB..1MiB).
    #[arg(long, value_name = "SIZE|MIN..MAX")]
    size: Option<SizeModel>,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "HEADER")]
    headers: Vec<String>,
    /// origin-mock's base URL (http://HOST:PORT): read its /__stats before and after to report
    /// origin requests and offload.
    #[arg(long, value_name = "URL")]
    origin: Option<String>,
}

/// `cdn bench dns`.
#[derive(Args, Debug)]
pub struct DnsArgs {
    /// The server, e.g. 127.0.0.1:5353.
    #[arg(value_name = "ADDR:PORT")]
    server: SocketAddr,
    #[command(flatten)]
    load: LoadArgs,
    /// A name to query (repeatable); names are drawn at random.
    #[arg(long = "name", value_name = "NAME", conflicts_with_all = ["names", "random_under"])]
    name: Vec<String>,
    /// Read names from this file: `NAME [TYPE]` per line.
    #[arg(long, value_name = "FILE", conflicts_with = "random_under")]
    names: Option<PathBuf>,
    /// Query a new name under this zone every time (q<N>.ZONE), past any answer cache.
    #[arg(long, value_name = "ZONE")]
    random_under: Option<String>,
    /// Query type when a name does not say.
    #[arg(long = "type", value_name = "TYPE", default_value = "A")]
    qtype: String,
    /// Send an EDNS Client Subnet with a random address from these networks (comma-separated,
    /// or @FILE with one CIDR per line).
    #[arg(long, value_name = "CIDR,…|@FILE")]
    ecs: Option<String>,
    /// ECS source prefix length for IPv4 addresses.
    #[arg(long, value_name = "BITS", default_value_t = 24)]
    ecs_prefix_v4: u8,
    /// ECS source prefix length for IPv6 addresses.
    #[arg(long, value_name = "BITS", default_value_t = 56)]
    ecs_prefix_v6: u8,
    /// Query over TCP instead of UDP.
    #[arg(long)]
    tcp: bool,
}

/// `cdn bench compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Length of each workload's run on each system.
    #[arg(long, short = 'd', value_name = "DURATION", default_value = "10s")]
    duration: HumanDuration,
    /// Connections of the load generator (the stampede always uses 1000).
    #[arg(long, short = 'c', value_name = "N", default_value_t = 64)]
    connections: usize,
    /// Cache size given to every system.
    #[arg(long, value_name = "SIZE", default_value = "256MiB")]
    cache_size: cdn_config::HumanSize,
    /// Server threads (the edge's `threads`, nginx's `worker_processes`, Varnish's thread
    /// pool). Default: one per core.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Systems to run, comma-separated: edge, nginx, varnish (missing peers are skipped).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "edge,nginx,varnish",
        value_delimiter = ','
    )]
    systems: Vec<String>,
    /// Workloads to run, comma-separated: hits-1k, hits-100k, zipf, stampede.
    #[arg(
        long,
        value_name = "LIST",
        default_value = "hits-1k,hits-100k,zipf,stampede",
        value_delimiter = ','
    )]
    workloads: Vec<String>,
    /// Compare DNS instead: our gslb against Knot serving a static zone.
    #[arg(long)]
    dns: bool,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// `cdn bench hitratio`.
#[derive(Args, Debug)]
pub struct HitRatioArgs {
    /// Replay this trace: one `KEY_OR_URL [SIZE]` per line.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "zipf",
        required_unless_present = "zipf"
    )]
    trace: Option<PathBuf>,
    /// Generate a Zipf trace with this exponent.
    #[arg(long, value_name = "ALPHA")]
    zipf: Option<f64>,
    /// Distinct keys of the generated trace.
    #[arg(long, value_name = "K", default_value_t = 100_000)]
    keys: u64,
    /// Length of the generated trace.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    requests: u64,
    /// Cache size: objects (1000), bytes (64MiB) or a percentage of the distinct keys (1%).
    #[arg(long, value_name = "SIZE")]
    cache_size: CacheSize,
    /// Object sizes where the trace has none (needed for a byte-sized cache): 10KiB or
    /// 1KiB..1MiB.
    #[arg(long, value_name = "SIZE|MIN..MAX")]
    size: Option<SizeModel>,
    /// Seed of the generated trace.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a bench subcommand and prints its results (a table, or JSON with `--json`).
pub fn run(command: BenchCommand) -> Result<(), BenchError> {
    match command {
        BenchCommand::Http(args) => bench_http(args),
        BenchCommand::Dns(args) => bench_dns(args),
        BenchCommand::Compare(args) => bench_compare(args),
        BenchCommand::Hitratio(args) => bench_hitratio(args),
    }
}

fn print_json(value: &impl Serialize) -> Result<(), BenchError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| BenchError::runtime(format!("cannot write JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

fn bench_http(args: HttpArgs) -> Result<(), BenchError> {
    let popularity = if let Some(alpha) = args.zipf {
        Popularity::zipf(alpha, args.keys)?
    } else if args.uniform {
        if args.keys == 0 {
            return Err(BenchError::usage("--keys must be at least 1"));
        }
        Popularity::Uniform { keys: args.keys }
    } else if let Some(path) = &args.trace {
        Popularity::Trace(Arc::new(Trace::load(path)?))
    } else {
        Popularity::One
    };
    let opts = HttpOptions {
        targets: args.urls,
        popularity,
        sizes: args.size,
        pace: args.load.pace()?,
        stop: args.load.stop()?,
        connections: args.load.connections,
        threads: args.load.threads()?,
        timeout: args
            .load
            .timeout
            .map_or(Duration::from_secs(10), HumanDuration::get),
        headers: args.headers,
        origin: args.origin,
        seed: args.load.seed,
        progress: !args.load.json,
    };
    let report = http::run(&opts)?;
    if let Some(path) = &args.load.plot {
        let title = format!("cdn bench http: {}", opts.targets.join(" "));
        crate::plot::write_svg(path, &title, "requests", &report.timeline)?;
    }
    if args.load.json {
        print_json(&report)
    } else {
        print!("{}", report.table());
        Ok(())
    }
}

fn read_cidrs(spec: &str) -> Result<Vec<Cidr>, BenchError> {
    let text = match spec.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| BenchError::usage(format!("cannot read {path}: {e}")))?,
        None => spec.replace(',', "\n"),
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.parse::<Cidr>()
                .map_err(|e| BenchError::usage(format!("--ecs: {e}")))
        })
        .collect()
}

fn bench_dns(args: DnsArgs) -> Result<(), BenchError> {
    let qtype = dns::qtype(&args.qtype).map_err(|e| BenchError::usage(format!("--type: {e}")))?;
    let names = if let Some(path) = &args.names {
        Names::load(path, qtype)?
    } else if let Some(zone) = args.random_under {
        Names::Random { zone, qtype }
    } else if !args.name.is_empty() {
        for n in &args.name {
            dns::check_name(n).map_err(BenchError::usage)?;
        }
        Names::List(args.name.into_iter().map(|n| (n, qtype)).collect())
    } else {
        return Err(BenchError::usage(
            "say what to query: --name NAME, --names FILE or --random-under ZONE",
        ));
    };
    let ecs = match &args.ecs {
        Some(spec) => read_cidrs(spec)?,
        None => Vec::new(),
    };
    if args.ecs_prefix_v4 > 32 || args.ecs_prefix_v6 > 128 {
        return Err(BenchError::usage(
            "--ecs-prefix-v4 must be ≤ 32 and --ecs-prefix-v6 ≤ 128",
        ));
    }
    let opts = DnsOptions {
        server: args.server,
        names,
        ecs,
        ecs_prefix_v4: args.ecs_prefix_v4,
        ecs_prefix_v6: args.ecs_prefix_v6,
        transport: if args.tcp {
            Transport::Tcp
        } else {
            Transport::Udp
        },
        pace: args.load.pace()?,
        stop: args.load.stop()?,
        connections: args.load.connections,
        threads: args.load.threads()?,
        timeout: args
            .load
            .timeout
            .map_or(Duration::from_secs(2), HumanDuration::get),
        seed: args.load.seed,
        progress: !args.load.json,
    };
    let report = dns::run(&opts)?;
    if let Some(path) = &args.load.plot {
        let title = format!("cdn bench dns: {}", opts.server);
        crate::plot::write_svg(path, &title, "queries", &report.timeline)?;
    }
    if args.load.json {
        print_json(&report)
    } else {
        print!("{}", report.table());
        Ok(())
    }
}

fn bench_compare(args: CompareArgs) -> Result<(), BenchError> {
    let opts = CompareOptions {
        duration: args.duration.get(),
        connections: args.connections,
        cache_bytes: args.cache_size.bytes(),
        workers: args.workers.unwrap_or_else(default_threads),
        systems: args.systems,
        workloads: args.workloads,
        dns: args.dns,
        progress: !args.json,
    };
    let report = compare::run(&opts)?;
    if args.json {
        print_json(&report)
    } else {
        print!("{}", report.table());
        Ok(())
    }
}

fn bench_hitratio(args: HitRatioArgs) -> Result<(), BenchError> {
    let source = match (&args.trace, args.zipf) {
        (Some(path), _) => TraceSource::File(path.clone()),
        (None, Some(alpha)) => TraceSource::Zipf {
            alpha,
            keys: args.keys,
            requests: args.requests,
            seed: args.seed,
        },
        (None, None) => return Err(BenchError::usage("give --trace FILE or --zipf ALPHA")),
    };
    let report = hitratio::run(&HitRatioOptions {
        source,
        sizes: args.size,
        cache_size: args.cache_size,
    })?;
    if args.json {
        print_json(&report)
    } else {
        print!("{}", report.table());
        Ok(())
    }
}
