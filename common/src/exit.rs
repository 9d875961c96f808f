//! How the binaries end: an error is printed as `error: ...` with each distinct cause once, and
//! with a backtrace only where a developer asks for one (`RUST_LIB_BACKTRACE=1`; a user's
//! `RUST_BACKTRACE=1` alone does not bury the message under frames); an interruption (SIGINT /
//! SIGTERM) is not an error and exits 130.

use std::process::ExitCode;

/// The error a binary returns when a signal stopped it: printed as `interrupted: ...`, exit 130.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted: {}", self.0)
    }
}

impl std::error::Error for Interrupted {}

/// The text [`report`] prints for `e`: `error: ` and the error, then each cause its message
/// does not already end with (a wrapped I/O error's text is usually repeated by its wrapper).
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("error: {e}");
    let mut shown = e.to_string();
    let mut causes = Vec::new();
    for c in std::iter::successors(e.source(), |c| c.source()) {
        let c = c.to_string();
        if !shown.ends_with(&c) {
            causes.push(c.clone());
        }
        shown = c;
    }
    if !causes.is_empty() {
        text += "\n\ncaused by:";
        for (i, c) in causes.iter().enumerate() {
            text += &format!("\n    {i}: {c}");
        }
    }
    text
}

/// Ends a binary's `main`: success exits 0, an [`Interrupted`] 130, any other error 1, each
/// with its message on stderr.
pub fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(i) = e.downcast_ref::<Interrupted>() {
                eprintln!("{i}");
                return ExitCode::from(130);
            }
            if std::env::var_os("RUST_LIB_BACKTRACE").is_some_and(|v| v == "1") {
                // A developer asked: anyhow's report, its backtrace included.
                eprintln!("error: {e:?}");
            } else {
                eprintln!("{}", describe(e.as_ref()));
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(&'static str, std::io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}", self.0)
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn an_error_is_described_with_each_distinct_cause_once() {
        let io = || std::io::Error::other("No such file or directory");
        let e = Wrapped("reading config.yaml", io());
        assert_eq!(
            describe(&e),
            "error: reading config.yaml\n\ncaused by:\n    0: No such file or directory"
        );
        // The wrapper already says its cause: printed once.
        let e = Wrapped("deploy/nope.yaml: No such file or directory", io());
        assert_eq!(describe(&e), "error: deploy/nope.yaml: No such file or directory");
        assert_eq!(report(Err(Interrupted("after seq 3".into()).into())), ExitCode::from(130));
    }
}
