//! `edgebench bench-infer`: one model's tokens/s over a fixed generation (the community results
//! table's benchmark), with the embedded engine; writes its JSON and Markdown row.

use std::process::ExitCode;

use anyhow::Context;
use edgebench_core::backend::Sampling;
use edgebench_core::hw::infer::{self, Generation, InferReport};
use edgebench_llama::{Engine, EngineConfig, GenerateJob, Prompt};

use crate::args::InferArgs;

/// The settings: the defaults, the config file's `[generation]`, then the flags typed.
fn settings(a: &InferArgs) -> anyhow::Result<Generation> {
    let mut g = match &a.config {
        Some(p) => Generation::from_file(p)?,
        None => Generation::default(),
    };
    if let Some(v) = &a.prompt {
        g.prompt.clone_from(v);
    }
    if let Some(v) = a.gen_tokens {
        g.gen_tokens = v;
    }
    if let Some(v) = a.warmup_tokens {
        g.warmup_tokens = v;
    }
    if let Some(v) = a.iters {
        g.iters = v;
    }
    if let Some(v) = a.seed {
        g.seed = v;
    }
    if let Some(v) = a.temperature {
        g.temperature = v;
    }
    if let Some(v) = a.top_k {
        g.top_k = v;
    }
    if let Some(v) = a.top_p {
        g.top_p = v;
    }
    if let Some(v) = a.repetition_penalty {
        g.repetition_penalty = v;
    }
    if a.deterministic {
        g.deterministic = true;
    }
    if let Some(kv) = &a.kv_cache {
        g.use_kv_cache = kv == "on";
    }
    g.check().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(g)
}

pub fn bench_infer(a: InferArgs) -> anyhow::Result<ExitCode> {
    let g = settings(&a)?;
    let spec = a.model.clone().unwrap_or_default();
    let specs: Vec<String> = a.model.iter().cloned().collect();
    let models = super::run::resolve_models(&specs)?;
    let Some(m) = models.into_iter().next() else {
        anyhow::bail!("--model: no model");
    };
    let threads = a
        .threads
        .unwrap_or_else(edgebench_core::repro::default_threads)
        .max(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let engine = Engine::load(EngineConfig::new(&m.path, threads))
        .with_context(|| format!("loading model {}", m.path.display()))?;
    let sampling = Sampling {
        temperature: g.effective_temperature(),
        top_p: g.top_p,
        top_k: g.top_k,
        repeat_penalty: g.repetition_penalty,
        seed: g.seed,
    };
    let job = |tokens: u32, seed: u64| GenerateJob {
        prompt: Prompt::Chat(vec![edgebench_core::backend::ChatMessage {
            role: "user".into(),
            content: g.prompt.clone(),
        }]),
        max_tokens: tokens,
        ignore_eos: true,
        sampling: Sampling { seed, ..sampling },
        stream: None,
    };
    let mut per_iter = Vec::new();
    rt.block_on(async {
        engine
            .reserve_context(g.gen_tokens.max(g.warmup_tokens) + 512)
            .await?;
        if g.warmup_tokens > 0 {
            eprintln!("warm-up: {} tokens", g.warmup_tokens);
            engine.generate(job(g.warmup_tokens, g.seed)).await?;
        }
        for i in 0..g.iters {
            let out = engine
                .generate(job(g.gen_tokens, g.seed + u64::from(i)))
                .await?;
            // Tokens over the whole generation, the prompt's evaluation included, as a user
            // waits for it.
            let end = out.token_times.last().copied().unwrap_or(out.started);
            let secs = end.duration_since(out.started).as_secs_f64();
            let rate = if secs > 0.0 {
                out.token_times.len() as f64 / secs
            } else {
                0.0
            };
            eprintln!("iter {}/{}: {rate:.2} tok/s", i + 1, g.iters);
            per_iter.push(rate);
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let env = super::run::environment();
    // The engine offloads no layer (n_gpu_layers = 0): the CPU ran it, whatever was built.
    let device = infer::Device {
        kind: "cpu".into(),
        name: env.cpu_model.clone(),
    };
    let report = InferReport {
        timestamp: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        commit: env.edgebench_commit.clone(),
        platform: infer::Platform {
            os: format!("{} {}", env.os, env.kernel),
            edgebench: env.edgebench_version.clone(),
        },
        engine: infer::EngineFacts {
            name: edgebench_llama::ENGINE_NAME.to_string(),
            system_info: format!("backends: {}", edgebench_llama::built_backends().join(", ")),
        },
        device,
        model: infer::ModelFacts {
            // A file named on the command line is local; a catalog key came through the cache.
            source: if std::path::Path::new(&spec).is_file() {
                "local"
            } else {
                "catalog"
            }
            .into(),
            name: m.name.clone(),
            path: m.path.display().to_string(),
            params_m: m.parameters as f64 / 1e6,
            quantization: m.quantization.clone(),
            architecture: m.architecture.clone(),
            context_length: m.context_length,
            file_size_bytes: m.file_size_bytes,
        },
        generation: g.clone(),
        results: infer::Results {
            iters: g.iters,
            tokens_per_sec: infer::rates(&per_iter)
                .ok_or_else(|| anyhow::anyhow!("no iteration measured"))?,
            runs_tokens_per_sec: per_iter,
            vram_peak_mib: None,
        },
    };
    let write = |path: &std::path::Path, bytes: &[u8], flag: &str| -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("{flag} {}", path.display()))?;
        }
        edgebench_core::results::atomic_write(path, bytes)
            .with_context(|| format!("{flag} {}", path.display()))?;
        eprintln!("wrote {}", path.display());
        Ok(())
    };
    if let Some(p) = &a.json_out {
        write(p, &serde_json::to_vec_pretty(&report)?, "--json-out")?;
    }
    if let Some(p) = &a.md_out {
        write(p, infer::markdown(&report).as_bytes(), "--md-out")?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", infer::markdown(&report));
    }
    Ok(ExitCode::SUCCESS)
}
