//! The JSONata tokenizer: characters to tokens with their character positions. Whether `/`
//! starts a regex or divides depends on where the parser is, so the parser asks for each
//! token saying whether it expects an operator (`infix`), as the reference tokenizer does.

use super::error::{Error, Result};

/// One token. `pos` is the character offset just past the token, as jsonata-js reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    Name(String),
    Variable(String),
    Str(String),
    Num(f64),
    /// `true`, `false` (Some) or `null` (None).
    Value(Option<bool>),
    Regex {
        pattern: String,
        flags: String,
    },
    Op(&'static str),
    End,
}

const OPERATORS: &[&str] = &[
    ".", "[", "]", "{", "}", "(", ")", ",", "@", "#", ";", ":", "?", "+", "-", "*", "/", "%", "|",
    "=", "<", ">", "^", "&", "!", "~",
];

fn single_op(c: char) -> Option<&'static str> {
    let mut buf = [0u8; 4];
    let s: &str = c.encode_utf8(&mut buf);
    OPERATORS.iter().copied().find(|o| *o == s)
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{b}')
}

pub struct Lexer {
    chars: Vec<char>,
    pos: usize,
}

impl Lexer {
    pub fn new(text: &str) -> Lexer {
        Lexer {
            chars: text.chars().collect(),
            pos: 0,
        }
    }

    fn at(&self, i: usize) -> char {
        self.chars.get(i).copied().unwrap_or('\0')
    }

    /// The next token and its position (the offset just past it).
    pub fn next(&mut self, infix: bool) -> Result<(Tok, usize)> {
        loop {
            while self.pos < self.chars.len() && is_space(self.chars[self.pos]) {
                self.pos += 1;
            }
            if self.at(self.pos) == '/' && self.at(self.pos + 1) == '*' {
                let start = self.pos;
                self.pos += 2;
                loop {
                    if self.pos >= self.chars.len() {
                        return Err(Error::new("S0106", "Comment has no closing tag").at(start));
                    }
                    if self.at(self.pos) == '*' && self.at(self.pos + 1) == '/' {
                        self.pos += 2;
                        break;
                    }
                    self.pos += 1;
                }
                continue;
            }
            break;
        }
        if self.pos >= self.chars.len() {
            return Ok((Tok::End, self.chars.len()));
        }
        let c = self.chars[self.pos];
        if !infix && c == '/' {
            self.pos += 1;
            return self.regex();
        }
        let two = |a: char, b: char| c == a && self.at(self.pos + 1) == b;
        let double = if two('.', '.') {
            Some("..")
        } else if two(':', '=') {
            Some(":=")
        } else if two('!', '=') {
            Some("!=")
        } else if two('>', '=') {
            Some(">=")
        } else if two('<', '=') {
            Some("<=")
        } else if two('*', '*') {
            Some("**")
        } else if two('~', '>') {
            Some("~>")
        } else {
            None
        };
        if let Some(op) = double {
            self.pos += 2;
            return Ok((Tok::Op(op), self.pos));
        }
        if let Some(op) = single_op(c) {
            self.pos += 1;
            return Ok((Tok::Op(op), self.pos));
        }
        if c == '"' || c == '\'' {
            return self.string(c);
        }
        if c.is_ascii_digit() {
            return self.number();
        }
        if c == '`' {
            self.pos += 1;
            let start = self.pos;
            while self.pos < self.chars.len() && self.chars[self.pos] != '`' {
                self.pos += 1;
            }
            if self.pos >= self.chars.len() {
                return Err(Error::new(
                    "S0105",
                    "Quoted property name must be terminated with a backquote (`)",
                )
                .at(self.pos));
            }
            let name: String = self.chars[start..self.pos].iter().collect();
            self.pos += 1;
            return Ok((Tok::Name(name), self.pos));
        }
        let start = self.pos;
        let mut i = self.pos;
        while i < self.chars.len() && !is_space(self.chars[i]) && single_op(self.chars[i]).is_none()
        {
            i += 1;
        }
        self.pos = i;
        if c == '$' {
            let name: String = self.chars[start + 1..i].iter().collect();
            return Ok((Tok::Variable(name), self.pos));
        }
        let name: String = self.chars[start..i].iter().collect();
        let tok = match name.as_str() {
            "and" => Tok::Op("and"),
            "or" => Tok::Op("or"),
            "in" => Tok::Op("in"),
            "true" => Tok::Value(Some(true)),
            "false" => Tok::Value(Some(false)),
            "null" => Tok::Value(None),
            _ => Tok::Name(name),
        };
        Ok((tok, self.pos))
    }

