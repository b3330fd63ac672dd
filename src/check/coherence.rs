//! With `--parallel`, sections are written apart from one another, from a shared outline.
//! What they must agree on is checked here: a section that names a stage that is not the
//! migration's (the input's, else the outline's list), or a point of no return that is not
//! the outline's, is a finding that repair fixes like any other.

/// The facts the outline fixed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Agreed {
    /// The input's stages; the outline's list only when the input names none (the outline
    /// is asked to copy the input's names, and a weak model's list can be anything).
    pub stages: Vec<String>,
    /// The point of no return, as written ("T+2h") and in minutes.
    pub point_of_no_return: Option<(String, u64)>,
}

impl Agreed {
    /// Read an outline: the first "T+…" on a line that speaks of the point of no return,
    /// and, without input stages, the list items under a line naming the stages.
    pub fn from_outline(outline: &str, input_stages: &[String]) -> Agreed {
        Agreed {
            stages: if input_stages.is_empty() {
                listed_after(outline, "stage")
            } else {
                input_stages.to_vec()
            },
            point_of_no_return: outline
                .lines()
                .filter(|l| l.to_lowercase().contains("no return") || l.to_lowercase().contains("no-return"))
                .find_map(|l| times(l).into_iter().next()),
        }
    }
}

/// The list items that follow a heading or bold label containing `word`, up to the next
/// heading or label. A stage item's risk note ("(high: …)", ": …") is dropped.
fn listed_after(text: &str, word: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        let item = t
            .strip_prefix("- ")
            .or_else(|| t.strip_prefix("* "))
            .or_else(|| numbered(t));
        match item {
            Some(i) if inside => {
                let name = i.split(['(', ':']).next().unwrap_or(i).trim().trim_matches('*').trim();
                if !name.is_empty() {
                    out.push(name.to_string());
                }
            }
            Some(_) => {}
            None if t.is_empty() => {}
            None => {
                let label = t.starts_with('#') || t.starts_with("**") || t.ends_with(':');
                if label {
                    inside = t.to_lowercase().contains(word);
                }
            }
        }
    }
    out
}

fn numbered(t: &str) -> Option<&str> {
    let digits = t.chars().take_while(char::is_ascii_digit).count();
    (digits > 0).then(|| {
        t[digits..]
            .strip_prefix(". ")
            .or_else(|| t[digits..].strip_prefix(") "))
    })?
}

/// Every "T+<number><unit>" in a text, as written and in minutes ("T+2h", "T+ 90 min",
/// "T+1 day"). A bare "T+30" is minutes.
pub fn times(text: &str) -> Vec<(String, u64)> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    let mut rest = lower.as_str();
    while let Some(i) = rest.find("t+") {
        let after = &rest[i + 2..];
        let spaced = after.trim_start();
        let num: String = spaced.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let unit: String = spaced[num.len()..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphabetic())
            .collect();
        if let Ok(n) = num.parse::<f64>() {
            let per = match unit.as_str() {
                "h" | "hr" | "hrs" | "hour" | "hours" => 60.0,
                "d" | "day" | "days" => 1440.0,
                "s" | "sec" | "secs" | "second" | "seconds" => 1.0 / 60.0,
                _ => 1.0,
            };
            let shown = format!("T+{num}{}", if unit.is_empty() { String::new() } else { unit.clone() });
            out.push((shown, (n * per).round() as u64));
        }
        rest = &after[num.len().min(after.len())..];
    }
    out
}

/// The section's point of no return is not the outline's: what it says, if it says one.
pub fn point_of_no_return_differs(section_text: &str, agreed: &Agreed) -> Option<String> {
    let (shown, minutes) = agreed.point_of_no_return.as_ref()?;
    let said = times(section_text);
    if said.is_empty() || said.iter().any(|(_, m)| m == minutes) {
        return None;
    }
    let mut words: Vec<String> = Vec::new();
    for (s, _) in said {
        if !words.contains(&s) {
            words.push(s);
        }
    }
    Some(format!(
        "the point of no return here ({}) is not the outline's ({shown})",
        words.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTLINE: &str = "## Outline\n\n**Stages**\n- Schema conversion and backfill (high)\n- CDC dual-running: medium\n- Read cutover\n\n**Point of no return:** After T+2h from the write cutover.\n\n**Roles:** IC, DBE\n";

    #[test]
    fn an_outline_gives_its_stages_and_its_point_of_no_return() {
        let a = Agreed::from_outline(OUTLINE, &[]);
        assert_eq!(
            a.stages,
            ["Schema conversion and backfill", "CDC dual-running", "Read cutover"]
        );
        assert_eq!(a.point_of_no_return, Some(("T+2h".into(), 120)));
        let none = Agreed::from_outline("Just prose.", &["Backfill".into()]);
        assert_eq!(
            (none.stages, none.point_of_no_return),
            (vec!["Backfill".to_string()], None)
        );
    }

    #[test]
    fn the_input_names_the_stages_whatever_the_outline_lists() {
        // SmolLM2's outline listed 28 "stages" ("Updated to a new version.") for 5 input ones.
        let garbage = "**Stages:**\n- Updated to a new version.\n- Updated to a new version.\n";
        let input = ["Read cutover".to_string(), "Write cutover".to_string()];
        assert_eq!(Agreed::from_outline(garbage, &input).stages, input);
        assert_eq!(Agreed::from_outline(OUTLINE, &input).stages, input);
    }

    #[test]
    fn times_are_compared_in_minutes() {
        assert_eq!(
            times("after T+2h, or T+ 90 min; T+30")[..]
                .iter()
                .map(|t| t.1)
                .collect::<Vec<_>>(),
            [120, 90, 30]
        );
        let a = Agreed::from_outline(OUTLINE, &[]);
        assert_eq!(
            point_of_no_return_differs("After T+120 minutes we fix forward.", &a),
            None
        );
        assert_eq!(point_of_no_return_differs("No time is given here.", &a), None);
        assert!(
            point_of_no_return_differs("After T+4h rollback loses data.", &a)
                .unwrap()
                .contains("(T+4h) is not the outline's (T+2h)")
        );
    }
}
