//! The evaluator against Perl, which ran the original JobCenter's expressions: generated
//! expressions (fixed seed) are evaluated here and, translated to Perl the way the original's
//! compiler did (`JobCenter::JCC::CodeGenerator`, with its `JobCenter::JCL::Functions`), by one
//! `perl` process. Every difference must be one the language reference lists
//! (`docs/jcl.md`, "Values and expressions: differences from the original"); [`ACCEPTED`]
//! holds them as data.

use std::io::Write as _;
use std::process::{Command, Stdio};

use jcl::build::{bin, call, lit, matches, un};
use jcl::{eval, BinOp, Context, Expr, Func, UnOp};
use serde_json::Value;

/// How many expressions are compared.
const CASES: usize = 3000;

/// The original's functions, as `JobCenter::JCL::Functions` defined them (JSON::MaybeXS is
/// JSON::PP here), and a loop that evaluates one JSON-encoded Perl expression per line.
const PERL: &str = r#"
use strict; no warnings;
use JSON::PP (); use Digest::MD5 (); use MIME::Base64 ();
package JCLF;
our $JSON = JSON::PP->new->canonical;
sub encode_json { $JSON->encode($_[1]) }
sub decode_json { $JSON->decode($_[1]) }
sub decode_base64 { MIME::Base64::decode_base64($_[1]) }
sub encode_base64 { MIME::Base64::encode_base64($_[1], '') }
sub md5_base64 { Digest::MD5::md5_base64($_[1]) }
sub md5_hex { Digest::MD5::md5_hex($_[1]) }
sub list { my $r = $_[1]; ref $r eq 'ARRAY' ? @$r : ref $r eq 'HASH' ? %$r : die "not a reference\n" }
package main;
our $TRUE = JSON::PP::true; our $FALSE = JSON::PP::false;
our $JCL = bless \my $o, 'JCLF';
my $in = JSON::PP->new->utf8; my $out = JSON::PP->new->ascii->allow_nonref;
$| = 1;
while (my $line = <STDIN>) {
    my $code = $in->decode($line)->[0];
    my $r = eval $code;
    my $s = $@ ? "ERR" : !defined $r ? "" : (ref $r && ref $r ne 'JSON::PP::Boolean') ? $out->encode($r) : "$r";
    print $out->encode("$s"), "\n";
}
"#;

/// A generated expression: its IR, the Perl the original made of it, and JCL text for messages.
struct Gen {
    ir: Expr,
    perl: String,
    jcl: String,
}

/// What evaluating gave: its string form, or an error.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Text(String),
    Error(String),
}

struct Case {
    gen: Gen,
    ours: Outcome,
    perl: Outcome,
}

/// A difference the language reference documents: its section, and how to recognise it.
struct Accepted {
    what: &'static str,
    doc: &'static str,
    applies: fn(&Case) -> bool,
}

const DOC: &str = "docs/jcl.md#values-and-expressions-differences-from-the-original";

/// Whether a printed result holds a number of 10^15 or more.
fn big_number(o: &Outcome) -> bool {
    let Outcome::Text(t) = o else { return false };
    let mut run = 0;
    for c in t.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run >= 16 {
            return true;
        }
    }
    ["e+15", "e+16", "e+17", "e+18", "e+19"]
        .iter()
        .any(|e| t.contains(e))
}

