//! `rbplan batch`: plans for many services. Checks the input whole, picks the engine
//! (live, import, Batch API, or export only), runs the items and writes the report. The
//! parts it wires live in `batch/`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::connect;
use crate::batch::engine::import::{self, Imported};
use crate::batch::engine::{Engine, batch_api, export};
use crate::batch::items::{self, Manifest};
use crate::batch::outdir::OutDir;
use crate::batch::progress::Progress;
use crate::batch::report::{BatchReport, BudgetReport, ItemReport, RunInfo};
use crate::batch::{Answers, Ctx, Stop, runner};
use crate::check::Checker;
use crate::cli::{BatchArgs, Via};
use crate::client::pacing::Pacer;
use crate::config::{Env, Settings};
use crate::error::{Error, Outcome, Result};
use crate::template::Template;
use crate::term::{Ui, count, print_stdout};

pub async fn run(args: BatchArgs, ui: Ui) -> Result<Outcome> {
    check_flags(&args)?;
    let env = Env::load()?;
    let template = Template::resolve(args.template.template.as_deref())?;
    // The whole input is checked before anything is sent.
    let manifest = items::validate(&args.input)?;
    check_names(&args, &manifest)?;
    let context_ask = super::context_ask(&args.context, &env)?;
    let context = context_ask.load(std::path::Path::new(""), true)?;
    let (settings, client) = connect(&args.conn, &env)?;
    warn_about_tpm(&args, &settings, ui);
    let prices = crate::config::prices(&args.cost.price, &env)?;
    let client = client
        .with_pacer(Pacer::new(args.rpm, args.tpm))
        .with_limit(args.concurrency);
    let models = run_models(&args, &settings, &manifest);
    let models: Vec<&str> = models.iter().map(String::as_str).collect();
    let client = super::budgeted(client, &args.cost, &prices, &models, settings.shape.max_tokens)?;
    let mut ctx = Ctx {
        client,
        checker: Checker::new(&template),
        template,
        out: args.out_dir.as_deref().map(OutDir::prepare).transpose()?,
        settings: crate::pipeline::Settings::new(
            settings.shape.clone(),
            args.repair.max_repairs,
            args.repair.fallback_model.clone(),
            args.parallel.parallel,
            args.judge.judge_model.clone(),
        )
        .until(args.deadline.deadline),
        force: args.force,
        context,
        context_ask,
        prices,
        answers: Answers::Live,
        last_stages: Default::default(),
    };
    check_contexts(&ctx, &manifest, ui)?;
    if args.dry_run {
        return crate::batch::estimate::print(&ctx, &manifest, args.json, ui);
    }
    if let Some(path) = &args.export {
        let (parts, kept) = export::write_requests(&ctx, &manifest, path, limits(&args))?;
        export::summarize(&parts, kept, &manifest, ctx.default_model(), args.json, ui)?;
        return Ok(Outcome::Complete);
    }
    if ctx.out.is_none() {
        return Err(Error::usage(
            "--out-dir DIR is required: the folder for the plans and the report",
        ));
    }
    let engine = match prepare(&args, &mut ctx, &manifest, ui).await? {
        Prepared::Run(engine) => engine,
        Prepared::Done(outcome) => return Ok(outcome),
    };
    let ctx = Arc::new(ctx);
    let report = run_items(&args, &ctx, &manifest, engine, ui).await?;
    finish(&args, &ctx, &report, engine, ui)?;
    Ok(report.outcome())
}

/// Every item's context read and held to its budget before anything is sent: a file
/// that is missing, not text or over the budget is an error naming the item and its line.
fn check_contexts(ctx: &Ctx, manifest: &Manifest, ui: Ui) -> Result<()> {
    if ctx.context.is_empty() && !manifest.uses_context {
        return Ok(());
    }
    let shared: std::collections::BTreeSet<&str> = ctx.context.files.iter().map(|f| f.path.as_str()).collect();
    let mut first = true;
    for item in items::open(&manifest.path)? {
        let item = item?;
        let input = ctx
            .item_input(&item, &ctx.model_of(&item))
            .map_err(|e| Error::input(&manifest.path, Some(item.line), format!("item {:?}: {e}", item.name)))?;
        if std::mem::take(&mut first) {
            super::say_context(&input, ctx.context_ask.redact, ui);
        } else {
            let own = input
                .context
                .redactions
                .iter()
                .filter(|r| !shared.contains(r.path.as_str()));
            super::say_redactions(own, ui);
        }
    }
    Ok(())
}

/// Every model the run may ask: the default, the items' own, the fallback and the judge.
fn run_models(args: &BatchArgs, settings: &Settings, manifest: &Manifest) -> Vec<String> {
    let mut models: Vec<String> = manifest.models.iter().cloned().collect();
    if manifest.uses_default_model {
        models.push(settings.shape.model.clone());
    }
    models.extend(args.repair.fallback_model.clone());
    models.extend(args.judge.judge_model.clone());
    models.sort();
    models.dedup();
    models
}

