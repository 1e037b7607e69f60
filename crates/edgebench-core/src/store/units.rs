//! Units, their requests, monitor samples and scored eval items: the checkpoint rules (a unit
//! restarts from scratch; it is marked done in the same transaction as its last request).

use std::path::Path;

use super::db::{vals, DbError, Row, Stmt};
use super::{new_uuid, Store, StoreError, UnitRow};
use crate::monitor::Sample;
use crate::results::{PerfLine, UnitKey, UnitReport};

const INSERT_REQUEST: &str =
    "INSERT INTO requests (unit_id, idx, warmup, ok, line_json) VALUES (?1, ?2, ?3, ?4, ?5)";
const INSERT_SAMPLE: &str = "INSERT INTO monitor_samples (unit_id, t_ns, rss_mb, cpu_percent, gpu_util_percent, vram_mb, temp_c, energy_j) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const INSERT_ITEM: &str =
    "INSERT INTO eval_items (unit_id, item_id, item_json) VALUES (?1, ?2, ?3) \
     ON CONFLICT (unit_id, item_id) DO UPDATE SET item_json = excluded.item_json";
/// A unit's key columns, in the order [`unit_key`] reads them.
pub(super) const KEY_COLS: &str = "model, model_name, format, quantization, scenario, setting";

/// A unit's key from the [`KEY_COLS`] starting at column `at`. Units written before the typed
/// columns existed have them empty and are read from the display label.
pub(super) fn unit_key(r: &Row, at: usize) -> Result<UnitKey, DbError> {
    let name = r.text(at + 1)?;
    let (model, format, quantization) = if name.is_empty() {
        UnitKey::parse_model_label(&r.text(at)?)
    } else {
        (name, r.text(at + 2)?, r.text(at + 3)?)
    };
    Ok(UnitKey {
        model,
        format,
        quantization,
        scenario: r.text(at + 4)?,
        setting: r.text(at + 5)?,
    })
}

const FINISH: &str =
    "UPDATE units SET status = 'done', error = NULL, report_json = ?2, file = ?3 WHERE id = ?1";

