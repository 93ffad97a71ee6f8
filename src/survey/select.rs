//! Selection expressions over catalogue columns, as a survey's own selection is written:
//! `MAG_AUTO < 21 && Z_B >= 0 && Z_B <= 0.8 && Flag < 4 && IMAFLAGS_ISO == 0 && (MASK & 28668) == 0`.
//!
//! Arithmetic (`+ - * /`), comparisons (`< <= > >= == !=`), bitwise `&` and `|` on integers,
//! `!`, `&&`, `||` and parentheses; column names are matched without regard to case. A comparison
//! with a missing value (NaN) is false, as in SQL and numpy. The top-level `&&` terms are the
//! "cuts" a report counts one by one (how many objects each removed, in order).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number(f64),
    Column(String),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(Op, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Or,
    And,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    BitOr,
    BitAnd,
    Add,
    Sub,
    Mul,
    Div,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Or => "||",
            Op::And => "&&",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::BitOr => "|",
            Op::BitAnd => "&",
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
        }
    }
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::Number(v) => write!(f, "{v}"),
            Expr::Column(c) => write!(f, "{c}"),
            Expr::Not(e) => write!(f, "!{e}"),
            Expr::Neg(e) => write!(f, "-{e}"),
            Expr::Binary(op, a, b) => match op {
                Op::Or | Op::BitOr | Op::BitAnd | Op::Add | Op::Sub => write!(f, "({a} {} {b})", op.symbol()),
                _ => write!(f, "{a} {} {b}", op.symbol()),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("selection {text:?}: {detail} (at character {at})")]
