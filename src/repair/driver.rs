//! The one repair loop. It asks a `Source` for the first answer, then runs repair rounds
//! until the plan passes, the rounds run out, or the source stops it. The live client is
//! one source; a batch output file (with the live client or a request file after it) is
//! another, so both repair a plan the same way.

use std::future::Future;
use std::path::PathBuf;

use super::{Ask, Event, Generated, Job, Start, State, Strategy, Tally};
use tokio::time::Instant;

use crate::client::{ApiError, ChatRequest, ChatResult, Client, Halt, Message, OnDelta};
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
    /// The deadline passed, or a signal came: the plan is kept as it stands.
    Halted(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Failed(e) | Stop::Halted(e) => f.write_str(e),
            Stop::Exported { round, path } => write!(f, "repair round {round} exported to {}", path.display()),
        }
    }
}

/// Where answers come from.
pub trait Source: Send {
    /// Answer one request.
    fn answer(&mut self, at: Target, req: &ChatRequest) -> impl Future<Output = Result<Answer>> + Send;

    /// Answer several requests, at most `n` at once, telling `done` each one's index as it
    /// completes. This default asks them one after another.
    fn answer_many(
        &mut self,
        reqs: Vec<(Target, ChatRequest)>,
        _n: usize,
        done: &(dyn Fn(usize, bool) + Send + Sync),
    ) -> impl Future<Output = Result<Vec<Answer>>> + Send {
        async move {
            let mut out = Vec::with_capacity(reqs.len());
            for (i, (at, req)) in reqs.iter().enumerate() {
                let a = self.answer(*at, req).await?;
                done(i, matches!(a, Answer::Reply(_)));
                out.push(a);
            }
            Ok(out)
        }
    }

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
    /// `--deadline`: no request starts after it (one in flight finishes).
    pub deadline: Option<Instant>,
    /// Ctrl-C or SIGTERM: no request starts, and one in flight is given up.
    pub halt: Option<Halt>,
}

impl<'a> LiveSource<'a> {
    pub fn new(client: &'a Client, on_delta: Option<OnDelta<'a>>) -> Self {
        LiveSource {
            client,
            on_delta,
            deadline: None,
            halt: None,
        }
    }

    /// No request starts after `after` from now.
    pub fn until(mut self, after: Option<std::time::Duration>) -> Self {
        self.deadline = after.map(|d| Instant::now() + d);
        self
    }

    pub fn halted_by(mut self, halt: Option<Halt>) -> Self {
        self.halt = halt;
        self
    }

    /// Why no request may start now, if none may.
    fn refused(deadline: Option<Instant>, halt: Option<&Halt>) -> Option<ApiError> {
        let why = if halt.is_some_and(Halt::is_halted) {
            "interrupted: no new request was started"
        } else if deadline.is_some_and(|d| Instant::now() >= d) {
            "the deadline passed: no new request was started"
        } else {
            return None;
        };
        Some(ApiError::Halted {
            why: why.into(),
            sent: false,
        })
    }
}

/// `call`, given up when `halt` is called while it is in flight.
async fn unless_halted<F>(halt: Option<Halt>, call: F) -> ChatResult_
where
    F: Future<Output = ChatResult_>,
{
    let Some(h) = halt else { return call.await };
    tokio::select! {
        r = call => r,
        _ = h.halted() => Err(ApiError::Halted { why: "interrupted: the request in flight was given up".into(), sent: true }),
    }
}

type ChatResult_ = std::result::Result<ChatResult, ApiError>;

