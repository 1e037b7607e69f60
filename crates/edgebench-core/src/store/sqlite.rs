//! The SQLite engine of the store: one file (WAL, foreign keys) or memory, its migrations kept
//! in `user_version`, and the file-only maintenance (page cap, integrity check, vacuum).

use rusqlite::{types::Value as SqlValue, Connection};
use std::path::Path;

use super::db::{Db, DbError, Dialect, Row, Stmt, Value};

/// The schema, one migration per version (applied in order, recorded in `user_version`).
/// `pg::MIGRATIONS` holds the same versions in PostgreSQL's words.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE experiments (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    config_json TEXT NOT NULL,
    command TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE units (
    id INTEGER PRIMARY KEY,
    experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    scenario TEXT NOT NULL,
    setting TEXT NOT NULL DEFAULT '',
    position INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    report_json TEXT,
    file TEXT,
    UNIQUE (experiment_id, model, scenario, setting)
);
CREATE TABLE requests (
    id INTEGER PRIMARY KEY,
    unit_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    warmup INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    line_json TEXT NOT NULL,
    UNIQUE (unit_id, idx)
);
CREATE TABLE monitor_samples (
    unit_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    t_ns INTEGER NOT NULL,
    rss_mb REAL,
    cpu_percent REAL NOT NULL
);
CREATE TABLE eval_items (
    id INTEGER PRIMARY KEY,
    unit_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    item_id TEXT NOT NULL,
    item_json TEXT NOT NULL,
    UNIQUE (unit_id, item_id)
);
CREATE TABLE hardware_snapshots (
    experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    taken TEXT NOT NULL,
    snapshot_json TEXT NOT NULL
);
CREATE INDEX requests_unit ON requests(unit_id);
CREATE INDEX samples_unit ON monitor_samples(unit_id);
"#,
    r#"
ALTER TABLE monitor_samples ADD COLUMN gpu_util_percent REAL;
ALTER TABLE monitor_samples ADD COLUMN vram_mb REAL;
ALTER TABLE monitor_samples ADD COLUMN temp_c REAL;
ALTER TABLE monitor_samples ADD COLUMN energy_j REAL;
"#,
    // Typed unit keys: `model` keeps the display label (and the uniqueness it always had);
    // units written before this version have empty typed columns and are read from the label.
    r#"
ALTER TABLE units ADD COLUMN model_name TEXT NOT NULL DEFAULT '';
ALTER TABLE units ADD COLUMN format TEXT NOT NULL DEFAULT '';
ALTER TABLE units ADD COLUMN quantization TEXT NOT NULL DEFAULT '';
"#,
    // Stable identities (push/pull between stores without duplicates), machines, and the
    // fleet queue. Experiments written before get a random identity now.
    r#"
ALTER TABLE experiments ADD COLUMN uuid TEXT NOT NULL DEFAULT '';
ALTER TABLE experiments ADD COLUMN machine_id TEXT NOT NULL DEFAULT '';
UPDATE experiments SET uuid = lower(hex(randomblob(16))) WHERE uuid = '';
CREATE UNIQUE INDEX experiments_uuid ON experiments(uuid);
ALTER TABLE units ADD COLUMN uuid TEXT NOT NULL DEFAULT '';
UPDATE units SET uuid = lower(hex(randomblob(16))) WHERE uuid = '';
CREATE TABLE machines (
    id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    hardware_json TEXT NOT NULL,
    first_seen TEXT NOT NULL
);
CREATE TABLE queue (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    plan_json TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    agent TEXT,
    lease_until_ms INTEGER,
    experiment_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created TEXT NOT NULL
);
"#,
    r#"
ALTER TABLE machines ADD COLUMN bench_json TEXT;
ALTER TABLE machines ADD COLUMN bench_taken TEXT;
"#,
];

/// An SQLite database.
pub(crate) struct Sqlite {
    conn: Connection,
}

fn err(e: rusqlite::Error) -> DbError {
    DbError(e.to_string())
}

fn to_sql(v: Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Int(i) => SqlValue::Integer(i),
        Value::Real(f) => SqlValue::Real(f),
        Value::Text(s) => SqlValue::Text(s),
    }
}

fn from_sql(v: SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::Int(i),
        SqlValue::Real(f) => Value::Real(f),
        SqlValue::Text(s) => Value::Text(s),
        SqlValue::Blob(b) => Value::Text(String::from_utf8_lossy(&b).into_owned()),
    }
}

impl Sqlite {
    /// Opens (creating if needed) the file at `path`, migrating its schema.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        Self::init(Connection::open(path).map_err(err)?)
    }

    /// A database in memory only.
    pub fn in_memory() -> Result<Self, DbError> {
        Self::init(Connection::open_in_memory().map_err(err)?)
    }

    fn init(conn: Connection) -> Result<Self, DbError> {
        let mut s = Self { conn };
        s.conn
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
            )
            .map_err(err)?;
        let version = usize::try_from(s.schema_version()?).unwrap_or(0);
        if version > MIGRATIONS.len() {
            return Err(DbError(format!(
                "schema version {version} is newer than this edgebench ({}); upgrade edgebench",
                MIGRATIONS.len()
            )));
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = s.conn.transaction().map_err(err)?;
            tx.execute_batch(m)
                .and_then(|_| tx.pragma_update(None, "user_version", (i + 1) as i64))
                .and_then(|_| tx.commit())
                .map_err(err)?;
        }
        Ok(s)
    }

    /// Limits the database size (pages of 4 KiB): a stand-in for a full disk in tests.
    pub fn set_max_pages(&self, pages: i64) -> Result<(), DbError> {
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .map_err(err)
    }

    /// `PRAGMA integrity_check` says "ok".
    pub fn integrity_ok(&self) -> Result<bool, DbError> {
        let r: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(err)?;
        Ok(r == "ok")
    }

    /// Gives the space of deleted rows back to the file system.
    pub fn vacuum(&self) -> Result<(), DbError> {
        self.conn.execute_batch("VACUUM").map_err(err)
    }
}

impl Db for Sqlite {
    fn execute_all(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, DbError> {
        let tx = self.conn.unchecked_transaction().map_err(err)?;
        let mut changed = Vec::with_capacity(stmts.len());
        for s in stmts {
            let mut st = tx.prepare_cached(&s.sql).map_err(err)?;
            let n = st
                .execute(rusqlite::params_from_iter(s.params.into_iter().map(to_sql)))
                .map_err(err)?;
            changed.push(n as u64);
        }
        tx.commit().map_err(err)?;
        Ok(changed)
    }

    fn query(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, DbError> {
        let mut st = self.conn.prepare_cached(sql).map_err(err)?;
        let cols = st.column_count();
        let mut rows = st
            .query(rusqlite::params_from_iter(params.into_iter().map(to_sql)))
            .map_err(err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(err)? {
            let mut vals = Vec::with_capacity(cols);
            for i in 0..cols {
                vals.push(from_sql(r.get::<_, SqlValue>(i).map_err(err)?));
            }
            out.push(Row(vals));
        }
        Ok(out)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn schema_version(&self) -> Result<i64, DbError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)
    }
}
