//! The tokio runtime behind every call, owned by this module and safe across
//! `fork()`: a child process (multiprocessing's fork start method) finds the
//! parent's runtime without its threads, so each process builds its own on
//! first use and leaves the inherited one untouched.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use tokio::runtime::Runtime;

static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

/// This process's runtime.
pub fn runtime() -> PyResult<Arc<Runtime>> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, rt)) = slot.as_ref()
        && *owner == pid
    {
        return Ok(rt.clone());
    }
    // Inherited from the parent: its threads do not exist here, so it can
    // neither run nor shut down. It is left alone (never dropped).
    if let Some(inherited) = slot.take() {
        std::mem::forget(inherited);
    }
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("homi")
            .build()
            .map_err(|e| {
                pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "cannot start Homi's runtime: {e}"
                ))
            })?,
    );
    *slot = Some((pid, rt.clone()));
    Ok(rt)
}

/// Runs `fut` to its end with the GIL released (other Python threads run
/// meanwhile). Ctrl-C is noticed within 100 ms: the call stops and
/// `KeyboardInterrupt` is raised.
pub fn block_on<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = PyResult<T>> + Send,
    T: Send,
{
    let rt = runtime()?;
    py.detach(|| {
        rt.block_on(async move {
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    done = &mut fut => return done,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {
                        Python::attach(|py| py.check_signals())?;
                    }
                }
            }
        })
    })
}

/// A Python awaitable for `fut`, which runs on this module's runtime (the
/// event loop only waits for it).
pub fn awaitable<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let rt = runtime()?;
    let task = rt.spawn(fut);
    pyo3_async_runtimes::tokio::future_into_py(py, async move {
        match task.await {
            Ok(result) => result,
            Err(e) => Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                "a Homi task failed: {e}"
            ))),
        }
    })
}
