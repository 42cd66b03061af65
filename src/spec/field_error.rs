//! Field errors formatted as apimachinery's `field.Error` (`pkg/util/validation/field/errors.go`):
//! `<path>: <Type>[: <value>][: <detail>]`.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    Invalid,
    Unsupported,
    Duplicate,
    TooLong,
    TooMany,
    Forbidden,
}

impl FieldErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid => "Invalid value",
            Self::Unsupported => "Unsupported value",
            Self::Duplicate => "Duplicate value",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Forbidden => "Forbidden",
        }
    }
}

/// One field error. `value` is already rendered the way Go prints it (`%q` for strings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub kind: FieldErrorKind,
    pub value: Option<String>,
    pub detail: String,
}

impl FieldError {
    pub fn required(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { path: path.into(), kind: FieldErrorKind::Required, value: None, detail: detail.into() }
    }

    pub fn invalid(path: impl Into<String>, value: impl fmt::Display, detail: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            kind: FieldErrorKind::Invalid,
            value: Some(value.to_string()),
            detail: detail.into(),
        }
    }

    /// `Invalid value` for a string value, quoted as Go's `%q` does.
    pub fn invalid_str(path: impl Into<String>, value: &str, detail: impl Into<String>) -> Self {
        Self::invalid(path, go_quote(value), detail)
    }

    /// `Invalid value` whose value is not printed (`field.OmitValueType`).
    pub fn invalid_omit_value(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { path: path.into(), kind: FieldErrorKind::Invalid, value: None, detail: detail.into() }
    }

    pub fn too_long(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { path: path.into(), kind: FieldErrorKind::TooLong, value: None, detail: detail.into() }
    }

    /// `Too many`: the actual count is the value.
    pub fn too_many(path: impl Into<String>, count: usize, max: usize) -> Self {
        Self {
            path: path.into(),
            kind: FieldErrorKind::TooMany,
            value: Some(count.to_string()),
            detail: format!("must have at most {max} items"),
        }
    }

    pub fn duplicate(path: impl Into<String>, value: impl fmt::Display) -> Self {
        Self {
            path: path.into(),
            kind: FieldErrorKind::Duplicate,
            value: Some(value.to_string()),
            detail: String::new(),
        }
    }

    pub fn unsupported(path: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        Self {
            path: path.into(),
            kind: FieldErrorKind::Unsupported,
            value: Some(go_quote(value)),
            detail: format!("supported values: {}", list.join(", ")),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.kind.as_str())?;
        if let Some(value) = &self.value {
            write!(f, ": {value}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// All field errors of one validation, in the order Kubernetes reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn messages(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.messages().join("\n"))
    }
}

impl std::error::Error for FieldErrors {}

/// Quotes a string as Go's `%q` (`strconv.Quote`) does for the characters that matter here.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_apimachinery() {
        let e = FieldError::invalid("spec.completions", -1, "must be greater than or equal to 0");
        assert_eq!(e.to_string(), "spec.completions: Invalid value: -1: must be greater than or equal to 0");
        let e = FieldError::required("spec.completions", "when completion mode is Indexed");
        assert_eq!(e.to_string(), "spec.completions: Required value: when completion mode is Indexed");
        let e = FieldError::unsupported("spec.completionMode", "Foo", &["NonIndexed", "Indexed"]);
        assert_eq!(
            e.to_string(),
            "spec.completionMode: Unsupported value: \"Foo\": supported values: \"NonIndexed\", \"Indexed\""
        );
        assert_eq!(go_quote("a\"b\\\n\u{1}"), "\"a\\\"b\\\\\\n\\x01\"");
    }
}
