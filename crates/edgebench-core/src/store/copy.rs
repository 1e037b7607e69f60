//! Moving experiments between stores (`push`, `pull`, `import`): an experiment is read whole and
//! written whole in one transaction, matched by its stable identity, so copying again adds
//! nothing and a copy that changed since (resumed, finished) replaces the older one.

use serde::{Deserialize, Serialize};

use super::db::{vals, Stmt};
use super::machines::MachineRow;
use super::units::{unit_key, KEY_COLS};
use super::{ExperimentRow, Store, StoreError};
use crate::monitor::Sample;
use crate::results::UnitKey;

/// Everything an experiment holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentCopy {
    pub experiment: ExperimentRow,
    pub machine: Option<MachineRow>,
    /// (taken, JSON), oldest first.
    pub hardware_snapshots: Vec<(String, String)>,
    pub units: Vec<UnitCopy>,
}

/// A unit with its requests, samples and scored items, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitCopy {
    pub uuid: String,
    pub key: UnitKey,
    pub position: i64,
    pub status: String,
    pub error: Option<String>,
    pub report_json: Option<String>,
    pub file: Option<String>,
    pub requests: Vec<StoredRequest>,
    pub samples: Vec<Sample>,
    /// (item id, JSON), in insertion order.
    pub eval_items: Vec<(String, String)>,
}

/// A request row: its index, flags and the line as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRequest {
    pub idx: i64,
    pub warmup: bool,
    pub ok: bool,
    pub line_json: String,
}

impl ExperimentCopy {
    /// Requests plus scored items: what "nothing lost" counts.
    pub fn records(&self) -> usize {
        self.units
            .iter()
            .map(|u| u.requests.len() + u.eval_items.len())
            .sum()
    }
}

/// What a copy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    /// New in the destination.
    pub copied: usize,
    /// Already there, but changed since (replaced).
    pub updated: usize,
    /// Already there as they are.
    pub unchanged: usize,
    /// Requests and scored items written.
    pub records: usize,
}

/// What writing one experiment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Copied,
    Updated,
    Unchanged,
}

impl Store {
    /// Reads an experiment whole.
    pub fn read_experiment(&self, id: &str) -> Result<ExperimentCopy, StoreError> {
        let experiment = self
            .experiment(id)?
            .ok_or_else(|| StoreError::NoExperiment {
                path: self.path.clone(),
                id: id.to_string(),
            })?;
        let machine = match experiment.machine_id.as_str() {
            "" => None,
            m => self.machine(m)?,
        };
        let mut units = self.query_map(
            &format!(
                "SELECT id, uuid, position, status, error, report_json, file, {KEY_COLS}
                 FROM units WHERE experiment_id = ?1 ORDER BY position"
            ),
            vals![id],
            |r| {
                Ok((
                    r.int(0)?,
                    UnitCopy {
                        uuid: r.text(1)?,
                        key: unit_key(r, 7)?,
                        position: r.int(2)?,
                        status: r.text(3)?,
                        error: r.opt_text(4)?,
                        report_json: r.opt_text(5)?,
                        file: r.opt_text(6)?,
                        requests: vec![],
                        samples: vec![],
                        eval_items: vec![],
                    },
                ))
            },
        )?;
        for (unit_id, u) in &mut units {
            u.requests = self.query_map(
                "SELECT idx, warmup, ok, line_json FROM requests WHERE unit_id = ?1 ORDER BY idx",
                vals![*unit_id],
                |r| {
                    Ok(StoredRequest {
                        idx: r.int(0)?,
                        warmup: r.int(1)? != 0,
                        ok: r.int(2)? != 0,
                        line_json: r.text(3)?,
                    })
                },
            )?;
            u.samples = self.samples(*unit_id)?;
            u.eval_items = self.eval_items(*unit_id)?;
        }
        Ok(ExperimentCopy {
            hardware_snapshots: self.hardware_snapshots(id)?,
            experiment,
            machine,
            units: units.into_iter().map(|(_, u)| u).collect(),
        })
    }

