//! Idle mode (`--idle-topics N`): memory with many topics.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde::Serialize;

use rendezvous_client::Client;
use rendezvous_protocol::ids::{TopicId, UserId};
use rendezvous_protocol::topic::{History, Role};

use crate::Res;
use crate::args::Args;
use crate::clients::register_users;
use crate::report::{log, mib, print_report};
use crate::server::{Server, WorkDir, server_bin};
use crate::stats::{cpu_pressure, dir_size, loadavg};

/// Topic Keys a new user has in stock, minus a margin: each topic takes one from its creator
/// and one from its partner.
const TOPIC_KEYS_PER_USER: usize = rendezvous_client::TOPIC_KEY_STOCK - 5;

#[derive(Debug, Serialize)]
pub(crate) struct IdleReport {
    pub(crate) mode: &'static str,
    pub(crate) topics: usize,
    pub(crate) users: usize,
    pub(crate) create_seconds: f64,
    pub(crate) rss_mib_fresh: f64,
    pub(crate) rss_mib_after_create: f64,
    pub(crate) hwm_mib_after_create: f64,
    pub(crate) rss_mib_after_touch: f64,
    pub(crate) hwm_mib_after_touch: f64,
    pub(crate) touch_seconds: f64,
    pub(crate) touch_errors: usize,
    pub(crate) rss_mib_after_restart: f64,
    pub(crate) rss_mib_after_restart_touch: f64,
    pub(crate) hwm_mib_after_restart_touch: f64,
    pub(crate) restart_touch_errors: usize,
    pub(crate) data_dir_mib: f64,
    pub(crate) loadavg_after: String,
}

pub(crate) fn idle_mode(args: &Args, n: usize) -> Res<()> {
    let bin = server_bin(args)?;
    let work = WorkDir::new(args.keep)?;
    let mut server = Server::start(&bin, &work.path, args.server_workers)?;
    log(format!("server pid {} at {}", server.pid(), server.url));
    // Each topic takes one Topic Key from its creator and one from its partner.
    let user_count = (2 * n).div_ceil(TOPIC_KEYS_PER_USER).max(2);
    let conc = args.setup_concurrency.max(1);
    let sys = actix_rt::System::new();
    let fresh = sys.block_on(async {
        server.wait_ready().await?;
        Ok::<_, String>(server.stats())
    })?;
    let mut users = sys.block_on(register_users(&server, &work.path, "m", user_count, conc))?;
    log(format!("registered {user_count} users"));
    let created = Instant::now();
    let topics = sys.block_on(create_topics(&mut users, n, conc))?;
    let create_seconds = created.elapsed().as_secs_f64();
    let after_create = server.stats();
    log("touching every topic once");
    let touched = Instant::now();
    let errors = sys.block_on(touch_all(&mut users, &topics, conc));
    let touch_seconds = touched.elapsed().as_secs_f64();
    let after_touch = server.stats();
    log("restarting the server (topics load lazily)");
    server.restart()?;
    let after_restart = sys.block_on(async {
        server.wait_ready().await?;
        // Let the allocator settle.
        actix_rt::time::sleep(Duration::from_millis(500)).await;
        Ok::<_, String>(server.stats())
    })?;
    log("touching every topic once after the restart");
    let restart_errors = sys.block_on(touch_all(&mut users, &topics, conc));
    let after_restart_touch = server.stats();
    let report = IdleReport {
        mode: "idle",
        topics: n,
        users: user_count,
        create_seconds,
        rss_mib_fresh: mib(fresh.rss_kib),
        rss_mib_after_create: mib(after_create.rss_kib),
        hwm_mib_after_create: mib(after_create.hwm_kib),
        rss_mib_after_touch: mib(after_touch.rss_kib),
        hwm_mib_after_touch: mib(after_touch.hwm_kib),
        touch_seconds,
        touch_errors: errors,
        rss_mib_after_restart: mib(after_restart.rss_kib),
        rss_mib_after_restart_touch: mib(after_restart_touch.rss_kib),
        hwm_mib_after_restart_touch: mib(after_restart_touch.hwm_kib),
        restart_touch_errors: restart_errors,
        data_dir_mib: dir_size(&server.data_dir) as f64 / (1024.0 * 1024.0),
        loadavg_after: format!("{} (cpu pressure {})", loadavg(), cpu_pressure()),
    };
    server.stop()?;
    print_report(args.json, &report)
}

/// Topic i: created by user i mod U, with partner i+1 mod U.
async fn create_topics(users: &mut [Client], n: usize, conc: usize) -> Res<Vec<Option<TopicId>>> {
    let mut topics: Vec<Option<TopicId>> = vec![None; n];
    let partner_ids: Vec<UserId> = users.iter().map(|c| c.user().clone()).collect();
    let u = users.len();
    let mut work_lists: Vec<(usize, &mut Client)> = users.iter_mut().enumerate().collect();
    for chunk in work_lists.chunks_mut(conc) {
        let futs = chunk.iter_mut().map(|(ui, client)| {
            let ui = *ui;
            let partner = partner_ids[(ui + 1) % u].clone();
            async move {
                let mut mine = Vec::new();
                for i in (ui..n).step_by(u) {
                    match client
                        .create_topic(&[(partner.clone(), Role::Writer)], History::Shared)
                        .await
                    {
                        Ok(t) => mine.push((i, t)),
                        Err(e) => return Err(format!("create topic {i}: {e}")),
                    }
                }
                Ok(mine)
            }
        });
        for r in join_all(futs).await {
            for (i, t) in r? {
                topics[i] = Some(t);
            }
        }
        log(format!(
            "created {} topics",
            topics.iter().filter(|t| t.is_some()).count()
        ));
    }
    Ok(topics)
}

/// Posts one message into every topic through the client library (which reads the topic's
/// log and checkpoint first); returns how many failed.
pub(crate) async fn touch_all(
    users: &mut [Client],
    topics: &[Option<TopicId>],
    conc: usize,
) -> usize {
    let n = topics.len();
    let u = users.len();
    let mut work_lists: Vec<(usize, &mut Client)> = users.iter_mut().enumerate().collect();
    let mut errors = 0usize;
    for chunk in work_lists.chunks_mut(conc.max(1)) {
        let futs = chunk.iter_mut().map(|(ui, client)| {
            let ui = *ui;
            async move {
                let mut errors = 0usize;
                for i in (ui..n).step_by(u) {
                    let Some(t) = &topics[i] else { continue };
                    if let Err(e) = client.send(t, b"touch").await {
                        if errors == 0 {
                            log(format!("touch {t}: {e}"));
                        }
                        errors += 1;
                    }
                }
                errors
            }
        });
        errors += join_all(futs).await.into_iter().sum::<usize>();
    }
    errors
}
