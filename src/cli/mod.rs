//! Commands and flags as typed. Nothing here is resolved: `config` does that.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod args;
pub use args::*;
use args::{CHECK_STAGES_HELP, CHECK_SUMMARY_HELP};

#[derive(Debug, Parser)]
#[command(
    name = "rbplan",
    version,
    about = "Write migration rollback plans with an LLM, and check them.",
    long_about = "Write migration rollback plans with any OpenAI-compatible model, check that every \
required section is there, and re-ask the model for only what is missing.\n\n\
Try it offline, with no key (from the source checkout, which holds fixtures/):\n  \
rbplan ask --example --replay fixtures/quickstart\n\n\
Configuration comes from flags, then the environment, then a .env file in the working \
directory (which never overrides the real environment), then the project's rbplan.toml (found \
by walking up to the repository root), then the user's config file. See `rbplan config` and \
.env.example.",
    after_help = "Exit codes: 0 the plan passes its checks, 1 local I/O error, 2 usage or input error \
(nothing sent), 3 a plan fails its checks: a section missing or empty, or an error finding (check: \
warnings too with --strict; batch: some plans), 4 API or network failure, 5 another rbplan run \
holds the folder or file, 6 --max-cost reached, 130 interrupted."
)]
pub struct Cli {
    /// More diagnostics on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    /// No verbosity ever shows the API key.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, display_order = 900)]
    pub verbose: u8,

    /// No progress, status or retry lines on stderr: only errors, and warnings about the
    /// result (a plan that fails a check, a batch that stopped).
    #[arg(short, long, global = true, display_order = 901)]
    pub quiet: bool,

    /// Read settings from FILE instead of the project's rbplan.toml (the user file still
    /// applies below it).
    #[arg(long, value_name = "FILE", global = true, display_order = 897)]
    pub config: Option<PathBuf>,

    /// Read no config file (neither rbplan.toml nor the user file).
    #[arg(long, global = true, conflicts_with = "config", display_order = 898)]
    pub no_config: bool,

    /// Use the [profile.NAME] table of the config files over their top level [RBPLAN_PROFILE].
    #[arg(long, value_name = "NAME", global = true, display_order = 899)]
    pub profile: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write one rollback plan: render the prompt, ask the model, check, repair, write.
    #[command(
        after_help = "Examples:\n  rbplan ask --example --replay fixtures/quickstart   (from the source checkout)\n  \
rbplan ask --summary 'Move orders DB from MySQL to Postgres' --stages 'backfill; cutover' --out plan.md\n  \
rbplan ask --summary-file summary.txt --stages-file - --json < stages.txt"
    )]
    Ask(AskArgs),
    /// Write plans for many services from a JSONL, CSV or YAML file (resumable).
    #[command(after_help = "Examples:
  Live, 8 requests in flight, paced to 400,000 tokens a minute:
    rbplan batch services.jsonl --out-dir plans/ -j 8 --tpm 400000
  Rerun the same command to resume (current, complete plans are kept); --force redoes all:
    rbplan batch services.jsonl --out-dir plans/ --force
  On a GPU cluster (or the Batch API): export, run, then import to check, repair and write:
    rbplan batch services.jsonl --export requests.jsonl --model M
    vllm run-batch -i requests.jsonl -o out.jsonl --model M
    rbplan batch services.jsonl --import out.jsonl --out-dir plans/

Exit codes:
  0    every plan is complete
  1    a local file could not be written (the output folder, a report)
  2    bad flags or input; nothing was sent
  3    some plans are incomplete, or fail their checks, after repairs (none failed)
  4    some services failed at the API (a 401 or an exhausted quota stops the run)
  5    another rbplan run holds the output folder (its pid is named)
  6    --max-cost reached: requests in flight finished, the report is written
  130  interrupted: the report is written; rerun the same command to finish

