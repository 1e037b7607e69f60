//! The OpenAI-compatible client as an eval backend: concurrent non-streaming chat completions
//! (with the run's timeouts and key), and completion log-probabilities for multiple-choice
//! scoring where the server returns them.

use futures_util::stream;

use super::*;
use crate::backend::{cut_at_stop, Backend, BackendError, GenOptions};
use crate::eval::method::{choice_grammar, choice_schema, label_from_schema_answer};

/// How a server keeps an answer to a list of choices: its own mechanism, chosen by what the
/// server says it is (`GET /props`, `/version`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChoiceConstraint {
    /// llama-server: a GBNF `grammar`.
    Grammar,
    /// vLLM: `structured_outputs: {choice}` from 0.10.2, `guided_choice` before.
    VllmChoice { legacy: bool },
    /// LM Studio and Ollama: `response_format` with a JSON schema holding an enum.
    JsonSchema,
    /// TGI: `response_format: {type: "json", value: schema}`.
    TgiJson,
}

impl ChoiceConstraint {
    /// The mechanism for a server reporting `version` (as [`ServerFacts::version`]); `None`
    /// for a server that did not say what it is.
    pub fn for_server(version: Option<&str>) -> Option<Self> {
        let v = version?;
        if v.starts_with("llama-server") {
            Some(Self::Grammar)
        } else if let Some(num) = v.strip_prefix("vLLM ") {
            let parts: Vec<u32> = num
                .split(|c: char| !c.is_ascii_digit())
                .take(3)
                .map(|p| p.parse().unwrap_or(0))
                .collect();
            let at = |i: usize| parts.get(i).copied().unwrap_or(0);
            Some(Self::VllmChoice {
                legacy: (at(0), at(1), at(2)) < (0, 10, 2),
            })
        } else if v.starts_with("LM Studio") || v.starts_with("Ollama") {
            Some(Self::JsonSchema)
        } else if v.starts_with("TGI") {
            Some(Self::TgiJson)
        } else {
            None
        }
    }

    /// The name recorded with the results.
    pub fn name(self) -> &'static str {
        match self {
            Self::Grammar => "llama-server grammar (GBNF)",
            Self::VllmChoice { legacy: false } => "vLLM structured_outputs choice",
            Self::VllmChoice { legacy: true } => "vLLM guided_choice",
            Self::JsonSchema => "response_format JSON schema (enum)",
            Self::TgiJson => "TGI response_format json (enum)",
        }
    }

    /// Adds the constraint to a chat completion request.
    pub fn apply(self, body: &mut Value, choices: &[String]) {
        match self {
            Self::Grammar => body["grammar"] = json!(choice_grammar(choices)),
            Self::VllmChoice { legacy: false } => {
                body["structured_outputs"] = json!({"choice": choices});
            }
            Self::VllmChoice { legacy: true } => body["guided_choice"] = json!(choices),
            Self::JsonSchema => {
                body["response_format"] = json!({"type": "json_schema", "json_schema": {
                    "name": "label", "strict": true, "schema": choice_schema(choices)}});
            }
            Self::TgiJson => {
                body["response_format"] = json!({"type": "json", "value": choice_schema(choices)});
            }
        }
    }

    /// The label in the server's constrained answer.
    pub fn answer(self, text: String) -> String {
        match self {
            Self::Grammar | Self::VllmChoice { .. } => text,
            Self::JsonSchema | Self::TgiJson => label_from_schema_answer(&text),
        }
    }
}

impl OpenAiTarget {
    /// The server's way to constrain answers (asking the server what it is, once).
    async fn choice_constraint(&self) -> Result<ChoiceConstraint, String> {
        let mut version = self.facts.lock().ok().and_then(|g| g.version.clone());
        if version.is_none() {
            version = self.probe().await.version;
        }
        ChoiceConstraint::for_server(version.as_deref()).ok_or_else(|| {
            format!(
                "--answer constrained: the server at {} did not say it is llama-server, vLLM, LM Studio, Ollama or TGI, so its way to constrain answers is unknown (use --answer free)",
                self.cfg.base_url
            )
        })
    }

