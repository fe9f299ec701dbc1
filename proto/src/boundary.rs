use crate::Runtime;
use serde::{Deserialize, Serialize};

/// How a call crosses from one runtime to another (DESIGN.md's vocabulary).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    Ctypes,
    CffiAbi,
    CffiApi,
    Cext,
    Pyo3,
    CgoExport,
    CgoCall,
    CAbi,
    Callback,
}

impl Mechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Ctypes => "ctypes",
            Mechanism::CffiAbi => "cffi-abi",
            Mechanism::CffiApi => "cffi-api",
            Mechanism::Cext => "cext",
            Mechanism::Pyo3 => "pyo3",
            Mechanism::CgoExport => "cgo-export",
            Mechanism::CgoCall => "cgo-call",
            Mechanism::CAbi => "c-abi",
            Mechanism::Callback => "callback",
        }
    }
}

/// A boundary (caller runtime, callee runtime, mechanism) and what the
/// samples saw of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Boundary {
    pub caller: Runtime,
    /// `Unknown` while a call is still in its glue and its callee is not yet on the stack.
    pub callee: Runtime,
    pub mechanism: Mechanism,
    /// Samples whose stack passes through this boundary.
    pub samples: u64,
    /// Samples on CPU in this boundary's glue (kernel code called from the glue included).
    pub glue_samples: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde() {
        for m in [
            Mechanism::Ctypes,
            Mechanism::CffiAbi,
            Mechanism::CgoExport,
            Mechanism::CAbi,
        ] {
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.as_str())
            );
        }
    }
}
