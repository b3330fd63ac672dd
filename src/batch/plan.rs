//! One item of a batch: keep a current plan from an earlier run, or make one as a
//! `pipeline::Job` (answers from this run's engine) and report it.

use std::time::Instant;

use super::engine::import::FileSource;
use super::items::Item;
use super::outdir::{Earlier, OutDir, Redo};
use super::progress::Progress;
use super::report::{ItemReport, Status};
use super::{Answers, Ctx};
use crate::client::ApiError;
use crate::error::Error;
use crate::output::living::{self, Decision, Working};
use crate::pipeline::{Job, PlanInput, Produced, Start, Written};

use crate::repair::{self, Event};

impl Ctx {
    /// One item: keep a current plan, or generate, check, repair and write one. The second
    /// value is set when the error stops the run (401, no quota, the budget reached).
    /// None when the item never started because the run is stopping.
    pub async fn plan_one(&self, item: Item, progress: &Progress) -> Option<(ItemReport, Option<super::Stop>)> {
        let model = self.model_of(&item);
        let settings = self.settings.for_model(&model);
        let file = OutDir::file_name(&item.slug);
        let input = match self.item_input(&item, &model) {
            Ok(i) => i,
            Err(e) => return Some((self.failed(&item, &model, &file, &e, Instant::now()), None)),
        };
        let redo = match self.kept(&item, &input, &settings, &file) {
            Ok(r) => return Some((r, None)),
            Err(why) => why.map(|w| w.to_string()),
        };
        progress.started(&item.name);
        let t0 = Instant::now();
        let working = living::decide_following(&self.out().plan_path(&item.slug), &self.checker, self.force);
        let job = Job {
            template: &self.template,
            checker: &self.checker,
            settings: &settings,
            input: &input,
            start: Start::File {
                working: &working,
                durable: false,
            },
            name: Some(&item.name),
            client: &self.client,
        };
        let (mut r, fatal) = match self.make(&job, &item).await {
            Ok(p) => (self.finish(&item, &model, &working, p, t0), None),
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
        r.redactions = input.context.redactions.clone();
        Some((r, fatal))
    }

    /// Run `job` with answers from this run's engine.
    async fn make(&self, job: &Job<'_>, item: &Item) -> crate::error::Result<Produced> {
        let quiet = |ev: Event| match ev {
            Event::Warning(w) => tracing::warn!(item = %item.name, "{w}"),
            Event::Fallback { model, why } => tracing::warn!(item = %item.name, "fallback to {model}: {why}"),
            _ => {}
        };
        match &self.answers {
            Answers::Live => {
                let mut live = repair::LiveSource::new(&self.client, None).until(job.settings.deadline);
                job.make(&mut live, &quiet).await
            }
            Answers::Files(imp) => {
                let mut files = FileSource::new(imp, self, &item.name);
                job.make(&mut files, &quiet).await
            }
        }
    }

    /// Keep a current plan from an earlier run (Ok), or say why it must be made (Err: None
    /// for a new one, else the reason an earlier plan is redone).
    fn kept(
        &self,
        item: &Item,
        input: &PlanInput,
        settings: &crate::pipeline::Settings,
        file: &str,
    ) -> Result<ItemReport, Option<Redo>> {
        let model = settings.repair.shape.model.as_str();
        let want = super::outdir::Wanted {
            template_hash: &self.template.hash,
            model,
            input_hash: &input.hash,
            migration: &input.migration,
            context: &input.context.files,
        };
        match self.out().earlier(&item.slug, &want, &self.checker) {
            Earlier::None => Err(None),
            Earlier::Current if !self.force => {
                let mut r = ItemReport::pending(&item.name, file, item.line, model, "");
                r.status = Status::Complete;
                r.resumed = true;
                r.error = None;
                Ok(r)
            }
            Earlier::Current => Err(Some(Redo::Forced)),
            Earlier::Stale(why) => match self.current_beside(item, &want) {
                Some(r) if !self.force => Ok(r),
                _ => Err(Some(why)),
            },
        }
    }

    /// A current plan in `NAME.new.md`, written by an earlier run beside a file it left
    /// alone: kept, so a rerun does not pay for it again.
    fn current_beside(&self, item: &Item, want: &super::outdir::Wanted) -> Option<ItemReport> {
        let out = self.out();
        let beside = living::beside(&out.plan_path(&item.slug));
        let name = beside.file_name()?.to_string_lossy().into_owned();
        if out.earlier_in(&name, want, &self.checker) != Earlier::Current {
            return None;
        }
        let mut r = ItemReport::pending(&item.name, &name, item.line, want.model, "");
        r.status = Status::Complete;
        r.resumed = true;
        r.error = None;
        r.written_beside = Some(format!(
            "{name} (kept from an earlier run; {} is left as it is)",
            OutDir::file_name(&item.slug)
        ));
        Some(r)
    }

    /// Report a plan the job produced (and wrote, or failed to write).
    fn finish(&self, item: &Item, model: &str, working: &Working, p: Produced, t0: Instant) -> ItemReport {
        let decision = &working.decision;
        // Where the plan went (beside the file when a shorter plan left it alone).
        let target = p.written.path().unwrap_or(working.target());
        let file = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut r = ItemReport::generated(&item.name, file, item.line, model, &p.g);
        r.cost_usd = r.tokens.priced(&self.prices, model);
        r.fallback_model = p.provenance.fallback_model.clone();
        r.by_fallback = p.provenance.by_fallback.clone();
        r.judge = p.judgement.map(|j| format!("{} {}/5", j.model, j.mean));
        note_earlier(&mut r, decision, &item.slug, &self.checker);
        if let Some(l) = &p.left_alone {
            let note = format!(
                "{} is left as it is: it has {}/{} sections, this run made {}",
                OutDir::file_name(&item.slug),
                l.had,
                self.checker.spec.sections.len(),
                l.made
            );
            r.written_beside = Some(format!("{} ({note})", r.file));
        }
        if let Some(why) = working.followed {
            let note = format!("{} is left as it is: {why}", OutDir::file_name(&item.slug));
            r.written_beside.get_or_insert(format!("{} ({note})", r.file));
        }
        match p.written {
            Written::To { path, .. } => self.out().wrote(&path),
            Written::Failed { error, .. } => {
                r.status = Status::Failed;
                r.error = Some(error.to_string());
            }
            Written::Nowhere => {}
        }
        r.duration_ms = t0.elapsed().as_millis() as u64;
        r
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
