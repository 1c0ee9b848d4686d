//! The daemon's spool operations that know about the segment log: a
//! message is either a live record there (fresh, not yet attempted) or a
//! queue/ file, and everything except reading and completing it works on
//! the file, so those operations give a live record its file first.

use std::time::{Duration, UNIX_EPOCH};

use super::segment::{self, read_record};
use super::store::sync_dir;
use super::{
    Place, Recovered, Shared, Spool, SpoolDir, SpoolEntry, SpoolError, StoredMessage, Usage,
    blocking, lock,
};

impl Shared {
    /// Reads live record `id`, if it is one.
    pub(super) fn read_live(&self, id: &str) -> Option<Result<StoredMessage, SpoolError>> {
        let (loc, file) = lock(&self.index).get(id)?;
        Some(
            read_record(&file, &loc, id).map_err(|reason| SpoolError::Corrupt {
                id: id.to_string(),
                reason,
            }),
        )
    }

    /// Reads a queued message for delivery: from its record if it has
    /// one, else from its file.
    fn read(&self, id: &str) -> Result<StoredMessage, SpoolError> {
        self.read_live(id)
            .unwrap_or_else(|| self.dir.read(id, false))
    }

    /// A delivered message leaves the log (one unsynced done line) or its
    /// file is removed.
    fn complete(&self, id: &str) -> Result<(), SpoolError> {
        let _moving = lock(&self.moves);
        if lock(&self.index).leave(id) {
            return Ok(());
        }
        self.dir.complete(id)
    }

    /// [`Shared::complete`] for a live record when that needs no waiting:
    /// false if a move holds the lock or `id` is not a live record.
    fn try_complete_live(&self, id: &str) -> bool {
        match self.moves.try_lock() {
            Ok(_moving) => lock(&self.index).leave(id),
            Err(_) => false,
        }
    }

    /// Gives live record `id` its queue/ file (synced with queue/), then
    /// takes it out of the log. Nothing to do for a message that has a
    /// file already.
    fn materialize(&self, id: &str) -> Result<(), SpoolError> {
        let _moving = lock(&self.moves);
        let Some(msg) = self.read_live(id) else {
            return Ok(());
        };
        let msg = msg?;
        let mut header = serde_json::to_vec(&msg.envelope)?;
        header.push(b'\n');
        self.dir.write_message_file(id, &header, &msg.data)?;
        sync_dir(&self.dir.queue_dir())?;
        lock(&self.index).leave(id);
        Ok(())
    }

    /// The envelope of every live record, oldest first.
    fn live_envelopes(&self) -> Vec<super::Envelope> {
        let all = lock(&self.index).all();
        all.into_iter()
            .filter_map(|(id, loc, file)| match segment::read_envelope(&file, &loc) {
                Ok(env) => Some(env),
                Err(reason) => {
                    tracing::error!(queue_id = %id, %reason, "spool: cannot read a record's envelope");
                    None
                }
            })
            .collect()
    }
}

impl Spool {
    /// Runs `f` on message `id` once it is a file.
    pub(super) async fn on_file<T, F>(&self, id: &str, f: F) -> Result<T, SpoolError>
    where
        F: FnOnce(&SpoolDir, &str) -> Result<T, SpoolError> + Send + 'static,
        T: Send + 'static,
    {
        let shared = self.shared.clone();
        let id = id.to_string();
        blocking(move || {
            shared.materialize(&id)?;
            f(&shared.dir, &id)
        })
        .await
    }

    /// Every queued message (live records and files), oldest first.
    /// Corrupt files are moved to dead/ with a reason; orphan sidecars are
    /// removed.
    pub async fn recover(&self) -> Result<Vec<Recovered>, SpoolError> {
        let shared = self.shared.clone();
        blocking(move || {
            let mut found = shared.dir.recover()?;
            found.extend(
                shared
                    .live_envelopes()
                    .into_iter()
                    .map(|envelope| Recovered {
                        envelope,
                        retry: None,
                        held: false,
                    }),
            );
            found.sort_by(|a, b| a.envelope.id.cmp(&b.envelope.id));
            Ok(found)
        })
        .await
    }

