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
/// event loop only waits for it). The bridge to asyncio runs on the same
/// runtime, so a forked child's coroutines run on the child's own runtime.
pub fn awaitable<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    // Made (or remade, after a fork) before the bridge spawns onto it.
    runtime()?;
    pyo3_async_runtimes::generic::future_into_py::<HomiRuntime, _, T>(py, fut)
}

/// This module's runtime, as pyo3-async-runtimes sees it.
struct HomiRuntime;

tokio::task_local! {
    static TASK_LOCALS: std::cell::OnceCell<pyo3_async_runtimes::TaskLocals>;
}

/// Why a task spawned for a coroutine did not complete.
#[derive(Debug)]
enum SpawnError {
    Join(tokio::task::JoinError),
    NoRuntime,
}

impl pyo3_async_runtimes::generic::JoinError for SpawnError {
    fn is_panic(&self) -> bool {
        matches!(self, SpawnError::Join(e) if e.is_panic())
    }
    fn into_panic(self) -> Box<dyn std::any::Any + Send + 'static> {
        match self {
            SpawnError::Join(e) => e.into_panic(),
            SpawnError::NoRuntime => Box::new("Homi's runtime could not be started"),
        }
    }
}

type SpawnHandle = std::pin::Pin<Box<dyn Future<Output = Result<(), SpawnError>> + Send>>;

fn spawn_on_runtime(spawn: impl FnOnce(&Runtime) -> tokio::task::JoinHandle<()>) -> SpawnHandle {
    match runtime() {
        Ok(rt) => {
            let task = spawn(&rt);
            Box::pin(async move { task.await.map_err(SpawnError::Join) })
        }
        Err(_) => Box::pin(std::future::ready(Err(SpawnError::NoRuntime))),
    }
}

impl pyo3_async_runtimes::generic::Runtime for HomiRuntime {
    type JoinError = SpawnError;
    type JoinHandle = SpawnHandle;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        spawn_on_runtime(|rt| rt.spawn(fut))
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        spawn_on_runtime(|rt| rt.spawn_blocking(f))
    }
}

impl pyo3_async_runtimes::generic::ContextExt for HomiRuntime {
    fn scope<F, R>(
        locals: pyo3_async_runtimes::TaskLocals,
        fut: F,
    ) -> std::pin::Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = std::cell::OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<pyo3_async_runtimes::TaskLocals> {
        TASK_LOCALS
            .try_with(|c| c.get().cloned())
            .unwrap_or_default()
    }
}
