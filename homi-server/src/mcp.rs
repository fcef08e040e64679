//! The MCP door: Homi's memories as tools, resources and a prompt for agents
//! (Claude, Cursor, any Model Context Protocol client), one module for both
//! transports: stdio (`homi mcp`) and streamable HTTP (`/mcp` on the
//! server). Each tool parses its arguments, makes one `homi-core` call and
//! renders the answer twice: readable text for the model, and the core's
//! JSON as `structuredContent` for programs. A failure is a tool error
//! carrying Homi's error code and a sentence, never a transport failure.

use homi_core::chat::Chat;
use homi_core::memory::mem0;
use homi_core::{
    AddOptions, Error, ListOptions, Memory, MemoryEdit, MemoryItem, Metadata, Scope, SearchOptions,
};
use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, GetPromptResult, Implementation, ListResourceTemplatesResult,
    ListResourcesResult, PaginatedRequestParams, PromptMessage, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ResourceTemplate, Role,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler, prompt, prompt_handler, prompt_router, tool,
    tool_handler, tool_router,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// The URI of the user's memory summary resource.
pub const SUMMARY_URI: &str = "homi://summary";
/// One memory's URI: this prefix and its id.
pub const MEMORY_URI_PREFIX: &str = "homi://memories/";

/// Memories the `remember` prompt brings along.
const PROMPT_MEMORIES: usize = 5;
/// Default number of results of `search_memories` and `list_memories`.
const DEFAULT_TOP_K: usize = 10;

/// Whose memories a connection reaches.
#[derive(Debug, Clone)]
pub enum Identity {
    /// One user for the whole connection (stdio, `homi mcp`).
    Local {
        /// The user.
        user: String,
        /// The agent scope of the connection's memories.
        agent: Agent,
    },
    /// Each HTTP request's authenticated caller: the [`McpCaller`] the
    /// server's authentication put in the request's extensions.
    Http,
}

/// The agent scope of a stdio connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agent {
    /// The connecting client's name from MCP's `initialize` (each app's
    /// memories apart).
    Client,
    /// This agent id (apps given the same one share memories).
    Named(String),
    /// None: every app of the user shares the user's memories.
    Shared,
}

/// The authenticated caller of one HTTP request to `/mcp`.
#[derive(Debug, Clone)]
pub struct McpCaller {
    /// The user whose memories the tools reach.
    pub user_id: String,
    /// Whether the credentials may write (a user's token, or a key with `write`).
    pub can_write: bool,
}

/// Homi's MCP server: the memory tools, the summary and memory resources,
/// and the `remember` prompt, over one [`Memory`] (and the [`Chat`] the
/// summary needs).
#[derive(Debug, Clone)]
pub struct HomiMcp {
    memory: Memory,
    chat: Option<Chat>,
    identity: Identity,
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
}

impl Agent {
    /// `homi mcp --agent`: absent, the client's name; empty, shared; else that agent.
    pub fn from_arg(arg: Option<String>) -> Self {
        match arg {
            None => Agent::Client,
            Some(a) if a.trim().is_empty() => Agent::Shared,
            Some(a) => Agent::Named(a.trim().to_owned()),
        }
    }
}

/// Serves one user's memories over stdio until the client closes the
/// connection: what `homi mcp` runs. `user`: `--user`, else
/// `HOMI_MCP_USER`, else the OS user name. Logs go to stderr.
pub async fn serve_stdio(
    config: &homi_core::Config,
    user: Option<String>,
    agent: Agent,
) -> homi_core::Result<()> {
    let user = user
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("USERNAME").ok())
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| {
            Error::config(
                "HOMI_MCP_USER",
                "whose memories? Pass --user or set HOMI_MCP_USER (no OS user name was found)",
            )
        })?;
    crate::serve::init_logging_to(config, std::io::stderr);
    // Memories and the chat model for the summary; no accounts here.
    let memory = Memory::open(config).await?;
    let chat = Chat::with_memory(config, memory.clone())?;
    let identity = Identity::Local {
        user: user.trim().to_owned(),
        agent,
    };
    let server = HomiMcp::new(memory, Some(chat), identity);
    let running = rmcp::ServiceExt::serve(server, rmcp::transport::stdio())
        .await
        .map_err(|e| Error::unavailable("the MCP client did not start a session", e))?;
    running
        .waiting()
        .await
        .map_err(|e| Error::unavailable("the MCP session ended abnormally", e))?;
    Ok(())
}

