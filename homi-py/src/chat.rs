//! `homi.Chat`: memory-augmented turns (plain, streamed as an iterator or an
//! async iterator), conversations and summaries over `homi_core::chat::Chat`.
//! The extraction worker runs beside it on Homi's runtime, so memories are
//! extracted from each turn after the reply, as in the server.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::stream::BoxStream;
use homi_core::Config;
use homi_core::chat::ChatEvent;
use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use serde_json::json;

use crate::convert::to_py;
use crate::errors::IntoPy;
use crate::memory::{PerProcess, config_from};
use crate::runtime::{awaitable, block_on};

/// Stops the process's extraction worker when the last handle goes.
struct Worker(Mutex<Option<tokio::sync::oneshot::Sender<()>>>);

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(stop) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = stop.send(());
        }
    }
}

struct Shared {
    config: Config,
    chat: PerProcess<(homi_core::chat::Chat, Arc<Worker>)>,
}

impl Shared {
    async fn chat(self: &Arc<Self>) -> PyResult<homi_core::chat::Chat> {
        let (chat, _) = self
            .chat
            .get_or_open(|| async {
                let chat = homi_core::chat::Chat::open_shared(&self.config)
                    .await
                    .py()?;
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                chat.queue().spawn_worker(chat.memory().clone(), async {
                    let _ = stopped.await;
                });
                Ok((chat, Arc::new(Worker(Mutex::new(Some(stop))))))
            })
            .await?;
        Ok(chat)
    }
}

type Events = Arc<tokio::sync::Mutex<Option<BoxStream<'static, homi_core::Result<ChatEvent>>>>>;

/// A streamed turn: `memories`, then `delta`s, then `done` (the stored turn).
#[pyclass(module = "homi._homi", frozen)]
pub struct ChatStream {
    events: Events,
}

async fn next_event(events: Events) -> PyResult<Option<serde_json::Value>> {
    let mut guard = events.lock().await;
    let Some(stream) = guard.as_mut() else {
        return Ok(None);
    };
    match stream.next().await {
        Some(Ok(event)) => Ok(Some(json!(event))),
        Some(Err(e)) => {
            *guard = None;
            Err(crate::errors::to_py_err(e))
        }
        None => {
            *guard = None;
            Ok(None)
        }
    }
}

#[pymethods]
impl ChatStream {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let events = self.events.clone();
        match block_on(py, next_event(events))? {
            Some(v) => Ok(Some(to_py(py, &v)?)),
            None => Ok(None),
        }
    }

    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let events = self.events.clone();
        awaitable(py, async move {
            match next_event(events).await? {
                Some(v) => Python::attach(|py| to_py(py, &v).map(Bound::unbind)),
                None => Err(PyStopAsyncIteration::new_err(())),
            }
        })
    }
}

/// Memory-augmented chat on Homi: a turn searches the user's memories,
/// answers with them, stores the turn in its conversation (`session_id`) and
/// queues the extraction of new memories, which a worker beside it runs.
#[pyclass(module = "homi._homi", frozen)]
pub struct Chat {
    shared: Arc<Shared>,
}

#[pymethods]
impl Chat {
    /// On the configuration of the environment (as `homi.Memory()`).
    #[new]
    fn new() -> PyResult<Self> {
        Ok(Self::with(config_from(None)?))
    }

    /// mem0's configuration dict (as `homi.Memory.from_config`).
    #[classmethod]
    fn from_config(
        _cls: &Bound<'_, pyo3::types::PyType>,
        config: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        Ok(Self::with(config_from(Some(config))?))
    }

    /// One turn; returns `{response, user_id, session_id, memories_used, timestamp, usage, model, provider_ms}`.
    #[pyo3(signature = (message, *, user_id, session_id=None))]
    fn turn<'py>(
        &self,
        py: Python<'py>,
        message: String,
        user_id: String,
        session_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let shared = self.shared.clone();
        let turn = block_on(py, async move {
            let chat = shared.chat().await?;
            chat.turn(&user_id, &message, session_id.as_deref())
                .await
                .py()
        })?;
        to_py(py, &json!(turn))
    }

    /// [`Chat::turn`] as an awaitable.
    #[pyo3(signature = (message, *, user_id, session_id=None))]
    fn aturn<'py>(
        &self,
        py: Python<'py>,
        message: String,
        user_id: String,
        session_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let shared = self.shared.clone();
        awaitable(py, async move {
            let chat = shared.chat().await?;
            let turn = chat
                .turn(&user_id, &message, session_id.as_deref())
                .await
                .py()?;
            Python::attach(|py| to_py(py, &json!(turn)).map(Bound::unbind))
        })
    }

    /// One turn, streamed: iterate it (`for event in …`) or `async for` it.
    #[pyo3(signature = (message, *, user_id, session_id=None))]
    fn stream(
        &self,
        py: Python<'_>,
        message: String,
        user_id: String,
        session_id: Option<String>,
    ) -> PyResult<ChatStream> {
        let shared = self.shared.clone();
        let events = block_on(py, async move {
            let chat = shared.chat().await?;
            chat.stream(&user_id, &message, session_id.as_deref())
                .await
                .py()
        })?;
        Ok(ChatStream {
            events: Arc::new(tokio::sync::Mutex::new(Some(events))),
        })
    }

    /// What Homi remembers about the user: `{user_id, summary, memory_count}`.
    fn summary<'py>(&self, py: Python<'py>, user_id: String) -> PyResult<Bound<'py, PyAny>> {
        let shared = self.shared.clone();
        let summary = block_on(py, async move {
            shared.chat().await?.summary(&user_id).await.py()
        })?;
        to_py(py, &json!(summary))
    }

    /// The user's conversations, most recent first.
    #[pyo3(signature = (user_id, limit=50, offset=0))]
    fn conversations<'py>(
        &self,
        py: Python<'py>,
        user_id: String,
        limit: usize,
        offset: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let shared = self.shared.clone();
        let list = block_on(py, async move {
            shared
                .chat()
                .await?
                .conversations(&user_id, limit, offset)
                .await
                .py()
        })?;
        to_py(py, &json!(list))
    }

    /// A conversation's last messages, oldest first.
    #[pyo3(signature = (user_id, session_id, limit=100))]
    fn messages<'py>(
        &self,
        py: Python<'py>,
        user_id: String,
        session_id: String,
        limit: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let shared = self.shared.clone();
        let list = block_on(py, async move {
            shared
                .chat()
                .await?
                .messages(&user_id, &session_id, limit)
                .await
                .py()
        })?;
        to_py(py, &json!(list))
    }

    /// Deletes a conversation; whether it existed.
    fn delete_conversation(
        &self,
        py: Python<'_>,
        user_id: String,
        session_id: String,
    ) -> PyResult<bool> {
        let shared = self.shared.clone();
        block_on(py, async move {
            shared
                .chat()
                .await?
                .delete_conversation(&user_id, &session_id)
                .await
                .py()
        })
    }
}

impl Chat {
    fn with(config: Config) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                chat: PerProcess::new(),
            }),
        }
    }
}
