//! Which models an experiment runs and where: an endpoint's models checked against what it
//! serves, the mock's model, and opening the backend of one model.

use std::time::Duration;

use super::{BackendSpec, CancelFlag, EngineLoader, Event, EventSink, ExperimentError};
use crate::backend::mock::MockTarget;
use crate::backend::openai::{HttpConfig, OpenAiTarget};
use crate::backend::{Backend, TargetInfo};
use crate::catalog::{self, ModelInfo};
use crate::monitor;

/// The port of a local base URL (`http://localhost:1234/v1` -> 1234), when the host is local.
pub fn local_port(base: &str) -> Option<u16> {
    let rest = base.split_once("://")?.1;
    let host_port = rest.split('/').next()?;
    let (host, port) = host_port.rsplit_once(':')?;
    matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "0.0.0.0")
        .then(|| port.parse().ok())
        .flatten()
}

/// `template` for model `id`, with the serving process found when the server is local and no
/// pid was given.
pub fn http_config_for(template: &HttpConfig, id: &str) -> HttpConfig {
    let mut cfg = template.clone();
    cfg.model = id.to_string();
    if cfg.server_pid.is_none() {
        cfg.server_pid = local_port(&cfg.base_url).and_then(monitor::pid_listening_on);
    }
    cfg
}

/// The facts of the mock target's model.
pub fn mock_model() -> ModelInfo {
    let (mut m, _) = catalog::model_info_from_id("edgebench/mock", "mock");
    m.format = "mock".into();
    m.quantization = "none".into();
    m
}

/// Asks the server at `template.base_url` what it serves, checks the requested model ids
/// against it (none: the one it serves, or the first), and warns about what cannot be
/// confirmed (LM Studio serves GGUF and MLX under one id).
pub async fn http_models(
    template: &HttpConfig,
    requested: &[String],
    events: &dyn EventSink,
) -> Result<Vec<(ModelInfo, HttpConfig)>, ExperimentError> {
    let base = template.base_url.clone();
    let warn = |s: String| events.event(Event::Warning(s));
    let probe = OpenAiTarget::new(http_config_for(template, ""))?;
    let listed = probe
        .list_models()
        .await
        .map_err(|e| ExperimentError::Plan(format!("endpoint {base} is not answering: {e}")))?;
    let ids: Vec<String> = if requested.is_empty() {
        match listed.as_slice() {
            [] => {
                return Err(ExperimentError::Plan(format!(
                    "endpoint {base} lists no models; name one with --models"
                )))
            }
            [one] => vec![one.clone()],
            many => {
                warn(format!(
                    "{base} serves {} models ({}); benchmarking the first, {} (choose with --models)",
                    many.len(),
                    many.join(", "),
                    many[0]
                ));
                vec![many[0].clone()]
            }
        }
    } else {
        requested.to_vec()
    };
    let expanded = catalog::servers::expand(&ids);
    // LM Studio serves one build of an id at a time: two configurations of one id cannot run
    // in one plan.
    for (i, (id, e)) in expanded.iter().enumerate() {
        if let (Some(e), Some((_, Some(other)))) = (
            e,
            expanded[..i].iter().find(|(o, oe)| o == id && oe.is_some()),
        ) {
            return Err(ExperimentError::Plan(format!(
                "models: {} and {} are both {id} on the server, which serves one build at a time; load one build and run its key, then the other",
                other.key, e.key
            )));
        }
    }
    let mut out = Vec::new();
    for (id, entry) in expanded {
        if !listed.is_empty() && !listed.contains(&id) {
            warn(format!(
                "{base} does not list model {id:?} (it lists: {}); the server may answer with another model",
                listed.join(", ")
            ));
        }
        let (mut info, mut unconfirmed) = catalog::model_info_from_id(&id, &base);
        if let Some(e) = &entry {
            // The configuration names the build; the server is asked below whether it is the
            // one loaded.
            info.key = Some(e.key.clone());
            info.format.clone_from(&e.format);
            info.quantization.clone_from(&e.quantization);
            info.context_length = e.context_length;
            info.license.clone_from(&e.license);
            unconfirmed.clear();
            events.event(Event::Info(format!(
                "{}: make sure model {id} is loaded as {} {} (LM Studio serves both builds under one id)",
                e.key, e.format, e.quantization
            )));
        }
        let cfg = http_config_for(template, &id);
        // LM Studio tells format and quantization of its models; other servers do not.
        let target = OpenAiTarget::new(cfg.clone())?;
        let facts = target.probe().await;
        if let Some(e) = &entry {
            catalog::servers::check_build(
                e,
                facts.format.as_deref(),
                facts.quantization.as_deref(),
            )
            .map_err(ExperimentError::Plan)?;
        }
        // The pre-flight of the bank study: the model answers one short completion before any
        // warm-up is sent (LM Studio loads on demand, and a wrong id fails here, not mid-run).
        let lm_studio = facts.version.as_deref() == Some("LM Studio");
        if entry.is_some() || lm_studio {
            let t = target
                .ping(template.first_token_timeout.max(Duration::from_secs(30)))
                .await
                .map_err(|e| {
                    ExperimentError::Plan(format!("model {id} at {base} is not responding: {e}"))
                })?;
            events.event(Event::Info(format!(
                "[check] model {id} is responding ({:.0} ms)",
                t.as_secs_f64() * 1e3
            )));
        }
        if let (Some(f), None) = (&facts.format, &entry) {
            info.format.clone_from(f);
            unconfirmed.retain(|u| *u != "format");
        }
        if let (Some(q), None) = (&facts.quantization, &entry) {
            info.quantization.clone_from(q);
            unconfirmed.retain(|u| *u != "quantization");
        }
        if facts.loaded == Some(false) {
            warn(format!(
                "{base} reports model {id:?} as not loaded; the first requests include its load time"
            ));
        }
        if !unconfirmed.is_empty() {
            warn(format!(
                "the {} of model {id:?} cannot be confirmed from the server; results are labelled \"unknown\" (LM Studio serves GGUF and MLX builds under one id)",
                unconfirmed.join(" and ")
            ));
        }
        out.push((info, cfg));
    }
    Ok(out)
}

