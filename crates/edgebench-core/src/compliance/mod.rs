//! Compliance analysis: the OWASP Top 10 for LLM Applications (2025) and the NIST AI 600-1
//! generative AI risks, mapped to NIST AI RMF functions, each with the evidence edgebench measured
//! and a residual risk level set by rules; and a licence audit of every model. Risk and licence
//! content lives in data files (`compliance/risks.toml`, `compliance/licenses.toml`).

pub mod evidence;
pub mod license;
pub mod risk;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use evidence::{Evidence, EvidenceItem};
pub use license::{CommercialUse, LicenseAudit, LicenseEntry};
pub use risk::{RiskAssessment, RiskLevel};

use crate::report::input::{ReportError, ReportInput};

/// Why the compliance data could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ComplianceError {
    #[error("compliance data {file}: {reason}")]
    Data { file: &'static str, reason: String },
}

/// The compliance analysis of a results folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compliance {
    pub risk_analysis: RiskAnalysis,
    pub license_audit: LicenseAudit,
}

/// `compliance/risk_analysis_{timestamp}.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskAnalysis {
    pub generated: String,
    pub frameworks: Vec<String>,
    /// The NIST AI RMF functions risks are mapped to.
    pub rmf_functions: Vec<String>,
    pub evidence: Vec<EvidenceItem>,
    pub risks: Vec<RiskAssessment>,
}

/// Analyses what `input` holds; `generated` is the RFC 3339 time of the analysis.
pub fn analyse(input: &ReportInput, generated: &str) -> Result<Compliance, ComplianceError> {
    let license_audit = license::audit(input, generated)?;
    let evidence = evidence::collect(input, &license_audit);
    let risks = risk::assess(&evidence)?;
    let mut frameworks: Vec<String> = Vec::new();
    for r in &risks {
        if !frameworks.contains(&r.framework) {
            frameworks.push(r.framework.clone());
        }
    }
    Ok(Compliance {
        risk_analysis: RiskAnalysis {
            generated: generated.to_string(),
            frameworks,
            rmf_functions: risk::RMF_FUNCTIONS.iter().map(|f| f.to_string()).collect(),
            evidence: evidence.items,
            risks,
        },
        license_audit,
    })
}

/// Writes `compliance/risk_analysis_{timestamp}.json` and `compliance/license_audit_{timestamp}.json`
/// under `out_dir`, atomically; returns the paths.
pub fn write(c: &Compliance, out_dir: &Path, timestamp: &str) -> Result<Vec<PathBuf>, ReportError> {
    let dir = out_dir.join("compliance");
    let mut written = Vec::new();
    for (name, value) in [
        (
            format!("risk_analysis_{timestamp}.json"),
            serde_json::to_value(&c.risk_analysis),
        ),
        (
            format!("license_audit_{timestamp}.json"),
            serde_json::to_value(&c.license_audit),
        ),
    ] {
        let path = dir.join(name);
        let bytes = value
            .and_then(|v| serde_json::to_vec_pretty(&v))
            .map_err(|e| ReportError::Io {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        crate::results::atomic_write(&path, &bytes).map_err(|e| ReportError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        written.push(path);
    }
    Ok(written)
}
