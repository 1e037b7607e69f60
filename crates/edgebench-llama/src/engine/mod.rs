//! The engine thread: loads the model, applies the chat template, prefills, samples and streams
//! tokens with their arrival times, and reads llama.cpp's own timings.

mod worker;

use worker::{Worker, CTX_STEP};

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use edgebench_core::backend::{ChatMessage, Sampling};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::{mpsc as tmpsc, oneshot};

/// The engine's name and the llama.cpp binding it is built on.
pub const ENGINE_NAME: &str = "llama.cpp (llama-cpp-2 0.1.160, llama-cpp-sys-2 0.1.161)";

/// Why the engine failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("llama.cpp backend: {0}")]
    Backend(String),
    #[error("cannot load model {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("cannot create a llama.cpp context: {0}")]
    Context(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("prompt of {prompt_tokens} tokens plus {max_tokens} output tokens exceeds the {n_ctx}-token context")]
    ContextOverflow {
        prompt_tokens: usize,
        max_tokens: u32,
        n_ctx: u32,
    },
    #[error("empty prompt")]
    EmptyPrompt,
    #[error("llama.cpp decode failed: {0}")]
    Decode(String),
    #[error("grammar: {0}")]
    Grammar(String),
    #[error("the engine thread has stopped")]
    Stopped,
}

/// How to load the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub model_path: PathBuf,
    /// Threads for decoding (llama.cpp's own default of 4 is wrong on most machines).
    pub threads: u32,
    /// Threads for prompt processing.
    pub threads_batch: u32,
    /// A fixed context window. Default (`None`): sized to each request like llama-bench does,
    /// the prompt plus its output tokens rounded up to 256, at most the training context.
    pub n_ctx: Option<u32>,
    /// Logical batch size (llama-bench's default, 2048).
    pub n_batch: u32,
    /// Physical batch size (llama-bench's default, 512).
    pub n_ubatch: u32,
    /// Layers to offload to a GPU backend (0 on CPU-only builds).
    pub n_gpu_layers: u32,
    /// Let llama.cpp print its logs to stderr.
    pub verbose: bool,
    /// Checked after every token: set it to stop a generation early.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl EngineConfig {
    /// Defaults for a model path with `threads` threads.
    pub fn new(model_path: impl Into<PathBuf>, threads: u32) -> Self {
        Self {
            model_path: model_path.into(),
            threads,
            threads_batch: threads,
            n_ctx: None,
            n_batch: 2048,
            n_ubatch: 512,
            n_gpu_layers: 0,
            verbose: false,
            cancel: None,
        }
    }
}

/// Facts about the loaded engine.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    pub model_load_ms: f64,
    /// The largest context the engine will create: the fixed `n_ctx`, else the training context.
    pub n_ctx: u32,
    pub n_ctx_train: u32,
    pub threads: u32,
    pub n_params: u64,
    pub has_chat_template: bool,
    /// llama.cpp's system info line (the SIMD features the build uses).
    pub system_info: String,
}

/// What to feed the model.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// Chat messages, rendered with the model's chat template.
    Chat(Vec<ChatMessage>),
    /// Token ids, sent as they are (for benchmarks of exact lengths).
    Tokens(Vec<i32>),
}

/// A token as it arrives, for callers that stream.
#[derive(Debug, Clone)]
pub struct StreamedToken {
    pub at: Instant,
    pub text: String,
}

/// One generation request.
#[derive(Debug, Clone)]
pub struct GenerateJob {
    pub prompt: Prompt,
    pub max_tokens: u32,
    /// Keep generating past end-of-generation tokens until `max_tokens`.
    pub ignore_eos: bool,
    pub sampling: Sampling,
    /// Receives every token as it is sampled (optional; costs a wake-up per token).
    pub stream: Option<tmpsc::UnboundedSender<StreamedToken>>,
}

/// The outcome of a generation.
#[derive(Debug, Clone)]
pub struct Generation {
    /// When the engine thread took the job.
    pub started: Instant,
    pub prompt_tokens: usize,
    /// Arrival time of every output token (the moment it was sampled).
    pub token_times: Vec<Instant>,
    pub text: String,
    /// True when an end-of-generation token stopped it.
    pub stopped: bool,
    /// True when the cancel flag stopped it.
    pub cancelled: bool,
    /// llama.cpp's own prompt-eval time (ms) and tokens, decode time (ms) and tokens.
    pub prompt_eval_ms: f64,
    pub prompt_eval_tokens: u64,
    pub decode_ms: f64,
    pub decode_tokens: u64,
}

