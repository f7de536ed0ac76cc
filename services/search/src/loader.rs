//! Keeps the live index in step with catalog: a first load at start-up,
//! retried with backoff until catalog answers, then a full reload every
//! [`REFRESH_EVERY`]. A failed reload keeps serving the previous index: stale
//! results beat no results.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use firedrill_runtime::client::{CallError, Peer};
use parking_lot::RwLock;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::index::{Index, Product};
use crate::metrics::SearchMetrics;

pub const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// Page size asked of catalog (its maximum).
pub const PAGE: usize = 500;
/// A catalog larger than this many pages is refused rather than paged
/// forever.
const MAX_PAGES: usize = 100;
const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// The index requests are served from; swapped whole on reload, so a
/// request ranks against one consistent snapshot.
#[derive(Default)]
pub struct LiveIndex {
    current: RwLock<Option<Arc<Index>>>,
}

impl LiveIndex {
    pub fn get(&self) -> Option<Arc<Index>> {
        self.current.read().clone()
    }

    fn set(&self, index: Index) {
        *self.current.write() = Some(Arc::new(index));
    }
}

#[derive(Deserialize)]
struct Page {
    products: Vec<Product>,
    total: usize,
}

/// Every product in the catalog, page by page.
pub async fn fetch_catalog(catalog: &Peer) -> Result<Vec<Product>, CallError> {
    let mut products = Vec::new();
    for _ in 0..MAX_PAGES {
        let offset = products.len();
        let page: Page = catalog
            .get(
                "/products",
                format!("/products?limit={PAGE}&offset={offset}"),
            )
            .json()
            .await?;
        let done = page.products.is_empty() || offset + page.products.len() >= page.total;
        products.extend(page.products);
        if done {
            break;
        }
    }
    Ok(products)
}

/// One load attempt: on success the new index goes live.
pub async fn load<F, Fut>(
    fetch: &F,
    live: &LiveIndex,
    metrics: &SearchMetrics,
) -> Result<usize, String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Vec<Product>, String>>,
{
    match fetch().await {
        Ok(products) => {
            let index = Index::build(products);
            let documents = index.len();
            live.set(index);
            metrics.documents.set(documents as f64, &[]);
            metrics.refreshes.inc(&[("outcome", "ok")]);
            Ok(documents)
        }
        Err(err) => {
            metrics.refreshes.inc(&[("outcome", "error")]);
            Err(err)
        }
    }
}

/// Loads until it succeeds (backing off), then reloads every `refresh`,
/// until `shutdown`.
pub async fn keep_loaded<F, Fut>(
    fetch: F,
    live: Arc<LiveIndex>,
    metrics: SearchMetrics,
    refresh: Duration,
    shutdown: CancellationToken,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Vec<Product>, String>>,
{
    let mut retry = FIRST_RETRY;
    loop {
        let wait = if live.get().is_some() { refresh } else { retry };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let was_ready = live.get().is_some();
        match load(&fetch, &live, &metrics).await {
            Ok(documents) if !was_ready => {
                tracing::info!(documents, "search index loaded");
                retry = FIRST_RETRY;
            }
            Ok(documents) => tracing::debug!(documents, "search index refreshed"),
            Err(err) if was_ready => {
                tracing::warn!(error = %err, "search index refresh failed; serving the previous index")
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_ms = retry.as_millis() as u64, "search index not loaded yet; catalog unavailable");
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use firedrill_runtime::config::Identity;
    use firedrill_runtime::metrics::Meters;

    use super::*;

    fn metrics() -> SearchMetrics {
        SearchMetrics::new(&Meters::new(&Identity {
            service: "search".into(),
            instance_id: "search-1".into(),
            version: "test".into(),
            environment: "test".into(),
        }))
    }

    fn products(n: i64) -> Vec<Product> {
        (1..=n)
            .map(|id| Product {
                id,
                sku: format!("T-{id}"),
                name: format!("Thing {id}"),
                category: "toys".into(),
                price_cents: 100,
                description: "A thing.".into(),
            })
            .collect()
    }

    /// Scripted catalog answers: `Err` for the first `failures` calls, then
    /// a catalog that grows by one product per call.
    fn scripted(
        calls: Arc<AtomicUsize>,
        failures: usize,
        fail_after: usize,
    ) -> impl Fn() -> std::future::Ready<Result<Vec<Product>, String>> {
        move || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(if n < failures || n >= fail_after {
                Err("catalog unavailable".to_string())
            } else {
                Ok(products(10 + n as i64))
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_loaded_then_refreshes_and_survives_failed_refreshes() {
        let calls = Arc::new(AtomicUsize::new(0));
        let live = Arc::new(LiveIndex::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(keep_loaded(
            scripted(calls.clone(), 3, 5),
            live.clone(),
            metrics(),
            REFRESH_EVERY,
            stop.clone(),
        ));

        // Backoff 200 + 400 + 800 ms covers three failures; the fourth call
        // (after 1.6 s more) loads.
        tokio::time::sleep(Duration::from_millis(200 + 400 + 800 + 1_600 + 10)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(live.get().unwrap().len(), 13);

        // No reload before the refresh period...
        tokio::time::sleep(REFRESH_EVERY - Duration::from_millis(100)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // ... then one, picking up the catalog's change.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        assert_eq!(live.get().unwrap().len(), 14);

        // A failing refresh keeps the old index.
        tokio::time::sleep(REFRESH_EVERY).await;
        assert_eq!(calls.load(Ordering::SeqCst), 6);
        assert_eq!(live.get().unwrap().len(), 14);

        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn load_publishes_the_document_count() {
        let live = LiveIndex::default();
        let m = metrics();
        let fetch = || std::future::ready(Ok::<_, String>(products(7)));
        assert_eq!(load(&fetch, &live, &m).await, Ok(7));
        assert_eq!(live.get().unwrap().len(), 7);
        assert_eq!(m.refreshes.get(&[("outcome", "ok")]), 1.0);
        let failing = || std::future::ready(Err::<Vec<Product>, _>("down".to_string()));
        assert!(load(&failing, &live, &m).await.is_err());
        assert_eq!(m.refreshes.get(&[("outcome", "error")]), 1.0);
        assert_eq!(live.get().unwrap().len(), 7);
    }
}
