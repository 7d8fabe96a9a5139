//! Runs `interop/python_legacy/run.sh` (a grpcio client with stubs generated from the 2025
//! `eventstore` proto, plus today's) against the `orisun` binary: saves, reads, conflicts and
//! subscriptions through the old API, cross-reads with today's API, equal errors for bad input,
//! and the index RPCs on `orisun.Admin`. Set `ORISUN_SKIP_PYTHON_INTEROP=1` to skip it where
//! neither python3 nor PyPI is available.

mod support;

use std::path::Path;
use std::process::Command;
use support::*;

#[test]
fn python_clients_of_older_apis_interoperate() {
    if std::env::var_os("ORISUN_SKIP_PYTHON_INTEROP").is_some() {
        eprintln!("skipped: ORISUN_SKIP_PYTHON_INTEROP is set");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/python_legacy/run.sh");
    let server = Server::start(&[]);
    let output = Command::new("bash")
        .arg(&script)
        .arg(&server.grpc)
        .arg("admin")
        .arg("changeit")
        .output()
        .expect("run interop/python_legacy/run.sh");
    let out = String::from_utf8_lossy(&output.stdout);
    eprintln!("{out}{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "the older-clients interop test failed"
    );
    assert!(out.contains(" passed, 0 failed"), "{out}");
    assert!(server.terminate());
}
