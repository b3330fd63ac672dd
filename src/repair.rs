//! Generation with bounded repair. Ask once; check the reply; re-ask for only what is
//! missing or malformed; splice each returned section into its canonical place. Three
//! strategies, reported per section:
//! - `first`: present in the first answer;
//! - `repair`: re-asked in the same conversation (draft as the assistant turn, then a
//!   user message naming the exact headings), all missing sections at once;
//! - `section`: asked for one at a time with the heading supplied by us, for models that
//!   write no headings at all (or after a repair round that left a missing section missing,
//!   or when the conversation no longer fits the model's context). A missing section
//!   whose reply held nothing usable is asked again in the same round, up to three times.

use serde::Serialize;

use crate::check::{CheckReport, Checker};
use crate::client::{ApiError, ChatRequest, ChatResult, Client, Message, OnDelta, Usage};
use crate::markdown;
use crate::template::{Inputs, Template};

/// Requests per missing section in a one-section-per-request round: the first, and more
/// while the reply holds nothing usable (only its title, only empty headings).
const SECTION_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone)]
pub struct Options {
    pub model: String,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub max_repairs: u32,
    pub stream: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    First,
    Repair,
    Section,
}

#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub round: u32,
    pub strategy: Strategy,
    /// Section ids asked for (missing) or asked to be rewritten.
    pub asked: Vec<String>,
    pub rewrite: Vec<String>,
    /// Missing section ids that came back usable and are now present.
    pub recovered: Vec<String>,
    /// Present section ids whose rewrite fixed some of their problems and replaced them.
    /// A rewrite that fixes nothing is dropped, keeping the text it would have replaced.
    pub rewritten: Vec<String>,
    pub requests: u32,
}

/// Progress worth telling a user about.
pub enum Event<'a> {
    Draft {
        found: usize,
        total: usize,
        truncated: bool,
    },
    RoundStart {
        round: u32,
        strategy: Strategy,
        missing: &'a [String],
        rewrite: &'a [String],
    },
    RoundEnd {
        round: u32,
        recovered: usize,
        rewritten: usize,
    },
    Warning(String),
}

pub struct Generated {
    /// The assembled Markdown plan (no front matter).
    pub plan: String,
    pub report: CheckReport,
    pub rounds: Vec<Round>,
    /// Which strategy produced each present section: (id, strategy).
    pub strategies: Vec<(String, Strategy)>,
    pub usage: Usage,
    /// False when some reply carried no usage: the totals are then a lower bound.
    pub usage_complete: bool,
    pub request_ids: Vec<String>,
    /// The model the server says answered.
    pub model: Option<String>,
    pub calls: u32,
    pub transport_retries: u32,
    /// Section ids present with content in the first answer, before any repair.
    pub first_found: Vec<String>,
    pub first_truncated: bool,
    /// An API failure during repair: the plan so far is kept, repair stopped.
    pub repair_error: Option<String>,
}

/// What the answers for one plan add up to: usage, request ids, the model the server
/// named, and how many requests were made. Kept by a live session, and by import for the
/// answers it reads from output files.
pub struct Tally {
    pub usage: Usage,
    /// False once an answer came without usage (the total is then a lower bound).
    pub usage_complete: bool,
    pub request_ids: Vec<String>,
    pub model: Option<String>,
    pub requests: u32,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            usage: Usage::default(),
            usage_complete: true,
            request_ids: Vec::new(),
            model: None,
            requests: 0,
        }
    }
}

impl Tally {
    /// Count one answer's usage, request id and model (`requests` is the caller's).
    pub fn add(&mut self, c: &ChatResult) {
        match c.usage {
            Some(u) => self.usage += u,
            None => self.usage_complete = false,
        }
        self.request_ids.extend(c.request_id.clone());
        if self.model.is_none() {
            self.model = c.model.clone();
        }
    }
}

struct Session<'a> {
    client: &'a Client,
    opts: &'a Options,
    on_delta: Option<OnDelta<'a>>,
    /// `requests` counts every call made, answered or not.
    tally: Tally,
    retries: u32,
}

impl<'a> Session<'a> {
    fn new(client: &'a Client, opts: &'a Options, on_delta: Option<OnDelta<'a>>) -> Self {
        Session {
            client,
            opts,
            on_delta,
            tally: Tally::default(),
            retries: 0,
        }
    }

    /// One request. Only the first answer is shown as it streams; repairs are summarised.
    async fn call(&mut self, messages: Vec<Message>) -> Result<ChatResult, ApiError> {
        let req = ChatRequest {
            model: self.opts.model.clone(),
            messages,
            temperature: self.opts.temperature,
            max_tokens: self.opts.max_tokens,
            stream: self.opts.stream,
        };
        let show = if self.tally.requests == 0 { self.on_delta } else { None };
        self.tally.requests += 1;
        let r = if self.tally.requests == 1 {
            self.client.chat_first(&req, show).await
        } else {
            self.client.chat(&req, show).await
        };
        if let Ok(res) = &r {
            self.retries += res.retries;
            self.tally.add(res);
        } else if let Err(ApiError::Exhausted { attempts, .. }) = &r {
            self.retries += attempts - 1;
        }
        r
    }
}

/// Everything one plan needs; borrowed, so a batch can share the heavy parts.
pub struct Job<'a> {
    pub client: &'a Client,
    pub template: &'a Template,
    pub checker: &'a Checker,
    pub inputs: &'a Inputs,
    /// The risky stages, parsed from the input, that "Rollback by stage" must cover.
    pub stages: &'a [String],
    pub opts: &'a Options,
}

