//! One hosting server as a real `rendezvous serve` process, and the fork of issue 9: the server
//! stopped, its data directory copied, and both copies started (same name, same Server Key,
//! same certificate, different loopback addresses and ports), so that one member's device talks
//! to copy 1 and another's to copy 2: two branches of one log, both signed by the host's key.

use std::path::{Path, PathBuf};

use rendezvous_client::Client;
use rendezvous_client::tls::Trust;

use crate::config::ServerConfig;
use crate::lying::{LyingHost, point_at};
use crate::process::{Launch, ServerProcess, admin};
use crate::{TempDir, user_id};

/// The server name of the hosting server.
pub const HOST: &str = "localhost";

/// One copy of the hosting server: its files and its process.
pub struct Copy {
    /// Its configuration file.
    pub config: PathBuf,
    /// Its data directory.
    pub data: PathBuf,
    /// The running server.
    pub process: ServerProcess,
}

impl Copy {
    fn start(bin: &Path, dir: &Path, name: &str, ip: [u8; 4]) -> Copy {
        let config = dir.join(format!("{name}.toml"));
        let data = dir.join(name);
        ServerConfig::new(HOST, &data, ip).write(&config);
        let process = Launch::new(bin, &config).start();
        Copy {
            config,
            data,
            process,
        }
    }

    /// The client API's URL.
    pub fn url(&self) -> &str {
        self.process.url()
    }

    /// How devices trust it (the same certificate on every copy).
    pub fn trust(&self) -> Trust {
        self.process.trust()
    }

    /// A lying host in front of this copy, holding its certificate and Server Key.
    pub fn lying(&self) -> LyingHost {
        LyingHost::start(&self.data, HOST, self.url(), &self.trust())
    }

    /// A lying host in front of this server with its TLS certificate and key but a Server Key
    /// of its own (its data directory in `dir`): it passes a pinned fingerprint, and what it
    /// signs verifies only for a device given its key.
    pub fn lying_with_own_key(&self, dir: &Path) -> LyingHost {
        let tls = dir.join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        for file in ["cert.pem", "key.pem"] {
            std::fs::copy(self.data.join("tls").join(file), tls.join(file)).unwrap();
        }
        LyingHost::start(dir, HOST, self.url(), &self.trust())
    }
}

/// A hosting server, before the fork.
pub struct Host {
    /// Everything of the test: configurations, data directories, keystores.
    pub dir: TempDir,
    bin: PathBuf,
    /// The server.
    pub server: Copy,
}

impl Host {
    /// Starts the hosting server `localhost` on 127.0.0.1 (`bin`: [`crate::rendezvous_bin`]).
    pub fn start(bin: &Path, test: &str) -> Host {
        let dir = TempDir::new(test);
        let server = Copy::start(bin, dir.path(), "copy1", [127, 0, 0, 1]);
        Host {
            dir,
            bin: bin.to_owned(),
            server,
        }
    }

    /// The keystore directory of user `name`.
    pub fn home(&self, name: &str) -> PathBuf {
        self.dir.join(&format!("home-{name}"))
    }

    /// Registers `@name:localhost` with a fresh pin from `rendezvous admin pin`.
    pub async fn register(&self, name: &str) -> Client {
        let pin = admin(&self.bin, &self.server.config, &["pin"]);
        Client::register(
            &self.home(name),
            &crate::passphrase(),
            self.server.url(),
            self.server.trust(),
            &pin,
            &user_id(name, HOST),
        )
        .await
        .unwrap()
    }

    /// Stops the server (SIGTERM, clean exit), copies its data directory and starts both
    /// copies: copy 1 on 127.0.0.1 with the original directory, copy 2 on 127.0.0.2 with the
    /// copy. Every keystore still points at the stopped server's address: point each at a copy
    /// with [`Fork::point`].
    pub fn fork(self) -> Fork {
        let Host { dir, bin, server } = self;
        let Copy {
            config,
            data,
            process,
        } = server;
        process.terminate();
        let copy2 = dir.join("copy2");
        copy_dir(&data, &copy2);
        let first = Launch::new(&bin, &config).start_retrying();
        let second = Copy::start(&bin, dir.path(), "copy2", [127, 0, 0, 2]);
        Fork {
            copies: [
                Copy {
                    config,
                    data,
                    process: first,
                },
                second,
            ],
            dir,
        }
    }
}

