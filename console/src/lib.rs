//! jcconsole, jobcenter's web console, as a library: [`router`] serves server-rendered pages
//! of the database's jobs and workflows (through jcadm's indexed views and its graph model)
//! to users of the gateway's users file: a live overview, jobs, a job with its graph,
//! workflows, workers, locks, schedules and events; and cancel, retry, retry-now and the
//! schedule toggle (through the engine's procedures) to those with `console = "admin"`.
//! `main.rs` is a thin wrapper.

mod error;
pub mod html;
mod live;
mod pages;
pub mod session;
mod views;

use std::future::Future;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use deadpool_postgres::Pool;
use tokio::net::TcpListener;

pub use error::Error;
use session::Sessions;

/// Connections in the pool.
const POOL_SIZE: usize = 4;

/// What the handlers share.
#[derive(Debug)]
pub struct App {
    pool: Pool,
    users: jcapi::Users,
    sessions: Sessions,
}

impl App {
    /// A console on the database named by `dsn`, for the users of `users`.
    pub fn new(dsn: &str, users: jcapi::Users) -> Result<App, Error> {
        let pg = jc_db::connect_config(dsn, "jcconsole").map_err(jcadm::Error::from)?;
        let pool = jc_db::pool(&pg, POOL_SIZE).map_err(|e| Error::Pool(e.to_string()))?;
        Ok(App {
            pool,
            users,
            sessions: Sessions::default(),
        })
    }

    async fn db(&self) -> Result<deadpool_postgres::Object, Error> {
        self.pool
            .get()
            .await
            .map_err(|e| Error::Pool(e.to_string()))
    }
}

/// The console's routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(live::overview))
        .route("/overview/live", get(live::overview_live))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/jobs", get(pages::jobs))
        .route("/jobs/{id}", get(pages::job))
        .route("/jobs/{id}/cancel", post(pages::cancel))
        .route("/jobs/{id}/retry", post(pages::retry))
        .route("/jobs/{id}/retry-now", post(pages::retry_now))
        .route("/workflows", get(pages::workflows))
        .route("/workflows/{name}", get(pages::workflow))
        .route("/workers", get(views::workers))
        .route("/locks", get(views::locks))
        .route("/schedules", get(views::schedules))
        .route("/schedules/enable", post(views::enable_schedule))
        .route("/events", get(views::events))
        .with_state(app)
}

/// Serves the console on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}
