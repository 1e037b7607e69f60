//! The command line (clap): the contract that the README and checks rely on.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

use edgebench_core::backend::openai::{DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_RESPONSE_BYTES};
use edgebench_core::eval::method::AnswerMode;

#[derive(Debug, Parser)]
#[command(
    name = "edgebench",
    version = concat!(env!("CARGO_PKG_VERSION"), " ", env!("EDGEBENCH_GIT_COMMIT")),
    about = "Measure local LLM inference: speed, capability and compliance",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmark models on the scenarios (embedded llama.cpp engine or an OpenAI-compatible server).
    Run(Box<RunArgs>),
    /// Score models on capability tasks (Banking77, Financial PhraseBank, realistic banking
    /// cases, HumanEval, MMLU, GSM8K).
    Eval(Box<EvalArgs>),
    /// Compare two result sets (A/B): differences with CIs, significance, effect sizes, decision.
    Compare(CompareArgs),
    /// The results database: list experiments, show one, export or delete it.
    Results {
        /// Where the results database (edgebench.db) lives.
        #[arg(long, global = true, default_value = "results")]
        results: PathBuf,
        /// A team store instead of the folder's database (postgres://...).
        #[arg(
            long,
            global = true,
            env = "EDGEBENCH_STORE",
            value_name = "URL",
            hide_env_values = true
        )]
        store: Option<String>,
        #[command(subcommand)]
        command: ResultsCommand,
    },
    /// Turn a results folder into reports: Markdown, self-contained HTML, CSV and JSON.
    Report(ReportArgs),
    /// Compliance analysis of a results folder: OWASP LLM Top 10 and NIST AI 600-1 risks, licences.
    Compliance(ComplianceArgs),
    /// List, inspect and fetch models.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// The machine: detect its hardware, benchmark its compute and memory bandwidth.
    Hw {
        #[command(subcommand)]
        command: HwCommand,
    },
    /// The local web UI: hardware, a one-button benchmark with live progress, results.
    Serve(ServeArgs),
    /// Copy this folder's experiments to a team store (again: only what is new or changed).
    Push(SyncArgs),
    /// Copy a team store's experiments into this folder's database.
    Pull(SyncArgs),
    /// Add another machine's `results export --format json` file to a store.
    Import(ImportArgs),
    /// The fleet queue of a team store: add run or eval plans for agents, list them.
    Queue {
        /// The team store whose queue it is (postgres://..., or an edgebench.db file).
        #[arg(
            long,
            global = true,
            env = "EDGEBENCH_STORE",
            value_name = "URL",
            hide_env_values = true
        )]
        store: Option<String>,
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Take queued plans from a team store and run them on this machine, one after another,
    /// results written to that store.
    Agent(AgentArgs),
    /// One model's tokens/s over a fixed generation, warm-up first, as mean/min/max over
    /// --iters (the community results table's benchmark): JSON and a Markdown row.
    #[command(name = "bench-infer")]
    BenchInfer(Box<InferArgs>),
    /// Studies: several runs judged together.
    Study {
        #[command(subcommand)]
        kind: StudyCommand,
    },
}

