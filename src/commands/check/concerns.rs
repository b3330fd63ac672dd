//! The concern map of a plan in its own shape, as `check` shows it: a block under the
//! file's line in text, a `concerns` list in JSON.

use serde_json::json;

use crate::check::CheckReport;

/// A plan in its own shape: each concern, the heading and line that cover it, or missing.
pub fn text(r: &CheckReport) -> String {
    if !r.mapped {
        return String::new();
    }
    let covered = r.sections.iter().filter(|s| s.concern.is_some()).count();
    let mut out = format!(
        "  concerns: {covered} of {} covered under the plan's own headings\n",
        r.sections.len()
    );
    for s in &r.sections {
        let at = match &s.concern {
            Some(c) => format!("line {}: \"{}\" (by {})", c.line, c.heading, by_name(c.by)),
            None if s.state == crate::check::SectionState::Found => format!("line {}", s.line.unwrap_or(0)),
            None => "missing".to_string(),
        };
        out.push_str(&format!("    {:<15} {at}\n", s.id));
    }
    out
}

fn by_name(by: crate::check::concerns::By) -> &'static str {
    match by {
        crate::check::concerns::By::Heading => "heading",
        crate::check::concerns::By::Content => "content",
    }
}

/// A file's JSON parts that only some plans have: the judge's scores (`--judge-model`)
/// and, for a plan in its own shape, the concern map.
pub fn add_optional(v: &mut serde_json::Value, r: &super::Report) {
    if let Some(j) = &r.judgement {
        v["judge"] = json!(j);
    }
    if r.report.mapped {
        v["concerns"] = json(&r.report);
    }
}

/// Per concern: covered or not, and where.
fn json(r: &CheckReport) -> serde_json::Value {
    let list: Vec<serde_json::Value> = r
        .sections
        .iter()
        .map(|s| {
            let mut v = json!({"id": s.id, "covered": s.state == crate::check::SectionState::Found});
            if let Some(c) = &s.concern {
                v["heading"] = json!(c.heading);
                v["line"] = json!(c.line);
                v["by"] = json!(c.by);
            } else if let Some(l) = s.line.filter(|_| s.state == crate::check::SectionState::Found) {
                v["heading"] = json!(s.title);
                v["line"] = json!(l);
                v["by"] = json!("template");
            }
            v
        })
        .collect();
    json!(list)
}
