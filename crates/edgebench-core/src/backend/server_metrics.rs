//! A server's own Prometheus `/metrics` (vLLM, llama-server with `--metrics`, TGI), scraped before
//! and after each unit so its counters can be set beside the client-side figures.
//!
//! The text format is parsed here: the Prometheus parsers on crates.io reject the `vllm:` and
//! `llamacpp:` metric names (colons are legal in the format) and so read nothing from these servers.

use std::collections::BTreeMap;

/// Parses the Prometheus text format into `name -> value`, summing the label sets of a name
/// (`vllm:prompt_tokens_total{model_name="a"}` and `{model_name="b"}` add up). Histogram buckets
/// are left out (their `_sum` and `_count` are kept).
pub fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ', '\t']) {
            Some(i) => (&line[..i], &line[i..]),
            None => continue,
        };
        if name.ends_with("_bucket") || !valid_name(name) {
            continue;
        }
        // Skip the labels (quoted values may hold '}' or spaces).
        let rest = if rest.starts_with('{') {
            match end_of_labels(rest) {
                Some(i) => &rest[i + 1..],
                None => continue,
            }
        } else {
            rest
        };
        let Some(value) = rest.split_whitespace().next().and_then(parse_value) else {
            continue;
        };
        if value.is_finite() {
            *out.entry(name.to_string()).or_insert(0.0) += value;
        }
    }
    out
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The index of the `}` closing a label set that starts at 0.
fn end_of_labels(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Whether a metric only ever grows (counters, histogram sums and counts).
fn cumulative(name: &str) -> bool {
    name.ends_with("_total") || name.ends_with("_sum") || name.ends_with("_count")
}

/// What the server counted during a unit: the growth of every cumulative metric (a counter that
/// went down means the server restarted, and its `after` value is the growth), and the gauges as
/// they were at the end.
pub fn delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, &a)| {
            let v = match before.get(k) {
                Some(&b) if cumulative(k) && a >= b => a - b,
                _ => a,
            };
            (k.clone(), v)
        })
        .collect()
}

/// Figures with units derived from a unit's deltas, for the servers whose metric names are known.
pub fn derive(d: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let get = |k: &str| d.get(k).copied();
    let ratio = |num: Option<f64>, den: Option<f64>| match (num, den) {
        (Some(n), Some(d)) if d > 0.0 => Some(n / d),
        _ => None,
    };
    let mut put = |k: &str, v: Option<f64>| {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            out.insert(k.to_string(), v);
        }
    };
    // vLLM.
    put("vllm_prompt_tokens", get("vllm:prompt_tokens_total"));
    put(
        "vllm_generation_tokens",
        get("vllm:generation_tokens_total"),
    );
    for (name, metric) in [
        ("vllm_mean_ttft_ms", "vllm:time_to_first_token_seconds"),
        ("vllm_mean_tpot_ms", "vllm:time_per_output_token_seconds"),
        ("vllm_mean_e2e_ms", "vllm:e2e_request_latency_seconds"),
        ("vllm_mean_queue_ms", "vllm:request_queue_time_seconds"),
    ] {
        put(
            name,
            ratio(
                get(&format!("{metric}_sum")),
                get(&format!("{metric}_count")),
            )
            .map(|s| s * 1e3),
        );
    }
    put(
        "vllm_gpu_cache_usage_percent",
        get("vllm:gpu_cache_usage_perc")
            .or(get("vllm:kv_cache_usage_perc"))
            .map(|f| f * 100.0),
    );
    put("vllm_preemptions", get("vllm:num_preemptions_total"));
    // llama-server (--metrics).
    put(
        "llamacpp_prompt_tokens",
        get("llamacpp:prompt_tokens_total"),
    );
    put(
        "llamacpp_predicted_tokens",
        get("llamacpp:tokens_predicted_total"),
    );
    put(
        "llamacpp_prefill_tokens_per_s",
        ratio(
            get("llamacpp:prompt_tokens_total"),
            get("llamacpp:prompt_seconds_total"),
        ),
    );
    put(
        "llamacpp_decode_tokens_per_s",
        ratio(
            get("llamacpp:tokens_predicted_total"),
            get("llamacpp:tokens_predicted_seconds_total"),
        ),
    );
    // TGI.
    put(
        "tgi_generated_tokens",
        get("tgi_request_generated_tokens_sum"),
    );
    put(
        "tgi_mean_queue_ms",
        ratio(
            get("tgi_request_queue_duration_sum"),
            get("tgi_request_queue_duration_count"),
        )
        .map(|s| s * 1e3),
    );
    out
}

