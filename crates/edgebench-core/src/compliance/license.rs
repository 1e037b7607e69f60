//! The licence audit: per model, the licence from GGUF metadata and from the catalog, whether
//! commercial use is allowed, restricted or unknown, the obligations, and the source of each fact.

use serde::{Deserialize, Serialize};

use super::ComplianceError;
use crate::catalog::{self, ModelInfo};
use crate::report::input::ReportInput;

const LICENSES_TOML: &str = include_str!("../../compliance/licenses.toml");
const LICENSES_FILE: &str = "compliance/licenses.toml";

/// Whether a licence allows commercial use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommercialUse {
    Allowed,
    Restricted,
    Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LicenseFile {
    license: Vec<LicenseRule>,
}

/// One licence the audit recognises.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseRule {
    pub name: String,
    #[serde(rename = "match")]
    pub matches: Vec<String>,
    pub commercial_use: CommercialUse,
    pub attribution: String,
    pub use_policy: String,
}

/// A fact and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    pub fact: String,
    pub value: String,
    pub source: String,
}

/// One model's audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LicenseEntry {
    pub model: String,
    pub publisher: String,
    pub format: String,
    pub quantization: String,
    pub catalog_key: Option<String>,
    /// `general.license` of the GGUF file.
    pub gguf_license: Option<String>,
    /// The catalog's licence for the model.
    pub catalog_license: Option<String>,
    /// The recognised licence, when one is.
    pub license: Option<String>,
    pub commercial_use: CommercialUse,
    pub attribution: Option<String>,
    pub use_policy: Option<String>,
    /// True when a person must review: unknown licence, or sources that disagree.
    pub flagged: bool,
    pub notes: Vec<String>,
    pub facts: Vec<Fact>,
}

/// `compliance/license_audit_{timestamp}.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LicenseAudit {
    pub generated: String,
    pub models: Vec<LicenseEntry>,
}

fn rules() -> Result<Vec<LicenseRule>, ComplianceError> {
    toml::from_str::<LicenseFile>(LICENSES_TOML)
        .map(|f| f.license)
        .map_err(|e| ComplianceError::Data {
            file: LICENSES_FILE,
            reason: e.to_string(),
        })
}

/// True when `needle` occurs in `hay` as whole words (bounded by non-alphanumerics).
fn has_words(hay: &str, needle: &str) -> bool {
    let bytes = hay.as_bytes();
    hay.match_indices(needle).any(|(i, m)| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + m.len()).copied();
        let edge = |b: Option<u8>| b.is_none_or(|b| !b.is_ascii_alphanumeric());
        edge(before) && edge(after)
    })
}

/// The rule that recognises a licence text, if any.
pub fn classify<'a>(text: &str, rules: &'a [LicenseRule]) -> Option<&'a LicenseRule> {
    let t = text.to_ascii_lowercase();
    rules
        .iter()
        .find(|r| r.matches.iter().any(|m| has_words(&t, m)))
}

/// Classifies a licence text with the rules of `compliance/licenses.toml`.
pub fn commercial_use(text: &str) -> Result<CommercialUse, ComplianceError> {
    Ok(classify(text, &rules()?).map_or(CommercialUse::Unknown, |r| r.commercial_use))
}

fn entry(model: &ModelInfo, source_file: &str, rules: &[LicenseRule]) -> LicenseEntry {
    let cat = model.key.as_deref().and_then(catalog::entry).or_else(|| {
        let file = model.path.file_name()?.to_str()?;
        catalog::CATALOG.iter().find(|e| e.file_name == file)
    });
    let mut facts = vec![Fact {
        fact: "model".into(),
        value: format!("{} {} {}", model.name, model.format, model.quantization),
        source: source_file.to_string(),
    }];
    let gguf = model.license.clone().filter(|l| !l.trim().is_empty());
    facts.push(Fact {
        fact: "gguf_license".into(),
        value: gguf.clone().unwrap_or_else(|| "absent".into()),
        source: format!("GGUF metadata general.license, as recorded in {source_file}"),
    });
    let catalog_license = cat.map(|c| c.license.to_string());
    if let Some(c) = cat {
        facts.push(Fact {
            fact: "catalog_license".into(),
            value: c.license.into(),
            source: format!("edgebench model catalog entry {}", c.key),
        });
    }
    let classified: Vec<(&str, Option<&LicenseRule>)> = [
        ("GGUF metadata", gguf.as_deref()),
        ("catalog", catalog_license.as_deref()),
    ]
    .into_iter()
    .filter_map(|(src, t)| t.map(|t| (src, classify(t, rules))))
    .collect();
    let mut notes = Vec::new();
    let recognised: Vec<&LicenseRule> = classified.iter().filter_map(|(_, r)| *r).collect();
    for (src, r) in &classified {
        if r.is_none() {
            notes.push(format!("the {src} licence is not recognised"));
        }
    }
    // The most restrictive recognised licence decides.
    let decided = recognised
        .iter()
        .copied()
        .max_by_key(|r| r.commercial_use == CommercialUse::Restricted);
    let disagree = recognised.windows(2).any(|w| w[0].name != w[1].name);
    if disagree {
        notes.push(format!(
            "sources disagree ({}); the most restrictive applies",
            recognised
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(" vs ")
        ));
    }
    let commercial_use = decided.map_or(CommercialUse::Unknown, |r| r.commercial_use);
    if commercial_use == CommercialUse::Unknown {
        notes.push("no recognised licence: legal review needed before use".into());
    }
    if let Some(r) = decided {
        let rule_src = format!("licence rules in {LICENSES_FILE} (entry {:?})", r.name);
        facts.push(Fact {
            fact: "commercial_use".into(),
            value: format!("{commercial_use:?}").to_ascii_lowercase(),
            source: rule_src.clone(),
        });
        facts.push(Fact {
            fact: "obligations".into(),
            value: format!("{} {}", r.attribution, r.use_policy),
            source: rule_src,
        });
    }
    LicenseEntry {
        model: model.name.clone(),
        publisher: model.publisher.clone(),
        format: model.format.clone(),
        quantization: model.quantization.clone(),
        catalog_key: cat.map(|c| c.key.to_string()),
        gguf_license: gguf,
        catalog_license,
        license: decided.map(|r| r.name.clone()),
        commercial_use,
        attribution: decided.map(|r| r.attribution.clone()),
        use_policy: decided.map(|r| r.use_policy.clone()),
        flagged: commercial_use == CommercialUse::Unknown || disagree,
        notes,
        facts,
    }
}

