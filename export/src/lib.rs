//! seam views: see the crate description.
