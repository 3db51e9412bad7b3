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
use tokio::sync::mpsc;

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
#[derive(Debug, Clone)]
pub struct PosterQueue {
    tx: mpsc::Sender<Poster>,
}

/// The receiving side, for the workers.
pub type PosterReceiver = mpsc::Receiver<Poster>;

impl PosterQueue {
    /// A queue holding at most `capacity` posters (at least one).
    pub fn bounded(capacity: usize) -> (Self, PosterReceiver) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self { tx }, rx)
    }

    /// One input's end, with its policy.
    pub fn input(&self, when_full: WhenFull) -> QueueInput {
        QueueInput {
            queue: self.clone(),
            when_full,
            held: None,
        }
    }

    /// Queue `poster` now, or say why not ([`WhenFull::Reject`]).
    pub fn try_push(&self, poster: Poster) -> Result<(), PosterError> {
        self.tx.try_send(poster).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => PosterError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => PosterError::ShuttingDown,
        })
    }

    /// Queue `poster`, waiting for room ([`WhenFull::Wait`]). Cancel-safe:
    /// dropped before it completes, the poster is not queued.
    pub async fn push(&self, poster: Poster) -> Result<(), PosterError> {
        self.tx
            .send(poster)
            .await
            .map_err(|_| PosterError::ShuttingDown)
    }

    /// Posters waiting now.
    pub fn depth(&self) -> usize {
        self.capacity().saturating_sub(self.tx.capacity())
    }

    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
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
                self.queue.try_push(poster).map(|()| Offered::QUEUED)
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
        let poster = self.held.take()?;
        match self.queue.tx.try_send(poster) {
            Ok(()) => Some(Ok(())),
            Err(mpsc::error::TrySendError::Full(poster)) => {
                self.held = Some(poster);
                None
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Some(Err(PosterError::ShuttingDown)),
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
        let (queue, mut rx) = PosterQueue::bounded(1);
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
        let (queue, mut rx) = PosterQueue::bounded(1);
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
        let (queue, mut rx) = PosterQueue::bounded(1);
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
