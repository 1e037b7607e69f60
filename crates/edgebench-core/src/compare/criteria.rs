//! Decision criteria for comparisons (TOML), with a built-in default that mirrors the FP8
//! KV-cache calibration study: apply when the named warnings are resolved and the performance
//! impact on TTFT and throughput is under 15%, apply with monitoring up to 25% (or with a slight
//! quality loss), keep the baseline beyond that or when quality dropped more than slightly.
//! Changes shown to lie inside an equivalence margin (+/-2% by default) never decide. The
//! `fp8-kv` preset adds the study's three vLLM warnings, all of which must be resolved. Metric
//! names are checked against the comparison's metrics when a file is loaded.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The rules a comparison is decided by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Criteria {
    /// The metrics whose worst relative degradation is "the performance impact".
    pub impact_metrics: Vec<String>,
    /// Older files' single impact metric: when set, the impact is judged on it alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_metric: Option<String>,
    /// Impact (relative degradation of the primary metric) below this: apply.
    pub apply_below: f64,
    /// Impact below this (and at least `apply_below`): apply with monitoring; above: keep.
    pub monitor_below: f64,
    /// A significant drop (Holm-adjusted p < alpha) in any of these keeps the baseline.
    pub quality_metrics: Vec<String>,
    /// When log patterns were counted, the candidate must have none left, and it must have
    /// counted every pattern the baseline counted (else the warnings were not checked).
    pub require_warnings_resolved: bool,
    /// The server-log patterns (`--log-pattern`) that are the warnings; empty: every pattern
    /// counted on either side.
    pub warning_patterns: Vec<String>,
    /// At least this many of the warning patterns must be resolved (logged by the baseline,
    /// not by the candidate) for "apply" or "apply with monitoring"; 0: no warning evidence
    /// needed.
    pub min_warnings_resolved: usize,
    /// A significant quality drop up to this fraction of the baseline is "slight": at best
    /// "apply with monitoring"; beyond it the baseline is kept.
    pub slight_quality_loss: f64,
    /// Equivalence margin, a fraction of the baseline: a change shown to lie within it (two
    /// one-sided tests) is no practical difference and never decides.
    pub equivalence_margin: f64,
    /// Per-metric margins over `equivalence_margin` (e.g. `margins = { ttft_ms = 0.05 }`).
    pub margins: std::collections::BTreeMap<String, f64>,
    /// Significance level for the quality rule.
    pub alpha: f64,
}

/// The FP8 KV-cache calibration study's three vLLM warnings, as logged without calibration.
pub const FP8_WARNINGS: [&str; 3] = [
    "Using KV cache scaling factor 1.0 for fp8_e4m3",
    "Using uncalibrated q_scale 1.0 and/or prob_scale 1.0 with fp8 attention",
    "Checkpoint does not provide a q scaling factor",
];

/// The names `--preset` takes.
pub const PRESETS: [&str; 2] = ["default", "fp8-kv"];

impl Default for Criteria {
    fn default() -> Self {
        Self {
            impact_metrics: vec!["ttft_ms".into(), "output_tokens_per_s".into()],
            primary_metric: None,
            apply_below: 0.15,
            monitor_below: 0.25,
            quality_metrics: [
                "success_rate",
                "json_valid_rate",
                "accuracy",
                "exact_match",
                "pass_at_1",
                "overall",
            ]
            .map(String::from)
            .to_vec(),
            require_warnings_resolved: true,
            warning_patterns: Vec::new(),
            min_warnings_resolved: 0,
            slight_quality_loss: 0.05,
            equivalence_margin: 0.02,
            margins: Default::default(),
            alpha: 0.05,
        }
    }
}

/// Why a criteria file is unusable.
#[derive(Debug, thiserror::Error)]
#[error("criteria file {path}: {reason}")]
pub struct CriteriaError {
    pub path: String,
    pub reason: String,
}

impl Criteria {
    /// The FP8 KV-cache calibration study: the default rules, the study's three warnings
    /// counted (as regexes matching their text) and all three resolved before "apply".
    pub fn fp8_kv() -> Self {
        Self {
            warning_patterns: FP8_WARNINGS.iter().map(|w| regex::escape(w)).collect(),
            min_warnings_resolved: FP8_WARNINGS.len(),
            ..Self::default()
        }
    }

