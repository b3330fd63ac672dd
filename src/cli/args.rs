//! Flag groups flattened into more than one command.

use std::path::PathBuf;

use clap::Args;

use super::{at_least_one, positive};

#[derive(Debug, Args, Clone, Default)]
pub struct InputArgs {
    /// The migration, in a sentence or a paragraph.
    #[arg(
        long,
        value_name = "TEXT",
        conflicts_with = "summary_file",
        allow_hyphen_values = true
    )]
    pub summary: Option<String>,
    /// Read the summary from a file ("-" for stdin).
    #[arg(long, value_name = "PATH")]
    pub summary_file: Option<PathBuf>,
    /// The risky stages: one per line ("\n" typed here counts as a line break; a pasted
    /// "- " list is fine), else separated by ";", else by arrows ("->", "=>", "→"), else
    /// by ",". A risk note is not part of a name: in brackets, after ":" or a dash, or a
    /// last comma part that only speaks of risk ("Backfill, high risk").
    #[arg(
        long,
        value_name = "TEXT",
        conflicts_with = "stages_file",
        allow_hyphen_values = true
    )]
    pub stages: Option<String>,
    /// Read the stages from a file ("-" for stdin).
    #[arg(long, value_name = "PATH")]
    pub stages_file: Option<PathBuf>,
}

/// The team's own files a plan is grounded in: flattened into ask, batch, revise, render.
#[derive(Debug, Args, Clone, Default)]
pub struct ContextArgs {
    /// A file, folder, glob or "-" (stdin) the plan is grounded in: the cutover runbook,
    /// migration SQL, Terraform, manifests, a README, a post-mortem. Repeatable. Folders are
    /// walked as ripgrep does (.gitignore kept, hidden files and binaries skipped, and said);
    /// every file must be UTF-8 text. Each goes to the model as a fenced block with its path,
    /// before the migration's input; credentials are replaced first (see --no-redact). In a
    /// batch these come before each item's own `context`.
    #[arg(long = "context", value_name = "PATH")]
    pub context: Vec<String>,
    /// The cutover runbook this plan complements: context too, and without --stages the
    /// source of the stages (its procedure's steps, under their own names: `rbplan stages
    /// FILE` prints them); without --summary, its title and first paragraph are the summary.
    #[arg(long, value_name = "FILE")]
    pub runbook: Option<String>,
    /// The most tokens the context may take, counted with the model's tokenizer where
    /// rbplan has it, else estimated; checked before anything is sent (over it: exit 2,
    /// naming the largest files) [RBPLAN_CONTEXT_MAX_TOKENS; default 24000].
    #[arg(long, value_name = "N")]
    pub context_max_tokens: Option<u64>,
    /// Over --context-max-tokens, keep the head and tail of each file over its share, with
    /// a marker line where lines were cut, instead of stopping.
    #[arg(long)]
    pub context_truncate: bool,
    /// Send context files as they are. By default private keys, cloud access keys, provider
    /// and chat tokens, passwords in URLs and connection strings, password/secret assignments
    /// and JWTs are replaced by a marker naming their kind, and each is reported by file and
    /// line (never its value). With this flag a warning says so on every run.
    #[arg(long)]
    pub no_redact: bool,
}

/// `--example`, where a command can run on the template's own example (ask, render).
#[derive(Debug, Args, Clone, Default)]
pub struct ExampleArg {
    /// Use the template's built-in example migration instead of your own input.
    #[arg(long, conflicts_with_all = ["summary", "summary_file", "stages", "stages_file"])]
    pub example: bool,
}

impl InputArgs {
    /// Where the inputs come from, as plain values, for `input`.
    pub fn given(&self) -> crate::input::Given {
        crate::input::Given {
            summary: self.summary.clone(),
            summary_file: self.summary_file.clone(),
            stages: self.stages.clone(),
            stages_file: self.stages_file.clone(),
            example: false,
        }
    }