Plans a person edited keep their edits on a rerun: edited sections (and added text) stay
word for word, the rest is regenerated. A file rbplan cannot merge into is left alone and
the new plan goes to NAME.new.md.")]
    Batch(Box<BatchArgs>),
    /// Revise a plan in place: rewrite named sections following a reviewer's note, or
    /// (--fix) re-ask the sections with findings. Every other section stays byte for byte.
    #[command(after_help = "Examples:
  rbplan revise plan.md --section by-stage --note 'Cover the Kafka consumer offsets at each stage'
  rbplan revise plan.md -s 3 -s what-if --note-file review.txt --diff
  rbplan revise plan.md --fix                    (re-ask the sections with findings)
  rbplan revise notes.md --fix --summary-file summary.txt --stages-file stages.txt   (a hand-written plan)
  rbplan revise plan.md -s 3 --note '...' --dry-run   (print the request, send nothing)

Exit codes:
  0    the revised plan passes its checks
  1    the plan could not be written (disk, permissions)
  2    bad flags or input: no such plan, an unknown section (the valid ones are listed), an empty note
  3    the revised plan still fails its checks; or the revision was refused (the model returned
       none of the sections asked for, or a revised section fails more checks than before:
       the plan is unchanged and the attempt is in NAME.new.md)
  4    the API failed
  5    another rbplan run is writing this plan",
        mut_arg("summary", |a| a.help("The migration, for a plan whose front matter records none (hand-written).")),
        mut_arg("stages", |a| a.help("The risky stages, as for `ask --stages`, for a plan whose front matter records none."))
    )]
    Revise(Box<ReviseArgs>),
    /// Check plan files (or folders of them): sections, structure, loops, copied or generic text.
    #[command(
        long_about = "Check plan files, generated or hand-written, like a linter: every required \
section once and in order, the template's structural checks (a decision table, a subsection per \
stage, checkboxes...), repetition loops, runaway sections, text about the prompt or copied from it, \
and, given the migration's summary, whether the plan names its own systems. Each finding has a \
severity, a code, a file and a line.",
        after_help = "Verdicts and exit codes:\n  \
clean, warnings   exit 0 (warnings exit 3 with --strict)\n  \
errors            exit 3: every section is there, but an error finding\n  \
incomplete        exit 3: a required section is missing or empty\n  \
unreadable        exit 2: the file cannot be read (the others are still checked)\n\n\
Examples:\n  rbplan check plans/\n  rbplan check plan.md --summary-file summary.txt --stages-file stages.txt --strict\n  \
rbplan check plans/ --format github      (annotations on a pull request)\n  \
rbplan check plans/ --format sarif > rbplan.sarif",
        mut_arg("model", |a| a.hide(true)),
        mut_arg("temperature", |a| a.hide(true)),
        mut_arg("max_tokens", |a| a.hide(true)),
        mut_arg("summary", |a| a.help(CHECK_SUMMARY_HELP)),
        mut_arg("stages", |a| a.help(CHECK_STAGES_HELP))
    )]
    Check(CheckArgs),
    /// Bring an existing plan under rbplan: its sections become the template's, kept word
    /// for word; only the missing ones are generated, with the plan as context.
    #[command(
        long_about = "Bring a plan a team already has under rbplan. Its headings are mapped to the \
template's sections (as `rbplan check` maps them); each section it covers is placed under the \
template's heading with its text verbatim, the title and what precedes the first section stay on \
top, and anything else goes to a closing \"From the original plan\" section: every non-blank line \
of the original is kept. Only the missing sections are generated, with the original plan as \
context (as --runbook; without --stages and --summary they are derived from it). The team's \
sections are recorded as a person's edits, so a later `ask --out`, `revise --fix` or batch \
rerun keeps them word for word.",
        after_help = "Examples:\n  rbplan adopt docs/cutover.md --out plan.md --dry-run   (the mapping; nothing sent)\n  \
rbplan adopt docs/cutover.md --out plan.md --summary 'Move billing to SQS' --stages 'dual-run; cutover'\n  \
rbplan adopt fixtures/adopt/billing-queue-cutover.md --out plan.md --replay fixtures/adopt-quickstart \\\n    \
--summary-file fixtures/adopt-quickstart/summary.txt --stages-file fixtures/adopt-quickstart/stages.txt\n\n\
Exit codes: 0 the adopted plan passes its checks; 2 bad flags or input (nothing sent); 3 it \
fails them (the findings are printed; the plan is written); 4 the API failed; 5 another run \
writes FILE."
    )]
    Adopt(Box<AdoptArgs>),
    /// Print the stages `--runbook FILE` would derive from a runbook, one per line, to review
    /// them before anything is spent.
    #[command(
        long_about = "Print the stages `--runbook FILE` would derive from a cutover runbook: the ordered \
steps of its procedure, under the runbook's own names (numbered step headings, else a numbered list \
or the subheadings under a procedure heading). One per line, or with --json a list of strings. \
Nothing is sent.",
        after_help = "Examples:\n  rbplan stages docs/cutover-runbook.md\n  \
rbplan stages runbook.md > stages.txt   (edit, then: rbplan ask --runbook runbook.md --stages-file stages.txt)"
    )]
    Stages(StagesArgs),
    /// Print the messages that would be sent to the model, without sending them.
    #[command(
        long_about = "Print the messages that would be sent to the model, without sending them.\n\n\
With --json, print the exact request body instead; of the connection flags only --model, \
--temperature, --max-tokens and --max-tokens-field shape it. Nothing is sent, so the others \
(base URL, provider, headers, timeouts, retries, --record, --replay) do not apply: they are \
accepted, so ask's flags can be reused, but ignored, and not listed here.",
        mut_arg("base_url", |a| a.hide(true)),
        mut_arg("timeout", |a| a.hide(true)),
        mut_arg("connect_timeout", |a| a.hide(true)),
        mut_arg("idle_timeout", |a| a.hide(true)),
        mut_arg("max_retries", |a| a.hide(true)),
        mut_arg("patience", |a| a.hide(true)),
        mut_arg("provider", |a| a.hide(true)),
        mut_arg("api_version", |a| a.hide(true)),
        mut_arg("headers", |a| a.hide(true)),
        mut_arg("record", |a| a.hide(true)),
        mut_arg("replay", |a| a.hide(true))
    )]
    Render(RenderArgs),
    /// Check the configuration and that the server, key and model work.
    #[command(
        long_about = "Check the configuration and that the server, key and model work: where each \
setting came from, that GET /models answers and accepts the key, that the model is listed, and \
with --ping that it answers a tiny chat request (16 tokens at most).\n\n\
The connection flags apply as they do for ask (--max-tokens-field too, for the ping). \
--temperature, --max-tokens and --idle-timeout do not (the ping asks for 16 tokens, not \
streamed) and are not listed here; --record and --replay are refused: doctor checks a live server.",
        mut_arg("temperature", |a| a.hide(true)),
        mut_arg("idle_timeout", |a| a.hide(true)),
        mut_arg("max_tokens", |a| a.hide(true)),
        mut_arg("record", |a| a.hide(true)),
        mut_arg("replay", |a| a.hide(true))
    )]
    Doctor(DoctorArgs),
    /// Print a shell completion script: rbplan completions bash > /etc/bash_completion.d/rbplan
    #[command(
        after_help = "Examples:\n  rbplan completions bash > ~/.local/share/bash-completion/completions/rbplan\n  \
rbplan completions zsh > \"${fpath[1]}/_rbplan\"\n  rbplan completions fish > ~/.config/fish/completions/rbplan.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): rbplan man > rbplan.1; man ./rbplan.1
    Man,
    /// Print the effective settings and where each came from (flag, environment, .env, a
    /// config file and line, or default).
    #[command(
        after_help = "Examples:\n  rbplan config\n  rbplan config --profile azure --json\n  rbplan config --no-config"
    )]
    Config(ConfigArgs),
    /// Write a commented rbplan.toml (every key at its default, commented out) and an
    /// example batch input with two services. Refuses to overwrite either.
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// One JSON object: the files, the profile, and each setting with its origin.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The folder to write into.
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

