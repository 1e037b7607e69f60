//! How a classification answer is obtained (free text, constrained to the labels, or the most
//! likely label) and the forms a label constraint takes: a GBNF grammar, a JSON schema, a list.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `--answer`: how a classification task gets the model's answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum AnswerMode {
    /// The model writes freely; the text is mapped to a label (what an application sees).
    #[default]
    Free,
    /// The model writes, but only a label can come out (grammar or the server's own mechanism).
    Constrained,
    /// Each label's log-likelihood after the prompt; the most likely label wins.
    Loglik,
}

impl AnswerMode {
    pub const ALL: [AnswerMode; 3] = [Self::Free, Self::Constrained, Self::Loglik];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Constrained => "constrained",
            Self::Loglik => "loglik",
        }
    }

    /// The method name recorded with the scores.
    pub fn method(self) -> &'static str {
        match self {
            Self::Free => "generate",
            Self::Constrained => "generate-constrained",
            Self::Loglik => "loglikelihood",
        }
    }
}

impl TryFrom<String> for AnswerMode {
    type Error = String;

    /// Named as the field, so a JSON request's error says which field is wrong.
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse().map_err(|e| format!("answer: {e}"))
    }
}

impl fmt::Display for AnswerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AnswerMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not one of free, constrained, loglik"))
    }
}

/// A GBNF grammar whose only sentences are the `choices`, as llama.cpp's grammar sampler and
/// llama-server's `grammar` field take it.
pub fn choice_grammar(choices: &[String]) -> String {
    let alts: Vec<String> = choices.iter().map(|c| gbnf_literal(c)).collect();
    format!("root ::= {}\n", alts.join(" | "))
}

/// `s` as a GBNF string literal.
fn gbnf_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON schema for `{"label": <one of the choices>}` (LM Studio, Ollama and TGI constrain to a
/// schema, not to a list).
pub fn choice_schema(choices: &[String]) -> Value {
    json!({
        "type": "object",
        "properties": {"label": {"type": "string", "enum": choices}},
        "required": ["label"],
        "additionalProperties": false,
    })
}

/// The label in an answer constrained by [`choice_schema`]; the text itself when it is not
/// that JSON (a server that returned the bare label).
pub fn label_from_schema_answer(text: &str) -> String {
    serde_json::from_str::<Value>(text.trim())
        .ok()
        .and_then(|v| v.get("label").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| text.trim().to_string())
}

/// When a constrained answer so far (`text`) leaves exactly one choice, that choice: the rest
/// of the answer is forced, so it need not be generated. `None` while several remain.
pub fn forced_choice<'a>(text: &str, choices: &'a [String]) -> Option<&'a str> {
    let mut left = choices.iter().filter(|c| c.starts_with(text));
    let first = left.next()?;
    if left.next().is_some() {
        return None;
    }
    Some(first.as_str())
}

/// The index of the best of `scores` (the first on ties; NaN never wins); `None` when empty.
pub fn best(scores: &[f64]) -> Option<usize> {
    let mut at: Option<usize> = None;
    for (i, &s) in scores.iter().enumerate() {
        if s.is_nan() {
            continue;
        }
        if at.is_none_or(|b| s > scores[b]) {
            at = Some(i);
        }
    }
    at
}

/// Log-likelihoods normalised by the length of each continuation in characters, as
/// lm-evaluation-harness's `acc_norm` (an empty continuation keeps its sum).
pub fn length_normalised(logliks: &[f64], continuations: &[String]) -> Vec<f64> {
    logliks
        .iter()
        .zip(continuations)
        .map(|(&l, c)| {
            if c.is_empty() {
                l
            } else {
                l / c.chars().count() as f64
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn modes_parse_and_name_their_method() {
        assert_eq!("loglik".parse::<AnswerMode>(), Ok(AnswerMode::Loglik));
        assert!("greedy"
            .parse::<AnswerMode>()
            .unwrap_err()
            .contains("greedy"));
        assert_eq!(AnswerMode::default().method(), "generate");
        assert_eq!(AnswerMode::Constrained.to_string(), "constrained");
    }

    #[test]
    fn grammar_escapes_and_lists_every_choice() {
        let g = choice_grammar(&v(&["card_arrival", "say \"hi\"", "a\\b"]));
        assert_eq!(
            g,
            "root ::= \"card_arrival\" | \"say \\\"hi\\\"\" | \"a\\\\b\"\n"
        );
    }

    #[test]
    fn schema_answers_give_their_label() {
        let s = choice_schema(&v(&["positive", "negative"]));
        assert_eq!(s["properties"]["label"]["enum"][1], "negative");
        assert_eq!(
            label_from_schema_answer(r#" {"label": "negative"} "#),
            "negative"
        );
        assert_eq!(label_from_schema_answer("positive\n"), "positive");
    }

    #[test]
    fn a_choice_is_forced_once_no_other_shares_the_text() {
        let c = v(&["card_arrival", "card_linking", "cash"]);
        assert_eq!(forced_choice("card_", &c), None);
        assert_eq!(forced_choice("card_l", &c), Some("card_linking"));
        assert_eq!(forced_choice("cas", &c), Some("cash"));
        assert_eq!(forced_choice("x", &c), None);
        // A choice that is a prefix of another is not forced before the longer one is ruled out.
        let c = v(&["pin", "pin_blocked"]);
        assert_eq!(forced_choice("pin", &c), None);
    }

    #[test]
    fn best_and_normalisation() {
        assert_eq!(best(&[-3.0, -1.0, f64::NAN, -1.0]), Some(1));
        assert_eq!(best(&[]), None);
        let c = v(&["ab", "abcd", ""]);
        let n = length_normalised(&[-2.0, -2.0, -1.0], &c);
        assert_eq!(n, vec![-1.0, -0.5, -1.0]);
        assert_eq!(best(&n), Some(1));
    }
}
