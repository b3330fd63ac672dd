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
use crate::output::living::{self, Decision};
use crate::output::{Made, Provenance};
use crate::repair::{self, Event, Generated, Start};

impl Ctx {
    /// One item: keep a current plan, or generate, check, repair and write one. The second
    /// value is set when the error stops the run (401, no quota, the budget reached).
    /// None when the item never started because the run is stopping.
    pub async fn plan_one(&self, item: Item, progress: &Progress) -> Option<(ItemReport, Option<super::Stop>)> {
        let model = item.model.clone().unwrap_or_else(|| self.default_model.clone());
        let file = OutDir::file_name(&item.slug);
        let input_hash = item.inputs.hash();
        let redo = match self.kept(&item, &model, &file, &input_hash) {
            Ok(r) => return Some((r, None)),
            Err(why) => why.map(|w| w.to_string()),
        };
        progress.started(&item.name);
        let t0 = Instant::now();
        let path = self.out().plan_path(&item.slug);
        let working = living::decide_following(&path, &self.checker, self.force);
        let decision = &working.decision;
        if let Err(e) = decision.make_backup(&path) {
            return Some((self.failed(&item, &model, &file, &e, t0), None));
        }
        let (mut r, fatal) = match self.generate(&item, &model, decision).await {
            Ok(mut g) => {
                if let Some(e) = decision.earlier() {
                    g.lay_over(&e.body, &e.edited, &self.checker, &item.migration());
                }
                let judgement = match &self.judge {
                    Some(m) => {
                        let (plan, report) = (&g.state.plan, &mut g.state.report);
                        crate::judge::judge_into(&self.client, &self.template, m, &item.inputs, plan, report).await
                    }
                    None => None,
                };
                self.finish(&item, &model, &working, g, judgement, t0)
            }
            Err(Error::Api(ApiError::NotStarted)) => {
                progress.dropped(&item.name);
                return None;
            }
            Err(Error::Api(a)) if a.stops_run() && !a.is_auth() && !a.is_quota() => {
                // Not a failure of this item: it was never answered; a rerun does it.
                progress.dropped(&item.name);
                let why = a.to_string();
                let r = ItemReport::pending(&item.name, &file, item.line, &model, &format!("not run: {why}"));
                return Some((r, Some(super::Stop::Paused(why))));
            }
            Err(e) => {
                let fatal = match &e {
                    Error::Api(a) if a.is_auth() || a.is_quota() => Some(super::Stop::Fatal(e.to_string())),
                    _ => None,
                };
                (self.failed(&item, &model, &file, &e, t0), fatal)
            }
        };
        r.redone = redo;
        Some((r, fatal))
    }

    /// Generate `item`'s plan with answers from this run's engine.
    async fn generate(&self, item: &Item, model: &str, decision: &Decision) -> crate::error::Result<Generated> {
        let opts = repair::Options {
            model: model.to_string(),
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            max_repairs: self.max_repairs,
            fallback: self.fallback.clone(),
            stream: false,
            parallel: self.parallel,
        };
        let migration = item.migration();
        let job = repair::Job {
            template: &self.template,
            checker: &self.checker,
            inputs: &item.inputs,
            migration: &migration,
            opts: &opts,
            start: match decision.earlier() {
                Some(e) => Start::From {
                    plan: e.kept_only(&self.checker),
                    pinned: e.edited.clone(),
                    regenerate: true,
                },
                None => Start::Fresh,
            },
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
            Earlier::Stale(why) => match self.current_beside(item, model, input_hash) {
                Some(r) if !self.force => Ok(r),
                _ => Err(Some(why)),
            },
        }
    }

    /// A current plan in `NAME.new.md`, written by an earlier run beside a file it left
    /// alone: kept, so a rerun does not pay for it again.
    fn current_beside(&self, item: &Item, model: &str, input_hash: &str) -> Option<ItemReport> {
        let out = self.out();
        let beside = living::beside(&out.plan_path(&item.slug));
        let name = beside.file_name()?.to_string_lossy().into_owned();
        let want = super::outdir::Wanted {
            template_hash: &self.template.hash,
            model,
            input_hash,
            migration: &item.migration(),
        };
        if out.earlier_in(&name, &want, &self.checker) != Earlier::Current {
            return None;
        }
        let mut r = ItemReport::pending(&item.name, &name, item.line, model, "");
        r.status = Status::Complete;
        r.resumed = true;
        r.error = None;
        r.written_beside = Some(format!(
            "{name} (kept from an earlier run; {} is left as it is)",
            OutDir::file_name(&item.slug)
        ));
        Some(r)
    }

    /// Write a generated plan and report it.
    fn finish(
        &self,
        item: &Item,
        model: &str,
        working: &living::Working,
        g: Generated,
        judgement: Option<crate::judge::Judgement>,
        t0: Instant,
    ) -> (ItemReport, Option<super::Stop>) {
        let report = &g.state.report;
        let decision = &working.decision;
        let target = working.target().to_path_buf();
        let file = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let earlier = decision.earlier();
        let prov = Provenance::new(&Made {
            template: &self.template,
            model,
            inputs: &item.inputs,
            stages: &item.stages,
            report,
            written_by: &g.state.written_by,
            name: Some(&item.name),
            judge: judgement.as_ref().map(|j| (j.model.as_str(), j.mean)),
            sections: living::hashes_after(&g.state.plan, &self.checker, earlier),
        });
        let mut r = ItemReport::generated(&item.name, file, item.line, model, &g);
        r.cost_usd = r.tokens.priced(&self.prices, model);
        r.fallback_model = prov.fallback_model.clone();
        r.by_fallback = prov.by_fallback.clone();
        r.judge = judgement.map(|j| format!("{} {}/5", j.model, j.mean));
        note_earlier(&mut r, decision, &item.slug, &self.checker);
        if let Some(why) = working.followed {
            let note = format!("{} is left as it is: {why}", OutDir::file_name(&item.slug));
            r.written_beside.get_or_insert(format!("{} ({note})", r.file));
        }
        let front = decision.front();
        if let Err(e) = self.out().write_plan_to(&target, &prov, front, &g.state.plan) {
            r.status = Status::Failed;
            r.error = Some(e.to_string());
        }
        r.duration_ms = t0.elapsed().as_millis() as u64;
        (r, None)
    }
}

/// What became of the earlier file, for the report: the edits kept (`_other` for added
/// text), the file left alone, or its backup.
fn note_earlier(r: &mut ItemReport, decision: &Decision, slug: &str, checker: &crate::check::Checker) {
    match decision {
        Decision::KeepEdits(e) => {
            r.kept = e.edited_ids(checker);
            if e.other_edited {
                r.kept.push(living::OTHER.to_string());
            }
        }
        Decision::Beside { why, .. } => {
            r.written_beside = Some(format!(
                "{} ({} is left as it is: {why})",
                r.file,
                OutDir::file_name(slug)
            ));
        }
        Decision::Backup { to, .. } => r.backup = to.file_name().map(|n| n.to_string_lossy().into_owned()),
        Decision::Fresh | Decision::Replace(_) => {}
    }
}

impl Ctx {
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
