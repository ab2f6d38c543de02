//! Test harness: a private PostgreSQL cluster per test run, a database per test.