pub async fn generate(
    job: Job<'_>,
    on_delta: Option<OnDelta<'_>>,
    on_event: &(dyn Fn(Event) + Send + Sync),
) -> crate::error::Result<Generated> {
    let mut s = Session::new(job.client, job.opts, on_delta);
    let base = job.template.messages(job.inputs)?;

    // First answer. A stream that broke after retries still yields its complete sections.
    let (draft, truncated) = match s.call(base.clone()).await {
        Ok(r) => {
            let t = r.truncated();
            (r.text, t)
        }
        Err(e) if !e.is_auth() && e.partial_text().is_some() => {
            on_event(Event::Warning(format!("{e}; keeping the complete sections it sent")));
            (e.partial_text().unwrap_or_default().to_string(), true)
        }
        Err(e) => return Err(e.into()),
    };
    let state = State::start(&draft, truncated, job.checker, job.stages);
    improve(job, s, base, state, on_event).await
}

/// A first answer that was not asked for here (a Batch API or vLLM output file), with any
/// repair rounds already applied from later output files.
pub struct Draft {
    pub state: State,
    /// The answers read so far (`requests`: those answered).
    pub tally: Tally,
}

/// Repair a draft live, in the remaining rounds of `--max-repairs`. `base` is the
/// conversation the draft answers (`Template::messages`), already rendered by the caller.
pub async fn generate_from(
    job: Job<'_>,
    base: Vec<Message>,
    draft: Draft,
    on_event: &(dyn Fn(Event) + Send + Sync),
) -> crate::error::Result<Generated> {
    let mut s = Session::new(job.client, job.opts, None);
    s.tally = draft.tally;
    improve(job, s, base, draft.state, on_event).await
}

/// Where a plan stands between repair rounds. Live repair and repair through output
/// files step through the same states, so both ask for and splice the same things.
pub struct State {
    pub plan: String,
    pub report: CheckReport,
    pub rounds: Vec<Round>,
    /// Which strategy produced each present section.
    pub strategies: Vec<(String, Strategy)>,
    /// A model that wrote no usable heading will not follow headings when re-asked either.
    pub one_at_a_time: bool,
    pub first_truncated: bool,
    /// Section ids present with content in the first answer, before any repair.
    pub first_found: Vec<String>,
    /// Sections whose rewrite was asked for, answered, and fixed nothing: not asked again
    /// (a model that could not fix a section rarely does on the next try).
    pub rewrite_refused: Vec<usize>,
}

/// What the next round asks for.
#[derive(Debug, Clone)]
pub struct Ask {
    pub strategy: Strategy,
    pub missing: Vec<usize>,
    pub rewrite: Vec<(usize, Vec<String>)>,
}

impl Ask {
    /// What each request of this round is for, in the order `State::requests` builds
    /// them: one repair of all targets (None), or one request per section (Some(index)).
    pub fn request_targets(&self) -> Vec<Option<usize>> {
        match self.strategy {
            Strategy::Section => self.targets().into_iter().map(|(i, _)| Some(i)).collect(),
            _ => vec![None],
        }
    }

    /// The sections a reply to the request for `target` answered, usable or not: a
    /// one-section reply answers its section; a repair reply answers every target, except
    /// that one cut off by the token limit answers only the sections it holds (`edits`).
    pub fn answered_by(&self, target: Option<usize>, reply: &ChatResult, edits: &[(usize, String)]) -> Vec<usize> {
        match target {
            Some(i) => vec![i],
            None if reply.truncated() => edits.iter().map(|(i, _)| *i).collect(),
            None => self.targets().into_iter().map(|(i, _)| i).collect(),
        }
    }

    /// The ids of the sections asked for (missing) and of those to rewrite.
    pub fn ids(&self, checker: &Checker) -> (Vec<String>, Vec<String>) {
        let id = |i: usize| checker.spec.sections[i].id.clone();
        (
            self.missing.iter().map(|&i| id(i)).collect(),
            self.rewrite.iter().map(|(i, _)| id(*i)).collect(),
        )
    }

    /// Every section this round targets, missing first.
    pub fn targets(&self) -> Vec<(usize, Vec<String>)> {
        self.missing
            .iter()
            .map(|&i| (i, Vec::new()))
            .chain(self.rewrite.iter().cloned())
            .collect()
    }
}

impl State {
    pub fn start(draft: &str, truncated: bool, checker: &Checker, stages: &[String]) -> State {
        let plan = if truncated {
            drop_unfinished_tail(draft, checker)
        } else {
            draft.to_string()
        };
        let (_, report) = checker.check(&plan, Some(stages));
        let first_found: Vec<String> = report
            .sections
            .iter()
            .filter(|r| r.state == crate::check::SectionState::Found)
            .map(|r| r.id.clone())
            .collect();
        let strategies = first_found.iter().map(|id| (id.clone(), Strategy::First)).collect();
        State {
            first_found,
            one_at_a_time: report.found_count() == 0,
            plan,
            report,
            rounds: Vec::new(),
            strategies,
            first_truncated: truncated,
            rewrite_refused: Vec::new(),
        }
    }

    /// The next round's request, or None when nothing is left to repair.
    pub fn next(&self, checker: &Checker) -> Option<Ask> {
        let missing = self.report.missing();
        let mut rewrite = self.report.problems_by_section(&checker.spec);
        rewrite.retain(|(i, _)| !self.rewrite_refused.contains(i));
        if missing.is_empty() && rewrite.is_empty() {
            return None;
        }
        Some(Ask {
            strategy: if self.one_at_a_time {
                Strategy::Section
            } else {
                Strategy::Repair
            },
            missing,
            rewrite,
        })
    }