    /// A non-streaming POST to `{base_url}/{path}` with the total timeout; the JSON answer.
    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let req = self
            .cfg
            .auth(self.client.post(self.cfg.url(path)))
            .timeout(self.cfg.total_timeout)
            .json(&body);
        let resp = req.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = resp.status();
        let text = read_capped(resp, self.cfg.max_response_bytes)
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        if !status.is_success() {
            let snippet: String = text.chars().take(200).collect();
            return Err(format!("{path}: HTTP {status}: {snippet}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{path}: bad JSON: {e}"))
    }
}

/// A response body read to the end, failing as soon as it passes `limit` bytes (so a runaway
/// answer is never held whole).
async fn read_capped(mut resp: reqwest::Response, limit: usize) -> Result<String, String> {
    let mut body: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(format!(
                "the response passed {} bytes (limit {limit}; --max-response-bytes raises it)",
                body.len() + chunk.len()
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
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
impl Backend for OpenAiTarget {
    async fn generate_batch(
        &self,
        system: &str,
        users: &[String],
        opts: &GenOptions,
    ) -> Result<Vec<Result<String, String>>, BackendError> {
        let constraint = if opts.choices.is_empty() {
            None
        } else {
            Some(
                self.choice_constraint()
                    .await
                    .map_err(BackendError::Failed)?,
            )
        };
        let results = stream::iter(users.iter().cloned().enumerate())
            .map(|(i, user)| async move {
                let mut messages = Vec::new();
                if !system.is_empty() {
                    messages.push(json!({"role": "system", "content": system}));
                }
                messages.push(json!({"role": "user", "content": user}));
                let mut body = json!({
                    "model": self.cfg.model,
                    "messages": messages,
                    "max_tokens": opts.max_tokens,
                    "temperature": opts.temperature,
                    "top_p": if opts.temperature > 0.0 { 0.95 } else { 1.0 },
                    "seed": opts.seed_of(i),
                    "stream": false,
                });
                if !opts.stop.is_empty() && constraint.is_none() {
                    body["stop"] = json!(opts.stop);
                }
                if let Some(c) = constraint {
                    c.apply(&mut body, &opts.choices);
                }
                let r = self
                    .post("chat/completions", body)
                    .await
                    .and_then(|v| chat_answer(&v).ok_or_else(|| "no message content".to_string()))
                    .map(|text| match constraint {
                        Some(c) => c.answer(text),
                        None => cut_at_stop(text, &opts.stop),
                    });
                (i, r)
            })
            .buffer_unordered(self.cfg.eval_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        let mut out: Vec<Result<String, String>> = vec![Err("not run".into()); users.len()];
        for (i, r) in results {
            out[i] = r;
        }
        Ok(out)
    }

    async fn constraint(&self) -> Result<String, String> {
        self.choice_constraint().await.map(|c| c.name().to_string())
    }

    async fn loglikelihoods(
        &self,
        context: &str,
        continuations: &[String],
    ) -> Result<Option<Vec<f64>>, BackendError> {
        let body = json!({
            "model": self.cfg.model,
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

    /// Evals go through the run's client: answers in input order with stops cut, the key and
    /// the model sent, a failed item as data, log-likelihoods from `logprobs`, and none when
    /// the server gives none.
    #[tokio::test]
    async fn eval_answers_and_loglikelihoods_over_http() {
        use crate::backend::mock_server::{MockServer, Response};
        let server = MockServer::start(|r| {
            assert_eq!(r.body["model"], "m");
            assert_eq!(r.body["stream"], false);
            let auth = r.headers.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("authorization") && v == "Bearer k"
            });
            assert!(auth, "the key is sent");
            if r.path.ends_with("/completions") && !r.path.ends_with("chat/completions") {
                return Response::json(
                    200,
                    &json!({"choices": [{"logprobs": {"top_logprobs": [{" A": -0.5, " B": -1.5}]}}]}),
                );
            }
            let user = r.body["messages"][1]["content"].as_str().unwrap_or("");
            if user == "fail" {
                return Response::json(500, &json!({"error": "boom"}));
            }
            Response::json(
                200,
                &json!({"choices": [{"message": {"content": format!("{user} answer\nmore")}}]}),
            )
        })
        .await
        .unwrap();
        let mut cfg = HttpConfig::new(server.base_url(), "m");
        cfg.api_key = Some("k".into());
        cfg.eval_concurrency = 2;
        let t = OpenAiTarget::new(cfg).unwrap();
        let users: Vec<String> = ["one", "fail", "three"].map(String::from).to_vec();
        let opts = GenOptions {
            choices: Vec::new(),
            temperature: 0.0,
            max_tokens: 8,
            stop: vec!["\n".into()],
            seed: 1,
        };
        let got = t.generate_batch("sys", &users, &opts).await.unwrap();
        assert_eq!(got[0].as_deref(), Ok("one answer"));
        assert!(got[1].as_ref().is_err_and(|e| e.contains("500")), "{got:?}");
        assert_eq!(got[2].as_deref(), Ok("three answer"));
        let lps = t
            .loglikelihoods("Q?", &[" A".into(), " B".into(), " C".into()])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&lps[..2], &[-0.5, -1.5]);
        assert_eq!(lps[2], f64::NEG_INFINITY);
    }

    #[test]
    fn each_server_gets_its_own_constraint() {
        let c = |v: Option<&str>| ChoiceConstraint::for_server(v);
        assert_eq!(
            c(Some("llama-server b6500")),
            Some(ChoiceConstraint::Grammar)
        );
        assert_eq!(
            c(Some("vLLM 0.11.0")),
            Some(ChoiceConstraint::VllmChoice { legacy: false })
        );
        assert_eq!(
            c(Some("vLLM 0.9.2")),
            Some(ChoiceConstraint::VllmChoice { legacy: true })
        );
        assert_eq!(c(Some("LM Studio")), Some(ChoiceConstraint::JsonSchema));
        assert_eq!(c(Some("Ollama 0.12.1")), Some(ChoiceConstraint::JsonSchema));
        assert_eq!(c(Some("TGI 3.3.0")), Some(ChoiceConstraint::TgiJson));
        assert_eq!(c(Some("server 1.0")), None);
        assert_eq!(c(None), None);
        let labels = vec!["up".to_string(), "down".to_string()];
        let mut b = json!({});
        ChoiceConstraint::VllmChoice { legacy: false }.apply(&mut b, &labels);
        assert_eq!(b["structured_outputs"]["choice"][1], "down");
        let mut b = json!({});
        ChoiceConstraint::JsonSchema.apply(&mut b, &labels);
        assert_eq!(
            b["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"][0],
            "up"
        );
        assert_eq!(
            ChoiceConstraint::JsonSchema.answer(r#"{"label":"down"}"#.into()),
            "down"
        );
    }

    /// A constrained eval asks llama-server with its grammar and no stop; a server that does not
    /// say what it is gets a clear refusal naming its URL.
    #[tokio::test]
    async fn constrained_answers_over_http() {
        use crate::backend::mock_server::{MockServer, Response};
        let server = MockServer::start(|r| {
            if r.path.ends_with("/props") {
                return Response::json(200, &json!({"build_info": "b1"}));
            }
            assert_eq!(r.body["grammar"], "root ::= \"up\" | \"down\"\n");
            assert!(r.body.get("stop").is_none());
            Response::json(200, &json!({"choices": [{"message": {"content": "down"}}]}))
        })
        .await
        .unwrap();
        let t = OpenAiTarget::new(HttpConfig::new(server.base_url(), "m")).unwrap();
        let opts = GenOptions {
            choices: vec!["up".into(), "down".into()],
            temperature: 0.0,
            max_tokens: 8,
            stop: vec!["\n".into()],
            seed: 1,
        };
        assert_eq!(t.constraint().await.unwrap(), "llama-server grammar (GBNF)");
        let got = t.generate_batch("", &["x".into()], &opts).await.unwrap();
        assert_eq!(got[0].as_deref(), Ok("down"));

        let quiet = MockServer::start(|_| Response::json(404, &json!({})))
            .await
            .unwrap();
        let t = OpenAiTarget::new(HttpConfig::new(quiet.base_url(), "m")).unwrap();
        let e = t
            .generate_batch("", &["x".into()], &opts)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(&quiet.base_url()), "{e}");
    }
}
