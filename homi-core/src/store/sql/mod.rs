//! The SQL engine both stores share. Each store operation's control flow
//! and most of its SQL are written here once, over a [`Dialect`]: the
//! database's placeholders, its encodings of times, uuids and JSON (in the
//! binds it takes and the rows it gives), its executor, and the few texts
//! that differ (the filter's leaves on SQLite's JSON functions or Postgres'
//! `jsonb`, a history's order). The stores keep what is theirs alone:
//! opening, migrations, transactions' start, and the read paths (SQLite's
//! vector cache, Postgres' HNSW index).
//!
//! A memory's row (its columns, read and written) is in [`row`].
//! One module per port: [`memory`] (deletions, history, reads) and
//! [`apply`] (the write transaction) for the memory store, [`transfer`]
//! (export, restore, the re-embedding's bookkeeping), and the `auth`,
//! `chat` and [`jobs`] ports, implemented for every [`SqlStore`]. The
//! conditions below (which rows a scope or an access reaches, what a read
//! may see, the walk of a [`Filter`] tree) are shared by all of them.

pub(crate) mod apply;
#[cfg(feature = "auth")]
pub(crate) mod auth;
#[cfg(feature = "chat")]
pub(crate) mod chat;
pub(crate) mod deletions;
pub(crate) mod jobs;
pub(crate) mod memory;
pub(crate) mod row;
pub(crate) mod store;
pub(crate) mod transfer;
pub(crate) mod usage;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::ReadParams;
use crate::error::Result;
use crate::model::{Access, Field, Filter, Op, Scope};

/// A value bound to a statement, before the dialect encodes it (SQLite
/// stores uuids and JSON as text, times as Unix microseconds, flags as
/// integers and vectors as little-endian `f32` blobs).
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Real(f64),
    Bool(bool),
    Uuid(Uuid),
    OptUuid(Option<Uuid>),
    Time(DateTime<Utc>),
    OptTime(Option<DateTime<Utc>>),
    Json(Value),
    Vector(Vec<f32>),
    #[cfg_attr(not(feature = "auth"), allow(dead_code))]
    /// A list of texts (Postgres `text[]`, SQLite comma-separated).
    Texts(Vec<String>),
}

macro_rules! bind_from {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl From<$t> for Bind {
            fn from(v: $t) -> Self {
                Bind::$variant(v.into())
            }
        })*
    };
}

bind_from!(
    &str => Text,
    String => Text,
    Option<String> => OptText,
    i64 => Int,
    bool => Bool,
    Uuid => Uuid,
    Option<Uuid> => OptUuid,
    DateTime<Utc> => Time,
    Option<DateTime<Utc>> => OptTime,
);

impl From<Option<&str>> for Bind {
    fn from(v: Option<&str>) -> Self {
        Bind::OptText(v.map(str::to_owned))
    }
}

/// Binds `values` in order; returns their placeholders and the parameters.
pub(crate) fn binds<D: Dialect, const N: usize>(values: [Bind; N]) -> ([String; N], D::Args) {
    let mut args = D::Args::default();
    let placeholders = values.map(|v| D::bind(&mut args, v));
    (placeholders, args)
}

/// A row's columns by position, decoded from the dialect's encodings.
pub(crate) trait Columns {
    fn text(&self, i: usize) -> Result<String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    fn int(&self, i: usize) -> Result<i64>;
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    fn blob(&self, i: usize) -> Result<Vec<u8>>;
    fn uuid(&self, i: usize) -> Result<Uuid>;
    fn opt_uuid(&self, i: usize) -> Result<Option<Uuid>>;
    fn time(&self, i: usize) -> Result<DateTime<Utc>>;
    fn opt_time(&self, i: usize) -> Result<Option<DateTime<Utc>>>;
    fn json(&self, i: usize) -> Result<Value>;
    fn flag(&self, i: usize) -> Result<bool>;
    #[cfg_attr(not(feature = "auth"), allow(dead_code))]
    fn texts(&self, i: usize) -> Result<Vec<String>>;
    /// A memory's vector as stored.
    fn vector(&self, i: usize) -> Result<Vec<f32>>;

    /// The scope in three consecutive columns from `i` (user, agent, run).
    fn scope(&self, i: usize) -> Result<Scope> {
        Ok(Scope {
            user_id: self.opt_text(i)?,
            agent_id: self.opt_text(i + 1)?,
            run_id: self.opt_text(i + 2)?,
        })
    }
}

