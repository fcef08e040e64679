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

/// The rows of the `history.db` mem0 keeps for `config` (none when it is
/// not there), for `homi.import_mem0`.
#[pyfunction]
fn read_mem0_history<'py>(
    py: Python<'py>,
    config: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    use errors::IntoPy;
    let config = convert::to_json(config, "config")?;
    let path = homi_core::transfer::mem0_history_path(&config, &|n| std::env::var(n).ok());
    let rows = homi_core::transfer::read_mem0_history(&path).py()?;
    convert::to_py(py, &serde_json::Value::Array(rows))
}

/// The native module.
#[pymodule]
fn _homi(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read_mem0_history, m)?)?;
    m.add_class::<memory::Memory>()?;
    m.add_class::<memory::AsyncMemory>()?;
    m.add_class::<chat::Chat>()?;
    m.add_class::<chat::ChatStream>()?;
    m.add_class::<auth::Auth>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