/// What clap cannot check: flags that only make sense together.
fn check_flags(args: &BatchArgs) -> Result<()> {
    if args.cancel && args.via != Via::BatchApi {
        return Err(Error::usage(
            "--cancel goes with --via batch-api (it cancels the batch recorded in --out-dir)",
        ));
    }
    let files = args.export.is_some() || !args.import.is_empty() || args.via == Via::BatchApi;
    if args.parallel.parallel.is_some() && files {
        return Err(Error::usage(
            "--parallel asks live, section by section; a Batch API or vLLM file holds one request per service: drop --parallel, or run live",
        ));
    }
    if args.export_repairs.is_some() && args.import.is_empty() && args.via != Via::BatchApi {
        return Err(Error::usage(
            "--export-repairs goes with --import or --via batch-api (a live batch repairs live)",
        ));
    }
    Ok(())
}

/// Names that --export-repairs could not tell from its own custom_ids.
fn check_names(args: &BatchArgs, manifest: &Manifest) -> Result<()> {
    if args.export_repairs.is_none() {
        return Ok(());
    }
    match manifest.entries.iter().find(|e| e.name.contains(export::REPAIR_MARK)) {
        Some(e) => Err(Error::input(
            &manifest.path,
            Some(e.line),
            format!(
                "the name {:?} contains {:?}, which --export-repairs uses in its custom_ids",
                e.name,
                export::REPAIR_MARK
            ),
        )),
        None => Ok(()),
    }
}

fn limits(args: &BatchArgs) -> export::Limits {
    export::Limits {
        max_requests: args.file_max_requests,
        max_bytes: (args.file_max_mb * 1_000_000.0) as u64,
    }
}

/// The pacer reserves prompt + max tokens per request; say so when one exceeds a minute's budget.
fn warn_about_tpm(args: &BatchArgs, settings: &Settings, ui: Ui) {
    let Some(tpm) = args.tpm else { return };
    let one = u64::from(settings.shape.max_tokens.unwrap_or(1024)) + 3_000;
    if one > u64::from(tpm) {
        ui.warn(format!(
            "--tpm {tpm} is below one request's estimate (about {one} tokens: the prompt plus --max-tokens); \
             requests will go out about one every {:.0} s",
            one as f64 * 60.0 / f64::from(tpm)
        ));
    }
}

enum Prepared {
    /// Run the items with this engine.
    Run(Engine),
    /// Nothing to run: cancelled, or interrupted while waiting for a batch.
    Done(Outcome),
}

/// Pick the engine and set up where its answers come from.
async fn prepare(args: &BatchArgs, ctx: &mut Ctx, manifest: &Manifest, ui: Ui) -> Result<Prepared> {
    if args.via == Via::BatchApi {
        if args.cancel {
            return batch_api::cancel(ctx, ui).await.map(Prepared::Done);
        }
        let poll = std::time::Duration::from_secs_f64(args.poll_interval);
        return match batch_api::submit_and_collect(ctx, manifest, limits(args), poll, ui).await? {
            batch_api::Collected::Files { files, note } => {
                ctx.answers = files_answers(&files, note, args, ctx)?;
                Ok(Prepared::Run(Engine::BatchApi))
            }
            batch_api::Collected::Interrupted => Ok(Prepared::Done(Outcome::Interrupted)),
        };
    }
    if args.import.is_empty() {
        return Ok(Prepared::Run(Engine::Live));
    }
    let note =
        "no result for this service in the output file(s): the batch may have expired or been cancelled before it ran"
            .to_string();
    let answers = files_answers(&args.import, note, args, ctx)?;
    if let Answers::Files(imp) = &answers {
        import::check_matches(imp, manifest, &args.import)?;
    }
    ctx.answers = answers;
    Ok(Prepared::Run(Engine::Import))
}

fn files_answers(files: &[PathBuf], note: String, args: &BatchArgs, ctx: &Ctx) -> Result<Answers> {
    let imp = Imported::new(files, note, args.export_repairs.as_deref(), ctx)?;
    Ok(Answers::Files(Box::new(imp)))
}