    /// Reads a queued message (envelope and bytes) for delivery. A live
    /// record is read right here: this process wrote it moments ago, so
    /// the pread is served from the page cache and costs less than the
    /// hop to the blocking pool. A file goes through the blocking pool.
    pub async fn read(&self, id: &str) -> Result<StoredMessage, SpoolError> {
        if let Some(found) = self.shared.read_live(id) {
            return found;
        }
        let shared = self.shared.clone();
        let id = id.to_string();
        blocking(move || shared.read(&id)).await
    }

    /// Forgets a delivered message. Not synced: if a crash loses this, the
    /// message is delivered once more after restart, the same
    /// at-least-once window that exists between the upstream's 2xx and
    /// this call anyway.
    ///
    /// A live record's done line is an unsynced append, done right here
    /// unless a move (which fsyncs) holds the lock; removing a file goes
    /// through the blocking pool.
    pub async fn complete(&self, id: &str) -> Result<(), SpoolError> {
        if self.shared.try_complete_live(id) {
            return Ok(());
        }
        let shared = self.shared.clone();
        let id = id.to_string();
        blocking(move || shared.complete(&id)).await
    }

    /// Saves back-off state beside the message (fsync'd). `state.history`
    /// is appended to the history already recorded, and a `requeued_at`
    /// already recorded is kept unless `state` sets one.
    pub async fn record_attempt(
        &self,
        id: &str,
        state: super::RetryState,
    ) -> Result<(), SpoolError> {
        self.on_file(id, move |dir, id| dir.record_attempt(id, state))
            .await
    }

    /// Moves the message to dead/ID with dead/ID.reason beside it. The
    /// history recorded beside the queued message goes first in
    /// `reason.history`.
    pub async fn dead_letter(&self, id: &str, reason: super::DeadReason) -> Result<(), SpoolError> {
        self.on_file(id, move |dir, id| dir.dead_letter(id, &reason))
            .await
    }

    /// The queue (live records and files) or the dead letters, oldest
    /// first; see `SpoolDir::list`.
    pub async fn list(&self, dead: bool) -> Result<Vec<SpoolEntry>, SpoolError> {
        let shared = self.shared.clone();
        blocking(move || {
            let live = if dead {
                Vec::new()
            } else {
                shared.live_envelopes()
            };
            shared.dir.list_with(dead, live)
        })
        .await
    }

    /// Where message `id` is.
    pub async fn locate(&self, id: &str) -> Result<Place, SpoolError> {
        let shared = self.shared.clone();
        let id = id.to_string();
        blocking(move || {
            if lock(&shared.index).contains(&id) {
                return Ok(Place::Queue);
            }
            shared.dir.locate(&id)
        })
        .await
    }

    /// The bytes available on the spool's file system if fewer than
    /// `needed` (`statvfs`; a measurement with room is reused for a
    /// second); `None` if there is room or it cannot be measured.
    pub fn short_of_space(&self, needed: u64) -> Option<u64> {
        self.shared.free.short_of(self.shared.dir.root(), needed)
    }

    /// How many messages the queue (live records and files) or the dead
    /// letters hold, their bytes and the oldest one's arrival; cheap
    /// enough for every metrics scrape. Blocking.
    pub fn usage(&self, dead: bool) -> Result<Usage, SpoolError> {
        let mut usage = self.shared.dir.usage(dead)?;
        if !dead {
            let live = lock(&self.shared.index).usage();
            usage.messages += live.messages;
            usage.bytes += live.bytes;
            if let Some(t) = live.oldest {
                let t = UNIX_EPOCH + Duration::from_secs(t);
                usage.oldest = Some(usage.oldest.map_or(t, |o| o.min(t)));
            }
        }
        Ok(usage)
    }
}
