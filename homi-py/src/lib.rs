//! `homi._homi`, the native half of the `homi` Python package (the thin
//! Python half is `python/homi`). A door: each method parses, calls one
//! `homi-core` function and renders.

use pyo3::prelude::*;

mod auth;
mod chat;
mod convert;
mod errors;
mod memory;
mod runtime;

/// The native module.
#[pymodule]
fn _homi(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<memory::Memory>()?;
    m.add_class::<memory::AsyncMemory>()?;
    m.add_class::<chat::Chat>()?;
    m.add_class::<chat::ChatStream>()?;
    m.add_class::<auth::Auth>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
