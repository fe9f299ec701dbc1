use std::io;

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The output could not be written.
    #[error("writing the export failed: {0}; check that the output path is writable and the disk is not full")]
    Io(#[from] io::Error),
    /// inferno refused to draw the folded stacks.
    #[error("drawing the flamegraph failed: {0}; the folded stacks can still be written with write_folded")]
    Flamegraph(io::Error),
    /// The summary could not be serialized or written as JSON.
    #[error("writing the summary JSON failed: {0}")]
    Json(#[from] serde_json::Error),
    /// A line of a folded-stacks input is not `frame;frame;... COUNT`.
    #[error("{input}:{line}: {reason}")]
    Folded {
        input: String,
        line: usize,
        reason: String,
    },
    /// One side of a differential flamegraph has no samples.
    #[error("{0} holds no samples: there is nothing to compare")]
    NothingToCompare(String),
}
