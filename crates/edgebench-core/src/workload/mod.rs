//! Workloads: scenarios loaded from a scenarios file, and the deterministic prompts built from them.

pub mod scenario;
pub mod sweep;

pub use scenario::{Passage, Scenario, ScenarioFile, WorkloadError, DEFAULT_SCENARIOS_TOML};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

use crate::backend::{ChatMessage, Target};

/// One prompt of a unit, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltPrompt {
    /// Stable for (seed, scenario, role, index): two runs with one seed send the same prompts.
    pub prompt_id: String,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: u32,
    /// The prompt length the builder aimed at.
    pub target_prompt_tokens: u32,
    /// The rendered prompt's tokens, when the target can count them.
    pub prompt_tokens: Option<u64>,
}

/// Whether a prompt is a warm-up or a measured one (they are drawn from separate streams, so the
/// measured prompts do not depend on the number of warm-ups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptRole {
    Warmup,
    Measured,
}

/// Options for building a unit's prompts.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub seed: u64,
    /// Give each prompt a unique lead-in so no two share a cacheable prefix (default true).
    pub unique_prefix: bool,
    /// Overrides the scenario's output-token range.
    pub max_tokens: Option<u32>,
}

fn sub_seed(seed: u64, scenario: &str, role: PromptRole, index: u32) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(scenario.as_bytes());
    h.update([u8::from(role == PromptRole::Warmup)]);
    h.update(index.to_le_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

/// Splits text into sentences (on ". ", "? ", "! " boundaries), keeping the punctuation.
fn sentences(paragraph: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = paragraph.as_bytes();
    for i in 0..b.len() {
        if matches!(b[i], b'.' | b'?' | b'!') && b.get(i + 1) == Some(&b' ') {
            out.push(paragraph[start..=i].trim());
            start = i + 1;
        }
    }
    if start < paragraph.len() && !paragraph[start..].trim().is_empty() {
        out.push(paragraph[start..].trim());
    }
    out
}

/// Builds the prompts of one scenario: `count` prompts of the given role, deterministic for the
/// seed. Prompt lengths are measured with the target's tokenizer when it has one, else estimated
/// at 4 characters a token.
pub async fn build_prompts(
    file: &ScenarioFile,
    scenario: &Scenario,
    role: PromptRole,
    count: u32,
    opts: &BuildOptions,
    target: &dyn Target,
) -> Result<Vec<BuiltPrompt>, WorkloadError> {
    let mut cache: HashMap<String, u64> = HashMap::new();
    let mut out = Vec::with_capacity(count as usize);
    for index in 0..count {
        let seed = sub_seed(opts.seed, &scenario.name, role, index);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let [lo, hi] = scenario.prompt_tokens;
        let target_tokens = rng.gen_range(lo..=hi);
        let [olo, ohi] = scenario.output_tokens;
        let max_tokens = opts.max_tokens.unwrap_or_else(|| rng.gen_range(olo..=ohi));
        let pick = if scenario.cycle_instructions {
            index as usize % scenario.instructions.len()
        } else {
            rng.gen_range(0..scenario.instructions.len())
        };
        let instruction = scenario.instructions[pick].clone();
        let system = if opts.unique_prefix {
            format!("Session {seed:016x}. {}", scenario.system)
        } else {
            scenario.system.clone()
        };
        let mut order: Vec<&Passage> = file.passages.iter().collect();
        order.shuffle(&mut rng);

        let render = |docs: &str| {
            vec![
                ChatMessage::new("system", system.clone()),
                ChatMessage::new("user", format!("{docs}\n\n{instruction}")),
            ]
        };
        let base = count_tokens(target, &render(""), &mut cache).await?;
        let mut docs = String::new();
        let mut estimate = base;
        let mut doc_no = 0;
        'fill: for round in 0.. {
            if round > 0 {
                order.shuffle(&mut rng);
            }
            for p in &order {
                doc_no += 1;
                let header = format!("Document {doc_no} ({}, {}):", p.kind, p.id);
                let mut started = false;
                for para in p
                    .text
                    .split("\n\n")
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    let t = count_text(target, para, &mut cache).await?;
                    let piece_fits = estimate + t <= u64::from(target_tokens);
                    let needs_more = estimate < u64::from(lo);
                    if !piece_fits && !needs_more {
                        break 'fill;
                    }
                    if !started {
                        docs.push_str(if docs.is_empty() { "" } else { "\n\n" });
                        docs.push_str(&header);
                        estimate += count_text(target, &header, &mut cache).await?;
                        started = true;
                    }
                    if piece_fits {
                        docs.push_str("\n\n");
                        docs.push_str(para);
                        estimate += t;
                        continue;
                    }
                    // Too big to add whole, but the prompt is still short: add sentence by sentence.
                    docs.push_str("\n\n");
                    for s in sentences(para) {
                        if estimate >= u64::from(lo) {
                            break 'fill;
                        }
                        docs.push_str(s);
                        docs.push(' ');
                        estimate += count_text(target, s, &mut cache).await?;
                    }
                }
            }
            if round > 1000 {
                return Err(WorkloadError::Invalid(format!(
                    "scenario {}: the passages cannot fill a {lo}-token prompt",
                    scenario.name
                )));
            }
        }
        // A study's prompt set: the instructions alone when no documents fit (other scenarios
        // keep their prompts as they were).
        let messages = if docs.is_empty() && scenario.cycle_instructions {
            vec![
                ChatMessage::new("system", system.clone()),
                ChatMessage::new("user", instruction.clone()),
            ]
        } else {
            render(docs.trim_end())
        };
        let prompt_tokens = target
            .count_prompt_tokens(&messages)
            .await
            .map_err(|e| WorkloadError::Tokenize(e.to_string()))?;
        out.push(BuiltPrompt {
            prompt_id: prompt_id(&messages),
            messages,
            max_tokens,
            target_prompt_tokens: target_tokens,
            prompt_tokens,
        });
    }
    Ok(out)
}