#[derive(Debug, Args)]
pub struct InferArgs {
    /// The model: a catalog key or a GGUF path (default: the built-in default model).
    #[arg(long, visible_alias = "checkpoint")]
    pub model: Option<String>,
    /// A TOML file whose `[generation]` section sets prompt, gen_tokens, warmup_tokens, iters,
    /// seed, deterministic, temperature, top_k, top_p, repetition_penalty and use_kv_cache
    /// (flags override it; other sections are ignored).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The prompt, sent as one user message through the model's chat template.
    #[arg(long)]
    pub prompt: Option<String>,
    /// Tokens generated per measured iteration (default 256).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub gen_tokens: Option<u32>,
    /// Tokens generated once before measuring, not counted (default 32).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub warmup_tokens: Option<u32>,
    /// Measured iterations (default 3).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub iters: Option<u32>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long)]
    pub temperature: Option<f32>,
    #[arg(long)]
    pub top_k: Option<i32>,
    #[arg(long)]
    pub top_p: Option<f32>,
    #[arg(long)]
    pub repetition_penalty: Option<f32>,
    /// Greedy decoding whatever the sampling settings.
    #[arg(long)]
    pub deterministic: bool,
    /// The KV cache, on or off (llama.cpp always decodes with it, so off is refused).
    #[arg(long, value_parser = ["on", "off"])]
    pub kv_cache: Option<String>,
    /// Where it runs: the embedded engine runs on the CPU.
    #[arg(long, value_parser = ["cpu"], default_value = "cpu")]
    pub device: String,
    /// Threads (default: physical cores).
    #[arg(long)]
    pub threads: Option<u32>,
    /// Write the JSON document here.
    #[arg(long, value_name = "PATH")]
    pub json_out: Option<PathBuf>,
    /// Write the community table's head and row here.
    #[arg(long, value_name = "PATH")]
    pub md_out: Option<PathBuf>,
    /// Print the JSON document instead of the Markdown row.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// The FP8 KV-cache calibration A/B: `--serve` runs the server as configured, then with
    /// --calculate-kv-scales; the three FP8 warnings counted; decided by the study's rules.
    #[command(name = "fp8-kv")]
    Fp8Kv(Box<Fp8Args>),
    /// The quantization frontier: one source GGUF (`--models`) written as each of `--types`
    /// through llama.cpp's own quantization (cached), every type measured for speed and scored
    /// on `--tasks`; the table, the types on the accuracy-vs-speed frontier, a test between
    /// adjacent types, and the report with its frontier chart. Several `--models` and no
    /// `--types`: pre-quantized files compared as they are.
    Quant(Box<QuantArgs>),
    /// Prefill and decode rates, TTFT and memory against prompt length: prompts doubling from
    /// 512 tokens up to the model's context limit (or --max-ctx), one loaded model.
    Context(Box<StepsArgs>),
    /// Speed at each sampling temperature (default 0.25,0.5,0.75), one loaded model.
    Temperature(Box<StepsArgs>),
    /// The same six prompts in en, fr, zh, es, de, ar (shipped, translations side by side):
    /// prompt tokens per character, TTFT and tokens/s per language.
    Language(Box<StepsArgs>),
    /// Five prompts each of general, code, reasoning, creative and math: tokens/s, output length
    /// and TTFT per type (answers at their natural length).
    #[command(name = "prompt-type")]
    PromptType(Box<StepsArgs>),
    /// Decode and prefill rates at 1 ... physical cores threads (embedded engine): the best
    /// thread count for this machine.
    Threads(Box<StepsArgs>),
}

