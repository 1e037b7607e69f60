//! Reading answers out of generated text: labels (robustly), numbers, letters, code and JSON.

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// How a generated answer was mapped to a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// The answer is the label as written.
    Exact,
    /// The same after lower-casing and folding punctuation and spaces to `_`.
    Normalized,
    /// The answer contains exactly one longest label.
    Contained,
    /// The closest label by edit distance (normalized similarity at least 0.6).
    EditDistance,
    /// Nothing close enough.
    Invalid,
}

/// The label an answer maps to, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelMatch {
    /// `None` when invalid.
    pub label: Option<String>,
    pub how: MatchKind,
}

/// Lower-cases and folds every run of non-alphanumeric characters into one `_`.
pub fn normalize_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut gap = false;
    for c in s.chars() {
        if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            out.extend(c.to_lowercase());
        } else {
            gap = true;
        }
    }
    out
}

/// The first non-empty line of an answer, without a leading "Intent:"/"Label:"-style tag,
/// list markers, quotes and trailing punctuation.
pub fn answer_line(text: &str) -> &str {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut l = line;
    for tag in [
        "intent:",
        "label:",
        "category:",
        "sentiment:",
        "answer:",
        "class:",
    ] {
        if l.get(..tag.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(tag))
        {
            l = l[tag.len()..].trim_start();
        }
    }
    l.trim_start_matches(['-', '*', '#', ' '])
        .trim_matches(['"', '\'', '`', '*', ' '])
        .trim_end_matches(['.', ',', ';', ':', '!'])
}

/// Maps a generated answer to one of `labels`: exact, then normalized, then the longest label
/// the answer contains, then the closest by edit distance; else invalid.
pub fn map_label(answer: &str, labels: &[String]) -> LabelMatch {
    let line = answer_line(answer);
    if let Some(l) = labels.iter().find(|l| l.as_str() == line) {
        return LabelMatch {
            label: Some(l.clone()),
            how: MatchKind::Exact,
        };
    }
    let norm = normalize_label(line);
    if norm.is_empty() {
        return LabelMatch {
            label: None,
            how: MatchKind::Invalid,
        };
    }
    let normed: Vec<String> = labels.iter().map(|l| normalize_label(l)).collect();
    if let Some(i) = normed.iter().position(|l| *l == norm) {
        return LabelMatch {
            label: Some(labels[i].clone()),
            how: MatchKind::Normalized,
        };
    }
    // Contained as whole `_`-separated words; the longest wins, ties are ambiguous.
    let padded = format!("_{norm}_");
    let mut best: Option<(usize, usize)> = None;
    let mut tie = false;
    for (i, l) in normed.iter().enumerate() {
        if !l.is_empty() && padded.contains(&format!("_{l}_")) {
            match best {
                Some((_, len)) if l.len() == len => tie = true,
                Some((_, len)) if l.len() < len => {}
                _ => {
                    best = Some((i, l.len()));
                    tie = false;
                }
            }
        }
    }
    if let (Some((i, _)), false) = (best, tie) {
        return LabelMatch {
            label: Some(labels[i].clone()),
            how: MatchKind::Contained,
        };
    }
    let mut best = (0.0f64, None);
    for (i, l) in normed.iter().enumerate() {
        let sim = strsim::normalized_levenshtein(&norm, l);
        if sim > best.0 {
            best = (sim, Some(i));
        }
    }
    match best {
        (sim, Some(i)) if sim >= 0.6 => LabelMatch {
            label: Some(labels[i].clone()),
            how: MatchKind::EditDistance,
        },
        _ => LabelMatch {
            label: None,
            how: MatchKind::Invalid,
        },
    }
}

/// A number written in text, as a canonical string ("1,234.50" -> "1234.5", "$18" -> "18").
pub fn canonical_number(s: &str) -> Option<String> {
    let cleaned: String = s
        .trim()
        .trim_start_matches(['$', '£', '€'])
        .chars()
        .filter(|c| *c != ',')
        .collect();
    let cleaned = cleaned.trim_end_matches('.');
    let v: f64 = cleaned.parse().ok()?;
    if !v.is_finite() {
        return None;
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        Some(format!("{}", v as i64))
    } else {
        Some(format!("{v}"))
    }
}

/// Every number in the text, in order (commas inside numbers allowed, a leading minus kept).
fn numbers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let neg = b[i] == '-' && i + 1 < b.len() && b[i + 1].is_ascii_digit();
        if b[i].is_ascii_digit() || neg {
            let start = i;
            i += 1;
            while i < b.len()
                && (b[i].is_ascii_digit()
                    || ((b[i] == ',' || b[i] == '.')
                        && i + 1 < b.len()
                        && b[i + 1].is_ascii_digit()))
            {
                i += 1;
            }
            let s: String = b[start..i].iter().collect();
            if let Some(n) = canonical_number(&s) {
                out.push(n);
            }
        } else {
            i += 1;
        }
    }
    out
}