/// The `round`-th reuse of a prompt when a `--duration` unit has sent its whole pool: the same
/// documents and instruction behind a fresh lead-in (when prompts get unique lead-ins), so a
/// prefix cache still cannot serve it; round 0 is the prompt itself.
pub fn reuse(p: &BuiltPrompt, round: u32) -> BuiltPrompt {
    let mut out = p.clone();
    if round == 0 {
        return out;
    }
    if let Some(first) = out.messages.first_mut() {
        let lead = first
            .content
            .strip_prefix("Session ")
            .and_then(|rest| rest.get(..16).zip(rest.get(16..)))
            .filter(|(hex, rest)| {
                rest.starts_with('.') && hex.bytes().all(|b| b.is_ascii_hexdigit())
            });
        if let Some((hex, rest)) = lead {
            let old = u64::from_str_radix(hex, 16).unwrap_or(0);
            let mut h = Sha256::new();
            h.update(old.to_le_bytes());
            h.update(round.to_le_bytes());
            let d = h.finalize();
            let mut b = [0u8; 8];
            b.copy_from_slice(&d[..8]);
            first.content = format!("Session {:016x}{rest}", u64::from_le_bytes(b));
        }
    }
    out.prompt_id = prompt_id(&out.messages);
    out
}

/// A short content hash of a prompt's messages.
pub fn prompt_id(messages: &[ChatMessage]) -> String {
    let mut h = Sha256::new();
    for m in messages {
        h.update(m.role.as_bytes());
        h.update([0]);
        h.update(m.content.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..8])
}

async fn count_tokens(
    target: &dyn Target,
    messages: &[ChatMessage],
    _cache: &mut HashMap<String, u64>,
) -> Result<u64, WorkloadError> {
    let n = target
        .count_prompt_tokens(messages)
        .await
        .map_err(|e| WorkloadError::Tokenize(e.to_string()))?;
    Ok(n.unwrap_or_else(|| {
        messages
            .iter()
            .map(|m| m.content.len() as u64 / 4 + 4)
            .sum()
    }))
}

