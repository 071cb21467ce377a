//! Calico's label selector language: a parser and an evaluator against a label map.
//!
//! Grammar and precedence follow Calico's documentation (`_selectors.mdx`) and its tokenizer
//! and parser (`libcalico-go/lib/selector`):
//!
//! ```text
//! or    := and ( "||" and )*
//! and   := op ( "&&" op )*
//! op    := "!"* ( "all()" | "global()" | "has(" label ")" | "(" or ")"
//!               | label "==" str | label "!=" str | label "in" set | label "not in" set
//!               | label "contains" str | label "starts with" str | label "ends with" str )
//! set   := "{" ( str ( "," str )* )? "}"
//! label := [a-zA-Z0-9_./-]+          str := '...' | "..."   (no escapes)
//! ```
//!
//! An empty (or all-blank) selector parses as `all()`, as in Calico; `global()` matches every
//! node, since nodes are not namespaced. `k != 'v'` and `k not in {..}` also match resources
//! without label `k`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A parsed selector, keeping its source text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    source: String,
    expr: Expr,
}

/// The selector's syntax tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    All,
    Global,
    Has(String),
    Eq(String, String),
    Ne(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Contains(String, String),
    StartsWith(String, String),
    EndsWith(String, String),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// Why a selector did not parse, and where: `position` is the byte offset into the selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorError {
    pub position: usize,
    pub message: String,
    source: String,
}

impl SelectorError {
    /// 1-based character (not byte) position, for people.
    pub fn character(&self) -> usize {
        self.source[..self.position.min(self.source.len())]
            .chars()
            .count()
            + 1
    }
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid selector {:?}: {} at character {}",
            self.source,
            self.message,
            self.character()
        )
    }
}

impl std::error::Error for SelectorError {}