/// GSM8K's gold answer: the number after "####".
pub fn gsm8k_gold(answer: &str) -> Option<String> {
    let tail = answer.rsplit("####").next()?;
    canonical_number(tail.trim())
}

/// The final number of a generated solution: after "####" when present, else after the last
/// "answer is", else the last number in the text.
pub fn final_number(text: &str) -> Option<String> {
    if let Some((_, tail)) = text.rsplit_once("####") {
        if let Some(n) = numbers(tail).into_iter().next() {
            return Some(n);
        }
    }
    // ASCII lower-casing keeps byte offsets, so `i` indexes `text` too.
    let lower = text.to_ascii_lowercase();
    if let Some(i) = lower.rfind("answer is") {
        if let Some(n) = numbers(&text[i..]).into_iter().next() {
            return Some(n);
        }
    }
    numbers(text).pop()
}

/// lm-evaluation-harness's GSM8K filters: `strict-match` takes the number after the first
/// "#### "; `flexible-extract` the last number-like run in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gsm8kFilter {
    Strict,
    Flexible,
}

/// The answer a harness GSM8K filter extracts (before [`harness_normalise`]).
pub fn gsm8k_filter(text: &str, filter: Gsm8kFilter) -> Option<String> {
    static STRICT: OnceLock<Regex> = OnceLock::new();
    static FLEXIBLE: OnceLock<Regex> = OnceLock::new();
    match filter {
        Gsm8kFilter::Strict => {
            let re = STRICT.get_or_init(|| Regex::new(r"#### (\-?[0-9\.\,]+)").expect("regex"));
            re.captures(text).map(|c| c[1].to_string())
        }
        Gsm8kFilter::Flexible => {
            let re =
                FLEXIBLE.get_or_init(|| Regex::new(r"(-?[$0-9.,]{2,})|(-?[0-9]+)").expect("regex"));
            re.find_iter(text).last().map(|m| m.as_str().to_string())
        }
    }
}

/// The harness's exact-match normalisation for GSM8K: everything up to the last "#### " removed,
/// then commas, dollar signs and one trailing full stop; compared case-blind.
pub fn harness_normalise(s: &str) -> String {
    let s = match s.rfind("#### ") {
        Some(i) => &s[i + 5..],
        None => s,
    };
    let s: String = s.chars().filter(|c| *c != ',' && *c != '$').collect();
    let s = s.strip_suffix('.').unwrap_or(&s);
    s.to_lowercase()
}

/// Whether a generated solution matches the reference answer under a harness GSM8K filter.
pub fn gsm8k_harness_match(text: &str, reference: &str, filter: Gsm8kFilter) -> bool {
    gsm8k_filter(text, filter)
        .is_some_and(|got| harness_normalise(&got) == harness_normalise(reference))
}

/// The letter (A-D) a generated multiple-choice answer picks: the first standalone A, B, C or D.
pub fn choice_letter(text: &str, n_choices: usize) -> Option<usize> {
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let k = (c as u32).wrapping_sub('A' as u32) as usize;
        if k < n_choices {
            let before = i == 0 || !chars[i - 1].is_alphanumeric();
            let after = i + 1 == chars.len() || !chars[i + 1].is_alphanumeric();
            if before && after {
                return Some(k);
            }
        }
    }
    None
}

/// The code of a completion: the first fenced block when there is one, else the text.
pub fn code_block(text: &str) -> String {
    if let Some(start) = text.find("```") {
        let rest = &text[start + 3..];
        let body = rest.split_once('\n').map_or("", |(_, b)| b);
        let end = body.find("```").unwrap_or(body.len());
        return body[..end].to_string();
    }
    text.to_string()
}

/// The HumanEval program to run, as the code (the completion's, on top of the prompt unless the
/// code defines the entry point itself) and the tests (the problem's, then the call of `check`).
pub fn humaneval_program(
    prompt: &str,
    completion: &str,
    test: &str,
    entry_point: &str,
) -> (String, String) {
    let code = code_block(completion);
    let body = if code.contains(&format!("def {entry_point}(")) {
        // The model wrote the whole function: keep the prompt's imports before it.
        let imports: String = prompt
            .lines()
            .filter(|l| l.starts_with("import ") || l.starts_with("from "))
            .map(|l| format!("{l}\n"))
            .collect();
        format!("{imports}{code}")
    } else {
        format!("{prompt}{code}")
    };
    (body, format!("{test}\n\ncheck({entry_point})\n"))
}

