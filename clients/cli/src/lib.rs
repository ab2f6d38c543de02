//! Shared code of `jcclient` and `jcworker`.
