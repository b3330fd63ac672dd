//! Placeholder until stage derivation lands.

#[derive(Debug, Clone)]
pub struct Runbook {
    pub title: Option<String>,
    pub summary: Option<String>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub line: usize,
    pub text: String,
}

pub fn derive(text: &str) -> Result<Runbook, String> {
    let steps: Vec<Step> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("## "))
        .map(|(i, l)| Step {
            name: l[3..].trim().to_string(),
            line: i + 1,
            text: l.to_string(),
        })
        .collect();
    if steps.is_empty() {
        return Err("no procedure found".into());
    }
    Ok(Runbook {
        title: None,
        summary: None,
        steps,
    })
}
