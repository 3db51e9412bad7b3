//! The `source` string of a `[[camera]]`, parsed once for validation and
//! again to build the source: `/dev/video0`, `v4l2:0`, `http://...`,
//! `mjpeg+http://...`, `synthetic:demo`.

/// The scenes `synthetic:<script>` can draw (see `camera::source::synthetic`).
pub const SYNTHETIC_SCRIPTS: &[&str] = &["demo"];

/// Where a camera's frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A V4L2 device: its node (`/dev/video0`, or a stable
    /// `/dev/v4l/by-id/...` link, resolved at every open so a camera that
    /// comes back under another number is still found).
    V4l2 { device: String },
    /// An HTTP camera. `stream: None` decides by the answer's Content-Type
    /// (`multipart/x-mixed-replace` is MJPEG, an image is a snapshot).
    Http { url: String, stream: Option<bool> },
    /// Drawn scenes; `script` names one of [`SYNTHETIC_SCRIPTS`].
    Synthetic { script: String },
}

impl SourceSpec {
    /// Parse a camera's `source`; the error says what is accepted.
    pub fn parse(source: &str) -> Result<Self, String> {
        let source = source.trim();
        if source.is_empty() {
            return Err(
                "must name a device (/dev/video0, v4l2:0), an http:// URL or synthetic:demo".into(),
            );
        }
        if let Some(index) = source.strip_prefix("v4l2:") {
            return match index.parse::<u32>() {
                Ok(n) => Ok(Self::V4l2 {
                    device: format!("/dev/video{n}"),
                }),
                Err(_) => Err(format!(
                    "`{source}`: v4l2: takes a device number (v4l2:0 is /dev/video0)"
                )),
            };
        }
        if source.starts_with("/dev/") {
            return Ok(Self::V4l2 {
                device: source.to_owned(),
            });
        }
        if let Some(rest) = source.strip_prefix("mjpeg+") {
            return http_url(rest).map(|url| Self::Http {
                url,
                stream: Some(true),
            });
        }
        if let Some(rest) = source.strip_prefix("snapshot+") {
            return http_url(rest).map(|url| Self::Http {
                url,
                stream: Some(false),
            });
        }
        if source.contains("://") {
            return http_url(source).map(|url| Self::Http { url, stream: None });
        }
        if let Some(script) = source.strip_prefix("synthetic:") {
            if SYNTHETIC_SCRIPTS.contains(&script) {
                return Ok(Self::Synthetic {
                    script: script.to_owned(),
                });
            }
            return Err(format!(
                "`{source}`: unknown synthetic script; use one of: {}",
                SYNTHETIC_SCRIPTS
                    .iter()
                    .map(|s| format!("synthetic:{s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Err(format!(
            "`{source}` is not a camera source: use /dev/videoN or v4l2:N (USB camera), \
             http://host/path (JPEG snapshots or an MJPEG stream), mjpeg+http://... \
             (force MJPEG) or synthetic:demo"
        ))
    }

    /// Short kind for status and logs: `v4l2`, `http`, `synthetic`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::V4l2 { .. } => "v4l2",
            Self::Http { .. } => "http",
            Self::Synthetic { .. } => "synthetic",
        }
    }
}

/// `http://user:secret@cam/x` → `http://user:***@cam/x`: camera sources and
/// broker URLs are shown on the dashboard, in logs and by `config check`.
pub fn redact_url(source: &str) -> String {
    let Some((scheme, rest)) = source.split_once("://") else {
        return source.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => source.to_owned(),
    }
}

/// Check an `http://` URL enough to connect to it later.
fn http_url(url: &str) -> Result<String, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("`{url}` is not a URL: use http://host[:port]/path"));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "http" => {}
        "https" => {
            return Err(format!(
                "`{url}`: https cameras are not supported; use the camera's http:// URL on \
                 the local network"
            ))
        }
        "rtsp" | "rtsps" => {
            return Err(format!(
                "`{url}`: RTSP is not supported; most IP cameras also serve JPEG snapshots or \
                 MJPEG over http:// (see the camera's manual)"
            ))
        }
        _ => {
            return Err(format!(
                "`{url}`: scheme `{scheme}` is not supported; use http://"
            ))
        }
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("`{url}` has no host"));
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("mjpeg+http://admin:hunter2@10.0.0.5/video?x=1"),
            "mjpeg+http://admin:***@10.0.0.5/video?x=1"
        );
        assert_eq!(redact_url("http://cam/snap.jpg"), "http://cam/snap.jpg");
        assert_eq!(redact_url("/dev/video0"), "/dev/video0");
    }

    #[test]
    fn sources() {
        assert_eq!(
            SourceSpec::parse("/dev/video0"),
            Ok(SourceSpec::V4l2 {
                device: "/dev/video0".into()
            })
        );
        assert_eq!(
            SourceSpec::parse("v4l2:3"),
            Ok(SourceSpec::V4l2 {
                device: "/dev/video3".into()
            })
        );
        assert_eq!(
            SourceSpec::parse("http://cam.local/snap.jpg"),
            Ok(SourceSpec::Http {
                url: "http://cam.local/snap.jpg".into(),
                stream: None
            })
        );
        assert_eq!(
            SourceSpec::parse("mjpeg+http://user:pw@10.0.0.5:8080/video"),
            Ok(SourceSpec::Http {
                url: "http://user:pw@10.0.0.5:8080/video".into(),
                stream: Some(true)
            })
        );
        assert_eq!(
            SourceSpec::parse("synthetic:demo").map(|s| s.kind()),
            Ok("synthetic")
        );
        for bad in [
            "",
            "v4l2:x",
            "https://cam/snap.jpg",
            "rtsp://cam/stream",
            "http:///snap",
            "camera0",
            "synthetic:nope",
        ] {
            let err = SourceSpec::parse(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
    }
}