impl Source for LiveSource<'_> {
    /// Every request in its own task, at most `n` in flight (and the client's own limit
    /// over a whole batch). After a failure no request of this model can get past (no
    /// model, a server failing after retries, no key, the budget), the queued ones are not
    /// sent (`Skipped(None)`): the fallback model, or the stop, comes sooner.
    async fn answer_many(
        &mut self,
        reqs: Vec<(Target, ChatRequest)>,
        n: usize,
        done: &(dyn Fn(usize, bool) + Send + Sync),
    ) -> Result<Vec<Answer>> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(n.max(1)));
        let hopeless = std::sync::Arc::new(AtomicBool::new(false));
        let mut set = tokio::task::JoinSet::new();
        let count = reqs.len();
        for (i, (_, req)) in reqs.into_iter().enumerate() {
            let (client, limit, hopeless) = (self.client.clone(), limit.clone(), hopeless.clone());
            let (deadline, halt) = (self.deadline, self.halt.clone());
            set.spawn(async move {
                let _slot = limit.acquire_owned().await.expect("the semaphore is never closed");
                if hopeless.load(Ordering::SeqCst) {
                    return (i, None);
                }
                if let Some(e) = Self::refused(deadline, halt.as_ref()) {
                    return (i, Some(Err(e)));
                }
                let r = unless_halted(halt, client.chat(&req, None)).await;
                if r.as_ref().is_err_and(ends_all) {
                    hopeless.store(true, Ordering::SeqCst);
                }
                (i, Some(r))
            });
        }
        let mut out: Vec<Option<Answer>> = (0..count).map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            let (i, r) = joined.map_err(|e| ApiError::Transport(format!("a request task failed: {e}")))?;
            out[i] = Some(match r {
                Some(Ok(c)) => Answer::Reply(c),
                Some(Err(e)) => Answer::Failed(e),
                None => Answer::Skipped(None),
            });
            match &out[i] {
                Some(Answer::Skipped(None)) => {}
                a => done(i, matches!(a, Some(Answer::Reply(_)))),
            }
        }
        Ok(out.into_iter().map(|a| a.expect("every task answered")).collect())
    }

    async fn answer(&mut self, at: Target, req: &ChatRequest) -> Result<Answer> {
        if let Some(e) = Self::refused(self.deadline, self.halt.as_ref()) {
            return Ok(Answer::Failed(e));
        }
        // The first request of a plan is new work: refused once the run is stopping.
        let r = if at.round == 0 && at.attempt == 0 {
            unless_halted(self.halt.clone(), self.client.chat_first(req, self.on_delta)).await
        } else {
            unless_halted(self.halt.clone(), self.client.chat(req, None)).await
        };
        Ok(match r {
            Ok(c) => Answer::Reply(c),
            Err(e) => Answer::Failed(e),
        })
    }
}

impl Job<'_> {
    /// The request for `messages` to `model`, made as the options say.
    pub fn request(&self, model: &str, messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            shape: self.opts.shape.for_model(model),
            messages,
            stream: self.opts.stream,
        }
    }
}

/// Generate one plan: the first answer from `source`, then up to `--max-repairs` rounds,
/// then as many again with the fallback model if the first left the plan failing.
pub async fn generate<S: Source>(
    job: &Job<'_>,
    source: &mut S,
    on_event: &(dyn Fn(Event) + Send + Sync),
) -> Result<Generated> {
    let mut run = Run {
        job,
        source,
        base: job.template.messages(job.inputs)?,
        tally: Tally::default(),
        on_event,
        migration: job.migration.clone(),
    };
    let (mut state, rounds, early) = run.begin().await?;
    let mut stopped = match early {
        Some(stop) => Some(stop),
        // With a fallback waiting, a round that does not reduce the errors is the last.
        None => run.repair(&mut state, rounds, job.opts.fallback.is_some()).await?,
    };
    if let Some(why) = run.fallback_needed(&state, stopped.as_ref()) {
        let fallback = job.opts.fallback.clone().expect("fallback_needed checks it");
        on_event(Event::Fallback { model: &fallback, why });
        state.model = fallback;
        // What the first model could not fix, the second is asked to.
        state.rewrite_refused.clear();
        let more = state.rounds.len() as u32 + rounds.max(1);
        stopped = run.repair(&mut state, more, false).await?;
    }
    state.strategies.sort_by_key(|(id, _)| job.checker.spec.index_of(id));
    state.written_by.sort_by_key(|(id, _)| job.checker.spec.index_of(id));
    let stopped = stopped.and_then(|s| match s {
        RepairEnd::Stop(s) => Some(s),
        RepairEnd::Lasting(e) => Some(Stop::Failed(e)),
        RepairEnd::NoProgress(_) => None,
    });
    Ok(Generated {
        state,
        tally: run.tally,
        stopped,
    })
}

/// Why repair ended before its rounds or its work ran out.
enum RepairEnd {
    Stop(Stop),
    /// A failure the same model will not get past (`ApiError::is_lasting`).
    Lasting(String),
    /// This repair round left as many errors as before it (`errors_left`).
    NoProgress(u32),
}

