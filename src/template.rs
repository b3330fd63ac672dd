//! Prompt rendering with tera. A template is a folder (template.toml + prompt files);
//! the rollback plan is built in. User text is passed as tera *values*, never spliced into
//! template source, so `{{ }}` or `{% %}` typed by a user reaches the model verbatim.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::client::Message;
use crate::error::{Error, Result};
use crate::spec::Spec;
use crate::util;

/// The built-in rollback-plan template, embedded so the binary works from any directory.
const BUILTIN: [(&str, &str); 8] = [
    ("template.toml", include_str!("../prompts/rollback-plan/template.toml")),
    ("system.md", include_str!("../prompts/rollback-plan/system.md")),
    ("user.md", include_str!("../prompts/rollback-plan/user.md")),
    ("repair.md", include_str!("../prompts/rollback-plan/repair.md")),
    ("section.md", include_str!("../prompts/rollback-plan/section.md")),
    ("judge.md", include_str!("../prompts/rollback-plan/judge.md")),
    ("revise.md", include_str!("../prompts/rollback-plan/revise.md")),
    ("outline.md", include_str!("../prompts/rollback-plan/outline.md")),
];
/// Used when a custom template does not bring its own repair or section prompt.
const DEFAULT_REPAIR: &str = include_str!("../prompts/defaults/repair.md");
const DEFAULT_SECTION: &str = include_str!("../prompts/defaults/section.md");
const DEFAULT_JUDGE: &str = include_str!("../prompts/defaults/judge.md");
const DEFAULT_REVISE: &str = include_str!("../prompts/defaults/revise.md");
const DEFAULT_OUTLINE: &str = include_str!("../prompts/defaults/outline.md");

/// The inputs of a plan: the two of the prompt, and the team's context files as the
/// model reads them (`context::render`; empty without any).
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub summary: String,
    pub stages: String,
    pub context: String,
}

impl Inputs {
    /// The two inputs, with no context.
    pub fn new(summary: String, stages: String) -> Inputs {
        Inputs {
            summary,
            stages,
            context: String::new(),
        }
    }

    /// Hash recorded in front matter, so a plan can be traced to what made it (the
    /// context's paths and text included when there is one).
    pub fn hash(&self) -> String {
        let mut parts = vec![self.summary.as_bytes(), self.stages.as_bytes()];
        if !self.context.is_empty() {
            parts.push(self.context.as_bytes());
        }
        util::short_hash(&parts)
    }
}

pub struct Template {
    pub spec: Spec,
    /// "built-in rollback-plan" or the folder it came from.
    pub origin: String,
    /// Hash over every file of the template; changes when the prompt or spec changes.
    pub hash: String,
    /// Each prompt's name (as `files` names it, or its role for a built-in default) and
    /// text, for checks that compare a plan with its prompt.
    pub prompts: Vec<(String, String)>,
    tera: tera::Tera,
    has_system: bool,
}

#[derive(Serialize)]
struct SectionCtx<'a> {
    id: &'a str,
    number: usize,
    title: &'a str,
    heading: String,
    guidance: Option<&'a str>,
    problems: Vec<String>,
}

impl Template {
    pub fn builtin() -> Template {
        let files: Vec<(String, String)> = BUILTIN.iter().map(|(n, c)| (n.to_string(), c.to_string())).collect();
        Self::from_files(
            Path::new("prompts/rollback-plan"),
            &files,
            "built-in rollback-plan".into(),
        )
        .expect("the built-in template is valid (tested)")
    }

    /// `None`: the built-in template. `Some(path)`: a folder holding template.toml, or that file.
    pub fn resolve(path: Option<&Path>) -> Result<Template> {
        match path {
            None => Ok(Self::builtin()),
            Some(p) => Self::load(p),
        }
    }

