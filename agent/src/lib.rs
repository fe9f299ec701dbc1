//! seam agent: see the crate description.
