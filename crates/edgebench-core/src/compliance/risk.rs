//! Residual risk levels: the rules of `compliance/risks.toml` applied to the evidence.

use serde::{Deserialize, Serialize};

use super::evidence::{Evidence, EvidenceItem};
use super::ComplianceError;

/// The NIST AI RMF core functions.
pub const RMF_FUNCTIONS: &[&str] = &["Govern", "Map", "Measure", "Manage"];

const RISKS_TOML: &str = include_str!("../../compliance/risks.toml");
const RISKS_FILE: &str = "compliance/risks.toml";

/// A residual risk level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
}

impl RiskLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RiskFile {
    risk: Vec<RiskDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RiskDef {
    id: String,
    framework: String,
    name: String,
    rmf_functions: Vec<String>,
    evidence: Vec<String>,
    default_level: RiskLevel,
    default_rationale: String,
    #[serde(default)]
    rule: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    metric: String,
    op: String,
    value: f64,
    level: RiskLevel,
    rationale: String,
}

impl Rule {
    fn holds(&self, v: f64) -> Result<bool, ComplianceError> {
        Ok(match self.op.as_str() {
            "<" => v < self.value,
            "<=" => v <= self.value,
            ">" => v > self.value,
            ">=" => v >= self.value,
            "==" => v == self.value,
            other => {
                return Err(ComplianceError::Data {
                    file: RISKS_FILE,
                    reason: format!("unknown operator {other:?} in a rule on {}", self.metric),
                })
            }
        })
    }
}

/// One risk, assessed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskAssessment {
    pub id: String,
    pub framework: String,
    pub name: String,
    pub rmf_functions: Vec<String>,
    /// The evidence the risk reads that was measured.
    pub evidence: Vec<EvidenceItem>,
    /// Evidence the risk reads that this folder lacks.
    pub evidence_missing: Vec<String>,
    pub residual_risk: RiskLevel,
    pub rationale: String,
    /// The rule that set the level: `metric op value`, or "default (no rule applied)".
    pub rule: String,
}

fn show(v: f64, unit: &str) -> String {
    match unit {
        "fraction" => format!("{:.1}%", v * 100.0),
        "percent" => format!("{v:.1}"),
        _ if v.fract() == 0.0 => format!("{v:.0}"),
        _ => format!("{v:.3}"),
    }
}

fn parse() -> Result<RiskFile, ComplianceError> {
    let f: RiskFile = toml::from_str(RISKS_TOML).map_err(|e| ComplianceError::Data {
        file: RISKS_FILE,
        reason: e.to_string(),
    })?;
    for r in &f.risk {
        if let Some(bad) = r
            .rmf_functions
            .iter()
            .find(|x| !RMF_FUNCTIONS.contains(&x.as_str()))
        {
            return Err(ComplianceError::Data {
                file: RISKS_FILE,
                reason: format!("{}: {bad:?} is not a NIST AI RMF function", r.id),
            });
        }
    }
    Ok(f)
}

