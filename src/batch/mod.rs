//! `rbplan batch`: plans for many services, the only orchestrator of many items.
//!
//! input file → `items` (checked whole before anything is sent) → an engine (`live`
//! today) → each plan written atomically into `outdir` with provenance → `report`.
//! The output folder is the resume state: a rerun keeps every plan that is complete and
//! was made from the same input, template and model.

pub mod batchapi;
pub mod export;
pub mod import;
pub mod items;
pub mod live;
pub mod outdir;
pub mod progress;
pub mod report;

use std::sync::Arc;
use std::time::Instant;

use crate::batch::report::{BatchReport, ItemReport, Status};
use crate::check::Checker;
use crate::cli::{BatchArgs, Via};
use crate::client::Client;
use crate::client::pacing::Pacer;
use crate::commands::connect;
use crate::config::Env;
use crate::error::{Error, Outcome, Result};
use crate::output::Provenance;
use crate::repair::Generated;
use crate::spec::Severity;
use crate::template::Template;
use crate::term::{Ui, print_stdout};
use items::Item;
use outdir::{Earlier, OutDir, Wanted};
use progress::Progress;

/// Why a run ended before every item was done.
#[derive(Debug, Clone)]
pub enum Stop {
    Interrupted,
    /// An error no other item can get past (401, exhausted quota).
    Fatal(String),
}

/// What every item of a run shares.
pub struct Ctx {
    pub client: Client,
    pub template: Template,
    pub checker: Checker,
    /// The output folder; only `--export` runs without one (see `Ctx::out`).
    pub out: Option<OutDir>,
    /// `--model` (or its default); an item's own `model` wins.
    pub default_model: String,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub max_repairs: u32,
    pub force: bool,
    /// Where first answers come from.
    pub answers: Answers,
}

/// Where an item's answers come from.
pub enum Answers {
    /// Asked live, item by item.
    Live,
    /// Read from Batch API or vLLM output files (`--import`, `--via batch-api`), then
    /// live or exported for the rounds the files do not answer.
    Files(Box<import::Imported>),
}

