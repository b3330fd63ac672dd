//! Where a plan stands between repair rounds, and what the next round asks for. Pure:
//! no I/O, so live repair and repair from batch output files step through the same
//! states and are unit-tested without a server.

use super::text::{body_from_fill, drop_unfinished_tail, sections_from_reply, splice};
use super::{Round, Strategy};
use crate::check::{CheckReport, Checker, Migration, SectionState};
use crate::client::{ChatResult, Message};
use crate::markdown::Outlined;
use crate::template::{Inputs, Template};

/// Where a plan stands between repair rounds.
pub struct State {
    pub plan: String,
    pub report: CheckReport,
    pub rounds: Vec<Round>,
    /// Which strategy produced each present section.
    pub strategies: Vec<(String, Strategy)>,
    /// The model that wrote each present section's text as it stands.
    pub written_by: Vec<(String, String)>,
    /// The model asked now: the primary, then the fallback once the run switched.
    pub model: String,
    /// A model that wrote no usable heading will not follow headings when re-asked either.
    pub one_at_a_time: bool,
    pub first_truncated: bool,
    /// Section ids present with content in the first answer, before any repair.
    pub first_found: Vec<String>,
    /// Sections whose rewrite was asked for, answered, and fixed nothing: not asked again
    /// (a model that could not fix a section rarely does on the next try).
    pub rewrite_refused: Vec<usize>,
    /// Sections never rewritten: a person's edits, kept word for word.
    pub pinned: Vec<usize>,
    /// The next round makes the sections nobody edited again (`Start::From`).
    pub regenerating: bool,
    /// `--parallel`: the outline the sections were written from; one-section requests
    /// carry it too.
    pub outline: Option<String>,
    /// The outline of `plan` its last check made, for the section hashes.
    pub checked: Option<Outlined>,
}

/// What the next round asks for.
#[derive(Debug, Clone)]
pub struct Ask {
    pub strategy: Strategy,
    pub missing: Vec<usize>,
    pub rewrite: Vec<(usize, Vec<String>)>,
}

impl Ask {
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
    /// The state after the first answer, which `model` wrote.
    pub fn start(draft: &str, truncated: bool, checker: &Checker, m: &Migration, model: &str) -> State {
        let plan = if truncated {
            drop_unfinished_tail(draft, checker)
        } else {
            draft.to_string()
        };
        let (outline, report) = checker.check(&plan, m);
        let checked = Some(Outlined::new(&plan, outline));
        let first_found: Vec<String> = report
            .sections
            .iter()
            .filter(|r| r.state == SectionState::Found)
            .map(|r| r.id.clone())
            .collect();
        let strategies = first_found.iter().map(|id| (id.clone(), Strategy::First)).collect();
        let written_by = first_found.iter().map(|id| (id.clone(), model.to_string())).collect();
        State {
            first_found,
            one_at_a_time: report.found_count() == 0,
            plan,
            report,
            rounds: Vec::new(),
            strategies,
            written_by,
            model: model.to_string(),
            first_truncated: truncated,
            rewrite_refused: Vec::new(),
            pinned: Vec::new(),
            regenerating: false,
            outline: None,
            checked,
        }
    }

    /// The state of a plan already written (`Start::From`): its sections are `kept`, the
    /// `pinned` ones are never rewritten, and nobody is known to have written them.
    pub fn resume(plan: &str, pinned: &[usize], checker: &Checker, m: &Migration, model: &str) -> State {
        let (outline, report) = checker.check(plan, m);
        let checked = Some(Outlined::new(plan, outline));
        let strategies = report
            .sections
            .iter()
            .filter(|r| r.state == SectionState::Found)
            .map(|r| (r.id.clone(), Strategy::Kept))
            .collect();
        State {
            first_found: Vec::new(),
            one_at_a_time: false,
            plan: plan.to_string(),
            report,
            rounds: Vec::new(),
            strategies,
            written_by: Vec::new(),
            model: model.to_string(),
            first_truncated: false,
            rewrite_refused: Vec::new(),
            pinned: pinned.to_vec(),
            regenerating: false,
            outline: None,
            checked,
        }
    }

