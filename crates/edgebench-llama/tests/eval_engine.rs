//! The engine's eval paths on the real default model: batched shared-prefix decoding gives the
//! same greedy answers as one-at-a-time generation, and log-likelihoods are consistent.

use std::path::{Path, PathBuf};

use edgebench_core::backend::{Backend, GenOptions};
use edgebench_core::backend::{ChatMessage, Sampling};
use edgebench_llama::{EngineConfig, GenerateJob, LlamaTarget, Prompt};

fn test_model() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    edgebench_core::catalog::dev_model(&root).expect("default model")
}

#[tokio::test]
async fn batched_shared_prefix_answers_match_sequential_greedy_answers() {
    let target = LlamaTarget::load(EngineConfig::new(test_model(), 2)).unwrap();
    let system = "You are a bank assistant. Answer in one short sentence.";
    let users: Vec<String> = [
        "How do I reset my card PIN?",
        "What is an overdraft?",
        "My card was stolen, what should I do?",
        "Can I change my address online?",
        "What does APR mean?",
        "How long does a transfer take?",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut sequential = Vec::new();
    for u in &users {
        let g = target
            .engine()
            .generate(GenerateJob {
                prompt: Prompt::Chat(vec![
                    ChatMessage::new("system", system),
                    ChatMessage::new("user", u.as_str()),
                ]),
                max_tokens: 24,
                ignore_eos: false,
                sampling: Sampling::default(),
                stream: None,
            })
            .await
            .unwrap();
        sequential.push(g.text);
    }
    let backend = target.with_parallel(4);
    let opts = GenOptions {
        max_tokens: 24,
        stop: Vec::new(),
        seed: 42,
    };
    let batched: Vec<String> = backend
        .generate_batch(system, &users, &opts)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    // Batched float sums differ in the last bits, so a near-tie can flip a late token: answers
    // must agree for their first 40 characters, and most of them entirely.
    let same = sequential
        .iter()
        .zip(&batched)
        .filter(|(a, b)| a == b)
        .count();
    assert!(same >= 3, "sequential {sequential:?}\nbatched {batched:?}");
    for (a, b) in sequential.iter().zip(&batched) {
        let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
        assert!(common >= 40.min(a.len()), "{a:?} vs {b:?}");
    }
    assert!(batched.iter().all(|b| !b.is_empty()));
    // Stop strings cut the answer.
    let stopped = backend
        .generate_batch(
            system,
            &users[..2],
            &GenOptions {
                stop: vec![" ".into()],
                ..opts
            },
        )
        .await
        .unwrap();
    assert!(stopped.iter().all(|s| !s.as_ref().unwrap().contains(' ')));
}

#[tokio::test]
async fn loglikelihoods_rank_the_obvious_answer_and_add_up_over_tokens() {
    let target = LlamaTarget::load(EngineConfig::new(test_model(), 2)).unwrap();
    let backend = target.with_parallel(4);
    let ctx = "The capital of France is";
    let lps = backend
        .loglikelihoods(
            ctx,
            &[" Paris".into(), " banana".into(), " Paris is a city".into()],
        )
        .await
        .unwrap()
        .unwrap();
    assert!(lps[0] > lps[1], "{lps:?}");
    assert!(lps.iter().all(|l| *l < 0.0 && l.is_finite()));
    // Chain rule: log p(" Paris is a city") = log p(" Paris") + log p(" is a city" | ... Paris).
    let rest = backend
        .loglikelihoods("The capital of France is Paris", &[" is a city".into()])
        .await
        .unwrap()
        .unwrap();
    assert!(
        (lps[2] - (lps[0] + rest[0])).abs() < 0.05,
        "{lps:?} {rest:?}"
    );
}

#[tokio::test]
async fn loglikelihoods_reusing_a_shared_prefix_match_a_fresh_engine() {
    let shots = "Q: What is 2 + 2?\nA: 4\n\nQ: What colour is the sky on a clear day?\nA: blue\n\n\
                 Q: How many legs does a spider have?\nA: 8\n\n";
    let conts: Vec<String> = [" A", " B", " yes", " no"].map(String::from).to_vec();
    let q1 = format!("{shots}Q: Is water wet?\nA:");
    let q2 = format!("{shots}Q: Is fire cold?\nA:");
    let fresh = LlamaTarget::load(EngineConfig::new(test_model(), 2))
        .unwrap()
        .with_parallel(4);
    let want2 = fresh.loglikelihoods(&q2, &conts).await.unwrap().unwrap();
    let want_shots = fresh
        .loglikelihoods(shots.trim_end(), &conts)
        .await
        .unwrap()
        .unwrap();
    let warm = LlamaTarget::load(EngineConfig::new(test_model(), 2))
        .unwrap()
        .with_parallel(4);
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 0.02);
    // q1 leaves the shots in the KV cache; q2 decodes only its own question.
    warm.loglikelihoods(&q1, &conts).await.unwrap().unwrap();
    let got2 = warm.loglikelihoods(&q2, &conts).await.unwrap().unwrap();
    assert!(close(&got2, &want2), "{got2:?} vs {want2:?}");
    // The same context twice, and a context that is a prefix of the cached one.
    let again = warm.loglikelihoods(&q2, &conts).await.unwrap().unwrap();
    assert!(close(&again, &want2), "{again:?} vs {want2:?}");
    let shorter = warm
        .loglikelihoods(shots.trim_end(), &conts)
        .await
        .unwrap()
        .unwrap();
    assert!(
        close(&shorter, &want_shots),
        "{shorter:?} vs {want_shots:?}"
    );
    // A generation in between takes the KV cache; the next call starts over and still agrees.
    warm.generate_batch(
        "",
        &["Say hi.".to_string()],
        &GenOptions {
            max_tokens: 4,
            stop: Vec::new(),
            seed: 1,
        },
    )
    .await
    .unwrap();
    let after = warm.loglikelihoods(&q2, &conts).await.unwrap().unwrap();
    assert!(close(&after, &want2), "{after:?} vs {want2:?}");
    // The answers differ between the questions, so a stale cache would show.
    assert!(!close(
        &got2,
        &warm.loglikelihoods(&q1, &conts).await.unwrap().unwrap()
    ));
}
