//! Units, their requests, monitor samples and scored eval items: the checkpoint rules (a unit
//! restarts from scratch; it is marked done in the same transaction as its last request).

use rusqlite::{params, Transaction};
use std::path::Path;

use super::{Store, StoreError, UnitRow};
use crate::monitor::Sample;
use crate::results::{PerfLine, UnitKey, UnitReport};

impl Store {
    /// Makes sure the experiment has these units, in this order; existing ones keep their state.
    pub fn ensure_units(&mut self, experiment: &str, units: &[UnitKey]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        for (i, k) in units.iter().enumerate() {
            tx.execute(
                "INSERT OR IGNORE INTO units (experiment_id, model, scenario, setting, position, status,
                                              model_name, format, quantization)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?8)",
                params![
                    experiment,
                    k.model_label(),
                    k.scenario,
                    k.setting,
                    i as i64,
                    k.model,
                    k.format,
                    k.quantization
                ],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    /// The experiment's units, in order, with their request counts.
    pub fn units(&self, experiment: &str) -> Result<Vec<UnitRow>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT u.id, u.model, u.scenario, u.setting, u.status, u.error, u.report_json,
                        (SELECT COUNT(*) FROM requests r WHERE r.unit_id = u.id)
                        + (SELECT COUNT(*) FROM eval_items e WHERE e.unit_id = u.id),
                        u.model_name, u.format, u.quantization
                 FROM units u WHERE u.experiment_id = ?1 ORDER BY u.position",
            )
            .map_err(self.sql())?;
        let rows = st
            .query_map([experiment], |r| {
                let report: Option<String> = r.get(6)?;
                let label: String = r.get(1)?;
                let name: String = r.get(8)?;
                let (model, format, quantization) = if name.is_empty() {
                    UnitKey::parse_model_label(&label)
                } else {
                    (name, r.get(9)?, r.get(10)?)
                };
                Ok(UnitRow {
                    id: r.get(0)?,
                    key: UnitKey {
                        model,
                        format,
                        quantization,
                        scenario: r.get(2)?,
                        setting: r.get(3)?,
                    },
                    status: r.get(4)?,
                    error: r.get(5)?,
                    report: report.as_deref().and_then(|j| serde_json::from_str(j).ok()),
                    report_json: report,
                    requests: r.get(7)?,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
    }

    /// Starts (or restarts from scratch) a unit: its earlier requests and samples are dropped.
    pub fn start_unit(&mut self, unit: i64) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        tx.execute("DELETE FROM requests WHERE unit_id = ?1", [unit])
            .map_err(sql)?;
        tx.execute("DELETE FROM monitor_samples WHERE unit_id = ?1", [unit])
            .map_err(sql)?;
        tx.execute("DELETE FROM eval_items WHERE unit_id = ?1", [unit])
            .map_err(sql)?;
        tx.execute(
            "UPDATE units SET status = 'running', error = NULL, report_json = NULL WHERE id = ?1",
            [unit],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)
    }

    fn insert_request(tx: &Transaction<'_>, unit: i64, line: &PerfLine) -> rusqlite::Result<()> {
        let json = serde_json::to_string(line)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        tx.execute(
            "INSERT INTO requests (unit_id, idx, warmup, ok, line_json) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                unit,
                i64::from(line.record.index),
                line.record.warmup,
                line.record.ok(),
                json
            ],
        )?;
        Ok(())
    }

    /// Commits one finished request.
    pub fn add_request(&mut self, unit: i64, line: &PerfLine) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        Self::insert_request(&tx, unit, line).map_err(sql)?;
        tx.commit().map_err(sql)
    }

