//! Checking JSON values against the JSON Schemas of `jobcenter.json_schemas`.
//!
//! Compiled validators are cached per backend, keyed by the schema text, since the same few
//! types are checked on every step.

use std::cell::RefCell;
use std::collections::HashMap;

use pgrx::prelude::*;
use pgrx::JsonB;

use crate::json_arg::Jsonb;

thread_local! {
    static VALIDATORS: RefCell<HashMap<String, jsonschema::Validator>> = RefCell::new(HashMap::new());
}

const CACHE_LIMIT: usize = 512;

/// `NULL` when `value` satisfies `schema`, else a message saying why not (also when the value
/// is beyond the engine's limits).
#[pg_extern(immutable, parallel_safe)]
pub fn check_value(schema: JsonB, value: Jsonb) -> Option<String> {
    let value = match value.0 {
        Ok(v) => v,
        Err(e) => return Some(e),
    };
    let key = schema.0.to_string();
    VALIDATORS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(&key) {
            let v = match jsonschema::validator_for(&schema.0) {
                Ok(v) => v,
                Err(e) => return Some(format!("invalid JSON Schema: {e}")),
            };
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key.clone(), v);
        }
        let validator = cache.get(&key)?;
        let msgs: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{e} at {at}")
                }
            })
            .collect();
        if msgs.is_empty() {
            None
        } else {
            Some(msgs.join("; "))
        }
    })
}