impl Store {
    /// Makes sure the experiment has these units, in this order; existing ones keep their state.
    pub fn ensure_units(&mut self, experiment: &str, units: &[UnitKey]) -> Result<(), StoreError> {
        let stmts = units
            .iter()
            .enumerate()
            .map(|(i, k)| {
                Stmt::new(
                    "INSERT INTO units (experiment_id, model, scenario, setting, position, status,
                                        model_name, format, quantization, uuid)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?8, ?9)
                     ON CONFLICT DO NOTHING",
                    vals![
                        experiment,
                        k.model_label(),
                        &k.scenario,
                        &k.setting,
                        i as i64,
                        &k.model,
                        &k.format,
                        &k.quantization,
                        new_uuid()
                    ],
                )
            })
            .collect();
        self.exec_all(stmts)?;
        Ok(())
    }

    /// The experiment's units, in order, with their request counts.
    pub fn units(&self, experiment: &str) -> Result<Vec<UnitRow>, StoreError> {
        self.query_map(
            &format!(
                "SELECT u.id, u.status, u.error, u.report_json,
                        (SELECT COUNT(*) FROM requests r WHERE r.unit_id = u.id)
                        + (SELECT COUNT(*) FROM eval_items e WHERE e.unit_id = u.id),
                        {KEY_COLS}
                 FROM units u WHERE u.experiment_id = ?1 ORDER BY u.position"
            ),
            vals![experiment],
            |r| {
                let report = r.opt_text(3)?;
                Ok(UnitRow {
                    id: r.int(0)?,
                    key: unit_key(r, 5)?,
                    status: r.text(1)?,
                    error: r.opt_text(2)?,
                    report: report.as_deref().and_then(|j| serde_json::from_str(j).ok()),
                    report_json: report,
                    requests: r.int(4)?,
                })
            },
        )
    }

    /// Starts (or restarts from scratch) a unit: its earlier requests and samples are dropped.
    pub fn start_unit(&mut self, unit: i64) -> Result<(), StoreError> {
        self.exec_all(vec![
            Stmt::new("DELETE FROM requests WHERE unit_id = ?1", vals![unit]),
            Stmt::new("DELETE FROM monitor_samples WHERE unit_id = ?1", vals![unit]),
            Stmt::new("DELETE FROM eval_items WHERE unit_id = ?1", vals![unit]),
            Stmt::new(
                "UPDATE units SET status = 'running', error = NULL, report_json = NULL WHERE id = ?1",
                vals![unit],
            ),
        ])?;
        Ok(())
    }

    fn request_stmt(&self, unit: i64, line: &PerfLine) -> Result<Stmt, StoreError> {
        let json = serde_json::to_string(line).map_err(|e| self.other(e.to_string()))?;
        Ok(Stmt::new(
            INSERT_REQUEST,
            vals![
                unit,
                i64::from(line.record.index),
                line.record.warmup,
                line.record.ok(),
                json
            ],
        ))
    }

    fn sample_stmts(unit: i64, samples: &[Sample]) -> impl Iterator<Item = Stmt> + '_ {
        samples.iter().map(move |s| {
            Stmt::new(
                INSERT_SAMPLE,
                vals![
                    unit,
                    i64::try_from(s.t_ns).unwrap_or(i64::MAX),
                    s.rss_mb,
                    f64::from(s.cpu_percent),
                    s.gpu_util_percent,
                    s.vram_mb,
                    s.temp_c,
                    s.energy_j
                ],
            )
        })
    }

    pub(super) fn other(&self, reason: String) -> StoreError {
        StoreError::Other {
            path: self.path.clone(),
            reason,
        }
    }

    /// Commits one finished request.
    pub fn add_request(&mut self, unit: i64, line: &PerfLine) -> Result<(), StoreError> {
        let st = self.request_stmt(unit, line)?;
        self.exec_all(vec![st])?;
        Ok(())
    }

    /// Marks a unit done, in one transaction with its last request, its samples and its report.
    pub fn finish_unit(
        &mut self,
        unit: i64,
        last: Option<&PerfLine>,
        samples: &[Sample],
        report: &UnitReport,
    ) -> Result<(), StoreError> {
        let report_json = serde_json::to_string(report).map_err(|e| self.other(e.to_string()))?;
        let mut stmts = Vec::with_capacity(samples.len() + 2);
        if let Some(l) = last {
            stmts.push(self.request_stmt(unit, l)?);
        }
        stmts.extend(Self::sample_stmts(unit, samples));
        stmts.push(Stmt::new(
            FINISH,
            vals![
                unit,
                report_json,
                report.file.as_ref().map(|f| f.display().to_string())
            ],
        ));
        self.exec_all(stmts)?;
        Ok(())
    }

    /// Marks a unit skipped (a sweep stopped before it), with the reason.
    pub fn skip_unit(&self, unit: i64, reason: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE units SET status = 'skipped', error = ?2 WHERE id = ?1",
            vals![unit, reason],
        )?;
        Ok(())
    }

    /// Marks a unit failed with its error.
    pub fn fail_unit(&self, unit: i64, error: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE units SET status = 'failed', error = ?2 WHERE id = ?1",
            vals![unit, error],
        )?;
        Ok(())
    }

    /// A unit's requests, in index order.
    pub fn requests(&self, unit: i64) -> Result<Vec<PerfLine>, StoreError> {
        let json = self.query_map(
            "SELECT line_json FROM requests WHERE unit_id = ?1 ORDER BY idx",
            vals![unit],
            |r| r.text(0),
        )?;
        json.iter()
            .map(|j| {
                serde_json::from_str(j)
                    .map_err(|e| self.other(format!("a stored request does not parse: {e}")))
            })
            .collect()
    }

    /// A unit's monitor samples.
    pub fn samples(&self, unit: i64) -> Result<Vec<Sample>, StoreError> {
        self.query_map(
            "SELECT t_ns, rss_mb, cpu_percent, gpu_util_percent, vram_mb, temp_c, energy_j \
             FROM monitor_samples WHERE unit_id = ?1 ORDER BY t_ns",
            vals![unit],
            |r| {
                Ok(Sample {
                    t_ns: u64::try_from(r.int(0)?).unwrap_or(0),
                    rss_mb: r.opt_real(1)?,
                    cpu_percent: r.opt_real(2)?.unwrap_or(0.0) as f32,
                    gpu_util_percent: r.opt_real(3)?,
                    vram_mb: r.opt_real(4)?,
                    temp_c: r.opt_real(5)?,
                    energy_j: r.opt_real(6)?,
                })
            },
        )
    }

    /// Marks a unit running without dropping what it holds (evals keep scored items on resume).
    pub fn continue_unit(&self, unit: i64) -> Result<(), StoreError> {
        self.exec(
            "UPDATE units SET status = 'running', error = NULL WHERE id = ?1",
            vals![unit],
        )?;
        Ok(())
    }

    /// Commits one scored eval item (a second commit of the same item replaces the first).
    pub fn add_eval_item(
        &self,
        unit: i64,
        item_id: &str,
        item_json: &str,
    ) -> Result<(), StoreError> {
        self.exec(INSERT_ITEM, vals![unit, item_id, item_json])?;
        Ok(())
    }

    /// Commits several scored eval items in one transaction.
    pub fn add_eval_items(
        &mut self,
        unit: i64,
        items: &[(String, String)],
    ) -> Result<(), StoreError> {
        let stmts = items
            .iter()
            .map(|(id, json)| Stmt::new(INSERT_ITEM, vals![unit, id, json]))
            .collect();
        self.exec_all(stmts)?;
        Ok(())
    }

    /// A unit's scored eval items as (item id, JSON), in insertion order.
    pub fn eval_items(&self, unit: i64) -> Result<Vec<(String, String)>, StoreError> {
        self.query_map(
            "SELECT item_id, item_json FROM eval_items WHERE unit_id = ?1 ORDER BY id",
            vals![unit],
            |r| Ok((r.text(0)?, r.text(1)?)),
        )
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
        // A resumed unit keeps only the samples of the pass that finished it.
        let mut stmts = vec![Stmt::new(
            "DELETE FROM monitor_samples WHERE unit_id = ?1",
            vals![unit],
        )];
        stmts.extend(Self::sample_stmts(unit, samples));
        stmts.push(Stmt::new(
            FINISH,
            vals![unit, report_json, file.map(|f| f.display().to_string())],
        ));
        self.exec_all(stmts)?;
        Ok(())
    }
}