    /// Marks a unit done, in one transaction with its last request, its samples and its report.
    pub fn finish_unit(
        &mut self,
        unit: i64,
        last: Option<&PerfLine>,
        samples: &[Sample],
        report: &UnitReport,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let report_json = serde_json::to_string(report).map_err(|e| StoreError::Other {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let tx = self.conn.transaction().map_err(sql)?;
        if let Some(l) = last {
            Self::insert_request(&tx, unit, l).map_err(sql)?;
        }
        Self::insert_samples(&tx, unit, samples).map_err(sql)?;
        tx.execute(
            "UPDATE units SET status = 'done', error = NULL, report_json = ?2, file = ?3 WHERE id = ?1",
            params![
                unit,
                report_json,
                report.file.as_ref().map(|f| f.display().to_string())
            ],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)
    }

    fn insert_samples(
        tx: &rusqlite::Transaction<'_>,
        unit: i64,
        samples: &[Sample],
    ) -> rusqlite::Result<()> {
        let mut st = tx.prepare(
            "INSERT INTO monitor_samples (unit_id, t_ns, rss_mb, cpu_percent, gpu_util_percent, vram_mb, temp_c, energy_j) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for s in samples {
            st.execute(params![
                unit,
                i64::try_from(s.t_ns).unwrap_or(i64::MAX),
                s.rss_mb,
                f64::from(s.cpu_percent),
                s.gpu_util_percent,
                s.vram_mb,
                s.temp_c,
                s.energy_j
            ])?;
        }
        Ok(())
    }

    /// Marks a unit skipped (a sweep stopped before it), with the reason.
    pub fn skip_unit(&self, unit: i64, reason: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE units SET status = 'skipped', error = ?2 WHERE id = ?1",
                params![unit, reason],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// Marks a unit failed with its error.
    pub fn fail_unit(&self, unit: i64, error: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE units SET status = 'failed', error = ?2 WHERE id = ?1",
                params![unit, error],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// A unit's requests, in index order.
    pub fn requests(&self, unit: i64) -> Result<Vec<PerfLine>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT line_json FROM requests WHERE unit_id = ?1 ORDER BY idx")
            .map_err(self.sql())?;
        let rows = st
            .query_map([unit], |r| r.get::<_, String>(0))
            .map_err(self.sql())?;
        let mut out = Vec::new();
        for json in rows {
            let json = json.map_err(self.sql())?;
            out.push(serde_json::from_str(&json).map_err(|e| StoreError::Other {
                path: self.path.clone(),
                reason: format!("a stored request does not parse: {e}"),
            })?);
        }
        Ok(out)
    }

    /// A unit's monitor samples.
    pub fn samples(&self, unit: i64) -> Result<Vec<Sample>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT t_ns, rss_mb, cpu_percent, gpu_util_percent, vram_mb, temp_c, energy_j \
                 FROM monitor_samples WHERE unit_id = ?1 ORDER BY t_ns",
            )
            .map_err(self.sql())?;
        let rows = st
            .query_map([unit], |r| {
                Ok(Sample {
                    t_ns: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                    rss_mb: r.get(1)?,
                    cpu_percent: r.get::<_, f64>(2)? as f32,
                    gpu_util_percent: r.get(3)?,
                    vram_mb: r.get(4)?,
                    temp_c: r.get(5)?,
                    energy_j: r.get(6)?,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
    }

    /// Marks a unit running without dropping what it holds (evals keep scored items on resume).
    pub fn continue_unit(&self, unit: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE units SET status = 'running', error = NULL WHERE id = ?1",
                [unit],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// Commits one scored eval item (a second commit of the same item replaces the first).
    pub fn add_eval_item(
        &self,
        unit: i64,
        item_id: &str,
        item_json: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO eval_items (unit_id, item_id, item_json) VALUES (?1, ?2, ?3)",
                params![unit, item_id, item_json],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// Commits several scored eval items in one transaction.
    pub fn add_eval_items(
        &mut self,
        unit: i64,
        items: &[(String, String)],
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        {
            let mut st = tx
                .prepare("INSERT OR REPLACE INTO eval_items (unit_id, item_id, item_json) VALUES (?1, ?2, ?3)")
                .map_err(sql)?;
            for (id, json) in items {
                st.execute(params![unit, id, json]).map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)
    }

    /// A unit's scored eval items as (item id, JSON), in insertion order.
    pub fn eval_items(&self, unit: i64) -> Result<Vec<(String, String)>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT item_id, item_json FROM eval_items WHERE unit_id = ?1 ORDER BY id")
            .map_err(self.sql())?;
        let rows = st
            .query_map([unit], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.sql())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
    }

    /// Marks a unit done with its report and monitor samples, in one transaction (evals: the
    /// items are already committed).
    pub fn finish_unit_report(
        &mut self,
        unit: i64,
        report_json: &str,
        file: Option<&Path>,
        samples: &[Sample],
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        // A resumed unit keeps only the samples of the pass that finished it.
        tx.execute("DELETE FROM monitor_samples WHERE unit_id = ?1", [unit])
            .map_err(sql)?;
        Self::insert_samples(&tx, unit, samples).map_err(sql)?;
        tx.execute(
            "UPDATE units SET status = 'done', error = NULL, report_json = ?2, file = ?3 WHERE id = ?1",
            params![unit, report_json, file.map(|f| f.display().to_string())],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)
    }
}
