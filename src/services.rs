//! The service registry: name → crate.

use firedrill_runtime::config::ServiceArgs;
use firedrill_runtime::service;
use tokio_util::sync::CancellationToken;

/// Every service `firedrill service <name>` can run.
pub const NAMES: [&str; 14] = [
    firedrill_gateway::NAME,
    firedrill_auth::NAME,
    firedrill_catalog::NAME,
    firedrill_search::NAME,
    firedrill_cart::NAME,
    firedrill_checkout::NAME,
    firedrill_inventory::NAME,
    firedrill_payment::NAME,
    firedrill_payment_provider::NAME,
    firedrill_shipping::NAME,
    firedrill_notification::NAME,
    firedrill_projector::NAME,
    firedrill_queue::NAME,
    firedrill_cache::NAME,
];

pub async fn run(name: &str, args: ServiceArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    match name {
        firedrill_gateway::NAME => {
            service::main(
                firedrill_gateway::NAME,
                args,
                shutdown,
                firedrill_gateway::build,
            )
            .await
        }
        firedrill_auth::NAME => {
            service::main(firedrill_auth::NAME, args, shutdown, firedrill_auth::build).await
        }
        firedrill_catalog::NAME => {
            service::main(
                firedrill_catalog::NAME,
                args,
                shutdown,
                firedrill_catalog::build,
            )
            .await
        }
        firedrill_search::NAME => {
            service::main(
                firedrill_search::NAME,
                args,
                shutdown,
                firedrill_search::build,
            )
            .await
        }
        firedrill_cart::NAME => {
            service::main(firedrill_cart::NAME, args, shutdown, firedrill_cart::build).await
        }
        firedrill_checkout::NAME => {
            service::main(
                firedrill_checkout::NAME,
                args,
                shutdown,
                firedrill_checkout::build,
            )
            .await
        }
        firedrill_inventory::NAME => {
            service::main(
                firedrill_inventory::NAME,
                args,
                shutdown,
                firedrill_inventory::build,
            )
            .await
        }
        firedrill_payment::NAME => {
            service::main(
                firedrill_payment::NAME,
                args,
                shutdown,
                firedrill_payment::build,
            )
            .await
        }
        firedrill_payment_provider::NAME => {
            service::main(
                firedrill_payment_provider::NAME,
                args,
                shutdown,
                firedrill_payment_provider::build,
            )
            .await
        }
        firedrill_shipping::NAME => {
            service::main(
                firedrill_shipping::NAME,
                args,
                shutdown,
                firedrill_shipping::build,
            )
            .await
        }
        firedrill_notification::NAME => {
            service::main(
                firedrill_notification::NAME,
                args,
                shutdown,
                firedrill_notification::build,
            )
            .await
        }
        firedrill_projector::NAME => {
            service::main(
                firedrill_projector::NAME,
                args,
                shutdown,
                firedrill_projector::build,
            )
            .await
        }
        firedrill_queue::NAME => {
            service::main(
                firedrill_queue::NAME,
                args,
                shutdown,
                firedrill_queue::build,
            )
            .await
        }
        firedrill_cache::NAME => {
            service::main(
                firedrill_cache::NAME,
                args,
                shutdown,
                firedrill_cache::build,
            )
            .await
        }
        other => anyhow::bail!("unknown service {other:?}; known: {}", NAMES.join(", ")),
    }
}
