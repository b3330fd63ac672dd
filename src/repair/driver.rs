//! The one repair loop. It asks a `Source` for the first answer, then runs repair rounds
//! until the plan passes, the rounds run out, or the source stops it. The live client is
//! one source; a batch output file (with the live client or a request file after it) is
//! another, so both repair a plan the same way.

use std::future::Future;
use std::path::PathBuf;

use super::{Ask, Event, Generated, Job, State, Strategy, Tally};
use crate::client::{ApiError, ChatRequest, ChatResult, Client, Message, OnDelta};
use crate::error::Result;

/// Requests per missing section in a one-section-per-request round: the first, and more
/// while the reply holds nothing usable (only its title, only empty headings).
const SECTION_ATTEMPTS: u32 = 3;

/// Which request of a plan an answer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// 0 for the first answer, then the repair round.
    pub round: u32,
    /// The section a one-section request asks for; None for the first answer and repairs.
    pub section: Option<usize>,
    /// 0, then more when the same request is asked again (a reply with nothing usable).
    pub attempt: u32,
}

/// What a source says to one request.
pub enum Answer {
    Reply(ChatResult),
    /// Failed after retries. The first answer failing fails the plan; a repair request
    /// failing ends repair and keeps the plan so far (a 401 fails the plan).
    Failed(ApiError),
    /// No answer to use, and the round goes on without it: `Some(why)` for a request that
    /// was made and failed in a batch, None for one that was never made.
    Skipped(Option<String>),
}

/// Why repair ended before it ran out of rounds or of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A repair request failed; the plan so far is kept.
    Failed(String),
    /// The next round went out as requests in a batch file, to be imported later.
    Exported { round: u32, path: PathBuf },
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Failed(e) => f.write_str(e),
            Stop::Exported { round, path } => write!(f, "repair round {round} exported to {}", path.display()),
        }
    }
}

/// Where answers come from.
pub trait Source {
    /// Answer one request.
    fn answer(&mut self, at: Target, req: &ChatRequest) -> impl Future<Output = Result<Answer>> + Send;

    /// Called before a repair round with the requests it will make. Some(stop) ends
    /// repair here (a source that wrote the round out as a batch file, say).
    fn begin_round(
        &mut self,
        _requests: &[(Target, ChatRequest)],
    ) -> impl Future<Output = Result<Option<Stop>>> + Send {
        async { Ok(None) }
    }
}

/// The chat API, through the client (its retries, pacing and request slots).
pub struct LiveSource<'a> {
    pub client: &'a Client,
    /// Shows the first answer as it streams; repairs are summarised instead.
    pub on_delta: Option<OnDelta<'a>>,
}

impl Source for LiveSource<'_> {
    async fn answer(&mut self, at: Target, req: &ChatRequest) -> Result<Answer> {
        // The first request of a plan is new work: refused once the run is stopping.
        let r = if at.round == 0 && at.attempt == 0 {
            self.client.chat_first(req, self.on_delta).await
        } else {
            self.client.chat(req, None).await
        };
        Ok(match r {
            Ok(c) => Answer::Reply(c),
            Err(e) => Answer::Failed(e),
        })
    }
}

impl Job<'_> {
    /// The request for `messages`, made as the options say.
    pub fn request(&self, messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            model: self.opts.model.clone(),
            messages,
            temperature: self.opts.temperature,
            max_tokens: self.opts.max_tokens,
            stream: self.opts.stream,
        }
    }
}

/// Generate one plan: the first answer from `source`, then up to `--max-repairs` rounds.
pub async fn generate<S: Source>(
    job: &Job<'_>,
    source: &mut S,
    on_event: &(dyn Fn(Event) + Send + Sync),
) -> Result<Generated> {
    let base = job.template.messages(job.inputs)?;
    let mut tally = Tally::default();
    let (draft, truncated) = first_answer(job, source, &base, &mut tally, on_event).await?;
    let mut state = State::start(&draft, truncated, job.checker, job.stages);
    on_event(Event::Draft {
        found: state.report.found_count(),
        total: state.report.sections.len(),
        truncated,
    });
    let stopped = repair(job, source, &base, &mut state, &mut tally, on_event).await?;
    state.strategies.sort_by_key(|(id, _)| job.checker.spec.index_of(id));
    Ok(Generated { state, tally, stopped })
}

/// Ask one request and count it: answered or failed, it was made.
async fn call<S: Source>(source: &mut S, at: Target, req: &ChatRequest, tally: &mut Tally) -> Result<Answer> {
    let a = source.answer(at, req).await?;
    match &a {
        Answer::Reply(c) => {
            tally.requests += 1;
            tally.add(c);
        }
        Answer::Failed(e) => {
            tally.requests += 1;
            if let ApiError::Exhausted { attempts, .. } = e {
                tally.retries += attempts - 1;
            }
        }
        Answer::Skipped(Some(_)) => tally.requests += 1,
        Answer::Skipped(None) => {}
    }
    Ok(a)
}

/// The first answer's text, and whether it was cut off. A stream that broke after
/// retries still yields its complete sections.
async fn first_answer<S: Source>(
    job: &Job<'_>,
    source: &mut S,
    base: &[Message],
    tally: &mut Tally,
    on_event: &(dyn Fn(Event) + Send + Sync),
) -> Result<(String, bool)> {
    let at = Target {
        round: 0,
        section: None,
        attempt: 0,
    };
    match call(source, at, &job.request(base.to_vec()), tally).await? {
        Answer::Reply(r) => {
            let truncated = r.truncated();
            Ok((r.text, truncated))
        }
        Answer::Failed(e) if !e.is_auth() && e.partial_text().is_some() => {
            on_event(Event::Warning(format!("{e}; keeping the complete sections it sent")));
            Ok((e.partial_text().unwrap_or_default().to_string(), true))
        }
        Answer::Failed(e) => Err(e.into()),
        Answer::Skipped(why) => Err(ApiError::Unanswered(why.unwrap_or_else(|| "no answer".into())).into()),
    }
}

