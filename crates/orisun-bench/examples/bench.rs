//! Runs the benchmark without the `orisun` CLI (e.g. while developing the instrument):
//! `cargo run --release -p orisun-bench --example bench -- --server-bin target/release/orisun`.
//! Without `--server-bin` it looks for `orisun` next to this example's build directory.

use clap::Parser;
use orisun_bench::BenchOptions;

#[derive(Parser)]
#[command(name = "bench")]
struct Cli {
    #[command(flatten)]
    bench: BenchOptions,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    if cli.bench.server_bin.is_none() && cli.bench.addr.is_none() {
        // target/<profile>/examples/bench -> target/<profile>/orisun
        let exe = std::env::current_exe()?;
        let dir = exe.parent().and_then(|p| p.parent());
        cli.bench.server_bin = dir.map(|d| d.join("orisun"));
    }
    orisun_bench::run(cli.bench).await.map(|_| ())
}
