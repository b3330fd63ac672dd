//! Stage names from the free-text stages input, as `--stages`, a stages file or a batch
//! item gives them.

/// Split the free-text stages input into stage names: one per line, else per `;`, else
/// per arrow ("Expand -> Backfill → Cutover"), else per `,`, never inside brackets
/// ("Backfill (high, slow), Cutover" is two stages); list markers and "Stage:" prefixes
/// dropped, and anything after `(`, `[`, `:`, a dash or a comma that starts a risk note
/// ("Backfill, high risk") cut off.
pub fn parse_stages(input: &str) -> Vec<String> {
    let lines: Vec<&str> = input.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let items: Vec<&str> = if lines.len() > 1 {
        lines
    } else if let Some(v) = split_outside(input, &[";"]) {
        v
    } else if let Some(v) = split_outside(input, ARROWS) {
        v
    } else {
        split_outside(input, &[","]).unwrap_or_else(|| vec![input])
    };
    let mut out = Vec::new();
    // "Backfill, high risk, Cutover" on one line: an item that is only a risk note
    // belongs to the stage before it.
    let items = items.into_iter().filter(|i| !is_only_risk_note(i));
    for item in items {
        let mut s = item.trim();
        s = s.trim_start_matches(['-', '*', '•', ' ']);
        // "1." / "1)" / "Stage 2:" prefixes
        let digits = s.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 && s[digits..].starts_with(['.', ')']) {
            s = s[digits + 1..].trim_start();
        }
        let lower = s.to_lowercase();
        for prefix in ["stage", "phase", "step"] {
            if lower.starts_with(prefix) {
                let rest = s[prefix.len()..].trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
                if let Some(r) = rest.strip_prefix([':', '.', '-']) {
                    s = r.trim_start();
                } else if rest.len() < s.len() - prefix.len() {
                    s = rest.trim_start();
                }
                break;
            }
        }
        let cut = [
            s.find('('),
            s.find('['),
            s.find(':'),
            s.find(" - "),
            s.find(" — "),
            s.find(" – "),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(s.len());
        let mut name = s[..cut].trim().trim_end_matches(['.', ',']).trim();
        // "Backfill orders, high risk": the last comma's part, when it is only a risk note.
        if let Some((head, note)) = name.rsplit_once(',')
            && is_only_risk_note(note)
        {
            name = head.trim();
        }
        if !name.is_empty() {
            out.push(name.to_string());
        }
    }
    out
}

// Longest first: "-->" must not leave a "-" behind.
const ARROWS: &[&str] = &["-->", "==>", "->", "=>", "→", "⇒", "➔", "⟶"];

/// Words of a risk note: "high risk", "irreversible", "point of no return".
const RISK_WORDS: &[&str] = &[
    "risk",
    "risky",
    "high",
    "medium",
    "med",
    "low",
    "critical",
    "irreversible",
    "reversible",
    "pnr",
];

fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty())
}

/// `w` is one of `list` (ASCII words), in any case.
fn one_of(w: &str, list: &[&str]) -> bool {
    list.iter().any(|l| w.eq_ignore_ascii_case(l))
}

/// An item that says only how risky something is ("high risk", "medium"), no stage.
fn is_only_risk_note(item: &str) -> bool {
    const FILLER: &[&str] = &["very", "quite", "point", "of", "no", "return"];
    words(item).any(|w| one_of(w, RISK_WORDS) || w.eq_ignore_ascii_case("return"))
        && words(item).all(|w| one_of(w, RISK_WORDS) || one_of(w, FILLER))
}

/// `s` split at any of `seps` outside brackets, or None when no separator is found there.
/// A bracket left open ("Backfill (high, Cutover") hides nothing: then brackets are ignored.
fn split_outside<'a>(s: &'a str, seps: &[&str]) -> Option<Vec<&'a str>> {
    let opens = |c: char| matches!(c, '(' | '[' | '{');
    let closes = |c: char| matches!(c, ')' | ']' | '}');
    let track = s.chars().fold(0usize, |d, c| {
        if opens(c) {
            d + 1
        } else if closes(c) {
            d.saturating_sub(1)
        } else {
            d
        }
    }) == 0;
    let (mut depth, mut start, mut out) = (0usize, 0usize, Vec::new());
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let c = rest.chars().next().expect("i is a char boundary");
        if track && opens(c) {
            depth += 1;
        } else if track && closes(c) {
            depth = depth.saturating_sub(1);
        }
        if depth == 0
            && let Some(sep) = seps.iter().find(|sep| rest.starts_with(**sep))
        {
            out.push(&s[start..i]);
            i += sep.len();
            start = i;
            continue;
        }
        i += c.len_utf8();
    }
    (!out.is_empty()).then(|| {
        out.push(&s[start..]);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_input_forms() {
        assert_eq!(
            parse_stages("1. Backfill\n2) Cutover - risky\n- Stage 3: Decommission (low)"),
            ["Backfill", "Cutover", "Decommission"]
        );
        assert_eq!(parse_stages("backfill, cutover"), ["backfill", "cutover"]);
        assert_eq!(parse_stages("Phase: Read cutover"), ["Read cutover"]);
        assert_eq!(
            parse_stages("Backfill [high]; Write cutover [point of no return]"),
            ["Backfill", "Write cutover"]
        );
        // Arrows on one line, and separators inside brackets kept out of the split.
        assert_eq!(
            parse_stages("Expand -> Backfill (high, slow) → Cutover => Contract"),
            ["Expand", "Backfill", "Cutover", "Contract"]
        );
        assert_eq!(
            parse_stages("Backfill (high, slow), Cutover (medium)"),
            ["Backfill", "Cutover"]
        );
        // One line: an item that is only a risk note is not a stage.
        assert_eq!(
            parse_stages("Backfill, high risk, Cutover, medium, Point of no return"),
            ["Backfill", "Cutover"]
        );
        assert_eq!(
            parse_stages("Expand --> Backfill ==> Contract"),
            ["Expand", "Backfill", "Contract"]
        );
        assert_eq!(parse_stages("- Expand\n- Backfill"), ["Expand", "Backfill"]);
        // A bracket left open does not swallow the stages after it.
        assert_eq!(
            parse_stages("Backfill (high, Nonexistent stage, Contract"),
            ["Backfill", "Nonexistent stage", "Contract"]
        );
        assert_eq!(
            parse_stages("Expand (low; Backfill; Cutover"),
            ["Expand", "Backfill", "Cutover"]
        );
        // Only a last part that is all risk note is cut from a name with commas.
        assert_eq!(
            parse_stages("Drop users, orders tables, high risk\nMigrate accounts, high-value customers"),
            ["Drop users, orders tables", "Migrate accounts, high-value customers"]
        );
        // A comma note about risk is cut; a comma inside a name that is not one is kept.
        assert_eq!(
            parse_stages("Backfill orders, high risk\nWrite cutover, point of no return\nDrop users, orders tables"),
            ["Backfill orders", "Write cutover", "Drop users, orders tables"]
        );
    }
}