/// The accepted differences, each one listed in the language reference.
const ACCEPTED: [Accepted; 5] = [
    Accepted {
        what: "an arithmetic result that is not finite is an error (Perl: Inf or NaN)",
        doc: "Infinities and NaN",
        applies: |c| {
            matches!(&c.ours, Outcome::Error(e) if e.contains("not a finite number"))
                || matches!((&c.ours, &c.perl), (Outcome::Error(_), Outcome::Text(t))
                    if t.contains("Inf") || t.contains("NaN"))
        },
    },
    Accepted {
        what: "decode_json of a number beyond a double gives the string \"Inf\" (Perl: Inf)",
        doc: "Infinities and NaN",
        applies: |c| c.gen.jcl.contains("1e400"),
    },
    Accepted {
        what: "numbers of 10^15 and more: integers exact up to 2^63-1, Perl's IV/NV mix not copied",
        doc: "Big numbers",
        applies: |c| {
            big_number(&c.ours)
                || big_number(&c.perl)
                || ["1e15", "1e21", "1e300", "9007199254740993"]
                    .iter()
                    .any(|n| c.gen.jcl.contains(n))
        },
    },
    Accepted {
        what: "concat() is \"\" (Perl: undef)",
        doc: "concat",
        applies: |c| c.gen.jcl.contains("concat()"),
    },
    Accepted {
        what: "case-insensitive matching folds characters one to one ('ß' does not match /SS/i)",
        doc: "Regular expressions",
        applies: |c| c.gen.jcl.contains("/i") && c.gen.jcl.contains('ß'),
    },
];

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const NUMBERS: [&str; 22] = [
    "0",
    "1",
    "2",
    "3",
    "7",
    "10",
    "-1",
    "-7",
    "0.1",
    "0.2",
    "0.5",
    "2.5",
    "-2.5",
    "1e15",
    "1e-7",
    "1e21",
    "123456789",
    "9007199254740993",
    "3.14159",
    "1e300",
    ".5",
    "0x1A",
];

const STRINGS: [&str; 32] = [
    "", "0", "1", "abc", "abc\n", "12abc", "0x1A", "inf", "nan", "-foo", "+foo", "foo", " 12",
    "1e3", "0.5", ".5", "é", "ß", "SS", "00", "0.0", "3 ", "-", "1_000", "Infinity", "aGVsbG8=",
    "6Q==", "!!aG!Vs", "€", "+12", "-12", "x y",
];

const JSON_TEXTS: [&str; 5] = [
    "[1e400]",
    "[1,2.5,\"x\",null]",
    "{\"b\":1,\"a\":[true,false]}",
    "[0.1]",
    "\"s\"",
];

/// (pattern as the IR holds it, Perl's `/…/flags`).
const REGEXES: [(&str, &str); 12] = [
    ("c$", "/c$/"),
    ("^a", "/^a/"),
    ("^[0-9]+$", "/^[0-9]+$/"),
    ("b", "/b/"),
    ("(?i)SS", "/SS/i"),
    ("(?i)abc", "/abc/i"),
    ("(?s)a.c", "/a.c/s"),
    ("^$", "/^$/"),
    ("x*", "/x*/"),
    ("[0-9]", "/[0-9]/"),
    ("é", "/é/"),
    ("^-?[0-9.]+$", "/^-?[0-9.]+$/"),
];

/// (operator, its Perl and JCL spelling).
const BINOPS: [(BinOp, &str); 24] = [
    (BinOp::Pow, "**"),
    (BinOp::Mul, "*"),
    (BinOp::Div, "/"),
    (BinOp::Mod, "%"),
    (BinOp::Repeat, "x"),
    (BinOp::Add, "+"),
    (BinOp::Sub, "-"),
    (BinOp::Concat, "."),
    (BinOp::NumLt, "<"),
    (BinOp::NumLe, "<="),
    (BinOp::NumGt, ">"),
    (BinOp::NumGe, ">="),
    (BinOp::NumEq, "=="),
    (BinOp::NumNe, "!="),
    (BinOp::StrLt, "lt"),
    (BinOp::StrLe, "le"),
    (BinOp::StrGt, "gt"),
    (BinOp::StrGe, "ge"),
    (BinOp::StrEq, "eq"),
    (BinOp::StrNe, "ne"),
    (BinOp::And, "&&"),
    (BinOp::Or, "||"),
    (BinOp::DefinedOr, "//"),
    (BinOp::Xor, "xor"),
];

fn number(text: &str) -> Gen {
    let v: Value = if let Some(hex) = text.strip_prefix("0x") {
        Value::from(i64::from_str_radix(hex, 16).unwrap_or(0))
    } else if let Ok(i) = text.parse::<i64>() {
        Value::from(i)
    } else {
        Value::from(text.parse::<f64>().unwrap_or(0.0))
    };
    Gen {
        ir: lit(v),
        perl: text.to_owned(),
        jcl: text.to_owned(),
    }
}

fn string(s: &str) -> Gen {
    // The original quoted with '…'; backslashes are escaped too so the text arrives intact.
    let quoted = format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
    Gen {
        ir: lit(s),
        perl: quoted.clone(),
        jcl: format!("{s:?}"),
    }
}

