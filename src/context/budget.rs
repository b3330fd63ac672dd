//! The context's token budget, checked before anything is sent: counted with the model's
//! tokenizer where rbplan has it, else estimated (4 characters a token). Over it, the run
//! stops (exit 2) naming the largest files, unless `--context-truncate` keeps the head and
//! tail of each file with a visible marker. Nothing is ever cut silently.

use super::Context;
use crate::error::{Error, Result};
use crate::price::{Counting, text_tokens};
use crate::term::thousands;

/// `--context-max-tokens`' default: room for a runbook, its SQL and manifests, with the
/// prompt (about 3,000 tokens) and a 4,096-token answer still inside a 32k context.
pub const DEFAULT_MAX_TOKENS: u64 = 24_000;

/// What the context may take.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub max: u64,
    /// `--context-truncate`: cut each file over its share to its head and tail.
    pub truncate: bool,
}

/// The context's tokens, and how they were counted.
#[derive(Debug, Clone, Copy)]
pub struct Counted {
    pub tokens: u64,
    pub how: Counting,
}

/// Hold `ctx` to `b` for `model`; its tokens as sent.
pub fn fit(ctx: &mut Context, model: &str, b: Budget) -> Result<Counted> {
    let counts: Vec<u64> = ctx.files.iter().map(|f| text_tokens(model, &f.text).0).collect();
    let how = crate::price::counting_for(model);
    let total: u64 = counts.iter().sum();
    if total <= b.max {
        return Ok(Counted { tokens: total, how });
    }
    if !b.truncate {
        return Err(over(ctx, &counts, total, how, b.max));
    }
    let shares = shares(&counts, b.max);
    for (f, (&n, &share)) in ctx.files.iter_mut().zip(counts.iter().zip(&shares)) {
        if n > share {
            f.text = head_and_tail(&f.text, n, share, model);
        }
    }
    let tokens = ctx.files.iter().map(|f| text_tokens(model, &f.text).0).sum();
    Ok(Counted { tokens, how })
}

/// The usage error for a context over its budget: the largest files first.
fn over(ctx: &Context, counts: &[u64], total: u64, how: Counting, max: u64) -> Error {
    let mut by_size: Vec<(&str, u64)> = ctx
        .files
        .iter()
        .map(|f| f.path.as_str())
        .zip(counts.iter().copied())
        .collect();
    by_size.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let largest: Vec<String> = by_size
        .iter()
        .take(5)
        .map(|(p, n)| format!("  {p}: {} tokens", thousands(*n)))
        .collect();
    Error::usage(format!(
        "the context is {} tokens ({how}), over --context-max-tokens {}; nothing was sent. The largest files:\n{}\n\
         Give fewer or smaller files, raise --context-max-tokens (the model's context must hold it, the prompt and the answer), \
         or add --context-truncate to keep the head and tail of each file",
        thousands(total),
        thousands(max),
        largest.join("\n")
    ))
}

/// Each file's share of `max`: files under an equal share keep their size, the rest
/// share what is left equally.
fn shares(counts: &[u64], max: u64) -> Vec<u64> {
    let mut share = vec![0; counts.len()];
    let mut open: Vec<usize> = (0..counts.len()).collect();
    let mut left = max;
    loop {
        let each = left / open.len().max(1) as u64;
        let (small, big): (Vec<usize>, Vec<usize>) = open.iter().partition(|&&i| counts[i] <= each);
        if small.is_empty() {
            big.iter().for_each(|&i| share[i] = each);
            return share;
        }
        for i in small {
            share[i] = counts[i];
            left -= counts[i];
        }
        open = big;
        if open.is_empty() {
            return share;
        }
    }
}

/// `text` (of `tokens` tokens) cut to about `share` tokens: its first and last lines,
/// with a marker where lines were taken out.
fn head_and_tail(text: &str, tokens: u64, share: u64, model: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut keep = (lines.len() as u64 * share.saturating_sub(40) / tokens.max(1)) as usize;
    loop {
        let head = keep.div_ceil(2);
        let tail = keep / 2;
        let cut = lines.len().saturating_sub(head + tail);
        let marker = format!(
            "[… rbplan cut {cut} of {} lines here to fit --context-max-tokens (--context-truncate) …]",
            lines.len()
        );
        let mut out: Vec<&str> = lines[..head.min(lines.len())].to_vec();
        out.push(&marker);
        out.extend(&lines[lines.len() - tail.min(lines.len() - head.min(lines.len()))..]);
        let s = out.join("\n") + "\n";
        if keep == 0 || text_tokens(model, &s).0 <= share {
            return s;
        }
        keep = keep * 9 / 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::File;

    fn ctx(sizes: &[(&str, usize)]) -> Context {
        let files = sizes
            .iter()
            .map(|(p, lines)| File {
                path: p.to_string(),
                lang: "text",
                text: (0..*lines)
                    .map(|i| format!("line {i} of {p} with some words\n"))
                    .collect(),
                hash: "h".into(),
                shared: true,
            })
            .collect();
        Context {
            files,
            ..Context::default()
        }
    }

    #[test]
    fn over_budget_names_the_largest_files_and_cuts_nothing() {
        let mut c = ctx(&[("small.md", 10), ("dump.sql", 2000), ("runbook.md", 300)]);
        let before = c.files.clone();
        let e = fit(
            &mut c,
            "llama",
            Budget {
                max: 1000,
                truncate: false,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("over --context-max-tokens 1,000; nothing was sent"), "{e}");
        let (d, r) = (e.find("dump.sql").unwrap(), e.find("runbook.md").unwrap());
        assert!(d < r && e.contains("estimated at 4 characters"), "{e}");
        assert!(c.files.iter().zip(&before).all(|(a, b)| a.text == b.text));
    }

    #[test]
    fn truncation_keeps_head_and_tail_with_a_marker_and_fits() {
        let mut c = ctx(&[("small.md", 10), ("dump.sql", 2000)]);
        let n = fit(
            &mut c,
            "llama",
            Budget {
                max: 1000,
                truncate: true,
            },
        )
        .unwrap();
        assert!(n.tokens <= 1000, "{}", n.tokens);
        assert_eq!(c.files[0].text.lines().count(), 10, "a file under its share is whole");
        let d = &c.files[1].text;
        assert!(
            d.starts_with("line 0 of dump.sql") && d.contains("line 1999 of dump.sql"),
            "{d}"
        );
        assert!(d.contains("[… rbplan cut ") && d.contains("of 2000 lines here"), "{d}");
    }

    #[test]
    fn shares_give_small_files_their_size() {
        assert_eq!(shares(&[10, 500, 500], 310), vec![10, 150, 150]);
        assert_eq!(shares(&[10, 20], 100), vec![10, 20]);
    }
}
