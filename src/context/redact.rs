//! Credentials in context files, found and replaced by `[REDACTED:<kind>]` before anything
//! is sent. Each kind reports its line, never its value.
//!
//! The rules are modelled on gitleaks' maintained rule set (`config/gitleaks.toml`, MIT,
//! at commit b58d3f102cf3a2c84cb7f923d05c25c9b1aed84b), rewritten for Rust's `regex`
//! crate (linear time); the rule ids each kind follows are on its variant. Values that
//! only refer to a credential are left alone (see `placeholder`).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretKind {
    /// A PEM private key, the whole block (`private-key`).
    PrivateKey,
    /// A GCP service-account key file's `"private_key"` value (`gcp-service-account`,
    /// `private-key`).
    GcpServiceAccountKey,
    /// An AWS access key id, AKIA/ASIA/ABIA/ACCA (`aws-access-token`).
    AwsAccessKeyId,
    /// An `aws_secret_access_key` assignment (`generic-api-key`'s assignment shape).
    AwsSecretKey,
    /// `AccountKey=` in an Azure storage connection string (`generic-api-key`'s shape).
    AzureStorageKey,
    /// `sk-`, `sk-proj-`, `sk-svcacct-`, `sk-admin-` (`openai-api-key`, loosened: no
    /// `T3BlbkFJ` marker is required).
    OpenAiKey,
    /// `sk-ant-api03-`, `sk-ant-admin01-` (`anthropic-api-key`, `anthropic-admin-api-key`).
    AnthropicKey,
    /// `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_` (`github-pat`, `github-oauth`,
    /// `github-app-token`, `github-refresh-token`, `github-fine-grained-pat`).
    GitHubToken,
    /// `glpat-` (`gitlab-pat`, `gitlab-pat-routable`).
    GitLabToken,
    /// `xoxb-`, `xoxp-`, `xoxa-`, ..., `xapp-` (`slack-bot-token`, `slack-user-token`,
    /// `slack-legacy-*`, `slack-app-token`).
    SlackToken,
    /// `sk_live_`, `rk_live_`, `sk_test_`, ... (`stripe-access-token`).
    StripeKey,
    /// `AIza` (`gcp-api-key`).
    GoogleApiKey,
    /// The password in `scheme://user:password@host` (`curl-auth-user`'s allowlist for
    /// placeholders; the URL shape is this crate's own).
    UrlPassword,
    /// `;Password=...` or `&password=...` in an ADO.NET, ODBC or JDBC connection string.
    ConnectionPassword,
    /// `password=`, `password:`, `"password": "..."`, `DB_PASSWORD=...`
    /// (`generic-api-key`, `hashicorp-tf-password`).
    Password,
    /// `secret:`, `client_secret=` (`generic-api-key`).
    Secret,
    /// `token:`, `auth_token=`, `api_key=` (`generic-api-key`).
    Token,
    /// A JSON Web Token, `eyJ...eyJ...` (`jwt`).
    Jwt,
}

impl SecretKind {
    pub(crate) fn name(self) -> &'static str {
        use SecretKind::*;
        match self {
            PrivateKey => "private-key",
            GcpServiceAccountKey => "gcp-service-account-key",
            AwsAccessKeyId => "aws-access-key-id",
            AwsSecretKey => "aws-secret-access-key",
            AzureStorageKey => "azure-storage-key",
            OpenAiKey => "openai-api-key",
            AnthropicKey => "anthropic-api-key",
            GitHubToken => "github-token",
            GitLabToken => "gitlab-token",
            SlackToken => "slack-token",
            StripeKey => "stripe-key",
            GoogleApiKey => "google-api-key",
            UrlPassword => "url-password",
            ConnectionPassword => "connection-string-password",
            Password => "password",
            Secret => "secret",
            Token => "token",
            Jwt => "jwt",
        }
    }
}

/// One credential replaced: the 1-based line where it starts, and its kind.
pub(crate) struct Found {
    pub line: usize,
    pub kind: SecretKind,
}

/// How a rule's match is checked: the value (capture group 1, or the whole match) is
/// redacted unless it is a placeholder; assignments also check the key's tail.
#[derive(Clone, Copy, PartialEq)]
enum Check {
    /// A token with its own shape: redacted as found, unless it ends in EXAMPLE.
    Shape,
    /// A value given to a name: not redacted when it is a placeholder or a reference.
    Value,
    /// `name = value` where the name (group 2) must not be e.g. `password_hash`.
    Assignment,
}