/// Audits every model named in the results (each name and quantization once).
pub fn audit(input: &ReportInput, generated: &str) -> Result<LicenseAudit, ComplianceError> {
    let rules = rules()?;
    let mut models: Vec<LicenseEntry> = Vec::new();
    let found = input
        .runs
        .iter()
        .flat_map(|r| r.value.models.iter().map(move |m| (&m.model, &r.file)))
        .chain(input.evals.iter().map(|e| (&e.value.model, &e.file)));
    for (m, file) in found {
        if models
            .iter()
            .any(|e| e.model == m.name && e.quantization == m.quantization)
        {
            continue;
        }
        models.push(entry(m, file, &rules));
    }
    Ok(LicenseAudit {
        generated: generated.to_string(),
        models,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(key: Option<&str>, license: Option<&str>) -> ModelInfo {
        ModelInfo {
            path: "/m/x.gguf".into(),
            key: key.map(str::to_string),
            name: "x".into(),
            publisher: "p".into(),
            format: "GGUF".into(),
            quantization: "Q4_0".into(),
            architecture: "llama".into(),
            parameters: 1,
            context_length: None,
            license: license.map(str::to_string),
            has_chat_template: true,
            file_size_bytes: 1,
        }
    }

    #[test]
    fn licences_are_classified() {
        assert_eq!(
            commercial_use("apache-2.0").unwrap(),
            CommercialUse::Allowed
        );
        assert_eq!(
            commercial_use("Apache License 2.0").unwrap(),
            CommercialUse::Allowed
        );
        assert_eq!(commercial_use("MIT").unwrap(), CommercialUse::Allowed);
        assert_eq!(commercial_use("gemma").unwrap(), CommercialUse::Restricted);
        assert_eq!(
            commercial_use("Gemma Terms of Use").unwrap(),
            CommercialUse::Restricted
        );
        assert_eq!(
            commercial_use("llama3.1").unwrap(),
            CommercialUse::Restricted
        );
        assert_eq!(commercial_use("llama3").unwrap(), CommercialUse::Restricted);
        assert_eq!(
            commercial_use("cc-by-nc-4.0").unwrap(),
            CommercialUse::Restricted
        );
        assert_eq!(commercial_use("other").unwrap(), CommercialUse::Unknown);
        // Whole words only: "permit" does not contain the MIT licence.
        assert_eq!(
            commercial_use("permitted use").unwrap(),
            CommercialUse::Unknown
        );
    }

    #[test]
    fn entries_name_sources_and_flag_unknowns() {
        let rules = rules().unwrap();
        let smol = entry(
            &model(Some("smollm2-135m-instruct-q4_1"), Some("apache-2.0")),
            "summary_1.json",
            &rules,
        );
        assert_eq!(smol.commercial_use, CommercialUse::Allowed);
        assert!(!smol.flagged);
        assert_eq!(smol.license.as_deref(), Some("Apache-2.0"));
        assert!(smol
            .facts
            .iter()
            .any(|f| f.fact == "catalog_license" && f.source.contains("catalog")));
        let gemma = entry(&model(Some("gemma-3-270m-q4_k_m"), None), "e.json", &rules);
        assert_eq!(gemma.commercial_use, CommercialUse::Restricted);
        assert!(gemma.use_policy.unwrap().contains("Prohibited Use Policy"));
        let unknown = entry(&model(None, None), "e.json", &rules);
        assert_eq!(unknown.commercial_use, CommercialUse::Unknown);
        assert!(unknown.flagged);
        let clash = entry(
            &model(Some("gemma-3-270m-q4_k_m"), Some("apache-2.0")),
            "e.json",
            &rules,
        );
        assert_eq!(clash.commercial_use, CommercialUse::Restricted);
        assert!(clash.flagged, "{:?}", clash.notes);
    }
}
