//! `ffib_pyo3`: the PyO3 part of the ffibench sample.
//!
//! One function, `noop(x: int) -> int`, that returns its argument. Python
//! reaches it through PyO3's `METH_FASTCALL | METH_KEYWORDS` trampoline
//! (`pyo3::impl_::trampoline::fastcall_cfunction_with_keywords`, the
//! `ml_meth`), which runs the generated wrapper (argument extraction and
//! result conversion, inlined into it) and then calls `ffib_pyo3::noop`.

use pyo3::prelude::*;

/// Returns `x`. Not inlined, so that `ffib_pyo3::noop` is a frame (and a
/// symbol) of its own under the wrapper; `black_box` keeps the body a real
/// (if tiny) computation.
#[pyfunction]
#[inline(never)]
fn noop(x: i64) -> i64 {
    std::hint::black_box(x)
}

#[pymodule]
fn ffib_pyo3(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(noop, m)?)?;
    Ok(())
}
