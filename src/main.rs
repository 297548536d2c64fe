//! `cdn`: the command line of the CDN. It parses arguments, loads the config and starts the
//! chosen parts; the parts themselves live in their crates.

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
/// (origin-mock on 127.0.0.1:8081, an edge on 127.0.0.1:8080, its admin API on 127.0.0.1:9080).
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
