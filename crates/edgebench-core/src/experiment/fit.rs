//! Whether a model will fit before it is loaded: its weights, its KV cache for the context the
//! plan needs (from the GGUF's own shape), and the runtime's buffers, against the memory free on
//! this machine (or a budget given to plan for a smaller one). A model that will not fit is
//! skipped with a line saying why, unless forced.

use serde::{Deserialize, Serialize};

use crate::catalog::gguf::{read_header, GgufHeader};
use crate::catalog::ModelInfo;
use crate::workload::Scenario;

/// Compute buffers and the runtime beside weights and KV cache, MB.
pub const OVERHEAD_MB: u64 = 300;

/// How a run treats models that will not fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FitPolicy {
    /// The memory models must fit in, MB (default: what is available now).
    pub budget_mb: Option<u64>,
    /// Run them anyway.
    pub force: bool,
}

/// What a model needs in memory, MB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryNeed {
    pub weights_mb: u64,
    pub kv_cache_mb: u64,
    /// The context the KV cache is sized for, tokens.
    pub context_tokens: u64,
    pub overhead_mb: u64,
}

impl MemoryNeed {
    pub fn total_mb(&self) -> u64 {
        self.weights_mb + self.kv_cache_mb + self.overhead_mb
    }
}

/// KV cache bytes per token (f16 keys and values in every layer), from the GGUF's shape.
pub fn kv_bytes_per_token(h: &GgufHeader) -> Option<u64> {
    let a = h.architecture()?;
    let key = |k: &str| h.u64(&format!("{a}.{k}"));
    let layers = key("block_count")?;
    let embd = key("embedding_length")?;
    let heads = key("attention.head_count")?.max(1);
    let kv_heads = key("attention.head_count_kv").unwrap_or(heads);
    let k = key("attention.key_length").unwrap_or(embd / heads);
    let v = key("attention.value_length").unwrap_or(embd / heads);
    Some(layers * kv_heads * (k + v) * 2)
}

/// What `model` needs for `context_tokens` of KV cache (a fifth of its weights when its file does
/// not say its shape).
pub fn need(model: &ModelInfo, context_tokens: u64) -> MemoryNeed {
    let weights_mb = model.file_size_bytes.div_ceil(1_000_000);
    let kv_cache_mb = read_header(&model.path)
        .ok()
        .and_then(|h| kv_bytes_per_token(&h))
        .map_or(weights_mb / 5, |b| (b * context_tokens).div_ceil(1_000_000));
    MemoryNeed {
        weights_mb,
        kv_cache_mb,
        context_tokens,
        overhead_mb: OVERHEAD_MB,
    }
}

/// The context the longest request of these scenarios needs: prompt and output at their
/// largest (`max_tokens` overriding outputs), or the fixed context size when there is one.
pub fn context_needed(scenarios: &[Scenario], max_tokens: Option<u32>, fixed: Option<u32>) -> u64 {
    if let Some(n) = fixed {
        return u64::from(n);
    }
    scenarios
        .iter()
        .map(|s| {
            u64::from(s.prompt_tokens[1]) + u64::from(max_tokens.unwrap_or(s.output_tokens[1]))
        })
        .max()
        .unwrap_or(4096)
}

/// Memory available now, MB.
pub fn available_mb() -> u64 {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    sys.available_memory() / 1_000_000
}

/// The line that says why a model is skipped (or run anyway).
pub fn verdict(model: &ModelInfo, need: &MemoryNeed, budget_mb: u64, force: bool) -> String {
    format!(
        "{} {} needs about {} MB (weights {} + KV cache {} for {} tokens + {} runtime) but {} MB \
         is available{}",
        model.name,
        model.quantization,
        need.total_mb(),
        need.weights_mb,
        need.kv_cache_mb,
        need.context_tokens,
        need.overhead_mb,
        budget_mb,
        if force {
            ": running it anyway (--force)"
        } else {
            ": skipped (--force runs it anyway, --memory-budget plans for another amount)"
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(prompt: u32, output: u32) -> Scenario {
        Scenario {
            name: "s".into(),
            description: String::new(),
            system: String::new(),
            prompt_tokens: [prompt / 2, prompt],
            output_tokens: [output, output],
            ignore_eos: true,
            json: false,
            instructions: vec!["x".into()],
            concurrency: None,
            sweep_of: None,
            temperature: None,
            cycle_instructions: false,
        }
    }

    #[test]
    fn the_context_is_the_longest_request_or_the_fixed_size() {
        let s = [scenario(400, 128), scenario(4000, 512)];
        assert_eq!(context_needed(&s, None, None), 4512);
        assert_eq!(context_needed(&s, Some(16), None), 4016);
        assert_eq!(context_needed(&s, None, Some(2048)), 2048);
    }

    #[test]
    fn the_default_model_needs_its_weights_its_kv_cache_and_the_runtime() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let Ok(path) = crate::catalog::dev_model(&root) else {
            return;
        };
        let m = crate::catalog::model_info(&path, None).unwrap();
        let h = read_header(&path).unwrap();
        // SmolLM2-135M: 30 layers, 3 KV heads of 64 dimensions for keys and for values, f16.
        assert_eq!(kv_bytes_per_token(&h), Some(30 * 3 * 128 * 2));
        let n = need(&m, 8192);
        assert_eq!(
            n.kv_cache_mb,
            (30 * 3 * 128 * 2 * 8192u64).div_ceil(1_000_000)
        );
        assert_eq!(n.total_mb(), n.weights_mb + n.kv_cache_mb + OVERHEAD_MB);
        assert!(verdict(&m, &n, 10, false).contains("skipped"));
    }
}