// ------------------------------------------------------------- arguments

/// One message of a conversation to remember.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct MessageArg {
    /// `user` or `assistant` (`system` messages are not remembered).
    pub role: String,
    /// What was said.
    pub content: String,
    /// Who said it, when known.
    #[serde(default)]
    #[schemars(with = "String")]
    pub name: Option<String>,
}

/// Arguments of `add_memory`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AddArgs {
    /// A fact or note to remember, in plain words ("Prefers window seats").
    /// Give `text` or `messages`.
    #[serde(default)]
    #[schemars(with = "String")]
    pub text: Option<String>,
    /// A conversation to remember facts from, oldest first.
    #[serde(default)]
    #[schemars(with = "Vec<MessageArg>")]
    pub messages: Option<Vec<MessageArg>>,
    /// Extract short facts with the chat model and reconcile them with what
    /// is remembered (true), or store the text as it is (false). Default:
    /// true when a chat model is configured.
    #[serde(default)]
    #[schemars(with = "bool")]
    pub infer: Option<bool>,
    /// Metadata to keep with the memories (a JSON object).
    #[serde(default)]
    #[schemars(with = "Metadata")]
    pub metadata: Option<Metadata>,
    /// When it was said: ISO 8601 or Unix seconds (default: now).
    #[serde(default)]
    #[schemars(schema_with = "time_schema")]
    pub timestamp: Option<Value>,
}

/// Arguments of `search_memories`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchArgs {
    /// What to look for, in natural language ("where does the user live?").
    pub query: String,
    /// At most this many results (default 10, at most 100).
    #[serde(default)]
    #[schemars(with = "usize")]
    pub top_k: Option<usize>,
    /// Metadata filters, in mem0's shape: {"topic": "travel"},
    /// {"AND": [...]}, {"score": {"gte": 3}}.
    #[serde(default)]
    #[schemars(with = "serde_json::Map<String, Value>")]
    pub filters: Option<Value>,
    /// `hybrid` (meaning and words, default), `semantic` or `keyword`.
    #[serde(default)]
    #[schemars(with = "String")]
    pub mode: Option<String>,
    /// Search what was remembered at this time (ISO 8601 or Unix seconds).
    #[serde(default)]
    #[schemars(schema_with = "time_schema")]
    pub as_of: Option<Value>,
}

/// Arguments of `list_memories`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ListArgs {
    /// Metadata filters, in mem0's shape.
    #[serde(default)]
    #[schemars(with = "serde_json::Map<String, Value>")]
    pub filters: Option<Value>,
    /// Also list memories that newer ones replaced.
    #[serde(default)]
    pub include_superseded: bool,
    /// List what was remembered at this time (ISO 8601 or Unix seconds).
    #[serde(default)]
    #[schemars(schema_with = "time_schema")]
    pub as_of: Option<Value>,
    /// At most this many, newest first (default 10, at most 100).
    #[serde(default)]
    #[schemars(with = "usize")]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    #[schemars(with = "String")]
    pub cursor: Option<String>,
}

/// One memory, by id.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct IdArgs {
    /// The memory's id (a UUID, as search and list return it).
    pub id: String,
}

/// Arguments of `update_memory`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateArgs {
    /// The memory's id.
    pub id: String,
    /// Its new text.
    #[serde(default)]
    #[schemars(with = "String")]
    pub text: Option<String>,
    /// Metadata keys to set (merged into the memory's metadata).
    #[serde(default)]
    #[schemars(with = "Metadata")]
    pub metadata: Option<Metadata>,
}