    /// A preset by name ([`PRESETS`]).
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "default" => Some(Self::default()),
            "fp8-kv" => Some(Self::fp8_kv()),
            _ => None,
        }
    }

    /// The metrics the performance impact is judged on.
    pub fn impact_metrics(&self) -> Vec<String> {
        match &self.primary_metric {
            Some(m) => vec![m.clone()],
            None => self.impact_metrics.clone(),
        }
    }

    /// The equivalence margin of a metric.
    pub fn margin(&self, metric: &str) -> f64 {
        self.margins
            .get(metric)
            .copied()
            .unwrap_or(self.equivalence_margin)
    }

    /// Reads and checks a criteria file.
    pub fn load(path: &Path) -> Result<Self, CriteriaError> {
        let err = |reason: String| CriteriaError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let c: Criteria = toml::from_str(&text).map_err(|e| err(e.message().to_string()))?;
        c.problem().map_or(Ok(c), |reason| Err(err(reason)))
    }

    /// What makes these criteria unusable, if anything.
    fn problem(&self) -> Option<String> {
        if !(0.0..=1.0).contains(&self.apply_below) || self.monitor_below < self.apply_below {
            return Some(
                "need 0 <= apply_below <= monitor_below (fractions, e.g. 0.15 and 0.25)".into(),
            );
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Some("alpha must be between 0 and 1".into());
        }
        let known = super::metric_names();
        let unknown = |field: &str, name: &str| {
            Some(format!(
                "unknown metric {name:?} in {field} (known: {})",
                known.join(", ")
            ))
        };
        if self.impact_metrics().is_empty() {
            return Some("impact_metrics is empty".into());
        }
        if let Some(bad) = self
            .impact_metrics()
            .iter()
            .find(|m| !known.contains(&m.as_str()))
        {
            return unknown("impact_metrics", bad);
        }
        if let Some(bad) = self.margins.keys().find(|m| !known.contains(&m.as_str())) {
            return unknown("margins", bad);
        }
        let fraction = |v: f64| (0.0..1.0).contains(&v);
        if !fraction(self.equivalence_margin) || !self.margins.values().all(|v| fraction(*v)) {
            return Some("equivalence margins are fractions in [0, 1), e.g. 0.02".into());
        }
        if !fraction(self.slight_quality_loss) {
            return Some("slight_quality_loss is a fraction in [0, 1), e.g. 0.05".into());
        }
        if self.min_warnings_resolved > 0
            && !self.warning_patterns.is_empty()
            && self.min_warnings_resolved > self.warning_patterns.len()
        {
            return Some(format!(
                "min_warnings_resolved = {} but warning_patterns names {}",
                self.min_warnings_resolved,
                self.warning_patterns.len()
            ));
        }
        if let Some(bad) = self
            .quality_metrics
            .iter()
            .find(|m| !known.contains(&m.as_str()))
        {
            return unknown("quality_metrics", bad);
        }
        if self.warning_patterns.iter().any(|p| p.is_empty()) {
            return Some("warning_patterns holds an empty pattern".into());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_partial_files_over_the_defaults_and_rejects_bad_ones() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.toml");
        std::fs::write(
            &p,
            "apply_below = 0.05\nprimary_metric = \"decode_tokens_per_s\"\n",
        )
        .unwrap();
        let c = Criteria::load(&p).unwrap();
        assert_eq!(c.apply_below, 0.05);
        assert_eq!(c.monitor_below, 0.25);
        assert_eq!(c.impact_metrics(), ["decode_tokens_per_s"]);
        std::fs::write(&p, "apply_below = 0.5\nmonitor_below = 0.2\n").unwrap();
        assert!(Criteria::load(&p)
            .unwrap_err()
            .to_string()
            .contains("c.toml"));
        std::fs::write(&p, "nonsense = 1\n").unwrap();
        assert!(Criteria::load(&p).is_err());
    }

    #[test]
    fn the_default_and_the_presets_are_valid() {
        assert_eq!(Criteria::default().problem(), None);
        for p in PRESETS {
            assert_eq!(Criteria::preset(p).unwrap().problem(), None, "{p}");
        }
        let fp8 = Criteria::fp8_kv();
        for (w, p) in FP8_WARNINGS.iter().zip(&fp8.warning_patterns) {
            assert!(regex::Regex::new(p)
                .unwrap()
                .is_match(&format!("WARNING [x.py:1] {w}")));
        }
        assert_eq!(Criteria::default().margin("ttft_ms"), 0.02);
    }

    #[test]
    fn margins_and_impact_metrics_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.toml");
        std::fs::write(
            &p,
            "impact_metrics = [\"ttft_ms\"]\nmargins = { ttft_ms = 0.05 }\n",
        )
        .unwrap();
        let c = Criteria::load(&p).unwrap();
        assert_eq!((c.margin("ttft_ms"), c.margin("e2e_ms")), (0.05, 0.02));
        for bad in [
            "margins = { nope = 0.1 }",
            "equivalence_margin = 1.5",
            "impact_metrics = []",
            "warning_patterns = [\"a\"]\nmin_warnings_resolved = 2",
        ] {
            std::fs::write(&p, bad).unwrap();
            assert!(Criteria::load(&p).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_the_warnings_and_rejects_unknown_metric_names() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fp8.toml");
        std::fs::write(&p, "warning_patterns = [\"scaling factor 1.0\"]\n").unwrap();
        let c = Criteria::load(&p).unwrap();
        assert_eq!(c.warning_patterns, ["scaling factor 1.0"]);
        assert!(Criteria::default().warning_patterns.is_empty());
        for (text, bad, field) in [
            (
                "primary_metric = \"tokens_per_s\"\n",
                "tokens_per_s",
                "impact_metrics",
            ),
            (
                "quality_metrics = [\"accuracy\", \"acurracy\"]\n",
                "acurracy",
                "quality_metrics",
            ),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = Criteria::load(&p).unwrap_err().to_string();
            assert!(e.contains("fp8.toml"), "{e}");
            assert!(e.contains(&format!("{bad:?}")) && e.contains(field), "{e}");
            assert!(
                e.contains("output_tokens_per_s"),
                "lists the known names: {e}"
            );
        }
        std::fs::write(
            &p,
            "primary_metric = \"peak_rss_mb\"\nquality_metrics = [\"invalid_rate\"]\n",
        )
        .unwrap();
        assert!(Criteria::load(&p).is_ok());
        std::fs::write(&p, "warning_patterns = [\"\"]\n").unwrap();
        assert!(Criteria::load(&p).is_err());
    }
}
