//! Following topics live (`client-api.md` §7): the WebSocket stream, with `GET /v1/sync` to
//! catch up after every (re)connect. Each change of a topic triggers a verified
//! [`Client::read`] of it.

use awc::http::Method;

use super::reader::ReadReport;
use super::{Client, ClientError};
use rendezvous_protocol::ids::TopicId;

impl Client {
    /// Follows every topic of the user live over the WebSocket stream, calling `on_read` with
    /// the outcome of reading each topic that changes: the new, verified entries, or why the
    /// topic could not be read (one failing topic does not stop the others). Catches up with
    /// `GET /v1/sync` first and after every reconnect. Returns only on an error that concerns
    /// the whole account (login, sync, keystore).
    pub async fn watch(
        &mut self,
        mut on_read: impl FnMut(&TopicId, Result<&ReadReport, &ClientError>),
    ) -> Result<(), ClientError> {
        loop {
            for item in self.sync().await? {
                if item.size.next_index() > item.cursor {
                    let result = self.read(&item.topic).await;
                    on_read(&item.topic, result.as_ref());
                }
            }
            if self.token.is_none() {
                self.login().await?;
            }
            let token = self.token.clone().unwrap_or_default();
            let mut stream = match self.http.stream(&token).await {
                Err(e) if e.code() == Some(rendezvous_protocol::api::ErrorCode::Unauthorized) => {
                    self.login().await?;
                    continue;
                }
                Err(ClientError::Transport { .. }) => {
                    actix_rt::time::sleep(std::time::Duration::from_secs(2)).await;
                    continue;
                }
                other => other?,
            };
            loop {
                match stream.next_frame().await {
                    Ok(Some(frame)) => {
                        let processed = self
                            .keystore
                            .topic(&frame.topic)?
                            .map_or(0, |r| r.processed);
                        if frame.index.get() >= processed {
                            let result = self.read(&frame.topic).await;
                            on_read(&frame.topic, result.as_ref());
                        }
                    }
                    Ok(None) | Err(ClientError::Transport { .. }) => break,
                    Err(e) => return Err(e),
                }
            }
            actix_rt::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    }

    /// `GET /v1/sync`: each topic's size and this device's cursor; refills keys when asked.
    pub async fn sync(&mut self) -> Result<Vec<rendezvous_protocol::api::SyncItem>, ClientError> {
        let answer: rendezvous_protocol::api::SyncResponse =
            self.authed(Method::GET, "/v1/sync", None).await?;
        if answer.refill {
            self.refill(true).await?;
        }
        Ok(answer.topics)
    }
}
