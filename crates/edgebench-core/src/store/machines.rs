//! Machines in the store: one row per hardware fingerprint, with a label and the hardware as
//! last seen, so results from many machines can be told apart and compared.

use serde::{Deserialize, Serialize};

use super::db::{vals, Row, Stmt};
use super::{Store, StoreError};

/// A machine as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineRow {
    /// The hardware fingerprint (`repro::MachineIdentity::id`).
    pub id: String,
    pub label: String,
    /// `hw detect`'s description, as JSON.
    pub hardware_json: String,
    pub first_seen: String,
    /// The newest `hw bench` report of this machine, as JSON (its memory bandwidth normalises
    /// the machine comparison), and when it was taken.
    #[serde(default)]
    pub bench_json: Option<String>,
    #[serde(default)]
    pub bench_taken: Option<String>,
}

pub(super) const UPSERT: &str =
    "INSERT INTO machines (id, label, hardware_json, first_seen, bench_json, bench_taken)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
     ON CONFLICT (id) DO UPDATE SET label = excluded.label, hardware_json = excluded.hardware_json,
         bench_json = COALESCE(excluded.bench_json, machines.bench_json),
         bench_taken = COALESCE(excluded.bench_taken, machines.bench_taken)";

const COLS: &str = "id, label, hardware_json, first_seen, bench_json, bench_taken";

impl MachineRow {
    pub(super) fn upsert(&self) -> Stmt {
        Stmt::new(
            UPSERT,
            vals![
                &self.id,
                &self.label,
                &self.hardware_json,
                &self.first_seen,
                self.bench_json.as_deref(),
                self.bench_taken.as_deref()
            ],
        )
    }

    fn read(r: &Row) -> Result<Self, super::db::DbError> {
        Ok(Self {
            id: r.text(0)?,
            label: r.text(1)?,
            hardware_json: r.text(2)?,
            first_seen: r.text(3)?,
            bench_json: r.opt_text(4)?,
            bench_taken: r.opt_text(5)?,
        })
    }
}

impl Store {
    /// Records (or refreshes) a machine and ties the experiment to it.
    pub fn set_machine(&self, experiment: &str, m: &MachineRow) -> Result<(), StoreError> {
        self.exec_all(vec![
            m.upsert(),
            Stmt::new(
                "UPDATE experiments SET machine_id = ?2 WHERE id = ?1",
                vals![experiment, &m.id],
            ),
        ])?;
        Ok(())
    }

    /// Records a machine's `hw bench` report (the machine row made or refreshed).
    pub fn set_machine_bench(&self, m: &MachineRow) -> Result<(), StoreError> {
        self.exec_all(vec![m.upsert()])?;
        Ok(())
    }

    /// One machine.
    pub fn machine(&self, id: &str) -> Result<Option<MachineRow>, StoreError> {
        Ok(self
            .query_map(
                &format!("SELECT {COLS} FROM machines WHERE id = ?1"),
                vals![id],
                MachineRow::read,
            )?
            .into_iter()
            .next())
    }

    /// Every machine, by label.
    pub fn machines(&self) -> Result<Vec<MachineRow>, StoreError> {
        self.query_map(
            &format!("SELECT {COLS} FROM machines ORDER BY label, id"),
            vec![],
            MachineRow::read,
        )
    }
}