/// The migration a plan is for, as typed: flattened into ask, check, revise and render,
/// each of which completes it in its own way (see `input::Given`).
#[derive(Debug, Args)]
pub struct AskArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub context: ContextArgs,
    #[command(flatten)]
    pub example: ExampleArg,
    #[command(flatten)]
    pub template: TemplateArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub repair: RepairArgs,
    #[command(flatten)]
    pub judge: JudgeArgs,
    #[command(flatten)]
    pub cost: CostArgs,
    #[command(flatten)]
    pub parallel: ParallelArgs,
    #[command(flatten)]
    pub deadline: DeadlineArg,
    /// Write the plan to FILE (atomically, with provenance front matter) instead of stdout.
    /// If FILE is a plan rbplan wrote and a person edited since, the edited sections (and any
    /// text a person added) are kept word for word and only the others are regenerated; a
    /// file rbplan cannot merge into is left alone and the plan goes to NAME.new.md.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// With --out over an existing file: regenerate every section, edited or not, after
    /// copying the old file to FILE.bak.
    #[arg(long, requires = "out")]
    pub force: bool,
    /// Print one JSON object (plan, sections, repairs, usage, model, request ids) on stdout.
    #[arg(long)]
    pub json: bool,
    /// Show the plan as it arrives (default when stdout is a terminal).
    #[arg(long, overrides_with = "no_stream")]
    pub stream: bool,
    /// Do not stream.
    #[arg(long)]
    pub no_stream: bool,
}

