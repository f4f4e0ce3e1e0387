//! JavaScript regular expressions (`/.../flags` in JSONata) on the `regex` crate. The pattern
//! is translated where the two dialects differ in meaning: `\d`, `\w`, `\s` and `\b` are
//! ASCII (or JavaScript's whitespace) as in JavaScript, `\uXXXX` escapes become `\x{XXXX}`.
//! What the `regex` crate cannot do (look-around, back-references) is refused when the
//! expression is compiled, with an error that says so, rather than matching differently.

use regex::Regex;

use super::error::{Error, Result};

/// A compiled JavaScript regex.
#[derive(Debug)]
pub struct JsRegex {
    pub re: Regex,
    pub source: String,
}

/// One match: byte offsets into the text, and the capture groups (None when a group did not
/// take part).
pub struct Match {
    pub start: usize,
    pub end: usize,
    pub groups: Vec<Option<(usize, usize)>>,
}

const JS_SPACE: &str = r"\t\n\x0B\x0C\r \x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}";

impl JsRegex {
    pub fn new(pattern: &str, flags: &str) -> Result<JsRegex> {
        let translated = translate(pattern)?;
        let mut prefix = String::new();
        if flags.contains('i') || flags.contains('m') {
            prefix.push_str("(?");
            if flags.contains('i') {
                prefix.push('i');
            }
            if flags.contains('m') {
                prefix.push('m');
            }
            prefix.push(')');
        }
        let re = Regex::new(&format!("{prefix}{translated}")).map_err(|e| {
            Error::new(
                "S0303",
                format!("The regular expression /{pattern}/ is not supported: {e}"),
            )
        })?;
        Ok(JsRegex {
            re,
            source: pattern.to_string(),
        })
    }

    /// The first match at or after byte offset `from`.
    pub fn find_at(&self, text: &str, from: usize) -> Option<Match> {
        if from > text.len() {
            return None;
        }
        let caps = self.re.captures_at(text, from)?;
        let whole = caps.get(0)?;
        let groups = (1..caps.len())
            .map(|i| caps.get(i).map(|m| (m.start(), m.end())))
            .collect();
        Some(Match {
            start: whole.start(),
            end: whole.end(),
            groups,
        })
    }
}

/// Rewrites a JavaScript pattern into the `regex` crate's dialect.
fn translate(p: &str) -> Result<String> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    let unsupported = |what: &str| {
        Err(Error::new(
            "S0303",
            format!("The regular expression /{p}/ uses {what}, which stepstream does not support"),
        ))
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let e = chars[i + 1];
            i += 2;
            match e {
                'd' => out.push_str(if in_class { "0-9" } else { "[0-9]" }),
                'D' => out.push_str(if in_class { r"\D" } else { "[^0-9]" }),
                'w' => out.push_str(if in_class {
                    "A-Za-z0-9_"
                } else {
                    "[A-Za-z0-9_]"
                }),
                'W' => out.push_str(if in_class { r"\W" } else { "[^A-Za-z0-9_]" }),
                's' => {
                    if in_class {
                        out.push_str(JS_SPACE);
                    } else {
                        out.push('[');
                        out.push_str(JS_SPACE);
                        out.push(']');
                    }
                }
                'S' => {
                    if in_class {
                        out.push_str(r"\S");
                    } else {
                        out.push_str("[^");
                        out.push_str(JS_SPACE);
                        out.push(']');
                    }
                }
                'b' if !in_class => out.push_str(r"(?-u:\b)"),
                'B' if !in_class => out.push_str(r"(?-u:\B)"),
                'b' => out.push_str(r"\x08"),
                'u' => {
                    let hex: String = chars.iter().skip(i).take(4).collect();
                    if hex.len() == 4 && hex.chars().all(|h| h.is_ascii_hexdigit()) {
                        out.push_str(&format!(r"\x{{{hex}}}"));
                        i += 4;
                    } else {
                        out.push('u');
                    }
                }
                '1'..='9' => return unsupported("a back-reference"),
                '/' => out.push('/'),
                '-' => out.push_str(r"\-"),
                c if c.is_ascii_alphanumeric() => {
                    out.push('\\');
                    out.push(c);
                }
                c => {
                    // An escaped punctuation character stands for itself.
                    if regex_syntax_meta(c) {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
            continue;
        }
        if in_class {
            if c == ']' {
                in_class = false;
            }
            if c == '[' {
                out.push_str(r"\[");
            } else {
                out.push(c);
            }
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push('[');
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i + 1) == Some(&']') {
                    // `[]` matches nothing and `[^]` anything in JavaScript.
                    let negated = out.ends_with('^');
                    out.truncate(out.len() - if negated { 2 } else { 1 });
                    out.push_str(if negated { r"[\s\S]" } else { r"[^\s\S]" });
                    in_class = false;
                    i += 2;
                    continue;
                }
            }
            '(' if chars.get(i + 1) == Some(&'?') => {
                let next = chars.get(i + 2).copied();
                let next2 = chars.get(i + 3).copied();
                match (next, next2) {
                    (Some('='), _) | (Some('!'), _) => return unsupported("a look-ahead"),
                    (Some('<'), Some('=')) | (Some('<'), Some('!')) => {
                        return unsupported("a look-behind");
                    }
                    _ => out.push('('),
                }
            }
            _ => out.push(c),
        }
        i += 1;
    }
    Ok(out)
}

fn regex_syntax_meta(c: char) -> bool {
    regex::escape(&c.to_string()).len() > c.len_utf8()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_ascii_as_in_javascript() {
        let re = JsRegex::new(r"\d+", "").unwrap();
        assert!(re.find_at("٣", 0).is_none());
        assert_eq!(re.find_at("ab12", 0).map(|m| m.start), Some(2));
        let re = JsRegex::new(r"[\w.]+", "").unwrap();
        assert_eq!(
            re.find_at("é a.b", 0).map(|m| (m.start, m.end)),
            Some((3, 6))
        );
    }

    #[test]
    fn unsupported_features_are_refused_with_a_reason() {
        let e = JsRegex::new(r"a(?=b)", "").unwrap_err();
        assert_eq!(e.code, "S0303");
        assert!(e.message.contains("look-ahead"));
        assert!(JsRegex::new(r"(a)\1", "").is_err());
    }

    #[test]
    fn flags_and_escapes() {
        let re = JsRegex::new(r"^A\/b\u0041", "im").unwrap();
        assert!(re.find_at("x\na/bA", 0).is_some());
    }
}
