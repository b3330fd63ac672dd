use super::*;
use crate::check::Migration;
use crate::check::testing::{authored, checker};

/// The findings of the quality checks alone, as (code, section).
fn quality(md: &str) -> Vec<(Code, Option<String>)> {
    let (_, r) = checker().check(md, &Migration::default());
    r.findings
        .into_iter()
        .filter(|f| {
            matches!(
                f.code,
                Code::Loop | Code::Repeated | Code::Runaway | Code::AboutPrompt | Code::Copied
            )
        })
        .map(|f| (f.code, f.section))
        .collect()
}

fn with_section(plan: &str, number: &str, body: &str) -> String {
    let start = plan.find(&format!("## {number}. ")).unwrap();
    let head_end = start + plan[start..].find('\n').unwrap();
    let next = plan[head_end..].find("\n## ").map_or(plan.len(), |i| head_end + i + 1);
    format!("{}\n\n{body}\n\n{}", &plan[..head_end], &plan[next..])
}

#[test]
fn word_and_line_loops_are_found_where_they_start() {
    let body = format!("Intro line.\n\n{}", "rollback ".repeat(40));
    let (at, phrase, times) = word_run(&body).unwrap();
    assert_eq!((phrase.as_str(), times), ("rollback", 40));
    assert_eq!(&body[at..at + 8], "rollback");
    let imperium = "**Imperium**\n[Imperium]\n".repeat(120);
    assert_eq!(
        word_run(&imperium).map(|(_, p, n)| (p, n)),
        Some(("imperium".into(), 240))
    );
    let exception = "This is an exception to the rule.\n\n".repeat(20);
    let (_, line, times) = repeated_lines(&exception).unwrap();
    assert_eq!((line.as_str(), times), ("this is an exception to the rule", 20));
    // SmolLM2's numbered titles repeat with only the leading number changing.
    let titles: String = (2..40)
        .map(|n| format!("### {n}. Rollback what-if scenarios\n\n"))
        .collect();
    assert!(repeated_lines(&titles).is_some());
    // Numbers inside a line tell lines apart: one scenario per shard is no loop.
    let shards: String = (1..=8)
        .map(|n| format!("**What if shard {n} of the reverse-sync job falls behind?**\nPlan: pause writes to shard {n} and replay it alone.\n\n"))
        .collect();
    assert!(repeated_lines(&shards).is_none());
    // Found live: an empty list item a hundred times, no words at all.
    let bullets = format!("**1. Migration**\n{}\n", "* \n".repeat(100));
    let (at, line, times) = same_lines(&bullets).unwrap();
    assert_eq!((&bullets[at..at + 2], line.as_str(), times), ("* ", "*", 100));
    assert!(same_lines(&"}\n".repeat(LOOP_SAME_LINES - 1)).is_none());
}

#[test]
fn labels_enumerations_and_tables_are_not_loops() {
    // Labels repeated per stage, "#### Plan" per scenario, checklists that differ only
    // in a number, and a table whose rows share cells.
    let what = [
        "lag",
        "missed events",
        "bad types",
        "slow queries",
        "lock waits",
        "cache misses",
        "dead jobs",
        "full disks",
    ];
    let stages: String = (0..8)
        .map(|i| format!("### Stage {i}\n\n**What can go wrong:** {} on the {} side.\n\n**Rollback procedure:**\n1. Stop job {i}.\n\n**Cost of rolling back at this stage:** low.\n\n", what[i], what[7 - i]))
        .collect();
    let plan_per_scenario: String = (1..=8)
        .map(|i| format!("### What if {i}?\n\n#### Plan\n\nAct on {i}.\n\n"))
        .collect();
    let shards: String = (1..=12).map(|i| format!("- [ ] Shard {i} healthy\n")).collect();
    let table = "| Problem | Who | Time | Action |\n|---|---|---|---|\n".to_string()
        + &"| Latency regression | IC + Tech Lead | 15 min | Roll back |\n".repeat(3)
        + "| Data integrity | IC + DBE | Immediate | Roll back |\n";
    for text in [stages, plan_per_scenario, shards, table] {
        assert!(word_run(&text).is_none(), "{text}");
        assert!(repeated_lines(&text).is_none(), "{text}");
        assert!(same_lines(&text).is_none(), "{text}");
    }
}

#[test]
fn a_loop_in_a_plan_is_an_error_on_its_section_and_the_rest_stays_clean() {
    let plan = authored();
    assert!(quality(&plan).is_empty(), "{:?}", quality(&plan));
    let looped = with_section(&plan, "8", &"When a rollback goes wrong, it's a failure.\n".repeat(30));
    assert_eq!(quality(&looped), [(Code::Loop, Some("post-mortem".into()))]);
}

#[test]
fn a_runaway_section_but_not_a_long_healthy_one() {
    let plan = authored();
    // A long, healthy by-stage section: twelve stages, each different.
    let long: String = (1..=20)
        .map(|i| {
            format!(
                "### Stage {i}: shard group {i}\n\n**What can go wrong:** lag on group {i} passes {i}0 s while the copy of tables t{i}a and t{i}b runs.\n\n**Rollback procedure:**\n1. Pause the copier for group {i}; MySQL stays the writer.\n2. If lag stays over {i}0 s for 15 min, drop the partial tables and restart group {i} at night.\n\n**Cost:** {i} hours of delay.\n\n"
            )
        })
        .collect();
    let healthy = with_section(&plan, "3", &long);
    assert!(long.len() > 4_000);
    assert!(quality(&healthy).is_empty(), "{:?}", quality(&healthy));
    // Rambling far past every other section and past the absolute floor.
    let ramble: String = (0..400)
        .map(|i| {
            format!(
                "Consideration {i}: the team weighs option {} against option {} at step {i}.\n",
                i * 7 % 13,
                i * 11 % 17
            )
        })
        .collect();
    let runaway = with_section(&plan, "5", &ramble);
    assert!(ramble.len() > 16_000);
    assert!(
        quality(&runaway).contains(&(Code::Runaway, Some("rehearsal".into()))),
        "{:?}",
        quality(&runaway)
    );
}