    /// The conversations a round sends: one (None) for a repair, one per section
    /// (Some(index)) when asking one at a time.
    pub fn requests(
        &self,
        ask: &Ask,
        template: &Template,
        inputs: &Inputs,
        base: &[Message],
    ) -> crate::error::Result<Vec<(Option<usize>, Vec<Message>)>> {
        match ask.strategy {
            Strategy::Section => ask
                .targets()
                .into_iter()
                .map(|(idx, problems)| {
                    let prompt = template.section_prompt(inputs, idx, &problems)?;
                    let mut msgs: Vec<Message> = base
                        .iter()
                        .filter(|m| m.role == crate::client::Role::System)
                        .cloned()
                        .collect();
                    msgs.push(Message::user(prompt));
                    Ok((Some(idx), msgs))
                })
                .collect(),
            _ => {
                let prompt = template.repair_prompt(inputs, &ask.missing, &ask.rewrite)?;
                let mut msgs = base.to_vec();
                msgs.push(Message::assistant(self.plan.clone()));
                msgs.push(Message::user(prompt));
                Ok(vec![(None, msgs)])
            }
        }
    }

    /// The usable sections in one reply to a request from `requests`.
    pub fn edits_from(ask: &Ask, target: Option<usize>, reply: &ChatResult, checker: &Checker) -> Vec<(usize, String)> {
        match target {
            Some(idx) => body_from_fill(&reply.text, checker, idx, reply.truncated())
                .map(|b| vec![(idx, b)])
                .unwrap_or_default(),
            None => {
                let wanted: Vec<usize> = ask.targets().into_iter().map(|(i, _)| i).collect();
                sections_from_reply(&reply.text, checker, &wanted, reply.truncated())
            }
        }
    }

    /// Splice a round's edits in, re-check, and record the round. `answered`: the sections
    /// a reply answered (`Ask::answered_by`); a rewrite among them that did not go in is not
    /// asked again, one that got no reply, or was cut off before it, may be.
    pub fn apply(
        &mut self,
        ask: &Ask,
        edits: &[(usize, String)],
        answered: &[usize],
        requests: u32,
        checker: &Checker,
        stages: &[String],
    ) -> &Round {
        let (asked, rewrite) = ask.ids(checker);
        let mut r = Round {
            round: self.rounds.len() as u32 + 1,
            strategy: ask.strategy,
            asked,
            rewrite,
            recovered: Vec::new(),
            rewritten: Vec::new(),
            requests,
        };
        // Missing sections go in as they came. A rewrite of a present section goes in only
        // if it has fewer problems than the text it replaces: a weak model's rewrite is often
        // worse, and must not replace what it wrote first.
        let (fills, rewrites): (Vec<_>, Vec<_>) = edits.iter().cloned().partition(|(i, _)| ask.missing.contains(i));
        if !fills.is_empty() {
            self.plan = splice(&self.plan, checker, &fills);
        }
        let (_, mut next) = checker.check(&self.plan, Some(stages));
        for (idx, body) in rewrites {
            let candidate = splice(&self.plan, checker, &[(idx, body)]);
            let (_, after) = checker.check(&candidate, Some(stages));
            if fewer_problems(&after, &next, checker, idx) {
                self.plan = candidate;
                next = after;
                r.rewritten.push(checker.spec.sections[idx].id.clone());
            }
        }
        for (idx, _) in &ask.rewrite {
            if answered.contains(idx) && !r.rewritten.contains(&checker.spec.sections[*idx].id) {
                self.rewrite_refused.push(*idx);
            }
        }
        for (idx, _) in &fills {
            if next.sections[*idx].state == crate::check::SectionState::Found {
                let id = checker.spec.sections[*idx].id.clone();
                r.recovered.push(id.clone());
                self.strategies.retain(|(sid, _)| *sid != id);
                self.strategies.push((id, ask.strategy));
            }
        }
        let got = ask
            .missing
            .iter()
            .filter(|&&i| next.sections[i].state == crate::check::SectionState::Found)
            .count();
        if ask.strategy == Strategy::Repair && got < ask.missing.len() {
            // The model did not write every heading it was given: next round, each of the
            // rest alone (for one or two sections this is also the cheaper request).
            self.one_at_a_time = true;
        }
        self.report = next;
        self.rounds.push(r);
        self.rounds.last().expect("just pushed")
    }
}

