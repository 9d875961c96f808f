//! How the binaries end: an error is printed as `Error: ...` with its causes, one per line, and
//! never with a backtrace (whatever `RUST_BACKTRACE` says: a backtrace tells a user nothing and
//! buries the message); an interruption (SIGINT / SIGTERM) is not an error and exits 130.

use std::process::ExitCode;

/// The error a binary returns when a signal stopped it: printed without `Error:`, exit 130.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted: {}", self.0)
    }
}

impl std::error::Error for Interrupted {}

/// The text [`report`] prints for `e`: the error, then `Caused by:` and each cause.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("Error: {e}");
    let mut causes = std::iter::successors(e.source(), |c| c.source()).peekable();
    if causes.peek().is_some() {
        text += "\n\nCaused by:";
        for (i, c) in causes.enumerate() {
            text += &format!("\n    {i}: {c}");
        }
    }
    text
}

/// Ends a binary's `main`: success exits 0, an [`Interrupted`] 130, any other error 1, each
/// with its message on stderr.
pub fn report<E>(result: Result<(), E>) -> ExitCode
where
    E: AsRef<dyn std::error::Error + Send + Sync + 'static>,
{
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e: &(dyn std::error::Error + 'static) = e.as_ref();
            if let Some(i) = e.downcast_ref::<Interrupted>() {
                eprintln!("{i}");
                return ExitCode::from(130);
            }
            eprintln!("{}", describe(e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "reading config.yaml")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn an_error_is_described_with_its_causes_and_no_backtrace() {
        let e = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(describe(&e), "Error: reading config.yaml\n\nCaused by:\n    0: disk on fire");
        let interrupted: Box<dyn std::error::Error + Send + Sync> =
            Box::new(Interrupted("after seq 3".into()));
        assert_eq!(report(Err(interrupted)), ExitCode::from(130));
    }
}
