//! The store: the source of truth and the checkpoint, on SQLite (a results folder's
//! `edgebench.db`) or PostgreSQL (a team store many machines write to). The only module with
//! SQL. Each finished request is committed; a unit is marked done in the same transaction as its
//! last request, so a resumed run redoes only unfinished units, from their start, and never
//! counts a request twice.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::results::{UnitKey, UnitReport};
use db::{vals, Db, DbError, Row, Stmt, Value};

pub use db::Dialect;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("results database {path}: {reason}")]
    Sql { path: String, reason: String },
    #[error("results database {path}: {reason}")]
    Other { path: String, reason: String },
    #[error("results database {path}: no experiment {id:?}")]
    NoExperiment { path: String, id: String },
}

/// Where a store lives: a results folder's SQLite file, a PostgreSQL URL, or memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    File(PathBuf),
    Postgres(String),
    Memory,
}

impl StoreLocation {
    /// `postgres://...` (or `postgresql://...`) is a team store; anything else a file path.
    pub fn parse(s: &str) -> Self {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Self::Postgres(s.to_string())
        } else {
            Self::File(PathBuf::from(s))
        }
    }

    /// The store of a results folder, unless `url` names another one.
    pub fn for_folder(dir: &Path, url: Option<&str>) -> Self {
        url.map_or_else(
            || Self::File(dir.join(crate::results::DB_FILE)),
            Self::parse,
        )
    }

    /// How it is named in messages (a URL's password hidden).
    pub fn shown(&self) -> String {
        match self {
            Self::File(p) => p.display().to_string(),
            Self::Postgres(u) => pg::redact(u),
            Self::Memory => ":memory:".into(),
        }
    }

    /// A file that does not exist yet.
    pub fn is_missing_file(&self) -> bool {
        matches!(self, Self::File(p) if !p.is_file())
    }
}

/// An experiment as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRow {
    pub id: String,
    pub kind: String,
    pub created: String,
    pub config_hash: String,
    pub config_json: String,
    /// The command line that started it (for the resume hint).
    pub command: String,
    /// "running", "interrupted", "failed" or "done".
    pub status: String,
    /// A stable identity across stores (push, pull, import); given at creation when empty.
    #[serde(default)]
    pub uuid: String,
    /// The machine it ran on (`machines.id`, a fingerprint of its hardware); empty when unknown.
    #[serde(default)]
    pub machine_id: String,
}

/// A unit (model x scenario x setting) as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitRow {
    pub id: i64,
    /// Which model build, scenario (or task) and setting.
    #[serde(flatten)]
    pub key: UnitKey,
    /// "pending", "running", "failed", "skipped" or "done".
    pub status: String,
    pub error: Option<String>,
    pub report: Option<UnitReport>,
    /// The stored report as JSON (a perf unit's report, or an eval unit's summary).
    pub report_json: Option<String>,
    /// Committed requests (perf) plus scored items (eval).
    pub requests: i64,
}

/// The engine a store runs on.
enum Engine {
    Sqlite(sqlite::Sqlite),
    Postgres(pg::Postgres),
}

/// The results database.
pub struct Store {
    engine: Engine,
    path: String,
}

impl Store {
    fn db(&self) -> &dyn Db {
        match &self.engine {
            Engine::Sqlite(s) => s,
            Engine::Postgres(p) => p,
        }
    }