pub struct ParseError {
    pub text: String,
    pub at: usize,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Ident(String),
    Op(&'static str),
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ParseError> {
    let err = |at: usize, detail: String| ParseError { text: text.into(), at, detail };
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_digit() || (c == '.' && bytes.get(i + 1).is_some_and(|b| b.is_ascii_digit())) {
            while i < bytes.len() {
                let d = bytes[i] as char;
                let exponent_sign = (d == '+' || d == '-') && matches!(bytes[i - 1], b'e' | b'E');
                if d.is_ascii_alphanumeric() || d == '.' || exponent_sign {
                    i += 1;
                } else {
                    break;
                }
            }
            let word = &text[start..i];
            let value = if let Some(hex) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
                i64::from_str_radix(hex, 16).map(|v| v as f64).ok()
            } else {
                word.parse::<f64>().ok()
            };
            out.push((start, Token::Number(value.ok_or_else(|| err(start, format!("{word:?} is not a number")))?)));
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.') {
                i += 1;
            }
            let word = &text[start..i];
            let token = match word.to_ascii_lowercase().as_str() {
                "and" => Token::Op("&&"),
                "or" => Token::Op("||"),
                "not" => Token::Op("!"),
                _ => Token::Ident(word.to_string()),
            };
            out.push((start, token));
            continue;
        }
        let two = text.get(i..i + 2).unwrap_or("");
        let op: Option<&'static str> = match two {
            "&&" => Some("&&"),
            "||" => Some("||"),
            "<=" => Some("<="),
            ">=" => Some(">="),
            "==" => Some("=="),
            "!=" => Some("!="),
            _ => None,
        };
        if let Some(op) = op {
            out.push((start, Token::Op(op)));
            i += 2;
            continue;
        }
        let token = match c {
            '(' => Token::Open,
            ')' => Token::Close,
            '<' => Token::Op("<"),
            '>' => Token::Op(">"),
            '&' => Token::Op("&"),
            '|' => Token::Op("|"),
            '+' => Token::Op("+"),
            '-' => Token::Op("-"),
            '*' => Token::Op("*"),
            '/' => Token::Op("/"),
            '!' => Token::Op("!"),
            '=' => Token::Op("=="),
            other => return Err(err(start, format!("unexpected {other:?}"))),
        };
        out.push((start, token));
        i += 1;
    }
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(usize, Token)>,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, detail: impl Into<String>) -> ParseError {
        let at = self.tokens.get(self.pos).map(|t| t.0).unwrap_or(self.text.len());
        ParseError { text: self.text.into(), at, detail: detail.into() }
    }

    fn peek_op(&self) -> Option<&'static str> {
        match self.tokens.get(self.pos) {
            Some((_, Token::Op(op))) => Some(op),
            _ => None,
        }
    }

    fn binary(
        &mut self,
        ops: &[(&str, Op)],
        next: fn(&mut Self) -> Result<Expr, ParseError>,
    ) -> Result<Expr, ParseError> {
        let mut left = next(self)?;
        while let Some(op) = self.peek_op().and_then(|s| ops.iter().find(|(t, _)| *t == s).map(|(_, o)| *o)) {
            self.pos += 1;
            let right = next(self)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        self.binary(&[("||", Op::Or)], Self::and)
    }
    fn and(&mut self) -> Result<Expr, ParseError> {
        self.binary(&[("&&", Op::And)], Self::not)
    }
    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.peek_op() == Some("!") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }
    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let left = self.bit_or()?;
        let op = match self.peek_op() {
            Some("<") => Op::Lt,
            Some("<=") => Op::Le,
            Some(">") => Op::Gt,
            Some(">=") => Op::Ge,
            Some("==") => Op::Eq,
            Some("!=") => Op::Ne,
            _ => return Ok(left),
        };
        self.pos += 1;
        let right = self.bit_or()?;
        if matches!(self.peek_op(), Some("<" | "<=" | ">" | ">=" | "==" | "!=")) {
            return Err(self.err("chained comparison: write `a < b && b < c`"));
        }
        Ok(Expr::Binary(op, Box::new(left), Box::new(right)))
    }
    fn bit_or(&mut self) -> Result<Expr, ParseError> {
        self.binary(&[("|", Op::BitOr)], Self::bit_and)
    }
    fn bit_and(&mut self) -> Result<Expr, ParseError> {
        self.binary(&[("&", Op::BitAnd)], Self::sum)
    }
    fn sum(&mut self) -> Result<Expr, ParseError> {
        self.binary(&[("+", Op::Add), ("-", Op::Sub)], Self::product)
    }
    fn product(&mut self) -> Result<Expr, ParseError> {
        self.binary(&[("*", Op::Mul), ("/", Op::Div)], Self::unary)
    }
    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.peek_op() == Some("-") {
            self.pos += 1;
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        if self.peek_op() == Some("+") {
            self.pos += 1;
            return self.unary();
        }
        self.primary()
    }
    fn primary(&mut self) -> Result<Expr, ParseError> {
        let token = self.tokens.get(self.pos).map(|t| t.1.clone());
        match token {
            Some(Token::Number(v)) => {
                self.pos += 1;
                Ok(Expr::Number(v))
            }
            Some(Token::Ident(name)) => {
                self.pos += 1;
                Ok(Expr::Column(name))
            }
            Some(Token::Open) => {
                self.pos += 1;
                let e = self.or()?;
                if !matches!(self.tokens.get(self.pos), Some((_, Token::Close))) {
                    return Err(self.err("missing `)`"));
                }
                self.pos += 1;
                Ok(e)
            }
            Some(_) => Err(self.err("expected a number, a column or `(`")),
            None => Err(self.err("expression ends too early")),
        }
    }
}

/// Parses a selection; the error says where it went wrong.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(text)?;
    let mut p = Parser { text, tokens, pos: 0 };
    if p.tokens.is_empty() {
        return Err(p.err("empty selection"));
    }
    let e = p.or()?;
    if p.pos != p.tokens.len() {
        return Err(p.err("unexpected text after the expression"));
    }
    Ok(e)
}

impl Expr {
    /// The top-level `&&` terms, in order: the cuts a report counts.
    pub fn cuts(&self) -> Vec<&Expr> {
        match self {
            Expr::Binary(Op::And, a, b) => {
                let mut v = a.cuts();
                v.extend(b.cuts());
                v
            }
            other => vec![other],
        }
    }

    /// Every column the expression names, as written.
    pub fn columns(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_columns(&mut out);
        out.sort();
        out.dedup();
        out
    }