enum Command {
    Reserve(u32, oneshot::Sender<Result<u32, EngineError>>),
    Generate(
        GenerateJob,
        oneshot::Sender<Result<Generation, EngineError>>,
    ),
    CountTokens(Prompt, oneshot::Sender<Result<usize, EngineError>>),
    Render(
        Vec<ChatMessage>,
        oneshot::Sender<Result<String, EngineError>>,
    ),
    Shared(
        SharedPrefixJob,
        oneshot::Sender<Result<Vec<String>, EngineError>>,
    ),
    LogLikelihood(
        String,
        Vec<String>,
        oneshot::Sender<Result<Vec<f64>, EngineError>>,
    ),
    Tokenize(String, oneshot::Sender<Result<Vec<i32>, EngineError>>),
}

/// Many greedy generations that share a prompt prefix (evals): the prefix is decoded once and its
/// KV cache shared by up to `parallel` sequences decoded together in each llama.cpp batch.
#[derive(Debug, Clone)]
pub struct SharedPrefixJob {
    /// Rendered text every prompt starts with (special tokens are parsed; BOS is added).
    pub prefix: String,
    /// The rest of each prompt, rendered.
    pub suffixes: Vec<String>,
    pub max_tokens: u32,
    /// Stop a generation when its text contains one of these.
    pub stop: Vec<String>,
    /// Sequences decoded together.
    pub parallel: usize,
    /// When not empty, every answer is one of these: llama.cpp's grammar sampler keeps each
    /// sequence to them, and an answer ends as soon as only one choice is left.
    pub choices: Vec<String>,
    /// 0: greedy. Above 0: sampled with top-p 0.95, the i-th suffix seeded with `seed + i`.
    pub temperature: f32,
    pub seed: u64,
}

/// A loaded model on its own thread. Dropping it stops the thread and frees the model.
pub struct Engine {
    tx: Option<mpsc::Sender<Command>>,
    info: EngineInfo,
    thread: Option<JoinHandle<()>>,
}

static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

pub(crate) fn backend(verbose: bool) -> Result<&'static LlamaBackend, EngineError> {
    BACKEND
        .get_or_init(|| {
            let mut b = LlamaBackend::init().map_err(|e| e.to_string())?;
            if !verbose {
                b.void_logs();
            }
            Ok(b)
        })
        .as_ref()
        .map_err(|e| EngineError::Backend(e.clone()))
}

/// llama.cpp's system info line: the backends and CPU features this build uses.
pub fn system_info() -> String {
    // SAFETY: llama_print_system_info returns a pointer to a static, NUL-terminated buffer.
    let p = unsafe { llama_cpp_sys_2::llama_print_system_info() };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null pointer to a NUL-terminated string owned by llama.cpp.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .trim()
        .to_string()
}

impl Engine {
    /// Loads the model on a new engine thread and waits until it is ready.
    pub fn load(config: EngineConfig) -> Result<Self, EngineError> {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("edgebench-llama".into())
            .spawn(move || engine_main(config, rx, ready_tx))
            .map_err(|e| EngineError::Backend(e.to_string()))?;
        let info = ready_rx.recv().map_err(|_| EngineError::Stopped)??;
        Ok(Self {
            tx: Some(tx),
            info,
            thread: Some(thread),
        })
    }