impl Selector {
    pub fn parse(source: &str) -> Result<Selector, SelectorError> {
        let err = |position: usize, message: String| SelectorError {
            position,
            message,
            source: source.to_string(),
        };
        let tokens = tokenize(source).map_err(|(p, m)| err(p, m))?;
        let mut parser = Parser {
            tokens: &tokens,
            at: 0,
        };
        let expr = if parser.peek().kind == Tok::Eof {
            Expr::All
        } else {
            let expr = parser.or().map_err(|(p, m)| err(p, m))?;
            let next = parser.peek();
            if next.kind != Tok::Eof {
                return Err(err(
                    next.pos,
                    format!("unexpected {} after a complete expression", next.describe()),
                ));
            }
            expr
        };
        Ok(Selector {
            source: source.to_string(),
            expr,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// True when the source text is blank: Calico treats such a field as unset.
    pub fn is_blank(&self) -> bool {
        self.source.trim().is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.expr.eval(labels)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Expr {
    pub fn eval(&self, labels: &BTreeMap<String, String>) -> bool {
        let get = |k: &String| labels.get(k);
        match self {
            Expr::All | Expr::Global => true,
            Expr::Has(k) => labels.contains_key(k),
            Expr::Eq(k, v) => get(k) == Some(v),
            Expr::Ne(k, v) => get(k) != Some(v),
            Expr::In(k, set) => get(k).is_some_and(|v| set.contains(v)),
            Expr::NotIn(k, set) => !get(k).is_some_and(|v| set.contains(v)),
            Expr::Contains(k, s) => get(k).is_some_and(|v| v.contains(s.as_str())),
            Expr::StartsWith(k, s) => get(k).is_some_and(|v| v.starts_with(s.as_str())),
            Expr::EndsWith(k, s) => get(k).is_some_and(|v| v.ends_with(s.as_str())),
            Expr::Not(e) => !e.eval(labels),
            Expr::And(es) => es.iter().all(|e| e.eval(labels)),
            Expr::Or(es) => es.iter().any(|e| e.eval(labels)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Label,
    Str,
    LBrace,
    RBrace,
    Comma,
    Eq,
    Ne,
    In,
    NotIn,
    Not,
    Contains,
    StartsWith,
    EndsWith,
    All,
    Global,
    Has,
    LParen,
    RParen,
    And,
    Or,
    Eof,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Tok,
    value: String,
    pos: usize,
}

impl Token {
    fn describe(&self) -> String {
        match self.kind {
            Tok::Label => format!("label `{}`", self.value),
            Tok::Str => format!("string '{}'", self.value),
            Tok::LBrace => "`{`".into(),
            Tok::RBrace => "`}`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Eq => "`==`".into(),
            Tok::Ne => "`!=`".into(),
            Tok::In => "`in`".into(),
            Tok::NotIn => "`not in`".into(),
            Tok::Not => "`!`".into(),
            Tok::Contains => "`contains`".into(),
            Tok::StartsWith => "`starts with`".into(),
            Tok::EndsWith => "`ends with`".into(),
            Tok::All => "`all()`".into(),
            Tok::Global => "`global()`".into(),
            Tok::Has => format!("`has({})`", self.value),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::And => "`&&`".into(),
            Tok::Or => "`||`".into(),
            Tok::Eof => "end of selector".into(),
        }
    }
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-')
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

type PosErr = (usize, String);

fn tokenize(input: &str) -> Result<Vec<Token>, PosErr> {
    let bytes = input.as_bytes();
    let mut tokens: Vec<Token> = Vec::new();
    let mut i = 0;
    let skip_blank = |mut i: usize| {
        while i < bytes.len() && is_blank(bytes[i]) {
            i += 1;
        }
        i
    };
    let label_end = |mut j: usize| {
        while j < bytes.len() && is_label_byte(bytes[j]) {
            j += 1;
        }
        j
    };
    loop {
        i = skip_blank(i);
        if i >= bytes.len() {
            tokens.push(Token {
                kind: Tok::Eof,
                value: String::new(),
                pos: bytes.len(),
            });
            return Ok(tokens);
        }
        let start = i;
        let last_label = tokens
            .last()
            .filter(|t| t.kind == Tok::Label)
            .map(|t| t.value.clone());
        let mut push = |kind: Tok, value: &str, len: usize| {
            tokens.push(Token {
                kind,
                value: value.to_string(),
                pos: start,
            });
            start + len
        };
        let rest = &input[i..];
        i = match bytes[i] {
            b'(' => push(Tok::LParen, "", 1),
            b')' => push(Tok::RParen, "", 1),
            b'{' => push(Tok::LBrace, "", 1),
            b'}' => push(Tok::RBrace, "", 1),
            b',' => push(Tok::Comma, "", 1),
            q @ (b'"' | b'\'') => match rest[1..].find(q as char) {
                Some(end) => push(Tok::Str, &rest[1..1 + end], end + 2),
                None => return Err((start, "unterminated string".into())),
            },
            b'=' if rest.starts_with("==") => push(Tok::Eq, "", 2),
            b'=' => return Err((start, "expected `==`".into())),
            b'!' if rest.starts_with("!=") => push(Tok::Ne, "", 2),
            b'!' => push(Tok::Not, "", 1),
            b'&' if rest.starts_with("&&") => push(Tok::And, "", 2),
            b'&' => return Err((start, "expected `&&`".into())),
            b'|' if rest.starts_with("||") => push(Tok::Or, "", 2),
            b'|' => return Err((start, "expected `||`".into())),
            _ if last_label.is_some() => {
                // After a label, only an operator word may follow.
                // "starts with", "ends with", "not in": two words, any blanks between.
                let word_then = |word: &str, next: &str| -> Option<usize> {
                    rest.strip_prefix(word)?;
                    let k = skip_blank(start + word.len());
                    input[k..]
                        .starts_with(next)
                        .then_some(k + next.len() - start)
                };
                if rest.starts_with("contains") {
                    push(Tok::Contains, "", "contains".len())
                } else if let Some(len) = word_then("starts", "with") {
                    push(Tok::StartsWith, "", len)
                } else if let Some(len) = word_then("ends", "with") {
                    push(Tok::EndsWith, "", len)
                } else if let Some(len) = word_then("not", "in") {
                    push(Tok::NotIn, "", len)
                } else if rest.starts_with("in") {
                    push(Tok::In, "", 2)
                } else {
                    let label = last_label.as_deref().unwrap_or_default();
                    return Err((
                        start,
                        format!(
                            "expected an operator (==, !=, in, not in, contains, starts with, \
                             ends with) after label `{label}`"
                        ),
                    ));
                }
            }
            _ if rest.starts_with("has(") => {
                let k = skip_blank(start + 4);
                let end = label_end(k);
                if end == k {
                    return Err((k, "expected a label name in has(...)".into()));
                }
                let name = &input[k..end];
                let close = skip_blank(end);
                if bytes.get(close) != Some(&b')') {
                    return Err((close, "expected `)` to close has(".into()));
                }
                push(Tok::Has, name, close + 1 - start)
            }
            _ if rest.starts_with("all(") || rest.starts_with("global(") => {
                let (kind, word) = if rest.starts_with("all(") {
                    (Tok::All, "all(")
                } else {
                    (Tok::Global, "global(")
                };
                let close = skip_blank(start + word.len());
                if bytes.get(close) != Some(&b')') {
                    return Err((close, format!("expected `)` after `{word}`")));
                }
                push(kind, "", close + 1 - start)
            }
            b if is_label_byte(b) => {
                let end = label_end(start);
                let label = &input[start..end];
                push(Tok::Label, label, end - start)
            }
            _ => {
                let c = rest.chars().next().expect("non-empty");
                return Err((start, format!("unexpected character {c:?}")));
            }
        };
    }
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &'a Token {
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> &'a Token {
        let t = self.peek();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        t
    }

    fn or(&mut self) -> Result<Expr, PosErr> {
        let mut terms = vec![self.and()?];
        while self.peek().kind == Tok::Or {
            self.bump();
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().expect("one")
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Expr, PosErr> {
        let mut terms = vec![self.op()?];
        while self.peek().kind == Tok::And {
            self.bump();
            terms.push(self.op()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().expect("one")
        } else {
            Expr::And(terms)
        })
    }

    fn string(&mut self) -> Result<String, PosErr> {
        let t = self.bump();
        if t.kind == Tok::Str {
            Ok(t.value.clone())
        } else {
            Err((
                t.pos,
                format!("expected a quoted string, found {}", t.describe()),
            ))
        }
    }

    fn set(&mut self) -> Result<BTreeSet<String>, PosErr> {
        let open = self.bump();
        if open.kind != Tok::LBrace {
            return Err((
                open.pos,
                format!(
                    "expected a set like {{'a', 'b'}}, found {}",
                    open.describe()
                ),
            ));
        }
        let mut set = BTreeSet::new();
        if self.peek().kind == Tok::Str {
            loop {
                set.insert(self.string()?);
                if self.peek().kind == Tok::Comma {
                    self.bump();
                } else {
                    break;
                }
            }
        }
        let close = self.bump();
        if close.kind != Tok::RBrace {
            return Err((
                close.pos,
                format!("expected `}}`, found {}", close.describe()),
            ));
        }
        Ok(set)
    }

    fn op(&mut self) -> Result<Expr, PosErr> {
        let mut negated = false;
        while self.peek().kind == Tok::Not {
            self.bump();
            negated = !negated;
        }
        let t = self.bump();
        let expr = match t.kind {
            Tok::All => Expr::All,
            Tok::Global => Expr::Global,
            Tok::Has => Expr::Has(t.value.clone()),
            Tok::LParen => {
                let inner = self.or()?;
                let close = self.bump();
                if close.kind != Tok::RParen {
                    return Err((
                        close.pos,
                        format!("expected `)`, found {}", close.describe()),
                    ));
                }
                inner
            }
            Tok::Label => {
                let label = t.value.clone();
                let op = self.bump();
                match op.kind {
                    Tok::Eq => Expr::Eq(label, self.string()?),
                    Tok::Ne => Expr::Ne(label, self.string()?),
                    Tok::Contains => Expr::Contains(label, self.string()?),
                    Tok::StartsWith => Expr::StartsWith(label, self.string()?),
                    Tok::EndsWith => Expr::EndsWith(label, self.string()?),
                    Tok::In => Expr::In(label, self.set()?),
                    Tok::NotIn => Expr::NotIn(label, self.set()?),
                    _ => {
                        return Err((
                            op.pos,
                            format!(
                                "expected an operator after label `{label}`, found {}",
                                op.describe()
                            ),
                        ));
                    }
                }
            }
            _ => {
                return Err((
                    t.pos,
                    format!("expected an expression, found {}", t.describe()),
                ));
            }
        };
        Ok(if negated {
            Expr::Not(Box::new(expr))
        } else {
            expr
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn m(sel: &str, pairs: &[(&str, &str)]) -> bool {
        Selector::parse(sel)
            .unwrap_or_else(|e| panic!("{e}"))
            .matches(&labels(pairs))
    }

    fn err(sel: &str) -> SelectorError {
        Selector::parse(sel).expect_err(sel)
    }

    #[test]
    fn all_matches_everything_including_no_labels() {
        assert!(m("all()", &[]));
        assert!(m("all( )", &[("a", "b")]));
    }

    #[test]
    fn empty_selector_means_all() {
        assert_eq!(Selector::parse("").unwrap().expr(), &Expr::All);
        assert_eq!(Selector::parse("  ").unwrap().expr(), &Expr::All);
        assert!(Selector::parse(" ").unwrap().is_blank());
    }

    #[test]
    fn not_all_matches_nothing() {
        assert!(!m("!all()", &[("a", "b")]));
    }

    #[test]
    fn global_matches_every_node() {
        assert!(m("global()", &[]));
        assert!(m("global() && rack == 'a'", &[("rack", "a")]));
    }

    #[test]
    fn has_checks_presence_not_value() {
        assert!(m("has(rr)", &[("rr", "")]));
        assert!(!m("has(rr)", &[("other", "x")]));
        assert!(m("!has(rr)", &[("other", "x")]));
        assert!(m("has( rr )", &[("rr", "x")]));
    }

    #[test]
    fn equality_needs_the_label_with_that_value() {
        assert!(m("rack == 'r1'", &[("rack", "r1")]));
        assert!(m("rack == \"r1\"", &[("rack", "r1")]));
        assert!(!m("rack == 'r1'", &[("rack", "r2")]));
        assert!(!m("rack == 'r1'", &[]));
    }

    #[test]
    fn inequality_matches_missing_label() {
        assert!(m("rack != 'r1'", &[]));
        assert!(m("rack != 'r1'", &[("rack", "r2")]));
        assert!(!m("rack != 'r1'", &[("rack", "r1")]));
    }

    #[test]
    fn in_and_not_in_sets() {
        assert!(m("zone in {'a','b'}", &[("zone", "b")]));
        assert!(!m("zone in {'a', 'b'}", &[("zone", "c")]));
        assert!(!m("zone in {'a'}", &[]));
        assert!(m("zone not in {'a','b'}", &[("zone", "c")]));
        assert!(m("zone not in {'a'}", &[]));
        assert!(!m("zone not  in {'a'}", &[("zone", "a")]));
        assert!(!m("zone in {}", &[("zone", "a")]));
    }

    #[test]
    fn substring_operators() {
        assert!(m("host contains 'ra'", &[("host", "rack1")]));
        assert!(m("host starts with 'rack'", &[("host", "rack1")]));
        assert!(m("host ends with '1'", &[("host", "rack1")]));
        assert!(!m("host ends with '2'", &[("host", "rack1")]));
        assert!(!m("host contains 'x'", &[]));
    }

    #[test]
    fn and_binds_tighter_than_or() {
        // Calico's documented example: (!has(l)) || ((l starts with 'prod') && role in {...}).
        let sel =
            "! has(my-label) || my-label starts with 'prod' && role in {'frontend','business'}";
        assert!(m(sel, &[]));
        assert!(m(sel, &[("my-label", "prod-1"), ("role", "frontend")]));
        assert!(!m(sel, &[("my-label", "prod-1"), ("role", "db")]));
        assert!(!m(sel, &[("my-label", "dev"), ("role", "frontend")]));
    }

    #[test]
    fn parentheses_group() {
        assert!(!m("(a == 'x' || b == 'y') && c == 'z'", &[("a", "x")]));
        assert!(m(
            "(a == 'x' || b == 'y') && c == 'z'",
            &[("b", "y"), ("c", "z")]
        ));
        assert!(m("!(a == 'x')", &[("a", "y")]));
    }

    #[test]
    fn double_negation_cancels() {
        assert!(m("!!has(a)", &[("a", "")]));
    }

    #[test]
    fn label_keys_may_hold_prefixes_and_dots() {
        assert!(m(
            "kubernetes.io/hostname == 'n1'",
            &[("kubernetes.io/hostname", "n1")]
        ));
        assert!(m(
            "has(topology.kubernetes.io/zone)",
            &[("topology.kubernetes.io/zone", "a")]
        ));
    }

    #[test]
    fn unterminated_string_reports_its_start() {
        let e = err("rack == 'r1");
        assert_eq!(e.position, 8);
        assert!(e.message.contains("unterminated string"), "{e}");
        assert_eq!(e.character(), 9);
    }

    #[test]
    fn unclosed_has_reports_the_end() {
        let e = err("has(rack");
        assert_eq!(e.position, 8);
        assert!(e.to_string().contains("at character 9"), "{e}");
    }

    #[test]
    fn missing_operator_after_label() {
        let e = err("rack 'r1'");
        assert_eq!(e.position, 5);
        assert!(e.message.contains("after label `rack`"), "{e}");
    }

    #[test]
    fn single_equals_is_an_error() {
        let e = err("rack = 'r1'");
        assert_eq!(e.position, 5);
        assert!(e.message.contains("=="), "{e}");
    }

    #[test]
    fn value_must_be_quoted() {
        let e = err("rack == r1");
        assert_eq!(e.position, 8);
        assert!(e.message.contains("quoted string"), "{e}");
    }

    #[test]
    fn dangling_and_is_an_error() {
        let e = err("has(a) &&");
        assert_eq!(e.position, 9);
        assert!(e.message.contains("end of selector"), "{e}");
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        let e = err("has(a) has(b)");
        assert_eq!(e.position, 7);
        assert!(e.message.contains("after a complete expression"), "{e}");
    }

    #[test]
    fn unbalanced_parenthesis() {
        let e = err("(has(a) || has(b)");
        assert_eq!(e.position, 17);
        assert!(e.message.contains("`)`"), "{e}");
        assert_eq!(err("has(a))").position, 6);
    }

    #[test]
    fn unclosed_set() {
        let e = err("a in {'x', 'y'");
        assert_eq!(e.position, 14);
        assert!(e.message.contains("`}`"), "{e}");
        assert_eq!(err("a in 'x'").position, 5);
    }

    #[test]
    fn single_ampersand_and_pipe() {
        assert_eq!(err("has(a) & has(b)").position, 7);
        assert_eq!(err("has(a) | has(b)").position, 7);
    }

    #[test]
    fn unexpected_character() {
        let e = err("has(a) && #");
        assert_eq!(e.position, 10);
        assert!(e.message.contains("'#'"), "{e}");
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let e = err("a == 'é' &&");
        assert_eq!(e.position, 12);
        assert_eq!(e.character(), 12);
    }
}