    fn collect_columns(&self, out: &mut Vec<String>) {
        match self {
            Expr::Number(_) => {}
            Expr::Column(c) => out.push(c.clone()),
            Expr::Not(e) | Expr::Neg(e) => e.collect_columns(out),
            Expr::Binary(_, a, b) => {
                a.collect_columns(out);
                b.collect_columns(out);
            }
        }
    }

    /// Value for one row; `column(name)` gives a column's value (names as written).
    pub fn eval(&self, column: &dyn Fn(&str) -> f64) -> f64 {
        let truth = |b: bool| if b { 1.0 } else { 0.0 };
        match self {
            Expr::Number(v) => *v,
            Expr::Column(c) => column(c),
            Expr::Not(e) => truth(!is_true(e.eval(column))),
            Expr::Neg(e) => -e.eval(column),
            Expr::Binary(op, a, b) => {
                let x = a.eval(column);
                // Short-circuit like the languages this syntax comes from.
                match op {
                    Op::And if !is_true(x) => return 0.0,
                    Op::Or if is_true(x) => return 1.0,
                    _ => {}
                }
                let y = b.eval(column);
                match op {
                    Op::Or | Op::And => truth(is_true(y)),
                    Op::Lt => truth(x < y),
                    Op::Le => truth(x <= y),
                    Op::Gt => truth(x > y),
                    Op::Ge => truth(x >= y),
                    Op::Eq => truth(x == y),
                    Op::Ne => truth(x != y && !x.is_nan() && !y.is_nan()),
                    Op::BitOr | Op::BitAnd => match (as_int(x), as_int(y)) {
                        (Some(i), Some(j)) => (if *op == Op::BitAnd { i & j } else { i | j }) as f64,
                        _ => f64::NAN,
                    },
                    Op::Add => x + y,
                    Op::Sub => x - y,
                    Op::Mul => x * y,
                    Op::Div => x / y,
                }
            }
        }
    }
}

/// Non-zero and not NaN.
fn is_true(v: f64) -> bool {
    v != 0.0 && !v.is_nan()
}

/// Bit operations need whole numbers; a fractional or missing value has no bits.
fn as_int(v: f64) -> Option<i64> {
    (v.is_finite() && v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15).then_some(v as i64)
}

/// How many rows each cut removed, in order, among the rows every earlier cut kept.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CutFlow {
    pub cut: String,
    pub removed: usize,
    pub remaining: usize,
}

/// Applies `expr` to `n` rows; returns which rows pass and the cut-flow report.
pub fn apply(expr: &Expr, n: usize, column: &dyn Fn(&str, usize) -> f64) -> (Vec<bool>, Vec<CutFlow>) {
    let mut keep = vec![true; n];
    let mut flow = Vec::new();
    let mut remaining = n;
    for cut in expr.cuts() {
        let mut removed = 0;
        for (row, k) in keep.iter_mut().enumerate() {
            if *k && !is_true(cut.eval(&|c| column(c, row))) {
                *k = false;
                removed += 1;
            }
        }
        remaining -= removed;
        flow.push(CutFlow { cut: cut.to_string(), removed, remaining });
    }
    (keep, flow)
}