    /// Writes an experiment whole, in one transaction: new, replacing an older copy of it (same
    /// identity, other status or record count), or nothing when the same copy is here.
    pub fn write_experiment(&self, c: &ExperimentCopy) -> Result<Written, StoreError> {
        if c.experiment.uuid.is_empty() {
            return Err(self.other(format!(
                "experiment {} has no identity to copy by",
                c.experiment.id
            )));
        }
        let existing = self.experiment_by_uuid(&c.experiment.uuid)?;
        let mut stmts = Vec::new();
        let (id, outcome) = match &existing {
            Some(e) => {
                let records: i64 = self.units(&e.id)?.iter().map(|u| u.requests).sum();
                if e.status == c.experiment.status && records == c.records() as i64 {
                    return Ok(Written::Unchanged);
                }
                stmts.push(Stmt::new(
                    "DELETE FROM experiments WHERE id = ?1",
                    vals![&e.id],
                ));
                (e.id.clone(), Written::Updated)
            }
            None => (self.free_id(&c.experiment.id)?, Written::Copied),
        };
        if let Some(m) = &c.machine {
            stmts.push(m.upsert());
        }
        let e = &c.experiment;
        stmts.push(Stmt::new(
            "INSERT INTO experiments (id, kind, created, config_hash, config_json, command, status, uuid, machine_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            vals![&id, &e.kind, &e.created, &e.config_hash, &e.config_json, &e.command, &e.status, &e.uuid, &e.machine_id],
        ));
        for (taken, json) in &c.hardware_snapshots {
            stmts.push(Stmt::new(
                "INSERT INTO hardware_snapshots (experiment_id, taken, snapshot_json) VALUES (?1, ?2, ?3)",
                vals![&id, taken, json],
            ));
        }
        const UNIT: &str = "(SELECT id FROM units WHERE experiment_id = ?1 AND uuid = ?2)";
        for u in &c.units {
            let k = &u.key;
            stmts.push(Stmt::new(
                "INSERT INTO units (experiment_id, model, scenario, setting, position, status, error,
                                    report_json, file, model_name, format, quantization, uuid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                vals![
                    &id,
                    k.model_label(),
                    &k.scenario,
                    &k.setting,
                    u.position,
                    &u.status,
                    u.error.as_deref(),
                    u.report_json.as_deref(),
                    u.file.as_deref(),
                    &k.model,
                    &k.format,
                    &k.quantization,
                    &u.uuid
                ],
            ));
            for r in &u.requests {
                stmts.push(Stmt::new(
                    format!("INSERT INTO requests (unit_id, idx, warmup, ok, line_json) VALUES ({UNIT}, ?3, ?4, ?5, ?6)"),
                    vals![&id, &u.uuid, r.idx, r.warmup, r.ok, &r.line_json],
                ));
            }
            for s in &u.samples {
                stmts.push(Stmt::new(
                    format!("INSERT INTO monitor_samples (unit_id, t_ns, rss_mb, cpu_percent, gpu_util_percent, vram_mb, temp_c, energy_j) \
                             VALUES ({UNIT}, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                    vals![
                        &id,
                        &u.uuid,
                        i64::try_from(s.t_ns).unwrap_or(i64::MAX),
                        s.rss_mb,
                        f64::from(s.cpu_percent),
                        s.gpu_util_percent,
                        s.vram_mb,
                        s.temp_c,
                        s.energy_j
                    ],
                ));
            }
            for (item, json) in &u.eval_items {
                stmts.push(Stmt::new(
                    format!("INSERT INTO eval_items (unit_id, item_id, item_json) VALUES ({UNIT}, ?3, ?4)"),
                    vals![&id, &u.uuid, item, json],
                ));
            }
        }
        self.exec_all(stmts)?;
        Ok(outcome)
    }

    /// `id`, or `id-2`, `id-3`... when another experiment already has it.
    pub fn free_id(&self, id: &str) -> Result<String, StoreError> {
        let mut candidate = id.to_string();
        let mut n = 2;
        while self.has_experiment(&candidate)? {
            candidate = format!("{id}-{n}");
            n += 1;
        }
        Ok(candidate)
    }
}

/// Copies experiments from one store to another (all, or those with the given ids), each in one
/// transaction; running them again copies nothing new.
pub fn copy_experiments(
    from: &Store,
    to: &Store,
    ids: Option<&[String]>,
) -> Result<CopyReport, StoreError> {
    let mut report = CopyReport::default();
    for e in from.experiments()? {
        if ids.is_some_and(|ids| !ids.contains(&e.id)) {
            continue;
        }
        let c = from.read_experiment(&e.id)?;
        match to.write_experiment(&c)? {
            Written::Copied => report.copied += 1,
            Written::Updated => report.updated += 1,
            Written::Unchanged => {
                report.unchanged += 1;
                continue;
            }
        }
        report.records += c.records();
    }
    Ok(report)
}

impl ExperimentCopy {
    /// Another machine's experiment from its `results export --format json` file. An export
    /// without an identity (written before identities existed) gets one from its content, so
    /// importing it twice still adds it once.
    pub fn from_export(bytes: &[u8]) -> Result<Self, String> {
        use serde_json::Value as J;
        let v: J = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a `results export --format json` file: {e}"))?;
        let mut experiment: ExperimentRow = serde_json::from_value(v["experiment"].clone())
            .map_err(|e| format!("not a `results export --format json` file: experiment: {e}"))?;
        if experiment.uuid.is_empty() {
            use sha2::{Digest, Sha256};
            experiment.uuid = hex::encode(&Sha256::digest(bytes)[..16]);
        }
        let units = v["units"]
            .as_array()
            .ok_or("not a `results export --format json` file: no units")?;
        let mut out = Vec::with_capacity(units.len());
        for (i, u) in units.iter().enumerate() {
            let key: UnitKey =
                serde_json::from_value(u.clone()).map_err(|e| format!("unit {}: {e}", i + 1))?;
            let lines: Vec<crate::results::PerfLine> =
                serde_json::from_value(u["request_lines"].clone()).unwrap_or_default();
            let requests = lines
                .iter()
                .map(|l| {
                    Ok(StoredRequest {
                        idx: i64::from(l.record.index),
                        warmup: l.record.warmup,
                        ok: l.record.ok(),
                        line_json: serde_json::to_string(l).map_err(|e| e.to_string())?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            let eval_items = u["eval_items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|it| {
                            let id = it["id"].as_str().unwrap_or_default().to_string();
                            (id, it.to_string())
                        })
                        .collect()
                })
                .unwrap_or_default();
            let text = |k: &str| u[k].as_str().map(str::to_string);
            out.push(UnitCopy {
                uuid: format!("{}-{i}", experiment.uuid),
                key,
                position: i as i64,
                status: text("status").unwrap_or_else(|| "done".into()),
                error: text("error"),
                report_json: text("report_json")
                    .or_else(|| (!u["report"].is_null()).then(|| u["report"].to_string())),
                file: None,
                requests,
                samples: vec![],
                eval_items,
            });
        }
        let machine = serde_json::from_value(v["machine"].clone()).ok();
        Ok(Self {
            experiment,
            machine,
            hardware_snapshots: vec![],
            units: out,
        })
    }
}
