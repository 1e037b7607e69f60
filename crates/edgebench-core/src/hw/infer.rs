//! The single-model inference benchmark of the community results table (`edgebench
//! bench-infer`, the `benchmark_infer` workflow): a warm-up generation, then a fixed number of
//! generated tokens repeated `iters` times, tokens/s as mean, min and max; its settings from a
//! TOML `[generation]` section and flags; its JSON document and its Markdown row.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// The generation settings (`[generation]` of `--config`, then flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Generation {
    pub prompt: String,
    /// Tokens generated per measured iteration.
    pub gen_tokens: u32,
    /// Tokens generated once before measuring (not counted).
    pub warmup_tokens: u32,
    pub iters: u32,
    pub seed: u64,
    /// Greedy decoding regardless of the sampling settings.
    pub deterministic: bool,
    pub temperature: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub repetition_penalty: f32,
    pub use_kv_cache: bool,
}

impl Default for Generation {
    fn default() -> Self {
        Self {
            prompt: "Explain the concept of artificial intelligence in simple terms.".into(),
            gen_tokens: 256,
            warmup_tokens: 32,
            iters: 3,
            seed: 42,
            deterministic: false,
            temperature: 0.9,
            top_k: 40,
            top_p: 1.0,
            repetition_penalty: 1.0,
            use_kv_cache: true,
        }
    }
}

/// Why the settings are unusable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InferError(pub String);

impl Generation {
    /// The `[generation]` section of a TOML file over the defaults (other sections are the
    /// file's own business); an unknown key in it is an error naming the file and the key.
    pub fn from_file(path: &Path) -> Result<Self, InferError> {
        let err = |why: String| InferError(format!("--config {}: {why}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| err(e.message().into()))?;
        match table.get("generation") {
            None => Ok(Self::default()),
            Some(g) => g
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| err(format!("[generation]: {}", e.message()))),
        }
    }

    /// What makes the settings unusable, naming the setting.
    pub fn check(&self) -> Result<(), InferError> {
        let bad = |what: &str| Err(InferError(what.to_string()));
        if self.gen_tokens == 0 {
            return bad("gen_tokens: at least 1");
        }
        if self.iters == 0 {
            return bad("iters: at least 1");
        }
        if !self.use_kv_cache {
            return bad(
                "use_kv_cache = false: the llama.cpp engine always decodes with its KV cache \
                 (it has no cache-less path); the figures are with the cache on",
            );
        }
        if !(self.temperature >= 0.0 && self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("temperature must be >= 0 and top_p in (0, 1]");
        }
        Ok(())
    }

    /// Temperature as sampled: 0 (greedy) when deterministic.
    pub fn effective_temperature(&self) -> f32 {
        if self.deterministic {
            0.0
        } else {
            self.temperature
        }
    }
}

/// Mean, min and max of the measured iterations' tokens/s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

/// The rates of the iterations (`None` without any).
pub fn rates(per_iter: &[f64]) -> Option<Rates> {
    let mean = crate::stats::mean(per_iter).ok()?;
    Some(Rates {
        mean,
        min: per_iter.iter().copied().fold(f64::INFINITY, f64::min),
        max: per_iter.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

/// Where the run happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub edgebench: String,
}

/// The engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineFacts {
    pub name: String,
    /// The llama.cpp backends this binary was built with.
    pub system_info: String,
}

/// The device that ran it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// "cpu", or the GPU backend.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
}

/// The model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFacts {
    /// "local" (a file) or "catalog" (a catalog key, fetched into the model cache).
    pub source: String,
    pub name: String,
    pub path: String,
    pub params_m: f64,
    pub quantization: String,
    pub architecture: String,
    pub context_length: Option<u64>,
    pub file_size_bytes: u64,
}

/// The measured figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub iters: u32,
    pub tokens_per_sec: Rates,
    /// Each iteration's tokens/s.
    pub runs_tokens_per_sec: Vec<f64>,
    /// Peak GPU memory; `None` on the CPU.
    pub vram_peak_mib: Option<f64>,
}

