//! `rbplan init`: a commented `rbplan.toml` (every key at its default, commented out) and
//! an example batch input with two services. An existing file is never overwritten.

use std::path::Path;

use crate::cli::InitArgs;
use crate::config::files::PROJECT_FILE;
use crate::config::keys::{KEYS, TABLES};
use crate::error::{Error, Outcome, Result};
use crate::term::Ui;

pub const EXAMPLE_INPUT: &str = "services.example.yaml";

pub fn run(args: InitArgs, ui: Ui) -> Result<Outcome> {
    let config = args.dir.join(PROJECT_FILE);
    let example = args.dir.join(EXAMPLE_INPUT);
    for p in [&config, &example] {
        if p.exists() {
            return Err(Error::input(
                p,
                None,
                "already exists; rbplan init does not overwrite it",
            ));
        }
    }
    write(&config, &commented_config())?;
    write(&example, EXAMPLE)?;
    ui.note(format!(
        "wrote {} and {}; uncomment what your team shares, commit it, and try: rbplan batch {} --out-dir plans/ --dry-run",
        config.display(),
        example.display(),
        EXAMPLE_INPUT
    ));
    Ok(Outcome::Complete)
}

fn write(path: &Path, text: &str) -> Result<()> {
    crate::output::write_atomic(path, text.as_bytes()).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Every key at its default, commented out, under its table; then a profile example.
pub fn commented_config() -> String {
    let mut out = String::from(
        "# rbplan settings shared by this repository (found from any folder below it).\n\
# Precedence: flag > environment > .env > this file > the user file > default.\n\
# `rbplan config` shows each setting's value and where it came from.\n\
# Never put the API key here: set OPENAI_API_KEY (or name another variable with api_key_env).\n\n",
    );
    for table in std::iter::once("").chain(TABLES) {
        if !table.is_empty() {
            out.push_str(&format!("\n# [{table}]\n"));
        }
        for k in KEYS.iter().filter(|k| k.table == table) {
            let line = match k.default {
                Some(d) => format!("# {} = {d}", k.name),
                None => format!("# {} =", k.name),
            };
            let note = if k.default.is_none() { " (unset by default)" } else { "" };
            out.push_str(&format!("{line:<48} # {}{note}\n", k.help));
        }
    }
    out.push_str(
        "\n# Profiles: rbplan --profile local ... (or RBPLAN_PROFILE=local) uses a table over the above.\n\
# [profile.local]\n\
# base_url = \"http://127.0.0.1:8080/v1\"\n\
# model = \"local-model\"\n\
#\n\
# [profile.azure]\n\
# provider = \"azure\"\n\
# base_url = \"https://RESOURCE.openai.azure.com\"\n\
# api_version = \"2024-10-21\"\n\
# model = \"DEPLOYMENT\"\n\
# api_key_env = \"AZURE_OPENAI_API_KEY\"\n",
    );
    out
}

const EXAMPLE: &str = "# Example input for `rbplan batch`: one item per service.\n\
- name: orders-db\n  \
summary: Move the orders database from MySQL 5.7 to PostgreSQL 16 with a dual-write period.\n  \
stages:\n    - Enable dual writes\n    - Backfill historical orders\n    - Switch reads to PostgreSQL\n    - Stop writes to MySQL\n\
- name: billing-queue\n  \
summary: Replace the billing service's RabbitMQ queue with Kafka topics, consumers first.\n  \
stages:\n    - Deploy Kafka consumers\n    - Mirror messages to Kafka\n    - Cut producers over to Kafka\n    - Drain and delete the RabbitMQ queue\n";

#[cfg(test)]
mod tests {
    #[test]
    fn every_key_uncommented_parses() {
        // Uncomment each table and each key that has a default, up to the profiles.
        let mut doc = String::new();
        for l in super::commented_config().lines() {
            let l = l.trim_start_matches("# ").split("  #").next().unwrap().trim_end();
            if l.starts_with("[profile") {
                break;
            }
            if l.starts_with('[') || (l.contains(" = ") && !l.ends_with('=')) {
                doc.push_str(l);
                doc.push('\n');
            }
        }
        let t: toml::Table = toml::from_str(&doc).unwrap_or_else(|e| panic!("{e}\n{doc}"));
        assert_eq!(t["check"]["format"].as_str(), Some("text"));
        assert_eq!(t["batch"]["concurrency"].as_integer(), Some(4));
        assert_eq!(t["model"].as_str(), Some("gpt-4o-mini"));
    }
}