    pub fn load(path: &Path) -> Result<Template> {
        let (dir, spec_path) = if path.is_dir() {
            (path.to_path_buf(), path.join("template.toml"))
        } else {
            let dir = path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            (dir, path.to_path_buf())
        };
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| Error::input(p, None, format!("cannot read template file: {e}")))
        };
        let spec_text = read(&spec_path)?;
        let spec = parse_spec(&spec_path, &spec_text)?;
        let mut files = vec![("template.toml".to_string(), spec_text)];
        for name in [
            Some(&spec.files.user),
            spec.files.system.as_ref(),
            spec.files.repair.as_ref(),
            spec.files.section.as_ref(),
            spec.files.judge.as_ref(),
            spec.files.revise.as_ref(),
            spec.files.outline.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            files.push((name.clone(), read(&dir.join(name))?));
        }
        Self::from_files(&dir, &files, dir.display().to_string())
    }

    fn from_files(dir: &Path, files: &[(String, String)], origin: String) -> Result<Template> {
        let spec_path = dir.join("template.toml");
        let spec = parse_spec(&spec_path, &files[0].1)?;
        let get = |name: &str| files.iter().find(|(n, _)| n == name).map(|(_, c)| c.as_str());

        let mut tera = tera::Tera::new();
        tera.autoescape_on(Vec::<&str>::new()); // plain text: never HTML-escape user input
        let mut prompts = Vec::new();
        let mut add = |role: &str, file: Option<&String>, default: Option<&str>| -> Result<bool> {
            let (content, shown, name) = match file {
                Some(f) => (get(f).unwrap_or_default(), dir.join(f), f.clone()),
                None => match default {
                    Some(d) => (d, PathBuf::from(format!("<built-in {role} prompt>")), role.to_string()),
                    None => return Ok(false),
                },
            };
            tera.add_raw_template(role, content)
                .map_err(|e| Error::input(&shown, None, format!("template error: {}", tera_msg(&e))))?;
            prompts.push((name, content.to_string()));
            Ok(true)
        };
        let has_system = add("system", spec.files.system.as_ref(), None)?;
        add("user", Some(&spec.files.user), None)?;
        add("repair", spec.files.repair.as_ref(), Some(DEFAULT_REPAIR))?;
        add("section", spec.files.section.as_ref(), Some(DEFAULT_SECTION))?;
        add("judge", spec.files.judge.as_ref(), Some(DEFAULT_JUDGE))?;
        add("revise", spec.files.revise.as_ref(), Some(DEFAULT_REVISE))?;
        add("outline", spec.files.outline.as_ref(), Some(DEFAULT_OUTLINE))?;

        let mut sorted: Vec<&(String, String)> = files.iter().collect();
        sorted.sort();
        let parts: Vec<&[u8]> = sorted.iter().flat_map(|(n, c)| [n.as_bytes(), c.as_bytes()]).collect();
        let t = Template {
            hash: util::short_hash(&parts),
            spec,
            origin,
            prompts,
            tera,
            has_system,
        };
        // Render once with placeholder input so a broken template fails now, naming its file.
        let probe = Inputs::new("x".into(), "x".into());
        t.messages(&probe)?;
        t.repair_prompt(&probe, &[0], &[])?;
        t.section_prompt(&probe, 0, &[], None)?;
        t.section_prompt(&probe, 0, &[], Some("x"))?;
        t.part_prompt(&probe, 0, &[], Some("x"), Some("x"))?;
        t.outline_prompt(&probe)?;
        t.judge_prompt(&probe, "x")?;
        t.revise_prompt(&probe, &[0], "x")?;
        Ok(t)
    }

    /// The system and user messages of the first request.
    pub fn messages(&self, inputs: &Inputs) -> Result<Vec<Message>> {
        let ctx = self.context(inputs);
        let mut out = Vec::with_capacity(2);
        if self.has_system {
            out.push(Message::system(self.render("system", &ctx)?));
        }
        out.push(Message::user(self.render("user", &ctx)?));
        Ok(out)
    }

    /// The user message that asks for the `missing` sections and rewrites of `rewrite`.
    pub fn repair_prompt(
        &self,
        inputs: &Inputs,
        missing: &[usize],
        rewrite: &[(usize, Vec<String>)],
    ) -> Result<String> {
        let mut ctx = self.context(inputs);
        let m: Vec<SectionCtx> = missing.iter().map(|&i| self.section_ctx(i, Vec::new())).collect();
        let r: Vec<SectionCtx> = rewrite.iter().map(|(i, p)| self.section_ctx(*i, p.clone())).collect();
        ctx.insert("missing", &m);
        ctx.insert("rewrite", &r);
        self.render("repair", &ctx)
    }

    /// The user message that asks for one section alone, heading supplied by us; with
    /// `--parallel`, the outline every section must agree with comes first (a shared
    /// prefix, cacheable by the server).
    pub fn section_prompt(
        &self,
        inputs: &Inputs,
        idx: usize,
        problems: &[String],
        outline: Option<&str>,
    ) -> Result<String> {
        self.part_prompt(inputs, idx, problems, outline, None)
    }

    /// `section_prompt` for one part of a section: the subsection of one stage (`--parallel`
    /// splits a per-stage section by the outline's stages).
    pub fn part_prompt(
        &self,
        inputs: &Inputs,
        idx: usize,
        problems: &[String],
        outline: Option<&str>,
        part: Option<&str>,
    ) -> Result<String> {
        let mut ctx = self.context(inputs);
        ctx.insert("section", &self.section_ctx(idx, problems.to_vec()));
        ctx.insert("outline", outline.unwrap_or(""));
        ctx.insert("part", part.unwrap_or(""));
        self.render("section", &ctx)
    }

    /// The user message that asks for the outline of facts every section shares.
    pub fn outline_prompt(&self, inputs: &Inputs) -> Result<String> {
        self.render("outline", &self.context(inputs))
    }

    /// The message that asks a judge model to score `plan`; the plan is a value too.
    pub fn judge_prompt(&self, inputs: &Inputs, plan: &str) -> Result<String> {
        let mut ctx = self.context(inputs);
        ctx.insert("plan", plan);
        self.render("judge", &ctx)
    }

    /// The user message that asks to rewrite `sections` following a reviewer's `note`;
    /// the note is a value, so `{{ }}` in it reaches the model as typed.
    pub fn revise_prompt(&self, inputs: &Inputs, sections: &[usize], note: &str) -> Result<String> {
        let mut ctx = self.context(inputs);
        let s: Vec<SectionCtx> = sections.iter().map(|&i| self.section_ctx(i, Vec::new())).collect();
        ctx.insert("sections", &s);
        ctx.insert("note", note);
        self.render("revise", &ctx)
    }

    fn section_ctx(&self, idx: usize, problems: Vec<String>) -> SectionCtx<'_> {
        let s = &self.spec.sections[idx];
        SectionCtx {
            id: &s.id,
            number: idx + 1,
            title: &s.title,
            heading: self.spec.heading(idx),
            guidance: s.guidance.as_deref(),
            problems,
        }
    }

    fn context(&self, inputs: &Inputs) -> tera::Context {
        let mut ctx = tera::Context::new();
        // Values, not template source: tera never interprets them.
        ctx.insert(self.spec.inputs.summary.clone(), &inputs.summary);
        ctx.insert(self.spec.inputs.stages.clone(), &inputs.stages);
        ctx.insert("context", &inputs.context);
        let generic = serde_json::json!({"summary": inputs.summary, "stages": inputs.stages});
        ctx.insert("inputs", &generic);
        let sections: Vec<SectionCtx> = (0..self.spec.sections.len())
            .map(|i| self.section_ctx(i, Vec::new()))
            .collect();
        ctx.insert("sections", &sections);
        ctx
    }

    fn render(&self, name: &str, ctx: &tera::Context) -> Result<String> {
        self.tera.render(name, ctx).map_err(|e| {
            Error::input(
                format!("{} ({name} prompt)", self.origin),
                None,
                format!("cannot render: {}", tera_msg(&e)),
            )
        })
    }
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("origin", &self.origin)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

