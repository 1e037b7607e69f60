//! Integration test against a real llama-server (the reference build from
//! `../shared/scripts/peer-llama-tools.sh`, or `$LLAMA_SERVER`) serving the default model:
//! edgebench's client-side TTFT and decode rate agree with the server's own `timings` within 10%.

mod peers;

use peers::{free_port, llama_server};
use std::path::Path;
use std::process::Command;

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b
}

#[test]
fn client_figures_agree_with_llama_server_timings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let Some(server) = llama_server() else {
        return;
    };
    let model = edgebench_core::catalog::dev_model(&root).expect("default model");
    let port = free_port();
    // --no-repack: the reference build uses AMX kernels that fault on VMs advertising AMX.
    let serve = format!(
        "exec {} -m {} -t 2 -c 4096 -np 1 --no-repack --metrics --host 127.0.0.1 --port {port}",
        server.display(),
        model.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edgebench"))
        .env("EDGEBENCH_SETTLE_TIMEOUT", "1")
        .args(["run", "--serve", &serve, "--endpoint"])
        .arg(format!("http://127.0.0.1:{port}/v1"))
        .args([
            "--scenarios",
            "interactive_assistant",
            "--runs",
            "5",
            "--warmup",
            "1",
        ])
        .args([
            "--cooldown",
            "0.2",
            "--log-pattern",
            "prompt eval time",
            "--json",
            "--results",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &v["models"][0];
    assert!(
        m["target"]["launch"]["launch_to_healthy_ms"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(
        m["target"]["launch"]["launch_to_first_token_ms"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let u = &m["units"][0];
    assert_eq!(u["successes"], 5, "{stderr}");
    // What the server said about itself: its build, from GET /props.
    let srv = &m["target"]["server"];
    assert!(
        srv["version"]
            .as_str()
            .unwrap_or("")
            .starts_with("llama-server "),
        "{srv}"
    );
    assert_eq!(srv["version_source"], "GET /props");
    assert_eq!(u["token_count_sources"]["server_usage"], 5, "{u}");
    assert!(
        u["peak_rss_mb"].as_f64().unwrap() > 50.0,
        "server RSS sampled by port"
    );
    // The server's own /metrics over the unit's measured requests (5 of 128 tokens; the
    // warm-up is left out, as in the client's figures).
    let sm = &u["server_metrics"];
    let predicted = sm["llamacpp_predicted_tokens"].as_f64().unwrap_or(0.0);
    assert!((5.0 * 127.0..=5.0 * 129.0).contains(&predicted), "{sm}");
    let server_rate = sm["llamacpp_decode_tokens_per_s"].as_f64().unwrap();
    let client_rate = u["decode_tokens_per_s"]["mean"].as_f64().unwrap();
    assert!(
        rel(client_rate, server_rate) < 0.15,
        "client decode {client_rate} vs /metrics {server_rate} t/s"
    );
    // One timing line per measured request (counts start when the warm-ups are done).
    assert_eq!(u["log_pattern_counts"]["prompt eval time"], 5);

    // Per request: client vs server.
    let file = u["file"].as_str().unwrap();
    let text = std::fs::read_to_string(file).unwrap();
    for line in text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
    {
        if line["warmup"] == true {
            continue;
        }
        let t = &line["engine_timings"];
        assert_eq!(t["source"], "llama-server");
        let prompt_ms = t["prompt_ms"].as_f64().unwrap();
        let server_decode =
            t["decode_tokens"].as_f64().unwrap() / (t["decode_ms"].as_f64().unwrap() / 1e3);
        let ttft = line["metrics"]["ttft_ms"].as_f64().unwrap();
        let decode = line["metrics"]["decode_tokens_per_s"].as_f64().unwrap();
        assert!(
            ttft >= prompt_ms,
            "TTFT {ttft} < server prompt time {prompt_ms}"
        );
        assert!(
            rel(ttft, prompt_ms) < 0.10,
            "TTFT {ttft} ms vs server prompt {prompt_ms} ms"
        );
        assert!(
            rel(decode, server_decode) < 0.10,
            "decode {decode} vs server {server_decode} t/s"
        );
        assert_eq!(line["token_count_source"], "server_usage");
        assert_eq!(line["output_tokens"], 128);
    }
}

/// A llama-server process, killed when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// POSTs `body` to the server's `path`; the JSON answer.
async fn post(
    http: &reqwest::Client,
    port: u16,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let resp = http
        .post(format!("http://127.0.0.1:{port}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status}: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn tokenize(http: &reqwest::Client, port: u16, text: &str, special: bool) -> Vec<i64> {
    let v = post(
        http,
        port,
        "/tokenize",
        serde_json::json!({"content": text, "add_special": special, "parse_special": true}),
    )
    .await;
    v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect()
}

/// The log-likelihood of `continuation` after `context` as llama-server computes it: the
/// continuation's tokens (the whole text's tokens after the context's, as lm-evaluation-harness
/// takes them), each forced in turn with a logit bias, and the server's own log-probability of
/// each (`n_probs` with `post_sampling_probs: false`: a softmax over the raw logits) summed.
async fn server_loglik(
    http: &reqwest::Client,
    port: u16,
    context: &str,
    continuation: &str,
) -> (f64, usize) {
    let ctx = tokenize(http, port, context, true).await;
    let whole = tokenize(http, port, &format!("{context}{continuation}"), true).await;
    let cont: Vec<i64> = if whole.len() > ctx.len() && whole[..ctx.len()] == ctx[..] {
        whole[ctx.len()..].to_vec()
    } else {
        tokenize(http, port, continuation, false).await
    };
    let mut sum = 0.0;
    for (i, &t) in cont.iter().enumerate() {
        let mut prompt = ctx.clone();
        prompt.extend_from_slice(&cont[..i]);
        let v = post(
            http,
            port,
            "/completion",
            serde_json::json!({
                "prompt": prompt, "n_predict": 1, "n_probs": 1, "post_sampling_probs": false,
                "temperature": 0.0, "logit_bias": [[t, 1000.0]], "cache_prompt": true,
            }),
        )
        .await;
        let p = &v["completion_probabilities"][0];
        assert_eq!(p["id"].as_i64(), Some(t), "the forced token came out: {v}");
        sum += p["logprob"].as_f64().unwrap();
    }
    (sum, cont.len())
}

/// edgebench's log-likelihood of a continuation (the embedded engine, the number `--answer
/// loglik` and MMLU rank by) equals the reference llama-server's own token log-probabilities
/// summed, within 1e-3 nats, on the same GGUF: after a leading space, mid-word, over several
/// tokens, and after a chat template.
///
/// The server normalises its probabilities with a float32 sum over the vocabulary, which reads
/// about 1.5e-4 nats high per token (summing in float32 as it does, edgebench's figures match
/// it to 1e-5); edgebench sums in float64. So a continuation of more than five tokens may
/// differ by up to 2e-4 nats per token, and no more.
#[tokio::test]
async fn loglikelihoods_agree_with_llama_server_token_logprobs() {
    use edgebench_core::backend::{Backend, ChatMessage};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let Some(server) = llama_server() else {
        return;
    };
    let model = edgebench_core::catalog::dev_model(&root).expect("default model");
    let port = free_port();
    let child = Command::new(&server)
        .args(["-m"])
        .arg(&model)
        .args([
            "-t",
            "2",
            "-c",
            "2048",
            "-np",
            "1",
            "--no-repack",
            "--host",
            "127.0.0.1",
        ])
        .args(["--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _server = Server(child);
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let ok = http
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "llama-server not healthy"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    let target =
        edgebench_llama::LlamaTarget::load(edgebench_llama::EngineConfig::new(&model, 2)).unwrap();
    let chat = target
        .engine()
        .render_chat(vec![
            ChatMessage::new("system", "Classify the customer message by intent."),
            ChatMessage::new("user", "My new card has still not arrived."),
        ])
        .await
        .unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("leading space", "The capital of France is".into(), " Paris"),
        ("mid-word", "The capital of France is Par".into(), "is"),
        (
            "several tokens",
            "Question: How many legs does a spider have?\nAnswer:".into(),
            " Eight legs, like every arachnid.",
        ),
        ("after a chat template", chat.clone(), "card_arrival"),
        ("after a chat template, unlikely", chat, "exchange_rate"),
    ];
    for (what, context, cont) in &cases {
        let ours = target
            .loglikelihoods(context, &[cont.to_string()])
            .await
            .unwrap()
            .expect("the engine scores")[0];
        let (theirs, tokens) = server_loglik(&http, port, context, cont).await;
        eprintln!("{what}: edgebench {ours:.5}, llama-server {theirs:.5} ({tokens} tokens)");
        let tolerance = (2e-4 * tokens as f64).max(1e-3);
        assert!(
            (ours - theirs).abs() < tolerance,
            "{what} ({context:?} + {cont:?}): edgebench {ours} vs llama-server {theirs}"
        );
    }
}