    /// `given`, or the template's example with `--example`.
    pub fn given_or(&self, example: &ExampleArg) -> crate::input::Given {
        crate::input::Given {
            example: example.example,
            ..self.given()
        }
    }
}

pub(super) const CHECK_STAGES_HELP: &str = "The risky stages the plans must cover in \"Rollback by stage\", written as for \
`ask --stages` (one per line, else separated by \";\", else by \"->\", else by \",\").";
pub(super) const CHECK_SUMMARY_HELP: &str = "The migration's summary. Plans that name none of the systems it names (products, \
databases, services) are flagged, and so are what-if scenarios that name neither a stage nor one of them. \
Plans rbplan wrote record their own summary.";

#[derive(Debug, Args, Clone, Default)]
pub struct TemplateArgs {
    /// A template folder (template.toml + prompt files). Default: the built-in rollback plan.
    #[arg(long, value_name = "PATH")]
    pub template: Option<PathBuf>,
}

/// Where to send requests and how. Each flag has an environment variable (in brackets).
#[derive(Debug, Args, Clone, Default)]
pub struct ConnArgs {
    /// API base URL [OPENAI_BASE_URL; default https://api.openai.com/v1].
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Model name (the deployment name on Azure) [RBPLAN_MODEL; default gpt-4o-mini].
    #[arg(long, short = 'm', value_name = "NAME")]
    pub model: Option<String>,
    /// Sampling temperature [RBPLAN_TEMPERATURE; default: the server's].
    #[arg(long, value_name = "T")]
    pub temperature: Option<f32>,
    /// Completion token limit per request [RBPLAN_MAX_TOKENS; default 4096; 0 sends none].
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u32>,
    /// Field that carries the limit: max_tokens, or max_completion_tokens for OpenAI
    /// reasoning models [RBPLAN_MAX_TOKENS_FIELD].
    #[arg(long, value_name = "FIELD")]
    pub max_tokens_field: Option<String>,
    /// Seconds for a whole non-streamed request, or to the first byte of a stream
    /// [RBPLAN_TIMEOUT; default 600].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Seconds to open a connection [RBPLAN_CONNECT_TIMEOUT; default 10].
    #[arg(long, value_name = "SECS")]
    pub connect_timeout: Option<f64>,
    /// Longest silence between stream chunks, in seconds [RBPLAN_IDLE_TIMEOUT; default 120].
    #[arg(long, value_name = "SECS")]
    pub idle_timeout: Option<f64>,
    /// Retries of connection errors, timeouts, 408/409/5xx; 0 turns them off. A rate limit
    /// (429) is waited out, not retried: see --patience [RBPLAN_MAX_RETRIES; default 3].
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,
    /// How long rate limits (429) may go on with no request succeeding before the run
    /// stops, cleanly and resumably; until then a 429 only slows the run down
    /// [RBPLAN_PATIENCE; default 300].
    #[arg(long, value_name = "SECS")]
    pub patience: Option<f64>,
    /// API flavour [RBPLAN_PROVIDER; default openai].
    #[arg(long, value_enum)]
    pub provider: Option<crate::client::Provider>,
    /// Azure api-version [OPENAI_API_VERSION].
    #[arg(long, value_name = "VERSION")]
    pub api_version: Option<String>,
    /// Extra request header for gateways, "Name: value"; repeatable [RBPLAN_HEADERS, ";"-separated].
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Save every exchange (request body, response status, headers, body) into DIR as
    /// fixtures. The key and Authorization header are never saved.
    #[arg(long, value_name = "DIR", conflicts_with = "replay")]
    pub record: Option<PathBuf>,
    /// Answer from fixtures in DIR, with no network. With no --model, the model the
    /// fixtures were recorded with is used.
    #[arg(long, value_name = "DIR")]
    pub replay: Option<PathBuf>,
}

