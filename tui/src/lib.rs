//! seam top: see the crate description.
