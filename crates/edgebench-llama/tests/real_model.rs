//! Integration tests on the real default model (path from EDGEBENCH_TEST_MODEL, else
//! ../shared/scripts/default-model.sh, else the edgebench model cache).

use std::path::{Path, PathBuf};

use edgebench_core::backend::{ChatMessage, GenRequest, Sampling, Target};
use edgebench_core::clock::Clock;
use edgebench_core::record::{ErrorKind, FinishReason};
use edgebench_llama::{Engine, EngineConfig, EngineError, GenerateJob, LlamaTarget, Prompt};

fn test_model() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    edgebench_core::catalog::dev_model(&root).expect("default model")
}

fn chat(text: &str) -> Prompt {
    Prompt::Chat(vec![
        ChatMessage::new("system", "You are a concise assistant."),
        ChatMessage::new("user", text),
    ])
}

fn job(prompt: Prompt, max_tokens: u32, sampling: Sampling) -> GenerateJob {
    GenerateJob {
        prompt,
        max_tokens,
        ignore_eos: false,
        sampling,
        stream: None,
    }
}

#[tokio::test]
async fn generates_streams_and_reports_engine_timings() {
    let engine = Engine::load(EngineConfig::new(test_model(), 2)).unwrap();
    let info = engine.info();
    assert!(info.has_chat_template);
    assert_eq!(info.n_ctx_train, 8192);
    assert!(info.n_params > 130_000_000 && info.n_params < 140_000_000);
    assert!(info.system_info.contains("CPU"), "{}", info.system_info);
    assert!(info.model_load_ms > 0.0);

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut j = job(chat("Name three colours."), 16, Sampling::default());
    j.ignore_eos = true;
    j.stream = Some(tx);
    let g = engine.generate(j).await.unwrap();
    assert_eq!(g.token_times.len(), 16);
    assert!(g.token_times.windows(2).all(|w| w[0] <= w[1]));
    assert!(g.token_times[0] > g.started);
    assert!(g.prompt_tokens > 10);
    assert_eq!(g.prompt_eval_tokens as usize, g.prompt_tokens);
    assert_eq!(g.decode_tokens, 15, "the last sampled token is not decoded");
    assert!(g.prompt_eval_ms > 0.0 && g.decode_ms > 0.0);
    let mut streamed = String::new();
    while let Ok(t) = rx.try_recv() {
        streamed.push_str(&t.text);
    }
    assert!(!g.text.trim().is_empty());
    assert_eq!(streamed, g.text);
}

#[tokio::test]
async fn greedy_and_seeded_sampling_are_reproducible() {
    let engine = Engine::load(EngineConfig::new(test_model(), 2)).unwrap();
    let p = || chat("Write one sentence about savings accounts.");
    let a = engine
        .generate(job(p(), 24, Sampling::default()))
        .await
        .unwrap();
    let b = engine
        .generate(job(p(), 24, Sampling::default()))
        .await
        .unwrap();
    assert_eq!(a.text, b.text);
    let hot = Sampling {
        temperature: 1.2,
        top_p: 0.95,
        top_k: 50,
        repeat_penalty: 1.1,
        seed: 7,
    };
    let c = engine.generate(job(p(), 24, hot.clone())).await.unwrap();
    let d = engine.generate(job(p(), 24, hot.clone())).await.unwrap();
    assert_eq!(c.text, d.text, "same seed, same text");
    let other = Sampling { seed: 8, ..hot };
    let e = engine.generate(job(p(), 24, other)).await.unwrap();
    assert_ne!(c.text, e.text, "another seed changes the sample");
}

#[tokio::test]
async fn context_is_sized_per_request_and_overflow_is_an_error() {
    let mut cfg = EngineConfig::new(test_model(), 2);
    cfg.n_ctx = Some(256);
    let engine = Engine::load(cfg).unwrap();
    assert_eq!(
        engine.reserve_context(4000).await.unwrap(),
        256,
        "fixed size kept"
    );
    let long: Vec<i32> = engine.tokenize("word ".repeat(300)).await.unwrap();
    let e = engine
        .generate(job(Prompt::Tokens(long), 8, Sampling::default()))
        .await
        .unwrap_err();
    assert!(
        matches!(e, EngineError::ContextOverflow { n_ctx: 256, .. }),
        "{e}"
    );

    let engine = Engine::load(EngineConfig::new(test_model(), 2)).unwrap();
    assert_eq!(engine.reserve_context(300).await.unwrap(), 512);
    assert_eq!(engine.reserve_context(129).await.unwrap(), 256);
    // A request larger than the current context grows it.
    let long: Vec<i32> = engine.tokenize("word ".repeat(600)).await.unwrap();
    let g = engine
        .generate(job(Prompt::Tokens(long), 2, Sampling::default()))
        .await
        .unwrap();
    assert!(g.prompt_tokens >= 600);
}