/// Repair rounds, live, from wherever `state` stands, up to `--max-repairs` rounds in all.
async fn improve(
    job: Job<'_>,
    mut s: Session<'_>,
    base: Vec<Message>,
    mut state: State,
    on_event: &(dyn Fn(Event) + Send + Sync),
) -> crate::error::Result<Generated> {
    let Job {
        template,
        checker,
        inputs,
        stages,
        opts,
        ..
    } = job;
    on_event(Event::Draft {
        found: state.report.found_count(),
        total: state.report.sections.len(),
        truncated: state.first_truncated,
    });
    let mut repair_error = None;
    while (state.rounds.len() as u32) < opts.max_repairs {
        let Some(mut ask) = state.next(checker) else { break };
        let round = state.rounds.len() as u32 + 1;
        let (asked, rewrite) = ask.ids(checker);
        on_event(Event::RoundStart {
            round,
            strategy: ask.strategy,
            missing: &asked,
            rewrite: &rewrite,
        });
        let mut edits: Vec<(usize, String)> = Vec::new();
        let mut answered: Vec<usize> = Vec::new();
        let mut requests = 0;
        if ask.strategy == Strategy::Repair {
            let (_, msgs) = state.requests(&ask, template, inputs, &base)?.remove(0);
            requests += 1;
            match s.call(msgs).await {
                Ok(res) => {
                    edits = State::edits_from(&ask, None, &res, checker);
                    answered = ask.answered_by(None, &res, &edits);
                }
                Err(e) if e.is_context_overflow() => {
                    on_event(Event::Warning(
                        "the conversation no longer fits the model's context; asking for sections one at a time".into(),
                    ));
                    state.one_at_a_time = true;
                    ask.strategy = Strategy::Section;
                }
                Err(e) if e.is_auth() => return Err(e.into()),
                Err(e) => repair_error = Some(e.to_string()),
            }
        }
        if ask.strategy == Strategy::Section {
            'targets: for (target, msgs) in state.requests(&ask, template, inputs, &base)? {
                // A missing section whose reply held nothing usable is asked again, the same
                // request: a sampling model answers differently each time.
                let attempts = match target {
                    Some(i) if ask.missing.contains(&i) => SECTION_ATTEMPTS,
                    _ => 1,
                };
                for _ in 0..attempts {
                    requests += 1;
                    match s.call(msgs.clone()).await {
                        Ok(res) => {
                            let got = State::edits_from(&ask, target, &res, checker);
                            answered.extend(ask.answered_by(target, &res, &got));
                            if !got.is_empty() {
                                edits.extend(got);
                                break;
                            }
                        }
                        Err(e) if e.is_auth() => return Err(e.into()),
                        Err(e) => {
                            repair_error = Some(e.to_string());
                            break 'targets;
                        }
                    }
                }
            }
        }
        let r = state.apply(&ask, &edits, &answered, requests, checker, stages);
        on_event(Event::RoundEnd {
            round,
            recovered: r.recovered.len(),
            rewritten: r.rewritten.len(),
        });
        if repair_error.is_some() {
            break;
        }
    }
    let State {
        plan,
        report,
        rounds,
        mut strategies,
        first_truncated,
        first_found,
        ..
    } = state;
    strategies.sort_by_key(|(id, _)| checker.spec.index_of(id));
    Ok(Generated {
        plan,
        report,
        rounds,
        strategies,
        usage: s.tally.usage,
        usage_complete: s.tally.usage_complete,
        request_ids: s.tally.request_ids,
        model: s.tally.model,
        calls: s.tally.requests,
        transport_retries: s.retries,
        first_found,
        first_truncated,
        repair_error,
    })
}

/// Whether section `idx` is present in `after` with fewer structural problems than in `before`.
fn fewer_problems(after: &CheckReport, before: &CheckReport, checker: &Checker, idx: usize) -> bool {
    let count = |r: &CheckReport| {
        r.problems_by_section(&checker.spec)
            .into_iter()
            .find(|(i, _)| *i == idx)
            .map_or(0, |(_, p)| p.len())
    };
    after.sections[idx].state == crate::check::SectionState::Found && count(after) < count(before)
}

/// A reply cut off by the token limit: its last section may be unfinished, so drop it
/// (from its heading on). Text before the first section is kept.
pub fn drop_unfinished_tail(text: &str, checker: &Checker) -> String {
    let outline = checker.outline(text);
    match outline.found.last() {
        Some(last) => text[..last.start].trim_end().to_string() + "\n",
        None => markdown::close_open_blocks(text),
    }
}

/// The requested sections found in a repair reply: (section index, body without heading).
pub fn sections_from_reply(reply: &str, checker: &Checker, wanted: &[usize], truncated: bool) -> Vec<(usize, String)> {
    let outline = checker.outline(reply);
    let usable = if truncated {
        outline.found.len().saturating_sub(1)
    } else {
        outline.found.len()
    };
    let mut out: Vec<(usize, String)> = Vec::new();
    for l in &outline.found[..usable] {
        if l.empty || !wanted.contains(&l.section) || out.iter().any(|(i, _)| *i == l.section) {
            continue;
        }
        let body = drop_empty_headings(reply[l.body_start..l.end].trim());
        if has_content(&body) {
            out.push((l.section, body));
        }
    }
    out
}

/// The body of a one-section reply. The model was told not to write the heading; if it did,
/// it is dropped. Anything from another required section's heading on is dropped too.
pub fn body_from_fill(reply: &str, checker: &Checker, idx: usize, truncated: bool) -> Option<String> {
    let outline = checker.outline(reply);
    // The part of the reply that is this section, and whether it runs to the reply's end
    // (only then can a cut-off reply have cut it).
    let (mut text, mut runs_to_end) = match outline.found.iter().find(|l| l.section == idx && !l.empty) {
        Some(l) => (&reply[l.body_start..l.end], l.end >= reply.len()),
        None => match outline.found.iter().find(|l| l.section != idx) {
            Some(other) => (&reply[..other.start], false),
            None => (reply, true),
        },
    };
    // A leading heading that names this section (e.g. "# Rollback philosophy for X") goes;
    // any other leading heading is the body's own subsection and stays.
    let doc = markdown::parse(text);
    if let Some(h) = doc.headings.first()
        && text[..h.start].trim().is_empty()
        && checker.matcher.match_heading(&h.text).is_some_and(|m| m.section == idx)
    {
        text = &text[h.end..];
    }
    // A title line of another section with that section's number starts that section,
    // heading or not: weak models list sections as "**2. Rollback decision matrix**" lines.
    // (A numbered step that happens to use a section's name, "**3. Communication**" in a
    // by-stage body, carries another number and stays.)
    let doc = markdown::parse(text);
    let other = doc.blocks.iter().find(|b| {
        title_line(&text[b.start..b.end], checker).is_some_and(|(m, n)| m.section != idx && n == Some(m.section + 1))
    });
    if let Some(b) = other {
        text = &text[..b.start];
        runs_to_end = false;
    }
    let mut body = text.trim().to_string();
    if truncated && runs_to_end {
        body = drop_unfinished_block(&body);
    }
    // A leading line that only restates this section's title is the heading echoed, not
    // content: "**10. The hard truth about rollback:**", "\"6. Communication during rollback.\"".
    // Models repeat it in several forms, so each leading echo goes.
    loop {
        let doc = markdown::parse(&body);
        match doc.blocks.first() {
            Some(b)
                if body[..b.start].trim().is_empty()
                    && title_line(&body[b.start..b.end], checker).is_some_and(|(m, _)| m.section == idx) =>
            {
                body = body[b.end..].trim().to_string();
            }
            _ => break,
        }
    }
    let body = drop_empty_headings(&body);
    has_content(&body).then_some(body)
}

