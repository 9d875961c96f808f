//! The orchestrator carries no libtorch: `casrap` reads replay stores, checkpoints and records in
//! plain Rust and starts actor processes for everything that holds a model (test mode, eval).

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn shared_libraries(bin: &std::path::Path) -> String {
    let out = Command::new("ldd").arg(bin).output().unwrap();
    assert!(
        out.status.success(),
        "ldd {}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("libc.so"), "ldd listed nothing for {}:\n{text}", bin.display());
    text
}

#[test]
fn casrap_links_no_libtorch_and_the_actor_does() {
    let casrap = shared_libraries(env!("CARGO_BIN_EXE_casrap").as_ref());
    assert!(!casrap.contains("libtorch") && !casrap.contains("libc10"), "{casrap}");
    // The same check on the actor, which must link it, shows that the check can see it.
    let actor = casrap_deploy::procs::locate("casrap-actor").unwrap();
    assert!(shared_libraries(&actor).contains("libtorch"), "casrap-actor without libtorch?");
}
