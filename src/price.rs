//! What tokens cost, in USD per million: the user's `--price` first, else a small table
//! of well-known OpenAI models. Also prompt token counts: OpenAI's own tokenizer for
//! OpenAI models (tiktoken), else an estimate of four characters a token, and which.

mod bpe;

/// When the built-in table was taken, and from where.
pub const TABLE_DATE: &str = "2026-12-01";
pub const TABLE_SOURCE: &str = "OpenAI's list prices as carried by LiteLLM's model_prices_and_context_window.json";

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Cached prompt tokens; None: charged as input.
    pub cached: Option<f64>,
}

/// Built-in prices: (model, input, output, cached input).
const TABLE: &[(&str, f64, f64, f64)] = &[
    ("gpt-4o-mini", 0.15, 0.60, 0.075),
    ("gpt-4o", 2.50, 10.00, 1.25),
    ("gpt-4.1-nano", 0.10, 0.40, 0.025),
    ("gpt-4.1-mini", 0.40, 1.60, 0.10),
    ("gpt-4.1", 2.00, 8.00, 0.50),
    ("o3-mini", 1.10, 4.40, 0.55),
    ("o4-mini", 1.10, 4.40, 0.275),
    ("o3", 2.00, 8.00, 0.50),
];

/// `--price`'s long help: the format, and the built-in table with its date.
pub fn help() -> String {
    format!(
        "What tokens cost, in USD per million: IN:OUT or IN:OUT:CACHED for every model, or \
MODEL=IN:OUT[:CACHED] for one; repeat for several [RBPLAN_PRICE, \";\"-separated]. A price given \
here always wins over the built-in table, which rbplan uses for these models (and their dated \
snapshots) when none is given, taken {TABLE_DATE} from {TABLE_SOURCE}:\n  {}\nAny other model has \
no price: rbplan then shows tokens only, and says so.",
        table_lines().join("\n  ")
    )
}

/// The built-in table as lines, for `--help` and the README.
pub fn table_lines() -> Vec<String> {
    TABLE
        .iter()
        .map(|(m, i, o, c)| format!("{m:<13} in {i:>5.3}  out {o:>6.3}  cached in {c:>5.3}"))
        .collect()
}

/// The prices a run knows: the user's (per model, or for every model) over the table.
#[derive(Debug, Clone, Default)]
pub struct Prices {
    /// `--price MODEL=IN:OUT[:CACHED]`.
    per_model: Vec<(String, Price)>,
    /// `--price IN:OUT[:CACHED]`: every model without its own.
    any: Option<Price>,
}

impl Prices {
    /// From `--price` values (and `RBPLAN_PRICE`, `;`-separated, after them).
    pub fn parse(specs: &[String]) -> Result<Prices, String> {
        let mut p = Prices::default();
        for spec in specs
            .iter()
            .flat_map(|s| s.split(';'))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match spec.split_once('=') {
                Some((model, rates)) => p.per_model.push((model.trim().to_string(), parse_rates(rates, spec)?)),
                None => p.any = Some(parse_rates(spec, spec)?),
            }
        }
        Ok(p)
    }

    /// The price of `model`, and whether it is the user's or the table's; None if unknown.
    pub fn of(&self, model: &str) -> Option<(Price, Known)> {
        if let Some((_, p)) = self.per_model.iter().find(|(m, _)| m == model) {
            return Some((*p, Known::Given));
        }
        if let Some(p) = self.any {
            return Some((p, Known::Given));
        }
        builtin(model).map(|p| (p, Known::Table))
    }
}

/// Where a price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Given,
    Table,
}

/// "IN:OUT" or "IN:OUT:CACHED", USD per million tokens, each finite and not negative.
fn parse_rates(rates: &str, whole: &str) -> Result<Price, String> {
    let parts: Vec<&str> = rates.split(':').map(str::trim).collect();
    let bad =
        || format!("--price {whole:?}: expected IN:OUT or IN:OUT:CACHED in USD per million tokens, e.g. 0.15:0.60");
    if !(2..=3).contains(&parts.len()) {
        return Err(bad());
    }
    let num = |s: &str| {
        s.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(bad)
    };
    Ok(Price {
        input: num(parts[0])?,
        output: num(parts[1])?,
        cached: parts.get(2).map(|c| num(c)).transpose()?,
    })
}

/// The table's price for `model`, or for the model it is a dated snapshot of
/// ("gpt-4o-mini-2024-07-18" is "gpt-4o-mini").
fn builtin(model: &str) -> Option<Price> {
    let base = strip_date(model);
    TABLE.iter().find(|(m, ..)| *m == base).map(|(_, i, o, c)| Price {
        input: *i,
        output: *o,
        cached: Some(*c),
    })
}

fn strip_date(model: &str) -> &str {
    let b = model.as_bytes();
    let dated = b.len() > 11
        && b[b.len() - 11] == b'-'
        && model[b.len() - 10..]
            .chars()
            .enumerate()
            .all(|(i, c)| if i == 4 || i == 7 { c == '-' } else { c.is_ascii_digit() });
    if dated { &model[..b.len() - 11] } else { model }
}

impl Price {
    /// The cost of `prompt` tokens (of which `cached`) and `completion` tokens, in USD.
    pub fn cost(&self, prompt: u64, cached: u64, completion: u64) -> f64 {
        let cached = cached.min(prompt);
        let fresh = (prompt - cached) as f64 * self.input;
        let cached = cached as f64 * self.cached.unwrap_or(self.input);
        (fresh + cached + completion as f64 * self.output) / 1_000_000.0
    }
}