#[derive(Debug, Args)]
pub struct ReviseArgs {
    /// The plan to revise, in place (written by rbplan, or by hand with --summary and --stages).
    pub plan: PathBuf,
    /// A section to rewrite: its id (by-stage), number (3) or title ("Rollback by stage").
    /// Repeat for several; they are rewritten in one request.
    #[arg(
        long = "section",
        short = 's',
        value_name = "SECTION",
        required_unless_present = "fix"
    )]
    pub sections: Vec<String>,
    /// What the reviewer wants changed, in their words. It reaches the model as typed.
    #[arg(long, value_name = "TEXT", conflicts_with = "note_file", allow_hyphen_values = true)]
    pub note: Option<String>,
    /// Read the note from a file ("-" for stdin).
    #[arg(long, value_name = "PATH")]
    pub note_file: Option<PathBuf>,
    /// Instead of a note: re-ask every section with findings, through the same repair
    /// rounds as `ask` (for plans written earlier, or by hand).
    #[arg(long, conflicts_with_all = ["sections", "note", "note_file"])]
    pub fix: bool,
    /// Print a unified diff of the change on stdout (the default on a terminal).
    #[arg(long)]
    pub diff: bool,
    /// Print the request that would be sent, and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the revision even when a revised section fails more checks than before (by
    /// default the plan is then left as it is and the attempt goes to NAME.new.md).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub context: ContextArgs,
    #[command(flatten)]
    pub template: TemplateArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub repair: RepairArgs,
}

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Services to plan: .jsonl, .csv (with a header) or .yaml/.yml (a list). Each item has
    /// name, summary, stages and optionally model.
    pub input: PathBuf,
    /// Folder for the plans and report.json / report.md. It is also the resume state.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Requests in flight at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 4, value_parser = at_least_one, allow_negative_numbers = true)]
    pub concurrency: usize,
    /// Client-side limit on requests per minute.
    #[arg(long, value_name = "N")]
    pub rpm: Option<u32>,
    /// Client-side limit on tokens per minute (prompt estimate + max tokens per request).
    #[arg(long, value_name = "N")]
    pub tpm: Option<u32>,
    /// Redo every service, even those with a current, complete plan, and every section, even
    /// those a person edited: each existing plan is first copied to NAME.md.bak.
    #[arg(long)]
    pub force: bool,
    /// Print the report as JSON on stdout when done.
    #[arg(long)]
    pub json: bool,
    /// Write the Batch API request file instead of calling the model: one chat request per
    /// service, custom_id = name. Split into FILE-001.jsonl, FILE-002.jsonl… past
    /// --file-max-requests or --file-max-mb. `vllm run-batch -i FILE` runs it too. With
    /// --out-dir, services whose plan there is current are left out.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["import", "via"], help_heading = "Batch API and vLLM")]
    pub export: Option<PathBuf>,
    /// Read a Batch API or vLLM run-batch output file instead of calling the model; repeat
    /// for error files and later repair rounds. Plans are checked, repaired (live, or see
    /// --export-repairs) and written as a live batch would.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "via",
        help_heading = "Batch API and vLLM"
    )]
    pub import: Vec<PathBuf>,
    /// With --import or --via batch-api: write the repair requests to FILE as a smaller batch
    /// for another round, instead of repairing live. Import its output next time with one
    /// more --import.
    #[arg(long, value_name = "FILE", help_heading = "Batch API and vLLM")]
    pub export_repairs: Option<PathBuf>,
    /// Engine: live (default), or batch-api: upload to /v1/files, create a /v1/batches
    /// batch (24 h window), record its id in --out-dir, poll, download, check and repair.
    /// A rerun resumes the recorded batch instead of submitting again.
    #[arg(long, value_enum, default_value_t = Via::Live, help_heading = "Batch API and vLLM")]
    pub via: Via,
    /// With --via batch-api: cancel the batch recorded in --out-dir.
    #[arg(long, help_heading = "Batch API and vLLM")]
    pub cancel: bool,
    /// With --via batch-api: seconds between status polls.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30.0,
        value_parser = positive,
        help_heading = "Batch API and vLLM"
    )]
    pub poll_interval: f64,
    /// Most requests per request file (the Batch API allows 50,000).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 50_000,
        value_parser = at_least_one,
        allow_negative_numbers = true,
        help_heading = "Batch API and vLLM"
    )]
    pub file_max_requests: usize,
    /// Largest request file in MB (the Batch API allows 200).
    #[arg(
        long,
        value_name = "MB",
        default_value_t = 200.0,
        value_parser = positive,
        help_heading = "Batch API and vLLM"
    )]
    pub file_max_mb: f64,
    /// Send nothing: print the items that would run (after resume), their prompt tokens
    /// (counted with OpenAI's tokenizer for OpenAI models, else estimated), the worst-case
    /// completion tokens and, with a price, the cost range. With --json, as an object.
    #[arg(long, conflicts_with_all = ["export", "import", "cancel"])]
    pub dry_run: bool,
    #[command(flatten)]
    pub context: ContextArgs,
    #[command(flatten)]
    pub template: TemplateArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub repair: RepairArgs,
    #[command(flatten)]
    pub judge: JudgeArgs,
    #[command(flatten)]
    pub cost: CostArgs,
    #[command(flatten)]
    pub parallel: ParallelArgs,
    #[command(flatten)]
    pub deadline: DeadlineArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    Live,
    BatchApi,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Plan files, or folders: the .md files directly in them (not in subfolders; README.md
    /// and a batch's report.md are skipped).
    #[arg(required_unless_present = "list_codes", value_name = "PLAN")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub input: InputArgs,
    /// Report only findings with these codes (comma-separated, or repeat the flag); the
    /// others are counted as suppressed. Missing and empty sections always count.
    #[arg(long, value_name = "CODES", value_delimiter = ',')]
    pub select: Vec<String>,
    /// Set aside findings with these codes (counted as suppressed, never in the verdict).
    /// Missing and empty sections always count. In a plan, `<!-- rbplan-disable CODE -->`
    /// does the same for a part of the file.
    #[arg(long, value_name = "CODES", value_delimiter = ',')]
    pub ignore: Vec<String>,
    /// List every finding code: its severity, what it checks, and an example of a fix.
    #[arg(long)]
    pub list_codes: bool,
    /// Read every plan by the template's headings alone: no concern map for a plan in its
    /// own shape (its sections are then all missing).
    #[arg(long)]
    pub no_concerns: bool,
    #[command(flatten)]
    pub template: TemplateArgs,
    /// Fail (exit 3) on warnings too. Error findings fail without it, as in any linter.
    #[arg(long)]
    pub strict: bool,
    /// How to print the findings.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    #[command(flatten)]
    pub judge: JudgeArgs,
    /// Where the judge is (only with --judge-model; check alone sends nothing).
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// The team's plan (Markdown).
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// Where the adopted plan goes (a new file; a later `rbplan ask --out FILE` updates it).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: PathBuf,
    /// Print the mapping and what would be generated; send nothing, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub context: ContextArgs,
    #[command(flatten)]
    pub template: TemplateArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub repair: RepairArgs,
    #[command(flatten)]
    pub cost: CostArgs,
}

