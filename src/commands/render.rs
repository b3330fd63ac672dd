//! `rbplan render`: the messages that would be sent, with no call.

use crate::cli::RenderArgs;
use crate::client::ChatRequest;
use crate::config::{self, Env};
use crate::error::{Outcome, Result};
use crate::template::Template;
use crate::term::print_stdout;

pub fn run(args: RenderArgs) -> Result<Outcome> {
    let env = Env::load()?;
    let template = Template::resolve(args.template.template.as_deref())?;
    let inputs = crate::input::resolve(&args.input.given_or(&args.example), &template)?;
    let messages = template.messages(&inputs)?;
    if args.json {
        let settings = config::resolve(&args.conn.flags(), &env)?;
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
