//! Perl-like conversions between JSON values: truthiness, string and number forms.
