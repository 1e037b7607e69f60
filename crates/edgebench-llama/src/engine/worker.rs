//! The engine thread's worker: the context sized per request, chat templates, greedy or
//! sampled generation with each token stamped, batched sequences sharing a prompt prefix, and
//! log-likelihoods from the logits.

use super::*;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use std::collections::HashMap;

/// Context sizes are multiples of this (llama.cpp pads to 256 as well).
pub(super) const CTX_STEP: u32 = 256;

pub(super) struct Worker<'m> {
    pub(super) model: &'m LlamaModel,
    pub(super) backend: &'static LlamaBackend,
    /// `None` only while being re-created.
    pub(super) ctx: Option<LlamaContext<'m>>,
    pub(super) ctx_size: u32,
    /// Sequences the current context was created for (1 for benchmarks).
    pub(super) ctx_seqs: u32,
    pub(super) fixed_ctx: Option<u32>,
    pub(super) max_ctx: u32,
    pub(super) cfg: EngineConfig,
    pub(super) template: Option<LlamaChatTemplate>,
    pub(super) batch: LlamaBatch<'static>,
    pub(super) n_batch: usize,
    pub(super) cancel: Option<Arc<AtomicBool>>,
    /// The tokens of the last log-likelihood context, held in sequence 0's KV cache; the next
    /// call decodes only what follows their common prefix (a subject's few-shot examples).
    pub(super) ll_context: Vec<LlamaToken>,
}

/// ChatML, used when a model carries no chat template (as llama-server does).
pub(super) const FALLBACK_TEMPLATE: &str = "chatml";

