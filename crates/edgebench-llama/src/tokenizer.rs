//! A GGUF file's tokenizer on its own (a vocab-only load, no weights), to count the tokens of
//! servers that send no `usage`.

use std::path::{Path, PathBuf};

use edgebench_core::target::TokenCounter;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;

use crate::engine::{backend, EngineError};

/// The tokenizer of one GGUF file.
pub struct GgufTokenizer {
    model: LlamaModel,
    path: PathBuf,
}

impl std::fmt::Debug for GgufTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufTokenizer")
            .field("path", &self.path)
            .finish()
    }
}

impl GgufTokenizer {
    /// Loads the vocabulary of `path` (milliseconds, a few MB: no weights are read).
    pub fn load(path: &Path) -> Result<Self, EngineError> {
        let params = LlamaModelParams::default().with_vocab_only(true);
        let model = LlamaModel::load_from_file(backend(false)?, path, &params).map_err(|e| {
            EngineError::Load {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            model,
            path: path.to_path_buf(),
        })
    }
}

impl TokenCounter for GgufTokenizer {
    fn count(&self, text: &str) -> u64 {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), false, false)
            .len() as u64
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }
}
