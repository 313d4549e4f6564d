//! A peer streaming CRLFs at the SIP/TCP door is cut off after `max_message_bytes`, with
//! the gateway's memory bounded (its own test binary, so that the resident set size it
//! prints is not shared with other tests).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{start, test_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// This process's resident set size in KiB (`VmRSS` of /proc/self/status).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("a VmRSS line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn two_mib_of_crlf_on_one_connection_are_cut_off_at_max_message_bytes() {
    let config = test_config();
    let limit = config.max_message_bytes;
    let (gw, _events) = start(config, 16).await;
    let mut tcp = tokio::net::TcpStream::connect(gw.local_addr())
        .await
        .unwrap();
    let before = rss_kib();

    let chunk = b"\r\n".repeat(32 * 1024);
    let total = 2 * 1024 * 1024;
    let mut written = 0;
    let mut pongs = Vec::new();
    while written < total {
        let write = tokio::time::timeout(Duration::from_secs(5), tcp.write_all(&chunk))
            .await
            .expect("the gateway neither read nor closed for 5 s");
        if write.is_err() {
            // Reset or broken pipe: the gateway closed the connection.
            break;
        }
        written += chunk.len();
    }
    let closed = loop {
        let mut buf = vec![0u8; 64 * 1024];
        match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => pongs.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    let after = rss_kib();
    eprintln!(
        "CRLF flood: {written} bytes written before the close (limit {limit}); \
         VmRSS before {before} KiB, after {after} KiB ({:+} KiB)",
        i64::try_from(after).unwrap() - i64::try_from(before).unwrap()
    );
    assert!(closed, "the connection was still open after 2 MiB of CRLF");
    assert!(
        pongs.iter().all(|b| *b == b'\r' || *b == b'\n'),
        "only CRLF pongs were answered"
    );
    // Pongs: at most one per read of at most 16 KiB, and reads stop at the limit.
    assert!(
        pongs.len() <= 2 * (limit / 16_384 + 2),
        "{} pong bytes",
        pongs.len()
    );
    // The gateway never buffers keep-alive bytes: growth stays far below what was sent.
    assert!(
        after.saturating_sub(before) < 8 * 1024,
        "VmRSS grew by {} KiB",
        after - before
    );

    // The door still serves others.
    common::Client::new(gw.local_addr())
        .await
        .options_ok()
        .await;
    gw.shutdown().await.unwrap();
}
