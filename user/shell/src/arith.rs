//! Arithmetic expansion (XCU §2.6.4): signed 64-bit integers with C's operators, precedence
//! and associativity; variables by name (unset or empty is 0), assignments (`=`, `+=`, ...),
//! `++`/`--`, `?:`, and `,`. Overflow wraps; division by zero is an error.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Variables as arithmetic sees them.
pub trait Vars {
    /// The value of a variable.
    fn get(&self, name: &str) -> Option<String>;
    /// Sets a variable (to the decimal text of `value`).
    fn set(&mut self, name: &str, value: i64) -> Result<(), String>;
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(i64),
    Name(String),
    Op(&'static str),
}

const OPS: &[&str] = &[
    "<<=", ">>=", "++", "--", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "+=", "-=", "*=",
    "/=", "%=", "&=", "^=", "|=", "+", "-", "*", "/", "%", "<", ">", "&", "^", "|", "!", "~", "?",
    ":", "=", "(", ")", ",",
];

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            let text: String = b[start..i].iter().collect();
            out.push(Tok::Num(parse_number(&text)?));
        } else if c == '_' || c.is_ascii_alphabetic() {
            let start = i;
            while i < b.len() && (b[i] == '_' || b[i].is_ascii_alphanumeric()) {
                i += 1;
            }
            out.push(Tok::Name(b[start..i].iter().collect()));
        } else {
            let rest: String = b[i..b.len().min(i + 3)].iter().collect();
            let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) else {
                return Err(format!("unexpected \"{c}\""));
            };
            i += op.chars().count();
            out.push(Tok::Op(op));
        }
    }
    Ok(out)
}

/// Parses an integer as C writes them: decimal, `0x` hex, `0` octal (with an optional sign).
pub fn parse_number(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let parsed = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(hex, 16)
    } else if digits.len() > 1 && digits.starts_with('0') {
        u64::from_str_radix(&digits[1..], 8)
    } else {
        digits.parse::<u64>()
    };
    let v = parsed.map_err(|_| format!("bad number \"{text}\""))? as i64;
    Ok(if neg { v.wrapping_neg() } else { v })
}