    fn sql(&self) -> impl Fn(DbError) -> StoreError + '_ {
        move |e| StoreError::Sql {
            path: self.path.clone(),
            reason: e.0,
        }
    }

    fn opened(path: String) -> impl Fn(DbError) -> StoreError {
        move |e| StoreError::Sql {
            path: path.clone(),
            reason: e.0,
        }
    }

    /// Opens the store at `location`, creating and migrating it as needed.
    pub fn connect(location: &StoreLocation) -> Result<Self, StoreError> {
        match location {
            StoreLocation::File(p) => Self::open(p),
            StoreLocation::Memory => Self::in_memory(),
            StoreLocation::Postgres(url) => {
                let shown = location.shown();
                let pg = pg::Postgres::connect(url).map_err(Self::opened(shown.clone()))?;
                Ok(Self {
                    engine: Engine::Postgres(pg),
                    path: shown,
                })
            }
        }
    }

    /// Opens an existing store (for reading results); an error naming the file when absent.
    pub fn connect_existing(location: &StoreLocation) -> Result<Self, StoreError> {
        match location {
            StoreLocation::File(p) => Self::open_existing(p),
            other => Self::connect(other),
        }
    }

    /// Opens (creating if needed) the database at `path`, migrating its schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Other {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        }
        let db = sqlite::Sqlite::open(path).map_err(Self::opened(shown.clone()))?;
        Ok(Self {
            engine: Engine::Sqlite(db),
            path: shown,
        })
    }

    /// Opens an existing database (for reading results); an error naming the path when absent.
    pub fn open_existing(path: &Path) -> Result<Self, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Other {
                path: path.display().to_string(),
                reason: "no results database here (run `edgebench run` or `edgebench eval` first, or pass --results DIR)".into(),
            });
        }
        Self::open(path)
    }

    /// A store that lives in memory only (`--no-checkpoint`).
    pub fn in_memory() -> Result<Self, StoreError> {
        let db = sqlite::Sqlite::in_memory().map_err(Self::opened(":memory:".into()))?;
        Ok(Self {
            engine: Engine::Sqlite(db),
            path: ":memory:".into(),
        })
    }

    /// Which engine the store runs on.
    pub fn dialect(&self) -> Dialect {
        self.db().dialect()
    }

    fn sqlite(&self, what: &str) -> Result<&sqlite::Sqlite, StoreError> {
        match &self.engine {
            Engine::Sqlite(s) => Ok(s),
            Engine::Postgres(_) => Err(StoreError::Other {
                path: self.path.clone(),
                reason: format!("{what} is for SQLite files; PostgreSQL keeps its own"),
            }),
        }
    }

    fn exec(&self, sql: &str, params: Vec<Value>) -> Result<u64, StoreError> {
        let n = self
            .db()
            .execute_all(vec![Stmt::new(sql, params)])
            .map_err(self.sql())?;
        Ok(n.first().copied().unwrap_or(0))
    }

    fn exec_all(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, StoreError> {
        self.db().execute_all(stmts).map_err(self.sql())
    }

    fn query(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, StoreError> {
        self.db().query(sql, params).map_err(self.sql())
    }

    fn query_map<T>(
        &self,
        sql: &str,
        params: Vec<Value>,
        f: impl Fn(&Row) -> Result<T, DbError>,
    ) -> Result<Vec<T>, StoreError> {
        self.query(sql, params)?
            .iter()
            .map(|r| f(r).map_err(self.sql()))
            .collect()
    }

    /// The schema version.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.db().schema_version().map_err(self.sql())
    }

    /// Limits the database size (pages of 4 KiB): a stand-in for a full disk in tests.
    pub fn set_max_pages(&self, pages: i64) -> Result<(), StoreError> {
        self.sqlite("a page limit")?
            .set_max_pages(pages)
            .map_err(self.sql())
    }

    /// `PRAGMA integrity_check` says "ok".
    pub fn integrity_ok(&self) -> Result<bool, StoreError> {
        self.sqlite("an integrity check")?
            .integrity_ok()
            .map_err(self.sql())
    }

    /// Records a new experiment (given a fresh identity when it has none).
    pub fn create_experiment(&self, e: &ExperimentRow) -> Result<(), StoreError> {
        self.insert_experiment(e, &e.id, "")?;
        Ok(())
    }

    /// Records a new experiment under its id, or under the first of `ID-2`, `ID-3`... that is
    /// free; the id it got. Each attempt is one `INSERT ... ON CONFLICT DO NOTHING`, so two
    /// invocations that start in the same second on one store (two agents) never take the same
    /// id, where looking for a free id and then inserting would race.
    pub fn create_experiment_free(&self, e: &ExperimentRow) -> Result<String, StoreError> {
        let mut n = 1;
        loop {
            let id = if n == 1 {
                e.id.clone()
            } else {
                format!("{}-{n}", e.id)
            };
            if self.insert_experiment(e, &id, " ON CONFLICT (id) DO NOTHING")? > 0 {
                return Ok(id);
            }
            n += 1;
        }
    }

    /// Inserts `e` under `id`; rows inserted.
    fn insert_experiment(
        &self,
        e: &ExperimentRow,
        id: &str,
        on_conflict: &str,
    ) -> Result<u64, StoreError> {
        let uuid = if e.uuid.is_empty() {
            new_uuid()
        } else {
            e.uuid.clone()
        };
        self.exec(
            &format!(
                "INSERT INTO experiments (id, kind, created, config_hash, config_json, command, status, uuid, machine_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9){on_conflict}"
            ),
            vals![id, &e.kind, &e.created, &e.config_hash, &e.config_json, &e.command, &e.status, uuid, &e.machine_id],
        )
    }

    /// Records the machine as it was when an invocation of an experiment started.
    pub fn add_hardware_snapshot(
        &self,
        experiment: &str,
        taken: &str,
        snapshot_json: &str,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO hardware_snapshots (experiment_id, taken, snapshot_json) VALUES (?1, ?2, ?3)",
            vals![experiment, taken, snapshot_json],
        )?;
        Ok(())
    }

    /// An experiment's hardware snapshots, oldest first: (taken, JSON).
    pub fn hardware_snapshots(
        &self,
        experiment: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.query_map(
            "SELECT taken, snapshot_json FROM hardware_snapshots WHERE experiment_id = ?1 ORDER BY rowid",
            vals![experiment],
            |r| Ok((r.text(0)?, r.text(1)?)),
        )
    }

    /// True when an experiment with this id exists.
    pub fn has_experiment(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.experiment(id)?.is_some())
    }

    fn row(r: &Row) -> Result<ExperimentRow, DbError> {
        Ok(ExperimentRow {
            id: r.text(0)?,
            kind: r.text(1)?,
            created: r.text(2)?,
            config_hash: r.text(3)?,
            config_json: r.text(4)?,
            command: r.text(5)?,
            status: r.text(6)?,
            uuid: r.text(7)?,
            machine_id: r.text(8)?,
        })
    }

    const COLS: &'static str =
        "id, kind, created, config_hash, config_json, command, status, uuid, machine_id";

    /// One experiment.
    pub fn experiment(&self, id: &str) -> Result<Option<ExperimentRow>, StoreError> {
        Ok(self
            .query_map(
                &format!("SELECT {} FROM experiments WHERE id = ?1", Self::COLS),
                vals![id],
                Self::row,
            )?
            .into_iter()
            .next())
    }

    /// The experiment with this stable identity.
    pub fn experiment_by_uuid(&self, uuid: &str) -> Result<Option<ExperimentRow>, StoreError> {
        Ok(self
            .query_map(
                &format!("SELECT {} FROM experiments WHERE uuid = ?1", Self::COLS),
                vals![uuid],
                Self::row,
            )?
            .into_iter()
            .next())
    }

    /// The newest unfinished experiment with this config hash of machine `machine_id` (or of no
    /// recorded machine: another team member's run is not this one's to continue).
    pub fn latest_unfinished(
        &self,
        config_hash: &str,
        machine_id: &str,
    ) -> Result<Option<ExperimentRow>, StoreError> {
        Ok(self
            .query_map(
                &format!(
                    "SELECT {} FROM experiments WHERE config_hash = ?1 AND status != 'done'
                     AND (machine_id = '' OR machine_id = ?2)
                     ORDER BY created DESC, id DESC LIMIT 1",
                    Self::COLS
                ),
                vals![config_hash, machine_id],
                Self::row,
            )?
            .into_iter()
            .next())
    }

    /// Every experiment, newest first.
    pub fn experiments(&self) -> Result<Vec<ExperimentRow>, StoreError> {
        self.query_map(
            &format!(
                "SELECT {} FROM experiments ORDER BY created DESC, id DESC",
                Self::COLS
            ),
            vec![],
            Self::row,
        )
    }

    /// Sets an experiment's status.
    pub fn set_status(&self, id: &str, status: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE experiments SET status = ?2 WHERE id = ?1",
            vals![id, status],
        )?;
        Ok(())
    }

    /// Replaces an experiment's configuration record.
    pub fn set_config(&self, id: &str, config_json: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE experiments SET config_json = ?2 WHERE id = ?1",
            vals![id, config_json],
        )?;
        Ok(())
    }

    /// Deletes an experiment and everything under it; false when there was none.
    pub fn delete_experiment(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.exec("DELETE FROM experiments WHERE id = ?1", vals![id])? > 0)
    }

    /// Gives the space of deleted rows back to the file system (SQLite files only; PostgreSQL
    /// vacuums itself).
    pub fn vacuum(&self) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sqlite(s) => s.vacuum().map_err(self.sql()),
            Engine::Postgres(_) => Ok(()),
        }
    }

    /// Where the database lives (":memory:" for in-memory stores, the URL without its password
    /// for PostgreSQL).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(&self.path)
    }

    /// How the store is named in messages.
    pub fn shown(&self) -> &str {
        &self.path
    }
}

/// A fresh random identity.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

mod copy;
pub(crate) mod db;
mod machines;
mod pg;
mod queue;
mod sqlite;
#[doc(hidden)]
pub mod temp_pg;
#[cfg(test)]
mod tests;
mod units;

pub use copy::{copy_experiments, CopyReport, ExperimentCopy, StoredRequest, UnitCopy, Written};
pub use machines::MachineRow;
pub use queue::{QueueItem, QueueStatus};
