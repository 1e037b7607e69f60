//! The engine thread: loads the model, applies the chat template, prefills, samples and streams
//! tokens with their arrival times, and reads llama.cpp's own timings.

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

/// Context sizes are multiples of this (llama.cpp pads to 256 as well).
const CTX_STEP: u32 = 256;

struct Worker<'m> {
    model: &'m LlamaModel,
    backend: &'static LlamaBackend,
    /// `None` only while being re-created.
    ctx: Option<LlamaContext<'m>>,
    ctx_size: u32,
    /// Sequences the current context was created for (1 for benchmarks).
    ctx_seqs: u32,
    fixed_ctx: Option<u32>,
    max_ctx: u32,
    cfg: EngineConfig,
    template: Option<LlamaChatTemplate>,
    batch: LlamaBatch<'static>,
    n_batch: usize,
    cancel: Option<Arc<AtomicBool>>,
    /// The tokens of the last log-likelihood context, held in sequence 0's KV cache; the next
    /// call decodes only what follows their common prefix (a subject's few-shot examples).
    ll_context: Vec<LlamaToken>,
}

/// ChatML, used when a model carries no chat template (as llama-server does).
const FALLBACK_TEMPLATE: &str = "chatml";

/// The index of the largest value (the first on ties, NaN ignored), as llama.cpp's greedy sampler.
fn argmax(logits: &[f32]) -> i32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    i32::try_from(best).unwrap_or(0)
}

fn sampler(s: &Sampling, n_vocab: i32) -> LlamaSampler {
    let mut chain = Vec::new();
    if (s.repeat_penalty - 1.0).abs() > f32::EPSILON {
        chain.push(LlamaSampler::penalties(
            n_vocab,
            64,
            s.repeat_penalty,
            0.0,
            0.0,
        ));
    }
    if s.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if s.top_k > 0 {
            chain.push(LlamaSampler::top_k(s.top_k));
        }
        if s.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(s.top_p, 1));
        }
        chain.push(LlamaSampler::temp(s.temperature));
        chain.push(LlamaSampler::dist(s.seed as u32));
    }
    LlamaSampler::chain_simple(chain)
}

impl<'m> Worker<'m> {
    /// (Re)creates the context for `tokens` tokens, rounded up to [`CTX_STEP`], unless fixed.
    fn reserve(&mut self, tokens: u32) -> Result<u32, EngineError> {
        let want = match self.fixed_ctx {
            Some(n) => n,
            None => tokens
                .div_ceil(CTX_STEP)
                .max(1)
                .saturating_mul(CTX_STEP)
                .min(self.max_ctx),
        };
        if self.ctx.is_some() && want == self.ctx_size && self.ctx_seqs == 1 {
            return Ok(want);
        }
        self.create_context(want, 1)
    }

    /// Creates a context of `n_ctx` tokens for `seqs` sequences sharing one KV cache.
    fn create_context(&mut self, n_ctx: u32, seqs: u32) -> Result<u32, EngineError> {
        let want = n_ctx;
        // Free the old context (and its KV cache) before allocating the new one.
        self.ctx = None;
        self.ll_context.clear();
        let params = LlamaContextParams::default()
            .with_n_seq_max(seqs)
            .with_kv_unified(seqs > 1)
            .with_n_ctx(NonZeroU32::new(want))
            .with_n_batch(self.cfg.n_batch)
            .with_n_ubatch(self.cfg.n_ubatch)
            .with_n_threads(self.cfg.threads as i32)
            .with_n_threads_batch(self.cfg.threads_batch as i32)
            .with_no_perf(false);
        let ctx = self
            .model
            .new_context(self.backend, params)
            .map_err(|e| EngineError::Context(e.to_string()))?;
        self.ctx_size = ctx.n_ctx();
        self.ctx_seqs = seqs;
        self.ctx = Some(ctx);
        Ok(self.ctx_size)
    }