    /// Facts about the loaded model and context.
    pub fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Command,
    ) -> Result<oneshot::Receiver<Result<T, EngineError>>, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .as_ref()
            .ok_or(EngineError::Stopped)?
            .send(make(tx))
            .map_err(|_| EngineError::Stopped)?;
        Ok(rx)
    }

    /// Sizes the context for requests of up to `tokens` tokens (prompt plus output), rounded up to
    /// 256; returns the context size. A fixed `n_ctx` is kept as it is.
    pub async fn reserve_context(&self, tokens: u32) -> Result<u32, EngineError> {
        self.send(|tx| Command::Reserve(tokens, tx))?
            .await
            .map_err(|_| EngineError::Stopped)?
    }

    /// Runs one generation.
    pub async fn generate(&self, job: GenerateJob) -> Result<Generation, EngineError> {
        self.send(|tx| Command::Generate(job, tx))?
            .await
            .map_err(|_| EngineError::Stopped)?
    }

    /// Tokens the prompt takes once rendered (chat template and special tokens included).
    pub async fn count_tokens(&self, prompt: Prompt) -> Result<usize, EngineError> {
        self.send(|tx| Command::CountTokens(prompt, tx))?
            .await
            .map_err(|_| EngineError::Stopped)?
    }

    /// The chat messages rendered with the model's chat template (ChatML when it has none),
    /// ending with the assistant's turn.
    pub async fn render_chat(&self, messages: Vec<ChatMessage>) -> Result<String, EngineError> {
        self.send(|tx| Command::Render(messages, tx))?
            .await
            .map_err(|_| EngineError::Stopped)?
    }

    /// Greedy generations for prompts sharing a prefix, batched; answers in input order.
    pub async fn generate_shared_prefix(
        &self,
        job: SharedPrefixJob,
    ) -> Result<Vec<String>, EngineError> {
        self.send(|tx| Command::Shared(job, tx))?
            .await
            .map_err(|_| EngineError::Stopped)?
    }

    /// The log-likelihood of each continuation after `context` (natural log, summed over the
    /// continuation's tokens), as lm-evaluation-harness computes it.
    pub async fn loglikelihoods(
        &self,
        context: String,
        continuations: Vec<String>,
    ) -> Result<Vec<f64>, EngineError> {
        self.send(|tx| Command::LogLikelihood(context, continuations, tx))?
            .await
            .map_err(|_| EngineError::Stopped)?
    }

    /// llama.cpp's own decode rate, tokens/s: 64 tokens from a one-token prompt, the median
    /// of `runs` after one warm-up (what `hw bench` sets against the memory-bandwidth ceiling).
    pub async fn decode_rate(&self, runs: u32) -> Result<f64, EngineError> {
        let first = self
            .tokenize("The".to_string())
            .await?
            .last()
            .copied()
            .unwrap_or(1);
        self.reserve_context(80).await?;
        let mut rates = Vec::new();
        for i in 0..=runs {
            let g = self
                .generate(GenerateJob {
                    prompt: Prompt::Tokens(vec![first]),
                    max_tokens: 64,
                    ignore_eos: true,
                    sampling: edgebench_core::backend::Sampling::default(),
                    stream: None,
                })
                .await?;
            if i > 0 && g.decode_ms > 0.0 {
                rates.push(g.decode_tokens as f64 / (g.decode_ms / 1e3));
            }
        }
        Ok(edgebench_core::stats::median(&rates).unwrap_or(0.0))
    }

    /// Tokenizes plain text (no template, no special tokens added).
    pub async fn tokenize(&self, text: String) -> Result<Vec<i32>, EngineError> {
        self.send(|tx| Command::Tokenize(text, tx))?
            .await
            .map_err(|_| EngineError::Stopped)?
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn engine_main(
    cfg: EngineConfig,
    rx: mpsc::Receiver<Command>,
    ready: mpsc::SyncSender<Result<EngineInfo, EngineError>>,
) {
    let started = Instant::now();
    let loaded = (|| {
        let backend = backend(cfg.verbose)?;
        let params = LlamaModelParams::default().with_n_gpu_layers(cfg.n_gpu_layers);
        let model = LlamaModel::load_from_file(backend, &cfg.model_path, &params).map_err(|e| {
            EngineError::Load {
                path: cfg.model_path.clone(),
                reason: e.to_string(),
            }
        })?;
        Ok::<_, EngineError>((backend, model))
    })();
    let (backend, model) = match loaded {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let n_ctx_train = model.n_ctx_train();
    let template = model.chat_template(None).ok();
    let mut worker = Worker {
        model: &model,
        backend,
        ctx: None,
        ctx_size: 0,
        ctx_seqs: 1,
        fixed_ctx: cfg.n_ctx,
        max_ctx: cfg.n_ctx.unwrap_or(n_ctx_train),
        cfg: cfg.clone(),
        template,
        batch: LlamaBatch::new(cfg.n_batch as usize, 1),
        n_batch: cfg.n_batch as usize,
        cancel: cfg.cancel.clone(),
        ll_context: Vec::new(),
    };
    if let Err(e) = worker.reserve(cfg.n_ctx.unwrap_or(CTX_STEP)) {
        let _ = ready.send(Err(e));
        return;
    }
    let info = EngineInfo {
        model_load_ms: started.elapsed().as_secs_f64() * 1e3,
        n_ctx: worker.max_ctx,
        n_ctx_train,
        threads: cfg.threads,
        n_params: model.n_params(),
        has_chat_template: worker.template.is_some(),
        system_info: system_info(),
    };
    if ready.send(Ok(info)).is_err() {
        return;
    }
    while let Ok(cmd) = rx.recv() {
        // Only log-likelihood calls keep sequence 0's KV for the next one.
        if matches!(
            cmd,
            Command::Reserve(..) | Command::Generate(..) | Command::Shared(..)
        ) {
            worker.ll_context.clear();
        }
        match cmd {
            Command::Reserve(tokens, reply) => {
                let _ = reply.send(worker.reserve(tokens));
            }
            Command::Generate(job, reply) => {
                let _ = reply.send(worker.generate(job));
            }
            Command::CountTokens(prompt, reply) => {
                let _ = reply.send(worker.tokens(&prompt).map(|t| t.len()));
            }
            Command::Render(messages, reply) => {
                let _ = reply.send(worker.render(&messages));
            }
            Command::Shared(job, reply) => {
                let _ = reply.send(worker.shared_prefix(job));
            }
            Command::LogLikelihood(context, conts, reply) => {
                let _ = reply.send(worker.loglikelihoods(&context, &conts));
            }
            Command::Tokenize(text, reply) => {
                let toks = worker.model.vocab().tokenize(text.as_bytes(), false, false);
                let _ = reply.send(Ok(toks.into_iter().map(|t| t.0).collect()));
            }
        }
    }
}