pub async fn run(args: BatchArgs, ui: Ui) -> Result<Outcome> {
    if args.concurrency == 0 {
        return Err(Error::usage("--concurrency must be at least 1"));
    }
    if args.cancel && args.via != Via::BatchApi {
        return Err(Error::usage(
            "--cancel goes with --via batch-api (it cancels the batch recorded in --out-dir)",
        ));
    }
    if args.export_repairs.is_some() && args.import.is_empty() && args.via != Via::BatchApi {
        return Err(Error::usage(
            "--export-repairs goes with --import or --via batch-api (a live batch repairs live)",
        ));
    }
    if !(args.poll_interval > 0.0 && args.poll_interval.is_finite()) {
        return Err(Error::usage("--poll-interval must be a positive number of seconds"));
    }
    let limits = export::Limits {
        max_requests: args.file_max_requests.max(1),
        max_bytes: (args.file_max_mb * 1_000_000.0) as u64,
    };
    let env = Env::load()?;
    let template = Template::resolve(args.template.template.as_deref())?;
    // The whole input is checked before anything is sent.
    let manifest = items::validate(&args.input)?;
    if args.export_repairs.is_some()
        && let Some(e) = manifest.entries.iter().find(|e| e.name.contains(export::REPAIR_MARK))
    {
        return Err(Error::input(
            &manifest.path,
            Some(e.line),
            format!(
                "the name {:?} contains {:?}, which --export-repairs uses in its custom_ids",
                e.name,
                export::REPAIR_MARK
            ),
        ));
    }
    let (settings, client) = connect(&args.conn, &env)?;
    if let Some(tpm) = args.tpm {
        // The pacer reserves prompt + max tokens per request; say so when one exceeds a minute's budget.
        let one = u64::from(settings.max_tokens.unwrap_or(1024)) + 3_000;
        if one > u64::from(tpm) {
            ui.warn(format!(
                "--tpm {tpm} is below one request's estimate (about {one} tokens: the prompt plus --max-tokens); \
                 requests will go out about one every {:.0} s",
                one as f64 * 60.0 / f64::from(tpm)
            ));
        }
    }
    let client = client
        .with_pacer(Pacer::new(args.rpm, args.tpm))
        .with_limit(args.concurrency);
    let checker = Checker::new(&template);
    let out = match &args.out_dir {
        Some(p) => Some(OutDir::prepare(p)?),
        None => None,
    };
    let mut ctx = Ctx {
        client,
        checker,
        template,
        out,
        default_model: settings.model.clone(),
        temperature: settings.temperature,
        max_tokens: settings.max_tokens,
        max_repairs: args.repair.max_repairs,
        force: args.force,
        answers: Answers::Live,
    };

    if let Some(path) = &args.export {
        let (parts, kept) = export::write_requests(&ctx, &manifest, path, limits)?;
        export::summarize(&parts, kept, &manifest, &ctx.default_model, args.json, ui)?;
        return Ok(Outcome::Complete);
    }
    if ctx.out.is_none() {
        return Err(Error::usage(
            "--out-dir DIR is required: the folder for the plans and the report",
        ));
    }
    let engine = if args.via == Via::BatchApi {
        if args.cancel {
            return batchapi::cancel(&ctx, ui).await;
        }
        let poll = std::time::Duration::from_secs_f64(args.poll_interval);
        match batchapi::submit_and_collect(&ctx, &manifest, limits, poll, ui).await? {
            batchapi::Collected::Files { files, note } => {
                ctx.answers = Answers::Files(Box::new(import::Imported::new(
                    &files,
                    note,
                    args.export_repairs.as_deref(),
                    &ctx,
                )?));
            }
            batchapi::Collected::Interrupted => return Ok(Outcome::Interrupted),
        }
        "batch-api"
    } else if !args.import.is_empty() {
        let note = "no result for this service in the output file(s): the batch may have expired or been cancelled before it ran".to_string();
        let imported = import::Imported::new(&args.import, note, args.export_repairs.as_deref(), &ctx)?;
        import::check_matches(&imported, &manifest, &args.import)?;
        ctx.answers = Answers::Files(Box::new(imported));
        "import"
    } else {
        "live"
    };
    let ctx = Arc::new(ctx);
    ui.note(format!(
        "{} from {} → {} ({}, concurrency {}{})",
        crate::term::count(manifest.len() as u64, "item"),
        manifest.path.display(),
        ctx.out().path.display(),
        engine,
        args.concurrency,
        pacing_note(args.rpm, args.tpm)
    ));

    let t0 = Instant::now();
    let progress = Arc::new(Progress::new(manifest.len(), ui.quiet));
    let (reports, stop) = live::run(ctx.clone(), &manifest, args.concurrency, progress.clone()).await?;
    progress.finish();

    let why_pending = match &stop {
        Some(Stop::Interrupted) => "interrupted; rerun to finish".to_string(),
        Some(Stop::Fatal(e)) => format!("not run: the run stopped ({e})"),
        None => "not run".to_string(),
    };
    let items: Vec<ItemReport> = reports
        .into_iter()
        .zip(&manifest.entries)
        .map(|(r, e)| {
            r.unwrap_or_else(|| {
                ItemReport::pending(
                    &e.name,
                    &OutDir::file_name(&e.slug),
                    e.line,
                    &ctx.default_model,
                    &why_pending,
                )
            })
        })
        .collect();
    let mut report = BatchReport {
        input: manifest.path.display().to_string(),
        template: ctx.template.origin.clone(),
        template_hash: ctx.template.hash.clone(),
        model: ctx.default_model.clone(),
        engine: engine.into(),
        interrupted: matches!(stop, Some(Stop::Interrupted)),
        stopped: match &stop {
            Some(Stop::Fatal(e)) => Some(e.clone()),
            _ => None,
        },
        duration_ms: t0.elapsed().as_millis() as u64,
        totals: Default::default(),
        items,
    };
    report.tally();
    // Items stopped while their request was in flight (a 401 stops the run at once) report
    // none, but the server got them: the total counts every request sent.
    report.totals.requests = report.totals.requests.max(ctx.client.requests_started());
    ctx.out().write_report(&report)?;
    if let Answers::Files(imp) = &ctx.answers {
        imp.finish_repairs(ui)?;
        if engine == "batch-api" && stop.is_none() {
            batchapi::mark_imported(ctx.out())?;
        }
    }
    summarize(&report, ctx.out(), ui);
    if args.json {
        // Items and errors are scrubbed where they arise; this is the last line of defence,
        // as for the report files.
        print_stdout(&crate::logging::scrub_cow(&report.to_json()))?;
    }
    Ok(report.outcome())
}

fn pacing_note(rpm: Option<u32>, tpm: Option<u32>) -> String {
    let mut s = String::new();
    if let Some(r) = rpm {
        s.push_str(&format!(", ≤{r} requests/min"));
    }
    if let Some(t) = tpm {
        s.push_str(&format!(", ≤{t} tokens/min"));
    }
    s
}

