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
        choices: Vec::new(),
        temperature: 0.0,
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
                choices: Vec::new(),
                temperature: 0.0,
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
            choices: Vec::new(),
            temperature: 0.0,
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

/// Continuations that share leading tokens are decoded once, in every sequence that passes
/// through them: scored together they equal each scored on its own.
#[tokio::test]
async fn loglikelihoods_of_labels_sharing_tokens_match_one_at_a_time() {
    let backend = LlamaTarget::load(EngineConfig::new(test_model(), 2))
        .unwrap()
        .with_parallel(4);
    let ctx = "Customer: my card has not arrived yet.\nIntent:";
    let labels: Vec<String> = [
        " card_arrival",
        " card_linking",
        " card_payment_fee_charged",
        " card_arrival_late",
        " cash_withdrawal_charge",
        " x",
    ]
    .map(String::from)
    .to_vec();
    let together = backend.loglikelihoods(ctx, &labels).await.unwrap().unwrap();
    for (l, want) in labels.iter().zip(&together) {
        let alone = backend
            .loglikelihoods(ctx, std::slice::from_ref(l))
            .await
            .unwrap()
            .unwrap()[0];
        assert!((alone - want).abs() < 1e-3, "{l}: {alone} alone vs {want}");
    }
    assert!(together[0] > together[4], "{together:?}");
}

/// `--answer constrained` gives only labels (the grammar), and on Financial PhraseBank, whose
/// labels differ in their first token, it mostly agrees with `--answer loglik`.
#[tokio::test]
async fn constrained_answers_are_labels_and_agree_with_loglik() {
    use edgebench_core::eval::method::AnswerMode;
    use edgebench_core::eval::tasks::{run_task, Sink};
    use edgebench_core::eval::TaskOptions;
    let backend = LlamaTarget::load(EngineConfig::new(test_model(), 2))
        .unwrap()
        .with_parallel(8);
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
    let run = |answer: AnswerMode| {
        let backend = &backend;
        let data = data.clone();
        async move {
            let opts = TaskOptions {
                sample_size: Some(60),
                data_dir: Some(data),
                answer,
                ..TaskOptions::default()
            };
            let mut commit = |_: &[edgebench_core::eval::ItemResult]| Ok(());
            let mut sink = Sink {
                commit: &mut commit,
                progress: &|_, _| {},
                cancelled: &|| false,
            };
            run_task(
                "financial_phrasebank",
                backend,
                &opts,
                &Default::default(),
                &mut sink,
            )
            .await
            .unwrap()
        }
    };
    let constrained = run(AnswerMode::Constrained).await;
    let loglik = run(AnswerMode::Loglik).await;
    assert_eq!(constrained.method, "generate-constrained");
    assert_eq!(
        constrained.options["constraint"],
        "llama.cpp grammar sampler"
    );
    assert_eq!(loglik.method, "loglikelihood");
    assert_eq!(constrained.items.len(), 60);
    for i in &constrained.items {
        let p = i
            .predicted
            .as_deref()
            .expect("every constrained answer is a label");
        assert!(["positive", "negative", "neutral"].contains(&p), "{i:?}");
        assert_eq!(i.answer, p);
    }
    let agree = constrained
        .items
        .iter()
        .zip(&loglik.items)
        .filter(|(c, l)| {
            assert_eq!(c.id, l.id);
            c.predicted == l.predicted
        })
        .count();
    let rate = agree as f64 / 60.0;
    eprintln!("constrained and loglik answers agree on {agree} of 60 items ({rate:.2})");
    assert!(rate >= 0.8, "agreement {rate}");
}

/// Sampled answers (pass@k): the i-th prompt of a batch is seeded with seed + i, so the same
/// prompt twice gets two different answers, and the batch again gets the same two.
#[tokio::test]
async fn sampled_answers_differ_by_seed_and_repeat_with_it() {
    let backend = LlamaTarget::load(EngineConfig::new(test_model(), 2))
        .unwrap()
        .with_parallel(4);
    let users = vec!["Write a short poem about the sea.".to_string(); 2];
    let opts = GenOptions {
        choices: Vec::new(),
        temperature: 1.0,
        max_tokens: 24,
        stop: Vec::new(),
        seed: 7,
    };
    let run = || async {
        backend
            .generate_batch("", &users, &opts)
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect::<Vec<String>>()
    };
    let a = run().await;
    let b = run().await;
    assert_ne!(a[0], a[1], "two seeds, two answers");
    assert_eq!(a, b, "same seeds, same answers");
}