/// Tokens of a text piece on its own (a user message without template overhead).
async fn count_text(
    target: &dyn Target,
    text: &str,
    cache: &mut HashMap<String, u64>,
) -> Result<u64, WorkloadError> {
    if let Some(n) = cache.get(text) {
        return Ok(*n);
    }
    let empty = [ChatMessage::new("user", "")];
    let with = [ChatMessage::new("user", text)];
    let base = count_tokens(target, &empty, cache).await?;
    let n = count_tokens(target, &with, cache)
        .await?
        .saturating_sub(base);
    cache.insert(text.to_string(), n);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::mock::MockTarget;

    #[tokio::test]
    async fn reused_prompts_get_a_fresh_lead_in() {
        let file = ScenarioFile::default_file().unwrap();
        let sc = &file.select(&["interactive_assistant".into()]).unwrap()[0].clone();
        let ps = build_prompts(
            &file,
            sc,
            PromptRole::Measured,
            1,
            &opts(42),
            &MockTarget::default(),
        )
        .await
        .unwrap();
        let p = &ps[0];
        assert_eq!(&reuse(p, 0), p);
        let (r1, r2) = (reuse(p, 1), reuse(p, 2));
        assert_ne!(r1.prompt_id, p.prompt_id);
        assert_ne!(r1.prompt_id, r2.prompt_id);
        assert_ne!(r1.messages[0].content[..25], p.messages[0].content[..25]);
        assert_eq!(r1.messages[0].content[25..], p.messages[0].content[25..]);
        assert_eq!(r1.messages[1], p.messages[1]);
        assert_eq!(r1.messages[0].content.len(), p.messages[0].content.len());
    }

    fn opts(seed: u64) -> BuildOptions {
        BuildOptions {
            seed,
            unique_prefix: true,
            max_tokens: None,
        }
    }

    #[tokio::test]
    async fn prompts_are_deterministic_unique_and_in_range() {
        let file = ScenarioFile::default_file().unwrap();
        let target = MockTarget::default();
        for sc in &file.scenarios {
            let a = build_prompts(&file, sc, PromptRole::Measured, 6, &opts(42), &target)
                .await
                .unwrap();
            let b = build_prompts(&file, sc, PromptRole::Measured, 6, &opts(42), &target)
                .await
                .unwrap();
            assert_eq!(a, b, "{} not deterministic", sc.name);
            let c = build_prompts(&file, sc, PromptRole::Measured, 6, &opts(7), &target)
                .await
                .unwrap();
            assert_ne!(a, c, "{}: the seed changes nothing", sc.name);
            let mut ids: Vec<_> = a.iter().map(|p| p.prompt_id.clone()).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), 6, "{}: prompts repeat", sc.name);
            let firsts: std::collections::HashSet<_> = a
                .iter()
                .map(|p| p.messages[0].content[..24].to_string())
                .collect();
            assert_eq!(firsts.len(), 6, "{}: prompts share a prefix", sc.name);
            for p in &a {
                let n = p.prompt_tokens.unwrap();
                let [lo, hi] = sc.prompt_tokens;
                // The mock counts words; allow the last sentence to overshoot a little.
                assert!(
                    n >= u64::from(lo) && n <= u64::from(hi) + 60,
                    "{}: {n} tokens outside {lo}..{hi}",
                    sc.name
                );
                let [olo, ohi] = sc.output_tokens;
                assert!((olo..=ohi).contains(&p.max_tokens));
            }
        }
    }

    #[tokio::test]
    async fn measured_prompts_do_not_depend_on_warmups() {
        let file = ScenarioFile::default_file().unwrap();
        let sc = &file.scenarios[0];
        let t = MockTarget::default();
        let m = build_prompts(&file, sc, PromptRole::Measured, 2, &opts(1), &t)
            .await
            .unwrap();
        let w = build_prompts(&file, sc, PromptRole::Warmup, 2, &opts(1), &t)
            .await
            .unwrap();
        assert_ne!(m[0].prompt_id, w[0].prompt_id);
    }

    #[tokio::test]
    async fn shared_prefix_mode_keeps_the_system_prompt() {
        let file = ScenarioFile::default_file().unwrap();
        let sc = &file.scenarios[0];
        let mut o = opts(1);
        o.unique_prefix = false;
        o.max_tokens = Some(7);
        let p = build_prompts(
            &file,
            sc,
            PromptRole::Measured,
            2,
            &o,
            &MockTarget::default(),
        )
        .await
        .unwrap();
        assert_eq!(p[0].messages[0].content, sc.system);
        assert_eq!(p[0].max_tokens, 7);
    }

    #[test]
    fn sentences_split_on_terminal_punctuation() {
        assert_eq!(
            sentences("One. Two? Three! Four"),
            vec!["One.", "Two?", "Three!", "Four"]
        );
        assert_eq!(sentences("No split e.g.here."), vec!["No split e.g.here."]);
    }
}