#[derive(Debug, Args)]
pub struct StepsArgs {
    /// The steps: temperatures, language codes, prompt types, prompt lengths (tokens) or
    /// thread counts (default: the study's own).
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub values: Vec<String>,
    /// Context study: the largest prompt plus output, tokens (default: the model's limit).
    #[arg(long, value_parser = clap::value_parser!(u32).range(256..))]
    pub max_ctx: Option<u32>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct QuantArgs {
    /// Quantization types, largest first (default Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q4_0,Q3_K_M,Q2_K).
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub types: Vec<String>,
    /// Quantize a source that is already quantized below Q8_0 (a quick look, lossy twice over;
    /// a real study starts from F16, BF16 or Q8_0).
    #[arg(long)]
    pub allow_requantize: bool,
    /// Where quantized files are kept (default ~/.cache/edgebench/quant).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Eval tasks scored on every type.
    #[arg(long, num_args = 1.., value_delimiter = ',', default_value = "banking77,mmlu")]
    pub tasks: Vec<String>,
    /// Items per task (Banking77, Financial PhraseBank, GSM8K ...).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub sample_size: u64,
    /// MMLU items per subject.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub per_subject: u64,
    /// Classification tasks: free, constrained or loglik (the default here: what each type's
    /// weights know, apart even for small models that ignore an answer format).
    #[arg(long, default_value = "loglik", value_parser = parse_answer)]
    pub answer: AnswerMode,
    /// Read the datasets from this folder instead of the data cache.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct Fp8Args {
    /// The calibrated server's command, when appending --calculate-kv-scales to --serve is not
    /// how it is started (a compose file, a config file).
    #[arg(long, value_name = "COMMAND")]
    pub calibrated_serve: Option<String>,
    /// Decision rules (TOML) instead of the study's.
    #[arg(long, value_name = "FILE")]
    pub criteria: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Queue a plan: `queue add [--label L] run FLAGS...` or `queue add eval FLAGS...`, the flags
    /// as `edgebench run` or `edgebench eval` take them (paths as the agents will see them;
    /// `--results`, `--store` and `--resume` are the agent's own).
    Add {
        /// Only an agent started with this `--label` takes it (default: any agent).
        #[arg(long, default_value = "")]
        label: String,
        /// Queue this many copies (each one its own experiment).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        copies: u32,
        #[command(subcommand)]
        plan: QueuedCommand,
    },
    /// Every queued plan: id, kind, label, status, agent, experiment, attempts.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueuedCommand {
    /// A benchmark, with `edgebench run`'s flags.
    Run(Box<RunArgs>),
    /// An evaluation, with `edgebench eval`'s flags.
    Eval(Box<EvalArgs>),
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The team store whose queue to drain and where results go.
    #[arg(
        long,
        env = "EDGEBENCH_STORE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub store: String,
    /// Take plans queued for this label as well as plans for any machine (default: the
    /// machine label, EDGEBENCH_MACHINE_LABEL or the host name).
    #[arg(long)]
    pub label: Option<String>,
    /// Where the result files go (the rows go to the store).
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Seconds a plan stays held without renewal; a killed agent's plan returns to the queue
    /// after it. Renewed every third of it.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS", value_parser = positive_seconds)]
    pub lease: f64,
    /// Seconds between looks at an empty queue.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS", value_parser = positive_seconds)]
    pub poll: f64,
    /// Stop once no plan for this agent is queued or running anywhere (default: wait for more).
    #[arg(long)]
    pub drain: bool,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds in (0, 86400]")),
    }
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The local results folder (its edgebench.db).
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// The team store (postgres://user@host/db, or another edgebench.db file).
    #[arg(
        long,
        env = "EDGEBENCH_STORE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub store: String,
    /// Only these experiments (default: all).
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    pub only: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The export file.
    pub file: PathBuf,
    /// The results folder whose database receives it.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// A team store to receive it instead.
    #[arg(
        long,
        env = "EDGEBENCH_STORE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub store: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Any address other than loopback requires a token.
    #[arg(long, default_value = "127.0.0.1:8686")]
    pub bind: std::net::SocketAddr,
    /// The results folder runs write to and the pages read.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Required on every request (generated and printed when binding beyond loopback).
    #[arg(long, env = "EDGEBENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A team store to read (and, for serve, write) instead of the folder's database
    /// (postgres://...).
    #[arg(
        long,
        env = "EDGEBENCH_STORE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub store: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum HwCommand {
    /// OS, CPU (cores, frequencies, caches, SIMD), memory, GPUs, the llama.cpp backend to build
    /// and which catalog models fit.
    Detect {
        #[arg(long)]
        json: bool,
    },
    /// f32 GEMM GFLOPS, memory bandwidth, and each model's decode-speed ceiling next to its
    /// measured decode rate.
    Bench(HwBenchArgs),
    /// Every phase of the hardware report: detection, the classic benchmarks (GEMM single and
    /// multi-thread, memory bandwidth) and the AI phase (each model's decode rate against its
    /// bandwidth ceiling), saved as results/benchmark_{CPU}_{OS}_{timestamp}.json.
    All(HwAllArgs),
}