/// The `/metrics` address of an OpenAI-compatible base URL (`http://h:8000/v1` -> `http://h:8000/metrics`).
pub fn metrics_url(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    let root = base.strip_suffix("/v1").unwrap_or(base);
    format!("{root}/metrics")
}

/// Scrapes one server's `/metrics`.
#[derive(Debug, Clone)]
pub struct Scraper {
    client: reqwest::Client,
    url: String,
}

impl Scraper {
    /// A scraper for the server behind an OpenAI-compatible base URL.
    pub fn new(base_url: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            url: metrics_url(base_url),
        }
    }

    /// The metrics now; `None` when the server has none there (or is not answering).
    pub async fn scrape(&self) -> Option<BTreeMap<String, f64>> {
        let resp = self
            .client
            .get(&self.url)
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let text = resp.text().await.ok()?;
        let m = parse(&text);
        (!m.is_empty()).then_some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VLLM: &str = r#"# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{model_name="m"} 1200.0
vllm:prompt_tokens_total{model_name="n"} 300.0
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{model_name="m"} 512.0
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="m"} 3.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 4.0
vllm:time_to_first_token_seconds_sum{model_name="m"} 0.5
vllm:time_to_first_token_seconds_count{model_name="m"} 4.0
vllm:gpu_cache_usage_perc{model_name="m, \"quoted} name"} 0.25
vllm:weird NaN
broken line
"#;

    #[test]
    fn parses_colon_names_sums_label_sets_and_skips_buckets() {
        let m = parse(VLLM);
        assert_eq!(m["vllm:prompt_tokens_total"], 1500.0);
        assert_eq!(m["vllm:time_to_first_token_seconds_count"], 4.0);
        assert_eq!(m["vllm:gpu_cache_usage_perc"], 0.25);
        assert!(!m.keys().any(|k| k.ends_with("_bucket")));
        assert!(!m.contains_key("vllm:weird") && !m.contains_key("broken"));
    }

    #[test]
    fn deltas_and_derived_figures_carry_units() {
        let before = parse(VLLM);
        let after = parse(
            &VLLM
                .replace("1200.0", "2200.0")
                .replace("} 512.0", "} 768.0")
                .replace("_sum{model_name=\"m\"} 0.5", "_sum{model_name=\"m\"} 1.7")
                .replace(
                    "_count{model_name=\"m\"} 4.0",
                    "_count{model_name=\"m\"} 8.0",
                ),
        );
        let d = delta(&before, &after);
        assert_eq!(d["vllm:prompt_tokens_total"], 1000.0);
        // A gauge is its value at the end.
        assert_eq!(d["vllm:gpu_cache_usage_perc"], 0.25);
        let f = derive(&d);
        assert_eq!(f["vllm_prompt_tokens"], 1000.0);
        assert_eq!(f["vllm_generation_tokens"], 256.0);
        assert!((f["vllm_mean_ttft_ms"] - 300.0).abs() < 1e-9);
        assert_eq!(f["vllm_gpu_cache_usage_percent"], 25.0);
        // A restarted server: the counter went down, the new value is the growth.
        let d = delta(&after, &before);
        assert_eq!(d["vllm:prompt_tokens_total"], 1500.0);
    }

    #[test]
    fn llama_server_rates_and_urls() {
        let d = parse(
            "llamacpp:prompt_tokens_total 700\nllamacpp:prompt_seconds_total 2\n\
             llamacpp:tokens_predicted_total 128\nllamacpp:tokens_predicted_seconds_total 1.0\n",
        );
        let f = derive(&d);
        assert_eq!(f["llamacpp_prefill_tokens_per_s"], 350.0);
        assert_eq!(f["llamacpp_decode_tokens_per_s"], 128.0);
        assert_eq!(metrics_url("http://h:8000/v1/"), "http://h:8000/metrics");
        assert_eq!(metrics_url("http://h:8080"), "http://h:8080/metrics");
    }
}
