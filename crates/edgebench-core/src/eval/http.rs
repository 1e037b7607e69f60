//! Evals over an OpenAI-compatible server: concurrent non-streaming chat completions, and
//! completion log-probabilities for multiple-choice scoring where the server returns them.

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use crate::backend::TargetInfo;
use crate::eval::backend::{BackendError, EvalBackend, GenOptions};

/// An OpenAI-compatible server as an eval backend.
pub struct HttpEvalBackend {
    base_url: String,
    model: String,
    api_key: Option<String>,
    concurrency: usize,
    client: reqwest::Client,
    server_pid: Option<u32>,
}

impl HttpEvalBackend {
    /// A backend with the run's HTTP settings: base URL, model, key, connect and total
    /// timeouts, and the serving process to sample.
    pub fn from_config(
        cfg: &crate::backend::openai::HttpConfig,
        concurrency: usize,
    ) -> Result<Self, BackendError> {
        let client = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.total_timeout)
            .build()
            .map_err(|e| BackendError::Failed(e.to_string()))?;
        Ok(Self {
            base_url: cfg.base_url.trim_end_matches('/').to_string(),
            model: cfg.model.clone(),
            api_key: cfg.api_key.clone(),
            concurrency: concurrency.max(1),
            client,
            server_pid: cfg.server_pid,
        })
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let mut req = self
            .client
            .post(format!("{}/{path}", self.base_url))
            .json(&body);
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| format!("{path}: {e}"))?;
        if !status.is_success() {
            let snippet: String = text.chars().take(200).collect();
            return Err(format!("{path}: HTTP {status}: {snippet}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{path}: bad JSON: {e}"))
    }
}

/// The answer text of a chat completion (reasoning is not the answer).
pub fn chat_answer(v: &Value) -> Option<String> {
    v["choices"][0]["message"]["content"]
        .as_str()
        .map(str::to_string)
}

/// The top log-probabilities of the first generated token, from either the completions format
/// (`logprobs.top_logprobs[0]` as a map) or the chat format (`logprobs.content[0].top_logprobs`).
pub fn first_token_top_logprobs(v: &Value) -> Option<Vec<(String, f64)>> {
    let lp = &v["choices"][0]["logprobs"];
    if let Some(map) = lp["top_logprobs"][0].as_object() {
        return Some(
            map.iter()
                .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
                .collect(),
        );
    }
    let list = lp["content"][0]["top_logprobs"].as_array()?;
    Some(
        list.iter()
            .filter_map(|e| Some((e["token"].as_str()?.to_string(), e["logprob"].as_f64()?)))
            .collect(),
    )
}

#[async_trait]
impl EvalBackend for HttpEvalBackend {
    fn info(&self) -> TargetInfo {
        TargetInfo {
            kind: "http".into(),
            engine: format!("OpenAI-compatible server at {}", self.base_url),
            pid: self.server_pid,
            ..TargetInfo::default()
        }
    }

    async fn generate(
        &self,
        system: &str,
        users: &[String],
        opts: &GenOptions,
    ) -> Result<Vec<Result<String, String>>, BackendError> {
        let results = stream::iter(users.iter().cloned().enumerate())
            .map(|(i, user)| async move {
                let mut messages = Vec::new();
                if !system.is_empty() {
                    messages.push(json!({"role": "system", "content": system}));
                }
                messages.push(json!({"role": "user", "content": user}));
                let mut body = json!({
                    "model": self.model,
                    "messages": messages,
                    "max_tokens": opts.max_tokens,
                    "temperature": 0.0,
                    "top_p": 1.0,
                    "seed": opts.seed,
                    "stream": false,
                });
                if !opts.stop.is_empty() {
                    body["stop"] = json!(opts.stop);
                }
                let r = self
                    .post("chat/completions", body)
                    .await
                    .and_then(|v| chat_answer(&v).ok_or_else(|| "no message content".to_string()))
                    .map(|mut text| {
                        for s in &opts.stop {
                            if let Some(k) = text.find(s.as_str()).filter(|_| !s.is_empty()) {
                                text.truncate(k);
                            }
                        }
                        text
                    });
                (i, r)
            })
            .buffer_unordered(self.concurrency)
            .collect::<Vec<_>>()
            .await;
        let mut out: Vec<Result<String, String>> = vec![Err("not run".into()); users.len()];
        for (i, r) in results {
            out[i] = r;
        }
        Ok(out)
    }

    async fn loglikelihoods(
        &self,
        context: &str,
        continuations: &[String],
    ) -> Result<Option<Vec<f64>>, BackendError> {
        let body = json!({
            "model": self.model,
            "prompt": context,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": 20,
            "n_probs": 20,
            "stream": false,
        });
        let Ok(v) = self.post("completions", body).await else {
            return Ok(None);
        };
        let Some(top) = first_token_top_logprobs(&v) else {
            return Ok(None);
        };
        // Single-token continuations only ("A" and " A" spell the same choice).
        let lps = continuations
            .iter()
            .map(|c| {
                top.iter()
                    .filter(|(t, _)| t.trim() == c.trim())
                    .map(|(_, lp)| *lp)
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect();
        Ok(Some(lps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_logprobs_in_both_formats() {
        let completions =
            json!({"choices": [{"logprobs": {"top_logprobs": [{" A": -0.5, " B": -1.5}]}}]});
        let t = first_token_top_logprobs(&completions).unwrap();
        assert_eq!(t.len(), 2);
        let chat = json!({"choices": [{"logprobs": {"content": [{"token": " C", "logprob": -0.1,
            "top_logprobs": [{"token": " C", "logprob": -0.1}, {"token": " D", "logprob": -2.0}]}]}}]});
        let t = first_token_top_logprobs(&chat).unwrap();
        assert_eq!(t[1], (" D".to_string(), -2.0));
        assert!(first_token_top_logprobs(&json!({"choices": [{}]})).is_none());
    }
}