#[derive(Debug, Args)]
pub struct HwAllArgs {
    /// Skip the AI phase (model decode rates).
    #[arg(long, conflicts_with = "skip_classic")]
    pub skip_ai: bool,
    /// Skip the classic phases (GEMM, and the document's 256 MB bandwidth block; the read
    /// bandwidth the ceilings need is still measured).
    #[arg(long)]
    pub skip_classic: bool,
    #[command(flatten)]
    pub bench: HwBenchArgs,
}

#[derive(Debug, Args)]
pub struct HwBenchArgs {
    /// Models for the inference-ceiling line (catalog keys or GGUF paths; default: the default
    /// model). Their decode rate is measured with the embedded engine.
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub models: Vec<String>,
    /// Threads for the multi-threaded measurements (default: physical cores).
    #[arg(long)]
    pub threads: Option<u32>,
    /// Timed runs per measurement (after one warm-up).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// GEMM sizes.
    #[arg(long, num_args = 1.., value_delimiter = ',', default_values_t = [512usize, 1024, 2048])]
    pub sizes: Vec<usize>,
    /// Skip the decode measurement (ceiling only).
    #[arg(long)]
    pub no_decode: bool,
    #[arg(long)]
    pub json: bool,
    /// Keep the report in this results folder: benchmark_{CPU}_{OS}_{timestamp}.json, and with
    /// this machine in its database (the machine comparison normalises decode speed by its
    /// bandwidth). `hw all` saves to `results` unless told otherwise.
    #[arg(long, value_name = "DIR")]
    pub results: Option<PathBuf>,
    /// Keep it in a team store instead (postgres://...).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// An OpenAI-compatible server: a base URL (http://host:port/v1) or lmstudio, llama-server,
    /// ollama, vllm, tgi; or `mock` (an in-process target with known delays, for trying the
    /// tool and for tests). Default: the embedded llama.cpp engine.
    #[arg(long, value_name = "URL|ALIAS")]
    pub endpoint: Option<String>,

    /// Models: catalog keys, GGUF paths, or "all" (every catalog model); with --endpoint, the
    /// model ids to request (default: what the server lists). Default: the built-in default model,
    /// fetched into the model cache on first use.
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub models: Vec<String>,

    /// Start this server command (run with `sh -c`), wait until --endpoint is healthy, capture
    /// its output into the results, and stop it after the run.
    #[arg(long, value_name = "COMMAND", requires = "endpoint")]
    pub serve: Option<String>,

    /// Seconds to wait for a --serve server to become healthy.
    #[arg(long, default_value_t = 300.0, value_parser = parse_seconds)]
    pub serve_timeout: f64,

    /// Count server log lines matching this regex, per scenario (repeatable; with --serve).
    #[arg(long, value_name = "REGEX", requires = "serve")]
    pub log_pattern: Vec<String>,

    /// API key for --endpoint.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// With --endpoint: count output tokens with this tokenizer (a GGUF file, or a Hugging Face
    /// tokenizer.json) when the server sends no `usage` (otherwise streamed chunks are counted,
    /// and labelled so).
    #[arg(long, value_name = "PATH.gguf|tokenizer.json", requires = "endpoint")]
    pub tokenizer: Option<PathBuf>,

    /// Which API to call on --endpoint.
    #[arg(long, value_enum, default_value = "chat")]
    pub api: ApiArg,

    /// The serving process for memory sampling (default: the process listening on the
    /// endpoint's port, when it is on this machine).
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Do not send `ignore_eos` to --endpoint (for servers that reject unknown fields); the speed
    /// scenarios' outputs may then be shorter than asked.
    #[arg(long)]
    pub no_ignore_eos: bool,

    /// Seconds to set up a connection to --endpoint before a request fails (kind
    /// `connect_timeout`; three in a row end the run like refused connections).
    #[arg(long, default_value_t = 10.0, value_parser = parse_positive_seconds)]
    pub connect_timeout: f64,