/// One plan's generation under way: where answers come from, the conversation they
/// answer, and what the requests added up to.
pub(super) struct Run<'a, 'j, S> {
    pub(super) job: &'a Job<'j>,
    pub(super) source: &'a mut S,
    /// The first request's messages (`Template::messages`).
    pub(super) base: Vec<Message>,
    pub(super) tally: Tally,
    pub(super) on_event: &'a (dyn Fn(Event<'_>) + Send + Sync),
    /// What the plan is checked against: the job's, and with `--parallel` the outline's
    /// facts too.
    pub(super) migration: crate::check::Migration,
}

impl<S: Source> Run<'_, '_, S> {
    /// Where repair starts: the state after the first answer (or the parallel pass, or an
    /// earlier plan), the rounds it may take, and a stop that already ended it.
    async fn begin(&mut self) -> Result<(State, u32, Option<RepairEnd>)> {
        let job = self.job;
        match &job.start {
            Start::Fresh if job.opts.parallel.is_some() => {
                let (state, stop) = self.outline_then_sections().await?;
                let early = stop.map(|why| RepairEnd::Stop(Stop::Failed(why)));
                Ok((state, job.opts.max_repairs, early))
            }
            Start::Fresh => {
                let (draft, truncated, model) = self.first_answer().await?;
                let state = State::start(&draft, truncated, job.checker, job.migration, &model);
                (self.on_event)(Event::Draft {
                    found: state.report.found_count(),
                    total: state.report.sections.len(),
                    truncated,
                });
                Ok((state, job.opts.max_repairs, None))
            }
            Start::From {
                plan,
                pinned,
                regenerate,
            } => {
                let mut state = State::resume(plan, pinned, job.checker, job.migration, &job.opts.shape.model);
                state.regenerating = *regenerate && !state.report.complete();
                // Asking for the sections a plan lacks takes the place of the first answer.
                let fill = u32::from(!state.report.complete());
                Ok((state, job.opts.max_repairs + fill, None))
            }
        }
    }

    /// Ask one request and count it: answered or failed, it was made.
    pub(super) async fn call(&mut self, at: Target, req: &ChatRequest) -> Result<Answer> {
        let a = self.source.answer(at, req).await?;
        self.count(&req.shape.model, &a);
        Ok(a)
    }

    /// Count one answer to `model`: answered or failed, it was a request.
    pub(super) fn count(&mut self, model: &str, a: &Answer) {
        let made = match a {
            Answer::Reply(c) => {
                self.tally.add(c);
                true
            }
            Answer::Failed(e) if e.not_sent() => false,
            Answer::Failed(e) => {
                if let ApiError::Exhausted { attempts, .. } = e {
                    self.tally.retries += attempts - 1;
                }
                true
            }
            Answer::Skipped(Some(_)) => true,
            Answer::Skipped(None) => false,
        };
        if made {
            self.tally.made(model);
        }
    }

    /// The first answer's text, whether it was cut off, and the model that wrote it. A
    /// stream that broke after retries still yields its complete sections; a failure
    /// that will not heal goes to the fallback model, if there is one.
    async fn first_answer(&mut self) -> Result<(String, bool, String)> {
        let at = Target {
            round: 0,
            section: None,
            attempt: 0,
        };
        let mut model = self.job.opts.shape.model.clone();
        loop {
            let req = self.job.request(&model, self.base.clone());
            match self.call(at, &req).await? {
                Answer::Reply(r) => {
                    let truncated = r.truncated();
                    return Ok((crate::markdown::unwrap_fence(&r.text).into_owned(), truncated, model));
                }
                Answer::Failed(e) if !e.is_auth() && e.partial_text().is_some() => {
                    (self.on_event)(Event::Warning(format!("{e}; keeping the complete sections it sent")));
                    let text = crate::markdown::unwrap_fence(e.partial_text().unwrap_or_default()).into_owned();
                    return Ok((text, true, model));
                }
                Answer::Failed(e) => match self.job.opts.fallback.clone().filter(|f| *f != model && e.is_lasting()) {
                    Some(f) => {
                        (self.on_event)(Event::Fallback {
                            model: &f,
                            why: format!("{model} failed: {e}"),
                        });
                        model = f;
                    }
                    None => return Err(e.into()),
                },
                Answer::Skipped(why) => {
                    return Err(ApiError::Unanswered(why.unwrap_or_else(|| "no answer".into())).into());
                }
            }
        }
    }

