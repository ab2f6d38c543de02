//! jcworker (in progress).

fn main() {}