fn leaf(rng: &mut Rng) -> Gen {
    match rng.below(10) {
        0..=3 => number(rng.pick(&NUMBERS)),
        4..=7 => string(rng.pick(&STRINGS)),
        8 => match rng.below(3) {
            0 => Gen {
                ir: lit(true),
                perl: "$TRUE".into(),
                jcl: "true".into(),
            },
            1 => Gen {
                ir: lit(false),
                perl: "$FALSE".into(),
                jcl: "false".into(),
            },
            _ => Gen {
                ir: lit(Value::Null),
                perl: "undef".into(),
                jcl: "null".into(),
            },
        },
        _ => {
            let a = number(rng.pick(&NUMBERS));
            let b = number(rng.pick(&NUMBERS));
            binary(BinOp::Add, "+", a, b)
        }
    }
}

fn binary(op: BinOp, sym: &str, l: Gen, r: Gen) -> Gen {
    // `(X) x N` repeats a list in list context (a function's arguments); `'' . …` makes the
    // context scalar, where it repeats the string, as the original's unparenthesised code did.
    let perl = if op == BinOp::Repeat {
        format!("('' . (({}) x ({})))", l.perl, r.perl)
    } else {
        format!("(({}) {sym} ({}))", l.perl, r.perl)
    };
    Gen {
        perl,
        jcl: format!("({} {sym} {})", l.jcl, r.jcl),
        ir: bin(op, l.ir, r.ir),
    }
}