    /// Why to go on with the fallback model, if there is one and it is needed: the model
    /// failed in a way that will not heal, or left the plan failing.
    fn fallback_needed(&self, state: &State, stopped: Option<&RepairEnd>) -> Option<String> {
        self.job.opts.fallback.as_deref().filter(|f| *f != state.model)?;
        match stopped {
            Some(RepairEnd::Lasting(e)) => Some(format!("{} failed: {e}", state.model)),
            Some(RepairEnd::NoProgress(round)) => Some(format!(
                "{} did not reduce the error findings in repair round {round}",
                state.model
            )),
            Some(RepairEnd::Stop(_)) => None,
            None if !state.report.passes() => Some(format!(
                "{} left the plan failing after {} repair rounds",
                state.model,
                state.rounds.len()
            )),
            None => None,
        }
    }

    /// Repair rounds from wherever `state` stands, up to `rounds` rounds in all; with
    /// `stall`, the first round that does not reduce `errors_left` ends them.
    async fn repair(&mut self, state: &mut State, rounds: u32, stall: bool) -> Result<Option<RepairEnd>> {
        let (job, on_event) = (self.job, self.on_event);
        while (state.rounds.len() as u32) < rounds {
            let Some(ask) = state.next(job.checker) else { break };
            let round = state.rounds.len() as u32 + 1;
            let requests = round_requests(job, state, &ask, &self.base, round)?;
            if let Some(stop) = self.source.begin_round(&requests).await? {
                return Ok(Some(RepairEnd::Stop(stop)));
            }
            let (missing, rewrite) = ask.ids(job.checker);
            let regenerate = state.regenerating;
            on_event(Event::RoundStart {
                round,
                regenerate,
                strategy: ask.strategy,
                missing: &missing,
                rewrite: &rewrite,
            });
            let (before, errors) = (self.tally.requests, errors_left(state, job.checker));
            let out = self.run_round(state, ask, requests).await?;
            let made = self.tally.requests - before;
            let r = state.apply(&out.ask, &out.edits, &out.answered, made, job.checker, &self.migration);
            on_event(Event::RoundEnd {
                round,
                regenerate,
                recovered: r.recovered.len(),
                rewritten: r.rewritten.len(),
            });
            if let Some(e) = out.failed {
                return Ok(Some(if e.is_halted() {
                    RepairEnd::Stop(Stop::Halted(e.to_string()))
                } else if e.is_lasting() {
                    RepairEnd::Lasting(e.to_string())
                } else {
                    RepairEnd::Stop(Stop::Failed(e.to_string()))
                }));
            }
            if stall && errors_left(state, job.checker) >= errors {
                return Ok(Some(RepairEnd::NoProgress(round)));
            }
        }
        Ok(None)
    }

    async fn run_round(
        &mut self,
        state: &mut State,
        mut ask: Ask,
        mut requests: Vec<(Target, ChatRequest)>,
    ) -> Result<RoundOut> {
        let mut out = RoundOut {
            ask: ask.clone(),
            edits: Vec::new(),
            answered: Vec::new(),
            failed: None,
        };
        if ask.strategy == Strategy::Repair {
            let (at, req) = &requests[0];
            match self.call(*at, req).await? {
                Answer::Reply(res) => {
                    out.edits = State::edits_from(&ask, None, &res, self.job.checker);
                    out.answered = ask.answered_by(None, &res, &out.edits);
                }
                Answer::Failed(e) if e.is_context_overflow() => {
                    (self.on_event)(Event::Warning(
                        "the conversation no longer fits the model's context; asking for sections one at a time".into(),
                    ));
                    state.one_at_a_time = true;
                    ask.strategy = Strategy::Section;
                    requests = round_requests(self.job, state, &ask, &self.base, at.round)?;
                }
                Answer::Failed(e) if e.is_auth() => return Err(e.into()),
                Answer::Failed(e) => out.failed = Some(e),
                Answer::Skipped(why) => on_event_skipped(why, self.on_event),
            }
        }
        if ask.strategy == Strategy::Section {
            self.one_section_each(&ask, &requests, &mut out).await?;
        }
        out.ask = ask;
        Ok(out)
    }

