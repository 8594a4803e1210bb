//! Push (`client-api.md` §7): entries go at once to connected devices over their WebSocket;
//! devices that are not connected and registered a wake-up endpoint get an empty POST.
//!
//! No content, no topic id and no sender ever goes to a wake-up endpoint: the POST has an empty
//! body, and one pending wake-up per device absorbs bursts.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::mpsc;

mod wakeup;

pub use wakeup::{MAX_PUSH_URL_LEN, PushTarget, PushUrlError, check_push_url, run_wakeups};

use crate::net::TargetResolver;

use crate::store::Store;
use crate::topics::Publish;
use rendezvous_protocol::api::{Body, StreamFrame};
use rendezvous_protocol::ids::{DeviceId, UserId};
use rendezvous_protocol::tlog::LeafIndex;

/// Frames a connection may fall behind before it is dropped (it then catches up with sync).
pub const CONNECTION_BACKLOG: usize = 1000;

/// How many `/v1/stream` connections a user and a device may hold, and how far one may fall
/// behind (`client-api.md` §7.1).
#[derive(Debug, Clone, Copy)]
pub struct StreamQuota {
    /// Open connections of one user (all devices); one more is refused `403 quota_exceeded`.
    pub per_user: usize,
    /// Open connections of one device; one more closes the device's oldest.
    pub per_device: usize,
    /// Bytes queued for one connection; over it the connection is closed (1013) and the device
    /// catches up with `/v1/sync`.
    pub queued_bytes: usize,
}

/// A user already holds [`StreamQuota::per_user`] connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this user holds {limit} open streams already (limits.ws_per_user)")]
pub struct TooManyStreams {
    /// The quota.
    pub limit: usize,
}

/// One frame, encoded once and shared by every connection it is queued on.
pub type Frame = actix_web::web::Bytes;

/// What a connection's task reads: its frames, and the count of bytes queued for it (the task
/// takes a frame's length off when it has sent it).
pub struct Subscription {
    /// The connection's id, for [`PushHub::unsubscribe`].
    pub id: u64,
    /// Frames to send; closed when the hub dropped the connection.
    pub frames: mpsc::Receiver<Frame>,
    /// Bytes queued and not yet sent.
    pub queued: std::sync::Arc<AtomicUsize>,
}

struct Connection {
    id: u64,
    device: DeviceId,
    frames: mpsc::Sender<Frame>,
    queued: std::sync::Arc<AtomicUsize>,
}

/// A user's wake-up endpoints: `(device, url)`.
type Endpoints = std::sync::Arc<Vec<(DeviceId, String)>>;

/// Connected devices by user, and the wake-up queue.
pub struct PushHub {
    connections: Mutex<HashMap<UserId, Vec<Connection>>>,
    next_id: AtomicU64,
    wake: mpsc::UnboundedSender<String>,
    pending_wakes: Mutex<HashSet<String>>,
    connected: AtomicU64,
    quota: StreamQuota,
    /// Wake-up endpoints by user, `(device, url)`, loaded from the store on first use and
    /// forgotten whenever a device or endpoint of the user changes.
    endpoints: Mutex<HashMap<UserId, Endpoints>>,
    /// Resolves and checks wake-up hosts (`client-api.md` §7.2).
    targets: TargetResolver,
}

