//! The `orisun` command: `serve` runs the event store server (also the default with no
//! subcommand, configured by `ORISUN_*` variables), `call` sends one RPC as JSON, `bench`
//! benchmarks a server (see `orisun-bench`), `migrations print` writes the PostgreSQL schema,
//! `projections status` shows the replica sets of projection workers.

mod call;
mod migrations;
mod projections;
mod serve;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// jemalloc instead of the system allocator: a server call allocates and frees dozens of small
/// buffers (HTTP/2 frames, protobuf messages, JSON values, spans) on tokio worker threads, and
/// with glibc's malloc that was about a seventh of the server's CPU at 64 clients (see
/// docs/performance.md, "Where one event's time goes").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "orisun",
    version,
    about = "Orisun: an event store with a gRPC API."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the server (the default). Every setting comes from its ORISUN_* variable.
    Serve(Box<orisun_server::Config>),
    /// Sends one RPC with a JSON request and prints the JSON response.
    Call(Box<call::CallArgs>),
    /// Benchmarks a server (started here, or `--addr`): events/s, latency, RSS, raw PG ratios.
    Bench(Box<orisun_bench::BenchOptions>),
    /// Works with the PostgreSQL schema: `print` writes the SQL Orisun would apply.
    Migrations(migrations::MigrationsArgs),
    /// Works with projection workers: `status` shows replica sets, holders, checkpoints, lag.
    Projections(projections::ProjectionsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Serve(config)) => serve::run(*config).await,
            None => match orisun_server::Config::from_env() {
                Ok(config) => serve::run(config).await,
                Err(e) => e.exit(),
            },
            Some(Command::Call(args)) => call::run(*args).await,
            Some(Command::Bench(opts)) => orisun_bench::run(*opts).await.map(|_| ()),
            Some(Command::Migrations(args)) => migrations::run(args),
            Some(Command::Projections(args)) => projections::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