    /// Seconds from the send to the first response chunk before a request fails.
    #[arg(long, default_value_t = 120.0, value_parser = parse_seconds)]
    pub first_token_timeout: f64,

    /// Seconds from the send to the end of a response before a request fails.
    #[arg(long, default_value_t = 600.0, value_parser = parse_seconds)]
    pub timeout: f64,

    /// Bytes one event of a response stream may hold before the request fails (kind `protocol`).
    #[arg(long, default_value_t = DEFAULT_MAX_EVENT_BYTES, value_parser = parse_byte_limit, value_name = "BYTES")]
    pub max_event_bytes: usize,

    /// Bytes one response may hold before the request fails (kind `protocol`).
    #[arg(long, default_value_t = DEFAULT_MAX_RESPONSE_BYTES, value_parser = parse_byte_limit, value_name = "BYTES")]
    pub max_response_bytes: usize,

    /// `quick`: a first look in minutes (5 measured requests per scenario after 1 warm-up,
    /// fixed-length outputs of at most 128 tokens, 0.5 s pauses), stated in the output and
    /// recorded in the configuration; it ends with the full protocol's command and how long it
    /// would take here. `full` (the default): the documented protocol.
    #[arg(long, value_enum, conflicts_with_all = ["runs", "warmup", "duration", "cooldown"])]
    pub profile: Option<ProfileArg>,

    /// Measured requests in flight at once (closed loop).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "rate")]
    pub concurrency: u32,

    /// Sweep the load: `concurrency=1,2,4,8` runs each scenario once per level (--runs measured
    /// requests each), prints throughput vs latency per step, and stops when output tokens/s
    /// gains less than 10% over the best earlier step or fewer than 90% of requests succeed.
    #[arg(long, value_name = "concurrency=N,N,...", conflicts_with_all = ["rate", "concurrency"])]
    pub sweep: Option<String>,

    /// Open-loop arrivals, requests per second (Poisson, seeded); latency counts from each
    /// request's scheduled time.
    #[arg(long, value_name = "R", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Scenarios: "all" or names (comma-separated or repeated).
    #[arg(long, num_args = 1.., value_delimiter = ',', default_value = "all")]
    pub scenarios: Vec<String>,

    /// A scenarios file replacing the built-in one (TOML; see `scenarios/default.toml`).
    #[arg(long, value_name = "FILE")]
    pub scenarios_file: Option<PathBuf>,

    /// Measured requests per model x scenario.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,

    /// Instead of --runs: send measured requests for this many seconds per model x scenario
    /// (in-flight requests finish; prompts come from a seeded pool sized to the load).
    #[arg(long, value_name = "SECONDS", value_parser = parse_positive_seconds, conflicts_with = "runs")]
    pub duration: Option<f64>,

    /// Warm-up requests per model x scenario (stored, flagged, left out of statistics).
    #[arg(long, default_value_t = 3)]
    pub warmup: u32,

    /// Seconds to pause after each request.
    #[arg(long, default_value_t = 2.0, value_parser = parse_seconds)]
    pub cooldown: f64,

    #[command(flatten)]
    pub machine: MachineArgs,

    /// Seed for prompts, sampling and bootstrap resampling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Output tokens per request (overrides the scenarios' ranges).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tokens: Option<u32>,

    /// Decode threads for the embedded engine (default: physical cores).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,

    /// Context window: of the embedded engine (default: sized per scenario, like llama-bench),
    /// or the server's (with --endpoint; prompts that do not fit are refused before the run).
    #[arg(long, value_parser = clap::value_parser!(u32).range(64..))]
    pub ctx_size: Option<u32>,

    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,

    /// Nucleus sampling threshold.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,

    /// Top-k sampling (0: off).
    #[arg(long, default_value_t = 0)]
    pub top_k: i32,

    /// Repetition penalty (1.0: off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,

    /// Let prompts share a prefix (by default each gets a unique lead-in so no prefix cache helps).
    #[arg(long)]
    pub allow_prefix_cache: bool,

