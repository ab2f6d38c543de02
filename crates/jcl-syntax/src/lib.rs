//! The JCL front end: the pest grammar ([`parser`]), the syntax tree with spans ([`ast`]) and
//! diagnostics with stable codes and caret rendering ([`diagnostic`]).
//!
//! ```
//! let src = "workflow hello:\ndo:\n\teval:\n\t\tgreeting = 'hi'\n";
//! let file = jcl_syntax::parse("hello.jcl", src)?;
//! assert_eq!(file.name.text, "hello");
//! # Ok::<(), Box<jcl_syntax::Diagnostic>>(())
//! ```
//!
//! Semantic checks (names, namespaces, types, sections allowed per kind) and lowering to
//! [`jcl::Model`] live in the compiler, `jcc`.

pub mod ast;
pub mod diagnostic;
mod expr;
mod grammar;
mod layout;
pub mod parser;
mod source;

pub use diagnostic::{Diagnostic, Label, Severity};
pub use parser::parse;
