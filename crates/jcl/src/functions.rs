//! The built-in functions of the expression language.
