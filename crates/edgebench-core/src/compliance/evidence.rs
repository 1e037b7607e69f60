//! The evidence a compliance analysis reads: figures edgebench measured, each with its unit and
//! the files it came from. Names carry units (`_rate` and `_fraction` are fractions in [0, 1]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use super::license::{CommercialUse, LicenseAudit};
use crate::report::input::ReportInput;

/// One measured figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceItem {
    pub name: String,
    pub value: f64,
    /// "fraction", "count", "flag" (1 = yes), "percent", "Wh".
    pub unit: String,
    /// What it means.
    pub description: String,
    /// The files it was computed from.
    pub sources: Vec<String>,
}

/// All evidence of a results folder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub items: Vec<EvidenceItem>,
}

impl Evidence {
    /// A figure by name, when measured.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.items.iter().find(|i| i.name == name).map(|i| i.value)
    }

    fn push(
        &mut self,
        name: &str,
        value: f64,
        unit: &str,
        description: &str,
        sources: Vec<String>,
    ) {
        if value.is_finite() {
            self.items.push(EvidenceItem {
                name: name.into(),
                value,
                unit: unit.into(),
                description: description.into(),
                sources,
            });
        }
    }
}

fn min_of(v: &[(f64, String)]) -> Option<(f64, Vec<String>)> {
    let m = v.iter().map(|x| x.0).reduce(f64::min)?;
    Some((m, uniq(v.iter().filter(|x| x.0 == m).map(|x| x.1.clone()))))
}

fn max_of(v: &[(f64, String)]) -> Option<(f64, Vec<String>)> {
    let m = v.iter().map(|x| x.0).reduce(f64::max)?;
    Some((m, uniq(v.iter().filter(|x| x.0 == m).map(|x| x.1.clone()))))
}

fn uniq(it: impl Iterator<Item = String>) -> Vec<String> {
    it.collect::<BTreeSet<_>>().into_iter().collect()
}

