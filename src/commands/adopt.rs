//! `rbplan adopt PLAN --out FILE`: a team's plan brought under rbplan. The layout is
//! `pipeline::adopt`'s; the plan is made by a `pipeline::Job` that starts from it as from
//! a plan a person edited, so only the missing sections are asked for.

use std::path::Path;

use super::connect;
use crate::check::Checker;
use crate::check::concerns::By;
use crate::cli::AdoptArgs;
use crate::config::Env;
use crate::error::{Error, Outcome, Result};
use crate::input;
use crate::output::PlanStatus;
use crate::output::lock::Lock;
use crate::pipeline::adopt::{Adoption, CLOSING};
use crate::pipeline::{self, Job, PlanInput, Start};
use crate::present::View;
use crate::repair::{Event, LiveSource};
use crate::template::Template;
use crate::term::{Ui, print_stdout};

pub async fn run(args: AdoptArgs, ui: Ui) -> Result<Outcome> {
    let template = Template::resolve(args.template.template.as_deref())?;
    let checker = Checker::new(&template);
    let text = input::read_text(&args.plan, "the plan")?;
    let adoption = Adoption::read(&text, &checker);
    if args.dry_run {
        print_stdout(&mapping(&adoption, &checker, &text, &args))?;
        return Ok(Outcome::Complete);
    }
    check_out(&args.out)?;
    let env = Env::load()?;
    // The team's plan is the context (as a runbook: the source of the stages and summary
    // when they are not given).
    let mut context = args.context.clone();
    context.runbook.get_or_insert_with(|| args.plan.display().to_string());
    let cask = super::context_ask(&context, &env)?;
    let rb = cask.read_runbook(Path::new(""), true)?;
    let inputs = input::resolve(&args.input.given(), &template, rb.as_ref().map(|r| r.source()))?;
    let ctx = cask.load(Path::new(""), true)?;
    let _lock = Lock::file(&args.out, "rbplan adopt")?;
    let working = adoption.working(&args.out);
    let (settings, client) = connect(&args.conn, &env)?;
    let input = PlanInput::new(inputs).with_context(ctx, rb.as_ref(), cask.budget, &settings.shape.model)?;
    super::say_context(&input, cask.redact, ui);
    let prices = crate::config::prices(&args.cost.price, &env)?;
    let plan = pipeline::Settings::new(
        settings.shape.clone(),
        args.repair.max_repairs,
        args.repair.fallback_model.clone(),
        None,
        None,
    );
    let client = super::budgeted(client, &args.cost, &prices, &plan.models(), settings.shape.max_tokens)?;
    let job = Job {
        template: &template,
        checker: &checker,
        settings: &plan,
        input: &input,
        start: Start::File {
            working: &working,
            durable: true,
        },
        name: None,
        client: &client,
    };
    ui.note(format!(
        "adopting {}: keeping {} word for word, generating {}",
        args.plan.display(),
        names(&checker, adoption.placed.iter().map(|p| p.section)),
        names(&checker, adoption.missing.iter().copied())
    ));
    let view = View::new(ui, false, false);
    let halt = crate::client::Halt::default();
    halt.on_signals();
    let mut live = LiveSource::new(&client, None)
        .until(job.settings.deadline)
        .halted_by(Some(halt));
    let mut p = job.make(&mut live, &|ev: Event| view.event(ev)).await?;
    if let Some(e) = p.written.take_error() {
        return Err(e);
    }
    // Sections generated after the last of the team's go before the closing section.
    if let pipeline::Written::To { path, text } = &p.written
        && let Some(moved) = pipeline::adopt::closing_last(text, &checker)
    {
        crate::output::write_atomic_with(path, moved.as_bytes(), true)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    let cost = super::cost_words(&prices, job.model(), &p.g.tally.usage);
    crate::present::summarize(&p.g, ui, p.written.path(), &checker, &cost);
    Ok(match PlanStatus::of(&p.g.state.report) {
        PlanStatus::Complete => Outcome::Complete,
        _ => Outcome::Failing,
    })
}

/// `--dry-run`: where each of the team's sections goes, what would be generated, and the
/// lines kept.
fn mapping(a: &Adoption, checker: &Checker, original: &str, args: &AdoptArgs) -> String {
    let mut out = format!(
        "{} → {} (dry run: nothing sent, nothing written)\nkept word for word:\n",
        args.plan.display(),
        args.out.display()
    );
    for p in &a.placed {
        let by = match p.by {
            None => "the template's heading",
            Some(By::Heading) => "by heading",
            Some(By::Content) => "by content",
        };
        out.push_str(&format!(
            "  {:<48} ← line {}: \"{}\" ({by})\n",
            checker.spec.heading(p.section),
            p.line,
            p.heading
        ));
    }
    out.push_str(&format!("would generate ({}):\n", a.missing.len()));
    for &i in &a.missing {
        out.push_str(&format!("  {}\n", checker.spec.heading(i)));
    }
    let (kept, total) = a.lines_kept(original);
    out.push_str(&format!(
        "\"{CLOSING}\": {} lines\nlines kept: {kept} of {total} non-blank lines ({} headings one level deeper)\n",
        a.closing_lines, a.relevelled
    ));
    out
}

fn names(checker: &Checker, it: impl Iterator<Item = usize>) -> String {
    let v: Vec<String> = it.map(|i| checker.spec.sections[i].id.clone()).collect();
    if v.is_empty() { "nothing".into() } else { v.join(", ") }
}

/// `--out` is a new file in a folder that exists.
fn check_out(out: &Path) -> Result<()> {
    if out.exists() {
        return Err(Error::usage(format!(
            "{} exists: adopt writes a new plan (to update an adopted plan, run rbplan ask --out {})",
            out.display(),
            out.display()
        )));
    }
    super::check_out_path(out)
}
