//! `--parallel N`: a short outline of the facts every section must share first, then one
//! request per section, N at a time, each carrying the outline; the sections are spliced
//! in canonical order and checked against the outline, then repaired as usual.

use super::driver::{Answer, Run, Source, Target};

/// One request of the parallel pass: a section, or one stage of a per-stage section.
struct PartAsk {
    section: usize,
    /// The stage subsection's heading ("Stage 2: CDC dual-running"), for a part.
    stage: Option<String>,
    /// What to call it in progress lines.
    label: String,
    at: Target,
    req: ChatRequest,
}

/// One request of the parallel pass, as a prompt.
pub struct Part {
    pub section: usize,
    /// The stage's place in the input and its name, for a part of a per-stage section.
    pub stage: Option<(usize, String)>,
    pub prompt: String,
}

/// The parallel pass's part prompts for one plan, each carrying `outline`: every section,
/// and a section checked for stage coverage once per stage of `stages`.
pub fn part_prompts(
    template: &crate::template::Template,
    spec: &crate::spec::Spec,
    inputs: &crate::template::Inputs,
    stages: &[String],
    outline: &str,
) -> Result<Vec<Part>> {
    let mut out = Vec::new();
    for (i, s) in spec.sections.iter().enumerate() {
        let covered = |c: &crate::spec::CheckSpec| matches!(c, crate::spec::CheckSpec::StageCoverage { .. });
        let parts: Vec<Option<(usize, String)>> = if !stages.is_empty() && s.checks.iter().any(covered) {
            stages.iter().cloned().enumerate().map(Some).collect()
        } else {
            vec![None]
        };
        for stage in parts {
            let prompt =
                template.part_prompt(inputs, i, &[], Some(outline), stage.as_ref().map(|(_, n)| n.as_str()))?;
            out.push(Part {
                section: i,
                stage,
                prompt,
            });
        }
    }
    Ok(out)
}

/// What one part's reply gave: its section, the stage heading of a stage part, the text.
struct PartBody {
    section: usize,
    stage: Option<String>,
    text: String,
}

/// The sections' bodies: a per-stage section's parts joined under their stage headings,
/// in the input's order. A part cut off inside a code fence is closed, or the stages after
/// it would be read as code.
fn assemble(bodies: Vec<PartBody>) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for PartBody {
        section,
        stage,
        text: body,
    } in bodies
    {
        let text = match stage {
            Some(h) => format!(
                "### {h}\n\n{}",
                crate::markdown::close_open_blocks(body.trim()).trim_end()
            ),
            None => body,
        };
        match out.iter_mut().find(|(s, _)| *s == section) {
            Some((_, b)) => b.push_str(&format!("\n\n{text}")),
            None => out.push((section, text)),
        }
    }
    out
}

/// A stage part that opens with its own heading ("### Stage 2: …", "CDC dual-running"):
/// the heading goes, rbplan adds its own.
fn strip_stage_heading(body: &str, stage: Option<&str>) -> String {
    let Some(stage) = stage else { return body.to_string() };
    let name = stage.split_once(": ").map_or(stage, |(_, n)| n).to_lowercase();
    let doc = crate::markdown::parse(body);
    match doc.headings.first() {
        Some(h)
            if body[..h.start].trim().is_empty()
                && (h.text.to_lowercase().contains(&name) || h.text.to_lowercase().starts_with("stage")) =>
        {
            body[h.end..].trim().to_string()
        }
        _ => body.to_string(),
    }
}
use super::text::{body_from_fill, splice};
use super::{Event, State, Strategy};
use crate::client::{ApiError, ChatRequest, Message};
use crate::error::Result;