/// The closing lines on stderr. Failures and what is missing are said even with --quiet.
fn summarize(r: &BatchReport, out: &OutDir, ui: Ui) {
    let t = &r.totals;
    ui.note(format!(
        "{}: {} complete ({} kept from an earlier run), {} incomplete, {} failed, {} pending; {}, {} → {}",
        crate::term::count(t.items as u64, "item"),
        t.complete,
        t.resumed,
        t.incomplete,
        t.failed,
        t.pending,
        crate::term::count(t.requests, "request"),
        crate::term::count(t.tokens.total_tokens, "token"),
        out.path.join("report.md").display()
    ));
    if let Some(why) = &r.stopped {
        eprintln!("error: the run stopped early: {}", crate::logging::scrub(why));
    }
    if t.with_findings > 0 {
        ui.warn(format!(
            "{} plan(s) have every section but fail a structural check (a table, a stage, a count): see the findings column of {}",
            t.with_findings,
            out.path.join("report.md").display()
        ));
    }
    if t.incomplete + t.failed > 0 {
        eprintln!(
            "{} incomplete, {} failed: see {}",
            t.incomplete,
            t.failed,
            out.path.join("report.md").display()
        );
    }
    // Plans an earlier run left that this one redid, by reason.
    let mut redone: std::collections::BTreeMap<&str, usize> = Default::default();
    for why in r.items.iter().filter_map(|i| i.redone.as_deref()) {
        *redone.entry(why).or_default() += 1;
    }
    if !redone.is_empty() {
        let parts: Vec<String> = redone.iter().map(|(why, n)| format!("{n} because {why}")).collect();
        ui.note(format!("redone from an earlier run: {}", parts.join(", ")));
    }
    if r.interrupted {
        eprintln!(
            "interrupted: rerun the same command to finish the {} pending item(s)",
            t.pending
        );
    }
}

impl Ctx {
    /// The output folder. `run` refuses every engine but `--export` without one.
    pub fn out(&self) -> &OutDir {
        self.out.as_ref().expect("--out-dir is checked before any engine runs")
    }

    /// What an earlier run left in the output folder for `item` made with `model`.
    fn earlier(&self, item: &Item, model: &str, input_hash: &str) -> Earlier {
        let want = Wanted {
            template_hash: &self.template.hash,
            model,
            input_hash,
        };
        self.out().earlier(&item.slug, &want, &self.checker)
    }

    /// A current plan for `item` is in the output folder and no --force asks to redo it
    /// (false without an output folder): an export leaves such services out.
    pub fn keeps(&self, item: &Item, model: &str, input_hash: &str) -> bool {
        self.out.is_some() && !self.force && self.earlier(item, model, input_hash) == Earlier::Current
    }

    /// Keep a current plan from an earlier run (Ok), or say why it must be made (Err: None
    /// for a new one, else the reason an earlier plan is redone).
    fn kept(&self, item: &Item, model: &str, file: &str, input_hash: &str) -> Result<ItemReport, Option<&'static str>> {
        match self.earlier(item, model, input_hash) {
            Earlier::None => Err(None),
            Earlier::Current if !self.force => {
                let mut r = ItemReport::pending(&item.name, file, item.line, model, "");
                r.status = Status::Complete;
                r.resumed = true;
                r.error = None;
                Ok(r)
            }
            Earlier::Current => Err(Some("--force was given")),
            Earlier::Stale(why) => Err(Some(why)),
        }
    }

    /// Write a generated plan and report it.
    fn finish(
        &self,
        item: &Item,
        model: &str,
        file: &str,
        input_hash: &str,
        g: Generated,
        t0: Instant,
    ) -> (ItemReport, Option<String>) {
        let report = &g.state.report;
        let complete = report.complete();
        let problems: Vec<String> = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error && !f.code.is_presence())
            .map(|f| f.message.clone())
            .collect();
        let prov = Provenance {
            template: self.template.origin.clone(),
            template_hash: self.template.hash.clone(),
            model: model.to_string(),
            input_hash: input_hash.to_string(),
            status: crate::output::PlanStatus::of(complete),
            missing: report.missing_ids(),
            generated_by: crate::output::generated_by(),
            name: Some(item.name.clone()),
            stages: item.stages.clone(),
        };
        let mut r = ItemReport {
            name: item.name.clone(),
            file: file.to_string(),
            line: item.line,
            status: if complete { Status::Complete } else { Status::Incomplete },
            resumed: false,
            model: model.to_string(),
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
        if let Error::Api(crate::client::ApiError::Exhausted { attempts, .. }) = e {
            // One request, as for a success; its attempts beyond the first are retries.
            r.transport_retries = attempts - 1;
            r.requests = 1;
        } else if matches!(e, Error::Api(a) if !matches!(a, crate::client::ApiError::Unanswered(_))) {
            r.requests = 1;
        }
        r.duration_ms = t0.elapsed().as_millis() as u64;
        r
    }
}
