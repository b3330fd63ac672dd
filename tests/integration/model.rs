//! A scripted "model" for the local server: replies built from the hand-written plan in
//! fixtures/authored/plan.md, and a server that answers from recorded fixtures.

use std::collections::HashMap;
use std::sync::Mutex;

use rbplan::check::Checker;
use rbplan::client::fixture::{RecordedResponse, match_key, read_dir_fixtures};
use rbplan::template::Template;
use serde_json::{Value, json};

use super::common::{fixture_dir, repo};
use super::server::{Reply, Request, Server};

/// The authored plan split into its sections.
pub struct Authored {
    pub text: String,
    pub preamble: String,
    /// Per section index: (whole section with heading, body only).
    pub sections: Vec<(String, String)>,
}

pub fn authored() -> Authored {
    let text = std::fs::read_to_string(repo().join("fixtures/authored/plan.md")).unwrap();
    let checker = Checker::new(&Template::builtin());
    let outline = checker.outline(&text);
    let count = checker.spec.sections.len();
    assert_eq!(outline.found.len(), count, "the authored plan has every section");
    let mut sections = vec![(String::new(), String::new()); count];
    for l in &outline.found {
        sections[l.section] = (
            text[l.start..l.end].trim_end().to_string(),
            text[l.body_start..l.end].trim().to_string(),
        );
    }
    let preamble = text[..outline.found[0].start].to_string();
    Authored {
        text,
        preamble,
        sections,
    }
}

impl Authored {
    /// The plan without the given sections (by index).
    pub fn without(&self, skip: &[usize]) -> String {
        let mut s = self.preamble.clone();
        for (i, (whole, _)) in self.sections.iter().enumerate() {
            if !skip.contains(&i) {
                s.push_str(whole);
                s.push_str("\n\n");
            }
        }
        s
    }

    /// Just these sections, in order, as a repair reply.
    pub fn only(&self, which: &[usize]) -> String {
        which
            .iter()
            .map(|&i| self.sections[i].0.clone())
            .collect::<Vec<_>>()
            .join("\n\n")
            + "\n"
    }
}

pub fn usage(prompt_chars: usize, text: &str) -> Value {
    let p = prompt_chars as u64 / 4;
    let c = text.len() as u64 / 4;
    json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c})
}

fn prompt_chars(req: &Request) -> usize {
    req.json()["messages"]
        .as_array()
        .map(|m| m.iter().map(|m| m["content"].as_str().unwrap_or("").len()).sum())
        .unwrap_or(0)
}

/// A chat completion reply, streamed as SSE if the request asked for a stream.
pub fn reply(req: &Request, n: usize, text: &str, finish: &str) -> Reply {
    let id = format!("chatcmpl-scripted-{n}");
    let model = req.json()["model"].as_str().unwrap_or("scripted").to_string();
    let usage = usage(prompt_chars(req), text);
    if req.json()["stream"] == json!(true) {
        let mut body = String::new();
        body.push_str(&format!(
            "data: {}\n\n",
            json!({"id": id, "model": model, "choices": []})
        ));
        let chars: Vec<char> = text.chars().collect();
        for piece in chars.chunks(64) {
            let s: String = piece.iter().collect();
            body.push_str(&format!(
                "data: {}\n\n",
                json!({"id": id, "model": model, "choices": [{"index": 0, "delta": {"content": s}, "finish_reason": null}]})
            ));
        }
        body.push_str(&format!(
            "data: {}\n\n",
            json!({"id": id, "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        ));
        body.push_str(&format!(
            "data: {}\n\n",
            json!({"id": id, "model": model, "choices": [], "usage": usage})
        ));
        body.push_str("data: [DONE]\n\n");
        Reply::Full {
            status: 200,
            headers: vec![
                ("content-type".into(), "text/event-stream".into()),
                ("x-request-id".into(), format!("req_scripted_{n}")),
            ],
            body: body.into_bytes(),
        }
    } else {
        Reply::json(
            200,
            &json!({
                "id": id, "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                "usage": usage,
            }),
        )
        .with_header("x-request-id", &format!("req_scripted_{n}"))
    }
}

/// Section indices named by "## N. Title" lines of a repair prompt.
pub fn asked_headings(user: &str) -> Vec<usize> {
    let spec = Template::builtin().spec;
    user.lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|h| (0..spec.sections.len()).find(|&i| h.trim() == spec.heading(i)))
        .collect()
}

/// The section a one-section request asks for.
pub fn asked_single(user: &str) -> Option<usize> {
    let spec = Template::builtin().spec;
    if !user.contains("Write only one section") {
        return None;
    }
    (0..spec.sections.len()).find(|&i| user.contains(&format!("\"{}\"", spec.heading(i))))
}

pub fn is_repair(req: &Request) -> bool {
    req.json()["messages"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m["role"] == "assistant"))
}

/// A server answering chat requests from the recorded fixtures in `fixtures/<name>`,
/// in recorded order per request. Anything else gets a 404 naming what was asked.
pub fn fixture_server(name: &str) -> Server {
    let files = read_dir_fixtures(&fixture_dir(name)).unwrap();
    assert!(!files.is_empty(), "no fixtures in {name}");
    let table: HashMap<String, Vec<RecordedResponse>> = files
        .into_iter()
        .map(|(_, f)| (match_key(&f.request.body), f.responses))
        .collect();
    let cursor: Mutex<HashMap<String, usize>> = Mutex::new(HashMap::new());
    Server::start(move |req, _| {
        let key = match_key(&req.json());
        let Some(responses) = table.get(&key) else {
            return Reply::json(
                404,
                &json!({"error": {"message": format!("no fixture for this request: {}", req.last_user().chars().take(80).collect::<String>()), "type": "fixture_miss"}}),
            );
        };
        let mut c = cursor.lock().unwrap();
        let i = c.entry(key).or_insert(0);
        let r = &responses[(*i).min(responses.len() - 1)];
        *i += 1;
        Reply::Full {
            status: r.status,
            headers: r.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            body: r.body_bytes(),
        }
    })
}