/// How `rbplan check` prints its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per finding, file:line first, and a summary line.
    Text,
    /// One object: per file its verdict, sections and findings.
    Json,
    /// GitHub Actions workflow commands (::error file=…,line=…::…): annotations on a pull request.
    Github,
    /// JUnit XML: a test case per file, a failure per failing finding.
    Junit,
    /// SARIF 2.1.0, for code-scanning tools: ruleId is the finding's code.
    Sarif,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub context: ContextArgs,
    #[command(flatten)]
    pub example: ExampleArg,
    #[command(flatten)]
    pub template: TemplateArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Print the exact request body as JSON instead of the messages as text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StagesArgs {
    /// The runbook (Markdown).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// A JSON list of strings instead of one stage per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Also send a tiny chat request (16 tokens at most) to prove the model answers.
    #[arg(long)]
    pub ping: bool,
}

/// Parse the command line, with the config files' values as the defaults of the command's
/// flags (a flag typed wins), and install the files for `config::Env::load`.
pub fn parse() -> crate::error::Result<Cli> {
    use clap::{CommandFactory, FromArgMatches};
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let first = Cli::command().get_matches_from(&args);
    let cli = Cli::from_arg_matches(&first).unwrap_or_else(|e| e.exit());
    let Some(name) = first.subcommand_name().map(str::to_string) else {
        return Ok(cli);
    };
    let choice = crate::config::files::Choice {
        file: cli.config.clone(),
        none: cli.no_config,
        profile: cli.profile.clone(),
    };
    let env = crate::config::Env::load_without_files()?;
    let loaded = crate::config::files::load(&choice, env.get("RBPLAN_PROFILE"))?;
    let entries = loaded.flag_values(&name);
    let cli = if entries.is_empty() {
        cli
    } else {
        match with_defaults(Cli::command(), &name, &entries).try_get_matches_from(&args) {
            Ok(m) => Cli::from_arg_matches(&m).unwrap_or_else(|e| e.exit()),
            Err(e) => return Err(from_file(e, &entries)),
        }
    };
    crate::config::files::install(loaded);
    Ok(cli)
}