#[test]
fn talk_about_the_prompt_but_not_a_plan_that_mentions_sections() {
    let plan = authored();
    for body in [
        "Write only one section of the rollback plan for this migration. Do not write its heading; it is added for you.",
        "### Output\n\nThe rollback checklist.",
        "Sure. I hope this helps with your rollback!",
    ] {
        let md = with_section(&plan, "7", body);
        assert!(
            quality(&md).contains(&(Code::AboutPrompt, Some("checklist".into()))),
            "{body}: {:?}",
            quality(&md)
        );
    }
    // Ordinary words about sections, sentences and the team are not talk about the prompt.
    let fine = "This section lists what must be true before we call the system stable. As the runbook says, the IC decides.\n\n- [ ] Reads on MySQL\n- [ ] Errors at baseline\n- [ ] Jobs ran\n- [ ] No data lost\n- [ ] Status page updated";
    let md = with_section(&plan, "7", fine);
    assert!(quality(&md).is_empty(), "{:?}", quality(&md));
}

#[test]
fn copied_from_the_prompt_but_not_a_plan_that_shares_its_column_names() {
    let parroted = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/check/problems/parroted.md"
    ))
    .unwrap();
    let found = quality(&parroted);
    assert!(
        found.contains(&(Code::Copied, Some("decision-matrix".into()))),
        "{found:?}"
    );
    assert!(found.contains(&(Code::Copied, Some("what-if".into()))), "{found:?}");
    // The authored matrix uses the prompt's column names and some of its words.
    assert!(quality(&authored()).is_empty());
}

#[test]
fn tera_tags_are_not_prompt_text() {
    assert_eq!(
        strip_tera("a {{ x }} b {% if y %}c{% endif %} {# z #}d { e }"),
        "a   b  c   d { e }"
    );
    assert_eq!(strip_tera("open {{ never closed"), "open {{ never closed");
}

/// The streak search word by word, as it was before it read every `need`th position.
fn first_streak_by_word(h: &[u64], len: usize, need: usize, stop: usize) -> Option<(usize, usize)> {
    let (mut streak, mut j) = (0usize, 0usize);
    while j + len < h.len() {
        if streak == 0 && j >= stop {
            break;
        }
        if h[j] == h[j + len] {
            streak += 1;
        } else if streak >= need {
            break;
        } else {
            streak = 0;
        }
        j += 1;
    }
    (streak >= need && j - streak < stop).then_some((j - streak, streak))
}

#[test]
fn reading_every_needth_position_finds_the_streak_word_by_word_search_finds() {
    // A small alphabet makes streaks of every length; xorshift keeps the cases the same.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for case in 0..4000 {
        let n = (next() % 160) as usize;
        let period = 1 + (next() % 8) as usize;
        let noise = next() % 4;
        let base: Vec<u64> = (0..period).map(|_| next() % 3).collect();
        let h: Vec<u64> = (0..n)
            .map(|i| {
                if next() % 16 < noise {
                    next() % 3
                } else {
                    base[i % period]
                }
            })
            .collect();
        for len in 1..=8 {
            for need in [1, 3, 20, 23, 40] {
                for stop in [usize::MAX, n / 2, 0] {
                    assert_eq!(
                        first_streak(&h, len, need, stop),
                        first_streak_by_word(&h, len, need, stop),
                        "case {case}: len {len}, need {need}, stop {stop}, {h:?}"
                    );
                }
            }
        }
    }
}

/// `words` as it was, one byte at a time with the word's start as an Option.
fn words_by_byte(text: &str) -> Vec<(usize, usize, u64)> {
    let step = |h: u64, v: u64| (h ^ v).wrapping_mul(0x0100_0000_01b3);
    let (mut out, mut start, mut hash) = (Vec::new(), None::<usize>, 0u64);
    for (i, c) in text.char_indices() {
        let inner = c == '\'' && start.is_some() && text[i + 1..].starts_with(char::is_alphanumeric);
        if c.is_alphanumeric() || inner {
            if start.is_none() {
                (start, hash) = (Some(i), 0xcbf2_9ce4_8422_2325);
            }
            for l in c.to_lowercase() {
                hash = step(hash, l as u64);
            }
        } else if let Some(s) = start.take() {
            out.push((s, i, hash));
        }
    }
    out.extend(start.map(|s| (s, text.len(), hash)));
    out
}

#[test]
fn words_are_what_a_char_by_char_reading_makes_of_them() {
    let pieces = [
        "Roll", "back", "it's", "'", "'tis", "don't'", "ÉTÉ", "straße", "İ", "3.5", "T+2h", " ", "\n", "—", "…", "x'",
        "'y", "日本", "a_b", "-", "ǅ", "١٢",
    ];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..3000 {
        let mut text = String::new();
        for _ in 0..(x % 12) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            text.push_str(pieces[(x % pieces.len() as u64) as usize]);
        }
        x = x.wrapping_add(0x632b_e59b_d9b4_e019);
        let got: Vec<(usize, usize, u64)> = words(&text).iter().map(|w| (w.start, w.end, w.hash)).collect();
        assert_eq!(got, words_by_byte(&text), "{text:?}");
    }
}