/// Arguments of `delete_all_memories`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DeleteAllArgs {
    /// Must be true: every memory of the user (in this app's scope) is
    /// deleted for good.
    #[serde(default)]
    pub confirm: bool,
}

/// Arguments of the `remember` prompt.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct RememberArgs {
    /// The user's message, for which relevant memories are looked up.
    pub message: String,
}

/// A time argument's schema: ISO 8601 text or Unix seconds.
fn time_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "anyOf": [
            {"type": "string", "description": "ISO 8601, e.g. 2024-05-01T10:00:00Z"},
            {"type": "number", "description": "Unix seconds"}
        ]
    })
}

// ------------------------------------------------------------- rendering

/// A tool's answer: `text` for the model, `value` as structured content.
fn answer(text: String, value: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(value);
    result
}

/// A Homi error as a tool error: its code and sentence, as text and as
/// `{"error": {"code", "message"}}`.
fn failure(e: &Error) -> CallToolResult {
    let code = e.kind().code();
    let message = e.told(IN_LOG);
    let mut result = CallToolResult::error(vec![ContentBlock::text(format!("{code}: {message}"))]);
    result.structured_content = Some(json!({"error": {"code": code, "message": message}}));
    result
}

/// Where the cause of an error the client is not shown can be found
/// ([`Error::told`]).
const IN_LOG: &str = "Homi's log";

