//! edgebench-llama: the embedded llama.cpp engine. One thread owns the backend, model and context;
//! callers talk to it over channels, so the async world never blocks on llama.cpp.

mod backend;
mod engine;
mod eval;
mod loader;
mod quantize;
mod tokenizer;

pub use backend::LlamaTarget;
pub use engine::{
    Engine, EngineConfig, EngineError, EngineInfo, GenerateJob, Generation, Prompt,
    SharedPrefixJob, StreamedToken, ENGINE_NAME,
};
pub use loader::LlamaLoader;
pub use quantize::quantize;
pub use tokenizer::{open_tokenizer, GgufTokenizer, JsonTokenizer};

/// The llama.cpp backends this build contains (its cargo features).
pub fn built_backends() -> Vec<&'static str> {
    let mut b = vec!["CPU"];
    if cfg!(feature = "cuda") {
        b.push("CUDA");
    }
    if cfg!(feature = "metal") {
        b.push("Metal");
    }
    if cfg!(feature = "vulkan") {
        b.push("Vulkan");
    }
    b
}