/// Repair rounds from wherever `state` stands, up to `--max-repairs` rounds in all.
async fn repair<S: Source>(
    job: &Job<'_>,
    source: &mut S,
    base: &[Message],
    state: &mut State,
    tally: &mut Tally,
    on_event: &(dyn Fn(Event) + Send + Sync),
) -> Result<Option<Stop>> {
    while (state.rounds.len() as u32) < job.opts.max_repairs {
        let Some(ask) = state.next(job.checker) else { break };
        let round = state.rounds.len() as u32 + 1;
        let requests = round_requests(job, state, &ask, base, round)?;
        if let Some(stop) = source.begin_round(&requests).await? {
            return Ok(Some(stop));
        }
        let (missing, rewrite) = ask.ids(job.checker);
        on_event(Event::RoundStart {
            round,
            strategy: ask.strategy,
            missing: &missing,
            rewrite: &rewrite,
        });
        let before = tally.requests;
        let out = run_round(job, source, state, ask, requests, base, tally, on_event).await?;
        let r = state.apply(
            &out.ask,
            &out.edits,
            &out.answered,
            tally.requests - before,
            job.checker,
            job.stages,
        );
        on_event(Event::RoundEnd {
            round,
            recovered: r.recovered.len(),
            rewritten: r.rewritten.len(),
        });
        if let Some(e) = out.failed {
            return Ok(Some(Stop::Failed(e)));
        }
    }
    Ok(None)
}

/// The requests of a round, each with what it is for.
fn round_requests(
    job: &Job<'_>,
    state: &State,
    ask: &Ask,
    base: &[Message],
    round: u32,
) -> Result<Vec<(Target, ChatRequest)>> {
    let reqs = state.requests(ask, job.template, job.inputs, base)?;
    Ok(reqs
        .into_iter()
        .map(|(section, msgs)| {
            let at = Target {
                round,
                section,
                attempt: 0,
            };
            (at, job.request(msgs))
        })
        .collect())
}

/// What one round got back.
struct RoundOut {
    /// The round as it ran (a repair that no longer fits the context becomes one-section).
    ask: Ask,
    edits: Vec<(usize, String)>,
    /// The sections the replies answered, usable or not (`Ask::answered_by`).
    answered: Vec<usize>,
    /// A request failed: the round ends, and repair after it.
    failed: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn run_round<S: Source>(
    job: &Job<'_>,
    source: &mut S,
    state: &mut State,
    mut ask: Ask,
    mut requests: Vec<(Target, ChatRequest)>,
    base: &[Message],
    tally: &mut Tally,
    on_event: &(dyn Fn(Event) + Send + Sync),
) -> Result<RoundOut> {
    let mut out = RoundOut {
        ask: ask.clone(),
        edits: Vec::new(),
        answered: Vec::new(),
        failed: None,
    };
    if ask.strategy == Strategy::Repair {
        let (at, req) = &requests[0];
        match call(source, *at, req, tally).await? {
            Answer::Reply(res) => {
                out.edits = State::edits_from(&ask, None, &res, job.checker);
                out.answered = ask.answered_by(None, &res, &out.edits);
            }
            Answer::Failed(e) if e.is_context_overflow() => {
                on_event(Event::Warning(
                    "the conversation no longer fits the model's context; asking for sections one at a time".into(),
                ));
                state.one_at_a_time = true;
                ask.strategy = Strategy::Section;
                requests = round_requests(job, state, &ask, base, at.round)?;
            }
            Answer::Failed(e) if e.is_auth() => return Err(e.into()),
            Answer::Failed(e) => out.failed = Some(e.to_string()),
            Answer::Skipped(why) => on_event_skipped(why, on_event),
        }
    }
    if ask.strategy == Strategy::Section {
        one_section_each(job, source, &ask, &requests, &mut out, tally, on_event).await?;
    }
    out.ask = ask;
    Ok(out)
}

/// A one-section-per-request round. A missing section whose reply held nothing usable is
/// asked again, the same request: a sampling model answers differently each time.
async fn one_section_each<S: Source>(
    job: &Job<'_>,
    source: &mut S,
    ask: &Ask,
    requests: &[(Target, ChatRequest)],
    out: &mut RoundOut,
    tally: &mut Tally,
    on_event: &(dyn Fn(Event) + Send + Sync),
) -> Result<()> {
    for (at, req) in requests {
        let attempts = match at.section {
            Some(i) if ask.missing.contains(&i) => SECTION_ATTEMPTS,
            _ => 1,
        };
        for attempt in 0..attempts {
            let at = Target { attempt, ..*at };
            match call(source, at, req, tally).await? {
                Answer::Reply(res) => {
                    let got = State::edits_from(ask, at.section, &res, job.checker);
                    out.answered.extend(ask.answered_by(at.section, &res, &got));
                    if !got.is_empty() {
                        out.edits.extend(got);
                        break;
                    }
                }
                Answer::Failed(e) if e.is_auth() => return Err(e.into()),
                Answer::Failed(e) => {
                    out.failed = Some(e.to_string());
                    return Ok(());
                }
                Answer::Skipped(why) => {
                    on_event_skipped(why, on_event);
                    break;
                }
            }
        }
    }
    Ok(())
}

fn on_event_skipped(why: Option<String>, on_event: &(dyn Fn(Event) + Send + Sync)) {
    if let Some(w) = why {
        on_event(Event::Warning(w));
    }
}
