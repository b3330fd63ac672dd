//! `rbplan ask`: one plan. Resolves the input and the settings, builds the plan's `Job`
//! (`pipeline`), runs it live, and shows what it produced (`present`).

use std::io::IsTerminal;
use std::path::Path;

use serde_json::json;

use super::connect;
use crate::check::Checker;
use crate::cli::AskArgs;
use crate::client::Client;
use crate::config::Env;
use crate::error::{Error, Outcome, Result};
use crate::input;
use crate::output::PlanStatus;
use crate::output::living::{self, Decision, Working};
use crate::output::lock::Lock;
use crate::pipeline::{self, Job, PlanInput, Produced, Start};
use crate::present::{self, Asked, View};
use crate::repair::{Event, LiveSource};
use crate::template::Template;
use crate::term::{Ui, print_stdout};

pub async fn run(mut args: AskArgs, ui: Ui) -> Result<Outcome> {
    let env = Env::load()?;
    let template = Template::resolve(args.template.template.as_deref())?;
    let cask = super::context_ask(&args.context, &env)?;
    let rb = cask.read_runbook(Path::new(""), true)?;
    let given = args.input.given_or(&args.example);
    let inputs = input::resolve(&given, &template, rb.as_ref().map(|r| r.source()))?;
    let ctx = cask.load(Path::new(""), true)?;
    let checker = Checker::new(&template);
    // `--out` as given, for `--json`'s `out`: the path written may be the NAME.new.md beside it.
    let given_out = args.out.clone();
    let (_lock, working) = prepare_out(&mut args, &checker, ui)?.unzip();
    let (settings, client) = connect(&args.conn, &env)?;
    let input = PlanInput::new(inputs).with_context(ctx, rb.as_ref(), cask.budget, &settings.shape.model)?;
    super::say_context(&input, cask.redact, ui);
    let prices = crate::config::prices(&args.cost.price, &env)?;
    let view = View::new(ui, streams(&args), args.out.is_none() && !args.json);
    let plan = pipeline::Settings::new(
        settings.shape.clone(),
        args.repair.max_repairs,
        args.repair.fallback_model.clone(),
        args.parallel.parallel,
        args.judge.judge_model.clone(),
    )
    .streamed(view.stream)
    .until(args.deadline.deadline);
    let client = super::budgeted(client, &args.cost, &prices, &plan.models(), settings.shape.max_tokens)?;
    let job = Job {
        template: &template,
        checker: &checker,
        settings: &plan,
        input: &input,
        start: match &working {
            Some(working) => Start::File { working, durable: true },
            None => Start::Fresh,
        },
        name: None,
        client: &client,
    };
    if let Some(out) = args.out.as_deref().filter(|_| job.is_current() && !args.force) {
        return say_current(given_out.as_deref().unwrap_or(out), out, args.json, ui);
    }
    if let (Some(w), Some(out)) = (&working, &args.out) {
        say_decision(&w.decision, out, &checker, ui);
    }
    let p = make(&job, &view).await?;
    show(&args, given_out.as_deref(), &view, &p, &job, &prices)?;
    let mut cost = super::cost_words(&prices, job.model(), &p.g.tally.usage);
    if args.cost.max_cost.is_some()
        && matches!(
            crate::price::counting_for(job.model()),
            crate::price::Counting::Estimate
        )
    {
        cost.push_str(" (--max-cost held each prompt by an estimate, four characters a token plus a third: no tokenizer for this model)");
    }
    if let (Some(l), Some(to)) = (&p.left_alone, p.written.path()) {
        ui.warn(left_alone(l, to, checker.spec.sections.len()));
    }
    present::summarize(&p.g, ui, p.written.path(), &checker, &cost);
    Ok(outcome(&p, &client))
}

/// Why the plan went beside the file asked for.
fn left_alone(l: &pipeline::LeftAlone, to: &std::path::Path, of: usize) -> String {
    format!(
        "{} is left as it is: it has {}/{of} sections and this run made {}, so the new plan goes to {}",
        l.path.display(),
        l.had,
        l.made,
        to.display()
    )
}

/// Run the job live, streaming the first answer into the view; a failed write is the
/// command's error.
async fn make(job: &Job<'_>, view: &View) -> Result<Produced> {
    let (on_delta, on_event) = (|piece: &str| view.delta(piece), |ev: Event| view.event(ev));
    // Ctrl-C or SIGTERM: no new request, the one in flight given up, the plan written.
    let halt = crate::client::Halt::default();
    halt.on_signals();
    let mut live = LiveSource::new(job.client, Some(&on_delta))
        .until(job.settings.deadline)
        .halted_by(Some(halt.clone()));
    let mut p = match job.make(&mut live, &on_event).await {
        Err(_) if halt.is_halted() => return Err(Error::Interrupted),
        r => r?,
    };
    match p.written.take_error() {
        Some(e) => Err(e),
        None => Ok(p),
    }
}