#[tokio::test]
async fn target_turns_generations_into_records() {
    let target = LlamaTarget::load(EngineConfig::new(test_model(), 2)).unwrap();
    let info = target.info();
    assert_eq!(info.kind, "embedded");
    assert!(info.rss_after_load_mb.unwrap() > 50.0);
    let clock = Clock::new();
    let msgs = vec![ChatMessage::new("user", "Say hello.")];
    let n = target.count_prompt_tokens(&msgs).await.unwrap().unwrap();
    let r = target
        .generate(
            GenRequest {
                index: 0,
                warmup: false,
                prompt_id: "x".into(),
                messages: msgs,
                max_tokens: 12,
                ignore_eos: true,
                sampling: Sampling::default(),
                scheduled: std::time::Instant::now(),
            },
            &clock,
        )
        .await;
    assert!(r.ok(), "{:?}", r.error);
    assert_eq!(r.prompt_tokens, Some(n));
    assert_eq!(r.output_tokens, 12);
    assert_eq!(r.chunks.len(), 12);
    assert_eq!(r.finish_reason, FinishReason::Length);
    assert!(r.t_sent_ns >= r.t_scheduled_ns);
    assert!(r.chunks[0].t_ns > r.t_sent_ns && r.t_end_ns >= r.chunks[11].t_ns);
    let m = edgebench_core::metrics::derive(&r);
    assert!(m.ttft_ms.unwrap() > 0.0 && m.decode_tokens_per_s.unwrap() > 1.0);
    // A prompt that cannot fit fails as data, not as a crash.
    let huge = vec![ChatMessage::new("user", "word ".repeat(9000))];
    let r = target
        .generate(
            GenRequest {
                index: 1,
                warmup: false,
                prompt_id: "y".into(),
                messages: huge,
                max_tokens: 8,
                ignore_eos: false,
                sampling: Sampling::default(),
                scheduled: std::time::Instant::now(),
            },
            &clock,
        )
        .await;
    assert_eq!(r.error.unwrap().kind, ErrorKind::ContextOverflow);
}

#[test]
fn missing_and_corrupt_models_fail_to_load_with_the_path() {
    let e = Engine::load(EngineConfig::new("/no/such/model.gguf", 1))
        .err()
        .unwrap();
    assert!(e.to_string().contains("/no/such/model.gguf"), "{e}");
}

#[tokio::test]
async fn a_vocab_only_tokenizer_counts_as_the_engine_does() {
    use edgebench_core::backend::TokenCounter;
    let tok = edgebench_llama::GgufTokenizer::load(&test_model()).unwrap();
    let engine = Engine::load(EngineConfig::new(test_model(), 2)).unwrap();
    for text in [
        "",
        "Hello, world!",
        "Your card payment of £42.50 was declined; the merchant's terminal will retry.",
        "naïve café — 東京 🚀",
    ] {
        let want = engine.tokenize(text.to_string()).await.unwrap().len() as u64;
        assert_eq!(tok.count(text), want, "{text:?}");
    }
    assert!(tok.name().ends_with(".gguf"));
    let e = edgebench_llama::GgufTokenizer::load(Path::new("/nonexistent.gguf")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent.gguf"), "{e}");
}

#[tokio::test]
async fn default_scenario_prompts_fall_in_their_token_ranges_with_the_real_tokenizer() {
    use edgebench_core::runner::{prepare, RunPlan};
    use edgebench_core::workload::ScenarioFile;
    let target = LlamaTarget::load(EngineConfig::new(test_model(), 2)).unwrap();
    let file = ScenarioFile::default_file().unwrap();
    let scenarios = file.select(&["all".into()]).unwrap();
    let plan = RunPlan {
        runs: 8,
        warmup: 2,
        ..RunPlan::default()
    };
    let units = prepare(&plan, &file, &scenarios, &target, "m")
        .await
        .unwrap();
    assert_eq!(units.len(), 3);
    for u in &units {
        let [lo, hi] = u.scenario.prompt_tokens;
        let [olo, ohi] = u.scenario.output_tokens;
        for p in u.warmup.iter().chain(&u.measured) {
            let n = p.prompt_tokens.expect("the engine counts prompt tokens");
            assert!(
                (u64::from(lo)..=u64::from(hi)).contains(&n),
                "{}: {n} prompt tokens, outside {lo}..={hi}",
                u.scenario.name
            );
            assert!((olo..=ohi).contains(&p.max_tokens), "{}", u.scenario.name);
        }
    }
}
