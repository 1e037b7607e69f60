//! Tokenizers on their own, to count the tokens of servers that send no `usage`: a GGUF file's
//! (a vocab-only load, no weights) or a Hugging Face `tokenizer.json`.

use std::path::{Path, PathBuf};

use edgebench_core::backend::TokenCounter;
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

/// A Hugging Face `tokenizer.json`.
pub struct JsonTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
}

impl std::fmt::Debug for JsonTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonTokenizer")
            .field("path", &self.path)
            .finish()
    }
}

impl JsonTokenizer {
    /// Reads `path` (a `tokenizer.json`).
    pub fn load(path: &Path) -> Result<Self, EngineError> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| EngineError::Load {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            inner,
            path: path.to_path_buf(),
        })
    }
}

impl TokenCounter for JsonTokenizer {
    fn count(&self, text: &str) -> u64 {
        // Without special tokens, as for GGUF; a text the tokenizer cannot encode counts 0.
        self.inner
            .encode(text, false)
            .map_or(0, |e| e.get_ids().len() as u64)
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

/// Opens a tokenizer by its file: a `.json` file is a Hugging Face tokenizer, anything else a GGUF.
pub fn open_tokenizer(path: &Path) -> Result<std::sync::Arc<dyn TokenCounter>, EngineError> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        Ok(std::sync::Arc::new(JsonTokenizer::load(path)?))
    } else {
        Ok(std::sync::Arc::new(GgufTokenizer::load(path)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokenizer_json_counts_with_its_pre_tokenizer_and_vocabulary() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wordlevel_tokenizer.json");
        let t = open_tokenizer(&dir).unwrap();
        // Whitespace pre-tokenizer: "The", "card", "was", "declined", "." (unknown words count too).
        assert_eq!(t.count("The card was declined."), 5);
        assert_eq!(t.count(""), 0);
        assert!(t.name().ends_with("wordlevel_tokenizer.json"));
        let e = JsonTokenizer::load(Path::new("/nonexistent/tokenizer.json")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/tokenizer.json"), "{e}");
    }
}
