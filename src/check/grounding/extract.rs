//! Extracting the concrete names a context file holds: SQL tables and columns, Terraform
//! resources and modules, Kubernetes workloads, hosts, shell commands and code literals.

use super::{Kind, Name, phrase};

/// Words that name nothing in particular: generic schema, infrastructure and prose words.
const GENERIC: &str = "name names user users data value values status type types email time date created updated \
    deleted created_at updated_at deleted_at count table tables column index default test tests temp \
    main application server service services config settings database backup prod production staging \
    primary replica master public item items logs event events metrics info description title body \
    text content version state kind label labels metadata spec role roles group groups account \
    accounts admin root system namespace secret secrets token password host port path file files \
    jobs task tasks queue cache session sessions message messages record records entry result \
    results object objects node nodes pods cluster true false null none localhost example this that \
    with from then your here there when what will have into each more only also note step steps \
    stage phase before after start stop check first next last must should upgrade rollback migration \
    release deploy deployment change changes run running new old show create drop alter delete \
    insert select update image active continue";

/// Programs that say nothing about a system: shell builtins and text tools.
const PLAIN_PROGRAMS: &str = "cd ls echo cat grep egrep export set unset source sleep for while do done if then else elif fi \
    case esac mkdir rm cp mv chmod chown touch tail head less more vi vim nano exit true false \
    printf read wait time env bash sh zsh jq yq awk sed xargs tee sort uniq wc cut date ssh scp curl \
    wget open clear history which pwd alias function return local declare eval test kill ps top find \
    tr yes base64 git make diff ln tar unzip gzip man brew apt apt-get yum pip npm go cargo python \
    python3";

/// Words put before a command that are not it.
const PREFIXES: &[&str] = &[
    "sudo", "watch", "time", "nohup", "exec", "env", "command", "$", ">", "%",
];

/// `w` is one of the words of `list`.
fn listed(list: &str, w: &str) -> bool {
    list.split_whitespace().any(|l| l == w)
}

pub(super) fn generic(w: &str) -> bool {
    w.chars().count() < 4 || listed(GENERIC, w) || w.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// A name of `kind`; a qualified one (`a.b`) is looked for as written and by its last part.
pub(super) fn name(kind: Kind, text: &str) -> Option<Name> {
    let key = text
        .trim_matches(|c: char| "\"'`[]();,".contains(c))
        .replace(['"', '`', '[', ']'], "")
        .to_lowercase();
    let key = key.split_whitespace().collect::<Vec<_>>().join(" ");
    if key.is_empty() || key.contains("{{") || key.contains('$') || key.contains('<') {
        return None;
    }
    let short = key
        .rsplit_once('.')
        .map(|(_, s)| s.to_string())
        .filter(|s| !generic(s) && kind != Kind::Host);
    // A column named by one plain word ("placed", "quantity") is English as often as a name.
    if generic(&key) || (kind == Kind::Column && key.chars().all(char::is_alphabetic)) {
        return None;
    }
    Some(Name { kind, key, short })
}

/// The names in one file, by what its extension says it is; Markdown by its code blocks.
pub(super) fn extract(path: &str, text: &str) -> Vec<Name> {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e).to_ascii_lowercase();
    let mut out = match ext.as_str() {
        "sql" => sql(text),
        "tf" | "hcl" | "tfvars" => hcl(text),
        "yaml" | "yml" => manifests(text),
        "sh" | "bash" => commands(text),
        "md" | "markdown" | "txt" | "" => markdown_names(text),
        _ => Vec::new(),
    };
    out.extend(hosts(text));
    let mut seen = Vec::new();
    out.retain(|n| {
        let new = !seen.contains(&n.key);
        seen.push(n.key.clone());
        new
    });
    out
}

