//! `--judge-model`: a second model scores a plan against the template's rules and each
//! section's guidance (the judge prompt, `judge.md`). Low scores become warnings with the
//! judge's reason; a judge that fails or answers nonsense is a warning too. The judge
//! never makes a verdict better: its findings are warnings, added to the check's.

use serde::{Deserialize, Serialize};

use crate::check::{Code, Finding};
use crate::client::{ChatRequest, Client, Message, Shape, Usage};
use crate::spec::{Severity, Spec};
use crate::template::{Inputs, Template};

/// A score at or below this (out of 5) is a finding.
const LOW: f64 = 2.0;
/// Enough for ten sections and four rules with a sentence each.
const MAX_TOKENS: u32 = 1500;

/// What the judge said.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    pub model: String,
    /// The mean of every score, out of 5.
    pub mean: f64,
    pub rules: Vec<Score>,
    pub sections: Vec<Score>,
    #[serde(skip)]
    pub findings: Vec<Finding>,
    #[serde(skip)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Score {
    pub id: String,
    #[serde(deserialize_with = "number")]
    pub score: f64,
    #[serde(default)]
    pub reason: String,
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    rules: Vec<Score>,
    #[serde(default)]
    sections: Vec<Score>,
}

/// A score as a number or a numeric text ("4", "4/5").
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    let n = match &v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.split('/').next().and_then(|s| s.trim().parse().ok()),
        _ => None,
    };
    n.filter(|n| (0.0..=10.0).contains(n))
        .ok_or_else(|| serde::de::Error::custom(format!("not a score: {v}")))
}

/// The judge's request shape: `model`, at temperature 0 and its own token limit, the limit
/// in the field the run's requests use (`run`).
fn shape(run: &Shape, model: &str) -> Shape {
    Shape {
        model: model.to_string(),
        temperature: Some(0.0),
        max_tokens: Some(MAX_TOKENS),
        max_tokens_field: run.max_tokens_field,
    }
}

/// Ask `model` to score `plan`. An error says what went wrong, for a warning.
pub async fn judge(
    client: &Client,
    template: &Template,
    (run, model): (&Shape, &str),
    inputs: &Inputs,
    plan: &str,
) -> Result<Judgement, String> {
    let prompt = template.judge_prompt(inputs, plan).map_err(|e| e.to_string())?;
    let req = ChatRequest::new(shape(run, model), vec![Message::user(prompt)]);
    let reply = client.chat(&req, None).await.map_err(|e| e.to_string())?;
    let mut j = read(&reply.text, &template.spec).map_err(|e| format!("its reply is not a judgement ({e})"))?;
    j.model = model.to_string();
    j.findings = findings(&j);
    j.usage = reply.usage;
    Ok(j)
}

/// The judgement in a reply: the outermost JSON object in it (a code fence around it or
/// words before it are fine). Sections the spec does not have are dropped.
pub fn read(text: &str, spec: &Spec) -> Result<Judgement, String> {
    let (start, end) = (text.find('{'), text.rfind('}'));
    let json = match (start, end) {
        (Some(s), Some(e)) if s < e => &text[s..=e],
        _ => return Err("no JSON object".into()),
    };
    let r: Reply = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let sections: Vec<Score> = r
        .sections
        .into_iter()
        .filter(|s| spec.index_of(&s.id).is_some())
        .collect();
    if r.rules.is_empty() && sections.is_empty() {
        return Err("no scores".into());
    }
    let all: Vec<f64> = r.rules.iter().chain(&sections).map(|s| s.score).collect();
    let mean = (all.iter().sum::<f64>() / all.len() as f64 * 10.0).round() / 10.0;
    Ok(Judgement {
        model: String::new(),
        mean,
        rules: r.rules,
        sections,
        findings: Vec::new(),
        usage: None,
    })
}

/// A warning per low score, on its section where it has one.
fn findings(j: &Judgement) -> Vec<Finding> {
    let rules = j.rules.iter().map(|s| (None, s));
    let sections = j.sections.iter().map(|s| (Some(s.id.as_str()), s));
    rules
        .chain(sections)
        .filter(|(_, s)| s.score <= LOW)
        .map(|(section, s)| {
            let what = section.map_or(format!("the rule \"{}\"", s.id), |id| format!("section {id}"));
            let msg = format!("the judge ({}) scores {what} {}/5: {}", j.model, s.score, s.reason);
            Finding::new(Severity::Warning, Code::Judge, section, None, msg)
        })
        .collect()
}

/// Judge `plan` and add what the judge found to `report`: its low scores, or that it gave
/// no judgement. Returns the judgement, if there was one.
pub async fn judge_into(
    client: &Client,
    template: &Template,
    (run, model): (&Shape, &str),
    inputs: &Inputs,
    plan: &str,
    report: &mut crate::check::CheckReport,
) -> Option<Judgement> {
    match judge(client, template, (run, model), inputs, plan).await {
        Ok(j) => {
            report.findings.extend(j.findings.iter().cloned());
            Some(j)
        }
        Err(why) => {
            report.findings.push(failed(model, &why));
            None
        }
    }
}

/// A judge that could not judge: a warning, never a pass.
pub fn failed(model: &str, why: &str) -> Finding {
    let msg = format!("the judge ({model}) gave no judgement: {why}");
    Finding::new(Severity::Warning, Code::Judge, None, None, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_in_a_fence_with_text_scores_are_read_and_low_ones_become_warnings() {
        let spec = Template::builtin().spec;
        let text = "Here you go:\n```json\n{\"rules\": [{\"id\": \"specific\", \"score\": 2, \"reason\": \"could be any migration\"}], \"sections\": [{\"id\": \"what-if\", \"score\": \"4/5\", \"reason\": \"good\"}, {\"id\": \"nonsense\", \"score\": 1}]}\n```";
        let mut j = read(text, &spec).unwrap();
        j.model = "judge-m".into();
        assert_eq!(j.sections.len(), 1, "unknown sections dropped");
        assert_eq!(j.mean, 3.0);
        let f = findings(&j);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warning);
        assert_eq!(
            f[0].message,
            "the judge (judge-m) scores the rule \"specific\" 2/5: could be any migration"
        );
        for bad in [
            "no json here",
            "{\"rules\": []}",
            "{\"rules\": [{\"id\": \"x\", \"score\": \"great\"}]}",
        ] {
            assert!(read(bad, &spec).is_err(), "{bad}");
        }
    }
}
