//! Structural checks beyond headings, declared per section in the spec (`[[sections.checks]]`):
//! a table with given columns, a subsection per risky stage, a number of items, checkboxes,
//! and phrases that must be mentioned. Nothing here knows about rollback plans.
//!
//! `checks` holds the checks, `items` what they read out of a section's text, `matching`
//! tables and stage titles; the section itself is read by `markdown::Scan`.

use super::{Code, Finding, Migration};
use crate::markdown::{Doc, Outline, Scan};
use crate::spec::{Severity, Spec};
use crate::util::line_of;

mod checks;
mod items;
mod matching;

/// Run every check of every present section.
pub fn run(spec: &Spec, doc: &Doc, outline: &Outline, m: &Migration) -> Vec<Finding> {
    let mut out = Vec::new();
    let plan = Plan { doc, migration: m };
    for (i, s) in spec.sections.iter().enumerate() {
        if s.checks.is_empty() {
            continue;
        }
        let Some(loc) = outline.primary(i).filter(|l| !l.empty) else {
            continue; // missing or empty is reported already
        };
        let sec = Section {
            scan: Scan::in_doc(doc, loc.body_start, loc.end, loc.level),
            heading: spec.heading(i),
            line: loc.line,
            body: &doc.src[loc.body_start..loc.end],
            body_line: line_of(doc.src, loc.body_start),
        };
        for (check, severity) in s.checks.with_severity() {
            out.extend(sec.check(check, &plan).into_iter().map(|p| Finding {
                severity: p.severity.unwrap_or(severity),
                code: p.code,
                section: Some(s.id.clone()),
                line: Some(p.line),
                message: p.message,
                stage: p.stage,
                suppressed_by: None,
            }));
        }
    }
    out
}

/// The plan being checked, and what it is about.
struct Plan<'a> {
    doc: &'a Doc<'a>,
    migration: &'a Migration,
}

/// A present section being checked.
struct Section<'a> {
    scan: Scan,
    /// "2. Rollback decision matrix", for messages.
    heading: String,
    line: usize,
    /// The Markdown under the heading, and the line it starts on.
    body: &'a str,
    body_line: usize,
}

/// One problem a check found, before it becomes a finding.
struct Problem {
    code: Code,
    line: usize,
    message: String,
    stage: Option<String>,
    /// When the check's own severity does not apply.
    severity: Option<Severity>,
}

impl Section<'_> {
    fn problem(&self, code: Code, message: String) -> Vec<Problem> {
        vec![Problem {
            code,
            line: self.line,
            message,
            stage: None,
            severity: None,
        }]
    }
}

/// The first six, quoted, and how many more: `"a", "b" and 3 more`.
fn quoted_list(v: &[String]) -> String {
    let shown: Vec<String> = v.iter().take(6).map(|s| format!("\"{s}\"")).collect();
    let more = if v.len() > 6 {
        format!(" and {} more", v.len() - 6)
    } else {
        String::new()
    };
    shown.join(", ") + &more
}

