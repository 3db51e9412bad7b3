//! Inputs: each turns one kind of input into [`Poster`](crate::poster::Poster)s
//! on the pipeline's bounded queue, with its own [`WhenFull`](crate::queue::WhenFull)
//! policy (see [`crate::queue`]):
//!
//! | input | module | when the queue is full |
//! | --- | --- | --- |
//! | `POST /api/v1/posters`, the dashboard's Tag page | [`http`] | `Reject`: 503 with `Retry-After` (the client retries) |
//! | `<prefix>/<device_id>/ingest` | [`mqtt`] | `Wait`; the publisher's inbound queue then drops and counts |
//! | `[watch] dir` | [`watch`] | `Wait`: the file stays on disk until there is room |
//! | `[[camera]]` | [`crate::camera`] | on demand: `Reject`; continuous: `KeepNewest` |

pub mod http;
pub mod mqtt;
pub mod watch;
