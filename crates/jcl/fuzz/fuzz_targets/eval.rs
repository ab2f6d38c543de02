//! Fuzz target: the evaluator on random IR. The input drives a generator of statements
//! (assignments of every operator to paths of every namespace, copies) over expressions of
//! every kind (literals, paths with computed indexes, every operator, every built-in
//! function with any number of arguments, regex matches), run against a random context.
//! Nothing may panic, and the evaluator's promises must hold: it is deterministic, a
//! failing statement changes nothing, the read-only namespaces are never changed, every
//! result is JSON that serialises, and the IR survives its serde round trip.
#![no_main]

use jcl::{AssignOp, BinOp, Code, Context, Expr, Func, Ns, Path, Seg, Stmt, UnOp};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// Few names, so that reads find what writes left.
const KEYS: [&str; 6] = ["x", "y", "list", "s", "0", ""];
const UNOPS: [UnOp; 2] = [UnOp::Not, UnOp::Neg];
const REGEXES: [&str; 6] = ["^a", "b+$", "(x|y)\\d", "[", "", "(?i)S"];

/// Bounds the size of what is generated, so one input cannot run for long.
struct Gen<'a, 'b> {
    u: &'a mut Unstructured<'b>,
    nodes: u32,
}

impl Gen<'_, '_> {
    fn pick<T: Copy>(&mut self, items: &[T]) -> Result<T> {
        Ok(*self.u.choose(items)?)
    }

    fn key(&mut self) -> Result<String> {
        if self.u.ratio(1, 8)? {
            let s: String = self.u.arbitrary()?;
            return Ok(s.chars().take(8).collect());
        }
        Ok(self.pick(&KEYS)?.to_owned())
    }

    fn number(&mut self) -> Result<Value> {
        Ok(match self.u.int_in_range(0..=4)? {
            0 => Value::from(self.u.int_in_range(-3i64..=3)?),
            1 => Value::from(self.u.arbitrary::<i64>()?),
            2 => Value::from(self.u.arbitrary::<u64>()?),
            3 => serde_json::Number::from_f64(self.u.arbitrary::<f64>()?)
                .map_or(Value::Null, Value::Number),
            _ => Value::from(f64::from(self.u.int_in_range(-4000i32..=4000)?) / 4.0),
        })
    }

    fn value(&mut self, depth: u32) -> Result<Value> {
        let kinds = if depth >= 3 { 4 } else { 6 };
        Ok(match self.u.int_in_range(0..=kinds)? {
            0 => Value::Null,
            1 => Value::Bool(self.u.arbitrary()?),
            2 | 3 => self.number()?,
            4 => {
                let s: String = self.u.arbitrary()?;
                Value::String(s.chars().take(32).collect())
            }
            5 => {
                let n = self.u.int_in_range(0..=4)?;
                Value::Array((0..n).map(|_| self.value(depth + 1)).collect::<Result<_>>()?)
            }
            _ => {
                let mut m = Map::new();
                for _ in 0..self.u.int_in_range(0..=4)? {
                    m.insert(self.key()?, self.value(depth + 1)?);
                }
                Value::Object(m)
            }
        })
    }

    fn path(&mut self, depth: u32) -> Result<Path> {
        let ns = self.pick(&Ns::ALL)?;
        let mut segs = vec![Seg::Key(self.key()?)];
        for _ in 0..self.u.int_in_range(0..=2)? {
            segs.push(if self.u.arbitrary()? {
                Seg::Key(self.key()?)
            } else {
                Seg::Index(Box::new(self.expr(depth + 1)?))
            });
        }
        Ok(Path { ns, segs })
    }

