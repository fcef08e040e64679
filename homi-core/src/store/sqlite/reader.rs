//! Synchronous reads on the caller's thread, through a few read-only
//! connections of our own to the same database file (rusqlite on the same
//! bundled SQLite).
//!
//! A query through sqlx crosses to the connection's worker thread and back:
//! 45–75 µs on a 2-core machine, for lookups SQLite answers in a few
//! microseconds. The hot paths (verifying a token's auth session, a search's
//! change-counter check and row fetch) ask here first. These connections see
//! every committed write, other processes' included, exactly as a sqlx
//! connection would: they are just more readers of the same WAL database. They
//! never wait: when every connection is in use, the database is busy or a read
//! fails, the caller asks through sqlx instead.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// Connections kept: enough that the runtime's threads rarely find all in use.
const CONNECTIONS: usize = 4;

/// How much of the database file each connection maps (SQLite caps it at its
/// compile-time maximum, 2 GB): address space, not memory.
const MMAP_BYTES: i64 = 1 << 31;

pub(crate) struct SyncReader {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for SyncReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncReader")
            .field("connections", &self.conns.len())
            .finish()
    }
}

impl SyncReader {
    /// Readers of the database file at `path`; `None` (and a debug log) when it
    /// cannot be opened, in which case everything is read through sqlx.
    pub(crate) fn open(path: &std::path::Path) -> Option<Self> {
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            // Never wait on the caller's thread.
            conn.busy_timeout(Duration::ZERO)?;
            conn.pragma_update(None, "query_only", true)?;
            // Pages straight from the OS page cache: the first search of a
            // scope reads its vectors (6 KB a memory at 1536 dimensions) and a
            // keyword search walks index pages, one `pread` and copy each
            // without this.
            conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
            // Searches differ in the length of their `IN (…)` lists.
            conn.set_prepared_statement_cache_capacity(64);
            Ok(conn)
        };
        let mut conns = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            match open() {
                Ok(c) => conns.push(Mutex::new(c)),
                Err(e) => {
                    tracing::debug!(error = %e, "no synchronous reader; reading through sqlx");
                    return None;
                }
            }
        }
        Some(Self {
            conns,
            next: AtomicUsize::new(0),
        })
    }

    /// `read` on a free connection, in one read transaction; `None` when no
    /// connection is free or the read failed (the caller then uses sqlx).
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Option<T> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.conns.len();
        let mut guard = (0..n).find_map(|i| self.conns[(start + i) % n].try_lock().ok())?;
        let result = guard
            .transaction()
            .and_then(|tx| read(&tx).and_then(|value| tx.commit().map(|()| value)));
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                tracing::debug!(error = %e, "synchronous read failed; reading through sqlx");
                None
            }
        }
    }
}
