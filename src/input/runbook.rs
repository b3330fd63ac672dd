//! The steps of a runbook's main procedure, in order and under their own names, with its
//! title and opening paragraph (the summary when none is given).
//!
//! Tried in turn, the first that gives two steps or more wins:
//! 1. numbered step headings ("Step 1: ...", "### 2. ...", "### 3) ...", "Step 0.1"), the
//!    longest run whose numbers follow on (0 or 1, then each the next), at any levels;
//! 2. a numbered list directly under a heading that names a procedure ("Procedure",
//!    "Steps to update", "The process", "Overview", "High level approach"), else under the
//!    title; an item that links to a section (or names its heading) takes its text;
//! 3. the headings one level under such a heading;
//! 4. the headings of the document's main level that name actions ("Create the backup",
//!    "Switching traffic"), when they are at least half of that level.
//!
//! Headings such as "Overview", "Prerequisites" or "Next steps" are never steps (3 and 4).

#[derive(Debug, Clone)]
pub struct Runbook {
    pub title: Option<String>,
    pub summary: Option<String>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    /// 1-based line of the step's heading or list item.
    pub line: usize,
    /// The step's body (its section, or its list item and the section it links to).
    pub text: String,
}

/// What was looked for, for the error when nothing was found.
const LOOKED_FOR: &str = "no procedure found: looked for numbered step headings (\"Step 1: ...\", \"### 1. ...\"), \
a numbered list under a heading such as Procedure, Steps, Process or Overview (or under the title), \
the headings under such a heading, and headings that name actions (\"Create the backup\", \"Switching traffic\")";

/// Headings that are never a step of the procedure (their first words, lowercase).
const NOT_STEPS: &str = concat!(
    "overview|introduction|background|context|prerequisite|pre-requisite|prerequesite|requirements|",
    "before you begin|next step|see also|reference|further reading|notes|summary|troubleshoot|faq|",
    "appendix|related|caveat|consideration|important consideration|limitation|glossary|contact|",
    "support|changelog|history|contents|table of contents|tested environment|after thought|rollback|",
    "warning|about",
);

/// Words in a heading that say a procedure follows.
const PROCEDURE_WORDS: &str = concat!(
    "procedure procedures steps step process overview outline approach instructions runbook ",
    "step-by-step tasks playbook",
);

/// First words of headings that name an action (besides words ending in "ing").
const VERBS: &str = concat!(
    "access add announce apply back backup bind bring build bump change check choose clean cleanup ",
    "commit configure confirm connect copy cordon create cut cutover delete deploy determine ",
    "disable download drain drop edit enable ensure export fetch finalize finalise finish freeze ",
    "generate get grant import increment install load make mark merge migrate monitor move notify ",
    "open patch pause pick plan prepare promote provision pull push raise reassign reboot recreate ",
    "redirect reindex release remove rename repeat replace restart restore resume revert review ",
    "revoke roll rotate run save scale select set setup show snapshot start stop swap switch sync ",
    "take tag test transfer uninstall unfreeze update upgrade upload validate verify wait write",
);

/// "-ing" first words that are not actions.
const NOT_GERUNDS: &str = concat!(
    "during nothing something anything everything string thing things morning pricing existing ",
    "following remaining upcoming pending ongoing missing warning warnings king ring bring",
);

#[derive(Debug, Clone)]
struct Heading {
    level: usize,
    text: String,
    /// 0-based line.
    line: usize,
    number: Option<Vec<u32>>,
}

/// A runbook's text, read line by line: its lines, headings, fenced lines and front-matter title.
struct Doc<'a> {
    lines: Vec<&'a str>,
    headings: Vec<Heading>,
    fenced: Vec<bool>,
    matter_title: Option<String>,
    body_start: usize,
}

