use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Who owns a frame (see DESIGN.md's vocabulary).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// A Python function frame read from the interpreter.
    Python,
    /// Native code with no other owner, the interpreter's own C code included.
    C,
    Go,
    Rust,
    Kernel,
    /// Code that exists only to carry a call across runtimes (libffi, ctypes, cgo, ...).
    Glue,
    /// No owner could be found: an unsymbolized address or a `[truncated]` marker.
    Unknown,
}

impl Runtime {
    pub const ALL: [Runtime; 7] = [
        Runtime::Python,
        Runtime::C,
        Runtime::Go,
        Runtime::Rust,
        Runtime::Kernel,
        Runtime::Glue,
        Runtime::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Python => "python",
            Runtime::C => "c",
            Runtime::Go => "go",
            Runtime::Rust => "rust",
            Runtime::Kernel => "kernel",
            Runtime::Glue => "glue",
            Runtime::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Runtime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Runtime::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown runtime {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Runtime::ALL {
            assert_eq!(r.as_str().parse::<Runtime>().unwrap(), r);
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
        assert!("perl".parse::<Runtime>().is_err());
    }
}
