//! What the bench's integration tests share: parsing `orisun bench` arguments into
//! [`BenchOptions`], and finding the `orisun` binary that serves.

use clap::Parser;
use orisun_bench::BenchOptions;
use std::path::PathBuf;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchOptions,
}

/// Parses the arguments of `orisun bench` (the first one is the program name) as the command
/// line does.
pub fn options<I, T>(args: I) -> BenchOptions
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(args).expect("options parse").bench
}

/// The `orisun` binary: `ORISUN_BIN`, or `target/<profile>/orisun` beside this test's own
/// `target/<profile>/deps/<test>-<hash>` (built by `cargo build -p orisun` or a workspace
/// `cargo test`).
#[allow(dead_code)] // library.rs starts no server
pub fn server_binary() -> PathBuf {
    if let Ok(path) = std::env::var("ORISUN_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let bin = profile_dir.join(format!("orisun{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p orisun` (or set ORISUN_BIN)",
        bin.display()
    );
    bin
}