pub fn derive(text: &str) -> Result<Runbook, String> {
    let doc = Doc::read(text);
    let steps = [
        Doc::numbered_headings,
        Doc::procedure_list,
        Doc::procedure_children,
        Doc::action_headings,
    ]
    .iter()
    .map(|way| way(&doc))
    .find(|s| s.len() >= 2)
    .ok_or_else(|| LOOKED_FOR.to_string())?;
    let title = doc.title();
    let summary = match (&title, doc.first_paragraph()) {
        (Some(t), Some(p)) => Some(format!("{t}\n\n{p}")),
        (t, p) => t.clone().or(p),
    };
    Ok(Runbook { title, summary, steps })
}

impl<'a> Doc<'a> {
    fn read(text: &'a str) -> Doc<'a> {
        let lines: Vec<&str> = text.lines().collect();
        let (matter_title, body_start) = front_matter(&lines);
        let mut fenced = vec![false; lines.len()];
        let mut headings = Vec::new();
        let mut fence: Option<(char, usize)> = None;
        for (i, line) in lines.iter().enumerate().skip(body_start) {
            let t = line.trim_start();
            let opener = ['`', '~']
                .into_iter()
                .find(|&c| t.starts_with(&c.to_string().repeat(3)));
            if line.len() - t.len() <= 3
                && let Some(c) = opener
            {
                let n = t.chars().take_while(|&x| x == c).count();
                fence = match fence {
                    None => Some((c, n)),
                    Some((f, m)) if f == c && n >= m && t.trim_end().chars().all(|x| x == c) => None,
                    open => open,
                };
                fenced[i] = true;
                continue;
            }
            fenced[i] = fence.is_some();
            if fence.is_none()
                && let Some(h) = heading(line, i)
            {
                headings.push(h);
            }
        }
        Doc {
            lines,
            headings,
            fenced,
            matter_title,
            body_start,
        }
    }

    fn title(&self) -> Option<String> {
        if let Some(t) = &self.matter_title {
            return Some(t.clone());
        }
        let first = self
            .lines
            .iter()
            .enumerate()
            .skip(self.body_start)
            .find(|(_, l)| !l.trim().is_empty());
        self.headings
            .iter()
            .find(|h| h.level == 1 || first.is_some_and(|(i, _)| i == h.line))
            .map(|h| h.text.clone())
    }

    /// The first paragraph of prose (links as their text): not a heading, list, table,
    /// quote, code, markup, "**Date:** ..." lines or an all-capitals warning.
    fn first_paragraph(&self) -> Option<String> {
        let mut block: Vec<&str> = Vec::new();
        for i in self.body_start..=self.lines.len() {
            let line = self.lines.get(i).map(|l| l.trim());
            let heading = self.headings.iter().any(|h| h.line == i);
            match line {
                Some(t) if !t.is_empty() && !self.fenced[i] && !heading => block.push(t),
                _ => {
                    if !block.is_empty() && is_prose(&block) {
                        return Some(unlink(&block.join(" ")));
                    }
                    block.clear();
                }
            }
        }
        None
    }

    /// Way 1: the longest run of numbered headings that follow on.
    fn numbered_headings(&self) -> Vec<Step> {
        let mut best: Vec<usize> = Vec::new();
        for (start, h) in self.headings.iter().enumerate() {
            let Some(n) = &h.number else { continue };
            if n[0] > 1 {
                continue;
            }
            let run = self.run_from(start);
            if run.len() > best.len() {
                best = run;
            }
        }
        if best.len() < 2 {
            return Vec::new();
        }
        let steps: Vec<&Heading> = best.iter().map(|&i| &self.headings[i]).collect();
        steps
            .iter()
            .enumerate()
            .map(|(k, h)| {
                let end = self.section_end(h).min(steps.get(k + 1).map_or(usize::MAX, |n| n.line));
                let text = self.lines[h.line..end].join("\n");
                Step {
                    name: self.step_name(h, end),
                    line: h.line + 1,
                    text,
                }
            })
            .collect()
    }

    /// Heading indices of the run that starts at `start`.
    fn run_from(&self, start: usize) -> Vec<usize> {
        let mut run = vec![start];
        let mut top = self.headings[start].level;
        for (i, h) in self.headings.iter().enumerate().skip(start + 1) {
            let last = &self.headings[*run.last().unwrap()];
            match &h.number {
                Some(n) if follows(last.number.as_ref().unwrap(), n) => {
                    top = top.min(h.level);
                    run.push(i);
                }
                Some(_) if h.level > last.level => {}
                None if h.level >= top => {}
                _ => break,
            }
        }
        run
    }

    /// A numbered heading's name (`clean`); a heading that is only "Step 0.1" is named
    /// by its first sentence.
    fn step_name(&self, h: &Heading, end: usize) -> String {
        let name = clean(strip_number(&h.text));
        if !name.is_empty() {
            return name;
        }
        let first = self.first_sentence(h.line + 1, end).map(|s| clean(&s));
        first.filter(|s| !s.is_empty()).unwrap_or_else(|| h.text.clone())
    }

    /// Way 2: a numbered list directly under a procedure heading, else under the title.
    fn procedure_list(&self) -> Vec<Step> {
        let mut regions: Vec<(usize, usize)> = self
            .headings
            .iter()
            .filter(|h| {
                names_procedure(&h.text) && (!not_a_step(&h.text) || h.text.to_lowercase().contains("overview"))
            })
            .map(|h| (h.line + 1, self.next_heading(h.line)))
            .collect();
        let first = self
            .headings
            .iter()
            .find(|h| h.level > 1)
            .map_or(self.lines.len(), |h| h.line);
        regions.push((self.body_start, first));
        for (from, to) in regions {
            let steps = self.list_steps(from, to);
            if steps.len() >= 2 {
                return steps;
            }
        }
        Vec::new()
    }

    /// The top-level items of the first numbered list between lines `from` and `to`.
    fn list_steps(&self, from: usize, to: usize) -> Vec<Step> {
        let items: Vec<(usize, usize)> = (from..to)
            .filter(|&i| !self.fenced[i])
            .filter_map(|i| numbered_item(self.lines[i]).map(|(indent, _)| (i, indent)))
            .collect();
        let Some(top) = items.iter().map(|&(_, d)| d).min() else {
            return Vec::new();
        };
        let tops: Vec<usize> = items.iter().filter(|&&(_, d)| d == top).map(|&(i, _)| i).collect();
        tops.iter()
            .enumerate()
            .map(|(k, &i)| {
                let end = tops.get(k + 1).copied().unwrap_or(to);
                let item = self.lines[i..end].join("\n");
                let (_, first) = numbered_item(self.lines[i]).unwrap();
                let name = clean(&sentence(&unlink(first)));
                let text = match self.linked_section(first, &name) {
                    Some(section) => format!("{item}\n\n{section}"),
                    None => item,
                };
                Step {
                    name,
                    line: i + 1,
                    text,
                }
            })
            .collect()
    }

    /// The section an item links to (`[...](#slug)`) or whose heading it names.
    fn linked_section(&self, item: &str, name: &str) -> Option<String> {
        let slug = item.split("](#").nth(1).and_then(|s| s.split(')').next());
        let h = self
            .headings
            .iter()
            .find(|h| slug.is_some_and(|s| slugify(&h.text) == s))
            .or_else(|| self.headings.iter().find(|h| covers(name, &h.text)))?;
        Some(self.lines[h.line..self.section_end(h)].join("\n"))
    }

    /// Way 3: the headings one level under a procedure heading.
    fn procedure_children(&self) -> Vec<Step> {
        for p in self
            .headings
            .iter()
            .filter(|h| names_procedure(&h.text) && !not_a_step(&h.text))
        {
            let end = self.section_end(p);
            let under: Vec<&Heading> = self
                .headings
                .iter()
                .filter(|h| h.line > p.line && h.line < end)
                .collect();
            let Some(level) = under.iter().map(|h| h.level).min() else {
                continue;
            };
            let steps = self.heading_steps(under.into_iter().filter(|h| h.level == level && !not_a_step(&h.text)));
            if steps.len() >= 2 {
                return steps;
            }
        }
        Vec::new()
    }

    /// Way 4: the headings of the main level that name actions, if they are half of it.
    fn action_headings(&self) -> Vec<Step> {
        let title = self.headings.iter().find(|h| h.level == 1).map(|h| h.line);
        let levels: Vec<usize> = self
            .headings
            .iter()
            .filter(|h| Some(h.line) != title)
            .map(|h| h.level)
            .collect();
        let Some(main) = (1..=6).max_by_key(|l| (levels.iter().filter(|x| *x == l).count(), 6 - l)) else {
            return Vec::new();
        };
        let at: Vec<&Heading> = self
            .headings
            .iter()
            .filter(|h| h.level == main && Some(h.line) != title)
            .collect();
        let actions: Vec<&Heading> = at
            .iter()
            .copied()
            .filter(|h| names_action(&h.text) && !not_a_step(&h.text))
            .collect();
        if actions.len() * 2 < at.len() {
            return Vec::new();
        }
        self.heading_steps(actions.into_iter())
    }

    fn heading_steps<'h>(&self, hs: impl Iterator<Item = &'h Heading>) -> Vec<Step> {
        hs.map(|h| Step {
            name: clean(&h.text),
            line: h.line + 1,
            text: self.lines[h.line..self.section_end(h)].join("\n"),
        })
        .collect()
    }

