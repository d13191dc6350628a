//! Manifests as the plugin prints them: YAML documents with `#` comments above them, and Secret
//! placeholders that name the key to fill in but never carry a value.

use serde_json::{Value, json};

/// One YAML document of the output.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Comment lines printed above the document (without the leading `# `).
    pub comments: Vec<String>,
    /// The object.
    pub object: Value,
    /// Comment lines printed at the end of the document (used for the keys a Secret needs).
    pub trailing_comments: Vec<String>,
}

impl Document {
    /// A document without comments.
    pub fn new(object: Value) -> Self {
        Self {
            comments: Vec::new(),
            object,
            trailing_comments: Vec::new(),
        }
    }

    /// `kind` of the object.
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }

    /// `metadata.name` of the object.
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }
}

/// A Secret placeholder: the Secret a manifest refers to, with the key it needs named in a
/// comment. Applying it creates an empty Secret, so the operator reports `SecretNotFound` (the
/// key is missing) instead of sending an empty credential to Foundry.
pub fn secret_placeholder(namespace: Option<&str>, name: &str, key: &str, what: &str) -> Document {
    let mut metadata = json!({ "name": name });
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    let ns_flag = namespace.map(|ns| format!(" -n {ns}")).unwrap_or_default();
    Document {
        comments: vec![
            format!("Secret placeholder: key {key:?} must hold {what}."),
            "The value is never imported (ARM does not return credentials). Set it with:".into(),
            format!(
                "  kubectl{ns_flag} create secret generic {name} --from-literal={key}=... --dry-run=client -o yaml | kubectl apply -f -"
            ),
        ],
        object: json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata,
            "type": "Opaque",
        }),
        trailing_comments: vec!["stringData:".into(), format!("  {key}: <{what}>")],
    }
}

/// Renders documents as a multi-document YAML stream.
pub fn render(documents: &[Document]) -> String {
    let mut out = String::new();
    for doc in documents {
        out.push_str("---\n");
        for line in &doc.comments {
            push_comment(&mut out, line);
        }
        // Serialising a serde_json::Value to YAML cannot fail.
        let yaml = serde_yaml::to_string(&doc.object).unwrap_or_default();
        out.push_str(&yaml);
        for line in &doc.trailing_comments {
            push_comment(&mut out, line);
        }
    }
    out
}

fn push_comment(out: &mut String, line: &str) {
    if line.is_empty() {
        out.push_str("#\n");
    } else {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
}

/// A DNS-1123 object name from any text: lowercase, runs of other characters become `-`,
/// trimmed to 63 characters, never empty.
pub fn object_name(text: &str) -> String {
    let mut name = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if !name.ends_with('-') && !name.is_empty() {
            name.push('-');
        }
    }
    let mut name: String = name.chars().take(63).collect();
    while name.ends_with('-') {
        name.pop();
    }
    if name.is_empty() {
        "imported".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_dns_labels() {
        assert_eq!(object_name("YOUR-CONNECTION-NAME"), "your-connection-name");
        assert_eq!(object_name("My_Conn  2"), "my-conn-2");
        assert_eq!(object_name("---"), "imported");
        assert_eq!(object_name(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn secret_placeholders_name_the_key_but_carry_no_value() {
        let doc = secret_placeholder(Some("team"), "gw-key", "apiKey", "the gateway API key");
        assert!(doc.object.get("data").is_none());
        assert!(doc.object.get("stringData").is_none());
        let text = render(&[doc]);
        assert!(text.contains("# stringData:\n#   apiKey: <the gateway API key>\n"));
        let parsed: Value = serde_yaml::from_str(text.trim_start_matches("---\n")).unwrap();
        assert_eq!(parsed["kind"], "Secret");
        assert_eq!(parsed["metadata"]["namespace"], "team");
    }
}
