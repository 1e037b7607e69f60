//! A mock target with known delays and failures, for tests of the code around targets.

use async_trait::async_trait;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{ChatMessage, GenRequest, Target, TargetError, TargetInfo};
use crate::clock::Clock;
use crate::record::{
    Chunk, ErrorKind, FinishReason, RequestError, RequestRecord, TokenCountSource,
};

/// A target that "generates" `max_tokens` words after `ttft`, one every `itl`.
#[derive(Debug, Clone)]
pub struct MockTarget {
    pub ttft: Duration,
    pub itl: Duration,
    /// Requests whose index is a multiple of this fail (0: none fail).
    pub fail_every: u32,
    /// The text each token carries.
    pub token_text: String,
    /// Tokens to emit instead of `max_tokens` (0: the model emits nothing).
    pub emit_tokens: Option<u32>,
    pub context: u32,
    /// Requests in flight now, and the most seen at once.
    pub in_flight: Arc<AtomicUsize>,
    pub peak_in_flight: Arc<AtomicUsize>,
}

impl MockTarget {
    /// The most requests that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.peak_in_flight.load(Ordering::SeqCst)
    }
}

impl Default for MockTarget {
    fn default() -> Self {
        Self {
            ttft: Duration::from_millis(5),
            itl: Duration::from_millis(1),
            fail_every: 0,
            token_text: "tok ".to_string(),
            emit_tokens: None,
            context: 8192,
            in_flight: Arc::default(),
            peak_in_flight: Arc::default(),
        }
    }
}

/// The mock's tokenizer: one token per whitespace-separated word.
pub fn mock_token_count(messages: &[ChatMessage]) -> u64 {
    messages
        .iter()
        .map(|m| m.content.split_whitespace().count() as u64)
        .sum()
}

/// Evals on the mock: answers generated one streamed request at a time, no log-likelihoods.
impl super::Backend for MockTarget {}

#[async_trait]
impl Target for MockTarget {
    fn info(&self) -> TargetInfo {
        TargetInfo {
            kind: "mock".into(),
            engine: "mock".into(),
            context_tokens: Some(self.context),
            ..TargetInfo::default()
        }
    }

    async fn count_prompt_tokens(
        &self,
        messages: &[ChatMessage],
    ) -> Result<Option<u64>, TargetError> {
        Ok(Some(mock_token_count(messages)))
    }

    fn context_tokens(&self) -> Option<u32> {
        Some(self.context)
    }

    async fn generate(&self, request: GenRequest, clock: &Clock) -> RequestRecord {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        let record = self.play(request, clock).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        record
    }
}

impl MockTarget {
    async fn play(&self, request: GenRequest, clock: &Clock) -> RequestRecord {
        let t_sent_ns = clock.now_ns();
        let prompt_tokens = mock_token_count(&request.messages);
        let mut record = RequestRecord {
            index: request.index,
            warmup: request.warmup,
            prompt_id: request.prompt_id.clone(),
            t_scheduled_ns: clock.ns(request.scheduled),
            t_sent_ns,
            t_first_byte_ns: None,
            chunks: Vec::new(),
            t_end_ns: t_sent_ns,
            prompt_tokens: Some(prompt_tokens),
            output_tokens: 0,
            reasoning_tokens: 0,
            token_count_source: TokenCountSource::Engine,
            finish_reason: FinishReason::Length,
            error: None,
            engine_timings: None,
            output_text: String::new(),
        };
        tokio::time::sleep(self.ttft).await;
        if self.fail_every > 0 && request.index.is_multiple_of(self.fail_every) {
            record.t_end_ns = clock.now_ns();
            record.finish_reason = FinishReason::Error;
            record.error = Some(RequestError {
                kind: ErrorKind::Engine,
                message: "mock failure".into(),
            });
            return record;
        }
        let n = self.emit_tokens.unwrap_or(request.max_tokens);
        if n == 0 {
            record.t_end_ns = clock.now_ns();
            record.finish_reason = FinishReason::Stop;
            record.error = Some(RequestError {
                kind: ErrorKind::NoOutput,
                message: "the first sampled token ended the generation".into(),
            });
            return record;
        }
        for i in 0..n {
            if i > 0 {
                tokio::time::sleep(self.itl).await;
            }
            let t = clock.now_ns();
            record.t_first_byte_ns.get_or_insert(t);
            record.chunks.push(Chunk {
                t_ns: t,
                tokens: 1,
                reasoning: false,
            });
            record.output_text.push_str(&self.token_text);
        }
        record.output_tokens = u64::from(n);
        record.t_end_ns = clock.now_ns();
        record
    }
}