/// `cmd` with each file value as the default of subcommand `name`'s flag of that name.
fn with_defaults(cmd: clap::Command, name: &str, entries: &[&crate::config::files::Entry]) -> clap::Command {
    let Some(sub) = cmd.find_subcommand(name) else {
        return cmd;
    };
    let given: Vec<(&'static str, Vec<&'static str>)> = entries
        .iter()
        .filter(|e| sub.get_arguments().any(|a| a.get_id() == e.key.name))
        .map(|e| {
            let texts = crate::config::files::flag_texts(&e.value);
            (
                e.key.name,
                texts.into_iter().map(|t| &*Box::leak(t.into_boxed_str())).collect(),
            )
        })
        .collect();
    cmd.mut_subcommand(name, |mut sub| {
        for (id, values) in given {
            sub = sub.mut_arg(id, |a| a.default_values(values));
        }
        sub
    })
}

/// The command line parsed without the files' values and not with them: the value of
/// the flag clap names is refused, as a bad input naming its file and line.
fn from_file(e: clap::Error, entries: &[&crate::config::files::Entry]) -> crate::error::Error {
    use clap::error::{ContextKind, ContextValue};
    let flag = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let entry = entries.iter().find(|en| {
        let long = format!("--{}", en.key.name.replace('_', "-"));
        flag == long || flag.starts_with(&format!("{long} ")) || flag.starts_with(&format!("{long}="))
    });
    let Some(entry) = entry else { e.exit() };
    let msg = e.to_string();
    let first = msg.lines().next().unwrap_or_default().trim_start_matches("error: ");
    let (path, line) = match entry.origin {
        crate::config::Source::File(p, l) => (p, Some(l)),
        _ => (std::path::Path::new("config"), None),
    };
    crate::error::Error::input(path, line, format!("{}: {first}", entry.key.name))
}

/// A whole number of at least 1.
pub(super) fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<i64>() {
        Ok(n) if n >= 1 => usize::try_from(n).map_err(|_| format!("{s:?} is too large")),
        Ok(_) => Err("must be at least 1".into()),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

/// A finite number greater than 0.
pub(super) fn positive(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(_) => Err("must be a number greater than 0".into()),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}
