//! The reference llama-server for the tests that run it (`llama_server.rs`, `fp8_study.rs`),
//! and a free loopback port to serve it on.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The reference llama-server. Without `$LLAMA_SERVER` and without the shared peer script the
/// test cannot run; it then skips loudly, unless `EDGEBENCH_REQUIRE_PEERS=1` (CI) makes that a
/// failure.
pub fn llama_server() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("LLAMA_SERVER") {
        return Some(PathBuf::from(p));
    }
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/scripts/peer-llama-tools.sh");
    if !script.is_file() {
        assert!(
            std::env::var_os("EDGEBENCH_REQUIRE_PEERS").is_none(),
            "EDGEBENCH_REQUIRE_PEERS is set but neither LLAMA_SERVER nor {} exists",
            script.display()
        );
        eprintln!("SKIPPED: no reference llama-server (set LLAMA_SERVER to run this test)");
        return None;
    }
    let out = Command::new(&script).output().expect("peer-llama-tools.sh");
    assert!(out.status.success(), "peer-llama-tools.sh failed");
    Some(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("llama-server"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
