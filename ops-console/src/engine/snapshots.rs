//! Snapshots of the dispatch state, kept by a follower so that the engine never pauses.
//!
//! The follower owns a copy of the state (cloned once, at start) and applies every event
//! the engine stores, on its own thread. Every [`super::EngineConfig::snapshot_every`]
//! events, and when the engine stops, it serialises its copy and hands the JSON to a task
//! that saves it in the store. The engine's only cost per command is sending the events it
//! already has. A snapshot is a cache of the log: one that is never saved costs only a
//! longer replay at the next start.

use std::sync::mpsc;

use dispatch_core::{Dispatch, Event};
use maps::Timestamp;

use crate::clock::Stopwatch;
use crate::store::EventStore;

/// What the engine tells the follower.
enum Message {
    /// Events the engine stored for one command, ending at `last_seq`.
    Stored {
        last_seq: u64,
        at: Timestamp,
        events: Vec<Event>,
    },
    /// The engine stops (at this time): save a last snapshot. (A follower whose engine is
    /// dropped without stopping — a crash, an abort — saves nothing more.)
    Stop(Timestamp),
}

/// A serialised state, ready to save.
struct Serialised {
    last_seq: u64,
    at: Timestamp,
    json: String,
}

/// The follower: a thread that applies events and serialises, and a task that saves.
#[derive(Debug)]
pub struct Snapshotter {
    events: Option<mpsc::Sender<Message>>,
    thread: Option<std::thread::JoinHandle<()>>,
    saver: Option<tokio::task::JoinHandle<bool>>,
}

impl Snapshotter {
    /// Starts following `state` (the state after event `last_seq`; the newest snapshot
    /// saved is at `saved_seq`), saving one every `every` events.
    pub fn start(
        state: Dispatch,
        last_seq: u64,
        saved_seq: u64,
        every: u64,
        store: EventStore,
    ) -> std::io::Result<Self> {
        let (events, incoming) = mpsc::channel::<Message>();
        let (serialised, mut to_save) = tokio::sync::mpsc::unbounded_channel::<Serialised>();
        let thread = std::thread::Builder::new()
            .name("regula-snapshots".into())
            .spawn(move || follow(state, last_seq, saved_seq, every, &incoming, &serialised))?;
        let saver = tokio::spawn(async move {
            // Whether the newest snapshot asked for is stored (checked at stop).
            let mut newest_saved = true;
            while let Some(snapshot) = to_save.recv().await {
                let watch = Stopwatch::start();
                match store
                    .save_snapshot(
                        snapshot.last_seq,
                        snapshot.at,
                        Dispatch::SNAPSHOT_FORMAT,
                        &snapshot.json,
                    )
                    .await
                {
                    // The store returns only once the snapshot's row is committed.
                    Ok(()) => {
                        newest_saved = true;
                        tracing::info!(
                            seq = snapshot.last_seq,
                            bytes = snapshot.json.len(),
                            millis = u64::try_from(watch.elapsed().as_millis()).unwrap_or(u64::MAX),
                            "snapshot saved"
                        );
                    }
                    Err(e) => {
                        newest_saved = false;
                        tracing::warn!(error = %e, seq = snapshot.last_seq, "snapshot not saved");
                    }
                }
            }
            newest_saved
        });
        Ok(Self {
            events: Some(events),
            thread: Some(thread),
            saver: Some(saver),
        })
    }

    /// Hands the follower the events just stored (ending at `last_seq`, recorded at `at`).
    pub fn follow(&self, last_seq: u64, at: Timestamp, events: &[Event]) {
        if let Some(sender) = &self.events {
            // A follower that stopped (it logged why) takes no more events; the engine goes on.
            let _ = sender.send(Message::Stored {
                last_seq,
                at,
                events: events.to_vec(),
            });
        }
    }

    /// Stops following: the follower applies what it has, saves a last snapshot if it is
    /// ahead of the newest one, and this returns once that is stored: `true` when the
    /// newest snapshot asked for is in the store (a snapshot is only a cache: when it is
    /// not, the next start replays more of the log).
    pub async fn stop(mut self, at: Timestamp) -> bool {
        if let Some(sender) = self.events.take() {
            let _ = sender.send(Message::Stop(at));
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        match self.saver.take() {
            Some(saver) => saver.await.unwrap_or(false),
            None => true,
        }
    }
}

impl Drop for Snapshotter {
    /// Dropped without [`Snapshotter::stop`] (the engine task aborted): the saver lets go of
    /// the store now instead of waiting for the follower to notice.
    fn drop(&mut self) {
        if let Some(saver) = self.saver.take() {
            saver.abort();
        }
    }
}

/// The follower thread's loop.
fn follow(
    mut state: Dispatch,
    mut last_seq: u64,
    mut saved_seq: u64,
    every: u64,
    incoming: &mpsc::Receiver<Message>,
    serialised: &tokio::sync::mpsc::UnboundedSender<Serialised>,
) {
    let save = |state: &Dispatch, last_seq: u64, at: Timestamp| match serde_json::to_string(state) {
        Ok(json) => {
            let _ = serialised.send(Serialised { last_seq, at, json });
        }
        Err(e) => {
            tracing::warn!(error = %e, seq = last_seq, "snapshot not saved: state does not serialise");
        }
    };
    while let Ok(message) = incoming.recv() {
        let (stored_seq, at, events) = match message {
            Message::Stored {
                last_seq,
                at,
                events,
            } => (last_seq, at, events),
            Message::Stop(at) => {
                if last_seq > saved_seq {
                    save(&state, last_seq, at);
                }
                return;
            }
        };
        for event in &events {
            if let Err(e) = state.apply(at, event) {
                // The engine applied the same event; reaching this is a bug. Stop following
                // rather than save a state that differs from the log's.
                tracing::error!(error = %e, seq = stored_seq, "snapshot follower diverged; no more snapshots");
                return;
            }
        }
        last_seq = stored_seq;
        if last_seq - saved_seq >= every {
            save(&state, last_seq, at);
            saved_seq = last_seq;
        }
    }
}
