//! Runs `interop/python/run.sh` (a grpcio client with stubs generated from our .proto files)
//! against the `orisun` binary. Set `ORISUN_SKIP_PYTHON_INTEROP=1` to skip it where neither
//! python3 nor PyPI is available.

mod support;

use std::path::Path;
use std::process::Command;
use support::*;

#[test]
fn python_grpcio_client_interoperates() {
    if std::env::var_os("ORISUN_SKIP_PYTHON_INTEROP").is_some() {
        eprintln!("skipped: ORISUN_SKIP_PYTHON_INTEROP is set");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/python/run.sh");
    let server = Server::start(&[]);
    let output = Command::new("bash")
        .arg(&script)
        .arg(&server.grpc)
        .arg("admin")
        .arg("changeit")
        .output()
        .expect("run interop/python/run.sh");
    let out = String::from_utf8_lossy(&output.stdout);
    eprintln!("{out}{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the Python interop test failed");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    assert!(server.terminate());
}
