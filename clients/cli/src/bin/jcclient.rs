//! jcclient (in progress).

fn main() {}