struct Rule {
    kind: SecretKind,
    re: Regex,
    check: Check,
}

/// A value in an assignment: "quoted", 'quoted', `ticked`, or bare up to a space or a
/// separator. Group 1 of the rule is the value: the alternatives are inside it.
const VALUE: &str = r#"(?:"([^"\n]*)"|'([^'\n]*)'|`([^`\n]*)`|([^\s"'`,;<>]+))"#;

/// Between a name and its value: `=`, `:`, `:=`, `=>`, with spaces and a closing quote.
const ASSIGN: &str = r#"["']?[ \t]*(?::=|=>|=|:)[ \t]*"#;

/// Key names that name something other than the secret itself (`password_hash`,
/// `secret_name`, `token_url`): the part after the keyword, separators removed.
const NOT_SECRET_TAILS: &[&str] = &[
    "hash", "digest", "salt", "file", "path", "dir", "name", "ref", "keyref", "arn", "id", "length", "len", "size",
    "policy", "url", "uri", "endpoint", "env", "var", "type", "expir", "ttl", "rotat", "manager", "store", "provider",
    "version", "count", "field", "column", "mode", "enabled", "required", "min", "max", "source", "from", "location",
    "template", "reset", "prompt", "limit", "less", "header", "param",
];

fn rules() -> &'static [Rule] {
    static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
        use Check::*;
        use SecretKind::*;
        let r = |kind, check, pattern: &str| Rule {
            kind,
            re: Regex::new(pattern).expect("a valid credential rule"),
            check,
        };
        let name = |words: &str| {
            format!(r"(?i)(?-u:\b)([A-Za-z0-9_.-]{{0,40}}?(?:{words})([A-Za-z0-9_.-]{{0,30}})){ASSIGN}{VALUE}")
        };
        let pem = r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----";
        vec![
            r(
                GcpServiceAccountKey,
                Value,
                r#""private_key"\s*:\s*"(-----BEGIN[^"]*)""#,
            ),
            r(
                PrivateKey,
                Shape,
                &format!(r"(?s){pem}.*?-----END[ A-Z0-9_-]{{0,100}}PRIVATE KEY(?: BLOCK)?-----"),
            ),
            // A block cut off before its END line: to the next blank line.
            r(PrivateKey, Shape, &format!(r"(?s){pem}.*?(?:\n[ \t]*\n|\z)")),
            r(
                AnthropicKey,
                Shape,
                r"(?-u:\b)sk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_-]{32,}",
            ),
            r(
                OpenAiKey,
                Shape,
                r"(?-u:\b)sk-(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_-]{32,}",
            ),
            r(
                GitHubToken,
                Shape,
                r"(?-u:\b)(?:(?:ghp|gho|ghu|ghs|ghr)_[0-9A-Za-z]{36}|github_pat_[0-9A-Za-z_]{82})(?-u:\b)",
            ),
            r(GitLabToken, Shape, r"(?-u:\b)glpat-[0-9A-Za-z_-]{20,}"),
            r(
                SlackToken,
                Shape,
                r"(?-u:\b)(?:xox[abeoprs]-(?:[0-9]+-)?[0-9A-Za-z-]{10,}|(?i:xapp)-[0-9]-[A-Za-z0-9]+-[0-9]+-[A-Za-z0-9]+)",
            ),
            r(
                StripeKey,
                Shape,
                r"(?-u:\b)(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,99}(?-u:\b)",
            ),
            r(GoogleApiKey, Shape, r"(?-u:\b)AIza[0-9A-Za-z_-]{35}"),
            r(
                AwsAccessKeyId,
                Shape,
                r"(?-u:\b)(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}(?-u:\b)",
            ),
            r(
                Jwt,
                Shape,
                r"(?-u:\b)ey[A-Za-z0-9_-]{17,}\.ey[A-Za-z0-9_-]{17,}\.(?:[A-Za-z0-9_-]{10,}={0,2})?",
            ),
            r(
                AzureStorageKey,
                Value,
                r"(?i)AccountKey\s*=\s*([A-Za-z0-9+/]{20,}={0,2})",
            ),
            r(
                AwsSecretKey,
                Value,
                &format!(r"(?i)aws_?secret_?(?:access_?)?key{ASSIGN}{VALUE}"),
            ),
            r(
                AwsAccessKeyId,
                Value,
                &format!(r"(?i)aws_?access_?key_?id{ASSIGN}{VALUE}"),
            ),
            r(
                UrlPassword,
                Value,
                r#"(?-u:\b)[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'"<>`]+:([^\s@/'"<>`]+)@[A-Za-z0-9\[]"#,
            ),
            r(
                ConnectionPassword,
                Value,
                r#"(?i)[;?&][ \t]*(?:password|pwd)[ \t]*=[ \t]*(?:"([^"\n]*)"|'([^'\n]*)'|([^;&\s"'`]+))"#,
            ),
            r(Password, Assignment, &name("passw(?:or)?d")),
            r(Secret, Assignment, &name("secret")),
            r(Token, Assignment, &name("token|api[_-]?key|apikey|access[_-]?key")),
        ]
    });
    &RULES
}