    /// Folder for result files and the results database (edgebench.db).
    #[arg(long, default_value = "results")]
    pub results: PathBuf,

    /// Write to a team store instead of the folder's database (postgres://...); files still go
    /// to --results.
    #[arg(
        long,
        env = "EDGEBENCH_STORE",
        value_name = "URL",
        hide_env_values = true,
        conflicts_with = "no_checkpoint"
    )]
    pub store: Option<String>,

    /// Continue the last unfinished experiment with this configuration (or experiment ID):
    /// finished units are kept, unfinished ones are redone from their start.
    #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "")]
    pub resume: Option<String>,

    /// Keep the run in memory: no results database, only the exported files.
    #[arg(long, conflicts_with = "resume")]
    pub no_checkpoint: bool,

    /// Run embedded models that will not fit in memory (weights + KV cache for the longest
    /// request + runtime) instead of skipping them.
    #[arg(long)]
    pub force: bool,
    /// The memory models must fit in, MB (default: what is available when the run starts); plan
    /// for a smaller machine.
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(1..))]
    pub memory_budget: Option<u64>,
    /// Print the summary as one JSON document on stdout.
    #[arg(long)]
    pub json: bool,

    /// Show llama.cpp's own log on stderr.
    #[arg(long)]
    pub verbose: bool,
}

/// `--api` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ApiArg {
    Chat,
    Completions,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches("/s")
        .parse()
        .map_err(|_| format!("{s:?} is not a rate (requests per second)"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!(
            "{s} must be a positive number of requests per second"
        ))
    }
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{s} must be a number of seconds >= 0"))
    }
}

fn parse_positive_seconds(s: &str) -> Result<f64, String> {
    match parse_seconds(s)? {
        v if v > 0.0 => Ok(v),
        _ => Err(format!("{s} must be a number of seconds > 0")),
    }
}

/// A byte count, plain or with a binary suffix (`64M`, `1G`, `512k`).
fn parse_byte_limit(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: usize = match c.to_ascii_lowercase() {
                'k' => 1 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                _ => return Err(format!("{s:?}: the suffix must be k, M or G")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    match num.parse::<usize>().ok().and_then(|n| n.checked_mul(mult)) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a positive number of bytes (64M, 1G, 1048576)"
        )),
    }
}

fn parse_percent(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a percentage between 0 and 100")),
    }
}

fn parse_answer(s: &str) -> Result<AnswerMode, String> {
    s.parse()
}

