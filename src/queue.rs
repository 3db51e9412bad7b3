//! The poster queue between the inputs and the classify workers, and what
//! each input does when it is full: a type, not a convention.
//!
//! | input | [`WhenFull`] | so that |
//! | --- | --- | --- |
//! | HTTP upload, dashboard, on-demand capture | `Reject` | the client hears 503 + `Retry-After` at once and decides |
//! | watched folder, MQTT ingest | `Wait` | the file stays on disk / the broker keeps the message until there is room |
//! | continuous camera | `KeepNewest` | the camera never blocks; the newest poster is the one that goes |
//!
//! The queue is bounded (`inference.queue_size`); it closes when the last
//! [`PosterQueue`] handle is dropped, which is how the workers learn that
//! every input has stopped.

use crate::poster::{Poster, PosterError};
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// What an input does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Refuse at once with [`PosterError::QueueFull`].
    Reject,
    /// Wait for room.
    Wait,
    /// Hold the poster and offer it again later ([`QueueInput::retry_held`]);
    /// a newer poster replaces a held one, which is dropped and counted.
    KeepNewest,
}

/// The sending side of the queue; cheap to clone.
///
/// Room is two things: a slot in the queue, and the memory the poster's
/// bytes take from what all inputs together may hold (`http.upload_memory_mb`).
/// An input reserves both before it holds the bytes where it can (an
/// upload, before its body is read), so neither a flood of uploads nor a
/// full queue of large images can outgrow the memory budget.
#[derive(Debug, Clone)]
pub struct PosterQueue {
    tx: mpsc::Sender<Poster>,
    memory: Arc<Semaphore>,
    memory_total: u64,
}

/// The receiving side, for the workers.
pub type PosterReceiver = mpsc::Receiver<Poster>;

/// A queue slot and the memory for one poster, held before the poster is.
#[derive(Debug)]
#[must_use]
pub struct Reserved {
    slot: mpsc::OwnedPermit<Poster>,
    memory: OwnedSemaphorePermit,
}

impl Reserved {
    /// Queue `poster` in the reserved slot, keeping of the reserved memory
    /// what its bytes take and giving back the rest.
    pub fn send(self, mut poster: Poster) {
        let Self { slot, mut memory } = self;
        let used = poster.bytes.len().max(1);
        if memory.num_permits() > used {
            drop(memory.split(memory.num_permits() - used));
        }
        poster.memory = Some(memory);
        slot.send(poster);
    }
}

impl PosterQueue {
    /// A queue holding at most `capacity` posters (at least one) whose
    /// bytes take at most `memory_bytes` together.
    pub fn bounded(capacity: usize, memory_bytes: u64) -> (Self, PosterReceiver) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let memory_total = memory_bytes.clamp(1, Semaphore::MAX_PERMITS as u64);
        let queue = Self {
            tx,
            memory: Arc::new(Semaphore::new(memory_total as usize)),
            memory_total,
        };
        (queue, rx)
    }

    /// One input's end, with its policy.
    pub fn input(&self, when_full: WhenFull) -> QueueInput {
        QueueInput {
            queue: self.clone(),
            when_full,
            held: None,
        }
    }

    /// Reserve a slot and `bytes` of memory: at once or
    /// [`PosterError::QueueFull`] (`Reject`, `KeepNewest`), or waiting for
    /// them (`Wait`).
    pub async fn reserve(&self, bytes: u64, when_full: WhenFull) -> Result<Reserved, PosterError> {
        match when_full {
            WhenFull::Wait => {
                if bytes > self.memory_total {
                    return Err(PosterError::TooLarge {
                        size: bytes,
                        limit: self.memory_total,
                    });
                }
                let permits = u32::try_from(bytes.max(1)).unwrap_or(u32::MAX);
                let slot = self
                    .tx
                    .clone()
                    .reserve_owned()
                    .await
                    .map_err(|_| PosterError::ShuttingDown)?;
                let memory = Arc::clone(&self.memory)
                    .acquire_many_owned(permits)
                    .await
                    .map_err(|_| PosterError::ShuttingDown)?;
                Ok(Reserved { slot, memory })
            }
            WhenFull::Reject | WhenFull::KeepNewest => self.try_reserve(bytes),
        }
    }

    /// A slot and `bytes` of memory now, or [`PosterError::QueueFull`].
    pub fn try_reserve(&self, bytes: u64) -> Result<Reserved, PosterError> {
        if bytes > self.memory_total {
            return Err(PosterError::TooLarge {
                size: bytes,
                limit: self.memory_total,
            });
        }
        let slot = self
            .tx
            .clone()
            .try_reserve_owned()
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => PosterError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => PosterError::ShuttingDown,
            })?;
        let permits = u32::try_from(bytes.max(1)).unwrap_or(u32::MAX);
        let memory = Arc::clone(&self.memory)
            .try_acquire_many_owned(permits)
            .map_err(|err| match err {
                TryAcquireError::NoPermits => PosterError::QueueFull,
                TryAcquireError::Closed => PosterError::ShuttingDown,
            })?;
        Ok(Reserved { slot, memory })
    }

    /// Queue `poster` now, or say why not ([`WhenFull::Reject`]).
    pub fn try_push(&self, poster: Poster) -> Result<(), PosterError> {
        let reserved = self.try_reserve(poster.bytes.len() as u64)?;
        reserved.send(poster);
        Ok(())
    }

    /// Queue `poster`, waiting for room ([`WhenFull::Wait`]). Cancel-safe:
    /// dropped before it completes, the poster is not queued.
    pub async fn push(&self, poster: Poster) -> Result<(), PosterError> {
        let reserved = self
            .reserve(poster.bytes.len() as u64, WhenFull::Wait)
            .await?;
        reserved.send(poster);
        Ok(())
    }

    /// Posters waiting now.
    pub fn depth(&self) -> usize {
        self.capacity().saturating_sub(self.tx.capacity())
    }

    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// Bytes of poster memory not reserved now.
    pub fn memory_free(&self) -> u64 {
        self.memory.available_permits() as u64
    }
}