/// `text` with every credential replaced by `[REDACTED:<kind>]`, and where each was.
pub(crate) fn redact(text: &str) -> (Cow<'_, str>, Vec<Found>) {
    let mut spans: Vec<(usize, usize, SecretKind)> = Vec::new();
    for rule in rules() {
        for caps in rule.re.captures_iter(text) {
            let Some((start, end)) = value_span(rule, &caps) else {
                continue;
            };
            if !spans.iter().any(|&(s, e, _)| start < e && s < end) {
                spans.push((start, end, rule.kind));
            }
        }
    }
    if spans.is_empty() {
        return (Cow::Borrowed(text), Vec::new());
    }
    spans.sort_by_key(|s| s.0);
    let mut out = String::with_capacity(text.len());
    let (mut at, mut line, mut counted) = (0, 1, 0);
    let mut found = Vec::with_capacity(spans.len());
    for (start, end, kind) in spans {
        line += text[counted..start].bytes().filter(|&b| b == b'\n').count();
        counted = start;
        found.push(Found { line, kind });
        out.push_str(&text[at..start]);
        out.push_str("[REDACTED:");
        out.push_str(kind.name());
        out.push(']');
        at = end;
    }
    out.push_str(&text[at..]);
    (Cow::Owned(out), found)
}

/// The span to replace for one match, or None when it is not a credential.
fn value_span(rule: &Rule, caps: &regex::Captures) -> Option<(usize, usize)> {
    let whole = caps.get(0)?;
    if rule.check == Check::Shape {
        let s = whole.as_str().trim_end();
        return (!s.ends_with("EXAMPLE")).then(|| (whole.start(), whole.start() + s.len()));
    }
    let first = if rule.check == Check::Assignment { 3 } else { 1 };
    let value = (first..caps.len()).find_map(|i| caps.get(i))?;
    if rule.check == Check::Assignment && !names_a_secret(caps.get(2).map_or("", |m| m.as_str())) {
        return None;
    }
    let bare = caps.get(first + 3).is_some() || rule.kind == SecretKind::ConnectionPassword;
    (!placeholder(value.as_str(), bare)).then(|| (value.start(), value.end()))
}

/// Whether a key whose tail after the keyword is `tail` holds the secret itself
/// (`password`, `DB_PASSWORD`, `client_secret_value`) rather than something about it
/// (`password_hash`, `secret_name`, `token_url`, `passwords`).
fn names_a_secret(tail: &str) -> bool {
    let t: String = tail
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    t != "s" && !NOT_SECRET_TAILS.iter().any(|w| t.starts_with(w))
}

