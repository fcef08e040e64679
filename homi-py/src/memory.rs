//! `homi.Memory` and `homi.AsyncMemory`: mem0's methods and shapes over
//! `homi_core::Memory`. Each method parses its arguments into an operation
//! (owned data, no Python objects), runs it with the GIL released (or as an
//! awaitable on the Rust runtime), and renders the result as mem0's dicts.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use homi_core::memory::mem0;
use homi_core::{Access, AddOptions, Config, ListOptions, Scope, SearchOptions};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{Value, json};

use crate::convert::{to_json, to_py};
use crate::errors::IntoPy;
use crate::runtime::{awaitable, block_on};

type Op = Pin<Box<dyn Future<Output = PyResult<Value>> + Send>>;

/// A value opened once per process: a child made by `fork()` opens its own
/// (the parent's connections and tasks are not its to use, so the inherited
/// value is left alone, never dropped).
pub struct PerProcess<T> {
    open: Mutex<Option<(u32, T)>>,
    /// One open at a time: threads that all call first wait for one value.
    opening: tokio::sync::Mutex<()>,
}

impl<T: Clone> PerProcess<T> {
    pub fn new() -> Self {
        Self {
            open: Mutex::new(None),
            opening: tokio::sync::Mutex::new(()),
        }
    }

    fn current(&self, pid: u32) -> Option<T> {
        let slot = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some((owner, v)) if *owner == pid => Some(v.clone()),
            _ => None,
        }
    }

    /// Lets go of this process's value (the next call opens a new one).
    pub fn clear(&self) {
        let mut slot = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((owner, value)) = slot.take() {
            if owner == std::process::id() {
                drop(value);
            } else {
                std::mem::forget(value);
            }
        }
    }

    pub async fn get_or_open<F, Fut>(&self, open: F) -> PyResult<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = PyResult<T>>,
    {
        let pid = std::process::id();
        if let Some(v) = self.current(pid) {
            return Ok(v);
        }
        let _one = self.opening.lock().await;
        if let Some(v) = self.current(pid) {
            return Ok(v);
        }
        let value = open().await?;
        let mut slot = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(inherited) = slot.take() {
            std::mem::forget(inherited);
        }
        *slot = Some((pid, value.clone()));
        Ok(value)
    }
}

/// The configuration and, per process, the open Memory.
pub struct Shared {
    config: Config,
    memory: PerProcess<homi_core::Memory>,
}

impl Shared {
    pub fn new(config: Config) -> Arc<Self> {
        Arc::new(Self {
            config,
            memory: PerProcess::new(),
        })
    }

    pub async fn memory(self: &Arc<Self>) -> PyResult<homi_core::Memory> {
        self.memory
            .get_or_open(|| async { homi_core::Memory::open_shared(&self.config).await.py() })
            .await
    }
}

/// Configuration from the environment (a library's share of it: `HOMI_*`
/// and the OpenAI variables, no `.env`), with mem0's configuration on top: a
/// dict, or a pydantic `MemoryConfig` (anything with `model_dump()`).
pub fn config_from(mem0_config: Option<&Bound<'_, PyAny>>) -> PyResult<Config> {
    let config = Config::from_library_env().py()?;
    let Some(c) = mem0_config.filter(|c| !c.is_none()) else {
        return Ok(config);
    };
    let value = if c.hasattr("model_dump")? && !c.is_instance_of::<PyDict>() {
        to_json(&c.call_method0("model_dump")?, "config")?
    } else {
        to_json(c, "config")?
    };
    // mem0 reads a provider's own variables (DEEPSEEK_API_KEY, …) when the
    // configuration names that provider.
    let config = config
        .apply_mem0_with(&value, &|name| std::env::var(name).ok())
        .py()?;
    // mem0's memories where Homi's store is to be: say how to bring them.
    if let Some(notice) = homi_core::mem0_config::mem0_data_notice(&value) {
        let py = c.py();
        let category = py.get_type::<pyo3::exceptions::PyUserWarning>();
        let text = std::ffi::CString::new(notice).unwrap_or_default();
        PyErr::warn(py, &category, &text, 2)?;
    }
    Ok(config)
}