/// `--profile`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProfileArg {
    Quick,
    Full,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// banking77, financial_phrasebank, banking_all, realistic, coding, mmlu, gsm8k, harness
    /// (mmlu and gsm8k) or all.
    #[arg(long)]
    pub task: String,
    /// A catalog key or GGUF path (embedded engine), or with --endpoint the model id to request
    /// (default: the built-in default model, or the server's first model). `--gguf-path` is
    /// the same flag.
    #[arg(long, visible_alias = "gguf-path")]
    pub model: Option<String>,
    /// Every catalog model (embedded engine).
    #[arg(long, conflicts_with = "model")]
    pub all_models: bool,
    /// Items per task (seeded; stratified by label for classification). Default: the documented
    /// subsets (HumanEval 30, MMLU 200, GSM8K 100), the whole split elsewhere.
    #[arg(long, value_name = "N")]
    pub sample_size: Option<usize>,
    /// Every item of each split instead of the documented subsets.
    #[arg(long, conflicts_with = "sample_size")]
    pub full: bool,
    /// MMLU: questions per subject (seeded), instead of --sample-size.
    #[arg(long, value_name = "N")]
    pub per_subject: Option<usize>,
    /// Worked examples before each question: MMLU from its dev split, GSM8K the first train
    /// problems in lm-evaluation-harness's prompt (0 to 5).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=5))]
    pub shots: u32,
    /// Financial PhraseBank agreement level: all, 75, 66 or 50.
    #[arg(long, default_value = "50", value_parser = ["all", "75", "66", "50"])]
    pub agreement: String,
    /// Classification tasks: free (the model writes, the text is mapped to a label),
    /// constrained (only a label can come out) or loglik (the most likely label wins).
    #[arg(long, default_value = "free", value_parser = parse_answer)]
    pub answer: AnswerMode,
    /// MMLU: letter (answer with the choice's letter) or cloze (score each answer's text).
    #[arg(long, default_value = "letter", value_parser = ["letter", "cloze"])]
    pub format: String,
    /// Coding: answers sampled per problem, for pass@k (pass@10 needs 10 or more).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub samples: u32,
    /// Coding: sampling temperature with --samples (0: greedy; pass@k is usually measured at 0.8).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Where the datasets are (a folder holding banking77/, financial_phrasebank/, ...).
    /// Default: the data cache ($EDGEBENCH_HOME/data), downloaded on first use.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A replacement for the built-in realistic banking cases (TOML).
    #[arg(long, value_name = "FILE")]
    pub realistic_file: Option<PathBuf>,
    /// An OpenAI-compatible server (URL or lmstudio, llama-server, ollama, vllm, tgi).
    #[arg(long, value_name = "URL|ALIAS")]
    pub endpoint: Option<String>,
    /// API key for --endpoint.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Requests in flight (HTTP).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub concurrency: u32,

    /// Seconds to set up a connection to --endpoint before a request fails.
    #[arg(long, default_value_t = 10.0, value_parser = parse_positive_seconds)]
    pub connect_timeout: f64,

    /// Seconds from the send to the end of an answer before the item fails.
    #[arg(long, default_value_t = 600.0, value_parser = parse_seconds)]
    pub timeout: f64,

    /// Bytes one answer may hold before the item fails.
    #[arg(long, default_value_t = DEFAULT_MAX_RESPONSE_BYTES, value_parser = parse_byte_limit, value_name = "BYTES")]
    pub max_response_bytes: usize,
    /// Sequences decoded together by the embedded engine (fewer when the model's context cannot
    /// hold them all).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub parallel: u32,
    /// Threads for the embedded engine (default: physical cores).
    #[arg(long)]
    pub threads: Option<u32>,
    /// Run generated code without namespaces when this machine refuses them (coding task).
    #[arg(long)]
    pub unsafe_exec: bool,
    #[command(flatten)]
    pub machine: MachineArgs,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where results go.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Write to a team store instead of the folder's database (postgres://...).
    #[arg(
        long,
        env = "EDGEBENCH_STORE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub store: Option<String>,
    /// Continue the last unfinished eval with the same configuration (or experiment ID):
    /// items already scored are kept.
    #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "")]
    pub resume: Option<String>,
    /// Print the summaries as one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Resource monitor and quiet-machine flags, shared by `run` and `eval`.
#[derive(Debug, Args)]
pub struct MachineArgs {
    /// Before each model x scenario (or eval task), wait up to this many seconds for system CPU use to drop
    /// below --settle-threshold; a machine still busy is flagged in the results (0 = do not wait).
    #[arg(long, default_value_t = 10.0, value_parser = parse_seconds, env = "EDGEBENCH_SETTLE_TIMEOUT")]
    pub settle_timeout: f64,

    /// System CPU use, percent of all cores, below which the machine counts as quiet.
    #[arg(long, default_value_t = 15.0, value_parser = parse_percent)]
    pub settle_threshold: f64,