/// A value that is not a credential: empty or tiny; a marker (`<REDACTED>`, `[REDACTED]`,
/// `****`, `xxxx`, `...`); a reference to a variable (`${VAR}`, `$VAR`, `{{ var }}`,
/// `${{ secrets.X }}`, `%VAR%`, `$(cmd)`, `var.db_password`, `env("X")`); or a well-known
/// dummy (`changeme`, `changeit`, `password`, `secret`, `example`, `true`, `null`, ...),
/// which names no real secret. `bare` values (unquoted) that are one lowercase word of
/// letters are prose ("password: see the vault"), not a value.
fn placeholder(v: &str, bare: bool) -> bool {
    const DUMMIES: &[&str] = &[
        "changeme",
        "changeit",
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "token",
        "example",
        "test",
        "redacted",
        "placeholder",
        "dummy",
        "none",
        "null",
        "nil",
        "true",
        "false",
        "undefined",
        "required",
        "optional",
        "string",
        "value",
        "tbd",
        "todo",
        "fixme",
        "replace_me",
        "replaceme",
    ];
    let t = v.trim();
    let lower = t.to_ascii_lowercase();
    let all = |f: fn(char) -> bool| !t.is_empty() && t.chars().all(f);
    t.chars().count() < 4
        || DUMMIES.contains(&lower.as_str())
        || lower.contains("redacted")
        || lower.starts_with("your")
        || lower.ends_with("example")
        || all(|c| matches!(c, '*' | '.' | 'x' | 'X' | '-' | '#' | '?' | '_' | '0'))
        || (t.starts_with('<') && t.ends_with('>'))
        || t.starts_with('$')
        || t.starts_with("{{")
        || t.starts_with("{%")
        || (t.starts_with('%') && t.ends_with('%'))
        || (t.starts_with('[') && t.ends_with(']'))
        || is_reference(t)
        || (bare && all(|c| c.is_ascii_lowercase()) && t.len() <= 12)
}