/// A tool's outcome as MCP answers it: a failure is a tool error, never a
/// protocol error.
fn rendered(outcome: homi_core::Result<CallToolResult>) -> Result<CallToolResult, McpError> {
    Ok(outcome.unwrap_or_else(|e| failure(&e)))
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// One memory as a line: its text, id and, for search, its score.
fn line(m: &MemoryItem) -> String {
    let mut out = format!("{} (id {}", m.memory, m.id);
    if let Some(s) = m.score {
        out.push_str(&format!(", score {s:.2}"));
    }
    if m.superseded_by.is_some() {
        out.push_str(", superseded");
    }
    out.push(')');
    out
}

fn numbered(items: &[MemoryItem]) -> String {
    items
        .iter()
        .enumerate()
        .map(|(i, m)| format!("{}. {}", i + 1, line(m)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn time_arg(
    field: &str,
    v: Option<&Value>,
) -> homi_core::Result<Option<chrono::DateTime<chrono::Utc>>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => mem0::time_value(field, v).map(Some),
    }
}

/// A tool's count (`top_k`, `limit`): 1 to 100, [`DEFAULT_TOP_K`] when absent.
fn count(field: &str, given: Option<usize>) -> homi_core::Result<usize> {
    mem0::within(field, given.unwrap_or(DEFAULT_TOP_K), 100)
}

// ------------------------------------------------------------- the server

impl HomiMcp {
    /// The server over `memory`; `chat` serves the summary resource.
    pub fn new(memory: Memory, chat: Option<Chat>, identity: Identity) -> Self {
        Self {
            memory,
            chat,
            identity,
            tool_router: Self::tool_router(),
            prompt_router: Self::prompt_router(),
        }
    }

    /// The scope a request reaches, and whether it may write.
    fn caller(&self, ctx: &RequestContext<RoleServer>) -> homi_core::Result<(Scope, bool)> {
        match &self.identity {
            Identity::Local { user, agent } => {
                let scope = Scope::user(user.clone());
                let scope = match agent {
                    Agent::Named(a) => scope.with_agent(a.clone()),
                    Agent::Shared => scope,
                    Agent::Client => match ctx.client_info().map(|i| i.name) {
                        Some(name) if !name.trim().is_empty() => scope.with_agent(name),
                        _ => scope,
                    },
                };
                Ok((scope, true))
            }
            Identity::Http => {
                let caller = ctx
                    .extensions
                    .get::<axum::http::request::Parts>()
                    .and_then(|p| p.extensions.get::<McpCaller>())
                    .ok_or_else(|| Error::Unauthorized("no authenticated caller".into()))?;
                Ok((Scope::user(caller.user_id.clone()), caller.can_write))
            }
        }
    }

    /// The scope a read reaches and its metadata filter: mem0-shaped
    /// `filters` may narrow the scope (an `agent_id`), never widen it (another
    /// `user_id` is refused).
    fn filtered(
        &self,
        ctx: &RequestContext<RoleServer>,
        filters: Option<&Value>,
    ) -> homi_core::Result<(Scope, Option<homi_core::memory::Filter>)> {
        let (scope, _) = self.caller(ctx)?;
        mem0::scope_and_filter(
            scope.user_id.as_deref(),
            scope.agent_id.as_deref(),
            None,
            filters,
        )
    }

    /// The scope of a request that writes.
    fn writer(&self, ctx: &RequestContext<RoleServer>) -> homi_core::Result<Scope> {
        match self.caller(ctx)? {
            (scope, true) => Ok(scope),
            (_, false) => Err(Error::Forbidden(
                "this API key may only read: use a key with the write scope".into(),
            )),
        }
    }

    async fn add(&self, a: AddArgs, scope: Scope) -> homi_core::Result<CallToolResult> {
        let messages = match (a.text, a.messages) {
            (Some(t), None) => homi_core::Messages::from(t),
            (None, Some(list)) => {
                let list: Vec<Value> = list
                    .into_iter()
                    .map(|m| json!({"role": m.role, "content": m.content, "name": m.name}))
                    .collect();
                homi_core::Messages::from_json(&Value::Array(list))?
            }
            _ => return Err(Error::invalid("text", "give either text or messages")),
        };
        let can_infer = self.memory.infers();
        let infer = a.infer.unwrap_or(can_infer);
        let mut options = AddOptions::default().infer(infer);
        if let Some(m) = a.metadata {
            options = options.metadata(m);
        }
        if let Some(t) = time_arg("timestamp", a.timestamp.as_ref())? {
            options = options.timestamp(t);
        }
        let added = self.memory.add(messages, &scope, options).await?;
        let mut text = if added.results.is_empty() {
            "Nothing new to remember.".to_owned()
        } else {
            added
                .results
                .iter()
                .map(|e| format!("{}: {} (id {})", e.event.as_str(), e.memory, e.id))
                .collect::<Vec<_>>()
                .join("\n")
        };
        if a.infer.is_none() && !can_infer {
            text.push_str(
                "\n(Stored as given: no chat model is configured to extract facts, so infer defaults to false.)",
            );
        }
        Ok(answer(text, to_value(&added)))
    }
}

#[tool_router]
impl HomiMcp {
    /// Remembers a fact or a conversation about the user.
    #[tool(
        description = "Remember something about the user for later conversations: a fact in plain words (`text`) or a conversation (`messages`). With a chat model, Homi extracts short facts and updates or replaces what it already remembers; otherwise it stores the text as given. Returns what changed (ADD, UPDATE, DELETE, NONE) with memory ids."
    )]
    async fn add_memory(
        &self,
        Parameters(a): Parameters<AddArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let run = async { self.add(a, self.writer(&ctx)?).await };
        rendered(run.await)
    }

    /// Searches the user's memories.
    #[tool(
        description = "Search what is remembered about the user, by meaning and keywords. Use it before answering anything that may depend on the user's preferences, history or facts about them. Returns the best memories first, each with its id and a score in [0, 1]."
    )]
    async fn search_memories(
        &self,
        Parameters(a): Parameters<SearchArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let run = async {
            let (scope, filter) = self.filtered(&ctx, a.filters.as_ref())?;
            let mut options = SearchOptions::default().limit(count("top_k", a.top_k)?);
            if let Some(f) = filter {
                options = options.filters(f);
            }
            if let Some(m) = a.mode {
                options = options.mode(m.parse()?);
            }
            if let Some(t) = time_arg("as_of", a.as_of.as_ref())? {
                options = options.as_of(t);
            }
            let found = self.memory.search(&a.query, &scope, options).await?;
            let text = if found.results.is_empty() {
                "No memories match.".to_owned()
            } else {
                numbered(&found.results)
            };
            Ok(answer(text, to_value(&found)))
        };
        rendered(run.await)
    }

    /// Lists the user's memories, newest first, a page at a time.
    #[tool(
        description = "List the memories kept about the user, newest first, a page at a time (pass the answer's next_cursor as cursor for the next page). Filters narrow by metadata; include_superseded adds memories newer ones replaced; as_of lists what was remembered at a time."
    )]
    async fn list_memories(
        &self,
        Parameters(a): Parameters<ListArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let run = async {
            let (scope, filter) = self.filtered(&ctx, a.filters.as_ref())?;
            let mut options = ListOptions::default()
                .limit(count("limit", a.limit)?)
                .include_superseded(a.include_superseded);
            if let Some(f) = filter {
                options = options.filters(f);
            }
            if let Some(t) = time_arg("as_of", a.as_of.as_ref())? {
                options = options.as_of(t);
            }
            let page = self
                .memory
                .list_page(&scope, options, a.cursor.as_deref())
                .await?;
            let mut text = if page.results.is_empty() {
                "No memories.".to_owned()
            } else {
                numbered(&page.results)
            };
            if let Some(c) = &page.next_cursor {
                text.push_str(&format!("\nMore: call again with cursor \"{c}\"."));
            }
            Ok(answer(text, to_value(&page)))
        };
        rendered(run.await)
    }

    /// One memory by id.
    #[tool(description = "Get one memory by its id, with its metadata and timestamps.")]
    async fn get_memory(
        &self,
        Parameters(a): Parameters<IdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let run = async {
            let (scope, _) = self.caller(&ctx)?;
            match self.memory.get(&a.id, &scope).await? {
                Some(m) => Ok(answer(line(&m), to_value(&m))),
                None => Err(Error::not_found(format!("memory {}", a.id))),
            }
        };
        rendered(run.await)
    }

    /// Changes a memory's text or metadata.
    #[tool(
        description = "Correct a memory: give its id and its new text, or metadata keys to set (merged), or both. History keeps the old text."
    )]
    async fn update_memory(
        &self,
        Parameters(a): Parameters<UpdateArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let run = async {
            let scope = self.writer(&ctx)?;
            let mut edit = MemoryEdit::default();
            if let Some(t) = a.text {
                edit = edit.text(t);
            }
            if let Some(m) = a.metadata {
                edit = edit.merge_metadata(m);
            }
            let m = self.memory.edit(&a.id, &scope, edit).await?;
            Ok(answer(format!("Updated: {}", line(&m)), to_value(&m)))
        };
        rendered(run.await)
    }

    /// Deletes one memory.
    #[tool(
        description = "Forget one memory for good (its text, embedding and history texts), by id."
    )]
    async fn delete_memory(
        &self,
        Parameters(a): Parameters<IdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let run = async {
            let scope = self.writer(&ctx)?;
            self.memory.delete(&a.id, &scope).await?;
            Ok(answer(
                format!("Deleted memory {}.", a.id),
                json!({"deleted": 1, "id": a.id}),
            ))
        };
        rendered(run.await)
    }

    /// A memory's history.
    #[tool(
        description = "How a memory changed over time: its ADD, UPDATE and DELETE events, oldest first, with the text before and after each."
    )]
    async fn memory_history(
        &self,
        Parameters(a): Parameters<IdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let run = async {
            let (scope, _) = self.caller(&ctx)?;
            let entries = self.memory.history(&a.id, &scope).await?;
            if entries.is_empty() {
                return Err(Error::not_found(format!("memory {}", a.id)));
            }
            let text = entries
                .iter()
                .map(|e| {
                    format!(
                        "{} {}: {} -> {}",
                        homi_core::model::types::iso_utc(&e.created_at),
                        e.event.as_str(),
                        e.old_memory.as_deref().unwrap_or("-"),
                        e.new_memory.as_deref().unwrap_or("-")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            Ok(answer(text, json!({"results": entries})))
        };
        rendered(run.await)
    }

    /// Deletes every memory of the scope.
    #[tool(
        description = "Forget everything remembered about the user (in this app's scope), for good. Only when the user asks for it explicitly; requires confirm: true."
    )]
    async fn delete_all_memories(
        &self,
        Parameters(a): Parameters<DeleteAllArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let run = async {
            let scope = self.writer(&ctx)?;
            if !a.confirm {
                return Err(Error::invalid(
                    "confirm",
                    "must be true to delete every memory (nothing was deleted)",
                ));
            }
            let n = self.memory.delete_all(&scope).await?;
            Ok(answer(
                format!("Deleted {n} memories."),
                json!({"deleted": n}),
            ))
        };
        rendered(run.await)
    }
}