/// What the target will say about itself before it is opened (for the config hash).
pub fn planned_info(spec: &BackendSpec, engine: &dyn EngineLoader) -> TargetInfo {
    match spec {
        BackendSpec::Embedded(e) => TargetInfo {
            kind: "embedded".into(),
            engine: engine.engine_name(),
            threads: Some(e.threads),
            ..TargetInfo::default()
        },
        BackendSpec::Http(c) => TargetInfo {
            kind: "http".into(),
            engine: format!("OpenAI-compatible server at {}", c.base_url),
            ..TargetInfo::default()
        },
        BackendSpec::Mock => TargetInfo {
            kind: "mock".into(),
            engine: "mock".into(),
            ..TargetInfo::default()
        },
    }
}

/// Opens the backend `spec` of `model` for generation.
pub async fn open_target(
    model: &ModelInfo,
    spec: &BackendSpec,
    engine: &dyn EngineLoader,
    cancel: &CancelFlag,
    events: &dyn EventSink,
) -> Result<Box<dyn Backend>, ExperimentError> {
    match spec {
        BackendSpec::Embedded(e) => {
            events.event(Event::Info(format!(
                "loading {} ({} {}, {} threads)",
                model.name, model.format, model.quantization, e.threads
            )));
            engine
                .load(model, e, cancel)
                .await
                .map_err(ExperimentError::Engine)
        }
        BackendSpec::Http(cfg) => {
            let t = OpenAiTarget::new((**cfg).clone())?;
            let facts = t.probe().await;
            if let (Some(v), Some(src)) = (&facts.version, &facts.version_source) {
                events.event(Event::Info(format!("server: {v} ({src})")));
            }
            Ok(Box::new(t))
        }
        BackendSpec::Mock => Ok(Box::new(MockTarget {
            ttft: Duration::from_millis(3),
            itl: Duration::from_millis(1),
            ..MockTarget::default()
        })),
    }
}

/// Whether a model id a server answered with names the requested one (llama-server and
/// Ollama may answer with a path or a tag where the request named a file or a bare name).
pub fn same_model(answered: &str, requested: &str) -> bool {
    let norm = |s: &str| {
        let s = s.rsplit('/').next().unwrap_or(s).to_ascii_lowercase();
        s.strip_suffix(".gguf")
            .or_else(|| s.strip_suffix(":latest"))
            .map_or(s.clone(), str::to_string)
    };
    requested.is_empty() || norm(answered) == norm(requested)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_ports_of_base_urls() {
        assert_eq!(local_port("http://localhost:1234/v1"), Some(1234));
        assert_eq!(local_port("http://127.0.0.1:8080/v1"), Some(8080));
        assert_eq!(local_port("http://gpu-box:8000/v1"), None);
        assert_eq!(local_port("http://localhost/v1"), None);
    }

    #[test]
    fn answered_model_ids_match_requested_files_and_tags() {
        assert!(same_model("/models/smollm2.gguf", "smollm2.gguf"));
        assert!(same_model("llama3:latest", "llama3"));
        assert!(same_model("anything", ""));
        assert!(!same_model("other", "smollm2"));
    }
}
