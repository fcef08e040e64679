//! Homi's errors as Python exceptions: one class per kind, all under
//! `homi.HomiError`, defined in `homi/errors.py` (so that, say,
//! `homi.ValidationError` is also a `ValueError`). The mapping lives here,
//! in one place.

use homi_core::{Error, ErrorKind};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidInput => "ValidationError",
        ErrorKind::Config => "ConfigError",
        ErrorKind::NotFound => "NotFoundError",
        ErrorKind::Conflict => "ConflictError",
        ErrorKind::Unauthorized => "AuthError",
        ErrorKind::Forbidden => "ForbiddenError",
        ErrorKind::RateLimited => "RateLimitedError",
        ErrorKind::ProviderNotConfigured => "ProviderNotConfiguredError",
        ErrorKind::ProviderTimeout => "ProviderTimeoutError",
        ErrorKind::ProviderUnavailable | ErrorKind::ProviderInvalidResponse => "ProviderError",
        ErrorKind::Unavailable => "UnavailableError",
        _ => "StorageError",
    }
}

/// The Python exception for a Homi error (`retry_after` set in seconds when
/// there is one).
pub fn to_py_err(e: Error) -> PyErr {
    Python::attach(|py| {
        let made = || -> PyResult<PyErr> {
            let module =
                ERRORS.get_or_try_init(py, || py.import("homi.errors").map(Bound::unbind))?;
            let class = module.bind(py).getattr(class_name(e.kind()))?;
            let class = class.cast_into::<PyType>()?;
            let err = PyErr::from_type(class, e.to_string());
            if let Some(wait) = e.retry_after() {
                err.value(py).setattr("retry_after", wait.as_secs_f64())?;
            }
            Ok(err)
        };
        made().unwrap_or_else(|failure| failure)
    })
}

/// `homi.ValidationError` naming the argument at fault, for input the
/// binding itself cannot convert.
pub fn invalid(what: &str, reason: impl Into<String>) -> PyErr {
    to_py_err(Error::invalid(what, reason))
}

/// `?` for Homi results inside Python methods.
pub trait IntoPy<T> {
    /// The result with a Homi error turned into its Python exception.
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for homi_core::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py_err)
    }
}