/// Run every item and build the report (pending for those not reached).
async fn run_items(
    args: &BatchArgs,
    ctx: &Arc<Ctx>,
    manifest: &Manifest,
    engine: Engine,
    ui: Ui,
) -> Result<BatchReport> {
    ui.note(format!(
        "{} from {} → {} ({engine}, concurrency {}{})",
        count(manifest.len() as u64, "item"),
        manifest.path.display(),
        ctx.out().path.display(),
        args.concurrency,
        pacing_note(args.rpm, args.tpm)
    ));
    let t0 = Instant::now();
    let progress = Arc::new(Progress::new(manifest.len(), ui.quiet));
    let (reports, stop) = runner::run(ctx.clone(), manifest, args.concurrency, progress.clone()).await?;
    progress.finish();
    let why_pending = match &stop {
        Some(Stop::Interrupted) => "interrupted; rerun to finish".to_string(),
        Some(Stop::Fatal(e)) => format!("not run: the run stopped ({e})"),
        Some(Stop::Paused(e)) => format!("not run: {e}; rerun to resume"),
        None => "not run".to_string(),
    };
    let items: Vec<ItemReport> = reports
        .into_iter()
        .zip(&manifest.entries)
        .map(|(r, e)| {
            let file = OutDir::file_name(&e.slug);
            r.unwrap_or_else(|| ItemReport::pending(&e.name, &file, e.line, ctx.default_model(), &why_pending))
        })
        .collect();
    let run = RunInfo {
        input: manifest.path.display().to_string(),
        template: &ctx.template,
        model: ctx.default_model().to_string(),
        engine,
        duration: t0.elapsed(),
        budget: ctx.client.budget().map(|(spent_usd, max_usd, reached)| BudgetReport {
            max_usd,
            spent_usd,
            reached,
        }),
    };
    Ok(BatchReport::new(
        run,
        stop,
        items,
        // Items stopped while their request was in flight (a 401 stops the run at once)
        // report none, but the server got them: the total counts every request sent.
        ctx.client.requests_started(),
    ))
}

/// Write the report, finish what the engine left (exported repairs, the Batch API
/// record), and say how it went.
fn finish(args: &BatchArgs, ctx: &Ctx, report: &BatchReport, engine: Engine, ui: Ui) -> Result<()> {
    ctx.out().write_report(report)?;
    if let Answers::Files(imp) = &ctx.answers {
        imp.finish_repairs(ui)?;
        if engine == Engine::BatchApi && report.stopped.is_none() && !report.interrupted {
            batch_api::mark_imported(ctx.out())?;
        }
    }
    summarize(report, ctx.out(), ui);
    if args.json {
        // Items and errors are scrubbed where they arise; this is the last line of defence,
        // as for the report files.
        print_stdout(&crate::logging::scrub_cow(&report.to_json()))?;
    }
    Ok(())
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
    let report_md = out.path.join("report.md");
    ui.note(format!(
        "{}; {}, {}, {} → {}",
        r.counts_sentence(),
        count(t.requests, "request"),
        count(t.tokens.total_tokens, "token"),
        r.cost_words(),
        report_md.display()
    ));
    if let Some(b) = r.budget.filter(|b| b.reached) {
        say!(
            "budget reached: {} spent of --max-cost {}; requests in flight finished. Rerun with a larger --max-cost to go on (finished plans are kept)",
            crate::price::usd(b.spent_usd),
            crate::price::usd(b.max_usd)
        );
    }
    if let Some(why) = &r.stopped {
        say!("error: the run stopped early: {}", crate::logging::scrub(why));
    }
    if t.errors > 0 {
        ui.warn(format!(
            "{} plan(s) have every section but do not pass their checks (a loop, a table, a stage, copied text…): see the findings column of {}",
            t.errors,
            report_md.display()
        ));
    }
    if t.errors + t.incomplete + t.failed > 0 {
        say!(
            "{} with errors, {} incomplete, {} failed: see {}",
            t.errors,
            t.incomplete,
            t.failed,
            report_md.display()
        );
    }
    say_earlier_files(r, ui);
}

/// What became of earlier plans: edits kept, files left alone, plans redone and why.
fn say_earlier_files(r: &BatchReport, ui: Ui) {
    let t = &r.totals;
    if t.with_kept_edits > 0 {
        ui.note(format!(
            "{} had sections a person edited: those were kept word for word, the rest regenerated",
            count(t.with_kept_edits as u64, "plan")
        ));
    }
    if t.written_beside > 0 {
        ui.warn(format!(
            "{} left as they were (written by hand, or by an older rbplan, so edits cannot be told apart): the new versions are NAME.new.md beside them; compare, or rerun with --force (keeps NAME.md.bak)",
            count(t.written_beside as u64, "file")
        ));
    }
    let redone = r.redone_by_reason();
    if !redone.is_empty() {
        let parts: Vec<String> = redone.iter().map(|(why, n)| format!("{n} because {why}")).collect();
        ui.note(format!("redone from an earlier run: {}", parts.join(", ")));
    }
    if r.interrupted {
        say!(
            "interrupted: rerun the same command to finish the {} pending item(s)",
            t.pending
        );
    }
}