    /// The line after `h`'s section: the next heading at its level or above.
    fn section_end(&self, h: &Heading) -> usize {
        self.headings
            .iter()
            .find(|n| n.line > h.line && n.level <= h.level)
            .map_or(self.lines.len(), |n| n.line)
    }

    fn next_heading(&self, line: usize) -> usize {
        self.headings
            .iter()
            .find(|n| n.line > line)
            .map_or(self.lines.len(), |n| n.line)
    }

    /// The first sentence of prose between two lines (list markers dropped).
    fn first_sentence(&self, from: usize, to: usize) -> Option<String> {
        let mut words: Vec<&str> = Vec::new();
        for i in from..to.min(self.lines.len()) {
            let t = self.lines[i].trim();
            if self.fenced[i] || t.is_empty() {
                if words.is_empty() {
                    continue;
                }
                break;
            }
            words.push(t.trim_start_matches(['*', '-', '+']).trim_start());
        }
        (!words.is_empty()).then(|| sentence(&unlink(&words.join(" "))))
    }
}

fn is_prose(block: &[&str]) -> bool {
    let first = block[0];
    let markup = ["|", ">", "{{", "{%", "<", "!", "- ", "* ", "+ ", "[!"]
        .iter()
        .any(|p| first.starts_with(p))
        || numbered_item(first).is_some();
    let metadata = block.iter().all(|l| l.starts_with("**") && l.contains(":**"));
    let links = block.iter().all(|l| l.starts_with('[') && l.ends_with(')'));
    let shouting = !block.iter().any(|l| l.chars().any(char::is_lowercase));
    !(markup || metadata || links || shouting)
}

