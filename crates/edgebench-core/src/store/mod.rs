//! The store: SQLite (WAL, foreign keys) as the source of truth and the checkpoint. The only
//! module with SQL. Each finished request is committed; a unit is marked done in the same
//! transaction as its last request, so a resumed run redoes only unfinished units, from their
//! start, and never counts a request twice.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::results::{UnitKey, UnitReport};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("results database {path}: {source}")]
    Sql {
        path: String,
        source: rusqlite::Error,
    },
    #[error("results database {path}: {reason}")]
    Other { path: String, reason: String },
    #[error("results database {path}: no experiment {id:?}")]
    NoExperiment { path: String, id: String },
}

/// The schema, one migration per version (applied in order, recorded in `user_version`).
const MIGRATIONS: &[&str] = &[
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
];

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

/// The results database.
pub struct Store {
    conn: Connection,
    path: String,
}

impl Store {
    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sql {
            path: self.path.clone(),
            source,
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
        let conn = Connection::open(path).map_err(|source| StoreError::Sql {
            path: shown.clone(),
            source,
        })?;
        Self::init(conn, shown)
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
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Sql {
            path: ":memory:".into(),
            source,
        })?;
        Self::init(conn, ":memory:".into())
    }

    fn init(conn: Connection, path: String) -> Result<Self, StoreError> {
        let mut s = Self { conn, path };
        s.conn
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
            )
            .map_err(s.sql())?;
        let version: i64 = s
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(s.sql())?;
        let version = usize::try_from(version).unwrap_or(0);
        if version > MIGRATIONS.len() {
            return Err(StoreError::Other {
                path: s.path.clone(),
                reason: format!(
                    "schema version {version} is newer than this edgebench ({}); upgrade edgebench",
                    MIGRATIONS.len()
                ),
            });
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
            let path = s.path.clone();
            let tx = s.conn.transaction().map_err(|source| StoreError::Sql {
                path: path.clone(),
                source,
            })?;
            tx.execute_batch(m)
                .and_then(|_| tx.pragma_update(None, "user_version", (i + 1) as i64))
                .and_then(|_| tx.commit())
                .map_err(|source| StoreError::Sql { path, source })?;
        }
        Ok(s)
    }

    /// The schema version.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.sql())
    }

    /// Limits the database size (pages of 4 KiB): a stand-in for a full disk in tests.
    pub fn set_max_pages(&self, pages: i64) -> Result<(), StoreError> {
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .map_err(self.sql())
    }

    /// `PRAGMA integrity_check` says "ok".
    pub fn integrity_ok(&self) -> Result<bool, StoreError> {
        let r: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(self.sql())?;
        Ok(r == "ok")
    }

    /// Records a new experiment.
    pub fn create_experiment(&self, e: &ExperimentRow) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO experiments (id, kind, created, config_hash, config_json, command, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![e.id, e.kind, e.created, e.config_hash, e.config_json, e.command, e.status],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// Records the machine as it was when an invocation of an experiment started.
    pub fn add_hardware_snapshot(
        &self,
        experiment: &str,
        taken: &str,
        snapshot_json: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO hardware_snapshots (experiment_id, taken, snapshot_json) VALUES (?1, ?2, ?3)",
                params![experiment, taken, snapshot_json],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// An experiment's hardware snapshots, oldest first: (taken, JSON).
    pub fn hardware_snapshots(
        &self,
        experiment: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT taken, snapshot_json FROM hardware_snapshots WHERE experiment_id = ?1 ORDER BY rowid")
            .map_err(self.sql())?;
        let rows = st
            .query_map([experiment], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.sql())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
    }

    /// True when an experiment with this id exists.
    pub fn has_experiment(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.experiment(id)?.is_some())
    }

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExperimentRow> {
        Ok(ExperimentRow {
            id: r.get(0)?,
            kind: r.get(1)?,
            created: r.get(2)?,
            config_hash: r.get(3)?,
            config_json: r.get(4)?,
            command: r.get(5)?,
            status: r.get(6)?,
        })
    }

    const COLS: &'static str = "id, kind, created, config_hash, config_json, command, status";

    /// One experiment.
    pub fn experiment(&self, id: &str) -> Result<Option<ExperimentRow>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {} FROM experiments WHERE id = ?1", Self::COLS),
                [id],
                Self::row,
            )
            .optional()
            .map_err(self.sql())
    }

    /// The newest unfinished experiment with this config hash.
    pub fn latest_unfinished(
        &self,
        config_hash: &str,
    ) -> Result<Option<ExperimentRow>, StoreError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {} FROM experiments WHERE config_hash = ?1 AND status != 'done'
                     ORDER BY created DESC, id DESC LIMIT 1",
                    Self::COLS
                ),
                [config_hash],
                Self::row,
            )
            .optional()
            .map_err(self.sql())
    }

    /// Every experiment, newest first.
    pub fn experiments(&self) -> Result<Vec<ExperimentRow>, StoreError> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {} FROM experiments ORDER BY created DESC, id DESC",
                Self::COLS
            ))
            .map_err(self.sql())?;
        let rows = st.query_map([], Self::row).map_err(self.sql())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
    }

    /// Sets an experiment's status.
    pub fn set_status(&self, id: &str, status: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE experiments SET status = ?2 WHERE id = ?1",
                params![id, status],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// Replaces an experiment's configuration record.
    pub fn set_config(&self, id: &str, config_json: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE experiments SET config_json = ?2 WHERE id = ?1",
                params![id, config_json],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// Deletes an experiment and everything under it; false when there was none.
    pub fn delete_experiment(&self, id: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM experiments WHERE id = ?1", [id])
            .map_err(self.sql())?;
        Ok(n > 0)
    }

    /// Gives the space of deleted rows back to the file system.
    pub fn vacuum(&self) -> Result<(), StoreError> {
        self.conn.execute_batch("VACUUM").map_err(self.sql())
    }

    /// Where the database lives (":memory:" for in-memory stores).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(&self.path)
    }
}

#[cfg(test)]
mod tests;
mod units;