/// A connection (or a transaction on one) that runs a driver's statements.
#[async_trait]
pub(crate) trait Exec<D: Driver>: Send {
    async fn all(&mut self, sql: String, args: D::Args) -> Result<Vec<D::Row>>;
    async fn optional(&mut self, sql: String, args: D::Args) -> Result<Option<D::Row>>;
    /// Runs a statement; returns the rows it changed.
    async fn run(&mut self, sql: String, args: D::Args) -> Result<u64>;
}

/// A dialect with the database to run it on: its connections and rows.
pub(crate) trait Driver: Dialect + Sized + Send + Sync + 'static {
    type Db: sqlx::Database<Connection = Self::Conn>;
    type Row: Columns + Send + Sync;
    type Conn: Exec<Self> + sqlx::Connection<Database = Self::Db>;
    /// Whether reads lock the rows a transaction will change (`FOR UPDATE`);
    /// SQLite's write transactions hold the whole database instead.
    const LOCKS_ROWS: bool;
    /// What serialises job claims across processes (Postgres' advisory
    /// lock, for the transaction); nothing where a write transaction already
    /// holds the whole database.
    const CLAIM_LOCK: &'static str;
    /// The larger of two values (`GREATEST`, SQLite's two-argument `MAX`).
    #[cfg_attr(not(feature = "auth"), allow(dead_code))]
    const GREATEST: &'static str;

    /// What makes a read of a table take `index` (SQLite's planner, without
    /// statistics, may take another one that reads far more rows); nothing
    /// where the planner needs no hint.
    fn indexed_by(index: &str) -> String;
    /// The column by which the store knows a memory's row (SQLite's vector
    /// cache keys rows by `rid`).
    const ROW_KEY: &'static str;
    /// A memory's history entries (`h`), oldest first.
    const HISTORY_ORDER: &'static str;
}

/// `FOR UPDATE` of the tables `of` on a driver that locks rows.
#[cfg_attr(not(feature = "auth"), allow(dead_code))]
pub(crate) fn for_update<D: Driver>(of: &str) -> String {
    if D::LOCKS_ROWS {
        format!(" FOR UPDATE OF {of}")
    } else {
        String::new()
    }
}

/// A store on a SQL database: the connections the engine runs on.
#[async_trait]
pub(crate) trait SqlStore: Send + Sync + std::fmt::Debug + 'static {
    type D: memory::MemoryDriver;

    /// Begins a write transaction (SQLite: `BEGIN IMMEDIATE` on its writer).
    async fn write(&self) -> Result<sqlx::Transaction<'static, <Self::D as Driver>::Db>>;

    /// A connection for one write statement, which commits by itself (on
    /// SQLite, the one writer).
    async fn writer(&self) -> Result<sqlx::pool::PoolConnection<<Self::D as Driver>::Db>>;

    /// A read transaction that sees one snapshot of the database.
    async fn snapshot(&self) -> Result<sqlx::Transaction<'static, <Self::D as Driver>::Db>>;

    /// A connection for reads.
    async fn read(&self) -> Result<sqlx::pool::PoolConnection<<Self::D as Driver>::Db>>;

    /// After a write deleted text: SQLite truncates its write-ahead log, so
    /// that no copy of it stays in the file.
    async fn scrub(&self) {}

    #[cfg_attr(not(feature = "auth"), allow(dead_code))]
    /// Whether `sql` finds a row, answered on the caller's thread when the
    /// store can (SQLite's synchronous reader); `None`: ask [`read`](Self::read).
    fn exists_now(&self, _sql: &str, _args: &<Self::D as Dialect>::Args) -> Option<bool> {
        None
    }
}

/// What differs between the SQL texts of two databases.
pub(crate) trait Dialect {
    /// A statement's parameters so far.
    type Args: Default + Send;
    /// A condition that always holds.
    const TRUE: &'static str;
    /// A condition that never holds.
    const FALSE: &'static str;

    /// Binds a value; returns its placeholder.
    fn bind(args: &mut Self::Args, value: Bind) -> String;

    /// Binds a text; returns its placeholder.
    fn text(args: &mut Self::Args, value: &str) -> String {
        Self::bind(args, Bind::Text(value.to_owned()))
    }

    /// Binds a time; returns its placeholder.
    fn time(args: &mut Self::Args, at: DateTime<Utc>) -> String {
        Self::bind(args, Bind::Time(at))
    }

    /// One condition of a filter, on the memories aliased `m`.
    fn condition(field: &Field, op: Op, value: &Value, args: &mut Self::Args) -> String;

    /// The text at `scope.<key>` of a job's JSON `payload`.
    fn job_scope_field(key: &str) -> String;
}

/// A migrator running `migrations` (version, description, SQL) in order,
/// each in its own transaction.
pub(crate) fn migrator(
    migrations: &[(i64, &'static str, &'static str)],
) -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType};
    sqlx::migrate::Migrator::with_migrations(
        migrations
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    std::borrow::Cow::Borrowed(description),
                    MigrationType::Simple,
                    sqlx::SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    )
}