#[derive(Debug)]
enum Expr {
    Num(i64),
    Var(String),
    Unary(&'static str, Box<Expr>),
    /// `++x` / `--x` (delta) or `x++` / `x--` (post).
    Step {
        name: String,
        delta: i64,
        post: bool,
    },
    Binary(&'static str, Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    Assign(String, &'static str, Box<Expr>),
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

fn binary_prec(op: &str) -> Option<u8> {
    Some(match op {
        "||" => 1,
        "&&" => 2,
        "|" => 3,
        "^" => 4,
        "&" => 5,
        "==" | "!=" => 6,
        "<" | "<=" | ">" | ">=" => 7,
        "<<" | ">>" => 8,
        "+" | "-" => 9,
        "*" | "/" | "%" => 10,
        _ => return None,
    })
}

impl Parser {
    fn peek_op(&self) -> Option<&'static str> {
        match self.toks.get(self.pos) {
            Some(Tok::Op(op)) => Some(op),
            _ => None,
        }
    }

    fn comma(&mut self) -> Result<Expr, String> {
        let mut e = self.assign()?;
        while self.peek_op() == Some(",") {
            self.pos += 1;
            let r = self.assign()?;
            e = Expr::Binary(",", Box::new(e), Box::new(r));
        }
        Ok(e)
    }

    fn assign(&mut self) -> Result<Expr, String> {
        if let (Some(Tok::Name(name)), Some(Tok::Op(op))) =
            (self.toks.get(self.pos), self.toks.get(self.pos + 1))
        {
            let op: &'static str = op;
            if matches!(
                op,
                "=" | "+=" | "-=" | "*=" | "/=" | "%=" | "<<=" | ">>=" | "&=" | "^=" | "|="
            ) {
                let name = name.clone();
                self.pos += 2;
                let value = self.assign()?;
                return Ok(Expr::Assign(name, op, Box::new(value)));
            }
        }
        self.conditional()
    }

    fn conditional(&mut self) -> Result<Expr, String> {
        let c = self.binary(1)?;
        if self.peek_op() != Some("?") {
            return Ok(c);
        }
        self.pos += 1;
        let a = self.comma()?;
        if self.peek_op() != Some(":") {
            return Err("expected \":\"".into());
        }
        self.pos += 1;
        let b = self.conditional()?;
        Ok(Expr::Cond(Box::new(c), Box::new(a), Box::new(b)))
    }

    fn binary(&mut self, min: u8) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while let Some(op) = self.peek_op() {
            let Some(prec) = binary_prec(op) else { break };
            if prec < min {
                break;
            }
            self.pos += 1;
            let right = self.binary(prec + 1)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek_op() {
            Some(op @ ("+" | "-" | "!" | "~")) => {
                self.pos += 1;
                Ok(Expr::Unary(op, Box::new(self.unary()?)))
            }
            Some(op @ ("++" | "--")) => {
                self.pos += 1;
                match self.toks.get(self.pos) {
                    Some(Tok::Name(n)) => {
                        let name = n.clone();
                        self.pos += 1;
                        Ok(Expr::Step {
                            name,
                            delta: if op == "++" { 1 } else { -1 },
                            post: false,
                        })
                    }
                    _ => Err(format!("\"{op}\" needs a variable")),
                }
            }
            _ => self.postfix(),
        }
    }

    fn postfix(&mut self) -> Result<Expr, String> {
        let tok = self.toks.get(self.pos).cloned();
        self.pos += 1;
        match tok {
            Some(Tok::Num(n)) => Ok(Expr::Num(n)),
            Some(Tok::Name(name)) => match self.peek_op() {
                Some(op @ ("++" | "--")) => {
                    self.pos += 1;
                    Ok(Expr::Step {
                        name,
                        delta: if op == "++" { 1 } else { -1 },
                        post: true,
                    })
                }
                _ => Ok(Expr::Var(name)),
            },
            Some(Tok::Op("(")) => {
                let e = self.comma()?;
                if self.peek_op() != Some(")") {
                    return Err("expected \")\"".into());
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Op(op)) => Err(format!("unexpected \"{op}\"")),
            None => Err("expression expected".into()),
        }
    }
}

fn var_value(vars: &dyn Vars, name: &str) -> Result<i64, String> {
    match vars.get(name) {
        None => Ok(0),
        Some(v) if v.trim().is_empty() => Ok(0),
        Some(v) => parse_number(&v).map_err(|_| format!("{name}: not a number: \"{v}\"")),
    }
}

fn apply(op: &str, a: i64, b: i64) -> Result<i64, String> {
    Ok(match op {
        "+" => a.wrapping_add(b),
        "-" => a.wrapping_sub(b),
        "*" => a.wrapping_mul(b),
        "/" | "%" if b == 0 => return Err("division by zero".into()),
        "/" => a.wrapping_div(b),
        "%" => a.wrapping_rem(b),
        "<<" => a.wrapping_shl(b as u32),
        ">>" => a.wrapping_shr(b as u32),
        "<" => i64::from(a < b),
        "<=" => i64::from(a <= b),
        ">" => i64::from(a > b),
        ">=" => i64::from(a >= b),
        "==" => i64::from(a == b),
        "!=" => i64::from(a != b),
        "&" => a & b,
        "^" => a ^ b,
        "|" => a | b,
        "," => b,
        _ => return Err(format!("unknown operator \"{op}\"")),
    })
}

fn eval_expr(e: &Expr, vars: &mut dyn Vars) -> Result<i64, String> {
    Ok(match e {
        Expr::Num(n) => *n,
        Expr::Var(name) => var_value(vars, name)?,
        Expr::Unary(op, x) => {
            let v = eval_expr(x, vars)?;
            match *op {
                "-" => v.wrapping_neg(),
                "!" => i64::from(v == 0),
                "~" => !v,
                _ => v,
            }
        }
        Expr::Step { name, delta, post } => {
            let old = var_value(vars, name)?;
            let new = old.wrapping_add(*delta);
            vars.set(name, new)?;
            if *post { old } else { new }
        }
        Expr::Binary("&&", a, b) => i64::from(eval_expr(a, vars)? != 0 && eval_expr(b, vars)? != 0),
        Expr::Binary("||", a, b) => i64::from(eval_expr(a, vars)? != 0 || eval_expr(b, vars)? != 0),
        Expr::Binary(op, a, b) => {
            let x = eval_expr(a, vars)?;
            let y = eval_expr(b, vars)?;
            apply(op, x, y)?
        }
        Expr::Cond(c, a, b) => {
            if eval_expr(c, vars)? != 0 {
                eval_expr(a, vars)?
            } else {
                eval_expr(b, vars)?
            }
        }
        Expr::Assign(name, op, value) => {
            let v = eval_expr(value, vars)?;
            let new = if *op == "=" {
                v
            } else {
                let old = var_value(vars, name)?;
                apply(&op[..op.len() - 1], old, v)?
            };
            vars.set(name, new)?;
            new
        }
    })
}

/// Evaluates an expression; an empty one is 0.
pub fn eval(expr: &str, vars: &mut dyn Vars) -> Result<i64, String> {
    let toks = tokenize(expr)?;
    if toks.is_empty() {
        return Ok(0);
    }
    let mut p = Parser { toks, pos: 0 };
    let e = p.comma()?;
    if p.pos < p.toks.len() {
        let rest = match &p.toks[p.pos] {
            Tok::Num(n) => n.to_string(),
            Tok::Name(n) => n.clone(),
            Tok::Op(o) => (*o).to_string(),
        };
        return Err(format!("unexpected \"{rest}\""));
    }
    eval_expr(&e, vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Map(HashMap<String, String>);

    impl Vars for Map {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
        fn set(&mut self, name: &str, value: i64) -> Result<(), String> {
            self.0.insert(name.into(), value.to_string());
            Ok(())
        }
    }

    fn ev(s: &str) -> Result<i64, String> {
        eval(s, &mut Map::default())
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(ev("1 + 2 * 3"), Ok(7));
        assert_eq!(ev("(1 + 2) * 3"), Ok(9));
        assert_eq!(ev("10 - 4 - 3"), Ok(3));
        assert_eq!(ev("2 * 3 % 4"), Ok(2));
        assert_eq!(ev("1 << 4 | 1"), Ok(17));
        assert_eq!(ev("-3 + +5"), Ok(2));
        assert_eq!(ev("!0 + !5 + ~0"), Ok(0));
        assert_eq!(ev("3 > 2 && 2 > 1"), Ok(1));
        assert_eq!(ev("0 || 0"), Ok(0));
        assert_eq!(ev("1 ? 10 : 20"), Ok(10));
        assert_eq!(ev("0 ? 10 : 0 ? 20 : 30"), Ok(30));
        assert_eq!(ev("0x10 + 010 + 10"), Ok(34));
        assert_eq!(ev(""), Ok(0));
        assert_eq!(ev("7 / 2"), Ok(3));
        assert_eq!(ev("-7 % 3"), Ok(-1));
    }

    #[test]
    fn variables_and_assignment() {
        let mut m = Map::default();
        m.0.insert("x".into(), "5".into());
        assert_eq!(eval("x * 2", &mut m), Ok(10));
        assert_eq!(eval("y + 1", &mut m), Ok(1), "unset is 0");
        assert_eq!(eval("y = x + 1", &mut m), Ok(6));
        assert_eq!(m.0["y"], "6");
        assert_eq!(eval("y += 4", &mut m), Ok(10));
        assert_eq!(eval("x++", &mut m), Ok(5));
        assert_eq!(m.0["x"], "6");
        assert_eq!(eval("--x", &mut m), Ok(5));
        assert_eq!(eval("a = b = 3, a + b", &mut m), Ok(6));
        assert_eq!(eval("0 && (z = 1)", &mut m), Ok(0));
        assert!(!m.0.contains_key("z"), "&& short-circuits");
    }

    #[test]
    fn errors() {
        assert!(ev("1 / 0").unwrap_err().contains("division by zero"));
        assert!(ev("1 +").is_err());
        assert!(ev("(1").is_err());
        assert!(ev("1 2").is_err());
        assert!(ev("1 @ 2").is_err());
        let mut m = Map::default();
        m.0.insert("s".into(), "abc".into());
        assert!(eval("s + 1", &mut m).unwrap_err().contains("not a number"));
    }
}
