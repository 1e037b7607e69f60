//! Models a server serves under an id of its own (the bank study's LM Studio configurations),
//! as data (`servers.toml`): `--models all|gguf|mlx|KEY` with `--endpoint` expand against it, and
//! each entry names the build (format, quantization) the benchmark expects to find loaded.

use serde::{Deserialize, Serialize};

/// One configuration: a server model id and the build expected behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerModel {
    pub key: String,
    pub name: String,
    pub server_id: String,
    pub publisher: String,
    /// "GGUF" or "MLX".
    pub format: String,
    /// As the study spells it: "Q4_K_M", "4bit".
    pub quantization: String,
    pub context_length: Option<u64>,
    pub license: Option<String>,
}

#[derive(Deserialize)]
struct File {
    model: Vec<ServerModel>,
}

/// The registry shipped with edgebench.
pub fn registry() -> Vec<ServerModel> {
    // A test checks the file parses; a broken file would leave the registry empty.
    toml::from_str::<File>(include_str!("servers.toml"))
        .map(|f| f.model)
        .unwrap_or_default()
}

/// A `--models` value with `--endpoint`, expanded: `all` is every registry entry, `gguf` and
/// `mlx` those of that format, a key its entry; anything else is a server model id as given
/// (`None` entry).
pub fn expand(specs: &[String]) -> Vec<(String, Option<ServerModel>)> {
    let reg = registry();
    let mut out: Vec<(String, Option<ServerModel>)> = Vec::new();
    for s in specs {
        let lower = s.to_ascii_lowercase();
        let picked: Vec<&ServerModel> = match lower.as_str() {
            "all" => reg.iter().collect(),
            "gguf" | "mlx" => reg
                .iter()
                .filter(|m| m.format.eq_ignore_ascii_case(&lower))
                .collect(),
            _ => reg.iter().filter(|m| m.key == *s).collect(),
        };
        if picked.is_empty() {
            out.push((s.clone(), None));
        }
        for m in picked {
            if !out
                .iter()
                .any(|(_, e)| e.as_ref().is_some_and(|e| e.key == m.key))
            {
                out.push((m.server_id.clone(), Some(m.clone())));
            }
        }
    }
    out
}

/// Whether the build a server reports loaded (format, quantization) is the one `m` expects;
/// `Err` says what differs. Unknown facts are not a mismatch (most servers do not say).
pub fn check_build(
    m: &ServerModel,
    format: Option<&str>,
    quantization: Option<&str>,
) -> Result<(), String> {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['-', ' '], "_");
    let format_ok = format.is_none_or(|f| norm(f) == norm(&m.format));
    let quant_ok = quantization.is_none_or(|q| norm(q) == norm(&m.quantization));
    if format_ok && quant_ok {
        return Ok(());
    }
    Err(format!(
        "model {} ({}): the server has the {} {} build loaded, the configuration expects {} {}; load the {} {} build (in LM Studio: pick it in the model loader) and run again",
        m.server_id,
        m.key,
        format.unwrap_or("?"),
        quantization.unwrap_or("?"),
        m.format,
        m.quantization,
        m.format,
        m.quantization
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_holds_the_studys_five_configurations() {
        let keys: Vec<String> = registry().into_iter().map(|m| m.key).collect();
        assert_eq!(
            keys,
            [
                "gemma_3n_e4b_gguf",
                "qwen3_vl_4b_gguf",
                "ministral_3_3b_gguf",
                "gemma_3n_e4b_mlx",
                "qwen3_vl_4b_mlx"
            ]
        );
    }

    #[test]
    fn models_expand_by_group_key_or_id() {
        let ids = |s: &[&str]| -> Vec<String> {
            expand(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>())
                .into_iter()
                .map(|(id, e)| format!("{id}={}", e.map_or("-".into(), |e| e.key)))
                .collect()
        };
        assert_eq!(ids(&["all"]).len(), 5);
        assert_eq!(
            ids(&["mlx"]),
            [
                "google/gemma-3n-e4b=gemma_3n_e4b_mlx",
                "qwen/qwen3-vl-4b=qwen3_vl_4b_mlx"
            ]
        );
        assert_eq!(ids(&["GGUF"]).len(), 3);
        assert_eq!(
            ids(&["ministral_3_3b_gguf", "my/model", "gguf"]),
            [
                "mistralai/ministral-3-3b=ministral_3_3b_gguf",
                "my/model=-",
                "google/gemma-3n-e4b=gemma_3n_e4b_gguf",
                "qwen/qwen3-vl-4b=qwen3_vl_4b_gguf"
            ]
        );
    }

    #[test]
    fn a_loaded_build_other_than_the_expected_one_is_named() {
        let m = registry().remove(0);
        assert!(check_build(&m, Some("gguf"), Some("Q4_K_M")).is_ok());
        assert!(check_build(&m, None, None).is_ok());
        let e = check_build(&m, Some("mlx"), Some("4bit")).unwrap_err();
        assert!(
            e.contains("google/gemma-3n-e4b")
                && e.contains("mlx 4bit")
                && e.contains("GGUF Q4_K_M"),
            "{e}"
        );
        assert!(check_build(&m, Some("GGUF"), Some("Q8_0")).is_err());
    }
}