/// Placeholders for `values`, bound in order, joined by commas.
pub(crate) fn bind_list<D: Dialect>(
    args: &mut D::Args,
    values: impl IntoIterator<Item = Bind>,
) -> String {
    values
        .into_iter()
        .map(|v| D::bind(args, v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `alias`'s rows in `scope`: each id the scope gives must match. An empty
/// scope matches no row (it never means "every user").
pub(crate) fn scope_sql<D: Dialect>(scope: &Scope, alias: &str, args: &mut D::Args) -> String {
    let mut parts = Vec::new();
    for (column, id) in [
        ("user_id", &scope.user_id),
        ("agent_id", &scope.agent_id),
        ("run_id", &scope.run_id),
    ] {
        if let Some(id) = id {
            let p = D::text(args, id);
            parts.push(format!("{alias}.{column} = {p}"));
        }
    }
    if parts.is_empty() {
        D::FALSE.to_owned()
    } else {
        parts.join(" AND ")
    }
}

/// `alias`'s rows that `access` reaches: those of its scope, or every row
/// for [`Access::Any`].
pub(crate) fn access_sql<D: Dialect>(access: &Access, alias: &str, args: &mut D::Args) -> String {
    match access {
        Access::Scope(scope) => scope_sql::<D>(scope, alias, args),
        Access::Any => D::TRUE.to_owned(),
    }
}

/// The jobs (`homi_jobs`) that write into `scope`: the user column, and the
/// payload's scope for the agent and the run. An empty scope matches none.
pub(crate) fn job_scope_sql<D: Dialect>(scope: &Scope, args: &mut D::Args) -> String {
    let mut parts = Vec::new();
    if let Some(user) = &scope.user_id {
        let p = D::text(args, user);
        parts.push(format!("user_id = {p}"));
    }
    for (key, id) in [("agent_id", &scope.agent_id), ("run_id", &scope.run_id)] {
        if let Some(id) = id {
            let p = D::text(args, id);
            parts.push(format!("{} = {p}", D::job_scope_field(key)));
        }
    }
    if parts.is_empty() {
        D::FALSE.to_owned()
    } else {
        parts.join(" AND ")
    }
}

/// The memories of `alias` that are live now: not superseded, and not past
/// the end of their validity window (an expiry given on add or update).
/// Writes compare against these (a text already live in its scope is a
/// duplicate); reads show them by default.
pub(crate) fn live_sql<D: Dialect>(alias: &str, args: &mut D::Args) -> String {
    let now = D::time(args, Utc::now());
    let a = if alias.is_empty() {
        String::new()
    } else {
        format!("{alias}.")
    };
    format!("{a}superseded_by IS NULL AND ({a}valid_to IS NULL OR {a}valid_to > {now})")
}

/// The memories (`m`) a read with `params` sees by time: those valid at
/// `as_of`, else the live ones ([`live_sql`]), or all with
/// `include_superseded`. `show_expired` adds the memories whose window
/// ended by expiry rather than by being superseded.
pub(crate) fn validity_sql<D: Dialect>(params: &ReadParams, args: &mut D::Args) -> String {
    if let Some(at) = params.as_of {
        let from = D::time(args, at);
        let to = D::time(args, at);
        let expired = if params.show_expired {
            " OR m.superseded_by IS NULL"
        } else {
            ""
        };
        format!("m.valid_from <= {from} AND (m.valid_to IS NULL OR m.valid_to > {to}{expired})")
    } else if params.include_superseded {
        D::TRUE.to_owned()
    } else if params.show_expired {
        "m.superseded_by IS NULL".to_owned()
    } else {
        live_sql::<D>("m", args)
    }
}

/// What a read of `scope` with `params` may see: the scope, the validity
/// window and the metadata filter, as one condition on the memories `m`.
pub(crate) fn readable_sql<D: Dialect>(
    scope: &Scope,
    params: &ReadParams,
    args: &mut D::Args,
) -> String {
    let scope = scope_sql::<D>(scope, "m", args);
    let validity = validity_sql::<D>(params, args);
    let filter = match &params.filter {
        Some(f) => filter_sql::<D>(f, args),
        None => D::TRUE.to_owned(),
    };
    format!("{scope} AND {validity} AND {filter}")
}

/// A filter tree as one condition on the memories `m`: its groups here, its
/// leaves from the dialect.
pub(crate) fn filter_sql<D: Dialect>(filter: &Filter, args: &mut D::Args) -> String {
    let group = |filters: &[Filter], joint: &str, args: &mut D::Args| {
        let parts: Vec<String> = filters.iter().map(|f| filter_sql::<D>(f, args)).collect();
        format!("({})", parts.join(joint))
    };
    match filter {
        Filter::And(filters) => group(filters, " AND ", args),
        Filter::Or(filters) => group(filters, " OR ", args),
        Filter::Not(f) => format!("(NOT {})", filter_sql::<D>(f, args)),
        Filter::Cond { field, op, value } => D::condition(field, *op, value, args),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Numbered placeholders, `{i}` leaves: the shape of the SQL, not a database.
    struct Shape;

    impl Dialect for Shape {
        type Args = Vec<String>;
        const TRUE: &'static str = "TRUE";
        const FALSE: &'static str = "FALSE";
        fn bind(args: &mut Vec<String>, value: Bind) -> String {
            args.push(match value {
                Bind::Text(t) => t,
                Bind::Time(at) => at.to_rfc3339(),
                other => format!("{other:?}"),
            });
            format!("${}", args.len())
        }
        fn condition(field: &Field, op: Op, _: &Value, args: &mut Vec<String>) -> String {
            let name = match field {
                Field::Metadata(k) => k.clone(),
                Field::ActorId => "actor_id".into(),
                Field::Role => "role".into(),
            };
            args.push(format!("{name} {op:?}"));
            format!("{{{}}}", args.len())
        }
        fn job_scope_field(key: &str) -> String {
            format!("payload.{key}")
        }
    }

    fn params() -> ReadParams {
        ReadParams {
            limit: 10,
            filter: None,
            as_of: None,
            include_superseded: false,
            show_expired: false,
            threshold: None,
            after: None,
        }
    }

    #[test]
    fn an_empty_scope_matches_nothing_and_only_any_matches_all() {
        let mut args = Vec::new();
        assert_eq!(
            scope_sql::<Shape>(&Scope::default(), "m", &mut args),
            "FALSE"
        );
        let empty = Access::Scope(Scope::default());
        assert_eq!(access_sql::<Shape>(&empty, "m", &mut args), "FALSE");
        assert_eq!(access_sql::<Shape>(&Access::Any, "m", &mut args), "TRUE");
        assert!(args.is_empty());
        let s = Scope::user("u").with_run("r");
        assert_eq!(
            scope_sql::<Shape>(&s, "h", &mut args),
            "h.user_id = $1 AND h.run_id = $2"
        );
        assert_eq!(args, ["u", "r"]);
        assert_eq!(
            job_scope_sql::<Shape>(&Scope::default(), &mut args),
            "FALSE"
        );
        assert_eq!(
            job_scope_sql::<Shape>(&Scope::user("u").with_agent("a"), &mut args),
            "user_id = $3 AND payload.agent_id = $4"
        );
    }

    #[test]
    fn a_read_is_scope_validity_and_filter_in_bind_order() {
        let mut args = Vec::new();
        let mut p = params();
        p.filter = Some(Filter::Or(vec![
            Filter::Cond {
                field: Field::Metadata("topic".into()),
                op: Op::Eq,
                value: Value::from("food"),
            },
            Filter::Not(Box::new(Filter::Cond {
                field: Field::Role,
                op: Op::Exists,
                value: Value::Null,
            })),
        ]));
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        p.as_of = Some(at);
        let sql = readable_sql::<Shape>(&Scope::user("u"), &p, &mut args);
        assert_eq!(
            sql,
            "m.user_id = $1 AND m.valid_from <= $2 AND (m.valid_to IS NULL OR m.valid_to > $3) \
             AND ({4} OR (NOT {5}))"
        );
        assert_eq!(args.len(), 5);
        assert_eq!(args[3], "topic Eq");
        assert_eq!(args[4], "role Exists");

        let mut args = Vec::new();
        let mut p = params();
        assert_eq!(
            readable_sql::<Shape>(&Scope::agent("a"), &p, &mut args),
            "m.agent_id = $1 AND m.superseded_by IS NULL AND (m.valid_to IS NULL OR m.valid_to > $2) \
             AND TRUE"
        );
        p.show_expired = true;
        assert_eq!(
            validity_sql::<Shape>(&p, &mut args),
            "m.superseded_by IS NULL"
        );
        p.as_of = Some(at);
        assert_eq!(
            validity_sql::<Shape>(&p, &mut args),
            "m.valid_from <= $3 AND (m.valid_to IS NULL OR m.valid_to > $4 OR m.superseded_by IS NULL)"
        );
        p.as_of = None;
        p.include_superseded = true;
        assert_eq!(validity_sql::<Shape>(&p, &mut args), "TRUE");
    }
}