/// An id argument: a string, or (as mem0 takes them) an integer or another
/// scalar, made a string.
pub fn id_arg(obj: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Option<String>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if let Ok(s) = obj.cast::<pyo3::types::PyString>() {
        return Ok(Some(s.to_cow()?.into_owned()));
    }
    let scalar = !obj.is_instance_of::<pyo3::types::PyBool>()
        && (obj.is_instance_of::<pyo3::types::PyInt>()
            || obj.is_instance_of::<pyo3::types::PyFloat>()
            || obj.getattr("hex").is_ok() && obj.getattr("int").is_ok());
    if scalar {
        return Ok(Some(obj.str()?.to_cow()?.into_owned()));
    }
    Err(crate::errors::invalid(
        field,
        "must be a string or an integer",
    ))
}

fn opt_json(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<Value>> {
    obj.map(|o| to_json(o, what)).transpose()
}

fn metadata(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<homi_core::Metadata>> {
    match opt_json(obj, "metadata")? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(crate::errors::invalid("metadata", "must be a dict")),
    }
}

/// A time argument (`as_of`, `timestamp`): a datetime (naive means UTC), an
/// ISO 8601 string, or Unix seconds.
fn time_arg(
    obj: Option<&Bound<'_, PyAny>>,
    field: &str,
) -> PyResult<Option<chrono::DateTime<chrono::Utc>>> {
    let Some(obj) = obj else { return Ok(None) };
    if obj.is_none() {
        return Ok(None);
    }
    if obj.hasattr("isoformat")? {
        let text: String = obj.call_method0("isoformat")?.extract()?;
        return homi_core::memory::parse_timestamp(field, &text)
            .py()
            .map(Some);
    }
    if obj.is_instance_of::<pyo3::types::PyBool>() {
        return Err(crate::errors::invalid(
            field,
            "a datetime, an ISO 8601 string or Unix seconds",
        ));
    }
    if let Ok(secs) = obj.extract::<f64>() {
        return homi_core::memory::unix_seconds(field, secs).py().map(Some);
    }
    let text: String = obj.extract().map_err(|_| {
        crate::errors::invalid(field, "a datetime, an ISO 8601 string or Unix seconds")
    })?;
    homi_core::memory::parse_timestamp(field, &text)
        .py()
        .map(Some)
}

fn as_of(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<chrono::DateTime<chrono::Utc>>> {
    time_arg(obj, "as_of")
}

/// The three ids of a mem0 call, as given (strings, integers…).
struct Ids<'a, 'py> {
    user_id: Option<&'a Bound<'py, PyAny>>,
    agent_id: Option<&'a Bound<'py, PyAny>>,
    run_id: Option<&'a Bound<'py, PyAny>>,
}

impl Ids<'_, '_> {
    fn given(&self) -> bool {
        [self.user_id, self.agent_id, self.run_id]
            .iter()
            .any(|i| i.is_some_and(|v| !v.is_none()))
    }
}

/// Whether mem0 2.x-style `filters` carry an id.
fn ids_in(filters: Option<&Value>) -> bool {
    filters.and_then(Value::as_object).is_some_and(|f| {
        ["user_id", "agent_id", "run_id"]
            .iter()
            .any(|k| f.get(*k).is_some_and(|v| !v.is_null()))
    })
}

fn scope(
    ids: &Ids<'_, '_>,
    filters: Option<&Value>,
) -> PyResult<(Scope, Option<homi_core::memory::filter::Filter>)> {
    let user_id = id_arg(ids.user_id, "user_id")?;
    let agent_id = id_arg(ids.agent_id, "agent_id")?;
    let run_id = id_arg(ids.run_id, "run_id")?;
    mem0::scope_and_filter(
        user_id.as_deref(),
        agent_id.as_deref(),
        run_id.as_deref(),
        filters,
    )
    .py()
}

/// An argument whose absence differs from `None`: mem0's
/// `update(memory_id, expiration_date=None)` lifts an expiry, while leaving
/// the argument out keeps it.
pub(crate) enum Given<'py> {
    Absent,
    Value(Bound<'py, PyAny>),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Given<'py> {
    type Error = PyErr;
    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Given::Value(obj.to_owned()))
    }
}

/// A date argument as mem0 takes it: a `date`, a `datetime` (its date), or
/// a string; other values are given to the core as they are (Unix seconds).
fn date_arg(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let obj = if obj.hasattr("hour")? && obj.hasattr("date")? {
        obj.call_method0("date")?
    } else {
        obj.clone()
    };
    if obj.hasattr("isoformat")? {
        let text: String = obj.call_method0("isoformat")?.extract()?;
        return Ok(Value::String(text));
    }
    to_json(&obj, "date")
}

/// mem0's `expiration_date`: a date (or "YYYY-MM-DD"), as the end of the
/// memory's validity window; `None` when the argument is None.
fn expiration_arg(
    obj: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<chrono::DateTime<chrono::Utc>>> {
    match obj.filter(|o| !o.is_none()) {
        None => Ok(None),
        Some(o) => match date_arg(o)? {
            Value::String(day) => mem0::expiration_end(&day).py().map(Some),
            _ => Err(crate::errors::invalid(
                "expiration_date",
                "must be a date or a string in YYYY-MM-DD format",
            )),
        },
    }
}

/// mem0's `reference_date`: a date, "YYYY-MM-DD" or Unix seconds.
fn reference_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<chrono::NaiveDate>> {
    match obj.filter(|o| !o.is_none()) {
        None => Ok(None),
        Some(o) => mem0::reference_date(&date_arg(o)?).py().map(Some),
    }
}

/// A rendered answer with mem0's `expiration_date` on its memories.
fn with_expiration_dates(mut value: Value) -> Value {
    mem0::add_expiration_dates(&mut value);
    value
}

// ---------------------------------------------------------------- operations

#[allow(clippy::too_many_arguments)]
fn op_add(
    shared: &Arc<Shared>,
    messages: &Bound<'_, PyAny>,
    ids: Ids<'_, '_>,
    metadata_: Option<&Bound<'_, PyAny>>,
    filters: Option<&Bound<'_, PyAny>>,
    infer: bool,
    memory_type: Option<String>,
    prompt: Option<String>,
    timestamp: Option<&Bound<'_, PyAny>>,
    expiration_date: Option<&Bound<'_, PyAny>>,
) -> PyResult<Op> {
    let expires_at = expiration_arg(expiration_date)?;
    let procedural = match memory_type.as_deref() {
        None => false,
        Some("procedural_memory") => true,
        Some(other) => {
            return Err(crate::errors::invalid(
                "memory_type",
                format!("'{other}' is not a memory type: use 'procedural_memory' or leave it out"),
            ));
        }
    };
    let messages =
        homi_core::memory::messages::Messages::from_json(&to_json(messages, "messages")?).py()?;
    let filters = opt_json(filters, "filters")?;
    let (scope, _) = scope(&ids, filters.as_ref())?;
    let mut options = AddOptions::default().infer(infer).procedural(procedural);
    if let Some(m) = metadata(metadata_)? {
        options = options.metadata(m);
    }
    if let Some(t) = time_arg(timestamp, "timestamp")? {
        options = options.timestamp(t);
    }
    if let Some(p) = prompt {
        options = options.instructions(p);
    }
    if let Some(t) = expires_at {
        options = options.expires_at(t);
    }
    let shared = shared.clone();
    Ok(Box::pin(async move {
        let added = shared
            .memory()
            .await?
            .add(messages, &scope, options)
            .await
            .py()?;
        Ok(json!(added))
    }))
}

#[allow(clippy::too_many_arguments)]
fn op_search(
    shared: &Arc<Shared>,
    query: String,
    ids: Ids<'_, '_>,
    limit: Option<usize>,
    filters: Option<&Bound<'_, PyAny>>,
    threshold: Option<f32>,
    top_k: Option<usize>,
    as_of_: Option<&Bound<'_, PyAny>>,
    include_superseded: bool,
    mode: Option<String>,
    explain: bool,
    rerank: bool,
    show_expired: bool,
    reference_date: Option<&Bound<'_, PyAny>>,
) -> PyResult<Op> {
    let filters = opt_json(filters, "filters")?;
    let (limit, threshold) = mem0::read_limits(
        ids.given(),
        ids_in(filters.as_ref()),
        limit,
        top_k,
        threshold,
    )
    .py()?;
    let (scope, filter) = scope(&ids, filters.as_ref())?;
    let mut options = SearchOptions::default()
        .limit(limit)
        .include_superseded(include_superseded)
        .show_expired(show_expired)
        .explain(explain)
        .rerank(rerank);
    if let Some(day) = reference_arg(reference_date)? {
        options = options.reference_date(day);
    }
    if let Some(m) = mode {
        options = options.mode(m.parse().py()?);
    }
    if let Some(f) = filter {
        options = options.filters(f);
    }
    if let Some(t) = threshold {
        options = options.threshold(t);
    }
    if let Some(t) = as_of(as_of_)? {
        options = options.as_of(t);
    }
    let shared = shared.clone();
    Ok(Box::pin(async move {
        let found = shared
            .memory()
            .await?
            .search(&query, &scope, options)
            .await
            .py()?;
        Ok(with_expiration_dates(json!(found)))
    }))
}

#[allow(clippy::too_many_arguments)]
fn op_get_all(
    shared: &Arc<Shared>,
    ids: Ids<'_, '_>,
    filters: Option<&Bound<'_, PyAny>>,
    limit: Option<usize>,
    top_k: Option<usize>,
    as_of_: Option<&Bound<'_, PyAny>>,
    include_superseded: bool,
    show_expired: bool,
) -> PyResult<Op> {
    let filters = opt_json(filters, "filters")?;
    let (limit, _) =
        mem0::read_limits(ids.given(), ids_in(filters.as_ref()), limit, top_k, None).py()?;
    let (scope, filter) = scope(&ids, filters.as_ref())?;
    let mut options = ListOptions::default()
        .limit(limit)
        .include_superseded(include_superseded)
        .show_expired(show_expired);
    if let Some(f) = filter {
        options = options.filters(f);
    }
    if let Some(t) = as_of(as_of_)? {
        options = options.as_of(t);
    }
    let shared = shared.clone();
    Ok(Box::pin(async move {
        let items = shared.memory().await?.get_all(&scope, options).await.py()?;
        Ok(with_expiration_dates(json!({"results": items})))
    }))
}

// mem0's calls on one memory id (get, update, delete, history) take no
// scope: the id reaches its memory in any scope, on purpose — the library's
// caller owns the whole store.
fn op_get(shared: &Arc<Shared>, memory_id: String) -> Op {
    let shared = shared.clone();
    Box::pin(async move {
        let item = shared
            .memory()
            .await?
            .get(&memory_id, Access::Any)
            .await
            .py()?;
        Ok(with_expiration_dates(json!(item)))
    })
}

fn op_update(
    shared: &Arc<Shared>,
    memory_id: String,
    data: Option<String>,
    text: Option<String>,
    metadata_: Option<&Bound<'_, PyAny>>,
    expiration_date: Given<'_>,
) -> PyResult<Op> {
    // mem0 2.x: new metadata alone is merged, the text left as it is; with
    // a new text it replaces the metadata. `expiration_date=None` lifts an
    // expiry.
    let mut edit = homi_core::MemoryEdit::default();
    let given_text = data.is_some() || text.is_some();
    if given_text {
        edit = edit.text(mem0::update_text(data, text).py()?);
    }
    match metadata(metadata_)? {
        Some(m) if given_text => edit = edit.replace_metadata(m),
        Some(m) => edit = edit.merge_metadata(m),
        None => {}
    }
    if let Given::Value(v) = expiration_date {
        edit = edit.expires_at(expiration_arg(Some(&v))?);
    }
    let shared = shared.clone();
    Ok(Box::pin(async move {
        let item = shared
            .memory()
            .await?
            .edit(&memory_id, Access::Any, edit)
            .await
            .py()?;
        Ok(json!({"message": "Memory updated successfully!", "id": item.id, "memory": item.memory}))
    }))
}

fn op_delete(shared: &Arc<Shared>, memory_id: String) -> Op {
    let shared = shared.clone();
    Box::pin(async move {
        shared
            .memory()
            .await?
            .delete(&memory_id, Access::Any)
            .await
            .py()?;
        Ok(json!({"message": "Memory deleted successfully!"}))
    })
}

fn op_delete_all(
    shared: &Arc<Shared>,
    ids: Ids<'_, '_>,
    filters: Option<&Bound<'_, PyAny>>,
) -> PyResult<Op> {
    let filters = opt_json(filters, "filters")?;
    let (scope, filter) = scope(&ids, filters.as_ref())?;
    if filter.is_some() {
        return Err(crate::errors::to_py_err(homi_core::Error::invalid(
            "filters",
            "delete_all takes the scope only (user_id, agent_id, run_id)",
        )));
    }
    let shared = shared.clone();
    Ok(Box::pin(async move {
        let n = shared.memory().await?.delete_all(&scope).await.py()?;
        Ok(json!({"message": "Memories deleted successfully!", "deleted": n}))
    }))
}

fn op_history(shared: &Arc<Shared>, memory_id: String) -> Op {
    let shared = shared.clone();
    Box::pin(async move {
        let entries = shared
            .memory()
            .await?
            .history(&memory_id, Access::Any)
            .await
            .py()?;
        Ok(json!(entries))
    })
}

/// mem0's points and history rows (read by `homi.import_mem0`) into this store.
fn op_import_mem0_points(
    shared: &Arc<Shared>,
    points: &Bound<'_, PyAny>,
    history: &Bound<'_, PyAny>,
    mem0_config: Option<&Bound<'_, PyAny>>,
) -> PyResult<Op> {
    let points = match to_json(points, "points")? {
        Value::Array(p) => p,
        _ => return Err(crate::errors::invalid("points", "must be a list")),
    };
    let history = match to_json(history, "history")? {
        Value::Array(h) => h,
        _ => return Err(crate::errors::invalid("history", "must be a list")),
    };
    let mem0_config = opt_json(mem0_config, "mem0_config")?.unwrap_or(Value::Null);
    let mem0_config = if mem0_config.is_null() {
        json!({})
    } else {
        mem0_config
    };
    let model = homi_core::mem0_config::mem0_embedding_model(&mem0_config).py()?;
    let shared = shared.clone();
    Ok(Box::pin(async move {
        let report = shared
            .memory()
            .await?
            .import_mem0_points(&points, &history, &model, |_, _| {})
            .await
            .py()?;
        Ok(json!(report))
    }))
}

/// A mem0 collection in Postgres (its pgvector or Supabase layout), as its
/// configuration names it, into this store.
fn op_import_mem0_postgres(shared: &Arc<Shared>, mem0_config: &Bound<'_, PyAny>) -> PyResult<Op> {
    let mem0_config = to_json(mem0_config, "config")?;
    let source =
        homi_core::transfer::Mem0Source::from_mem0_config(&mem0_config, &|n| std::env::var(n).ok())
            .py()?;
    let shared = shared.clone();
    Ok(Box::pin(async move {
        let report = shared
            .memory()
            .await?
            .import_mem0(&source, |_, _| {})
            .await
            .py()?;
        Ok(json!(report))
    }))
}

fn op_reset(shared: &Arc<Shared>) -> Op {
    let shared = shared.clone();
    Box::pin(async move {
        shared.memory().await?.reset().await.py()?;
        Ok(Value::Null)
    })
}

fn run_sync<'py>(py: Python<'py>, op: Op) -> PyResult<Bound<'py, PyAny>> {
    let value = block_on(py, op)?;
    to_py(py, &value)
}