/// The front matter's title (quotes dropped) and the first line after it.
fn front_matter(lines: &[&str]) -> (Option<String>, usize) {
    if lines.first().map(|l| l.trim_end()) != Some("---") {
        return (None, 0);
    }
    let Some(end) = lines.iter().skip(1).position(|l| l.trim_end() == "---") else {
        return (None, 0);
    };
    let title = lines[1..=end]
        .iter()
        .find_map(|l| l.strip_prefix("title:"))
        .map(|t| t.trim().trim_matches(['"', '\'']).to_string())
        .filter(|t| !t.is_empty());
    (title, end + 2)
}

/// An ATX heading (also "###Title" with no space, as some runbooks have), its text
/// without closing #s or wrapping emphasis.
fn heading(line: &str, i: usize) -> Option<Heading> {
    let t = line
        .strip_prefix("   ")
        .or(line.strip_prefix("  "))
        .or(line.strip_prefix(' '))
        .unwrap_or(line);
    let level = t.chars().take_while(|&c| c == '#').count();
    let rest = &t[level..];
    let spaced = rest.is_empty() || rest.starts_with([' ', '\t']);
    if level == 0 || level > 6 || (!spaced && level < 2) {
        return None;
    }
    let text = rest.trim().trim_end_matches('#').trim();
    let text = unwrap_emphasis(text);
    if text.is_empty() {
        return None;
    }
    Some(Heading {
        level,
        number: step_number(&text),
        text,
        line: i,
    })
}