/// Names in a Markdown text: each fenced block by its language, and code spans.
fn markdown_names(text: &str) -> Vec<Name> {
    let mut out = Vec::new();
    let mut fence: Option<(String, String, String)> = None; // (marker, lang, body)
    let mut prose = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        match &mut fence {
            Some((marker, lang, body)) => {
                if t.starts_with(marker.as_str())
                    && t.trim_start_matches(marker.chars().next().unwrap_or('`'))
                        .trim()
                        .is_empty()
                {
                    out.extend(by_lang(lang, body));
                    fence = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
            None if t.starts_with("```") || t.starts_with("~~~") => {
                let c = t.chars().next().unwrap_or('`');
                let marker: String = t.chars().take_while(|&x| x == c).collect();
                let lang = t[marker.len()..]
                    .trim()
                    .split([' ', '{', ','])
                    .next()
                    .unwrap_or("")
                    .to_lowercase();
                fence = Some((marker, lang, String::new()));
            }
            None => {
                prose.push_str(line);
                prose.push('\n');
            }
        }
    }
    if let Some((_, lang, body)) = fence {
        out.extend(by_lang(&lang, &body));
    }
    out.extend(code_spans(&prose));
    out
}

fn by_lang(lang: &str, body: &str) -> Vec<Name> {
    match lang {
        "sql" | "psql" | "mysql" | "postgresql" | "pgsql" => sql(body),
        "hcl" | "terraform" | "tf" => hcl(body),
        "yaml" | "yml" => manifests(body),
        "" | "sh" | "bash" | "shell" | "console" | "zsh" | "text" | "shell-session" | "sh-session" => commands(body),
        _ => Vec::new(),
    }
}

/// Code spans that look like identifiers: `orders_db`, `vtctldclient`, `kube-system`. A
/// plain word (`update`) the prose also uses as a word is English, not a name.
fn code_spans(prose: &str) -> Vec<Name> {
    let outside: Vec<&str> = prose.split('`').step_by(2).collect();
    let words = format!(" {} ", phrase(&outside.join(" ")));
    let mut out = Vec::new();
    let mut parts = prose.split('`');
    parts.next();
    while let (Some(code), _) = (parts.next(), parts.next()) {
        let c = code.trim();
        if c.chars().all(char::is_alphabetic) && words.contains(&format!(" {} ", c.to_lowercase())) {
            continue;
        }
        let ident = c.chars().all(|x| x.is_alphanumeric() || "_.-/:".contains(x));
        let versionish = c.starts_with(|x: char| x.is_ascii_digit())
            || (c.starts_with('v') && c[1..].starts_with(|x: char| x.is_ascii_digit()));
        if ident && !versionish && !c.starts_with('-') && !c.starts_with('/') {
            out.extend(name(Kind::Literal, c));
        }
    }
    out
}

/// SQL: tables of CREATE/ALTER/DROP TABLE, INSERT INTO, UPDATE, FROM, JOIN, REFERENCES,
/// CREATE INDEX … ON; columns of ADD/DROP/ALTER/RENAME COLUMN and of CREATE TABLE bodies.
pub(super) fn sql(text: &str) -> Vec<Name> {
    let t = sql_tokens(text);
    let up = |i: usize| t.get(i).map(|s| s.to_ascii_uppercase()).unwrap_or_default();
    let mut out = Vec::new();
    // Skips IF [NOT] EXISTS and ONLY from `i`; the next identifier, if it is one.
    let ident_at = |mut i: usize| -> Option<(usize, &String)> {
        while matches!(up(i).as_str(), "IF" | "NOT" | "EXISTS" | "ONLY" | "COLUMN") {
            i += 1;
        }
        t.get(i).filter(|s| is_ident(s)).map(|s| (i, s))
    };
    for i in 0..t.len() {
        let prev = if i > 0 { up(i - 1) } else { String::new() };
        match up(i).as_str() {
            "TABLE"
                if matches!(
                    prev.as_str(),
                    "CREATE" | "ALTER" | "DROP" | "TRUNCATE" | "TEMP" | "TEMPORARY" | "UNLOGGED"
                ) =>
            {
                if let Some((j, n)) = ident_at(i + 1) {
                    out.extend(name(Kind::Table, n));
                    if t.get(j + 1).is_some_and(|s| s == "(") {
                        out.extend(columns(&t, j + 2));
                    }
                }
            }
            "INTO" | "UPDATE" | "FROM" | "JOIN" | "REFERENCES" => {
                if let Some((_, n)) = ident_at(i + 1) {
                    out.extend(name(Kind::Table, n));
                }
            }
            "ON" if t[..i].iter().rev().take(4).any(|s| s.eq_ignore_ascii_case("INDEX")) => {
                out.extend(ident_at(i + 1).and_then(|(_, n)| name(Kind::Table, n)));
            }
            "ADD" | "DROP" | "ALTER" if up(i + 1) == "COLUMN" || (up(i) == "ADD" && !is_constraint(&up(i + 1))) => {
                out.extend(ident_at(i + 1).and_then(|(_, n)| name(Kind::Column, n)));
            }
            "RENAME" => {
                if up(i + 1) == "TO" {
                    out.extend(ident_at(i + 2).and_then(|(_, n)| name(Kind::Table, n)));
                } else if let Some((j, a)) = ident_at(i + 1) {
                    out.extend(name(Kind::Column, a));
                    if up(j + 1) == "TO" {
                        out.extend(ident_at(j + 2).and_then(|(_, n)| name(Kind::Column, n)));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn is_constraint(w: &str) -> bool {
    matches!(
        w,
        "CONSTRAINT" | "INDEX" | "PRIMARY" | "FOREIGN" | "UNIQUE" | "KEY" | "CHECK" | "TABLE" | "PARTITION"
    )
}

/// The first identifier of each top-level item of a CREATE TABLE body starting at `i`.
fn columns(t: &[String], mut i: usize) -> Vec<Name> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut at_start = true;
    while let Some(tok) = t.get(i) {
        match tok.as_str() {
            "(" => depth += 1,
            ")" if depth == 0 => break,
            ")" => depth -= 1,
            "," if depth == 0 => {
                at_start = true;
                i += 1;
                continue;
            }
            s if at_start && depth == 0 && is_ident(s) && !is_constraint(&s.to_ascii_uppercase()) => {
                out.extend(name(Kind::Column, s));
            }
            _ => {}
        }
        at_start = false;
        i += 1;
    }
    out
}

/// SQL words that are never names.
fn is_keyword(w: &str) -> bool {
    const KW: &[&str] = &[
        "SELECT", "WHERE", "SET", "VALUES", "AND", "OR", "NOT", "NULL", "AS", "ON", "IN", "IS", "TABLE", "INDEX",
        "LATERAL", "DUAL", "INTO", "FROM", "JOIN", "WITH", "COLUMN", "TO", "BY", "ORDER", "GROUP", "LIMIT",
    ];
    KW.contains(&w.to_ascii_uppercase().as_str())
}

fn is_ident(s: &str) -> bool {
    s.starts_with(|c: char| c.is_alphabetic() || "_\"`[".contains(c)) && !is_keyword(s)
}

/// Identifiers (with dots and quotes), `(`, `)` and `,`; strings and comments dropped.
fn sql_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                flush(&mut cur, &mut out);
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '\'' => {
                flush(&mut cur, &mut out);
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                }
            }
            '(' | ')' | ',' => {
                flush(&mut cur, &mut out);
                out.push(c.to_string());
            }
            c if c.is_alphanumeric() || "_.\"`[]$".contains(c) => cur.push(c),
            _ => flush(&mut cur, &mut out),
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// Terraform/HCL: `resource "type" "name"` and `data "type" "name"` (as `type.name`, and
/// `name`), `module "name"`.
pub(super) fn hcl(text: &str) -> Vec<Name> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let head = words.next().unwrap_or("");
        let quoted: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
        match (head, quoted.as_slice()) {
            ("resource" | "data", [ty, n, ..]) => {
                out.extend(name(Kind::Resource, &format!("{ty}.{n}")));
            }
            ("module", [n, ..]) => out.extend(name(Kind::Resource, n)),
            _ => {}
        }
    }
    out
}

/// Kubernetes/Helm manifests: each document's `kind` and `metadata.name`.
pub(super) fn manifests(text: &str) -> Vec<Name> {
    let mut out = Vec::new();
    for doc in text.split("\n---") {
        let lines: Vec<&str> = doc.lines().collect();
        let kind = lines.iter().find_map(|l| l.strip_prefix("kind:")).map(str::trim);
        let Some(m) = lines.iter().position(|l| l.trim_end() == "metadata:") else {
            continue;
        };
        let child = lines[m + 1..]
            .iter()
            .take_while(|l| l.is_empty() || l.starts_with([' ', '\t']))
            .find_map(|l| l.trim_start().strip_prefix("name:"));
        if let (Some(_), Some(n)) = (kind, child) {
            out.extend(name(Kind::Workload, n.trim()));
        }
    }
    out
}

/// Commands in a shell block: the program and its first subcommand (`kubectl rollout`,
/// `terraform apply`), or the program alone (`pg_dump`); comments and plain tools skipped.
pub(super) fn commands(text: &str) -> Vec<Name> {
    let joined = text.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with("//") {
            continue;
        }
        for seg in line.split(['|', ';', '&']) {
            out.extend(command(seg));
        }
    }
    out
}

fn command(seg: &str) -> Option<Name> {
    let mut toks = seg
        .split_whitespace()
        .skip_while(|t| PREFIXES.contains(t) || (t.contains('=') && !t.starts_with('-')));
    let prog = toks.next()?.rsplit('/').next()?;
    let plain = |t: &str| {
        t.len() >= 2
            && t.starts_with(|c: char| c.is_ascii_lowercase())
            && t.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c))
    };
    if !plain(prog) || listed(PLAIN_PROGRAMS, prog) {
        return None;
    }
    let text = match toks.next().filter(|t| plain(t)) {
        Some(sub) => format!("{prog} {sub}"),
        None => prog.to_string(),
    };
    let n = name(Kind::Command, &text)?;
    (!n.key.contains('.')).then_some(Name { short: None, ..n })
}

