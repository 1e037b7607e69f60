//! Banking77 with `--answer constrained` (and optionally `free`/`loglik`) on the embedded engine,
//! beside llama-bench's prefill rate for the same batch shape: items/s, the prompt tokens each
//! item adds after the shared system prompt, and the token rate that makes, as a ratio of
//! llama-bench's. Run with `cargo bench -p edgebench-llama --bench eval_answer_modes`.
//!
//! Environment: EDGEBENCH_BENCH_MODEL (GGUF; default: the default model), LLAMA_BENCH (default:
//! built by ../shared/scripts/peer-llama-tools.sh), EDGEBENCH_BENCH_ITEMS (default: the whole
//! test split, 3,080), EDGEBENCH_BENCH_MODES (default "constrained"; comma-separated),
//! EDGEBENCH_BENCH_PARALLEL (default 64, as `edgebench eval`), EDGEBENCH_BENCH_THREADS.

use std::time::Instant;

use edgebench_core::backend::ChatMessage;
use edgebench_core::eval::data;
use edgebench_core::eval::method::AnswerMode;
use edgebench_core::eval::tasks::{run_task, Sink};
use edgebench_core::eval::{ItemResult, TaskOptions};
use edgebench_llama::{EngineConfig, LlamaTarget};

mod common;
use common::{llama_bench_json, script_output, shared};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// llama-bench's prefill rate (t/s) for `tokens` prompt tokens at KV depth `depth`.
fn llama_bench_pp(bin: &str, model: &str, threads: usize, tokens: usize, depth: usize) -> f64 {
    let (threads, tokens, depth) = (threads.to_string(), tokens.to_string(), depth.to_string());
    let args = [
        "-m", model, "-t", &threads, "-p", &tokens, "-n", "0", "-d", &depth, "-r", "3", "--repack",
        "0",
    ];
    llama_bench_json(bin, &args)[0]["avg_ts"]
        .as_f64()
        .expect("avg_ts")
}

fn main() {
    let model = std::env::var("EDGEBENCH_BENCH_MODEL")
        .unwrap_or_else(|_| script_output(&shared("scripts/default-model.sh")));
    let bin = std::env::var("LLAMA_BENCH").unwrap_or_else(|_| {
        format!(
            "{}/llama-bench",
            script_output(&shared("scripts/peer-llama-tools.sh"))
        )
    });
    let threads = env_num(
        "EDGEBENCH_BENCH_THREADS",
        edgebench_core::repro::default_threads() as usize,
    );
    let parallel = env_num("EDGEBENCH_BENCH_PARALLEL", 64);
    let items = env_num("EDGEBENCH_BENCH_ITEMS", 3080);
    let modes: Vec<AnswerMode> = std::env::var("EDGEBENCH_BENCH_MODES")
        .unwrap_or_else(|_| "constrained".into())
        .split(',')
        .map(|m| m.trim().parse().expect("EDGEBENCH_BENCH_MODES"))
        .collect();
    let data_dir = shared("datasets");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let target = LlamaTarget::load(EngineConfig::new(&model, threads as u32))
        .expect("load model")
        .with_parallel(parallel);

    // The batch shape: the system prompt (KV depth) and what each item adds after it.
    let (texts, labels) = data::banking77(&data_dir.join("banking77")).expect("banking77");
    let (depth, per_item) = rt.block_on(async {
        let chat = |user: &str| {
            vec![
                ChatMessage::new("system", "S"),
                ChatMessage::new("user", user.to_string()),
            ]
        };
        let engine = target.engine();
        let base = engine.render_chat(chat("")).await.expect("template");
        let base_tokens = engine.tokenize(base).await.expect("tokens").len();
        let n = texts.len().min(200);
        let mut sum = 0usize;
        for t in &texts[..n] {
            let r = engine.render_chat(chat(&t.text)).await.expect("template");
            sum += engine.tokenize(r).await.expect("tokens").len() - base_tokens;
        }
        let system = labels.join("\n");
        let depth = engine.tokenize(system).await.expect("tokens").len() + 60;
        (depth, sum as f64 / n as f64)
    });
    let label_tokens: f64 = rt.block_on(async {
        let mut s = 0usize;
        for l in &labels {
            s += target
                .engine()
                .tokenize(l.clone())
                .await
                .expect("tokens")
                .len();
        }
        s as f64 / labels.len() as f64
    });
    let batch_tokens = (per_item * parallel as f64).round() as usize;
    eprintln!(
        "model {model}, {threads} threads, --parallel {parallel}; system prompt ~{depth} tokens, \
         {per_item:.1} prompt tokens per item after it, labels {label_tokens:.1} tokens on average"
    );
    let reference = llama_bench_pp(&bin, &model, threads, batch_tokens, depth);
    println!(
        "llama-bench pp{batch_tokens} at depth {depth} (one batch of {parallel} items' prompts): {reference:.1} t/s = {:.2} items/s if an item cost only its prompt",
        reference / per_item
    );
    for mode in modes {
        let opts = TaskOptions {
            sample_size: Some(items),
            data_dir: Some(data_dir.clone()),
            answer: mode,
            batch: 32 * parallel,
            ..TaskOptions::default()
        };
        let mut commit = |_: &[ItemResult]| Ok(());
        let mut sink = Sink {
            commit: &mut commit,
            progress: &|_, _| {},
            cancelled: &|| false,
        };
        let started = Instant::now();
        let out = rt
            .block_on(run_task(
                "banking77",
                &target,
                &opts,
                &Default::default(),
                &mut sink,
            ))
            .expect("eval");
        let secs = started.elapsed().as_secs_f64();
        let n = out.items.len() as f64;
        let correct = out.items.iter().filter(|i| i.score > 0.0).count() as f64;
        let rate = n / secs;
        println!(
            "--answer {mode}: {n} items in {secs:.1} s = {rate:.2} items/s ({:.1} prompt t/s, {:.2}x llama-bench's prefill), accuracy {:.3}",
            rate * per_item,
            rate * per_item / reference,
            correct / n
        );
    }
}