impl<S: Source> Run<'_, '_, S> {
    /// The outline, then every section; the state after them, as after a first answer.
    /// A part refused for the budget ends the pass with what was answered, and why: those
    /// replies are paid for. Other errors that stop a run stop it as they would anyway.
    pub(super) async fn outline_then_sections(&mut self) -> Result<(State, Option<String>)> {
        let (job, on_event) = (self.job, self.on_event);
        let model = job.opts.shape.model.clone();
        on_event(Event::OutlineAsked);
        let outline = self.outline(&model).await?;
        on_event(Event::Outline {
            words: outline.split_whitespace().count(),
        });
        self.migration = job.migration.with_outline(&outline);
        let asks = self.parts(&outline)?;
        let total = asks.len();
        let reqs: Vec<_> = asks.iter().map(|a| (a.at, a.req.clone())).collect();
        let done = std::sync::atomic::AtomicUsize::new(0);
        let checker = job.checker;
        let tell = |i: usize, answered: bool| {
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            on_event(Event::SectionDone {
                id: &asks[i].label,
                done: n,
                total,
                answered,
            });
        };
        let answers = self
            .source
            .answer_many(reqs, job.opts.parallel.unwrap_or(1), &tell)
            .await?;
        let (bodies, stop) = self.take_parts(&asks, answers)?;
        let edits = assemble(bodies);
        let plan = splice("", checker, &edits);
        let mut state = State::start(&plan, false, checker, &self.migration, &model);
        state.strategies = state
            .strategies
            .into_iter()
            .map(|(id, _)| (id, Strategy::Parallel))
            .collect();
        state.outline = Some(outline);
        // Repair the way the plan was written: each section alone with the outline, N at a
        // time, not the whole draft as one conversation that a reply writes serially.
        state.one_at_a_time = true;
        Ok((state, stop))
    }

    /// The bodies the parts' answers hold (each trimmed to its section or stage), and why
    /// the pass stopped, if the budget stopped it.
    fn take_parts(&mut self, asks: &[PartAsk], answers: Vec<Answer>) -> Result<(Vec<PartBody>, Option<String>)> {
        let (checker, job) = (self.job.checker, self.job);
        let mut bodies = Vec::new();
        let mut stop: Option<String> = None;
        for (a, answer) in asks.iter().zip(answers) {
            self.count(&job.opts.shape.model, &answer);
            match answer {
                Answer::Reply(r) => {
                    let text = crate::markdown::unwrap_fence(&r.text);
                    let body = body_from_fill(&text, checker, a.section, r.truncated());
                    bodies.extend(body.map(|b| PartBody {
                        section: a.section,
                        stage: a.stage.clone(),
                        text: strip_stage_heading(&b, a.stage.as_deref()),
                    }));
                }
                // The budget: what was answered is paid for; keep it, and stop here.
                Answer::Failed(e @ ApiError::Budget { .. }) => {
                    stop.get_or_insert_with(|| e.to_string());
                }
                Answer::Failed(e) if e.is_auth() || e.stops_run() => return Err(e.into()),
                // The section stays missing (or its stage uncovered): repair asks again.
                Answer::Failed(e) => (self.on_event)(Event::Warning(format!("{} failed: {e}", a.label))),
                Answer::Skipped(_) => {}
            }
        }
        Ok((bodies, stop))
    }

    /// One request per section, carrying the outline; a section checked for stage coverage
    /// is asked one stage at a time (its longest part otherwise sets the pace).
    fn parts(&self, outline: &str) -> Result<Vec<PartAsk>> {
        let job = self.job;
        let stages: Vec<String> = self.migration.agreed().map(|a| a.stages.clone()).unwrap_or_default();
        let parts = part_prompts(job.template, &job.checker.spec, job.inputs, &stages, outline)?;
        Ok(parts
            .into_iter()
            .map(|p| {
                let id = &job.checker.spec.sections[p.section].id;
                PartAsk {
                    section: p.section,
                    stage: p.stage.as_ref().map(|(k, name)| format!("Stage {}: {name}", k + 1)),
                    label: p
                        .stage
                        .as_ref()
                        .map_or(id.clone(), |(_, name)| format!("{id} / {name}")),
                    at: Target {
                        round: 0,
                        section: Some(p.section),
                        attempt: p.stage.as_ref().map_or(0, |(k, _)| *k as u32),
                    },
                    req: job.request(&job.opts.shape.model, Message::standalone(&self.base, p.prompt)),
                }
            })
            .collect())
    }

    /// The outline request: the system message, then the outline prompt.
    async fn outline(&mut self, model: &str) -> Result<String> {
        let job = self.job;
        let req: ChatRequest = job.request(
            model,
            Message::standalone(&self.base, job.template.outline_prompt(job.inputs)?),
        );
        let at = Target {
            round: 0,
            section: None,
            attempt: 0,
        };
        match self.call(at, &req).await? {
            Answer::Reply(r) => Ok(crate::markdown::unwrap_fence(&r.text).trim().to_string()),
            Answer::Failed(e) => Err(e.into()),
            Answer::Skipped(why) => Err(ApiError::Unanswered(why.unwrap_or_else(|| "no outline".into())).into()),
        }
    }
}