/// The first JSON object in the text (inside a fence or not).
pub fn json_object(text: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let code = code_block(text);
    for candidate in [code.as_str(), text] {
        let mut from = 0;
        while let Some(off) = candidate[from..].find('{') {
            let start = from + off;
            let mut stream = serde_json::Deserializer::from_str(&candidate[start..])
                .into_iter::<serde_json::Value>();
            if let Some(Ok(serde_json::Value::Object(m))) = stream.next() {
                return Some(m);
            }
            from = start + 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        [
            "card_arrival",
            "card_linking",
            "lost_or_stolen_card",
            "exchange_rate",
            "card_not_working",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn labels_map_exact_normalized_contained_close_or_invalid() {
        let l = labels();
        let m = |s: &str| map_label(s, &l);
        assert_eq!(m("card_arrival").how, MatchKind::Exact);
        assert_eq!(m("Card Arrival.").how, MatchKind::Normalized);
        assert_eq!(
            m("Intent: \"card_linking\"").label.as_deref(),
            Some("card_linking")
        );
        let c = m("The intent is lost_or_stolen_card because ...");
        assert_eq!(
            (c.label.as_deref(), c.how),
            (Some("lost_or_stolen_card"), MatchKind::Contained)
        );
        let e = m("card_arival");
        assert_eq!(
            (e.label.as_deref(), e.how),
            (Some("card_arrival"), MatchKind::EditDistance)
        );
        assert_eq!(m("I cannot help with that").how, MatchKind::Invalid);
        assert_eq!(m("").how, MatchKind::Invalid);
        // Multi-byte text never splits a character.
        assert_eq!(m("é€ intent").how, MatchKind::Invalid);
        assert_eq!(m("ñintent: x").how, MatchKind::Invalid);
        // Only the first line counts.
        assert_eq!(
            m("\n\nexchange_rate\ncard_arrival").label.as_deref(),
            Some("exchange_rate")
        );
    }

    #[test]
    fn numbers_are_extracted_like_the_gsm8k_convention() {
        assert_eq!(gsm8k_gold("so 9*2 = 18\n#### 18").as_deref(), Some("18"));
        assert_eq!(gsm8k_gold("#### 1,234").as_deref(), Some("1234"));
        assert_eq!(
            final_number("She makes $18.00 a day.").as_deref(),
            Some("18")
        );
        assert_eq!(
            final_number("3 + 4 = 7. The answer is 42 eggs, not 7").as_deref(),
            Some("42")
        );
        assert_eq!(final_number("#### -5").as_deref(), Some("-5"));
        assert_eq!(final_number("1.5 then 2.25").as_deref(), Some("2.25"));
        assert_eq!(final_number("no digits"), None);
        assert_eq!(final_number("İİ The answer is 7").as_deref(), Some("7"));
    }

    #[test]
    fn letters_code_and_json() {
        assert_eq!(choice_letter("Answer: C", 4), Some(2));
        assert_eq!(choice_letter("BAD is a word; (B)", 4), Some(1));
        assert_eq!(choice_letter("none", 4), None);
        assert_eq!(code_block("x\n```python\nreturn 1\n```\ny"), "return 1\n");
        let (code, tests) = humaneval_program(
            "from typing import List\ndef f(x):\n",
            "    return x\n",
            "def check(c): assert c(1) == 1",
            "f",
        );
        assert!(code.starts_with("from typing import List\ndef f(x):\n    return x\n"));
        assert!(tests.starts_with("def check(c)") && tests.ends_with("check(f)\n"));
        let (whole, _) = humaneval_program(
            "import math\ndef f(x):\n",
            "```python\ndef f(x):\n    return x\n```",
            "T",
            "f",
        );
        assert!(
            whole.starts_with("import math\ndef f(x):\n    return x\n"),
            "{whole}"
        );
        let j = json_object("Sure! ```json\n{\"a\": 1}\n``` done").unwrap();
        assert_eq!(j["a"], 1);
        assert!(json_object("{not json} then {\"b\": [1]}")
            .unwrap()
            .contains_key("b"));
        assert!(json_object("nothing").is_none());
    }

    #[test]
    fn harness_gsm8k_filters() {
        use Gsm8kFilter::{Flexible, Strict};
        let text = "She has 3 + 4 = 7 apples.\n#### 1,250\nQuestion: next one costs $5.";
        assert_eq!(gsm8k_filter(text, Strict).as_deref(), Some("1,250"));
        assert_eq!(gsm8k_filter(text, Flexible).as_deref(), Some("$5."));
        assert!(gsm8k_harness_match(text, "so #### 1250", Strict));
        assert!(gsm8k_harness_match(text, "#### 5", Flexible));
        assert!(!gsm8k_harness_match("The answer is 12", "#### 12", Strict));
        assert!(gsm8k_harness_match(
            "The answer is 12.",
            "#### 12",
            Flexible
        ));
        assert_eq!(gsm8k_filter("no digits", Flexible), None);
        assert_eq!(harness_normalise("#### -3,000."), "-3000");
    }
}