    /// A one-section-per-request round. A missing section whose reply held nothing usable
    /// is asked again, the same request: a sampling model answers differently each time.
    /// With `--parallel N` the first requests all go, N at a time, and every reply paid for
    /// is used; after a failed request no section is asked again.
    async fn one_section_each(
        &mut self,
        ask: &Ask,
        requests: &[(Target, ChatRequest)],
        out: &mut RoundOut,
    ) -> Result<()> {
        let mut firsts: Vec<Option<Answer>> = match self.job.opts.parallel {
            Some(n) if requests.len() > 1 => {
                let answers = self.source.answer_many(requests.to_vec(), n, &|_, _| {}).await?;
                for (a, (_, req)) in answers.iter().zip(requests) {
                    self.count(&req.shape.model, a);
                }
                answers.into_iter().map(Some).collect()
            }
            _ => requests.iter().map(|_| None).collect(),
        };
        let mut stopped = false;
        let of = requests.len();
        for (n, ((at, req), first)) in requests.iter().zip(firsts.iter_mut()).enumerate() {
            let attempts = match at.section {
                Some(i) if ask.missing.contains(&i) => SECTION_ATTEMPTS,
                _ => 1,
            };
            for attempt in 0..attempts {
                let at = Target { attempt, ..*at };
                let answer = match first.take() {
                    Some(a) => a,
                    None if stopped => break,
                    None => {
                        if let Some(i) = at.section.filter(|_| attempt == 0) {
                            let id = &self.job.checker.spec.sections[i].id;
                            (self.on_event)(Event::Asking {
                                round: at.round,
                                id,
                                n: n + 1,
                                of,
                            });
                        }
                        self.call(at, req).await?
                    }
                };
                match self.take(ask, at, answer, out)? {
                    Taken::Done => break,
                    Taken::Again => {}
                    Taken::Failed => {
                        stopped = true;
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Use one answer of a one-section round.
    fn take(&mut self, ask: &Ask, at: Target, answer: Answer, out: &mut RoundOut) -> Result<Taken> {
        match answer {
            Answer::Reply(res) => {
                let got = State::edits_from(ask, at.section, &res, self.job.checker);
                out.answered.extend(ask.answered_by(at.section, &res, &got));
                if got.is_empty() {
                    return Ok(Taken::Again);
                }
                out.edits.extend(got);
                Ok(Taken::Done)
            }
            Answer::Failed(e) if e.is_auth() => Err(e.into()),
            Answer::Failed(e) => {
                out.failed.get_or_insert(e);
                Ok(Taken::Failed)
            }
            Answer::Skipped(why) => {
                on_event_skipped(why, self.on_event);
                Ok(Taken::Done)
            }
        }
    }
}

/// A failure every other request to the same model would meet too. A context overflow is
/// one request's: the others may be shorter.
fn ends_all(e: &ApiError) -> bool {
    e.is_auth() || e.stops_run() || (e.is_lasting() && !e.is_context_overflow())
}

/// How far the plan is from passing: its error findings (a missing section is one), and
/// each section whose body is word for word another's (a model that answers every
/// one-section request with the same prose has recovered nothing).
fn errors_left(state: &State, checker: &crate::check::Checker) -> usize {
    use crate::spec::Severity;
    let errors = state
        .report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let outline = checker.outline(&state.plan);
    let mut bodies: Vec<&str> = outline
        .found
        .iter()
        .filter(|l| !l.empty)
        .map(|l| state.plan[l.body_start..l.end].trim())
        .collect();
    let found = bodies.len();
    bodies.sort_unstable();
    bodies.dedup();
    errors + (found - bodies.len())
}

/// What one answer of a one-section round leaves to do.
enum Taken {
    Done,
    /// Nothing usable: ask the same again, if attempts are left.
    Again,
    /// The request failed: no new request in this round.
    Failed,
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
            (at, job.request(&state.model, msgs))
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
    /// A request failed: the round ends, and repair after it (or this model's part).
    failed: Option<ApiError>,
}

fn on_event_skipped(why: Option<String>, on_event: &(dyn Fn(Event) + Send + Sync)) {
    if let Some(w) = why {
        on_event(Event::Warning(w));
    }
}