impl ConnArgs {
    /// The flags as plain values, for `config`.
    pub fn flags(&self) -> crate::config::Flags {
        crate::config::Flags {
            base_url: self.base_url.clone(),
            model: self.model.clone(),
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            max_tokens_field: self.max_tokens_field.clone(),
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            idle_timeout: self.idle_timeout,
            max_retries: self.max_retries,
            patience: self.patience,
            provider: self.provider,
            api_version: self.api_version.clone(),
            headers: self.headers.clone(),
            record: self.record.clone(),
            replay: self.replay.clone(),
        }
    }
}

#[derive(Debug, Args, Clone, Default)]
pub struct ParallelArgs {
    /// Write the plan as a short outline of the facts every section shares (stages, point
    /// of no return, roles, systems, numbers), then every section in its own request, N at
    /// a time, each carrying the outline; then check (sections must agree with the
    /// outline) and repair, each section again alone with the outline, N at a time. Faster on a server that answers requests in parallel
    /// (0.25× the wall time in the bench); slower on one that does not (a CPU-bound local
    /// server: each part may run to --max-tokens). More prompt tokens, most of them a shared
    /// prefix that servers cache. In a batch, -j still bounds the requests in flight.
    #[arg(long, value_name = "N", value_parser = at_least_one, allow_negative_numbers = true)]
    pub parallel: Option<usize>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct CostArgs {
    /// What tokens cost, in USD per million: IN:OUT or IN:OUT:CACHED for every model, or
    /// MODEL=IN:OUT[:CACHED] for one (repeat for several) [RBPLAN_PRICE, ";"-separated].
    /// Without it, the built-in table's price for OpenAI models, else tokens only.
    #[arg(long, value_name = "PRICE", long_help = crate::price::help())]
    pub price: Vec<String>,
    /// Start no request whose worst case (its prompt plus --max-tokens, priced) could take
    /// the spend past USD. Requests in flight finish, the report is written, exit 6; a rerun
    /// with a larger budget goes on where it stopped.
    #[arg(long, value_name = "USD", value_parser = positive)]
    pub max_cost: Option<f64>,
}

#[derive(Debug, Args, Clone)]
pub struct RepairArgs {
    /// Repair rounds when sections are missing or malformed; 0 disables repair.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub max_repairs: u32,
    /// A second model that carries on when the first leaves a plan failing after its
    /// repair rounds, or fails in a way that will not heal (404 for the model, 5xx after
    /// retries, context length exceeded). It repairs the same draft, with up to
    /// --max-repairs more rounds; which model wrote which section is recorded.
    #[arg(long, value_name = "MODEL")]
    pub fallback_model: Option<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct JudgeArgs {
    /// Also ask MODEL to score the plan against the template's style rules and each
    /// section's guidance (decision-tree, time-bounded, specific...). Low scores (2 of 5
    /// or less) become warnings with the judge's reason, and the scores go into the front
    /// matter and the report. A judge never turns a failing plan into a passing one.
    #[arg(long, value_name = "MODEL")]
    pub judge_model: Option<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct DeadlineArg {
    /// No new request starts after DURATION ("90s", "5m", "1h30m"); the plan is written
    /// as it stands, with its verdict. With batch, per item, from the item's start. A
    /// request in flight at the deadline finishes (--timeout bounds it).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub deadline: Option<std::time::Duration>,
}

/// "90s", "5m", "1h30m", "500ms", or a number of seconds.
pub(super) fn duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{s:?} is not a duration (say 90s, 5m or 1h30m)");
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| std::time::Duration::from_secs_f64(secs))
            .ok_or_else(bad);
    }
    let (mut total, mut rest) = (0.0f64, t);
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        let unit_len = rest[n..].find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len() - n);
        let unit = &rest[n..n + unit_len];
        total += value
            * match unit {
                "ms" => 0.001,
                "s" | "sec" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                _ => return Err(bad()),
            };
        rest = &rest[n + unit_len..];
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::duration;
    use std::time::Duration;

    #[test]
    fn durations_read_as_typed() {
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2"), Ok(Duration::from_secs(2)));
        assert!(duration("5 parsecs").is_err());
        assert!(duration("m").is_err());
    }
}