    fn expr(&mut self, depth: u32) -> Result<Expr> {
        self.nodes += 1;
        if depth >= 5 || self.nodes > 60 || self.u.is_empty() {
            return Ok(Expr::Lit(self.value(2)?));
        }
        let sub = |g: &mut Self| g.expr(depth + 1).map(Box::new);
        Ok(match self.u.int_in_range(0..=6)? {
            0 => Expr::Lit(self.value(0)?),
            1 => Expr::Path(self.path(depth)?),
            2 => Expr::Unary {
                op: self.pick(&UNOPS)?,
                expr: sub(self)?,
            },
            3 | 4 => Expr::Binary {
                op: self.pick(&BinOp::ALL)?,
                left: sub(self)?,
                right: sub(self)?,
            },
            5 => {
                let func = self.pick(&Func::ALL)?;
                // Mostly a count the function accepts, sometimes one it does not.
                let (min, max) = func.arity();
                let n = if self.u.ratio(1, 10)? {
                    self.u.int_in_range(0..=4)?
                } else {
                    self.u.int_in_range(min..=max.unwrap_or(min + 3))?
                };
                Expr::Call {
                    func,
                    args: (0..n).map(|_| self.expr(depth + 1)).collect::<Result<_>>()?,
                }
            }
            _ => Expr::Match {
                expr: sub(self)?,
                regex: self.pick(&REGEXES)?.to_owned(),
            },
        })
    }

    fn stmt(&mut self) -> Result<Stmt> {
        if self.u.ratio(1, 6)? {
            let names = if self.u.arbitrary()? {
                None
            } else {
                Some((0..self.u.int_in_range(0..=3)?).map(|_| self.key()).collect::<Result<_>>()?)
            };
            return Ok(Stmt::Copy {
                from: self.pick(&Ns::ALL)?,
                to: self.pick(&Ns::ALL)?,
                names,
            });
        }
        Ok(Stmt::Assign {
            target: self.path(0)?,
            op: self.pick(&AssignOp::ALL)?,
            value: self.expr(0)?,
        })
    }

    fn namespace(&mut self) -> Result<Map<String, Value>> {
        match self.value(1)? {
            Value::Object(m) => Ok(m),
            other => Ok(Map::from_iter([(self.key()?, other)])),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut g = Gen { u: &mut u, nodes: 0 };
    let Ok((ctx, stmts)) = (|| -> Result<_> {
        let ctx = Context {
            a: g.namespace()?,
            e: g.namespace()?,
            v: g.namespace()?,
            i: g.namespace()?,
            o: g.namespace()?,
            t: g.namespace()?,
        };
        let n = g.u.int_in_range(1..=6)?;
        let stmts = (0..n).map(|_| g.stmt()).collect::<Result<Vec<_>>>()?;
        Ok((ctx, stmts))
    })() else {
        return;
    };

    // Every expression evaluates to a value, to undefined or to an error, twice alike.
    for s in &stmts {
        if let Stmt::Assign { value, .. } = s {
            let first = jcl::eval(value, &ctx);
            assert_eq!(first, jcl::eval(value, &ctx), "not deterministic: {value:?}");
            if let Ok(Some(v)) = first {
                serde_json::to_string(&v).expect("a result serialises");
            }
        }
    }

    // Statement by statement: a failing one changes nothing.
    let mut stepped = ctx.clone();
    let mut failed = None;
    for (k, s) in stmts.iter().enumerate() {
        let before = stepped.clone();
        if let Err(e) = jcl::run(std::slice::from_ref(s), &mut stepped) {
            assert_eq!(stepped, before, "statement {k} failed ({e}) but changed the context");
            failed = Some(k);
            break;
        }
    }
    assert_eq!(stepped.a, ctx.a, "a. changed");
    assert_eq!(stepped.e, ctx.e, "e. changed");

    // The block as the engine runs it, after the IR's round trip through its stored form.
    let code = Code::new(stmts.clone());
    let stored = serde_json::to_string(&code).expect("IR serialises");
    let loaded: Code = serde_json::from_str(&stored).expect("stored IR loads");
    assert_eq!(loaded, code, "the IR changed in its round trip");
    let mut whole = ctx.clone();
    let r = jcl::run_code(&loaded, &mut whole);
    assert_eq!(r.is_err(), failed.is_some(), "run_code and run disagree");
    // The statements before a failing one keep their effect, as one by one.
    assert_eq!(whole, stepped, "run_code and run disagree");
    for ns in Ns::ALL {
        serde_json::to_string(whole.ns(ns)).expect("a namespace serialises");
    }
});