/// Host names: `db.internal`, `orders-db.prod.example.com`, `etcd-1:2379`; not URLs'.
pub(super) fn hosts(text: &str) -> Vec<Name> {
    const TLDS: &str = "com net org io dev app cloud internal local lan corp uk gov edu us eu de fr nl ca au in jp info \
    biz co ai svc";
    const PUBLIC: &[&str] = &[
        "github.com",
        "gitlab.com",
        "google.com",
        "kubernetes.io",
        "k8s.io",
        "www.",
        "docs.",
    ];
    let mut out = Vec::new();
    for tok in text.split(|c: char| c.is_whitespace() || "()[]<>\"'`,;|=".contains(c)) {
        if tok.contains("://") {
            continue;
        }
        let tok = tok.rsplit('@').next().unwrap_or(tok);
        let tok = tok.split('/').next().unwrap_or("").trim_end_matches(['.', ':']);
        let (host, port) = match tok.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => (h, true),
            Some(_) => continue,
            None => (tok, false),
        };
        let labels: Vec<&str> = host.split('.').collect();
        let label_ok = |l: &str| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if host.is_empty()
            || !labels.iter().all(|l| label_ok(l))
            || !host.starts_with(|c: char| c.is_ascii_alphanumeric())
        {
            continue;
        }
        let last = labels[labels.len() - 1].to_ascii_lowercase();
        let ipv4 = labels.len() == 4 && labels.iter().all(|l| l.parse::<u8>().is_ok());
        let dotted = labels.len() >= 2 && listed(TLDS, &last);
        let named = host.chars().any(|c| c.is_ascii_alphabetic()) && host.len() >= 4 && host != "localhost";
        let keep = dotted || (port && (ipv4 || named));
        let lower = host.to_ascii_lowercase();
        if keep
            && !PUBLIC
                .iter()
                .any(|p| lower == *p || lower.ends_with(&format!(".{p}")) || (p.ends_with('.') && lower.starts_with(p)))
        {
            out.extend(name(Kind::Host, tok));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &[Name]) -> Vec<&str> {
        v.iter().map(|n| n.key.as_str()).collect()
    }

    #[test]
    fn sql_tables_and_columns() {
        let src = "-- FROM comments_are_skipped\nCREATE TABLE IF NOT EXISTS billing.invoices (\n  invoice_id bigint PRIMARY KEY,\n  amount_cents numeric(10, 2),\n  CONSTRAINT fk FOREIGN KEY (customer_ref) REFERENCES customers(id)\n);\nALTER TABLE orders ADD COLUMN region_code text;\nALTER TABLE orders RENAME COLUMN ship_to TO shipping_address;\nALTER TABLE legacy_orders RENAME TO orders_archive;\nINSERT INTO audit_log VALUES ('FROM nowhere');\nUPDATE ONLY orders SET x = 1;\nSELECT * FROM \"Shipments\" s JOIN carriers c ON s.c = c.id;\nCREATE INDEX idx_region ON orders (region_code);\nALTER TABLE orders DROP COLUMN legacy_flag, ADD CONSTRAINT u UNIQUE (id);\n";
        let got = sql(src);
        let k = keys(&got);
        for want in [
            "billing.invoices",
            "invoice_id",
            "amount_cents",
            "customers",
            "orders",
            "region_code",
            "ship_to",
            "shipping_address",
            "legacy_orders",
            "orders_archive",
            "audit_log",
            "shipments",
            "carriers",
            "legacy_flag",
        ] {
            assert!(k.contains(&want), "{want} not in {k:?}");
        }
        for not in [
            "comments_are_skipped",
            "nowhere",
            "constraint",
            "fk",
            "id",
            "primary",
            "promo",
        ] {
            assert!(!k.contains(&not), "{not} in {k:?}");
        }
        // schema.table is looked for by its table too.
        let inv = got.iter().find(|n| n.key == "billing.invoices").unwrap();
        assert_eq!(inv.short.as_deref(), Some("invoices"));
        assert_eq!(inv.kind, Kind::Table);
    }

    #[test]
    fn terraform_resources_and_modules() {
        let tf = "resource \"aws_db_instance\" \"orders_primary\" {\n  engine = \"postgres\"\n}\ndata \"aws_vpc\" \"main\" {}\nmodule \"checkout_queue\" {\n  source = \"./q\"\n}\n";
        let got = hcl(tf);
        assert_eq!(
            keys(&got),
            ["aws_db_instance.orders_primary", "aws_vpc.main", "checkout_queue"]
        );
        assert_eq!(got[0].short.as_deref(), Some("orders_primary"));
        assert_eq!(got[1].short, None, "\"main\" is generic");
    }

    #[test]
    fn kubernetes_workloads() {
        let y = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: orders-api\n  labels:\n    name: not-this\nspec:\n  template:\n    metadata:\n      name: nor-this\n---\nkind: CronJob\nmetadata:\n  namespace: shop\n  name: \"invoice-export\"\n---\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}-web\n";
        assert_eq!(keys(&manifests(y)), ["orders-api", "invoice-export"]);
    }

    #[test]
    fn hosts_with_ports_and_domains_not_urls_or_files() {
        let t = "Connect to orders-db.prod.internal:5432 or replica.shop.internal, etcd-1:2379, 10.0.3.7:6379.\nSee https://wiki.shop.com/x and github.com/acme. Edit values.yaml, README.md, v1.2.3, e.g. this, 10.0.0.1, localhost:8080.";
        let k: Vec<String> = hosts(t).into_iter().map(|n| n.key).collect();
        assert_eq!(
            k,
            [
                "orders-db.prod.internal:5432",
                "replica.shop.internal",
                "etcd-1:2379",
                "10.0.3.7:6379"
            ]
        );
    }

    #[test]
    fn commands_in_shell_blocks() {
        let sh = "# kubectl comment is skipped\n$ sudo kubectl rollout undo deployment/orders-api -n shop\nPGPASSWORD=x pg_dump -Fc orders > o.dump\nterraform apply \\\n  -target=module.q\necho done && cd /tmp | grep x\n/usr/local/bin/etcdctl --endpoints=a snapshot save s.db\nhelm upgrade shop ./chart\n";
        assert_eq!(
            keys(&commands(sh)),
            [
                "kubectl rollout",
                "pg_dump",
                "terraform apply",
                "etcdctl",
                "helm upgrade"
            ]
        );
    }

    #[test]
    fn markdown_by_fence_language_and_code_spans() {
        let md = "Run `vtctldclient` against `commerce_keyspace`, not `v3.5`, `-f` or `switch` (switch it).\n\n```sql\nALTER TABLE corder ADD COLUMN promo_code text;\n```\n\n```yaml\nkind: StatefulSet\nmetadata:\n  name: vttablet-zone1\n```\n\n```bash\nvtctldclient MoveTables --workflow x\n```\n\n```python\nimport os\n```\n";
        let k: Vec<String> = extract("ops/notes.md", md).into_iter().map(|n| n.key).collect();
        assert_eq!(
            k,
            [
                "corder",
                "promo_code",
                "vttablet-zone1",
                "vtctldclient",
                "commerce_keyspace"
            ]
        );
    }
}
