//! Running a procedure step as the role that owns its workflow (`sql/privileges.sql`).
//!
//! `run_as` switches the backend's user id the way a `SECURITY DEFINER` function does
//! (`SetUserIdAndSecContext` with `SECURITY_LOCAL_USERID_CHANGE`, so the code it runs cannot
//! `SET ROLE` back), runs one query through SPI and switches back. No object the owner could
//! alter stands between the engine and the switch. While the query runs, `step_owner()`
//! names the owner, so the engine's API functions (which are `SECURITY DEFINER`, and would
//! otherwise see the driving session as their caller) act for the owner, never for the
//! session that drives the job. EXECUTE on `run_as` is revoked from PUBLIC.

use std::cell::RefCell;

use pgrx::prelude::*;
use pgrx::JsonB;

thread_local! {
    /// The owners of the procedure steps running in this backend, innermost last.
    static OWNERS: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
}

/// Runs `sql` (one statement returning one jsonb value, with `arg` as `$1`) as role `owner`.
#[pg_extern(volatile, parallel_unsafe)]
fn run_as(owner: pg_sys::Oid, sql: &str, arg: JsonB) -> Option<JsonB> {
    let mut saved_user = pg_sys::Oid::INVALID;
    let mut saved_context: i32 = 0;
    // SAFETY: both are plain reads and writes of the backend's user id; the saved values are
    // restored on every path out (errors included, by `finally`; an error that aborts the
    // (sub)transaction restores them too).
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(
            owner,
            saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
    }
    OWNERS.with(|o| o.borrow_mut().push(owner));
    PgTryBuilder::new(|| {
        Spi::get_one_with_args::<JsonB>(sql, &[arg.into()]).unwrap_or_else(|e| {
            pgrx::error!("{e}");
        })
    })
    .finally(|| {
        OWNERS.with(|o| o.borrow_mut().pop());
        // SAFETY: restores the values saved above.
        unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) };
    })
    .execute()
}

/// The role whose procedure step is running in this backend, or null outside one.
#[pg_extern(volatile, parallel_unsafe)]
fn step_owner() -> Option<pg_sys::Oid> {
    OWNERS.with(|o| o.borrow().last().copied())
}