fn unwrap_emphasis(t: &str) -> String {
    let mut s = t.trim();
    for m in ["**", "__", "*", "_"] {
        if s.len() > 2 * m.len() && s.starts_with(m) && s.ends_with(m) {
            s = &s[m.len()..s.len() - m.len()];
        }
    }
    s.trim().to_string()
}

/// "Step 1: x", "OPTIONAL Step 3: x", "Step 0.1", "2. x", "3) x" → [1], [3], [0, 1], [2], [3].
fn step_number(text: &str) -> Option<Vec<u32>> {
    let lower = text.to_ascii_lowercase();
    let l = lower.strip_prefix("optional ").unwrap_or(&lower);
    let (rest, labelled) = match l.strip_prefix("step") {
        Some(r) if r.starts_with([' ', '\t']) => (r.trim_start(), true),
        _ => (l, false),
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let number: Vec<u32> = digits
        .trim_end_matches('.')
        .split('.')
        .map_while(|p| p.parse().ok())
        .collect();
    let after = rest[digits.len()..].chars().next();
    let closed = digits.ends_with('.') || matches!(after, Some(')' | ':'));
    let ok = !number.is_empty() && number.len() == digits.trim_end_matches('.').split('.').count();
    (ok && (labelled || closed) && number[0] < 100).then_some(number)
}

/// Whether step number `n` comes right after `p`: 1 → 2, 0.1 → 0.2, 0.2 → 1.
fn follows(p: &[u32], n: &[u32]) -> bool {
    let sub = |v: &[u32]| v.get(1).copied();
    (n[0] == p[0] + 1 && sub(n).is_none_or(|s| s <= 1))
        || (n[0] == p[0] && p.len() == 2 && n.len() == 2 && sub(n) == sub(p).map(|s| s + 1))
}

/// "3. Deploy" → "Deploy"; "Step 2: Upgrade" is left to `clean`.
fn strip_number(text: &str) -> &str {
    let i = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ')' || c == ':'));
    i.map_or("", |i| text[i..].trim())
}

/// A step's name as a stage name, which `parse_stages` reads back as it is: without a
/// "Step 2:" or "OPTIONAL Step 3:" label, parenthetical notes ("app(s)", "(Optional)"),
/// brackets, emphasis stars or a closing ".", ",", ":".
fn clean(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut depth = 0usize;
    for c in name.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            '[' | ']' | '*' => {}
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    let mut s = out.split_whitespace().collect::<Vec<_>>().join(" ");
    let lower = s.to_ascii_lowercase();
    let l = lower.strip_prefix("optional ").unwrap_or(&lower);
    if let Some(rest) = l.strip_prefix("step ") {
        let label = rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
        if label.len() < rest.len() && (label.is_empty() || label.starts_with([':', ')', ' ', '-'])) {
            let cut = s.len() - label.len();
            s = s[cut..].trim_start_matches([':', ')', ' ', '-']).to_string();
        }
    }
    s.trim_end_matches(['.', ',', ':', ' ']).to_string()
}

/// A numbered list item: its indent and its text.
fn numbered_item(line: &str) -> Option<(usize, &str)> {
    let t = line.trim_start();
    let indent = line.len() - t.len();
    let digits = t.chars().take_while(char::is_ascii_digit).count();
    let rest = &t[digits..];
    let text = rest.strip_prefix(['.', ')'])?;
    (digits > 0 && digits <= 3 && text.starts_with([' ', '\t']) && !text.trim().is_empty())
        .then(|| (indent, text.trim()))
}

