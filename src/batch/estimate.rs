//! `batch --dry-run`: what a run would send and what it could cost, sending nothing. The
//! items that would run after resume, their prompt tokens (counted with OpenAI's tokenizer
//! for OpenAI models, else estimated), the worst-case completion tokens and, with a price,
//! the cost range of the first requests: one per plan, or with `--parallel` the outline
//! and every part, each part carrying the outline.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Ctx;
use super::items::{self, Manifest};
use crate::client::Message;
use crate::error::{Outcome, Result};
use crate::pipeline::PlanInput;
use crate::price::{Counting, Known, usd};
use crate::term::{Ui, count, print_stdout, thousands};

/// One model's share of the run.
#[derive(Debug, Default, Serialize)]
pub struct ModelEstimate {
    pub model: String,
    pub items: u64,
    /// The first requests: one per plan, or with `--parallel` the outline and every part.
    pub requests: u64,
    pub prompt_tokens: u64,
    pub counting: Option<Counting>,
    /// The prompt tokens `--max-cost` would hold: the count, or the estimate plus a third.
    pub prompt_tokens_held: u64,
    /// With `--parallel`: the outline every part carries, at most (`--max-tokens` each).
    pub outline_tokens_max: u64,
    /// Every first reply at `--max-tokens`.
    pub max_completion_tokens: u64,
    /// USD: the prompts alone, and with every reply at `--max-tokens`.
    pub cost_usd_min: Option<f64>,
    pub cost_usd_max: Option<f64>,
    /// "given" (`--price`) or "table" (built in), when the model has a price.
    pub price_from: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct Estimate {
    pub dry_run: bool,
    pub items: u64,
    pub to_run: u64,
    /// Current plans in the output folder that a run would keep.
    pub kept: u64,
    pub max_tokens: Option<u32>,
    pub max_repairs: u32,
    pub models: Vec<ModelEstimate>,
    /// Over every model; None when one has no price.
    pub cost_usd_min: Option<f64>,
    pub cost_usd_max: Option<f64>,
    /// The items that carry context (`--context`, their own `context` or `runbook`): its
    /// files and tokens, part of the prompt tokens above.
    pub context: Vec<ItemContext>,
}

#[derive(Debug, Serialize)]
pub struct ItemContext {
    pub name: String,
    pub files: usize,
    pub tokens: u64,
}

/// Count the run without sending anything.
pub fn estimate(ctx: &Ctx, manifest: &Manifest) -> Result<Estimate> {
    let mut per: BTreeMap<String, ModelEstimate> = BTreeMap::new();
    let (mut items, mut kept) = (0u64, 0u64);
    let mut context = Vec::new();
    for item in items::open(&manifest.path)? {
        let item = item?;
        items += 1;
        let model = ctx.model_of(&item);
        let input = ctx.item_input(&item, &model)?;
        if ctx.keeps(&item, &input, &model) {
            kept += 1;
            continue;
        }
        if let Some(n) = &input.context_tokens {
            context.push(ItemContext {
                name: item.name.clone(),
                files: input.context.files.len(),
                tokens: n.tokens,
            });
        }
        let requests = first_requests(ctx, &input)?;
        let m = per.entry(model.clone()).or_insert_with(|| ModelEstimate {
            model: model.clone(),
            ..ModelEstimate::default()
        });
        let max_tokens = u64::from(ctx.settings.repair.shape.max_tokens.unwrap_or(0));
        for texts in &requests {
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            let (tokens, how) = crate::price::prompt_tokens(&model, &texts);
            m.prompt_tokens += tokens;
            m.prompt_tokens_held += crate::price::held((tokens, how));
            m.counting = Some(how);
        }
        let n = requests.len() as u64;
        m.items += 1;
        m.requests += n;
        m.max_completion_tokens += n * max_tokens;
        if ctx.settings.repair.parallel.is_some() {
            m.outline_tokens_max += (n - 1) * max_tokens;
        }
    }
    let models: Vec<ModelEstimate> = per.into_values().map(|m| priced(ctx, m)).collect();
    let sum = |f: fn(&ModelEstimate) -> Option<f64>| models.iter().map(f).sum::<Option<f64>>();
    Ok(Estimate {
        dry_run: true,
        items,
        to_run: items - kept,
        kept,
        max_tokens: ctx.settings.repair.shape.max_tokens,
        max_repairs: ctx.settings.repair.max_repairs,
        cost_usd_min: sum(|m| m.cost_usd_min),
        cost_usd_max: sum(|m| m.cost_usd_max),
        models,
        context,
    })
}

/// The first requests of one plan, each as its messages' texts: the prompt, or with
/// `--parallel` the outline request and every part (the outline itself left out).
fn first_requests(ctx: &Ctx, input: &PlanInput) -> Result<Vec<Vec<String>>> {
    let messages = ctx.template.messages(&input.inputs)?;
    if ctx.settings.repair.parallel.is_none() {
        return Ok(vec![messages.into_iter().map(|m| m.content).collect()]);
    }
    let texts = |prompt: String| {
        Message::standalone(&messages, prompt)
            .into_iter()
            .map(|m| m.content)
            .collect()
    };
    let mut out = vec![texts(ctx.template.outline_prompt(&input.inputs)?)];
    let parts = crate::repair::part_prompts(&ctx.template, &ctx.checker.spec, &input.inputs, &input.stages, "")?;
    out.extend(parts.into_iter().map(|p| texts(p.prompt)));
    Ok(out)
}

fn priced(ctx: &Ctx, mut m: ModelEstimate) -> ModelEstimate {
    if let Some((p, known)) = ctx.prices.of(&m.model) {
        m.cost_usd_min = Some(p.cost(m.prompt_tokens, 0, 0));
        // As `--max-cost` holds it: an estimated prompt with its margin.
        m.cost_usd_max = Some(p.cost(m.prompt_tokens_held + m.outline_tokens_max, 0, m.max_completion_tokens));
        m.price_from = Some(match known {
            Known::Given => "given",
            Known::Table => "table",
        });
    }
    m
}

/// Print the estimate (text, or JSON with `--json`).
pub fn print(ctx: &Ctx, manifest: &Manifest, json: bool, ui: Ui) -> Result<Outcome> {
    let e = estimate(ctx, manifest)?;
    if json {
        print_stdout(&(serde_json::to_string_pretty(&e).expect("estimate serializes") + "\n"))?;
        return Ok(Outcome::Complete);
    }
    let mut out = format!(
        "dry run: nothing sent.\n{}: {} to run, {} kept from an earlier run\n",
        count(e.items, "item"),
        e.to_run,
        e.kept
    );
    for m in &e.models {
        out.push_str(&model_line(m, e.max_tokens));
    }
    for c in &e.context {
        out.push_str(&format!(
            "  context of {}: {}, {} tokens (in the prompt tokens above)\n",
            c.name,
            count(c.files as u64, "file"),
            thousands(c.tokens)
        ));
    }
    out.push_str(&match (e.cost_usd_min, e.cost_usd_max) {
        (Some(lo), Some(hi)) => format!("cost of the first requests: {} to {}\n", usd(lo), usd(hi)),
        _ => "cost unknown: a model has no price (give --price IN:OUT, USD per million tokens)\n".into(),
    });
    print_stdout(&out)?;
    if let (Some(max), Some(lo), Some(hi)) = (ctx.client.budget_max(), e.cost_usd_min, e.cost_usd_max)
        && let Some(w) = budget_words(max, lo, hi)
    {
        ui.warn(w);
    }
    ui.note(format!(
        "repair rounds (up to {} per plan) come on top, for plans whose first answer lacks sections or fails a check",
        e.max_repairs
    ));
    Ok(Outcome::Complete)
}

/// What `--max-cost` `max` means for first requests costing `lo` to `hi`.
fn budget_words(max: f64, lo: f64, hi: f64) -> Option<String> {
    if lo > max {
        Some(format!(
            "--max-cost {} is below even the lowest cost of the first requests ({}): the run will stop before every plan is made",
            usd(max),
            usd(lo)
        ))
    } else if hi > max {
        Some(format!(
            "--max-cost {} is below the first requests' upper bound ({}): the run may stop before every plan is made",
            usd(max),
            usd(hi)
        ))
    } else {
        None
    }
}

fn model_line(m: &ModelEstimate, max_tokens: Option<u32>) -> String {
    let how = m.counting.map(|c| c.to_string()).unwrap_or_default();
    let price = match (m.cost_usd_min, m.cost_usd_max, m.price_from) {
        (Some(lo), Some(hi), Some(from)) => format!("; {} to {} ({} price)", usd(lo), usd(hi), from),
        _ => "; no price".into(),
    };
    let outline = match m.outline_tokens_max {
        0 => String::new(),
        n => format!(" + up to {} for the outline each part carries", thousands(n)),
    };
    format!(
        "  {}: {}, {}, {} prompt tokens ({how}){outline}, up to {} completion tokens ({} × --max-tokens {}){price}\n",
        m.model,
        count(m.items, "item"),
        count(m.requests, "request"),
        thousands(m.prompt_tokens),
        thousands(m.max_completion_tokens),
        m.requests,
        max_tokens.map_or("unset".to_string(), |t| t.to_string())
    )
}