    fn ctx(&mut self) -> Result<&mut LlamaContext<'m>, EngineError> {
        self.ctx
            .as_mut()
            .ok_or_else(|| EngineError::Context("no context".into()))
    }

    fn render(&self, messages: &[ChatMessage]) -> Result<String, EngineError> {
        let msgs = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EngineError::Template(e.to_string()))?;
        let fallback;
        let tmpl = match &self.template {
            Some(t) => t,
            None => {
                fallback = LlamaChatTemplate::new(FALLBACK_TEMPLATE)
                    .map_err(|e| EngineError::Template(e.to_string()))?;
                &fallback
            }
        };
        self.model
            .apply_chat_template(tmpl, &msgs, true)
            .map_err(|e| EngineError::Template(e.to_string()))
    }

    fn tokens(&self, prompt: &Prompt) -> Result<Vec<LlamaToken>, EngineError> {
        match prompt {
            Prompt::Tokens(t) => Ok(t.iter().map(|&i| LlamaToken(i)).collect()),
            Prompt::Chat(messages) => {
                let text = self.render(messages)?;
                Ok(self.model.vocab().tokenize(text.as_bytes(), true, true))
            }
        }
    }

    fn decode(&mut self) -> Result<(), EngineError> {
        let ctx = self
            .ctx
            .as_mut()
            .ok_or_else(|| EngineError::Context("no context".into()))?;
        ctx.decode(&mut self.batch)
            .map_err(|e| EngineError::Decode(e.to_string()))
    }

    fn generate(&mut self, job: GenerateJob) -> Result<Generation, EngineError> {
        let started = Instant::now();
        let tokens = self.tokens(&job.prompt)?;
        if tokens.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let need = tokens.len() + job.max_tokens as usize;
        if need > self.max_ctx as usize {
            return Err(EngineError::ContextOverflow {
                prompt_tokens: tokens.len(),
                max_tokens: job.max_tokens,
                n_ctx: self.max_ctx,
            });
        }
        if need > self.ctx_size as usize {
            self.reserve(need as u32)?;
        }
        if let Some(c) = &self.cancel {
            if c.load(Ordering::Relaxed) {
                return Ok(Generation {
                    started,
                    prompt_tokens: tokens.len(),
                    token_times: Vec::new(),
                    text: String::new(),
                    stopped: false,
                    cancelled: true,
                    prompt_eval_ms: 0.0,
                    prompt_eval_tokens: 0,
                    decode_ms: 0.0,
                    decode_tokens: 0,
                });
            }
        }
        let ctx = self.ctx()?;
        ctx.clear_kv_cache();
        ctx.reset_timings();
        let last = tokens.len() - 1;
        for (c, chunk) in tokens.chunks(self.n_batch).enumerate() {
            self.batch.clear();
            for (i, &t) in chunk.iter().enumerate() {
                let pos = c * self.n_batch + i;
                self.batch
                    .add(t, pos as i32, &[0], pos == last)
                    .map_err(|e| EngineError::Decode(e.to_string()))?;
            }
            self.decode()?;
        }
        let vocab = self.model.vocab();
        // Greedy decoding without penalties is an argmax over the logits; llama.cpp's sampler
        // chain would build a candidate array of the whole vocabulary for every token.
        let greedy = job.sampling.temperature <= 0.0
            && (job.sampling.repeat_penalty - 1.0).abs() <= f32::EPSILON;
        let mut sampler = (!greedy).then(|| sampler(&job.sampling, vocab.n_tokens()));
        let mut token_times = Vec::with_capacity(job.max_tokens as usize);
        let mut decoder = encoding_rs::UTF_8.new_decoder();
        let mut piece = Vec::with_capacity(32);
        let mut text = String::new();
        let (mut stopped, mut cancelled) = (false, false);
        let first_pos = tokens.len() as i32;
        for i in 0..job.max_tokens {
            let ctx = self.ctx()?;
            let tok = match sampler.as_mut() {
                Some(s) => s.sample(ctx, -1),
                None => LlamaToken(argmax(ctx.get_logits_ith(-1))),
            };
            let at = Instant::now();
            let eog = vocab.is_eog(tok);
            if eog && !job.ignore_eos {
                stopped = true;
                break;
            }
            token_times.push(at);
            if !eog {
                piece.clear();
                vocab.token_to_piece_into(tok, &mut piece, false, None);
                let before = text.len();
                if let Some(max) = decoder.max_utf8_buffer_length(piece.len()) {
                    text.reserve(max);
                }
                let _ = decoder.decode_to_string(&piece, &mut text, false);
                if let Some(s) = &job.stream {
                    let _ = s.send(StreamedToken {
                        at,
                        text: text[before..].to_string(),
                    });
                }
            }
            if i + 1 == job.max_tokens {
                break;
            }
            if self
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::Relaxed))
            {
                cancelled = true;
                break;
            }
            self.batch.clear();
            self.batch
                .add(tok, first_pos + i as i32, &[0], true)
                .map_err(|e| EngineError::Decode(e.to_string()))?;
            self.decode()?;
        }
        let _ = decoder.decode_to_string(&[], &mut text, true);
        let t = self.ctx()?.timings();
        Ok(Generation {
            started,
            prompt_tokens: tokens.len(),
            token_times,
            text,
            stopped,
            cancelled,
            prompt_eval_ms: t.t_p_eval_ms(),
            prompt_eval_tokens: u64::try_from(t.n_p_eval()).unwrap_or(0),
            decode_ms: t.t_eval_ms(),
            decode_tokens: u64::try_from(t.n_eval()).unwrap_or(0),
        })
    }
}