fn function(func: Func, args: Vec<Gen>) -> Gen {
    let perl_args: Vec<String> = args.iter().map(|a| a.perl.clone()).collect();
    let perl = match func {
        Func::Concat => format!("(( {} ))", perl_args.join(" ) . ( ")),
        Func::Defined => format!("defined( {} )", perl_args.join(", ")),
        Func::Tostring => format!("('' . ({}))", perl_args.join(", ")),
        Func::Tonumber => format!("(0 + ({}))", perl_args.join(", ")),
        Func::Array => format!("[ {} ]", perl_args.join(", ")),
        _ => format!("($JCL->{}({}))", func.name(), perl_args.join(", ")),
    };
    let jcl = format!(
        "{}({})",
        func.name(),
        args.iter()
            .map(|a| a.jcl.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Gen {
        ir: call(func, args.into_iter().map(|a| a.ir).collect()),
        perl,
        jcl,
    }
}

/// A scalar expression of at most `depth` levels.
fn scalar(rng: &mut Rng, depth: usize) -> Gen {
    if depth == 0 {
        return leaf(rng);
    }
    match rng.below(12) {
        0..=4 => {
            let (op, sym) = rng.pick(&BINOPS);
            let l = scalar(rng, depth - 1);
            // A small count keeps `x` far from the length limit.
            let r = if op == BinOp::Repeat {
                number(rng.pick(&["0", "1", "2", "3", "-1", "2.7"]))
            } else {
                scalar(rng, depth - 1)
            };
            binary(op, sym, l, r)
        }
        5 => {
            let e = scalar(rng, depth - 1);
            let (op, sym) = rng.pick(&[(UnOp::Not, "!"), (UnOp::Neg, "-")]);
            Gen {
                perl: format!("{sym}({})", e.perl),
                jcl: format!("{sym}{}", e.jcl),
                ir: un(op, e.ir),
            }
        }
        6 => {
            let e = scalar(rng, depth - 1);
            let (pattern, perl_re) = rng.pick(&REGEXES);
            Gen {
                perl: format!("(({}) =~ {perl_re})", e.perl),
                jcl: format!("({} ~ {perl_re})", e.jcl),
                ir: matches(e.ir, pattern),
            }
        }
        7 => {
            // With one argument the original's concat is that argument, undef included;
            // the reference lists it, and it is not worth a case here.
            let n = rng.pick(&[0, 2, 2, 3]);
            let args = (0..n).map(|_| scalar(rng, depth - 1)).collect();
            function(Func::Concat, args)
        }
        8 => {
            let func = rng.pick(&[Func::Defined, Func::Tostring, Func::Tonumber]);
            function(func, vec![scalar(rng, depth - 1)])
        }
        9 => {
            let func = rng.pick(&[
                Func::Md5Hex,
                Func::Md5Base64,
                Func::EncodeBase64,
                Func::DecodeBase64,
            ]);
            function(func, vec![scalar(rng, depth - 1)])
        }
        10 => json_text(rng, depth),
        _ => leaf(rng),
    }
}

/// `encode_json` of an array (with `list` inside) or of decoded JSON text: arrays are compared
/// as JSON, since Perl prints a reference as its address.
fn json_text(rng: &mut Rng, depth: usize) -> Gen {
    let inner = if rng.below(3) == 0 {
        function(Func::DecodeJson, vec![string(rng.pick(&JSON_TEXTS))])
    } else {
        let n = rng.below(4);
        let mut items: Vec<Gen> = (0..n).map(|_| leaf(rng)).collect();
        if depth > 1 && rng.below(2) == 0 {
            let listed = json_array(rng);
            items.insert(0, function(Func::List, vec![listed]));
        }
        function(Func::Array, items)
    };
    function(Func::EncodeJson, vec![inner])
}

fn json_array(rng: &mut Rng) -> Gen {
    let n = rng.below(3);
    function(Func::Array, (0..n).map(|_| leaf(rng)).collect())
}

/// Evaluates `tostring(EXPR)` as the top level of a generated case.
fn ours(gen: &Gen) -> Outcome {
    let top = call(Func::Tostring, vec![gen.ir.clone()]);
    match eval(&top, &Context::default()) {
        Ok(Some(Value::String(s))) => Outcome::Text(s),
        Ok(other) => Outcome::Error(format!("tostring gave {other:?}")),
        Err(e) => Outcome::Error(e.message),
    }
}

/// Runs every Perl expression through one `perl`; `None` when perl is not installed.
fn perl(gens: &[Gen]) -> Option<Vec<Outcome>> {
    let mut child = match Command::new("perl")
        .args(["-e", PERL])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot start perl: {e}"),
    };
    let mut input = String::new();
    for g in gens {
        input.push_str(&Value::Array(vec![Value::String(g.perl.clone())]).to_string());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().expect("perl's stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("perl's output");
    writer.join().expect("writer").expect("write to perl");
    assert!(out.status.success(), "perl failed: {:?}", out.status);
    let text = String::from_utf8(out.stdout).expect("perl prints ASCII");
    let results: Vec<Outcome> = text
        .lines()
        .map(
            |l| match serde_json::from_str::<String>(l).expect("a JSON string") {
                s if s == "ERR" => Outcome::Error("perl died".into()),
                s => Outcome::Text(s),
            },
        )
        .collect();
    assert_eq!(results.len(), gens.len(), "perl answered every expression");
    Some(results)
}

fn same(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Outcome::Error(_), Outcome::Error(_)) => true,
        _ => a == b,
    }
}

#[test]
fn the_evaluator_agrees_with_perl() {
    let mut rng = Rng(0x5EED_0F1C_E202_6001);
    let gens: Vec<Gen> = (0..CASES)
        .map(|_| {
            let depth = 1 + rng.below(3);
            scalar(&mut rng, depth)
        })
        .collect();
    let Some(perl) = perl(&gens) else {
        eprintln!("SKIPPED: perl is not installed, so the evaluator was not compared with Perl");
        return;
    };
    let mut accepted = vec![0usize; ACCEPTED.len()];
    let mut unexplained = Vec::new();
    for (gen, perl) in gens.into_iter().zip(perl) {
        let case = Case {
            ours: ours(&gen),
            perl,
            gen,
        };
        if same(&case.ours, &case.perl) {
            continue;
        }
        match ACCEPTED.iter().position(|a| (a.applies)(&case)) {
            Some(i) => accepted[i] += 1,
            None => unexplained.push(case),
        }
    }
    for (a, n) in ACCEPTED.iter().zip(&accepted) {
        eprintln!("accepted ({n}): {} [{DOC}, {}]", a.what, a.doc);
    }
    let report: Vec<String> = unexplained
        .iter()
        .take(25)
        .map(|c| {
            format!(
                "  {}\n    perl code: {}\n    ours: {:?}\n    perl: {:?}",
                c.gen.jcl, c.gen.perl, c.ours, c.perl
            )
        })
        .collect();
    assert!(
        unexplained.is_empty(),
        "{} of {CASES} expressions differ from Perl in a way {DOC} does not list:\n{}",
        unexplained.len(),
        report.join("\n")
    );
}
