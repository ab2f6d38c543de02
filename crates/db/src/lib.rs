//! Typed wrappers over the jobcenter extension SQL API.