/// What [`QueueInput::offer`] did with a poster.
#[derive(Debug)]
#[must_use]
pub struct Offered {
    /// Queued now; `false`: held for [`QueueInput::retry_held`] (`KeepNewest`).
    pub queued: bool,
    /// `KeepNewest`: the older held poster this one replaced, now dropped
    /// (count it).
    pub dropped: Option<Poster>,
}

impl Offered {
    const QUEUED: Self = Self {
        queued: true,
        dropped: None,
    };
}

/// An input's end of the queue with its [`WhenFull`] policy.
#[derive(Debug)]
pub struct QueueInput {
    queue: PosterQueue,
    when_full: WhenFull,
    /// `KeepNewest`: the poster waiting for room.
    held: Option<Poster>,
}

impl QueueInput {
    pub fn when_full(&self) -> WhenFull {
        self.when_full
    }

    /// Offer `poster` under this input's policy.
    pub async fn offer(&mut self, poster: Poster) -> Result<Offered, PosterError> {
        match self.when_full {
            WhenFull::Wait => self.queue.push(poster).await.map(|()| Offered::QUEUED),
            WhenFull::Reject | WhenFull::KeepNewest => self.offer_now(poster),
        }
    }

    /// Offer `poster` without waiting, for code that cannot await (a
    /// camera's frame handler): `Wait` then refuses a full queue like
    /// `Reject`.
    pub fn offer_now(&mut self, poster: Poster) -> Result<Offered, PosterError> {
        match self.when_full {
            WhenFull::Reject | WhenFull::Wait => {
                let reserved = self.queue.try_reserve(poster.bytes.len() as u64)?;
                reserved.send(poster);
                Ok(Offered::QUEUED)
            }
            WhenFull::KeepNewest => {
                let dropped = self.held.replace(poster);
                match self.retry_held() {
                    Some(Err(err)) => Err(err),
                    queued => Ok(Offered {
                        queued: queued.is_some(),
                        dropped,
                    }),
                }
            }
        }
    }

    /// Queue the held poster if there is room now: `None` when it is still
    /// held (or nothing is).
    pub fn retry_held(&mut self) -> Option<Result<(), PosterError>> {
        let size = self.held.as_ref()?.bytes.len() as u64;
        match self.queue.try_reserve(size) {
            Ok(reserved) => {
                let poster = self.held.take()?;
                reserved.send(poster);
                Some(Ok(()))
            }
            Err(PosterError::QueueFull) => None,
            Err(err) => {
                self.held = None;
                Some(Err(err))
            }
        }
    }

    /// The poster held for room, if any.
    pub fn held(&self) -> Option<&Poster> {
        self.held.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn poster(n: u8) -> Poster {
        Poster::new(Bytes::from(vec![n]), "test")
    }

    #[tokio::test]
    async fn reject_refuses_when_full_and_after_close() {
        let (queue, mut rx) = PosterQueue::bounded(1, 1 << 20);
        let mut input = queue.input(WhenFull::Reject);
        assert!(input.offer(poster(1)).await.unwrap().queued);
        assert!(matches!(
            input.offer(poster(2)).await,
            Err(PosterError::QueueFull)
        ));
        assert_eq!(queue.depth(), 1);
        rx.close();
        assert!(matches!(
            queue.try_push(poster(3)),
            Err(PosterError::ShuttingDown)
        ));
    }

    #[tokio::test]
    async fn wait_waits_for_room() {
        let (queue, mut rx) = PosterQueue::bounded(1, 1 << 20);
        let mut input = queue.input(WhenFull::Wait);
        let _ = input.offer(poster(1)).await.unwrap();
        let second = tokio::spawn(async move { input.offer(poster(2)).await.is_ok() });
        tokio::task::yield_now().await;
        assert_eq!(rx.recv().await.unwrap().bytes[0], 1);
        assert!(second.await.unwrap());
        assert_eq!(rx.recv().await.unwrap().bytes[0], 2);
    }

    #[tokio::test]
    async fn keep_newest_holds_one_and_replaces_it() {
        let (queue, mut rx) = PosterQueue::bounded(1, 1 << 20);
        let mut input = queue.input(WhenFull::KeepNewest);
        let first = input.offer(poster(1)).await.unwrap();
        assert!(first.queued && first.dropped.is_none());
        let second = input.offer(poster(2)).await.unwrap();
        assert!(!second.queued && second.dropped.is_none(), "held");
        let third = input.offer(poster(3)).await.unwrap();
        assert!(!third.queued);
        assert_eq!(
            third.dropped.map(|p| p.bytes[0]),
            Some(2),
            "the older one goes"
        );
        assert!(input.retry_held().is_none(), "still full");
        assert_eq!(rx.recv().await.unwrap().bytes[0], 1);
        assert!(matches!(input.retry_held(), Some(Ok(()))));
        assert_eq!(rx.recv().await.unwrap().bytes[0], 3);
        assert!(input.held().is_none());
        // Room now, and one held: the newer goes, the held one is dropped.
        let _ = input.offer(poster(4)).await.unwrap();
        let _ = input.offer(poster(5)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().bytes[0], 4);
        let sixth = input.offer(poster(6)).await.unwrap();
        assert!(sixth.queued);
        assert_eq!(sixth.dropped.map(|p| p.bytes[0]), Some(5));
    }
}