/// Resolves the expression's column names against the available ones (case-insensitive);
/// returns name-as-written -> name-as-available, or the first unknown name.
pub fn resolve_columns<'a>(
    expr: &Expr,
    available: impl IntoIterator<Item = &'a str> + Clone,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for name in expr.columns() {
        let found = available.clone().into_iter().find(|a| a.eq_ignore_ascii_case(&name));
        match found {
            Some(a) => {
                out.insert(name, a.to_string());
            }
            None => return Err(name),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval_with(text: &str, values: &[(&str, f64)]) -> f64 {
        let e = parse(text).unwrap();
        e.eval(&|c| values.iter().find(|(n, _)| n.eq_ignore_ascii_case(c)).map(|(_, v)| *v).unwrap_or(f64::NAN))
    }

    #[test]
    fn the_kids_selection_parses_and_selects_what_it_says() {
        let text = "MAG_AUTO < 21 && Z_B >= 0 && Z_B <= 0.8 && Flag < 4 && IMAFLAGS_ISO == 0 && (MASK & 28668) == 0";
        let good = [("MAG_AUTO", 20.5), ("Z_B", 0.4), ("Flag", 0.0), ("IMAFLAGS_ISO", 0.0), ("MASK", 1.0)];
        assert_eq!(eval_with(text, &good), 1.0);
        // 28668 = 0b110_1111_1111_1100: bit 2 (value 4) is in it, bit 0 (value 1) is not.
        let masked = [("MAG_AUTO", 20.5), ("Z_B", 0.4), ("Flag", 0.0), ("IMAFLAGS_ISO", 0.0), ("MASK", 4.0)];
        assert_eq!(eval_with(text, &masked), 0.0);
        let faint = [("MAG_AUTO", 21.0), ("Z_B", 0.4), ("Flag", 0.0), ("IMAFLAGS_ISO", 0.0), ("MASK", 0.0)];
        assert_eq!(eval_with(text, &faint), 0.0);
        assert_eq!(parse(text).unwrap().cuts().len(), 6);
    }

    #[test]
    fn precedence_is_the_c_one_except_that_bits_bind_tighter_than_comparisons() {
        assert_eq!(eval_with("1 + 2 * 3 == 7", &[]), 1.0);
        assert_eq!(eval_with("(1 + 2) * 3", &[]), 9.0);
        assert_eq!(eval_with("6 & 3 == 2", &[]), 1.0);
        assert_eq!(eval_with("1 || 0 && 0", &[]), 1.0);
        assert_eq!(eval_with("!(1 < 2) || 2 - -1 == 3", &[]), 1.0);
        assert_eq!(eval_with("a < 1 and not b > 2", &[("a", 0.0), ("b", 1.0)]), 1.0);
        assert_eq!(eval_with("0x10 | 1", &[]), 17.0);
        assert_eq!(eval_with("1.5e-1 * 2e+1", &[]), 3.0);
    }

    #[test]
    fn missing_values_fail_every_comparison() {
        assert_eq!(eval_with("x < 1", &[("x", f64::NAN)]), 0.0);
        assert_eq!(eval_with("x >= 1", &[("x", f64::NAN)]), 0.0);
        assert_eq!(eval_with("x != 1", &[("x", f64::NAN)]), 0.0);
        assert_eq!(eval_with("(x & 1) == 0", &[("x", 0.5)]), 0.0);
    }

    #[test]
    fn errors_say_where() {
        let e = parse("MAG_AUTO < < 3").unwrap_err();
        assert_eq!(e.at, 11);
        assert!(parse("(a < 1").unwrap_err().detail.contains(")"));
        assert!(parse("a < 1 < 2").unwrap_err().detail.contains("chained"));
        assert!(parse("a # 1").unwrap_err().detail.contains("'#'"));
        assert!(parse("  ").is_err());
        assert!(parse("a < 1 b").unwrap_err().detail.contains("after"));
    }

    #[test]
    fn cut_flow_counts_each_cut_among_the_survivors() {
        let e = parse("x > 1 && x < 5 && y == 0").unwrap();
        let xs = [0.0, 2.0, 3.0, 6.0, 4.0];
        let ys = [0.0, 1.0, 0.0, 0.0, 0.0];
        let (keep, flow) = apply(&e, 5, &|c, r| if c == "x" { xs[r] } else { ys[r] });
        assert_eq!(keep, vec![false, false, true, false, true]);
        assert_eq!(flow.iter().map(|f| f.removed).collect::<Vec<_>>(), vec![1, 1, 1]);
        assert_eq!(flow.last().unwrap().remaining, 2);
        assert_eq!(flow[0].cut, "x > 1");
    }

    #[test]
    fn columns_resolve_without_regard_to_case_and_unknown_ones_are_named() {
        let e = parse("flag < 4 && Z_B > 0").unwrap();
        let map = resolve_columns(&e, ["Flag", "Z_B", "MAG_AUTO"]).unwrap();
        assert_eq!(map["flag"], "Flag");
        let e = parse("MAG_APER < 21").unwrap();
        assert_eq!(resolve_columns(&e, ["Flag"]).unwrap_err(), "MAG_APER");
    }
}