/// Each quoted, separated by commas.
fn quoted(v: &[&str]) -> String {
    v.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::check::Checker;
    use crate::spec::Severity;
    use crate::template::Template;

    fn findings(md: &str, stages: Option<&[String]>) -> Vec<Finding> {
        let c = Checker::new(&Template::builtin());
        c.check(md, &Migration::new(stages.map(<[String]>::to_vec), None))
            .1
            .findings
            .into_iter()
            .filter(|f| !f.code.is_presence())
            // The style checks (time bounds, decisions) have their own tests below; these
            // skeleton sections ("x", "steps") would trip them.
            .filter(|f| !matches!(f.code, Code::Durations | Code::Conditionals))
            .collect()
    }

    fn codes(md: &str, stages: Option<&[String]>) -> Vec<String> {
        findings(md, stages)
            .into_iter()
            .map(|f| format!("{}:{}", f.code, f.section.unwrap_or_default()))
            .collect()
    }

    const GOOD_MATRIX: &str = "## 2. Rollback decision matrix\n\n| Problem type | Decision authority | Time to decide | Default action |\n|---|---|---|---|\n| Critical bug | IC | 5 min | Roll back |\n| Perf > 50% | IC + TL | 15 min | Roll back |\n| Data integrity | IC + DBE | Immediate | Roll back |\n| Internal bug | TL | 30 min | Fix forward |\n";

    #[test]
    fn decision_matrix_table() {
        assert!(codes(GOOD_MATRIX, None).is_empty(), "{:?}", codes(GOOD_MATRIX, None));
        let no_table = "## 2. Rollback decision matrix\n\nThe IC decides.\n";
        let f = findings(no_table, None);
        assert_eq!(f[0].code, Code::Table);
        assert!(f[0].message.contains("no table"));
        let few_cols = "## 2. Rollback decision matrix\n\n| Problem | Action |\n|---|---|\n| a | b |\n| a | b |\n| a | b |\n| a | b |\n";
        let f = findings(few_cols, None);
        assert!(
            f[0].message.contains("\"Decision authority\", \"Time to decide\""),
            "{}",
            f[0].message
        );
        assert_eq!(f[0].line, Some(3));
        let few_rows = GOOD_MATRIX.lines().take(6).collect::<Vec<_>>().join("\n");
        assert!(findings(&few_rows, None)[0].message.contains("2 rows"));
        // Both problems of one table in one finding.
        let both = "## 2. Rollback decision matrix\n\n| Problem | Action |\n|---|---|\n| a | b |\n";
        let f = findings(both, None);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].message
                .ends_with("\"Time to decide\", and it has 1 row; expected at least 4"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn stage_coverage_is_tolerant_and_names_the_stage() {
        use crate::input::parse_stages;
        let stages =
            parse_stages("Schema conversion and backfill (high); CDC dual-running (medium); Write cutover (high)");
        assert_eq!(
            stages,
            ["Schema conversion and backfill", "CDC dual-running", "Write cutover"]
        );
        let md = "## 3. Rollback by stage\n\n### Stage 1: schema conversions & backfills\n\nx\n\n**CDC / dual running**\n\ny\n\n### Read cutover\n\nz\n";
        let f = findings(md, Some(&stages));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].stage.as_deref(), Some("Write cutover"));
        assert!(f[0].message.contains("\"Write cutover\""));
        // Word forms and compounds written apart.
        let md = "## 3. Rollback by stage\n\n### Stage 3 — Validating the data\n\nx\n\n### Cutting over reads\n\ny\n\n**Migrated users.** z\n\n### Re-indexing\n\nw\n";
        let stages = parse_stages("Validate data; Read cutover; Migrate users; Reindex; Writing cutover; Drop data");
        let f = findings(md, Some(&stages));
        let uncovered: Vec<_> = f.iter().filter_map(|f| f.stage.as_deref()).collect();
        assert_eq!(uncovered, ["Writing cutover", "Drop data"], "{f:?}");
        // Without known stages there is nothing to cover.
        assert!(findings(md, None).is_empty());
    }

    #[test]
    fn what_if_counts_subsections_bold_leads_or_items() {
        let bold = |n: usize| {
            let mut s = "## 9. Rollback what-if scenarios\n\n".to_string();
            for i in 0..n {
                s.push_str(&format!("**\"What if case {i}?\"**\nPlan: do x.\n\n"));
            }
            s
        };
        assert!(codes(&bold(5), None).is_empty());
        assert_eq!(codes(&bold(4), None), ["items:what-if"]);
        assert_eq!(codes(&bold(11), None), ["items:what-if"]);
        let heads: String = "## 9. What-if scenarios\n\n".to_string()
            + &(0..6)
                .map(|i| format!("### What if {i}?\n\n- step\n- step\n\n"))
                .collect::<String>();
        assert!(codes(&heads, None).is_empty(), "{:?}", codes(&heads, None));
        // Headings inside a scenario are part of it.
        let nested = |n: usize| {
            "## 9. What-if scenarios\n\n".to_string()
                + &(0..n)
                    .map(|i| format!("### What if {i}?\n\n#### Plan\n\nx\n\n#### Owner\n\ny\n\n"))
                    .collect::<String>()
        };
        assert!(codes(&nested(6), None).is_empty(), "{:?}", codes(&nested(6), None));
        assert!(findings(&nested(4), None)[0].message.contains("has 4 scenarios"));
        let list = "## 9. What-if scenarios\n\n1. What if a?\n2. What if b?\n3. What if c?\n";
        assert!(findings(list, None)[0].message.contains("has 3 scenarios"));
    }

    #[test]
    fn checklist_needs_checkboxes() {
        let ok = "## 7. Post-rollback checklist\n\n- [ ] a\n- [ ] b\n- [x] c\n- [ ] d\n- [ ] e\n";
        assert!(codes(ok, None).is_empty());
        let plain = "## 7. Post-rollback checklist\n\n- a\n- b\n";
        assert_eq!(codes(plain, None), ["checkboxes:checklist"]);
    }

    #[test]
    fn communication_audiences_and_point_of_no_return() {
        let ok = "## 6. Communication during rollback\n\n**Internal (Slack):** x\n\n**Status page:** y\n\n**Customer email:** z\n\n## 10. The hard truth about rollback\n\nAfter T + 4h, rollback loses data.\n";
        assert!(codes(ok, None).is_empty(), "{:?}", codes(ok, None));
        let bad = "## 6. Communication during rollback\n\nTell people.\n\n## 10. The hard truth about rollback\n\nIt is hard.\n";
        let f = findings(bad, None);
        assert!(
            f.iter()
                .any(|f| f.section.as_deref() == Some("communication") && f.message.contains("\"status page\"")),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|f| f.section.as_deref() == Some("hard-truth") && f.message.contains("point of no return")),
            "{f:?}"
        );
    }

    #[test]
    fn checks_at_their_bounds() {
        let boxes =
            |n: usize| "## 7. Post-rollback checklist\n\n".to_string() + &"- [ ] item\n".repeat(n - 1) + "* [x] done\n";
        assert!(codes(&boxes(5), None).is_empty());
        let f = findings(&boxes(4), None);
        assert_eq!(codes(&boxes(4), None), ["checkboxes:checklist"]);
        assert!(f[0].message.contains("has 4 checkboxes"), "{}", f[0].message);
        let items = |n: usize| {
            "## 9. Rollback what-if scenarios\n\n".to_string()
                + &(1..=n)
                    .map(|i| format!("{i}. What if {i}? Plan.\n"))
                    .collect::<String>()
        };
        assert!(codes(&items(10), None).is_empty());
        assert!(codes(&items(5), None).is_empty());
        assert_eq!(codes(&items(11), None), ["items:what-if"]);
        // Any alternative of an entry will do: Slack is internal; "point of no return is T+".
        let ok = "## 6. Communication during rollback\n\nSlack first, then the STATUS PAGE, then each customer.\n\n## 10. The hard truth about rollback\n\nOur point of no return is T+45min.\n";
        assert!(codes(ok, None).is_empty(), "{:?}", codes(ok, None));
        // "before T+" is no point of no return.
        let before = "## 10. The hard truth about rollback\n\nRoll back before T+2h.\n";
        assert_eq!(codes(before, None), ["mentions:hard-truth"]);
    }

    #[test]
    fn findings_carry_severity_and_the_line_of_their_section() {
        let md = "# Plan\n\n## 2. Rollback decision matrix\n\nIC decides.\n\n## 6. Communication during rollback\n\nTell the team.\n\n## 7. Post-rollback checklist\n\n- a\n\n## 9. What-if scenarios\n\n- What if?\n\n## 10. The hard truth about rollback\n\nHard.\n";
        let got: Vec<(String, Severity, Option<usize>)> = findings(md, None)
            .into_iter()
            .map(|f| (f.section.unwrap(), f.severity, f.line))
            .collect();
        assert_eq!(
            got,
            [
                ("decision-matrix".to_string(), Severity::Error, Some(3)),
                ("communication".to_string(), Severity::Warning, Some(7)),
                ("checklist".to_string(), Severity::Error, Some(11)),
                ("what-if".to_string(), Severity::Error, Some(15)),
                ("hard-truth".to_string(), Severity::Error, Some(19)),
            ]
        );
    }

    /// The check kinds as a custom template might declare them, with their defaults.
    #[test]
    fn check_kinds_from_a_custom_spec() {
        let spec: Spec = toml::from_str(
            r#"
            name = "runbook"
            files = { user = "user.md" }
            inputs = { summary = "s", stages = "t" }
            [[sections]]
            id = "owners"
            title = "Owners"
            checks = [{ kind = "table", columns = ["Team|squad", "Pager"] }]
            [[sections]]
            id = "steps"
            title = "Steps"
            checks = [{ kind = "items", what = "steps", min = 3 }, { kind = "mentions", all = ["rollback"] }]
            [[sections]]
            id = "notes"
            title = "Notes"
            checks = [{ kind = "items", what = "notes", max = 2, severity = "warning" },
                      { kind = "mentions", all = ["DRI|on-call"], scope = "document" }]
            "#,
        )
        .unwrap();
        let c = Checker::from_spec(spec);
        let run = |md: &str| -> Vec<(String, String, Severity)> {
            c.check(md, &Migration::default())
                .1
                .findings
                .into_iter()
                .map(|f| (f.section.unwrap_or_default(), f.message, f.severity))
                .collect()
        };
        let good = "## Owners\n\n| Squad | Pager |\n|---|---|\n| db | #db |\n\n## Steps\n\n1. a\n2. b\n3. rollback\n\n## Notes\n\n- the DRI signs off\n";
        assert!(run(good).is_empty(), "{:?}", run(good));
        let bad =
            "## Owners\n\n| Squad | Phone |\n|---|---|\n| db | 1 |\n\n## Steps\n\n1. a\n\n## Notes\n\n- x\n- y\n- z\n";
        let want = |id: &str, msg: &str, sev: Severity| (id.to_string(), msg.to_string(), sev);
        assert_eq!(
            run(bad),
            [
                want(
                    "owners",
                    "\"1. Owners\": the table has no column for \"Pager\"",
                    Severity::Error
                ),
                want(
                    "steps",
                    "\"2. Steps\" has 1 steps; expected at least 3",
                    Severity::Error
                ),
                want("steps", "\"2. Steps\" does not mention \"rollback\"", Severity::Error),
                want(
                    "notes",
                    "\"3. Notes\" has 3 notes; expected at most 2",
                    Severity::Warning
                ),
                want("notes", "the plan never mentions \"DRI\"", Severity::Error),
            ]
        );
    }
}