/// Assesses every risk of the data file against the evidence.
pub fn assess(ev: &Evidence) -> Result<Vec<RiskAssessment>, ComplianceError> {
    let file = parse()?;
    let mut out = Vec::new();
    for def in file.risk {
        let mut chosen = None;
        for rule in &def.rule {
            let Some(v) = ev.get(&rule.metric) else {
                continue;
            };
            if rule.holds(v)? {
                let unit = ev
                    .items
                    .iter()
                    .find(|i| i.name == rule.metric)
                    .map_or("", |i| i.unit.as_str());
                chosen = Some((
                    rule.level,
                    rule.rationale.replace("{value}", &show(v, unit)),
                    format!("{} {} {}", rule.metric, rule.op, rule.value),
                ));
                break;
            }
        }
        let (residual_risk, rationale, rule) = chosen.unwrap_or_else(|| {
            (
                def.default_level,
                def.default_rationale.clone(),
                "default (no rule applied)".to_string(),
            )
        });
        out.push(RiskAssessment {
            evidence: def
                .evidence
                .iter()
                .filter_map(|n| ev.items.iter().find(|i| &i.name == n).cloned())
                .collect(),
            evidence_missing: def
                .evidence
                .iter()
                .filter(|n| ev.get(n).is_none())
                .cloned()
                .collect(),
            id: def.id,
            framework: def.framework,
            name: def.name,
            rmf_functions: def.rmf_functions,
            residual_risk,
            rationale,
            rule,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, value: f64, unit: &str) -> EvidenceItem {
        EvidenceItem {
            name: name.into(),
            value,
            unit: unit.into(),
            description: String::new(),
            sources: vec![],
        }
    }

    fn level(risks: &[RiskAssessment], id: &str) -> RiskLevel {
        risks.iter().find(|r| r.id == id).unwrap().residual_risk
    }

    #[test]
    fn the_data_file_covers_owasp_2025_and_nist_600_1() {
        let risks = assess(&Evidence::default()).unwrap();
        let owasp: Vec<&str> = risks
            .iter()
            .filter(|r| r.framework.starts_with("OWASP"))
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(
            owasp,
            [
                "Prompt Injection",
                "Sensitive Information Disclosure",
                "Supply Chain",
                "Data and Model Poisoning",
                "Improper Output Handling",
                "Excessive Agency",
                "System Prompt Leakage",
                "Vector and Embedding Weaknesses",
                "Misinformation",
                "Unbounded Consumption"
            ]
        );
        let nist: Vec<&str> = risks
            .iter()
            .filter(|r| r.framework == "NIST AI 600-1")
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(nist.len(), 12);
        assert!(nist.contains(&"Obscene, Degrading, and/or Abusive Content"));
        assert!(nist.contains(&"Value Chain and Component Integration"));
        for r in &risks {
            assert!(!r.rmf_functions.is_empty(), "{}", r.id);
            assert_eq!(r.rule, "default (no rule applied)");
        }
    }

    #[test]
    fn rules_set_levels_from_evidence() {
        let ev = Evidence {
            items: vec![
                item("json_valid_rate_min", 0.9, "fraction"),
                item("local_only_inference", 1.0, "flag"),
                item("remote_targets", 0.0, "count"),
                item("sandbox_suspicious_code", 2.0, "count"),
                item("sandbox_isolated", 1.0, "flag"),
            ],
        };
        let risks = assess(&ev).unwrap();
        assert_eq!(level(&risks, "LLM05"), RiskLevel::High);
        let llm05 = risks.iter().find(|r| r.id == "LLM05").unwrap();
        assert!(llm05.rationale.contains("90.0%"), "{}", llm05.rationale);
        assert_eq!(llm05.rule, "json_valid_rate_min < 0.95");
        assert_eq!(llm05.evidence_missing, ["invalid_label_rate_max"]);
        assert_eq!(level(&risks, "LLM02"), RiskLevel::Low);
        assert_eq!(level(&risks, "NIST-GAI-04"), RiskLevel::Low);
        assert_eq!(level(&risks, "LLM01"), RiskLevel::High);
        let good = Evidence {
            items: vec![item("json_valid_rate_min", 1.0, "fraction")],
        };
        assert_eq!(level(&assess(&good).unwrap(), "LLM05"), RiskLevel::Medium);
    }

    #[test]
    fn measured_energy_sets_the_environmental_risk() {
        let gai05 = |items: Vec<EvidenceItem>| {
            assess(&Evidence { items })
                .unwrap()
                .into_iter()
                .find(|r| r.id == "NIST-GAI-05")
                .unwrap()
        };
        // Energy measured: the energy rule applies, before the CPU fallbacks.
        let r = gai05(vec![
            item("energy_wh", 1.25, "Wh"),
            item("mean_cpu_percent_max", 95.0, "percent"),
        ]);
        assert_eq!(r.rule, "energy_wh >= 0");
        assert_eq!(r.residual_risk, RiskLevel::Low);
        assert!(r.rationale.contains("1.250 Wh"), "{}", r.rationale);
        assert!(r.evidence_missing.is_empty());
        // Not measured: CPU use decides, and the evidence lists energy_wh as missing.
        let r = gai05(vec![item("mean_cpu_percent_max", 95.0, "percent")]);
        assert_eq!(r.rule, "mean_cpu_percent_max > 80");
        assert_eq!(r.residual_risk, RiskLevel::Medium);
        assert_eq!(r.evidence_missing, ["energy_wh"]);
    }
}
