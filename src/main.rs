//! `cdn`: the command line of the CDN. It parses arguments, loads the config and starts the
//! chosen parts; the parts themselves live in their crates.

mod cache_admin;
mod run;

/// mimalloc instead of the system allocator: Pingora allocates header maps per request, and
/// glibc's malloc/free took about a fifth of the edge's CPU on cache hits (see benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// An open-source CDN: caching edge, origin mock and tools, in one command.
///
/// With no subcommand, runs the whole CDN locally from the embedded default config
/// (origin-mock on 127.0.0.1:8081, an edge on 127.0.0.1:8080, its admin API on 127.0.0.1:9080,
/// a second edge on 127.0.0.2, and the gslb answering DNS on 127.0.0.1:5353).
#[derive(Parser, Debug)]
#[command(name = "cdn", version, about, long_about)]
struct Cli {
    /// Run every part described in this config file instead of the embedded default.
    #[arg(long, short, value_name = "FILE", global = false)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one edge (the caching reverse proxy) from the [edge] table of a config file.
    Edge {
        /// The config file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run origin-mock, the test origin, from a config file's [origin_mock] table or from flags.
    Origin(OriginArgs),
    /// Run the gslb (authoritative DNS sending clients to the nearest healthy edge) from the
    /// [gslb] table of a config file. SIGHUP reloads the file.
    Gslb {
        /// The config file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print a signed URL for a route that requires signatures, with a key from the config.
    Sign(SignArgs),
    /// Remove cached responses from an edge: by URL, URL prefix or cache tag.
    Purge(cache_admin::PurgeArgs),
    /// Fetch a list of URLs into an edge's cache, with a progress bar and a summary.
    Prewarm(cache_admin::PrewarmArgs),
    /// Load-test HTTP caches and DNS servers, compare with nginx/Varnish, replay cache policies.
    Bench {
        #[command(subcommand)]
        command: cdn_bench::cli::BenchCommand,
    },
    /// Check or print config files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Args, Debug)]
struct OriginArgs {
    /// The config file whose [origin_mock] table to use.
    #[arg(long, short, value_name = "FILE", conflicts_with = "listen")]
    config: Option<PathBuf>,
    /// Address to listen on (instead of a config file).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Share of requests (0.0 to 1.0) answered with an injected 500; overrides the config.
    #[arg(long, value_name = "RATE")]
    fail_rate: Option<f64>,
    /// Delay added before every response, e.g. "20ms"; overrides the config.
    #[arg(long, value_name = "DURATION")]
    delay: Option<cdn_config::HumanDuration>,
}

#[derive(Args, Debug)]
struct SignArgs {
    /// The URL to sign, e.g. http://127.0.0.1:8080/private/a.
    url: String,
    /// The key id, one of the covering route's [[edge.routes.signed.keys]].
    #[arg(long, value_name = "KID")]
    kid: String,
    /// How long the link works, e.g. "60" (seconds), "15m", "1h".
    #[arg(long, value_name = "DURATION")]
    ttl: String,
    /// Bind the link to this client address.
    #[arg(long, value_name = "ADDR")]
    ip: Option<std::net::IpAddr>,
    /// Make the link cover every path under this prefix, e.g. /private/videos/.
    #[arg(long, value_name = "PREFIX")]
    acl: Option<String>,
    /// The config file holding the route and its key (default: the embedded default).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate a config file and print every error; exit 0 if valid, 2 if not.
    Check {
        /// The config file.
        file: PathBuf,
    },
    /// Print the embedded default config (a commented TOML file to copy and edit).
    Default,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    run::init_logging();
    let result = match cli.command {
        None => run::local_cdn(cli.config.as_deref()),
        Some(Command::Edge { config }) => run::edge(&config),
        Some(Command::Origin(args)) => run::origin(run::OriginRequest {
            config: args.config,
            listen: args.listen,
            fail_rate: args.fail_rate,
            delay: args.delay,
        }),
        Some(Command::Gslb { config }) => run::gslb(&config),
        Some(Command::Sign(args)) => run::sign(run::SignArgs {
            config: args.config,
            url: args.url,
            kid: args.kid,
            ttl: args.ttl,
            ip: args.ip,
            acl: args.acl,
        }),
        Some(Command::Bench { command }) => run::bench(command),
        Some(Command::Purge(args)) => cache_admin::purge(args),
        Some(Command::Prewarm(args)) => cache_admin::prewarm(args),
        Some(Command::Config {
            command: ConfigCommand::Check { file },
        }) => run::config_check(&file),
        Some(Command::Config {
            command: ConfigCommand::Default,
        }) => {
            print!("{}", cdn_config::DEFAULT_TOML);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
