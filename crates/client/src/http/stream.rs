//! The push stream (`GET /v1/stream`, `client-api.md` §7): WebSocket frames in, pongs out.

use futures_util::{SinkExt, StreamExt};

use super::one_line;
use crate::ClientError;
use rendezvous_protocol::api::{Body, StreamFrame};

/// A WebSocket connection: frames in, messages out.
pub(super) trait WsIo:
    futures_util::Stream<Item = Result<awc::ws::Frame, awc::error::WsProtocolError>>
    + futures_util::Sink<awc::ws::Message, Error = awc::error::WsProtocolError>
{
}

impl<T> WsIo for T where
    T: futures_util::Stream<Item = Result<awc::ws::Frame, awc::error::WsProtocolError>>
        + futures_util::Sink<awc::ws::Message, Error = awc::error::WsProtocolError>
{
}

/// The WebSocket stream of [`StreamFrame`]s (`client-api.md` §7). Pings are answered.
pub struct FrameStream {
    framed: std::pin::Pin<Box<dyn WsIo>>,
    server: String,
}

impl std::fmt::Debug for FrameStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameStream")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl FrameStream {
    pub(super) fn new(framed: std::pin::Pin<Box<dyn WsIo>>, server: String) -> Self {
        FrameStream { framed, server }
    }

    /// The next frame, or `None` when the server closed the stream.
    pub async fn next_frame(&mut self) -> Result<Option<StreamFrame>, ClientError> {
        use awc::ws::{Frame, Message};
        let transport = |reason: String| ClientError::Transport {
            server: self.server.clone(),
            what: "follow the live stream".into(),
            reason,
        };
        loop {
            let Some(item) = self.framed.next().await else {
                return Ok(None);
            };
            match item.map_err(|e| transport(one_line(&e.to_string())))? {
                Frame::Binary(bytes) => {
                    return StreamFrame::from_cbor(&bytes).map(Some).map_err(|error| {
                        ClientError::Malformed {
                            what: "stream frame".into(),
                            error,
                        }
                    });
                }
                Frame::Ping(p) => {
                    self.framed
                        .send(Message::Pong(p))
                        .await
                        .map_err(|e| transport(one_line(&e.to_string())))?;
                }
                Frame::Pong(_) | Frame::Text(_) => {}
                Frame::Continuation(_) => {
                    return Err(ClientError::Misbehaved(
                        "fragmented stream frames are not part of the protocol".into(),
                    ));
                }
                Frame::Close(_) => return Ok(None),
            }
        }
    }

    /// Sends a ping (a device behind a NAT keeps its stream open with one); the pong arrives
    /// through [`Self::next_frame`], which passes over it.
    pub async fn ping(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.framed
            .send(awc::ws::Message::Ping(payload.to_vec().into()))
            .await
            .map_err(|e| ClientError::Transport {
                server: self.server.clone(),
                what: "ping the live stream".into(),
                reason: one_line(&e.to_string()),
            })
    }
}