/// Two copies of one hosting server sharing its data (up to the fork) and its keys.
pub struct Fork {
    /// The copies: `[0]` is copy 1, `[1]` copy 2.
    pub copies: [Copy; 2],
    /// Everything of the test (dropped last).
    pub dir: TempDir,
}

impl Fork {
    /// Points `name`'s keystore at copy `copy` (0 or 1) and opens it.
    pub fn point(&self, name: &str, copy: usize) -> Client {
        let home = self.dir.join(&format!("home-{name}"));
        point_at(&home, self.copies[copy].url());
        Client::open(&home, &crate::passphrase()).unwrap()
    }
}

/// Copies directory `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A second copy of a federating server, running in this process beside the original (see
/// [`fork_federated`]).
pub struct FederatedCopy {
    /// The copy.
    pub server: crate::TestServer,
    /// Its data directory (a copy of the original's at the fork).
    pub data_dir: PathBuf,
    /// Its federation listener.
    pub federation: std::net::SocketAddr,
}

/// Whose Server Key a copy of a federating server signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyKeys {
    /// The original's: one key, two logs.
    Same,
    /// A new one: a key per peer.
    Own,
}

/// Forks federating server `name` of an in-process federation into two copies with the same
/// name, keys and certificates: stops it, copies its data directory, starts the original
/// again and a copy on new ports. `apart` lists, for the original and then for the copy, the
/// peers it must not reach (their overrides point at a port nothing listens on), so that each
/// copy talks to its own side only; point the copy's side at it with [`route`]. With `keys`
/// [`CopyKeys::Own`] the copy gets a Server Key of its own (a host that shows each peer
/// another key).
pub fn fork_federated(
    fed: &mut crate::federation::Federation,
    name: &str,
    apart: [&[&str]; 2],
    keys: CopyKeys,
) -> FederatedCopy {
    use crate::ports::{bind_retrying, free_addr_on};
    let dead = free_addr_on([127, 0, 0, 1]).to_string();
    fed.stop(name);
    let node = fed.node(name);
    let data_dir = node.dir.join("copy-data");
    copy_dir(&node.data_dir, &data_dir);
    if keys == CopyKeys::Own {
        let seed = rendezvous_protocol::crypto::random_array::<32>();
        std::fs::write(data_dir.join("server.key"), seed).unwrap();
    }
    let mut config = node.config.clone();
    config.data_dir = data_dir.clone();
    config.client_api.listen = free_addr_on(node.ip);
    config.admin.listen = free_addr_on(node.ip);
    let federation = free_addr_on(node.ip);
    let fed_config = config.federation.as_mut().expect("a federating server");
    fed_config.listen = federation;
    for peer in apart[1] {
        fed_config
            .overrides
            .insert((*peer).to_owned(), dead.clone());
    }
    fed.configure(name, |c| {
        let f = c.federation.as_mut().unwrap();
        for peer in apart[0] {
            f.overrides.insert((*peer).to_owned(), dead.clone());
        }
    });
    fed.up(name);
    let parsed = rendezvous::config::Config::parse(&config.to_toml()).unwrap();
    let listener = bind_retrying(federation);
    let server = crate::TestServer::start_with(&data_dir, config.client_api.listen, move |c| {
        c.server_name = parsed.server_name;
        c.federation = parsed.federation;
        Some(listener)
    });
    FederatedCopy {
        server,
        data_dir,
        federation,
    }
}

/// Makes federating server `server` reach peer `peer` at `address` (restarting it).
pub fn route(
    fed: &mut crate::federation::Federation,
    server: &str,
    peer: &str,
    address: std::net::SocketAddr,
) {
    fed.configure(server, |c| {
        let f = c.federation.as_mut().unwrap();
        f.overrides.insert(peer.to_owned(), address.to_string());
    });
    fed.stop(server);
    fed.up(server);
}
