//! Finding the interpreters the tests run against (pyenv's, and Debian's
//! builds of the newest on `PATH`), and skipping loudly.

use std::path::{Path, PathBuf};

/// `$PYENV_ROOT/versions/<minor>.<patch>` for the newest installed patch of `minor` ("3.12").
pub(crate) fn pyenv_prefix(minor: &str) -> Option<PathBuf> {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")))
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| PathBuf::from("/root/.pyenv"));
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(root.join("versions"))
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let patch = name.strip_prefix(minor)?.strip_prefix('.')?.parse().ok()?;
            Some((patch, e.path()))
        })
        .collect();
    found.sort();
    let (_, prefix) = found.pop()?;
    prefix
        .join(format!("bin/python{minor}"))
        .is_file()
        .then_some(prefix)
}

pub(crate) fn pyenv_python(minor: &str) -> Option<PathBuf> {
    pyenv_prefix(minor).map(|p| p.join(format!("bin/python{minor}")))
}

/// A CPython `minor` ("3.14") to test against: pyenv's newest patch, else
/// `python{minor}` on `PATH` (CI puts Debian's builds of 3.14 and 3.15
/// there, see `.ci/debian-python`), with its links resolved.
pub(crate) fn python(minor: &str) -> Option<PathBuf> {
    pyenv_python(minor).or_else(|| {
        let name = format!("python{minor}");
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join(&name))
            .find(|p| p.is_file())?
            .canonicalize()
            .ok()
    })
}

/// The prefix [`python`] was installed under: pyenv's, else the folder
/// above the executable's `bin`.
pub(crate) fn python_prefix(minor: &str) -> Option<PathBuf> {
    pyenv_prefix(minor).or_else(|| Some(python(minor)?.parent()?.parent()?.to_path_buf()))
}

/// The file of [`python_prefix`] that holds `_PyRuntime`: pyenv's shared
/// `libpython`, or the executable where libpython is linked in (Debian's).
pub(crate) fn runtime_file(prefix: &Path, minor: &str) -> PathBuf {
    let lib = prefix.join(format!("lib/libpython{minor}.so.1.0"));
    if lib.is_file() {
        lib
    } else {
        prefix.join(format!("bin/python{minor}"))
    }
}

/// Skips a test part with a loud message, or fails when `SEAM_REQUIRE_PRIVILEGED=1` (CI).
pub(crate) fn require_or_skip(why: &str) {
    if std::env::var_os("SEAM_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1") {
        panic!("{why} (SEAM_REQUIRE_PRIVILEGED=1, so this fails instead of skipping)");
    }
    eprintln!("SKIPPED: {why}");
}
