//! Decision criteria for comparisons (TOML), with a built-in default that mirrors the FP8
//! KV-cache calibration study: apply when the named warnings are resolved and the performance
//! impact is under 15%, apply with monitoring up to 25%, keep the baseline beyond that or when
//! quality dropped significantly. Metric names are checked against the comparison's metrics when
//! a file is loaded.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The rules a comparison is decided by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Criteria {
    /// The metric whose relative change is "the performance impact".
    pub primary_metric: String,
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
    /// Significance level for the quality rule.
    pub alpha: f64,
}

impl Default for Criteria {
    fn default() -> Self {
        Self {
            primary_metric: "output_tokens_per_s".into(),
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
        if !known.contains(&self.primary_metric.as_str()) {
            return unknown("primary_metric", &self.primary_metric);
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
        assert_eq!(c.primary_metric, "decode_tokens_per_s");
        std::fs::write(&p, "apply_below = 0.5\nmonitor_below = 0.2\n").unwrap();
        assert!(Criteria::load(&p)
            .unwrap_err()
            .to_string()
            .contains("c.toml"));
        std::fs::write(&p, "nonsense = 1\n").unwrap();
        assert!(Criteria::load(&p).is_err());
    }

    #[test]
    fn the_default_is_valid() {
        assert_eq!(Criteria::default().problem(), None);
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
                "primary_metric",
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