// The macro adds a public function per prompt, without docs.
#[allow(missing_docs)]
#[prompt_router]
impl HomiMcp {
    /// The user's message with what is remembered that bears on it.
    #[prompt(
        name = "remember",
        description = "The user's message, preceded by the memories relevant to it, so the answer can use what is known about the user."
    )]
    async fn remember(
        &self,
        Parameters(a): Parameters<RememberArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResult, McpError> {
        let (scope, _) = self.caller(&ctx).map_err(|e| protocol_error(&e))?;
        let found = self
            .memory
            .search(
                &a.message,
                &scope,
                SearchOptions::default().limit(PROMPT_MEMORIES),
            )
            .await
            .map_err(|e| protocol_error(&e))?;
        let memories: Vec<String> = found.results.into_iter().map(|m| m.memory).collect();
        let text = match homi_core::chat::remembered(&memories) {
            Some(block) => format!("{block}\n\n{}", a.message),
            None => a.message,
        };
        Ok(
            GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
                .with_description(format!("{} relevant memories", memories.len())),
        )
    }
}

/// A Homi error where MCP has no tool error (resources, prompts): invalid
/// parameters for a client's mistake, else an internal error; the data
/// carries Homi's code.
fn protocol_error(e: &Error) -> McpError {
    let data = Some(json!({"code": e.kind().code()}));
    match e.kind() {
        homi_core::ErrorKind::InvalidInput => McpError::invalid_params(e.to_string(), data),
        homi_core::ErrorKind::NotFound => McpError::resource_not_found(e.to_string(), data),
        _ => McpError::internal_error(e.told(IN_LOG), data),
    }
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for HomiMcp {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_prompts()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("homi", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Homi is the user's long-term memory. Search it (search_memories) before \
                 answering anything that may depend on the user; remember (add_memory) what the \
                 user says about themselves, their preferences and their plans; correct or \
                 forget memories when the user asks.",
            )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(SUMMARY_URI, "memory-summary")
                .with_description(
                    "What Homi remembers about the user, summarised by the chat model",
                )
                .with_mime_type("text/plain"),
        ]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(format!("{MEMORY_URI_PREFIX}{{id}}"), "memory")
                .with_description("One memory by its id, as JSON")
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let (scope, _) = self.caller(&ctx).map_err(|e| protocol_error(&e))?;
        let uri = request.uri;
        let contents = if uri == SUMMARY_URI {
            let Some(chat) = &self.chat else {
                return Err(protocol_error(&Error::ProviderNotConfigured(
                    "the summary needs a chat model".into(),
                )));
            };
            let user = scope.user_id.clone().unwrap_or_default();
            let summary = chat.summary(&user).await.map_err(|e| protocol_error(&e))?;
            ResourceContents::text(summary.summary, uri).with_mime_type("text/plain")
        } else if let Some(id) = uri.strip_prefix(MEMORY_URI_PREFIX) {
            let item = self
                .memory
                .get(id, &scope)
                .await
                .map_err(|e| protocol_error(&e))?
                .ok_or_else(|| protocol_error(&Error::not_found(format!("memory {id}"))))?;
            let text = serde_json::to_string_pretty(&item).unwrap_or_default();
            ResourceContents::text(text, uri.clone()).with_mime_type("application/json")
        } else {
            return Err(McpError::resource_not_found(
                format!("no resource {uri}: Homi has {SUMMARY_URI} and {MEMORY_URI_PREFIX}<id>"),
                None,
            ));
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }
}
