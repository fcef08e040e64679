//! Postgres' side of the engine (`store/sql/`): numbered placeholders,
//! native uuids, times, JSON (`jsonb`) and vectors (pgvector), the executor,
//! the filter's leaves on `jsonb` operators, row locks, and the row codecs.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pgvector::Vector;
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgConnection, PgRow};
use sqlx::{AssertSqlSafe, Postgres, Row};
use uuid::Uuid;

use crate::error::Result;
use crate::model::{Field, MemoryItem, Op};
use crate::store::normalize;
use crate::store::sql::memory::MemoryDriver;
use crate::store::sql::row::{item_at, memory_columns};
use crate::store::sql::{Bind, Columns, Dialect, Driver, Exec};

/// SQL parameters with Postgres' numbered placeholders.
#[derive(Debug, Default)]
pub(crate) struct Args(Vec<Bind>);

impl Args {
    pub(super) fn push(&mut self, b: Bind) -> String {
        self.0.push(b);
        format!("${}", self.0.len())
    }
    pub(super) fn text(&mut self, s: impl Into<String>) -> String {
        self.push(Bind::Text(s.into()))
    }
}

pub(super) type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

pub(super) fn bind_all<'q>(mut q: Query<'q>, args: &'q Args) -> Query<'q> {
    for b in &args.0 {
        q = match b {
            Bind::Text(s) => q.bind(s.as_str()),
            Bind::OptText(s) => q.bind(s.as_deref()),
            Bind::Json(v) => q.bind(sqlx::types::Json(v)),
            Bind::Uuid(u) => q.bind(*u),
            Bind::OptUuid(u) => q.bind(*u),
            Bind::Time(t) => q.bind(*t),
            Bind::OptTime(t) => q.bind(*t),
            Bind::Bool(b) => q.bind(*b),
            Bind::Vector(v) => q.bind(Vector::from(v.clone())),
            Bind::Int(i) => q.bind(*i),
            Bind::Real(r) => q.bind(*r),
            Bind::Texts(t) => q.bind(t),
        };
    }
    q
}

/// Postgres' side of the engine (`store/sql/`): numbered `$n`
/// placeholders, `timestamptz` times, JSON through `jsonb` operators.
pub(crate) struct PgDialect;

impl Dialect for PgDialect {
    type Args = Args;
    const TRUE: &'static str = "TRUE";
    const FALSE: &'static str = "FALSE";

    fn bind(args: &mut Args, value: Bind) -> String {
        args.push(value)
    }

    fn condition(field: &Field, op: Op, value: &Value, args: &mut Args) -> String {
        match field {
            Field::Metadata(key) => metadata_cond(key, op, value, args),
            Field::ActorId => column_cond("m.actor_id", op, value, args),
            Field::Role => column_cond("m.role", op, value, args),
        }
    }

    fn job_scope_field(key: &str) -> String {
        format!("payload->'scope'->>'{key}'")
    }
}

impl Driver for PgDialect {
    type Db = Postgres;
    type Row = PgRow;
    type Conn = PgConnection;
    const LOCKS_ROWS: bool = true;
    const CLAIM_LOCK: &'static str = "SELECT pg_advisory_xact_lock(7284610001)";
    const GREATEST: &'static str = "GREATEST";
    const ROW_KEY: &'static str = "id";
    const HISTORY_ORDER: &'static str = "h.pos";

    fn indexed_by(_: &str) -> String {
        String::new()
    }
}

/// Postgres keeps no bookkeeping beside the rows: its search reads them.
#[async_trait]
impl MemoryDriver for PgDialect {
    const VECTOR_INLINE: bool = true;
    const STAMPED: bool = false;
    const SHARE_LOCK: &'static str = " ORDER BY key FOR SHARE";
    const ROW_LOCK: &'static str = " FOR UPDATE";
    const SAME: &'static str = "IS NOT DISTINCT FROM";
    const META_LOCK: &'static str = "LOCK TABLE homi_meta IN SHARE ROW EXCLUSIVE MODE";

    async fn stamp(_: &mut PgConnection) -> Result<i64> {
        Ok(0)
    }

    async fn forget(_: &mut PgConnection, _: i64, _: &[PgRow]) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl Exec<PgDialect> for PgConnection {
    async fn all(&mut self, sql: String, args: Args) -> Result<Vec<PgRow>> {
        Ok(bind_all(sqlx::query(AssertSqlSafe(sql)), &args)
            .fetch_all(self)
            .await?)
    }

    async fn optional(&mut self, sql: String, args: Args) -> Result<Option<PgRow>> {
        Ok(bind_all(sqlx::query(AssertSqlSafe(sql)), &args)
            .fetch_optional(self)
            .await?)
    }

    async fn run(&mut self, sql: String, args: Args) -> Result<u64> {
        Ok(bind_all(sqlx::query(AssertSqlSafe(sql)), &args)
            .execute(self)
            .await?
            .rows_affected())
    }
}

impl Columns for PgRow {
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.try_get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.try_get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.try_get(i)?)
    }
    fn blob(&self, i: usize) -> Result<Vec<u8>> {
        Ok(self.try_get(i)?)
    }
    fn uuid(&self, i: usize) -> Result<Uuid> {
        Ok(self.try_get(i)?)
    }
    fn opt_uuid(&self, i: usize) -> Result<Option<Uuid>> {
        Ok(self.try_get(i)?)
    }
    fn time(&self, i: usize) -> Result<DateTime<Utc>> {
        Ok(self.try_get(i)?)
    }
    fn opt_time(&self, i: usize) -> Result<Option<DateTime<Utc>>> {
        Ok(self.try_get(i)?)
    }
    fn json(&self, i: usize) -> Result<Value> {
        Ok(self.try_get::<sqlx::types::Json<Value>, _>(i)?.0)
    }
    fn flag(&self, i: usize) -> Result<bool> {
        Ok(self.try_get(i)?)
    }
    fn vector(&self, i: usize) -> Result<Vec<f32>> {
        Ok(self.try_get::<Vector, _>(i)?.to_vec())
    }
    fn texts(&self, i: usize) -> Result<Vec<String>> {
        Ok(self.try_get(i)?)
    }
}

