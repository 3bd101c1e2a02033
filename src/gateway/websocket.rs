//! Upgraded connections (WebSocket sessions): once both the client and the upstream have switched
//! protocols, their streams are spliced byte for byte until either side closes. The key was
//! checked at the upgrade; frames are not looked at.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::task::JoinSet;

/// The sessions in progress, so that a graceful shutdown can wait for them, then end them.
#[derive(Default)]
pub struct Sessions(Mutex<JoinSet<()>>);

impl Sessions {
    /// Splices the client's and the upstream's upgraded streams in a task of its own.
    pub fn splice(&self, client: OnUpgrade, upstream: OnUpgrade) {
        let mut set = self.0.lock();
        while set.try_join_next().is_some() {}
        set.spawn(async move {
            match tokio::join!(client, upstream) {
                (Ok(client), Ok(upstream)) => {
                    let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await
                    {
                        tracing::debug!(error = %e, "an upgraded connection ended with an error");
                    }
                }
                (client, upstream) => tracing::debug!(
                    client = client.is_ok(),
                    upstream = upstream.is_ok(),
                    "an upgrade did not complete"
                ),
            }
        });
    }

    /// Waits for the sessions in progress to end, at most `within`; then ends the rest.
    pub async fn close(&self, within: std::time::Duration) {
        let mut set = std::mem::take(&mut *self.0.lock());
        let drained = async { while set.join_next().await.is_some() {} };
        if tokio::time::timeout(within, drained).await.is_err() {
            tracing::warn!(
                open = set.len(),
                "closing the WebSocket sessions still open at the shutdown deadline"
            );
        }
        set.shutdown().await;
    }
}