    fn string(&mut self, quote: char) -> Result<(Tok, usize)> {
        self.pos += 1;
        let mut out = String::new();
        // Pending high surrogate of a `\uXXXX` pair.
        let mut high: Option<u32> = None;
        while self.pos < self.chars.len() {
            let c = self.chars[self.pos];
            if c == '\\' {
                self.pos += 1;
                let e = self.at(self.pos);
                let simple = match e {
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    '/' => Some('/'),
                    'b' => Some('\u{8}'),
                    'f' => Some('\u{c}'),
                    'n' => Some('\n'),
                    'r' => Some('\r'),
                    't' => Some('\t'),
                    _ => None,
                };
                if let Some(s) = simple {
                    flush_high(&mut out, &mut high);
                    out.push(s);
                } else if e == 'u' {
                    let hex: String = self.chars.iter().skip(self.pos + 1).take(4).collect();
                    if hex.len() != 4 || !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                        return Err(Error::new(
                            "S0104",
                            "The escape sequence \\u must be followed by 4 hex digits",
                        )
                        .at(self.pos));
                    }
                    let unit = u32::from_str_radix(&hex, 16).unwrap_or(0xfffd);
                    self.pos += 4;
                    if (0xd800..0xdc00).contains(&unit) {
                        flush_high(&mut out, &mut high);
                        high = Some(unit);
                    } else if (0xdc00..0xe000).contains(&unit) {
                        match high.take() {
                            Some(h) => {
                                let cp = 0x10000 + ((h - 0xd800) << 10) + (unit - 0xdc00);
                                out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                            }
                            // A lone surrogate has no UTF-8 form.
                            None => out.push('\u{fffd}'),
                        }
                    } else {
                        flush_high(&mut out, &mut high);
                        out.push(char::from_u32(unit).unwrap_or('\u{fffd}'));
                    }
                } else {
                    return Err(
                        Error::new("S0103", format!("Unsupported escape sequence: \\{e}"))
                            .at(self.pos)
                            .token(e.to_string()),
                    );
                }
            } else if c == quote {
                flush_high(&mut out, &mut high);
                self.pos += 1;
                return Ok((Tok::Str(out), self.pos));
            } else {
                flush_high(&mut out, &mut high);
                out.push(c);
            }
            self.pos += 1;
        }
        Err(Error::new(
            "S0101",
            "String literal must be terminated by a matching quote",
        )
        .at(self.pos))
    }

    fn number(&mut self) -> Result<(Tok, usize)> {
        let start = self.pos;
        let mut i = self.pos;
        if self.at(i) == '0' {
            i += 1;
        } else {
            while self.at(i).is_ascii_digit() {
                i += 1;
            }
        }
        if self.at(i) == '.' && self.at(i + 1).is_ascii_digit() {
            i += 1;
            while self.at(i).is_ascii_digit() {
                i += 1;
            }
        }
        if matches!(self.at(i), 'e' | 'E') {
            let mut j = i + 1;
            if matches!(self.at(j), '+' | '-') {
                j += 1;
            }
            if self.at(j).is_ascii_digit() {
                while self.at(j).is_ascii_digit() {
                    j += 1;
                }
                i = j;
            }
        }
        let text: String = self.chars[start..i].iter().collect();
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() => {
                self.pos = i;
                Ok((Tok::Num(n), self.pos))
            }
            _ => Err(Error::new("S0102", format!("Number out of range: {text}"))
                .at(start)
                .token(text)),
        }
    }

    fn regex(&mut self) -> Result<(Tok, usize)> {
        let start = self.pos;
        let mut depth: i32 = 0;
        while self.pos < self.chars.len() {
            let c = self.chars[self.pos];
            if c == '/' && depth == 0 {
                let mut backslashes = 0;
                while self.pos > backslashes && self.chars[self.pos - backslashes - 1] == '\\' {
                    backslashes += 1;
                }
                if backslashes % 2 == 0 {
                    let pattern: String = self.chars[start..self.pos].iter().collect();
                    if pattern.is_empty() {
                        return Err(Error::new(
                            "S0301",
                            "Empty regular expressions are not allowed",
                        )
                        .at(self.pos));
                    }
                    self.pos += 1;
                    let fstart = self.pos;
                    while matches!(self.at(self.pos), 'i' | 'm') {
                        self.pos += 1;
                    }
                    let flags: String = self.chars[fstart..self.pos].iter().collect();
                    return Ok((Tok::Regex { pattern, flags }, self.pos));
                }
            }
            let escaped = self.pos > 0 && self.chars[self.pos - 1] == '\\';
            if matches!(c, '(' | '[' | '{') && !escaped {
                depth += 1;
            }
            if matches!(c, ')' | ']' | '}') && !escaped {
                depth -= 1;
            }
            self.pos += 1;
        }
        Err(Error::new("S0302", "No terminating / in regular expression").at(self.pos))
    }
}

fn flush_high(out: &mut String, high: &mut Option<u32>) {
    if high.take().is_some() {
        out.push('\u{fffd}');
    }
}