/// The section a paragraph names when it is one decorated line and nothing else: bold,
/// quoted or code, numbered, or ending in a colon (`**3. Rollback by stage**`,
/// `"6. Communication during rollback."`, `Rollback philosophy:`). A plain sentence that
/// happens to use a section's words is not a title. Also gives its leading number, if any.
fn title_line(block: &str, checker: &Checker) -> Option<(markdown::HeadingMatch, Option<usize>)> {
    let line = block.trim();
    if line.is_empty() || line.contains('\n') {
        return None;
    }
    let wrappers = |c: char| matches!(c, '*' | '_' | '"' | '\'' | '`' | '“' | '”' | ' ' | '-' | '+');
    let bare = line.trim_matches(wrappers);
    let digits: String = bare.chars().take_while(char::is_ascii_digit).collect();
    let number = digits.parse::<usize>().ok();
    let decorated = bare.len() < line.len() || number.is_some() || bare.ends_with(':');
    if !decorated {
        return None;
    }
    checker.matcher.match_heading(bare).map(|m| (m, number))
}

/// Whether a body has something under its headings: a block that is not a rule or a comment.
fn has_content(body: &str) -> bool {
    markdown::parse(body).blocks.iter().any(|b| b.is_content())
}

/// Drop headings with nothing under them (before the next heading at their level or above,
/// or the end). Weak models pad a reply with runs of empty numbered subheadings.
pub fn drop_empty_headings(body: &str) -> String {
    let doc = markdown::parse(body);
    let heads: Vec<&markdown::Heading> = doc.headings.iter().filter(|h| h.top_level).collect();
    let mut out = String::with_capacity(body.len());
    let mut pos = 0;
    for (i, h) in heads.iter().enumerate() {
        let until = heads[i + 1..]
            .iter()
            .find(|n| n.level <= h.level)
            .map_or(body.len(), |n| n.start);
        let empty = !doc
            .blocks
            .iter()
            .any(|b| b.start >= h.end && b.start < until && b.is_content());
        if empty {
            out.push_str(&body[pos..h.start]);
            pos = h.end;
        }
    }
    out.push_str(&body[pos..]);
    tidy_blank_lines(&out)
}

/// At most one blank line in a row, none at the ends (outside code blocks, lines are
/// compared trimmed).
fn tidy_blank_lines(text: &str) -> String {
    let doc = markdown::parse(text);
    let in_code = |at: usize| {
        doc.blocks
            .iter()
            .any(|b| b.kind == markdown::BlockKind::Code && b.start < at && at < b.end)
    };
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let blank = line.trim().is_empty() && !in_code(at);
        at += line.len();
        if blank {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
    }
    out.trim().to_string()
}

/// A body cut off by the token limit, without its unfinished end. The last element goes,
/// whether a block or a heading (a heading with nothing after it is no content); from a
/// list, only its last item. A body that is a single block is kept whole: a cut paragraph
/// says more than nothing.
pub fn drop_unfinished_block(body: &str) -> String {
    let doc = markdown::parse(body);
    let last_heading = doc.headings.iter().filter(|h| h.top_level).map(|h| h.start).max();
    let cut = match doc.blocks.last() {
        Some(b) if last_heading.is_none_or(|h| b.start > h) => {
            let items = if b.kind == markdown::BlockKind::List {
                markdown::list_item_starts(&body[b.start..b.end])
            } else {
                Vec::new()
            };
            match items.last() {
                Some(&last) if items.len() > 1 => b.start + last,
                _ if doc.blocks.len() > 1 => b.start,
                _ => body.len(),
            }
        }
        _ => last_heading.unwrap_or(body.len()),
    };
    body[..cut].trim_end().to_string()
}