/// Markdown links as their text: "[Take your app offline](#x)" → "Take your app offline".
fn unlink(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|c| open + c) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|e| close + e) else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The first sentence of `t` (up to ". " before a capital, a backtick or a bracket), at
/// most about 120 characters, cut at a word; a closing ":" or "." dropped.
fn sentence(t: &str) -> String {
    let t = t.trim();
    let b = t.as_bytes();
    let end = (0..b.len().saturating_sub(2))
        .find(|&i| b[i] == b'.' && b[i + 1] == b' ' && (b[i + 2].is_ascii_uppercase() || b"`[(".contains(&b[i + 2])))
        .unwrap_or(t.len());
    let mut s = &t[..end];
    if s.len() > 120 {
        let cut = (0..=120)
            .rev()
            .find(|&i| s.is_char_boundary(i) && s[i..].starts_with(' '))
            .unwrap_or(0);
        s = if cut > 0 { &s[..cut] } else { s };
    }
    s.trim_end_matches([':', '.', ' ']).to_string()
}

/// A heading's GitHub-style anchor: lowercase, spaces to "-", punctuation dropped.
fn slugify(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn words(t: &str) -> Vec<String> {
    t.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
        .map(str::to_string)
        .collect()
}

/// Whether `name` holds at least two thirds of `heading`'s words (two at least).
fn covers(name: &str, heading: &str) -> bool {
    let (n, h) = (words(name), words(heading));
    let shared = h.iter().filter(|w| n.contains(w)).count();
    h.len() >= 2 && shared * 3 >= h.len() * 2
}

fn names_procedure(text: &str) -> bool {
    words(text).iter().any(|w| PROCEDURE_WORDS.split(' ').any(|p| p == w))
        || text.to_lowercase().contains("step-by-step")
}

fn not_a_step(text: &str) -> bool {
    let l = text.to_lowercase();
    let l = l.trim_start_matches(|c: char| !c.is_alphanumeric());
    let l = l.strip_prefix("the ").unwrap_or(l);
    NOT_STEPS.split('|').any(|s| l.starts_with(s))
}

fn names_action(text: &str) -> bool {
    let first = text
        .trim_start_matches(|c: char| !c.is_alphanumeric())
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("")
        .to_lowercase();
    VERBS.split(' ').any(|v| v == first)
        || (first.len() > 5 && first.ends_with("ing") && !NOT_GERUNDS.split(' ').any(|v| v == first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_numbers_are_read_and_follow_on() {
        assert_eq!(step_number("Step 1: check"), Some(vec![1]));
        assert_eq!(step_number("OPTIONAL Step 3: Upgrade"), Some(vec![3]));
        assert_eq!(step_number("Step 0.1"), Some(vec![0, 1]));
        assert_eq!(step_number("2. Provision"), Some(vec![2]));
        assert_eq!(step_number("3) Stop docker"), Some(vec![3]));
        assert_eq!(step_number("2024 changes"), None);
        assert_eq!(step_number("Steps to update"), None);
        assert!(follows(&[0, 1], &[0, 2]) && follows(&[0, 2], &[1]) && follows(&[4], &[5]));
        assert!(!follows(&[98], &[0]) && !follows(&[1], &[3]) && !follows(&[1], &[1]));
    }

    #[test]
    fn names_are_cleaned_so_that_parse_stages_keeps_them() {
        assert_eq!(
            clean("OPTIONAL Step 3: Upgrade Node Pool <POOL>"),
            "Upgrade Node Pool <POOL>"
        );
        assert_eq!(
            clean("Step 1: check *upgrade* requirements"),
            "check upgrade requirements"
        );
        assert_eq!(clean("Take your app(s) offline (1 hour)."), "Take your app offline");
        assert_eq!(clean("Step 0.1"), "");
        assert_eq!(clean("Steps to update"), "Steps to update");
        for n in [
            "Upgrade Node Pool <POOL>",
            "Take your app offline",
            "Use `psql` to check state",
        ] {
            assert_eq!(crate::input::parse_stages(n), [n]);
        }
    }
}