    /// Resource monitor sampling interval, milliseconds.
    #[arg(long = "monitor-interval", default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub monitor_interval_ms: u64,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a run id, a results folder (its newest run), a perf JSONL file, an eval
    /// id (eval_...) or an eval_*.json file. With --all: the experiment whose models to compare.
    #[arg(required_unless_present = "machines")]
    pub baseline: Option<String>,
    /// The candidate, in the same forms.
    #[arg(required_unless_present_any = ["all", "machines"], conflicts_with = "all")]
    pub candidate: Option<String>,
    /// Machines side by side instead: comma-separated results folders or `results export
    /// --format json` files, each optionally `LABEL=PATH` (default label: the folder or file
    /// name), or with --store machine labels of the team store; the same model x scenario
    /// across them with CIs, each machine tested against the first, and their hardware.
    #[arg(long, value_delimiter = ',', num_args = 1.., value_name = "[LABEL=]PATH", conflicts_with_all = ["baseline", "candidate", "all"])]
    pub machines: Vec<String>,
    /// Compare every pair of models in BASELINE's experiment (the earlier model as baseline),
    /// with Holm's correction over the whole family of tests.
    #[arg(long)]
    pub all: bool,
    /// Decision rules (TOML); default: the FP8 calibration study's rules (apply under 15%
    /// impact on TTFT and throughput with warnings resolved, monitor under 25%, else keep the
    /// baseline; changes within +/-2% never decide).
    #[arg(long, value_name = "FILE", conflicts_with = "preset")]
    pub criteria: Option<PathBuf>,
    /// Built-in rules instead of a file: `default`, or `fp8-kv` (the study's three vLLM
    /// warnings counted, all three resolved before "apply").
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(edgebench_core::compare::PRESETS))]
    pub preset: Option<String>,
    /// Also write the comparison as JSON to FILE (with its `recommendations`).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Where run ids are looked up.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Look run ids up in a team store instead (postgres://...); with --machines, each entry
    /// without a path is a machine label there.
    #[arg(
        long,
        env = "EDGEBENCH_STORE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub store: Option<String>,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print the comparison as one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The results folder (summary_*.json, eval_*.json, perf_*.jsonl, edgebench.db).
    #[arg(long, default_value = "results")]
    pub input: PathBuf,
    /// Where the report files go.
    #[arg(long, default_value = "report")]
    pub output: PathBuf,
    /// Formats: md, html, csv, json or all (comma-separated or repeated).
    #[arg(long, num_args = 1.., value_delimiter = ',', default_value = "all")]
    pub format: Vec<String>,
    /// Add the compliance analysis (section, and compliance/*.json files).
    #[arg(long)]
    pub compliance: bool,
    /// Print one community results table row per model on stdout.
    #[arg(long)]
    pub community: bool,
    /// Report on a team store's finished experiments instead of a folder (postgres://...).
    #[arg(
        long,
        env = "EDGEBENCH_STORE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub store: Option<String>,
    /// Add a machine comparison section: comma-separated results folders or `results export
    /// --format json` files, each optionally `LABEL=PATH`, or with --store machine labels
    /// (default with --store: every machine of the store, when it holds two or more).
    #[arg(long, value_delimiter = ',', num_args = 1.., value_name = "[LABEL=]PATH")]
    pub machines: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ComplianceArgs {
    /// The results folder.
    #[arg(long, default_value = "results")]
    pub input: PathBuf,
    /// Where compliance/risk_analysis_*.json and compliance/license_audit_*.json go.
    #[arg(long, default_value = "report")]
    pub output: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ResultsCommand {
    /// Every experiment, newest first: id, kind, status, progress, config hash.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One experiment: its units, their status, request counts and errors.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Write an experiment's requests as JSONL, CSV, or one JSON document.
    Export {
        id: String,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormatArg,
        /// Write here (atomically) instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Delete an experiment and everything stored under it.
    Delete { id: String },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormatArg {
    Jsonl,
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// The catalog, and which models are in the model cache.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Facts about a model from its GGUF metadata.
    Info {
        /// A GGUF path or a catalog key.
        model: String,
        #[arg(long)]
        json: bool,
    },
    /// Fetch a catalog model into the model cache.
    Pull {
        /// A catalog key (default: the built-in default model).
        key: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks (duplicate flags between a command and a nested one, a
    /// global flag shadowing a subcommand's), which debug builds would otherwise only hit at run
    /// time.
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
