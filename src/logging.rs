//! The daemon's log: `tracing` to stderr (journald under systemd), with
//! every field value made safe first.
//!
//! Much of what is logged comes from outside: file names in the watched
//! folder, camera names and topics from MQTT, error messages quoting
//! headers or payloads. A newline in one would forge a log line and an
//! escape sequence would drive the reader's terminal, so control
//! characters are escaped, and a value is cut at [`MAX_FIELD_CHARS`] (a
//! 5 MB file name is not logged whole).

use std::fmt::Write as _;
use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::fmt::FormatFields;

/// Characters of one field value kept in the log.
pub const MAX_FIELD_CHARS: usize = 512;

/// Set up the global subscriber (once; later calls do nothing).
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(fields())
        .with_writer(std::io::stderr)
        // journald and log files get plain text; colours only on a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// How every event's fields are written: `name=value`, each value passed
/// through [`safe`].
pub fn fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let text = safe(&format!("{value:?}"));
        if field.name() == "message" {
            write!(writer, "{text}")
        } else {
            write!(writer, "{field}={text}")
        }
    })
    .delimited(" ")
}

/// `text` with control characters escaped (`\n`, `\u{1b}`) and cut at
/// [`MAX_FIELD_CHARS`], saying how much was left out.
pub fn safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_FIELD_CHARS + 32));
    for (kept, (at, c)) in text.char_indices().enumerate() {
        if kept == MAX_FIELD_CHARS {
            let _ = write!(out, "…({} more bytes)", text.len() - at);
            return out;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_values_cut() {
        assert_eq!(
            safe("poster\n2026-12-01T00:00:00Z  INFO forged\u{1b}[31m"),
            "poster\\n2026-12-01T00:00:00Z  INFO forged\\u{1b}[31m"
        );
        assert_eq!(safe("café\tok"), "café\\tok");
        let long = "x".repeat(5 * 1024 * 1024);
        let cut = safe(&long);
        assert!(cut.len() < MAX_FIELD_CHARS + 40, "{}", cut.len());
        assert!(cut.ends_with(&format!("…({} more bytes)", long.len() - MAX_FIELD_CHARS)));
    }

    /// What the subscriber really writes, through the same field formatter.
    #[test]
    fn the_formatter_writes_safe_lines() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(fields())
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let name = "door\n2026-12-01 ERROR forged line\u{1b}[2J";
            tracing::warn!(camera = %name, "capture refused");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(
            text.contains("camera=door\\n2026-12-01 ERROR forged line\\u{1b}[2J"),
            "{text}"
        );
    }
}