/// How prompt tokens were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Counting {
    /// OpenAI's tokenizer for the model (tiktoken's o200k_base or cl100k_base).
    O200kBase,
    Cl100kBase,
    /// Four characters a token: a model whose tokenizer rbplan does not have.
    Estimate,
}

impl std::fmt::Display for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Counting::O200kBase => "counted with tiktoken o200k_base",
            Counting::Cl100kBase => "counted with tiktoken cl100k_base",
            Counting::Estimate => "estimated at 4 characters a token (no tokenizer for this model)",
        })
    }
}

/// Which tokenizer a model uses, as tiktoken maps OpenAI's models.
pub fn counting_for(model: &str) -> Counting {
    let m = model.to_ascii_lowercase();
    if m.starts_with("gpt-4o")
        || m.starts_with("gpt-4.1")
        || m.starts_with("gpt-5")
        || m.starts_with('o') && m[1..].starts_with(|c: char| c.is_ascii_digit())
    {
        Counting::O200kBase
    } else if m.starts_with("gpt-4") || m.starts_with("gpt-3.5") {
        Counting::Cl100kBase
    } else {
        Counting::Estimate
    }
}

/// Tokens of `texts` (a request's messages) for `model`: counted or estimated, and how.
/// A few tokens per message for the chat format are added, as OpenAI's cookbook counts.
pub fn prompt_tokens(model: &str, texts: &[&str]) -> (u64, Counting) {
    let how = counting_for(model);
    let per_message = 4 * texts.len() as u64 + 3;
    let body: u64 = match how {
        Counting::O200kBase => texts
            .iter()
            .map(|t| bpe::o200k().encode_with_special_tokens(t).len() as u64)
            .sum(),
        Counting::Cl100kBase => texts
            .iter()
            .map(|t| bpe::cl100k().encode_with_special_tokens(t).len() as u64)
            .sum(),
        Counting::Estimate => texts.iter().map(|t| (t.len() as u64).div_ceil(4)).sum(),
    };
    (body + per_message, how)
}

/// Tokens of one text for `model`, without the chat format's per-message tokens.
pub fn text_tokens(model: &str, text: &str) -> (u64, Counting) {
    let (n, how) = prompt_tokens(model, &[text]);
    (n - 7, how)
}

/// The prompt tokens `--max-cost` holds for a request: counted with the model's tokenizer
/// where rbplan has it; else the four-characters-a-token estimate plus a third, since other
/// tokenizers can count more (SmolLM2's counted 2,804 for the example prompt, the estimate
/// 2,785).
pub fn prompt_tokens_held(model: &str, texts: &[&str]) -> u64 {
    held(prompt_tokens(model, texts))
}

/// `prompt_tokens_held` of a count already made.
pub fn held((n, how): (u64, Counting)) -> u64 {
    match how {
        Counting::Estimate => n + n.div_ceil(3),
        _ => n,
    }
}

/// USD as people read it: four decimals under a dollar (never a rounded zero), else cents.
pub fn usd(v: f64) -> String {
    if v == 0.0 {
        "$0".into()
    } else if v < 1.0 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_prices_win_and_dated_snapshots_use_the_table() {
        let p = Prices::parse(&["0.5:1.5".into(), "gpt-4o=3:12:1".into()]).unwrap();
        assert_eq!(p.of("gpt-4o").unwrap().0.input, 3.0);
        assert_eq!(
            p.of("llama").unwrap(),
            (
                Price {
                    input: 0.5,
                    output: 1.5,
                    cached: None
                },
                Known::Given
            )
        );
        let table = Prices::default();
        assert_eq!(table.of("gpt-4o-mini-2024-07-18").unwrap().0.output, 0.60);
        assert_eq!(table.of("gpt-4o-mini").unwrap().1, Known::Table);
        assert!(table.of("smollm2-135m-instruct").is_none());
        assert!(table.of("gpt-4o-mini-extra").is_none());
    }

    #[test]
    fn bad_prices_say_what_is_expected() {
        for bad in ["0.15", "a:b", "-1:2", "1:2:3:4", "m=1", "inf:1"] {
            let e = Prices::parse(&[bad.into()]).unwrap_err();
            assert!(e.contains("IN:OUT"), "{bad}: {e}");
        }
    }

    #[test]
    fn cost_prices_cached_tokens_at_their_rate() {
        let p = Price {
            input: 0.15,
            output: 0.60,
            cached: Some(0.075),
        };
        // 1M prompt tokens of which half cached, 1M completion tokens.
        let c = p.cost(1_000_000, 500_000, 1_000_000);
        assert!((c - (0.075 + 0.0375 + 0.60)).abs() < 1e-12, "{c}");
        assert_eq!(usd(0.0), "$0");
        assert_eq!(usd(0.001234), "$0.0012");
        assert_eq!(usd(12.345), "$12.35");
    }

    #[test]
    fn tokens_are_counted_for_openai_models_and_estimated_for_others() {
        let (n, how) = prompt_tokens("gpt-4o-mini", &["Hello, world!"]);
        assert_eq!((n, how), (4 + 7, Counting::O200kBase));
        assert_eq!(
            prompt_tokens("gpt-3.5-turbo", &["Hello, world!"]).1,
            Counting::Cl100kBase
        );
        assert_eq!(
            prompt_tokens("llama3.1", &["x".repeat(40).as_str()]),
            (10 + 7, Counting::Estimate)
        );
        assert_eq!(counting_for("o3-mini"), Counting::O200kBase);
        assert_eq!(counting_for("ollama"), Counting::Estimate);
    }
}