fn run_async<'py>(py: Python<'py>, op: Op) -> PyResult<Bound<'py, PyAny>> {
    awaitable(py, async move {
        let value = op.await?;
        Python::attach(|py| to_py(py, &value).map(Bound::unbind))
    })
}

// ---------------------------------------------------------------- classes

macro_rules! memory_class {
    ($name:ident, $pyname:literal, $run:ident, $doc:literal, { $($extra:tt)* }) => {
        #[doc = $doc]
        #[pyclass(name = $pyname, module = "homi._homi", frozen)]
        pub struct $name {
            shared: Arc<Shared>,
        }

        #[pymethods]
        impl $name {
            /// On the configuration of the environment: `HOMI_DATABASE_URL`
            /// (else `homi.db` in `HOMI_DIR`, else in `~/.homi`),
            /// `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `HOMI_CHAT_MODEL`,
            /// `HOMI_EMBEDDING_MODEL`, …; no `.env` file.
            #[new]
            fn new() -> PyResult<Self> {
                Ok(Self { shared: Shared::new(config_from(None)?) })
            }

            /// mem0's configuration dict (`llm`, `embedder`, `vector_store`).
            #[classmethod]
            fn from_config(_cls: &Bound<'_, pyo3::types::PyType>, config: &Bound<'_, PyAny>) -> PyResult<Self> {
                Ok(Self { shared: Shared::new(config_from(Some(config))?) })
            }

            #[pyo3(signature = (messages, *, user_id=None, agent_id=None, run_id=None, metadata=None, filters=None, infer=true, memory_type=None, prompt=None, timestamp=None, expiration_date=None))]
            #[allow(clippy::too_many_arguments)]
            fn add<'py>(
                &self,
                py: Python<'py>,
                messages: &Bound<'py, PyAny>,
                user_id: Option<&Bound<'py, PyAny>>,
                agent_id: Option<&Bound<'py, PyAny>>,
                run_id: Option<&Bound<'py, PyAny>>,
                metadata: Option<&Bound<'py, PyAny>>,
                filters: Option<&Bound<'py, PyAny>>,
                infer: bool,
                memory_type: Option<String>,
                prompt: Option<String>,
                timestamp: Option<&Bound<'py, PyAny>>,
                expiration_date: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let ids = Ids { user_id, agent_id, run_id };
                let op = op_add(&self.shared, messages, ids, metadata, filters, infer, memory_type, prompt, timestamp, expiration_date)?;
                $run(py, op)
            }

            // `rerank`: with mem0's `llm_reranker` configured, the chat model
            // scores the results; without it nothing changes, as in mem0.
            #[pyo3(signature = (query, *, user_id=None, agent_id=None, run_id=None, limit=None, filters=None, threshold=None, top_k=None, as_of=None, include_superseded=false, rerank=false, mode=None, explain=false, reference_date=None, show_expired=false))]
            #[allow(clippy::too_many_arguments)]
            fn search<'py>(
                &self,
                py: Python<'py>,
                query: String,
                user_id: Option<&Bound<'py, PyAny>>,
                agent_id: Option<&Bound<'py, PyAny>>,
                run_id: Option<&Bound<'py, PyAny>>,
                limit: Option<usize>,
                filters: Option<&Bound<'py, PyAny>>,
                threshold: Option<f32>,
                top_k: Option<usize>,
                as_of: Option<&Bound<'py, PyAny>>,
                include_superseded: bool,
                rerank: bool,
                mode: Option<String>,
                explain: bool,
                reference_date: Option<&Bound<'py, PyAny>>,
                show_expired: bool,
            ) -> PyResult<Bound<'py, PyAny>> {
                let ids = Ids { user_id, agent_id, run_id };
                let op = op_search(&self.shared, query, ids, limit, filters, threshold, top_k, as_of, include_superseded, mode, explain, rerank, show_expired, reference_date)?;
                $run(py, op)
            }

            fn get<'py>(&self, py: Python<'py>, memory_id: String) -> PyResult<Bound<'py, PyAny>> {
                $run(py, op_get(&self.shared, memory_id))
            }

            #[pyo3(signature = (*, user_id=None, agent_id=None, run_id=None, filters=None, limit=None, top_k=None, as_of=None, include_superseded=false, show_expired=false))]
            #[allow(clippy::too_many_arguments)]
            fn get_all<'py>(
                &self,
                py: Python<'py>,
                user_id: Option<&Bound<'py, PyAny>>,
                agent_id: Option<&Bound<'py, PyAny>>,
                run_id: Option<&Bound<'py, PyAny>>,
                filters: Option<&Bound<'py, PyAny>>,
                limit: Option<usize>,
                top_k: Option<usize>,
                as_of: Option<&Bound<'py, PyAny>>,
                include_superseded: bool,
                show_expired: bool,
            ) -> PyResult<Bound<'py, PyAny>> {
                let ids = Ids { user_id, agent_id, run_id };
                let op = op_get_all(&self.shared, ids, filters, limit, top_k, as_of, include_superseded, show_expired)?;
                $run(py, op)
            }

            // `expiration_date` left out keeps an expiry; None lifts it.
            #[pyo3(signature = (memory_id, data=None, metadata=None, *, text=None, expiration_date=Given::Absent))]
            fn update<'py>(
                &self,
                py: Python<'py>,
                memory_id: String,
                data: Option<String>,
                metadata: Option<&Bound<'py, PyAny>>,
                text: Option<String>,
                expiration_date: Given<'py>,
            ) -> PyResult<Bound<'py, PyAny>> {
                $run(py, op_update(&self.shared, memory_id, data, text, metadata, expiration_date)?)
            }

            fn delete<'py>(&self, py: Python<'py>, memory_id: String) -> PyResult<Bound<'py, PyAny>> {
                $run(py, op_delete(&self.shared, memory_id))
            }

            // mem0 takes the ids positionally too: `delete_all("alice")`.
            #[pyo3(signature = (user_id=None, agent_id=None, run_id=None, *, filters=None))]
            fn delete_all<'py>(
                &self,
                py: Python<'py>,
                user_id: Option<&Bound<'py, PyAny>>,
                agent_id: Option<&Bound<'py, PyAny>>,
                run_id: Option<&Bound<'py, PyAny>>,
                filters: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let ids = Ids { user_id, agent_id, run_id };
                $run(py, op_delete_all(&self.shared, ids, filters)?)
            }

            fn history<'py>(&self, py: Python<'py>, memory_id: String) -> PyResult<Bound<'py, PyAny>> {
                $run(py, op_history(&self.shared, memory_id))
            }

            fn reset<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                $run(py, op_reset(&self.shared))
            }

            /// Imports mem0's points (`[{id, vector, payload}]`) and history
            /// rows, as `homi.import_mem0` reads them; `mem0_config` names
            /// the embedder that made the vectors.
            #[pyo3(signature = (points, history, mem0_config=None))]
            fn import_mem0_points<'py>(
                &self,
                py: Python<'py>,
                points: &Bound<'py, PyAny>,
                history: &Bound<'py, PyAny>,
                mem0_config: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                $run(py, op_import_mem0_points(&self.shared, points, history, mem0_config)?)
            }

            /// Imports the mem0 collection in Postgres (its pgvector or
            /// Supabase layout) that mem0's configuration names, with its
            /// history, as `homi.import_mem0` finds it.
            fn import_mem0_postgres<'py>(
                &self,
                py: Python<'py>,
                mem0_config: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                $run(py, op_import_mem0_postgres(&self.shared, mem0_config)?)
            }

            /// Closes the store's connections; a later call opens them again.
            fn close(&self) {
                self.shared.memory.clear();
            }

            $($extra)*
        }
    };
}

memory_class!(
    Memory,
    "Memory",
    run_sync,
    "mem0's Memory on Homi: every method blocks (with the GIL released) and returns mem0's dicts.",
    {
        /// `with Memory() as m:` closes it at the end.
        fn __enter__(slf: Py<Self>) -> Py<Self> {
            slf
        }

        #[pyo3(signature = (*_exc))]
        fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
            self.shared.memory.clear();
            false
        }
    }
);
// (`async with` is the Python class `homi.AsyncMemory`'s, over this one.)
memory_class!(
    AsyncMemory,
    "AsyncMemory",
    run_async,
    "mem0's AsyncMemory on Homi: every method returns an awaitable driven by Homi's Rust runtime.",
    {}
);