/// The JSON document (`--json-out`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferReport {
    pub timestamp: String,
    pub commit: Option<String>,
    pub platform: Platform,
    pub engine: EngineFacts,
    pub device: Device,
    pub model: ModelFacts,
    pub generation: Generation,
    pub results: Results,
}

/// The community table's columns.
pub const COMMUNITY_HEAD: &str = "| Device | Source | Model size (params M) | KV cache | gen_tokens | mean tok/s | peak VRAM MiB |\n|---|---|---:|---|---:|---:|---:|\n";

/// The report's row of the community table, in the table's formats (params to 3 decimals,
/// KV cache on/off, `N/A` without a GPU).
pub fn community_row(r: &InferReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| {} | {} | {:.3} | {} | {} | {:.2} | {} |",
        r.device.name.replace('|', "/"),
        r.model.source,
        r.model.params_m,
        if r.generation.use_kv_cache {
            "on"
        } else {
            "off"
        },
        r.generation.gen_tokens,
        r.results.tokens_per_sec.mean,
        r.results
            .vram_peak_mib
            .map_or_else(|| "N/A".to_string(), |v| format!("{v:.0}"))
    );
    s
}

/// The Markdown file (`--md-out`): the table's head and the row.
pub fn markdown(r: &InferReport) -> String {
    format!("{COMMUNITY_HEAD}{}", community_row(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> InferReport {
        InferReport {
            timestamp: "2026-12-05T23:00:00Z".into(),
            commit: Some("abc123".into()),
            platform: Platform {
                os: "Linux".into(),
                edgebench: "0.1.0".into(),
            },
            engine: EngineFacts {
                name: "llama.cpp".into(),
                system_info: "CPU : AVX2 = 1".into(),
            },
            device: Device {
                kind: "cpu".into(),
                name: "Example CPU 9000".into(),
            },
            model: ModelFacts {
                source: "local".into(),
                name: "SmolLM2-135M-Instruct".into(),
                path: "/models/smollm2.gguf".into(),
                params_m: 134.515008,
                quantization: "Q4_1".into(),
                architecture: "llama".into(),
                context_length: Some(8192),
                file_size_bytes: 98_362_432,
            },
            generation: Generation::default(),
            results: Results {
                iters: 3,
                tokens_per_sec: rates(&[120.0, 125.5, 130.25]).unwrap(),
                runs_tokens_per_sec: vec![120.0, 125.5, 130.25],
                vram_peak_mib: None,
            },
        }
    }

    #[test]
    fn the_community_row_has_the_tables_formats() {
        assert_eq!(
            markdown(&report()),
            format!(
                "{COMMUNITY_HEAD}| Example CPU 9000 | local | 134.515 | on | 256 | 125.25 | N/A |\n"
            )
        );
    }

    #[test]
    fn rates_are_mean_min_and_max() {
        let r = rates(&[10.0, 20.0, 30.0]).unwrap();
        assert_eq!((r.mean, r.min, r.max), (20.0, 10.0, 30.0));
        assert!(rates(&[]).is_none());
    }

    #[test]
    fn the_generation_section_is_read_over_the_defaults_and_checked() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("base.toml");
        std::fs::write(
            &p,
            "[model]\nn_layer = 6\n[generation]\nseed = 7\ntop_k = 20\ngen_tokens = 64\n",
        )
        .unwrap();
        let g = Generation::from_file(&p).unwrap();
        assert_eq!((g.seed, g.top_k, g.gen_tokens, g.iters), (7, 20, 64, 3));
        std::fs::write(&p, "[generation]\ntemprature = 0.5\n").unwrap();
        let e = Generation::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("base.toml") && e.contains("temprature"), "{e}");
        let off = Generation {
            use_kv_cache: false,
            ..Generation::default()
        };
        assert!(off.check().unwrap_err().to_string().contains("KV cache"));
        assert!(Generation::default().check().is_ok());
    }
}