    /// The next round's request, or None when nothing is left to repair.
    pub fn next(&self, checker: &Checker) -> Option<Ask> {
        let missing = self.report.missing();
        let mut rewrite = self.report.problems_by_section(&checker.spec);
        rewrite.retain(|(i, _)| !self.rewrite_refused.contains(i) && !self.pinned.contains(i));
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
                    let prompt = template.section_prompt(inputs, idx, &problems, self.outline.as_deref())?;
                    Ok((Some(idx), Message::standalone(base, prompt)))
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
        // A reply written inside one ```markdown fence is read as the Markdown inside it.
        let text = crate::markdown::unwrap_fence(&reply.text);
        match target {
            Some(idx) => body_from_fill(&text, checker, idx, reply.truncated())
                .map(|b| vec![(idx, b)])
                .unwrap_or_default(),
            None => {
                let wanted: Vec<usize> = ask.targets().into_iter().map(|(i, _)| i).collect();
                sections_from_reply(&text, checker, &wanted, reply.truncated())
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
        m: &Migration,
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
            regenerate: std::mem::take(&mut self.regenerating),
        };
        // Missing sections go in as they came. A rewrite of a present section goes in only
        // if it has fewer problems than the text it replaces: a weak model's rewrite is often
        // worse, and must not replace what it wrote first.
        let (fills, rewrites): (Vec<_>, Vec<_>) = edits.iter().cloned().partition(|(i, _)| ask.missing.contains(i));
        if !fills.is_empty() {
            self.plan = splice(&self.plan, checker, &fills);
        }
        let (mut outline, mut next) = checker.check(&self.plan, m);
        for (idx, body) in rewrites {
            let candidate = splice(&self.plan, checker, &[(idx, body)]);
            let (o, after) = checker.check(&candidate, m);
            if fewer_problems(&after, &next, checker, idx) {
                self.plan = candidate;
                (outline, next) = (o, after);
                let id = checker.spec.sections[idx].id.clone();
                self.wrote(&id);
                r.rewritten.push(id);
            }
        }
        self.refuse_unfixed(ask, answered, &r.rewritten, checker);
        self.record_recovered(ask, &fills, &next, &mut r, checker);
        self.report = next;
        self.checked = Some(Outlined::new(&self.plan, outline));
        self.rounds.push(r);
        self.rounds.last().expect("just pushed")
    }

    /// Section `id`'s text is now the current model's.
    fn wrote(&mut self, id: &str) {
        self.written_by.retain(|(s, _)| s != id);
        self.written_by.push((id.to_string(), self.model.clone()));
    }

    /// The models that wrote the plan's sections, in the order they first appear.
    pub fn models(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (_, m) in &self.written_by {
            if !out.contains(&m.as_str()) {
                out.push(m);
            }
        }
        out
    }

    /// Rewrites that were answered and did not go in are not asked again.
    fn refuse_unfixed(&mut self, ask: &Ask, answered: &[usize], rewritten: &[String], checker: &Checker) {
        for (idx, _) in &ask.rewrite {
            if answered.contains(idx) && !rewritten.contains(&checker.spec.sections[*idx].id) {
                self.rewrite_refused.push(*idx);
            }
        }
    }

    /// Missing sections now present, with the strategy that brought them; a repair request
    /// that left some missing makes the next round ask one section at a time.
    fn record_recovered(
        &mut self,
        ask: &Ask,
        fills: &[(usize, String)],
        next: &CheckReport,
        r: &mut Round,
        checker: &Checker,
    ) {
        let found = |i: usize| next.sections[i].state == SectionState::Found;
        for (idx, _) in fills.iter().filter(|(i, _)| found(*i)) {
            let id = checker.spec.sections[*idx].id.clone();
            r.recovered.push(id.clone());
            self.wrote(&id);
            self.strategies.retain(|(sid, _)| *sid != id);
            self.strategies.push((id, ask.strategy));
        }
        let got = ask.missing.iter().filter(|&&i| found(i)).count();
        if ask.strategy == Strategy::Repair && got < ask.missing.len() {
            // The model did not write every heading it was given: next round, each of the
            // rest alone (for one or two sections this is also the cheaper request).
            self.one_at_a_time = true;
        }
    }
}
/// Whether section `idx` is present in `after` with fewer structural problems than in `before`.
fn fewer_problems(after: &CheckReport, before: &CheckReport, checker: &Checker, idx: usize) -> bool {
    let count = |r: &CheckReport| r.problem_count(&checker.spec, idx);
    after.sections[idx].state == SectionState::Found && count(after) < count(before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Migration;
    use crate::check::testing::checker;

    // SmolLM2-135M, asked to add a table to its decision matrix, answered with a numbered
    // list of "N. Rollback decision matrix" lines; that replaced the first answer's text
    // and was counted as recovered. A rewrite must fix something to go in.
    #[test]
    fn a_rewrite_counts_only_when_it_has_fewer_problems() {
        let c = checker();
        let plan = "## 1. Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\nThe IC decides.\n";
        let (_, before) = c.check(plan, &Migration::default());
        let worse = splice(
            plan,
            &c,
            &[(
                1,
                "1. 2. Rollback decision matrix\n2. 3. Rollback decision matrix".into(),
            )],
        );
        let (_, after) = c.check(&worse, &Migration::default());
        assert!(!fewer_problems(&after, &before, &c, 1));
        let table = "| Problem type | Decision authority | Time to decide | Default action |\n|---|---|---|---|\n| a | b | c | d |\n| a | b | c | d |\n| a | b | c | d |\n| a | b | c | d |";
        let fixed = splice(plan, &c, &[(1, table.into())]);
        let (_, after) = c.check(&fixed, &Migration::default());
        assert!(fewer_problems(&after, &before, &c, 1));
    }

    // A one-section rewrite that was answered and fixed nothing is not asked for again; one
    // that got no answer (a failed line in a batch) is, and a missing section is too.
    #[test]
    fn a_one_section_rewrite_that_fixed_nothing_is_not_asked_again() {
        let c = checker();
        let plan = "## 1. Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\nThe IC decides.\n";
        let mut state = State::start(plan, false, &c, &Migration::default(), "m");
        let first = state.next(&c).expect("sections are missing");
        assert_eq!(first.rewrite.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1]);
        state.one_at_a_time = true;
        let ask = state.next(&c).unwrap();
        assert_eq!(ask.strategy, Strategy::Section);
        // No answer for the rewrite (nor for section 3): both are asked again.
        state.apply(&ask, &[], &[], 9, &c, &Migration::default());
        let again = state.next(&c).unwrap();
        assert_eq!(again.rewrite.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1]);
        // The rewrite is answered and comes back no better; section 3 stays missing.
        let r = state.apply(
            &again,
            &[(1, "Still no table.".into())],
            &[1],
            9,
            &c,
            &Migration::default(),
        );
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
        let mut state = State::start(plan, false, &c, &Migration::default(), "m");
        let ask = state.next(&c).unwrap();
        assert_eq!(ask.strategy, Strategy::Repair);
        let all: Vec<usize> = ask.targets().into_iter().map(|(i, _)| i).collect();
        state.apply(
            &ask,
            &[(1, "Still no table.".into())],
            &all,
            1,
            &c,
            &Migration::default(),
        );
        assert_eq!(state.rewrite_refused, [1]);
        assert!(state.next(&c).unwrap().rewrite.is_empty());
    }

    // A repair reply cut off by the token limit answered only the sections it holds: a
    // rewrite it never reached is asked again.
    #[test]
    fn a_rewrite_a_cut_off_repair_reply_never_reached_is_asked_again() {
        let c = checker();
        let plan = "## 1. Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\nThe IC decides.\n";
        let mut state = State::start(plan, false, &c, &Migration::default(), "m");
        let ask = state.next(&c).unwrap();
        assert_eq!(ask.strategy, Strategy::Repair);
        let cut = ChatResult {
            text: "## 3. Rollback by stage\n\nBackfill first, then".into(),
            finish_reason: Some("length".into()),
            usage: None,
            request_id: None,
            model: None,
            retries: 0,
            rate_limited: 0,
        };
        let edits = State::edits_from(&ask, None, &cut, &c);
        let answered = ask.answered_by(None, &cut, &edits);
        assert!(!answered.contains(&1), "{answered:?}");
        state.apply(&ask, &edits, &answered, 1, &c, &Migration::default());
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
}
