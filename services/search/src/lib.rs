//! search: full-text search and "similar products" over the catalog.
//!
//! - Data: an in-memory TF-IDF index of every product (no database), loaded
//!   from catalog's `GET /products` at start-up and reloaded every 60 s. Until
//!   the first load succeeds (retried with backoff; start-up never fails on
//!   it) both routes answer 503 `index not ready`.
//! - Routes: `GET /search?q=&limit=` (ranked with TF-IDF plus trigram and
//!   edit-distance typo tolerance, see `index.rs`), `GET
//!   /recommendations/{id}` (5 most similar products, same category
//!   boosted).
//! - Depends on: `catalog`.
//! - Emits: `search.index.documents`, `search.index.refreshes` {outcome},
//!   `search.query.duration` {`search.operation`}.
//!
//! Ranking is CPU-bound by design (every product scored per query), so this
//! is the service where CPU contention shows up as latency.

mod index;
mod loader;
mod metrics;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use firedrill_runtime::ServiceContext;

pub const NAME: &str = "search";

/// How long start-up waits for the first index load before serving 503s
/// and leaving it to the background loader.
const FIRST_LOAD_WAIT: Duration = Duration::from_secs(3);

pub async fn build(ctx: ServiceContext) -> anyhow::Result<axum::Router> {
    let catalog = ctx.peer("catalog")?;
    let metrics = metrics::SearchMetrics::new(&ctx.meters);
    let live = Arc::new(loader::LiveIndex::default());
    metrics.documents.set(0.0, &[]);
    let fetch = move || {
        let catalog = catalog.clone();
        async move {
            loader::fetch_catalog(&catalog)
                .await
                .map_err(|e| e.to_string())
        }
    };
    match tokio::time::timeout(FIRST_LOAD_WAIT, loader::load(&fetch, &live, &metrics)).await {
        Ok(Ok(documents)) => tracing::info!(documents, "search index loaded"),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "search index not loaded yet; catalog unavailable, retrying in the background")
        }
        Err(_) => {
            tracing::warn!("search index not loaded yet; catalog slow, retrying in the background")
        }
    }
    tokio::spawn(loader::keep_loaded(
        fetch,
        live.clone(),
        metrics.clone(),
        loader::REFRESH_EVERY,
        ctx.shutdown.clone(),
    ));
    Ok(routes::router(Arc::new(routes::Search { live, metrics })))
}