impl std::fmt::Debug for PushHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushHub")
            .field("connected", &self.connected.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PushHub {
    /// A hub and the receiving end of its wake-up queue (for [`run_wakeups`]); wake-up hosts
    /// are resolved and checked by `targets`.
    pub fn new(
        quota: StreamQuota,
        targets: TargetResolver,
    ) -> (PushHub, mpsc::UnboundedReceiver<String>) {
        let (wake, rx) = mpsc::unbounded_channel();
        (
            PushHub {
                connections: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                wake,
                pending_wakes: Mutex::new(HashSet::new()),
                connected: AtomicU64::new(0),
                quota,
                endpoints: Mutex::new(HashMap::new()),
                targets,
            },
            rx,
        )
    }

    /// Registers a connected device; frames arrive on the returned receiver. A device over
    /// its quota loses its oldest connection; a user over theirs gets none.
    pub fn subscribe(
        &self,
        user: &UserId,
        device: DeviceId,
    ) -> Result<Subscription, TooManyStreams> {
        let (tx, rx) = mpsc::channel(CONNECTION_BACKLOG);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let queued = std::sync::Arc::new(AtomicUsize::new(0));
        let mut conns = lock(&self.connections);
        let list = conns.entry(user.clone()).or_default();
        let of_device = list.iter().filter(|c| c.device == device).count();
        if of_device >= self.quota.per_device {
            // Dropping its sender ends the oldest connection's task, which closes it.
            if let Some(oldest) = list.iter().position(|c| c.device == device) {
                list.remove(oldest);
                self.connected.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if list.len() >= self.quota.per_user {
            return Err(TooManyStreams {
                limit: self.quota.per_user,
            });
        }
        list.push(Connection {
            id,
            device,
            frames: tx,
            queued: queued.clone(),
        });
        self.connected.fetch_add(1, Ordering::Relaxed);
        Ok(Subscription {
            id,
            frames: rx,
            queued,
        })
    }

    /// Forgets a connection.
    pub fn unsubscribe(&self, user: &UserId, id: u64) {
        let mut conns = lock(&self.connections);
        if let Some(list) = conns.get_mut(user) {
            let before = list.len();
            list.retain(|c| c.id != id);
            self.connected
                .fetch_sub((before - list.len()) as u64, Ordering::Relaxed);
            if list.is_empty() {
                conns.remove(user);
            }
        }
    }

    /// Drops every connection of a device (it was revoked).
    pub fn disconnect_device(&self, user: &UserId, device: &DeviceId) {
        let mut conns = lock(&self.connections);
        if let Some(list) = conns.get_mut(user) {
            let before = list.len();
            list.retain(|c| &c.device != device);
            self.connected
                .fetch_sub((before - list.len()) as u64, Ordering::Relaxed);
        }
    }

    /// Forgets the cached wake-up endpoints of `user` (a device or endpoint changed).
    pub fn forget_endpoints(&self, user: &UserId) {
        lock(&self.endpoints).remove(user);
    }

    fn endpoints_of(&self, store: &Store, user: &UserId) -> Endpoints {
        if let Some(e) = lock(&self.endpoints).get(user) {
            return e.clone();
        }
        let mut list = Vec::new();
        if let Ok(devices) = store.devices(user) {
            for d in devices {
                if let Ok(Some(url)) = store.push_endpoint(user, d.device_key) {
                    list.push((d.device_key, url));
                }
            }
        }
        let list = std::sync::Arc::new(list);
        lock(&self.endpoints).insert(user.clone(), list.clone());
        list
    }

    /// Resolves and checks wake-up hosts (`client-api.md` §7.2).
    pub fn targets(&self) -> &TargetResolver {
        &self.targets
    }

    /// Number of open connections.
    pub fn connected(&self) -> u64 {
        self.connected.load(Ordering::Relaxed)
    }

    /// Number of wake-ups waiting to be sent.
    pub fn pending_wakeups(&self) -> usize {
        lock(&self.pending_wakes).len()
    }

    /// Sends newly durable entries to members' connected devices, and wakes the others.
    pub fn publish(&self, store: &Store, publish: &Publish) {
        let topic = &publish.topic;
        if publish.entries.is_empty() {
            return;
        }
        // Encoded once; each connection's queue holds a reference, not a copy.
        let frames: Vec<Frame> = publish
            .entries
            .iter()
            .map(|(index, entry)| {
                Frame::from(
                    StreamFrame {
                        topic: topic.clone(),
                        index: LeafIndex(*index),
                        entry: serde_bytes::ByteBuf::from(entry.clone()),
                    }
                    .to_cbor(),
                )
            })
            .collect();
        let bytes: usize = frames.iter().map(Frame::len).sum();
        let cap = self.quota.queued_bytes;
        let mut to_wake: Vec<(UserId, HashSet<DeviceId>)> = Vec::new();
        {
            let mut conns = lock(&self.connections);
            for user in &publish.members {
                let mut connected = HashSet::new();
                if let Some(list) = conns.get_mut(user) {
                    let before = list.len();
                    list.retain(|c| {
                        let queued = c.queued.fetch_add(bytes, Ordering::Relaxed) + bytes;
                        let ok = queued <= cap
                            && frames.iter().all(|f| c.frames.try_send(f.clone()).is_ok());
                        if ok {
                            connected.insert(c.device);
                        }
                        // Too far behind, or closed: drop the connection; it re-syncs.
                        ok
                    });
                    self.connected
                        .fetch_sub((before - list.len()) as u64, Ordering::Relaxed);
                }
                to_wake.push((user.clone(), connected));
            }
        }
        for (user, connected) in to_wake {
            for (device, url) in self.endpoints_of(store, &user).iter() {
                if connected.contains(device) {
                    continue;
                }
                if lock(&self.pending_wakes).insert(url.clone()) {
                    let _ = self.wake.send(url.clone());
                }
            }
        }
    }

    pub(crate) fn wake_done(&self, url: &str) {
        lock(&self.pending_wakes).remove(url);
    }
}
