use crate::Runtime;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

/// How a boundary's crossings were counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrossingsMethod {
    /// Not counted: only the samples saw this boundary.
    #[default]
    None,
    /// Every crossing counted by seam's probes while they were armed.
    Exact,
    /// Counted while the probes were armed and extrapolated over the time they
    /// were not (the overhead budget disarms them in duty cycles).
    Extrapolated,
}

/// Context switches of the target's threads while in a boundary's glue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switches {
    /// The thread blocked (waited for a lock, the GIL, I/O, a futex).
    pub voluntary: u64,
    /// The thread was preempted while runnable.
    pub involuntary: u64,
}

impl Switches {
    pub fn total(&self) -> u64 {
        self.voluntary + self.involuntary
    }
}

/// A boundary (caller runtime, callee runtime, mechanism) and what seam saw of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Boundary {
    pub caller: Runtime,
    /// `Unknown` while a call is still in its glue and its callee is not yet on the stack.
    pub callee: Runtime,
    pub mechanism: Mechanism,
    /// Samples whose stack passes through this boundary.
    pub samples: u64,
    /// Samples on CPU in this boundary's glue (kernel code called from the glue included).
    pub glue_samples: u64,
    /// Crossings counted (or extrapolated, see `crossings_method`); None when not counted.
    #[serde(default)]
    pub crossings: Option<u64>,
    #[serde(default)]
    pub crossings_method: CrossingsMethod,
    /// One standard error of an extrapolated count (0 when exact).
    #[serde(default)]
    pub crossings_error: u64,
    /// When the first probe counting this boundary was armed (CLOCK_MONOTONIC ns):
    /// crossings before that are not in `crossings`.
    #[serde(default)]
    pub armed_at_ns: Option<u64>,
    /// Seconds during which this boundary's probes were armed.
    #[serde(default)]
    pub armed_s: f64,
    /// Crossings by the probed function that carries them.
    #[serde(default)]
    pub functions: BTreeMap<String, u64>,
    /// Time the target's threads spent off CPU while in this boundary's glue, ns.
    #[serde(default)]
    pub off_cpu_ns: u64,
    #[serde(default)]
    pub switches: Switches,
    /// Off-CPU ns by cause (`gil`, `go-p-handoff`, `needm`, `runtime-start`, `lock`, `io`, `sleep`, `other`).
    #[serde(default)]
    pub causes: BTreeMap<String, u64>,
}

impl Boundary {
    pub fn new(caller: Runtime, callee: Runtime, mechanism: Mechanism) -> Boundary {
        Boundary {
            caller,
            callee,
            mechanism,
            samples: 0,
            glue_samples: 0,
            crossings: None,
            crossings_method: CrossingsMethod::None,
            crossings_error: 0,
            armed_at_ns: None,
            armed_s: 0.0,
            functions: BTreeMap::new(),
            off_cpu_ns: 0,
            switches: Switches::default(),
            causes: BTreeMap::new(),
        }
    }
}

/// What seam's own probes cost the target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeOverhead {
    /// Probe hits counted in the target.
    pub hits: u64,
    /// Hits in other processes that map a probed file (they paid for them too).
    pub foreign_hits: u64,
    /// Hits the kernel dropped (a full ring): missing from the counts.
    pub lost_hits: u64,
    /// Calibrated cost of one hit, ns (at start, on a thread of seam's own),
    /// by how the kernel runs the probed instruction.
    pub ns_per_hit_emulated: f64,
    pub ns_per_hit_single_step: f64,
    /// Samples of the target taken in the probes' traps: their cost seen in place.
    #[serde(default)]
    pub trap_samples: u64,
    /// Estimated CPU time the probes added to the target, ns: the hits at
    /// their calibrated cost, or the traps' share of the target's samples
    /// when that is more (once `trap_samples` reaches 20).
    pub cost_ns: u64,
    /// `cost_ns` per hit.
    #[serde(default)]
    pub ns_per_hit: f64,
    /// The hits at their calibrated cost, ns (`cost_ns` when the traps'
    /// samples show no more).
    #[serde(default)]
    pub calibrated_cost_ns: u64,
    /// `cost_ns` as a share of the target's CPU time over the recording.
    pub share: f64,
    /// The budget asked for (a share), if any.
    pub budget: Option<f64>,
    /// Share of the recording during which the probes were armed.
    pub armed_share: f64,
    /// Probes armed (sites) and the kernel objects opened for them (BPF
    /// links, or perf events: one per CPU and site).
    pub sites: u64,
    pub events_opened: u64,
    /// How the probes were made: `bpf` (uprobe_multi links, the target's
    /// hits only) or `perf` (uprobe events for all processes).
    #[serde(default)]
    pub via: String,
    /// Sites that could not be armed, with the reason.
    pub failed: BTreeMap<String, String>,
    /// Time from a module's load to its probes armed, ms (max over modules).
    pub arm_latency_ms_max: Option<f64>,
    /// Go modules whose runtime's own count of its cgo calls seam read: their
    /// Go → C calls are counted exactly whether probed or not.
    #[serde(default)]
    pub go_counted: Vec<String>,
    /// Go modules whose count could not be read, with why (a stripped build):
    /// their Go → C calls are counted by the probes alone.
    #[serde(default)]
    pub go_uncounted: BTreeMap<String, String>,
}

/// What sampling costs the target: the kernel's work at each sample (timer
/// interrupt, registers, callchain, stack copy), in the sampled thread.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SamplingOverhead {
    /// Measured cost of one sample, ns (at start, on a thread of seam's own
    /// with `calibration_stack_bytes` of stack to copy).
    pub ns_per_sample: f64,
    pub calibration_stack_bytes: u64,
    /// Samples taken in the target: on CPU, and switch-outs with their stack.
    pub samples: u64,
    /// Estimated CPU time sampling added to the target, ns.
    pub cost_ns: u64,
    /// `cost_ns` as a share of the target's CPU time over the recording.
    pub share: f64,
    /// The budget asked for (a share of the target's CPU for sampling and
    /// probes together), if any.
    pub budget: Option<f64>,
    /// The highest rate (Hz) whose sampling fits its part of the budget:
    /// half of it when crossings are counted or switch-outs take their stack
    /// (the probes and those stacks get the rest), all of it otherwise. None
    /// without a budget.
    pub rate_fits_hz: Option<u32>,
    /// Sampling alone (at the rate asked for) exceeds the budget.
    pub over_budget: bool,
    /// The share of the recording in which the switch-outs' stacks were not
    /// taken, to keep sampling within the budget (a switch-out was then given
    /// its thread's latest stack, or one that says none was taken).
    #[serde(default)]
    pub switch_stacks_paused: f64,
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