/// Conditions on a metadata key, compared as JSON values (numbers by value,
/// strings byte-wise), with the same meaning as the SQLite store.
fn metadata_cond(key: &str, op: Op, value: &Value, args: &mut Args) -> String {
    let k = args.text(key);
    let j = format!("(m.metadata -> {k})");
    let t = format!("(m.metadata ->> {k})");
    match op {
        Op::Exists => format!("(m.metadata ? {k})"),
        Op::Eq if value.is_null() => format!("({j} IS NULL OR {j} = 'null'::jsonb)"),
        Op::Ne if value.is_null() => format!("({j} IS NOT NULL AND {j} <> 'null'::jsonb)"),
        Op::Eq => {
            let v = args.push(Bind::Json(value.clone()));
            format!("({j} = {v}::jsonb)")
        }
        Op::Ne => {
            let v = args.push(Bind::Json(value.clone()));
            format!("({j} IS NULL OR {j} <> {v}::jsonb)")
        }
        Op::In | Op::Nin => {
            let items: Vec<String> = value
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| format!("{}::jsonb", args.push(Bind::Json(x.clone()))))
                        .collect()
                })
                .unwrap_or_default();
            match (op, items.is_empty()) {
                (Op::In, true) => "FALSE".to_owned(),
                (_, true) => "TRUE".to_owned(),
                (Op::In, false) => format!("({j} IN ({}))", items.join(", ")),
                _ => format!("({j} IS NULL OR {j} NOT IN ({}))", items.join(", ")),
            }
        }
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
            let sym = match op {
                Op::Gt => ">",
                Op::Gte => ">=",
                Op::Lt => "<",
                _ => "<=",
            };
            match value {
                Value::Number(n) => {
                    let v = args.text(n.to_string());
                    format!("(jsonb_typeof({j}) = 'number' AND {t}::numeric {sym} {v}::numeric)")
                }
                Value::String(s) => {
                    let v = args.text(s.clone());
                    format!(
                        "(jsonb_typeof({j}) = 'string' AND {t} COLLATE \"C\" {sym} {v} COLLATE \"C\")"
                    )
                }
                _ => "FALSE".to_owned(),
            }
        }
        Op::Contains => {
            let v = args.push(Bind::Json(value.clone()));
            let needle = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let s = args.text(needle);
            format!(
                "({j} @> {v}::jsonb OR (jsonb_typeof({j}) = 'string' AND strpos({t}, {s}) > 0))"
            )
        }
        Op::Icontains => {
            let s = args.text(value.as_str().unwrap_or_default());
            format!("(jsonb_typeof({j}) = 'string' AND strpos(lower({t}), lower({s})) > 0)")
        }
    }
}

fn column_cond(col: &str, op: Op, value: &Value, args: &mut Args) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        _ => None,
    };
    match op {
        Op::Exists => format!("{col} IS NOT NULL"),
        Op::Eq | Op::Ne => match (text(value), value.is_null()) {
            (_, true) if op == Op::Eq => format!("{col} IS NULL"),
            (_, true) => format!("{col} IS NOT NULL"),
            (Some(s), _) => {
                let p = args.text(s);
                if op == Op::Eq {
                    format!("{col} = {p}")
                } else {
                    format!("({col} IS NULL OR {col} <> {p})")
                }
            }
            (None, _) => if op == Op::Eq { "FALSE" } else { "TRUE" }.to_owned(),
        },
        Op::In | Op::Nin => {
            let items: Vec<String> = value
                .as_array()
                .map(|a| a.iter().filter_map(text).map(|s| args.text(s)).collect())
                .unwrap_or_default();
            match (op, items.is_empty()) {
                (Op::In, true) => "FALSE".to_owned(),
                (_, true) => "TRUE".to_owned(),
                (Op::In, false) => format!("{col} IN ({})", items.join(", ")),
                _ => format!("({col} IS NULL OR {col} NOT IN ({}))", items.join(", ")),
            }
        }
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
            let sym = match op {
                Op::Gt => ">",
                Op::Gte => ">=",
                Op::Lt => "<",
                _ => "<=",
            };
            match text(value) {
                Some(s) => {
                    let p = args.text(s);
                    format!("({col} COLLATE \"C\" {sym} {p} COLLATE \"C\")")
                }
                None => "FALSE".to_owned(),
            }
        }
        Op::Contains | Op::Icontains => {
            let needle = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let p = args.text(needle);
            if op == Op::Contains {
                format!("strpos({col}, {p}) > 0")
            } else {
                format!("strpos(lower({col}), lower({p})) > 0")
            }
        }
    }
}

pub(super) const COLUMNS: &str = memory_columns!();

pub(super) fn item_from_row(row: &PgRow) -> Result<MemoryItem> {
    item_at(row, 0)
}

pub(super) fn normalized(v: &[f32]) -> Vec<f32> {
    let mut v = v.to_vec();
    normalize(&mut v);
    v
}
