//! Shutdown signals, the same for every CASRAP process.

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown signal received");
}

/// The environment variable an orchestrator sets to its own pid in the processes it starts.
pub const PARENT_ENV: &str = "CASRAP_PARENT_PID";

/// How often an orphan check looks at the parent.
const ORPHAN_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Whether this process was started by an orchestrator (its pid in [`PARENT_ENV`]) that is no
/// longer its parent: the orchestrator died (even by SIGKILL) and the process was re-parented.
/// `None` when no orchestrator is named.
pub fn orphaned() -> Option<bool> {
    let want: u32 = std::env::var(PARENT_ENV).ok()?.trim().parse().ok()?;
    #[cfg(unix)]
    return Some(std::os::unix::process::parent_id() != want);
    #[cfg(not(unix))]
    {
        let _ = want;
        None
    }
}

/// Resolves once [`orphaned`] says so; never when no orchestrator is named.
///
/// A poll of the parent id rather than `prctl(PR_SET_PDEATHSIG)`: the kernel sends that signal
/// when the *thread* that forked the child exits, and an orchestrator that starts processes
/// from a pooled thread (tokio's blocking pool retires idle threads) would kill healthy
/// children. The parent id changes only when the whole parent process is gone.
pub async fn orphan() {
    if orphaned().is_none() {
        return std::future::pending().await;
    }
    loop {
        if orphaned() == Some(true) {
            tracing::warn!("the orchestrator that started this process is gone; shutting down");
            return;
        }
        tokio::time::sleep(ORPHAN_POLL).await;
    }
}

/// [`shutdown`] or [`orphan`], whichever comes first.
pub async fn shutdown_or_orphaned() {
    tokio::select! {
        () = shutdown() => {}
        () = orphan() => {}
    }
}