/// A value that names where the secret is rather than being it: a dotted path of
/// identifiers (`var.db_password`, `secrets.DB_PASS`), a call or command (`env(`), a path.
fn is_reference(t: &str) -> bool {
    let ident = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let dotted = t.contains('.') && t.split('.').all(ident);
    let call = t.contains('(');
    let path = (t.starts_with('/') || t.starts_with("./") || t.starts_with("~/")) && t[1..].contains('/');
    dotted || call || path
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text sent and the kinds found, with their lines.
    fn run(text: &str) -> (String, Vec<(usize, &'static str)>) {
        let (out, found) = redact(text);
        (
            out.into_owned(),
            found.iter().map(|f| (f.line, f.kind.name())).collect(),
        )
    }

    /// `secret` planted on line 2 of a small file is replaced by `kind`'s marker.
    fn replaced(line: &str, secret: &str, kind: &str) {
        let text = format!("# Notes\n{line}\nend\n");
        let (out, found) = run(&text);
        assert!(!out.contains(secret), "{kind}: {secret} still in {out}");
        assert!(out.contains(&format!("[REDACTED:{kind}]")), "{kind}: {out}");
        assert_eq!(found, [(2, kind)], "{line}");
    }

    fn kept(text: &str) {
        let (out, found) = run(text);
        assert!(found.is_empty(), "{text:?} gave {found:?}: {out}");
        assert_eq!(out, text);
    }

    /// A run-time string of `n` characters cycling through `alphabet`, offset by `seed`.
    fn chars(alphabet: &str, n: usize, seed: usize) -> String {
        let a: Vec<char> = alphabet.chars().collect();
        (0..n).map(|i| a[(i * 7 + seed * 3 + i / 5) % a.len()]).collect()
    }

    const B62: &str = "aB3cD4eF5gH6iJ7kL8mN9oP2qR3sT4uV5wX6yZ7";

    #[test]
    fn a_private_key_block_is_replaced_whole() {
        let body = format!("{}\n{}\n", chars(B62, 64, 1), chars(B62, 40, 2));
        let begin = concat!("-----BEGIN RSA ", "PRIVATE KEY-----");
        let end = concat!("-----END RSA ", "PRIVATE KEY-----");
        let text = format!("a\n\n{begin}\n{body}{end}\nafter\n");
        let (out, found) = run(&text);
        assert_eq!(out, "a\n\n[REDACTED:private-key]\nafter\n");
        assert_eq!(found, [(3, "private-key")]);
        // Cut off before its END line, it still goes, up to the next blank line.
        let (out, found) = run(&format!("{begin}\n{body}\nkept\n"));
        assert!(!out.contains(&body[..20]) && out.ends_with("kept\n"), "{out}");
        assert_eq!(found, [(1, "private-key")]);
        // A public key is not a secret.
        kept(&format!("-----BEGIN PUBLIC KEY-----\n{body}-----END PUBLIC KEY-----\n"));
    }

    #[test]
    fn cloud_keys_are_replaced() {
        let id = format!("{}{}", "AKIA", chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16, 3));
        replaced(&format!("export KEY_ID={id}"), &id, "aws-access-key-id");
        let sts = format!("{}{}", "ASIA", chars("QWERTYUPASDFGHJKZXCVBNM234567", 16, 4));
        replaced(&format!("id: {sts}"), &sts, "aws-access-key-id");
        kept("aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n");
        let secret = chars("abcDEF123/+ghiJKL456", 40, 5);
        replaced(
            &format!("aws_secret_access_key = {secret}"),
            &secret,
            "aws-secret-access-key",
        );
        kept("aws_secret_access_key = ${AWS_SECRET_ACCESS_KEY}\n");
        let pem = format!(
            "{}\\n{}\\n{}\\n",
            concat!("-----BEGIN ", "PRIVATE KEY-----"),
            chars(B62, 64, 6),
            concat!("-----END ", "PRIVATE KEY-----")
        );
        let (out, found) = run(&format!(
            "{{\n  \"type\": \"service_account\",\n  \"private_key\": \"{pem}\"\n}}\n"
        ));
        assert_eq!(found, [(3, "gcp-service-account-key")]);
        assert!(
            out.contains("\"private_key\": \"[REDACTED:gcp-service-account-key]\""),
            "{out}"
        );
        let ak = format!("{}==", chars("abcdEFGH1234+/ijkl", 86, 7));
        replaced(
            &format!("DefaultEndpointsProtocol=https;AccountName=ops;AccountKey={ak};EndpointSuffix=core"),
            &ak,
            "azure-storage-key",
        );
    }

    #[test]
    fn provider_and_chat_tokens_are_replaced() {
        let cases = [
            (format!("sk-proj-{}", chars(B62, 48, 1)), "openai-api-key"),
            (format!("{}{}", "sk-", chars(B62, 48, 2)), "openai-api-key"),
            (
                format!("{}{}AA", "sk-ant-api03-", chars(B62, 93, 3)),
                "anthropic-api-key",
            ),
            (format!("{}{}", "ghp_", chars(B62, 36, 4)), "github-token"),
            (format!("{}{}", "gho_", chars(B62, 36, 5)), "github-token"),
            (format!("{}{}", "github_pat_", chars(B62, 82, 6)), "github-token"),
            (format!("{}{}", "glpat-", chars(B62, 20, 7)), "gitlab-token"),
            (
                format!("{}-{}-{}-{}", "xoxb", "1234567890", "9876543210", chars(B62, 24, 8)),
                "slack-token",
            ),
            (format!("{}-{}", "xoxp", chars("0123456789", 12, 1)), "slack-token"),
            (format!("{}{}", "sk_live_", chars(B62, 24, 9)), "stripe-key"),
            (format!("{}{}", "AIza", chars(B62, 35, 10)), "google-api-key"),
        ];
        for (secret, kind) in &cases {
            replaced(&format!("curl -H 'X-Key: {secret}' https://api.internal"), secret, kind);
        }
    }

    #[test]
    fn passwords_in_urls_and_connection_strings_are_replaced() {
        let pw = format!("{}{}", "Tr0ub4", "dor-x9");
        replaced(
            &format!("DATABASE_URL=postgres://app:{pw}@db.internal:5432/orders"),
            &pw,
            "url-password",
        );
        let (out, _) = run(&format!("redis://default:{pw}@cache:6379\n"));
        assert_eq!(out, "redis://default:[REDACTED:url-password]@cache:6379\n");
        replaced(
            &format!("Server=db1;Database=orders;User Id=app;Password={pw};"),
            &pw,
            "connection-string-password",
        );
        replaced(
            &format!("jdbc:sqlserver://db1:1433;user=app;password={pw}"),
            &pw,
            "connection-string-password",
        );
        replaced(
            &format!("jdbc:mysql://db1/orders?user=app&password={pw}"),
            &pw,
            "connection-string-password",
        );
        for placeholder in ["${DB_PASS}", "<password>", "$DB_PASS", "password", "changeme", "****"] {
            kept(&format!("postgres://app:{placeholder}@db.internal/orders\n"));
            kept(&format!("Server=db1;User Id=app;Password={placeholder};\n"));
        }
    }

    #[test]
    fn assignments_are_replaced_quoted_or_not() {
        let pw = format!("{}{}", "hunter", "2-Q7!");
        for line in [
            format!("password={pw}"),
            format!("password: {pw}"),
            format!("  db_password: \"{pw}\""),
            format!("\"password\": \"{pw}\","),
            format!("PGPASSWORD='{pw}' psql -h db"),
            format!("export MYSQL_PASSWORD={pw}"),
            format!("admin_password = `{pw}`"),
        ] {
            replaced(&line, &pw, "password");
        }
        let v = format!("{}{}", "s3cr", "3t-value-91");
        replaced(&format!("client_secret: {v}"), &v, "secret");
        replaced(&format!("secret: \"{v}\""), &v, "secret");
        replaced(&format!("token: {v}"), &v, "token");
        replaced(&format!("API_KEY={v}"), &v, "token");
    }

    #[test]
    fn placeholders_and_references_are_not_credentials() {
        for v in [
            "<REDACTED>",
            "[REDACTED]",
            "${DB_PASSWORD}",
            "$DB_PASSWORD",
            "{{ db_password }}",
            "\"{{ .Values.password }}\"",
            "${{ secrets.DEPLOY_TOKEN }}",
            "%DB_PASSWORD%",
            "$(vault read -field=pw secret/db)",
            "changeme",
            "\"changeit\"",
            "****",
            "xxxxxxxx",
            "var.db_password",
            "random_password.db.result",
            "env(\"DB_PASSWORD\")",
            "your-password-here",
            "''",
            "\"\"",
        ] {
            kept(&format!("password: {v}\n"));
            kept(&format!("token = {v}\n"));
        }
    }

    #[test]
    fn prose_columns_and_ids_are_not_credentials() {
        kept("Do the password rotation step after the cutover.\n");
        kept("Password: see the team vault.\n");
        kept("The token is rotated weekly; ask #ops for a new token.\n");
        kept("CREATE TABLE users (id int, password_hash text NOT NULL, password_salt text);\n");
        kept("ALTER TABLE users ADD COLUMN password_reset_at timestamptz;\n");
        kept("secret_name: orders-db\nsecretKeyRef:\n  name: db\ntoken_url: https://auth/token\n");
        kept("passwords: 3 attempts\nmax_tokens: 4000\n");
        kept("key_id: 5f2b9c0e-1d2a-4c3b-9e8f-0a1b2c3d4e5f\nsha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b\n");
        kept("image: registry/app@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\n");
        kept("snapshot id: c3VwZXJsb25nYmFzZTY0bG9va2luZ2lkZW50aWZpZXI=\n");
        kept("See https://example.com/user@host and ssh://git@github.com:org/repo.git\n");
        kept("sk-learn is a library; the task-list is long.\n");
    }

    #[test]
    fn lines_are_counted_and_nothing_changes_without_a_credential() {
        let id = format!("{}{}", "AKIA", chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16, 3));
        let tok = format!("{}{}", "ghp_", chars(B62, 36, 4));
        let (out, found) = run(&format!("a\nb {id}\nc\n\nd {tok} and {id}\n"));
        assert_eq!(
            found,
            [(2, "aws-access-key-id"), (5, "github-token"), (5, "aws-access-key-id")]
        );
        assert!(!out.contains(&id) && !out.contains(&tok));
        assert!(matches!(redact("nothing here\n").0, Cow::Borrowed(_)));
    }

    #[test]
    fn a_large_file_is_scanned_whole() {
        let line = "INSERT INTO orders VALUES (1, 'eyJhbGciOiJIUzI1NiJ9 password token', 3.5);\n";
        let mut text = line.repeat(1_000_000 / line.len());
        let jwt = format!("ey{}.ey{}.{}", chars(B62, 30, 1), chars(B62, 40, 2), chars(B62, 43, 3));
        text.push_str(&format!("Authorization: Bearer {jwt}\n"));
        let (out, found) = run(&text);
        assert_eq!(found.len(), 1, "{:?}", &found[..found.len().min(3)]);
        assert_eq!(found[0], (text.lines().count(), "jwt"));
        assert!(!out.contains(&jwt));
    }
}
