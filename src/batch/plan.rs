//! One item of a batch: keep a current plan from an earlier run, or generate, check,
//! repair and write one, and report it.

use std::time::Instant;

use super::engine::import::FileSource;
use super::items::Item;
use super::outdir::{Earlier, OutDir, Redo};
use super::progress::Progress;
use super::report::{ItemReport, Status};
use super::{Answers, Ctx};
use crate::client::ApiError;
use crate::error::Error;
use crate::output::{Made, PlanStatus, Provenance};
use crate::repair::{self, Event, Generated};
use crate::spec::Severity;

impl Ctx {
    /// One item: keep a current plan, or generate, check, repair and write one. The second
    /// value is set when the error means no other item can succeed either (401, no quota).
    /// None when the item never started because the run is stopping.
    pub async fn plan_one(&self, item: Item, progress: &Progress) -> Option<(ItemReport, Option<String>)> {
        let model = item.model.clone().unwrap_or_else(|| self.default_model.clone());
        let file = OutDir::file_name(&item.slug);
        let input_hash = item.inputs.hash();
        let redo = match self.kept(&item, &model, &file, &input_hash) {
            Ok(r) => return Some((r, None)),
            Err(why) => why.map(|w| w.to_string()),
        };
        progress.started(&item.name);
        let t0 = Instant::now();
        let (mut r, fatal) = match self.generate(&item, &model).await {
            Ok(mut g) => {
                let judgement = match &self.judge {
                    Some(m) => {
                        let (plan, report) = (&g.state.plan, &mut g.state.report);
                        crate::judge::judge_into(&self.client, &self.template, m, &item.inputs, plan, report).await
                    }
                    None => None,
                };
                self.finish(&item, &model, &file, g, judgement, t0)
            }
            Err(Error::Api(ApiError::NotStarted)) => {
                progress.dropped(&item.name);
                return None;
            }
            Err(e) => {
                let fatal = match &e {
                    Error::Api(a) if a.is_auth() || a.is_quota() => Some(e.to_string()),
                    _ => None,
                };
                (self.failed(&item, &model, &file, &e, t0), fatal)
            }
        };
        r.redone = redo;
        Some((r, fatal))
    }

    /// Generate `item`'s plan with answers from this run's engine.
    async fn generate(&self, item: &Item, model: &str) -> crate::error::Result<Generated> {
        let opts = repair::Options {
            model: model.to_string(),
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            max_repairs: self.max_repairs,
            fallback: self.fallback.clone(),
            stream: false,
        };
        let migration = item.migration();
        let job = repair::Job {
            template: &self.template,
            checker: &self.checker,
            inputs: &item.inputs,
            migration: &migration,
            opts: &opts,
        };
        let quiet = |ev: Event| match ev {
            Event::Warning(w) => tracing::warn!(item = %item.name, "{w}"),
            Event::Fallback { model, why } => tracing::warn!(item = %item.name, "fallback to {model}: {why}"),
            _ => {}
        };
        match &self.answers {
            Answers::Live => {
                let mut live = repair::LiveSource {
                    client: &self.client,
                    on_delta: None,
                };
                repair::generate(&job, &mut live, &quiet).await
            }
            Answers::Files(imp) => {
                let mut files = FileSource::new(imp, self, &item.name);
                repair::generate(&job, &mut files, &quiet).await
            }
        }
    }

    /// Keep a current plan from an earlier run (Ok), or say why it must be made (Err: None
    /// for a new one, else the reason an earlier plan is redone).
    fn kept(&self, item: &Item, model: &str, file: &str, input_hash: &str) -> Result<ItemReport, Option<Redo>> {
        match self.earlier(item, model, input_hash) {
            Earlier::None => Err(None),
            Earlier::Current if !self.force => {
                let mut r = ItemReport::pending(&item.name, file, item.line, model, "");
                r.status = Status::Complete;
                r.resumed = true;
                r.error = None;
                Ok(r)
            }
            Earlier::Current => Err(Some(Redo::Forced)),
            Earlier::Stale(why) => Err(Some(why)),
        }
    }

    /// Write a generated plan and report it.
    fn finish(
        &self,
        item: &Item,
        model: &str,
        file: &str,
        g: Generated,
        judgement: Option<crate::judge::Judgement>,
        t0: Instant,
    ) -> (ItemReport, Option<String>) {
        let report = &g.state.report;
        let problems: Vec<String> = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error && !f.code.is_presence())
            .map(|f| f.message.clone())
            .collect();
        let prov = Provenance::new(&Made {
            template: &self.template,
            model,
            inputs: &item.inputs,
            stages: &item.stages,
            report,
            written_by: &g.state.written_by,
            name: Some(&item.name),
            judge: judgement.as_ref().map(|j| (j.model.as_str(), j.mean)),
        });
        let mut r = ItemReport {
            name: item.name.clone(),
            file: file.to_string(),
            line: item.line,
            status: match PlanStatus::of(report) {
                PlanStatus::Complete => Status::Complete,
                PlanStatus::Errors => Status::Errors,
                PlanStatus::Incomplete => Status::Incomplete,
            },
            resumed: false,
            model: model.to_string(),
            fallback_model: prov.fallback_model.clone(),
            by_fallback: prov.by_fallback.clone(),
            judge: judgement.map(|j| format!("{} {}/5", j.model, j.mean)),
            missing: report.missing_ids(),
            findings: problems.len(),
            problems,
            repair_rounds: g.state.rounds.len() as u32,
            transport_retries: g.tally.retries,
            requests: g.tally.requests,
            tokens: g.tally.usage,
            duration_ms: 0,
            error: g.stopped.as_ref().map(ToString::to_string),
            redone: None,
        };
        if let Err(e) = self.out().write_plan(&item.slug, &prov, &g.state.plan) {
            r.status = Status::Failed;
            r.error = Some(e.to_string());
        }
        r.duration_ms = t0.elapsed().as_millis() as u64;
        (r, None)
    }

    fn failed(&self, item: &Item, model: &str, file: &str, e: &Error, t0: Instant) -> ItemReport {
        let mut r = ItemReport::pending(&item.name, file, item.line, model, &e.to_string());
        r.status = Status::Failed;
        if let Error::Api(ApiError::Exhausted { attempts, .. }) = e {
            // One request, as for a success; its attempts beyond the first are retries.
            r.transport_retries = attempts - 1;
            r.requests = 1;
        } else if matches!(e, Error::Api(a) if !matches!(a, ApiError::Unanswered(_))) {
            r.requests = 1;
        }
        r.duration_ms = t0.elapsed().as_millis() as u64;
        r
    }
}