/// Computes the evidence from the results and the licence audit.
pub fn collect(input: &ReportInput, licenses: &LicenseAudit) -> Evidence {
    let mut ev = Evidence::default();
    let mut json_valid = Vec::new();
    let mut success = Vec::new();
    let mut cpu = Vec::new();
    let mut rss_fraction = Vec::new();
    // Measured energy, joules, per unit (runs) or task (evals), with its file.
    let mut energy: Vec<(f64, String)> = Vec::new();
    let mut targets: Vec<(String, String)> = Vec::new();
    for r in &input.runs {
        let ram = r.value.environment.ram_total_mb as f64;
        for m in &r.value.models {
            targets.push((m.target.kind.clone(), r.file.clone()));
            for u in &m.units {
                let s = &u.summary;
                if let Some(j) = s.json_valid_rate {
                    json_valid.push((j, r.file.clone()));
                }
                if s.requests > 0 {
                    success.push((s.success_rate, r.file.clone()));
                }
                if let Some(c) = u.monitor.mean_cpu_percent {
                    cpu.push((c, r.file.clone()));
                }
                if let Some(j) = u.monitor.energy_j {
                    energy.push((j, r.file.clone()));
                }
                if let Some(p) = s.peak_rss_mb.or(u.monitor.peak_rss_mb) {
                    if ram > 0.0 {
                        rss_fraction.push((p / ram, r.file.clone()));
                    }
                }
            }
        }
    }
    let mut invalid = Vec::new();
    let mut accuracy = Vec::new();
    let mut macro_f1 = Vec::new();
    let mut suspicious = 0usize;
    let mut limit_kills = 0usize;
    let mut programs = 0usize;
    let mut isolated: Option<bool> = None;
    let mut sandbox_files = Vec::new();
    for e in &input.evals {
        targets.push((e.value.target.kind.clone(), e.file.clone()));
        if let Some(j) = e.value.monitor.as_ref().and_then(|m| m.energy_j) {
            energy.push((j, e.file.clone()));
        }
        let score = |k: &str| e.value.scores.get(k).map(|s| s.value);
        if let Some(v) = score("invalid_rate") {
            invalid.push((v, e.file.clone()));
        }
        if let Some(v) = score("accuracy") {
            accuracy.push((v, e.file.clone()));
        }
        if let Some(v) = score("macro_f1") {
            macro_f1.push((v, e.file.clone()));
        }
        if let Some(sb) = &e.value.sandbox {
            suspicious += sb.suspicious_code;
            limit_kills += sb.limit_kills;
            programs += sb.programs_run;
            // "namespaces" (or "netns", as older files say); "unsafe-exec" is not isolated.
            let iso = matches!(sb.isolation.as_str(), "namespaces" | "netns");
            isolated = Some(isolated.unwrap_or(true) && iso);
            sandbox_files.push(e.file.clone());
        }
    }
    if let Some((v, src)) = min_of(&json_valid) {
        ev.push(
            "json_valid_rate_min",
            v,
            "fraction",
            "lowest share of structured-output answers that are one valid JSON object, over units",
            src,
        );
    }
    if let Some((v, src)) = max_of(&invalid) {
        ev.push(
            "invalid_label_rate_max",
            v,
            "fraction",
            "highest share of classification answers outside the label set, over evals",
            src,
        );
    }
    if let Some((v, src)) = min_of(&accuracy) {
        ev.push(
            "accuracy_min",
            v,
            "fraction",
            "lowest accuracy over evals",
            src,
        );
    }
    if let Some((v, src)) = min_of(&macro_f1) {
        ev.push(
            "macro_f1_min",
            v,
            "fraction",
            "lowest macro-F1 over evals",
            src,
        );
    }
    if let Some((v, src)) = min_of(&success) {
        ev.push(
            "success_rate_min",
            v,
            "fraction",
            "lowest share of measured requests that succeeded, over units",
            src,
        );
    }
    if let Some((v, src)) = max_of(&cpu) {
        ev.push(
            "mean_cpu_percent_max",
            v,
            "percent",
            "highest mean CPU use during a unit (all cores = 100%)",
            src,
        );
    }
    if !energy.is_empty() {
        ev.push(
            "energy_wh",
            energy.iter().map(|x| x.0).sum::<f64>() / 3600.0,
            "Wh",
            "energy the machine used while units and evals ran (RAPL packages and NVIDIA boards), \
             summed over every unit and eval that measured it",
            uniq(energy.into_iter().map(|x| x.1)),
        );
    }
    if let Some((v, src)) = max_of(&rss_fraction) {
        ev.push(
            "peak_rss_fraction_of_ram_max",
            v,
            "fraction",
            "highest peak resident memory of the serving process, as a share of the machine's RAM",
            src,
        );
    }
    if let Some(iso) = isolated {
        ev.push(
            "sandbox_isolated",
            f64::from(u8::from(iso)),
            "flag",
            "every sandbox ran generated code in private namespaces (no network, a file system of its own)",
            sandbox_files.clone(),
        );
        ev.push(
            "sandbox_suspicious_code",
            suspicious as f64,
            "count",
            "generated programs calling network, process, exit, signal or outside-file functions (static patterns; contained by the sandbox either way)",
            sandbox_files.clone(),
        );
        ev.push(
            "sandbox_limit_kills",
            limit_kills as f64,
            "count",
            "generated programs killed for a resource limit",
            sandbox_files.clone(),
        );
        ev.push(
            "sandbox_programs_run",
            programs as f64,
            "count",
            "generated programs executed",
            sandbox_files,
        );
    }
    if !targets.is_empty() {
        let remote: Vec<&(String, String)> = targets
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "embedded" | "mock"))
            .collect();
        let all_files = uniq(targets.iter().map(|t| t.1.clone()));
        ev.push(
            "remote_targets",
            remote.len() as f64,
            "count",
            "targets reached over HTTP rather than run in-process",
            uniq(remote.iter().map(|t| t.1.clone())),
        );
        ev.push(
            "local_only_inference",
            f64::from(u8::from(remote.is_empty())),
            "flag",
            "every target ran in-process (embedded engine): no network egress for inference",
            all_files,
        );
    }
    if !licenses.models.is_empty() {
        let count = |u: CommercialUse| {
            licenses
                .models
                .iter()
                .filter(|m| m.commercial_use == u)
                .count() as f64
        };
        let src = vec!["license audit".to_string()];
        ev.push(
            "licence_restricted_models",
            count(CommercialUse::Restricted),
            "count",
            "models whose licence restricts commercial use or imposes a use policy",
            src.clone(),
        );
        ev.push(
            "licence_unknown_models",
            count(CommercialUse::Unknown),
            "count",
            "models with no recognised licence",
            src.clone(),
        );
        let uncat = licenses
            .models
            .iter()
            .filter(|m| m.catalog_key.is_none())
            .count();
        ev.push(
            "uncatalogued_models",
            uncat as f64,
            "count",
            "models not fetched from the catalog (no pinned SHA-256)",
            src,
        );
    }
    ev
}