/// The index of the largest value (the first on ties, NaN ignored), as llama.cpp's greedy sampler.
pub(super) fn argmax(logits: &[f32]) -> i32 {
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

pub(super) fn sampler(s: &Sampling, n_vocab: i32) -> LlamaSampler {
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
    pub(super) fn reserve(&mut self, tokens: u32) -> Result<u32, EngineError> {
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
    pub(super) fn create_context(&mut self, n_ctx: u32, seqs: u32) -> Result<u32, EngineError> {
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

    pub(super) fn ctx(&mut self) -> Result<&mut LlamaContext<'m>, EngineError> {
        self.ctx
            .as_mut()
            .ok_or_else(|| EngineError::Context("no context".into()))
    }

    pub(super) fn render(&self, messages: &[ChatMessage]) -> Result<String, EngineError> {
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

    pub(super) fn tokens(&self, prompt: &Prompt) -> Result<Vec<LlamaToken>, EngineError> {
        match prompt {
            Prompt::Tokens(t) => Ok(t.iter().map(|&i| LlamaToken(i)).collect()),
            Prompt::Chat(messages) => {
                let text = self.render(messages)?;
                Ok(self.model.vocab().tokenize(text.as_bytes(), true, true))
            }
        }
    }

    pub(super) fn decode(&mut self) -> Result<(), EngineError> {
        let ctx = self
            .ctx
            .as_mut()
            .ok_or_else(|| EngineError::Context("no context".into()))?;
        ctx.decode(&mut self.batch)
            .map_err(|e| EngineError::Decode(e.to_string()))
    }

    pub(super) fn generate(&mut self, job: GenerateJob) -> Result<Generation, EngineError> {
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
pub(super) struct Slot {
    pub(super) item: usize,
    pub(super) seq: i32,
    /// Prompt tokens not yet decoded.
    pub(super) pending: Vec<LlamaToken>,
    /// The next position in the sequence.
    pub(super) pos: i32,
    /// Where this slot's logits are in the last batch.
    pub(super) logits_at: Option<i32>,
    pub(super) generated: u32,
    pub(super) bytes: Vec<u8>,
    /// The grammar that keeps a constrained answer to its choices.
    pub(super) grammar: Option<LlamaSampler>,
    /// The sampler of a sampled (temperature > 0) answer.
    pub(super) sampler: Option<LlamaSampler>,
}

/// The greedy pick among the tokens `grammar` allows, accepted into it: the plain argmax when
/// the grammar allows it (one check), else the best of the whole vocabulary after the grammar
/// has ruled tokens out.
pub(super) fn constrained_pick(grammar: &mut LlamaSampler, logits: &[f32]) -> LlamaToken {
    let top = argmax(logits);
    let top_logit = usize::try_from(top)
        .ok()
        .and_then(|i| logits.get(i))
        .copied()
        .unwrap_or(f32::NEG_INFINITY);
    let mut one = LlamaTokenDataArray::new(
        vec![LlamaTokenData::new(LlamaToken(top), top_logit, 0.0)],
        false,
    );
    grammar.apply(&mut one);
    let tok = if one.data.first().is_some_and(|d| d.logit().is_finite()) {
        LlamaToken(top)
    } else {
        let mut all = LlamaTokenDataArray::from_iter(
            logits.iter().enumerate().map(|(i, &l)| {
                LlamaTokenData::new(LlamaToken(i32::try_from(i).unwrap_or(0)), l, 0.0)
            }),
            false,
        );
        grammar.apply(&mut all);
        let mut best: Option<&LlamaTokenData> = None;
        for d in all.data.iter().filter(|d| d.logit().is_finite()) {
            if best.is_none_or(|b| d.logit() > b.logit()) {
                best = Some(d);
            }
        }
        best.map_or(LlamaToken(top), LlamaTokenData::id)
    };
    grammar.accept(tok);
    tok
}

/// What a log-softmax over `logits` needs once per row: the largest logit and the log of the
/// sum of the exponentials shifted by it (one pass over the vocabulary).
pub(super) fn log_norm(logits: &[f32]) -> (f32, f64) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    (max, sum.ln())
}

/// Log-softmax of `logits` at `token`, with the row's [`log_norm`] already computed.
pub(super) fn log_prob_in(logits: &[f32], (max, ln_sum): (f32, f64), token: LlamaToken) -> f64 {
    let l = usize::try_from(token.0)
        .ok()
        .and_then(|i| logits.get(i))
        .copied()
        .unwrap_or(f32::NEG_INFINITY);
    f64::from(l - max) - ln_sum
}

impl<'m> Worker<'m> {
    pub(super) fn add(
        &mut self,
        t: LlamaToken,
        pos: i32,
        seq: i32,
        logits: bool,
    ) -> Result<(), EngineError> {
        self.batch
            .add(t, pos, &[seq], logits)
            .map_err(|e| EngineError::Decode(e.to_string()))
    }

    /// Decodes `tokens` into sequence `seq` from position `start`, logits on the last one only
    /// when `logits_last`.
    pub(super) fn decode_seq(
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

    pub(super) fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    pub(super) fn shared_prefix(
        &mut self,
        job: SharedPrefixJob,
    ) -> Result<Vec<String>, EngineError> {
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
        let n_vocab = self.model.n_vocab();
        let grammar = if job.choices.is_empty() {
            None
        } else {
            let g = edgebench_core::eval::method::choice_grammar(&job.choices);
            // Checked once here, so each slot's copy below cannot fail.
            LlamaSampler::grammar(self.model, &g, "root")
                .map_err(|e| EngineError::Grammar(e.to_string()))?;
            Some(g)
        };
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
                        let grammar = match &grammar {
                            None => None,
                            Some(g) => Some(
                                LlamaSampler::grammar(self.model, g, "root")
                                    .map_err(|e| EngineError::Grammar(e.to_string()))?,
                            ),
                        };
                        let sampled = (job.temperature > 0.0).then(|| {
                            let s = Sampling {
                                temperature: job.temperature,
                                top_p: 0.95,
                                seed: job.seed.wrapping_add(item as u64),
                                ..Sampling::default()
                            };
                            sampler(&s, n_vocab)
                        });
                        *slot = Some(Slot {
                            item,
                            seq,
                            pending,
                            pos,
                            logits_at: None,
                            generated: 0,
                            bytes: Vec::new(),
                            grammar,
                            sampler: sampled,
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
                let tok = if let Some(smp) = slot.sampler.as_mut() {
                    smp.sample(self.ctx()?, at)
                } else {
                    let logits = self.ctx()?.get_logits_ith(at);
                    match slot.grammar.as_mut() {
                        None => LlamaToken(argmax(logits)),
                        Some(g) => constrained_pick(g, logits),
                    }
                };
                let mut done = vocab.is_eog(tok);
                if !done {
                    slot.generated += 1;
                    vocab.token_to_piece_into(tok, &mut slot.bytes, false, None);
                    let text = String::from_utf8_lossy(&slot.bytes);
                    let forced = if slot.grammar.is_some() {
                        edgebench_core::eval::method::forced_choice(&text, &job.choices)
                    } else {
                        None
                    };
                    if let Some(choice) = forced {
                        // The grammar leaves one choice: the rest of it is what would be generated.
                        slot.bytes = choice.as_bytes().to_vec();
                        done = true;
                    } else if job
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

    pub(super) fn loglikelihoods(
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
        if ctx_toks.len() + longest > self.max_ctx as usize {
            return Err(EngineError::ContextOverflow {
                prompt_tokens: ctx_toks.len(),
                max_tokens: longest as u32,
                n_ctx: self.max_ctx,
            });
        }
        // Continuations are scored side by side, each in its own sequence that shares the
        // context's KV cells, as many per llama.cpp batch as the context holds.
        let seqs = (conts.len() as u32).clamp(1, LL_SEQS);
        let fit = (self.max_ctx as usize - ctx_toks.len()) / longest.max(1);
        let seqs = seqs.min(fit.max(1) as u32);
        let need = (ctx_toks.len() + seqs as usize * longest) as u32;
        let n_ctx = need.div_ceil(CTX_STEP).max(1).saturating_mul(CTX_STEP);
        if self.ctx.is_none() || self.ctx_seqs != seqs + 1 || self.ctx_size < n_ctx {
            self.create_context(n_ctx, seqs + 1)?;
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
        }
        self.ll_context.clear();
        let n = ctx_toks.len() as i32;
        self.decode_seq(&ctx_toks[keep..], keep as i32, 0, true)?;
        self.ll_context = ctx_toks;
        let first: Vec<f32> = self.ctx()?.get_logits_ith(-1).to_vec();
        let first_norm = log_norm(&first);
        let mut out: Vec<f64> = conts
            .iter()
            .map(|c| {
                c.first()
                    .map_or(0.0, |&c0| log_prob_in(&first, first_norm, c0))
            })
            .collect();
        // The continuations with more than one token, in token order (so that those sharing
        // leading tokens fall in one group), in groups that fit one batch.
        let mut multi: Vec<usize> = (0..conts.len()).filter(|&i| conts[i].len() > 1).collect();
        multi.sort_by(|&a, &b| conts[a].cmp(&conts[b]));
        let mut batch = LlamaBatch::new(self.n_batch, LL_SEQS as i32);
        let mut at = 0;
        while at < multi.len() {
            // A prefix tree of the group's fed tokens: a token shared by several continuations
            // is decoded once, in all their sequences.
            let mut nodes: Vec<TrieNode> = Vec::new();
            let mut index: HashMap<&[LlamaToken], usize> = HashMap::new();
            let mut group: Vec<(usize, i32)> = Vec::new();
            while at < multi.len() && group.len() < seqs as usize {
                let i = multi[at];
                let fed = &conts[i][..conts[i].len() - 1];
                let new_nodes = (1..=fed.len())
                    .filter(|&j| !index.contains_key(&fed[..j]))
                    .count();
                if !group.is_empty() && nodes.len() + new_nodes > self.n_batch {
                    break;
                }
                let seq = group.len() as i32 + 1;
                for j in 1..=fed.len() {
                    let k = *index.entry(&fed[..j]).or_insert_with(|| {
                        nodes.push(TrieNode {
                            token: fed[j - 1],
                            pos: n + j as i32 - 1,
                            seqs: Vec::new(),
                        });
                        nodes.len() - 1
                    });
                    nodes[k].seqs.push(seq);
                }
                group.push((i, seq));
                at += 1;
            }
            for &(_, seq) in &group {
                let ctx = self.ctx()?;
                ctx.clear_kv_cache_seq(Some(seq as u32), None, None)
                    .map_err(|e| EngineError::Decode(e.to_string()))?;
                ctx.copy_kv_cache_seq(0, seq, None, None)
                    .map_err(|e| EngineError::Decode(e.to_string()))?;
            }
            batch.clear();
            for node in &nodes {
                batch
                    .add(node.token, node.pos, &node.seqs, true)
                    .map_err(|e| EngineError::Decode(e.to_string()))?;
            }
            self.ctx()?
                .decode(&mut batch)
                .map_err(|e| EngineError::Decode(e.to_string()))?;
            // Each node's row is normalised once, however many continuations pass through it.
            let ctx = self.ctx()?;
            let norms: Vec<(f32, f64)> = (0..nodes.len())
                .map(|row| log_norm(ctx.get_logits_ith(row as i32)))
                .collect();
            for &(i, seq) in &group {
                let cont = &conts[i];
                for j in 1..cont.len() {
                    let row = index[&cont[..j]];
                    let logits = self.ctx()?.get_logits_ith(row as i32);
                    out[i] += log_prob_in(logits, norms[row], cont[j]);
                }
                self.ctx()?
                    .clear_kv_cache_seq(Some(seq as u32), None, None)
                    .map_err(|e| EngineError::Decode(e.to_string()))?;
            }
        }
        Ok(out)
    }
}

/// A token of a continuation prefix tree: decoded once at `pos`, in every sequence whose
/// continuation passes through it.
struct TrieNode {
    token: LlamaToken,
    pos: i32,
    seqs: Vec<i32>,
}

/// Sequences scored together by [`Worker::loglikelihoods`] (besides the context's).
const LL_SEQS: u32 = 128;

#[cfg(test)]
mod tests {
    use super::{argmax, log_norm, log_prob_in};
    use llama_cpp_2::token::LlamaToken;

    fn log_prob(logits: &[f32], token: LlamaToken) -> f64 {
        log_prob_in(logits, log_norm(logits), token)
    }

    #[test]
    pub(super) fn log_prob_is_a_log_softmax() {
        let l = [1.0f32, 2.0, 3.0];
        let z: f64 = l.iter().map(|&x| f64::from(x).exp()).sum();
        for (i, &x) in l.iter().enumerate() {
            let want = f64::from(x) - z.ln();
            assert!((log_prob(&l, LlamaToken(i as i32)) - want).abs() < 1e-9);
        }
        assert_eq!(log_prob(&l, LlamaToken(7)), f64::NEG_INFINITY);
    }

    #[test]
    pub(super) fn argmax_takes_the_first_maximum_and_ignores_nan() {
        assert_eq!(argmax(&[0.1, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, -5.0, -4.0]), 2);
        assert_eq!(argmax(&[]), 0);
    }
}