/// The first answer is shown as it streams: asked, or by default on a terminal stdout.
/// `--parallel` has no single reply to show as it streams: its progress is per section.
fn streams(args: &AskArgs) -> bool {
    !args.no_stream
        && args.parallel.parallel.is_none()
        && (args.stream || (std::io::stdout().is_terminal() && !args.json))
}

/// The exit: complete, failing, or stopped by the budget short of a plan that passes.
fn outcome(p: &Produced, client: &Client) -> Outcome {
    let budget_reached = client.budget().is_some_and(|(_, _, reached)| reached);
    match PlanStatus::of(&p.g.state.report) {
        PlanStatus::Complete => Outcome::Complete,
        _ if budget_reached => Outcome::BudgetReached,
        _ => Outcome::Failing,
    }
}

/// The plan on stdout, or the `--json` object (nothing when it went to `--out`);
/// `written_to` is where it went: `--out`, or `NAME.new.md` beside a file left alone.
fn show(
    args: &AskArgs,
    given_out: Option<&Path>,
    view: &View,
    p: &Produced,
    job: &Job<'_>,
    prices: &crate::price::Prices,
) -> Result<()> {
    if args.json {
        let asked = Asked {
            model: job.model(),
            template: job.template,
            input_hash: &job.input.hash,
            max_repairs: args.repair.max_repairs,
            parallel: args.parallel.parallel,
            out: given_out,
        };
        let mut v = present::json_report(&p.g, &asked);
        v["plan"] = json!(p.g.state.plan);
        v["written_to"] = json!(p.written.path().map(|p| p.display().to_string()));
        v["judge"] = json!(p.judgement);
        v["cost_usd"] = json!(p.g.tally.usage.priced(prices, job.model()));
        v["context"] = super::context_json(job.input);
        print_stdout(&(serde_json::to_string_pretty(&v).expect("json") + "\n"))
    } else if args.out.is_none() {
        view.print_plan(&p.g)
    } else {
        Ok(())
    }
}

/// The file at `--out`: locked and looked at (a person's edits, a file not rbplan's).
/// None without `--out`. The `NAME.new.md` an earlier run left beside a file it could not
/// merge into becomes `--out`: current, edited or not, it is treated as `--out` would be.
fn prepare_out(args: &mut AskArgs, checker: &Checker, ui: Ui) -> Result<Option<(Lock, Working)>> {
    let Some(out) = args.out.clone() else { return Ok(None) };
    super::check_out_path(&out)?;
    let lock = Lock::file(&out, "rbplan ask")?;
    let working = living::decide_following(&out, checker, args.force);
    if let Some(why) = working.followed {
        ui.note(format!(
            "{} is left as it is: {why}; working on {}, which an earlier run wrote beside it",
            out.display(),
            working.path.display()
        ));
        args.out = Some(working.path.clone());
    }
    Ok(Some((lock, working)))
}

/// The plan at `out` (`--out`, or the NAME.new.md beside `given`) is current: say so (and,
/// with `--json`, as an object: `out` as given, `current` the file).
fn say_current(given: &Path, out: &Path, json: bool, ui: Ui) -> Result<Outcome> {
    ui.note(format!(
        "{} is current: made from this template, model and input, and it passes its checks (a person's edits included); nothing sent (--force makes a new one)",
        out.display()
    ));
    if json {
        let v = json!({"status": "current", "out": given.display().to_string(), "current": out.display().to_string()});
        print_stdout(&(v.to_string() + "\n"))?;
    }
    Ok(Outcome::Complete)
}

/// Say what will happen to the file at `--out` before anything is sent.
fn say_decision(d: &Decision, out: &Path, checker: &Checker, ui: Ui) {
    match d {
        Decision::Fresh | Decision::Replace(_) => {}
        Decision::KeepEdits(e) => {
            let mut kept = e.edited_ids(checker);
            if e.other_edited {
                kept.push("text outside the sections".into());
            }
            ui.note(format!(
                "{} was edited since rbplan wrote it: keeping {} word for word, regenerating the rest",
                out.display(),
                kept.join(", ")
            ));
        }
        Decision::Beside { why, to } => ui.warn(format!(
            "{} is left as it is: {why}. The new plan goes to {}; compare them, or rerun with --force (keeps a .bak)",
            out.display(),
            to.display()
        )),
        Decision::Backup { to, .. } => ui.note(format!(
            "--force: {} is copied to {} and regenerated whole",
            out.display(),
            to.display()
        )),
    }
}
