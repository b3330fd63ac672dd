//! `rbplan render`: the messages that would be sent, with no call: context files, after
//! redaction and the budget, exactly as the model would read them.

use std::path::Path;

use crate::cli::RenderArgs;
use crate::client::ChatRequest;
use crate::config::{self, Env};
use crate::error::{Outcome, Result};
use crate::pipeline::PlanInput;
use crate::template::Template;
use crate::term::{Ui, print_stdout};

pub fn run(args: RenderArgs, ui: Ui) -> Result<Outcome> {
    let env = Env::load()?;
    let template = Template::resolve(args.template.template.as_deref())?;
    let cask = super::context_ask(&args.context, &env)?;
    let rb = cask.read_runbook(Path::new(""), true)?;
    let given = args.input.given_or(&args.example);
    let inputs = crate::input::resolve(&given, &template, rb.as_ref().map(|r| r.source()))?;
    let ctx = cask.load(Path::new(""), true)?;
    // Only the request body and the context's tokenizer need the settings.
    let needed = args.json || !ctx.is_empty() || rb.is_some();
    let settings = needed.then(|| config::resolve(&args.conn.flags(), &env)).transpose()?;
    let model = settings.as_ref().map_or("", |s| s.shape.model.as_str());
    let input = PlanInput::new(inputs).with_context(ctx, rb.as_ref(), cask.budget, model)?;
    super::say_context(&input, cask.redact, ui);
    let messages = template.messages(&input.inputs)?;
    if let Some(settings) = settings.filter(|_| args.json) {
        let body = crate::client::request_body(&ChatRequest::new(settings.shape, messages));
        print_stdout(&(serde_json::to_string_pretty(&body).expect("json") + "\n"))?;
    } else {
        let mut out = String::new();
        for m in &messages {
            out.push_str(&format!("──── {} ────\n{}\n", m.role, m.content.trim_end()));
        }
        print_stdout(&out)?;
    }
    Ok(Outcome::Complete)
}
