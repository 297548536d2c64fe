//! Why a bench command failed, and which exit status that deserves.

use std::fmt;

/// A bench command's failure: a message for stderr, and whether the user asked for something
/// impossible (exit status 2, as for every bad flag of `cdn`) or the run itself failed (1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchError {
    /// What went wrong, for a person.
    pub message: String,
    /// True when the arguments or input files were at fault.
    pub usage: bool,
}

impl BenchError {
    /// A failure caused by the arguments or the files they name.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            usage: true,
        }
    }

    /// A failure while running (a server that cannot be reached, a process that did not start).
    pub fn runtime(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            usage: false,
        }
    }

    /// The process exit status for this failure: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.usage {
            2
        } else {
            1
        }
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BenchError {}