fn parse_spec(path: &Path, text: &str) -> Result<Spec> {
    let spec: Spec = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| util::line_of(text, s.start));
        Error::input(path, line, e.message().to_string())
    })?;
    spec.validate().map_err(|m| Error::input(path, None, m))?;
    Ok(spec)
}

/// Tera's message with its causes, which carry the line and column.
fn tera_msg(e: &tera::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(summary: &str, stages: &str) -> Inputs {
        Inputs::new(summary.into(), stages.into())
    }

    #[test]
    fn builtin_has_ten_sections_named_in_the_prompt() {
        let t = Template::builtin();
        assert_eq!(t.spec.sections.len(), 10);
        let msgs = t.messages(&inputs("s", "t")).unwrap();
        assert_eq!(msgs[0].role, crate::client::Role::System);
        for (i, s) in t.spec.sections.iter().enumerate() {
            // The system prompt (from the seed) and the user message both name every section.
            assert!(
                msgs[0].content.contains(&format!("### {}. {}", i + 1, s.title)),
                "{}",
                s.title
            );
            assert!(msgs[1].content.contains(&format!("## {}. {}", i + 1, s.title)));
        }
    }

    #[test]
    fn user_text_with_template_syntax_is_verbatim() {
        let t = Template::builtin();
        let hostile =
            "{{ 7*7 }} {% if true %}x{% endif %} {# c #} {{ stages_with_risk }} {{ migration_summary }} <b>&</b>";
        let msgs = t.messages(&inputs(hostile, hostile)).unwrap();
        assert_eq!(msgs[1].content.matches(hostile).count(), 2);
        assert!(!msgs[1].content.contains("49"));
        let fill = t.section_prompt(&inputs(hostile, "s"), 2, &[], Some(hostile)).unwrap();
        assert!(fill.contains(hostile));
    }

    #[test]
    fn repair_prompt_names_exact_headings() {
        let t = Template::builtin();
        let p = t.repair_prompt(&inputs("s", "t"), &[3, 6], &[]).unwrap();
        assert!(p.contains("## 4. Specific rollback procedures by component"));
        assert!(p.contains("## 7. Post-rollback checklist"));
        assert!(!p.contains("## 1. Rollback philosophy"));
        let r = t
            .repair_prompt(&inputs("s", "t"), &[], &[(2, vec!["cover stage X".into()])])
            .unwrap();
        assert!(r.contains("Rewrite") && r.contains("- cover stage X"));
    }

    #[test]
    fn hash_changes_with_content() {
        let a = Template::builtin();
        assert_eq!(a.hash, Template::builtin().hash);
        let dir = tempfile::tempdir().unwrap();
        for (n, c) in BUILTIN {
            std::fs::write(dir.path().join(n), c).unwrap();
        }
        let same = Template::load(dir.path()).unwrap();
        assert_eq!(same.hash, a.hash);
        std::fs::write(
            dir.path().join("user.md"),
            "{{ migration_summary }} {{ stages_with_risk }} changed",
        )
        .unwrap();
        assert_ne!(Template::load(dir.path()).unwrap().hash, a.hash);
    }

    #[test]
    fn bad_spec_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("template.toml");
        std::fs::write(&p, "name = \"x\"\n[files]\nuser = \"u.md\"\nbogus = 1\n").unwrap();
        let e = Template::load(&p).unwrap_err().to_string();
        assert!(e.contains("template.toml:4"), "{e}");
    }

    #[test]
    fn broken_prompt_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("template.toml"),
            "name = \"x\"\n[files]\nuser = \"u.md\"\n[inputs]\nsummary = \"a\"\nstages = \"b\"\n[[sections]]\nid = \"one\"\ntitle = \"One\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("u.md"), "{{ a }} {% if %}").unwrap();
        let e = Template::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("u.md"), "{e}");
        // A valid second template needs no code: its own sections and variables.
        std::fs::write(dir.path().join("u.md"), "Service {{ a }}, risks {{ b }}").unwrap();
        let t = Template::load(dir.path()).unwrap();
        assert_eq!(t.spec.sections[0].title, "One");
        let m = t.messages(&inputs("S", "R")).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].content, "Service S, risks R");
    }
}