/// Put each (section, body) into `plan`: replacing the section where it has content, else
/// inserting it before the first section that comes after it in canonical order. Empty
/// occurrences (a heading with nothing under it, often repeated by weak models) of an
/// edited section, or of one present elsewhere, are removed: each section ends up once.
pub fn splice(plan: &str, checker: &Checker, edits: &[(usize, String)]) -> String {
    let plan = &markdown::close_open_blocks(plan);
    let outline = checker.outline(plan);
    let level = outline.level.max(1);
    let edited = |section: usize| edits.iter().any(|(i, _)| *i == section);
    let removed = |l: &markdown::Located| l.empty && (edited(l.section) || outline.is_present(l.section));
    let mut ops: Vec<(usize, usize, usize, String)> = Vec::new(); // (start, end, order, text)
    for l in outline.found.iter().filter(|l| removed(l)) {
        ops.push((l.start, l.end, l.section, String::new()));
    }
    for (idx, body) in edits {
        let body = markdown::demote_headings(&markdown::close_open_blocks(body.trim()), level + 1);
        let text = format!(
            "{} {}\n\n{}\n\n",
            "#".repeat(level as usize),
            checker.spec.heading(*idx),
            body.trim_end()
        );
        match outline.primary(*idx).filter(|l| !l.empty) {
            Some(l) => ops.push((l.start, l.end, *idx, text)),
            None => {
                // Before the first section after this one that stays where it is.
                let at = outline
                    .found
                    .iter()
                    .filter(|l| l.section > *idx && !removed(l))
                    .filter(|l| outline.primary(l.section).is_some_and(|p| p.start == l.start))
                    .map(|l| l.start)
                    .min()
                    .unwrap_or(plan.len());
                ops.push((at, at, *idx, text));
            }
        }
    }
    // Walk the plan once, emitting original text between the edits; equal points keep
    // canonical order. Inserted text always starts after a blank line.
    ops.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.cmp(&b.2)).then(a.1.cmp(&b.1)));
    let mut out = String::with_capacity(plan.len() + ops.iter().map(|o| o.3.len()).sum::<usize>());
    let mut cursor = 0;
    for (start, end, _, text) in ops {
        out.push_str(&plan[cursor.min(start)..start]);
        cursor = cursor.max(end);
        if text.is_empty() {
            continue;
        }
        let kept = out.trim_end().len();
        out.truncate(kept);
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&text);
    }
    out.push_str(&plan[cursor.min(plan.len())..]);
    let kept = out.trim_end().len();
    out.truncate(kept);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Code;

    fn checker() -> Checker {
        Checker::new(&Template::builtin())
    }

    fn ids(plan: &str) -> Vec<usize> {
        checker().outline(plan).found.iter().map(|l| l.section).collect()
    }

    #[test]
    fn splice_inserts_in_canonical_order_and_replaces_empty() {
        let c = checker();
        let plan = "# Plan\n\nintro\n\n## 1. Rollback philosophy\n\nA\n\n## 4. Specific rollback procedures by component\n\n## 9. Rollback what-if scenarios\n\nW\n";
        let edits = vec![
            (2, "stages".to_string()),
            (1, "matrix".to_string()),
            (3, "components".to_string()),
            (9, "truth".to_string()),
        ];
        let out = splice(plan, &c, &edits);
        assert_eq!(ids(&out), vec![0, 1, 2, 3, 8, 9]);
        assert!(
            out.starts_with(
                "# Plan\n\nintro\n\n## 1. Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\nmatrix\n\n## 3."
            ),
            "{out}"
        );
        assert!(
            out.contains("## 4. Specific rollback procedures by component\n\ncomponents\n\n## 9."),
            "{out}"
        );
        assert!(
            out.ends_with("## 10. The hard truth about rollback\n\ntruth\n"),
            "{out}"
        );
        let (_, r) = c.check(&out, None);
        assert!(
            r.findings
                .iter()
                .all(|f| f.code != Code::Empty && f.code != Code::Duplicate)
        );
    }

    // SmolLM2-135M's first answer was nothing but empty headings, each section two to five
    // times ("### 11. The hard truth about rollback", "## 12. Rollback philosophy", ...
    // "## 46. Pre-cutover rehearsal"). Each filled section went into its first empty
    // heading, so the plan opened with section 10, and 36 empty duplicates stayed at its end.
    #[test]
    fn splice_removes_empty_duplicates_and_keeps_canonical_order() {
        let c = checker();
        let plan = "### 11. The hard truth about rollback\n## 12. Rollback philosophy\n## 13. Rollback decision matrix\n## 21. The hard truth about rollback\n## 22. Rollback philosophy\n";
        let out = splice(plan, &c, &[(0, "A".into()), (9, "T".into())]);
        // The unedited empty heading of section 2 stays, and 1 goes before it.
        assert_eq!(
            out,
            "## 1. Rollback philosophy\n\nA\n\n## 13. Rollback decision matrix\n\n## 10. The hard truth about rollback\n\nT\n"
        );
        let out = splice(plan, &c, &[(0, "A".into()), (1, "B".into()), (9, "T".into())]);
        assert_eq!(ids(&out), vec![0, 1, 9]);
        let (_, r) = c.check(&out, None);
        assert!(r.findings.iter().all(|f| f.code != Code::Duplicate), "{:?}", r.findings);
        // A present section keeps its place when rewritten; its empty duplicates go.
        let plan = "## 1. Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\nold\n\n## 2. Rollback decision matrix\n";
        let out = splice(plan, &c, &[(1, "new".into())]);
        assert_eq!(
            out,
            "## 1. Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\nnew\n"
        );
    }

    // SmolLM2-135M's first answer: "## Rollback what-if scenarios" empty near the top, and
    // "## The rollback what-if scenarios" with text at the end. The empty one stayed in the
    // assembled plan as a duplicate, out of order.
    #[test]
    fn splice_removes_empty_duplicates_of_sections_present_elsewhere() {
        let c = checker();
        let plan = "## Rollback philosophy\n\nA\n\n## Rollback what-if scenarios\n\n## Rollback decision matrix\n\n## The rollback what-if scenarios\n\nW\n";
        let out = splice(plan, &c, &[(1, "B".into())]);
        assert_eq!(
            out,
            "## Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\nB\n\n## The rollback what-if scenarios\n\nW\n"
        );
    }

    #[test]
    fn splice_after_prose_without_trailing_newline() {
        let c = checker();
        let out = splice("Some prose with no headings.", &c, &[(1, "B".into()), (0, "A".into())]);
        assert_eq!(
            out,
            "Some prose with no headings.\n\n## 1. Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\nB\n"
        );
    }

    #[test]
    fn spliced_bodies_cannot_break_out_of_their_section() {
        let c = checker();
        let plan = "## 1. Rollback philosophy\n\nA\n\n## 3. Rollback by stage\n\nS\n";
        let out = splice(
            plan,
            &c,
            &[(1, "# Matrix title\n\n| a | b |\n|---|---|\n| 1 | 2 |".into())],
        );
        assert!(out.contains("### Matrix title"), "{out}");
        assert_eq!(ids(&out), vec![0, 1, 2]);
    }

    #[test]
    fn truncated_reply_loses_its_last_section_only() {
        let c = checker();
        let text = "## 1. Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n## 3. Rollback by stage\n\nStep 1: stop the";
        let kept = drop_unfinished_tail(text, &c);
        assert_eq!(ids(&kept), vec![0, 1]);
        assert!(!kept.contains("stop the"));
        let got = sections_from_reply(text, &c, &[1, 2], true);
        assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn fill_body_drops_headings_and_other_sections() {
        let c = checker();
        assert_eq!(
            body_from_fill("# Rollback philosophy\n\nBody text.", &c, 0, false).as_deref(),
            Some("Body text.")
        );
        assert_eq!(
            body_from_fill("### Stage 1: backfill\n\nSteps.", &c, 2, false).as_deref(),
            Some("### Stage 1: backfill\n\nSteps.")
        );
        assert_eq!(
            body_from_fill("Body.\n\n## 2. Rollback decision matrix\n\nx", &c, 0, false).as_deref(),
            Some("Body.")
        );
        assert_eq!(body_from_fill("   ", &c, 0, false), None);
        assert_eq!(
            body_from_fill("Para one.\n\nPara two is cut", &c, 0, true).as_deref(),
            Some("Para one.")
        );
    }

    // SmolLM2-135M, asked to add a table to its decision matrix, answered with a numbered
    // list of "N. Rollback decision matrix" lines; that replaced the first answer's text
    // and was counted as recovered. A rewrite must fix something to go in.
    #[test]
    fn a_rewrite_counts_only_when_it_has_fewer_problems() {
        let c = checker();
        let plan = "## 1. Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\nThe IC decides.\n";
        let (_, before) = c.check(plan, None);
        let worse = splice(
            plan,
            &c,
            &[(
                1,
                "1. 2. Rollback decision matrix\n2. 3. Rollback decision matrix".into(),
            )],
        );
        let (_, after) = c.check(&worse, None);
        assert!(!fewer_problems(&after, &before, &c, 1));
        let table = "| Problem type | Decision authority | Time to decide | Default action |\n|---|---|---|---|\n| a | b | c | d |\n| a | b | c | d |\n| a | b | c | d |\n| a | b | c | d |";
        let fixed = splice(plan, &c, &[(1, table.into())]);
        let (_, after) = c.check(&fixed, None);
        assert!(fewer_problems(&after, &before, &c, 1));
    }

    // A one-section rewrite that was answered and fixed nothing is not asked for again; one
    // that got no answer (a failed line in a batch) is, and a missing section is too.
    #[test]
    fn a_one_section_rewrite_that_fixed_nothing_is_not_asked_again() {
        let c = checker();
        let plan = "## 1. Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\nThe IC decides.\n";
        let mut state = State::start(plan, false, &c, &[]);
        let first = state.next(&c).expect("sections are missing");
        assert_eq!(first.rewrite.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1]);
        state.one_at_a_time = true;
        let ask = state.next(&c).unwrap();
        assert_eq!(ask.strategy, Strategy::Section);
        // No answer for the rewrite (nor for section 3): both are asked again.
        state.apply(&ask, &[], &[], 9, &c, &[]);
        let again = state.next(&c).unwrap();
        assert_eq!(again.rewrite.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1]);
        // The rewrite is answered and comes back no better; section 3 stays missing.
        let r = state.apply(&again, &[(1, "Still no table.".into())], &[1], 9, &c, &[]);
        assert!(r.rewritten.is_empty());
        let last = state.next(&c).unwrap();
        assert!(last.rewrite.is_empty(), "{:?}", last.rewrite);
        assert!(last.missing.contains(&2));
        assert_eq!(state.rewrite_refused, [1]);
    }

    // The same in a repair round: its one answered request answered every target.
    #[test]
    fn a_rewrite_a_repair_request_answered_without_fixing_is_not_asked_again() {
        let c = checker();
        let plan = "## 1. Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\nThe IC decides.\n";
        let mut state = State::start(plan, false, &c, &[]);
        let ask = state.next(&c).unwrap();
        assert_eq!(ask.strategy, Strategy::Repair);
        let all: Vec<usize> = ask.targets().into_iter().map(|(i, _)| i).collect();
        state.apply(&ask, &[(1, "Still no table.".into())], &all, 1, &c, &[]);
        assert_eq!(state.rewrite_refused, [1]);
        assert!(state.next(&c).unwrap().rewrite.is_empty());
    }

    // A repair reply cut off by the token limit answered only the sections it holds: a
    // rewrite it never reached is asked again.
    #[test]
    fn a_rewrite_a_cut_off_repair_reply_never_reached_is_asked_again() {
        let c = checker();
        let plan = "## 1. Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\nThe IC decides.\n";
        let mut state = State::start(plan, false, &c, &[]);
        let ask = state.next(&c).unwrap();
        assert_eq!(ask.strategy, Strategy::Repair);
        let cut = ChatResult {
            text: "## 3. Rollback by stage\n\nBackfill first, then".into(),
            finish_reason: Some("length".into()),
            usage: None,
            request_id: None,
            model: None,
            retries: 0,
        };
        let edits = State::edits_from(&ask, None, &cut, &c);
        let answered = ask.answered_by(None, &cut, &edits);
        assert!(!answered.contains(&1), "{answered:?}");
        state.apply(&ask, &edits, &answered, 1, &c, &[]);
        assert!(state.rewrite_refused.is_empty());
        let next = state.next(&c).unwrap();
        assert_eq!(next.rewrite.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1]);
        // Not cut off: the reply answered every target, the rewrite it left out included.
        let whole = ChatResult {
            finish_reason: Some("stop".into()),
            ..cut
        };
        let all = next.answered_by(None, &whole, &[]);
        assert!(all.contains(&1) && all.contains(&2), "{all:?}");
    }

    // Replies of SmolLM2-135M to one-section requests that were taken as content: the
    // title echoed as a line, and a list of every section's title as bold lines.
    #[test]
    fn echoed_titles_are_not_content_and_numbered_titles_end_the_section() {
        let c = checker();
        assert_eq!(
            body_from_fill("\"6. Communication during rollback.\"", &c, 5, false),
            None
        );
        let titles =
            "**1. Rollback philosophy**\n\n**2. Rollback decision matrices**\n\n**3. Rollback rollback procedures**\n";
        assert_eq!(body_from_fill(titles, &c, 0, false), None);
        assert_eq!(
            body_from_fill(
                "**Rolling 8. Post-mortem template**\n\nTo roll this migration, we need both.",
                &c,
                7,
                false
            )
            .as_deref(),
            Some("To roll this migration, we need both.")
        );
        let chapters = "**3. Rollback by stage: CHAPTER 1: Rollback by stage**\n\n**3. Rollback by stage: CHAPTER 2: CHAPTER 3: CH";
        assert_eq!(body_from_fill(chapters, &c, 2, true), None);
        let echo_then_list =
            "**10. The hard truth about rollback:**\n\n- Some migrations cannot roll back\n- Reduces the amo";
        assert_eq!(
            body_from_fill(echo_then_list, &c, 9, true).as_deref(),
            Some("- Some migrations cannot roll back")
        );
        // The title twice, as code-ish text and as a list item, then empty headings to the limit.
        let twice = "`Rollback what-if scenarios: \n- \"9. Rollback what-if scenarios\"\n\n# \n#\n\n## \n## \n##";
        assert_eq!(body_from_fill(twice, &c, 8, true), None);
        // A numbered step that uses another section's name, with another number, stays.
        let steps = "**1. Stop CDC**\n\nPause the connector.\n\n**3. Communication**\n\nTell the channel.";
        assert_eq!(body_from_fill(steps, &c, 2, false).as_deref(), Some(steps));
        // A plain sentence using a section's words, or a bold line naming no section, stays.
        let plain = "Rollback by stage is covered below.\n\n**Dual-running**\n\nStop CDC.";
        assert_eq!(body_from_fill(plain, &c, 2, false).as_deref(), Some(plain));
    }

    // SmolLM2-135M padded a "Pre-cutover rehearsal" reply with 27 empty headings
    // ("### 2. Rollback to previous version", ...), and a repair reply with nothing but
    // headings. Those headings said nothing and only cluttered the plan.
    #[test]
    fn empty_subheadings_are_dropped_and_a_body_of_headings_is_no_body() {
        let c = checker();
        let reply = "The drill, timed in staging.\n\n### 1. Rollback to previous version\n\n### 2. Rollback to previous version\n\n### Timing\n\n#### Measured\n\nIt took 20 minutes.\n\n### 3. Rollback to previous version\n";
        assert_eq!(
            body_from_fill(reply, &c, 4, false).as_deref(),
            Some("The drill, timed in staging.\n\n### Timing\n\n#### Measured\n\nIt took 20 minutes.")
        );
        assert_eq!(body_from_fill("### A\n\n### B\n\n---\n", &c, 4, false), None);
        let repair = "## 5. Pre-cutover rehearsal\n\n### Drill\n\n### Timing\n\n## 7. Post-rollback checklist\n\n### Traffic\n\n- [ ] 100% on MySQL\n\n### Notes\n";
        let got = sections_from_reply(repair, &c, &[4, 6], false);
        assert_eq!(got, vec![(6, "### Traffic\n\n- [ ] 100% on MySQL".to_string())]);
        // Code blocks keep their blank lines.
        assert_eq!(
            drop_empty_headings("```\na\n\n\nb\n```\n\n### x\n"),
            "```\na\n\n\nb\n```"
        );
    }

    // SmolLM2-135M, asked for "5. Pre-cutover rehearsal" with --max-tokens 400: one paragraph,
    // then empty numbered headings until the limit cut "### 28." in half. The old rule only
    // looked at non-heading blocks, saw one, and kept the cut heading.
    #[test]
    fn cut_off_fill_loses_its_last_heading_or_list_item_not_the_whole_list() {
        let c = checker();
        let reply = "The drill, timed in staging.\n\n### 1. Rollback to previous version\n\n### 28.";
        let body = body_from_fill(reply, &c, 4, true).unwrap();
        assert!(!body.contains("### 28."), "{body}");
        assert!(body.starts_with("The drill, timed in staging."), "{body}");
        // Its "hard truth" reply was one long list cut mid-item: the list stays, minus that item.
        let reply = "Intro.\n\n- Reduces the amount of data to backfill\n- Reduces data\n- Reduces the amo";
        assert_eq!(
            body_from_fill(reply, &c, 9, true).as_deref(),
            Some("Intro.\n\n- Reduces the amount of data to backfill\n- Reduces data")
        );
        // Cut by another section's heading, the body is whole even if the reply was cut later.
        let reply = "Para one.\n\nPara two.\n\n## 2. Rollback decision matrix\n\nrows are cu";
        assert_eq!(
            body_from_fill(reply, &c, 0, true).as_deref(),
            Some("Para one.\n\nPara two.")
        );
        // The section's own heading, then a cut: the unfinished block still goes.
        let reply = "## 1. Rollback philosophy\n\nWhole.\n\nCut in the mid";
        assert_eq!(body_from_fill(reply, &c, 0, true).as_deref(), Some("Whole."));
    }
}