/// One sequence of a shared-prefix job in flight.
struct Slot {
    item: usize,
    seq: i32,
    /// Prompt tokens not yet decoded.
    pending: Vec<LlamaToken>,
    /// The next position in the sequence.
    pos: i32,
    /// Where this slot's logits are in the last batch.
    logits_at: Option<i32>,
    generated: u32,
    bytes: Vec<u8>,
}

/// Log-softmax of `logits` at `token`.
fn log_prob(logits: &[f32], token: LlamaToken) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let l = usize::try_from(token.0)
        .ok()
        .and_then(|i| logits.get(i))
        .copied()
        .unwrap_or(f32::NEG_INFINITY);
    f64::from(l - max) - sum.ln()
}

impl<'m> Worker<'m> {
    fn add(&mut self, t: LlamaToken, pos: i32, seq: i32, logits: bool) -> Result<(), EngineError> {
        self.batch
            .add(t, pos, &[seq], logits)
            .map_err(|e| EngineError::Decode(e.to_string()))
    }

    /// Decodes `tokens` into sequence `seq` from position `start`, logits on the last one only
    /// when `logits_last`.
    fn decode_seq(
        &mut self,
        tokens: &[LlamaToken],
        start: i32,
        seq: i32,
        logits_last: bool,
    ) -> Result<(), EngineError> {
        let n = tokens.len();
        for (c, chunk) in tokens.chunks(self.n_batch).enumerate() {
            self.batch.clear();
            for (i, &t) in chunk.iter().enumerate() {
                let k = c * self.n_batch + i;
                self.add(t, start + k as i32, seq, logits_last && k + 1 == n)?;
            }
            self.decode()?;
        }
        Ok(())
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    fn shared_prefix(&mut self, job: SharedPrefixJob) -> Result<Vec<String>, EngineError> {
        let vocab = self.model.vocab();
        let prefix = vocab.tokenize(job.prefix.as_bytes(), true, true);
        let suffixes: Vec<Vec<LlamaToken>> = job
            .suffixes
            .iter()
            .map(|s| vocab.tokenize(s.as_bytes(), false, true))
            .collect();
        if prefix.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let parallel = job.parallel.clamp(1, 64).min(suffixes.len().max(1));
        let longest = suffixes.iter().map(Vec::len).max().unwrap_or(0);
        let per_seq = longest + job.max_tokens as usize;
        if prefix.len() + per_seq > self.max_ctx as usize {
            return Err(EngineError::ContextOverflow {
                prompt_tokens: prefix.len() + longest,
                max_tokens: job.max_tokens,
                n_ctx: self.max_ctx,
            });
        }
        // No more sequences than the model's context holds (it bounds the KV cache's memory).
        let fit = (self.max_ctx as usize - prefix.len()) / per_seq.max(1);
        let parallel = parallel.min(fit.max(1));
        let need = (prefix.len() + parallel * per_seq) as u32;
        let n_ctx = need.div_ceil(CTX_STEP).max(1).saturating_mul(CTX_STEP);
        if self.ctx.is_none() || self.ctx_seqs != parallel as u32 + 1 || self.ctx_size < n_ctx {
            self.create_context(n_ctx, parallel as u32 + 1)?;
        }
        self.ctx()?.clear_kv_cache();
        let prefix_len = prefix.len() as i32;
        self.decode_seq(&prefix, 0, 0, false)?;

        let mut out: Vec<Option<String>> = vec![None; suffixes.len()];
        let mut queue = (0..suffixes.len()).rev().collect::<Vec<_>>();
        let mut slots: Vec<Option<Slot>> = (0..parallel).map(|_| None).collect();
        loop {
            if self.cancelled() {
                break;
            }
            // Fill free slots: each starts as a copy of the prefix.
            for (k, slot) in slots.iter_mut().enumerate() {
                if slot.is_none() {
                    if let Some(item) = queue.pop() {
                        let seq = k as i32 + 1;
                        let ctx = self.ctx()?;
                        ctx.clear_kv_cache_seq(Some(seq as u32), None, None)
                            .map_err(|e| EngineError::Decode(e.to_string()))?;
                        ctx.copy_kv_cache_seq(0, seq, None, None)
                            .map_err(|e| EngineError::Decode(e.to_string()))?;
                        let mut pending = suffixes[item].clone();
                        if pending.is_empty() {
                            // Nothing after the prefix: re-feed its last token for logits.
                            ctx.clear_kv_cache_seq(
                                Some(seq as u32),
                                Some(prefix_len as u32 - 1),
                                None,
                            )
                            .map_err(|e| EngineError::Decode(e.to_string()))?;
                            pending.push(prefix[prefix.len() - 1]);
                        }
                        let pos = if suffixes[item].is_empty() {
                            prefix_len - 1
                        } else {
                            prefix_len
                        };
                        *slot = Some(Slot {
                            item,
                            seq,
                            pending,
                            pos,
                            logits_at: None,
                            generated: 0,
                            bytes: Vec::new(),
                        });
                    }
                }
            }
            if slots.iter().all(Option::is_none) {
                break;
            }
            // One batch: every slot's next input (a prompt chunk, or its last sampled token).
            self.batch.clear();
            let mut room = self.n_batch;
            let mut n = 0i32;
            for slot in slots.iter_mut().flatten() {
                slot.logits_at = None;
                if room == 0 {
                    continue;
                }
                let take = slot.pending.len().min(room);
                let chunk: Vec<LlamaToken> = slot.pending.drain(..take).collect();
                let last = slot.pending.is_empty();
                for (i, &t) in chunk.iter().enumerate() {
                    let want_logits = last && i + 1 == chunk.len();
                    self.batch
                        .add(t, slot.pos, &[slot.seq], want_logits)
                        .map_err(|e| EngineError::Decode(e.to_string()))?;
                    if want_logits {
                        slot.logits_at = Some(n);
                    }
                    slot.pos += 1;
                    n += 1;
                }
                room -= take;
            }
            self.decode()?;
            // Sample each slot that has logits; finish those that are done.
            for entry in slots.iter_mut() {
                let Some(slot) = entry.as_mut() else { continue };
                let Some(at) = slot.logits_at else { continue };
                let tok = LlamaToken(argmax(self.ctx()?.get_logits_ith(at)));
                let mut done = vocab.is_eog(tok);
                if !done {
                    slot.generated += 1;
                    vocab.token_to_piece_into(tok, &mut slot.bytes, false, None);
                    let text = String::from_utf8_lossy(&slot.bytes);
                    if job
                        .stop
                        .iter()
                        .any(|s| !s.is_empty() && text.contains(s.as_str()))
                        || slot.generated >= job.max_tokens
                    {
                        done = true;
                    } else {
                        slot.pending.push(tok);
                    }
                }
                if done {
                    let mut text = String::from_utf8_lossy(&slot.bytes).into_owned();
                    for s in &job.stop {
                        if let Some(i) = text.find(s.as_str()).filter(|_| !s.is_empty()) {
                            text.truncate(i);
                        }
                    }
                    out[slot.item] = Some(text);
                    let seq = slot.seq as u32;
                    self.ctx()?
                        .clear_kv_cache_seq(Some(seq), None, None)
                        .map_err(|e| EngineError::Decode(e.to_string()))?;
                    *entry = None;
                }
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }

    fn loglikelihoods(
        &mut self,
        context: &str,
        continuations: &[String],
    ) -> Result<Vec<f64>, EngineError> {
        let vocab = self.model.vocab();
        let ctx_toks = vocab.tokenize(context.as_bytes(), true, true);
        if ctx_toks.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        // The continuation's tokens as the harness takes them: the whole text's tokens after the
        // context's (falling back to the continuation alone when the boundary merges).
        let conts: Vec<Vec<LlamaToken>> = continuations
            .iter()
            .map(|c| {
                let whole = vocab.tokenize(format!("{context}{c}").as_bytes(), true, true);
                if whole.len() > ctx_toks.len() && whole[..ctx_toks.len()] == ctx_toks[..] {
                    whole[ctx_toks.len()..].to_vec()
                } else {
                    vocab.tokenize(c.as_bytes(), false, true)
                }
            })
            .collect();
        let longest = conts.iter().map(Vec::len).max().unwrap_or(0);
        let need = (ctx_toks.len() + 2 * longest) as u32;
        if ctx_toks.len() + longest > self.max_ctx as usize {
            return Err(EngineError::ContextOverflow {
                prompt_tokens: ctx_toks.len(),
                max_tokens: longest as u32,
                n_ctx: self.max_ctx,
            });
        }
        let n_ctx = need.div_ceil(CTX_STEP).max(1).saturating_mul(CTX_STEP);
        if self.ctx.is_none() || self.ctx_seqs != 2 || self.ctx_size < n_ctx {
            self.create_context(n_ctx, 2)?;
        }
        // Reuse the KV of the previous context's common prefix; at least the last token is
        // decoded again, for its logits.
        let keep = self
            .ll_context
            .iter()
            .zip(&ctx_toks)
            .take_while(|(a, b)| a == b)
            .count()
            .min(ctx_toks.len() - 1);
        let ctx = self.ctx()?;
        if keep == 0 {
            ctx.clear_kv_cache();
        } else {
            ctx.clear_kv_cache_seq(Some(0), Some(keep as u32), None)
                .map_err(|e| EngineError::Decode(e.to_string()))?;
            ctx.clear_kv_cache_seq(Some(1), None, None)
                .map_err(|e| EngineError::Decode(e.to_string()))?;
        }
        self.ll_context.clear();
        let n = ctx_toks.len() as i32;
        self.decode_seq(&ctx_toks[keep..], keep as i32, 0, true)?;
        self.ll_context = ctx_toks;
        let first: Vec<f32> = self.ctx()?.get_logits_ith(-1).to_vec();
        let mut out = Vec::with_capacity(conts.len());
        for cont in &conts {
            let Some(&c0) = cont.first() else {
                out.push(0.0);
                continue;
            };
            let mut lp = log_prob(&first, c0);
            if cont.len() > 1 {
                let ctx = self.ctx()?;
                ctx.clear_kv_cache_seq(Some(1), None, None)
                    .map_err(|e| EngineError::Decode(e.to_string()))?;
                ctx.copy_kv_cache_seq(0, 1, None, None)
                    .map_err(|e| EngineError::Decode(e.to_string()))?;
                self.batch.clear();
                for (i, &t) in cont[..cont.len() - 1].iter().enumerate() {
                    self.add(t, n + i as i32, 1, true)?;
                }
                self.decode()?;
                for (i, &t) in cont[1..].iter().enumerate() {
                    lp += log_prob(self.ctx()?.get_logits_ith(i as i32), t);
                }
                self.ctx()?
                    .clear_kv_cache_seq(Some(1), None, None)
                    .map_err(|e| EngineError::Decode(e.to_string()))?;
            }
            out.push(lp);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::{argmax, log_prob};
    use llama_cpp_2::token::LlamaToken;

    #[test]
    fn log_prob_is_a_log_softmax() {
        let l = [1.0f32, 2.0, 3.0];
        let z: f64 = l.iter().map(|&x| f64::from(x).exp()).sum();
        for (i, &x) in l.iter().enumerate() {
            let want = f64::from(x) - z.ln();
            assert!((log_prob(&l, LlamaToken(i as i32)) - want).abs() < 1e-9);
        }
        assert_eq!(log_prob(&l, LlamaToken(7)), f64::NEG_INFINITY);
    }

    #[test]
    fn argmax_takes_the_first_maximum_and_ignores_nan() {
        assert_eq!(argmax(&[0.1, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, -5.0, -4.0]), 2);
        assert_eq!(argmax(&[]), 0);
    }
}
