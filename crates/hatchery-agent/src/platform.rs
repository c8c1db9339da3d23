//! A small HTTP client for the control plane, over TCP (`http://host:port`) or over a Unix
//! socket (`unix:/path/to/hatchery.sock`): sandboxed agents have no network, only the socket
//! bound into their sandbox. One connection per call: an agent calls a few times a minute,
//! so nothing stays open to the control plane between calls.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

/// The longest a call may take, from connecting to the answer's last byte.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The `Host` of calls over the Unix socket, which has no host name of its own.
const UNIX_SOCKET_HOST: &str = "hatchery";

/// Where the control plane is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    /// `http://host:port`.
    Tcp {
        /// `host:port`.
        authority: String,
    },
    /// `unix:/path`.
    Unix { path: PathBuf },
}

/// The control plane: where it is, and the client that calls it.
#[derive(Debug, Clone)]
pub struct Platform {
    address: Address,
    /// What each call's path is appended to: `http://host:port`, or `http://hatchery` over
    /// the socket.
    base_url: String,
    client: reqwest::Client,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The address is neither `http://…` nor `unix:…`.
    #[error("HATCHERY_URL must be http://HOST:PORT or unix:/PATH, not {0:?}")]
    BadUrl(String),
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {}", innermost(.0))]
    Client(#[source] reqwest::Error),
    /// No connection.
    #[error("cannot reach the control plane at {at}: {}", innermost(.source))]
    #[allow(missing_docs)]
    Connect {
        /// `host:port`, or the socket's path.
        at: String,
        source: reqwest::Error,
    },
    /// The HTTP exchange failed.
    #[error("control plane call failed: {}", innermost(.0))]
    Http(#[source] reqwest::Error),
    /// No answer in time.
    #[error("the control plane did not answer within {0:?}")]
    Timeout(Duration),
    /// A request could not be built.
    #[error("cannot build the request: {}", innermost(.0))]
    Request(#[source] reqwest::Error),
}

/// The deepest cause of `error`: reqwest's own message names the URL, while the reason
/// (`Connection refused`, `connection closed before message completed`) is its last source.
fn innermost(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

impl Address {
    /// Parse `HATCHERY_URL`.
    fn parse(url: &str) -> Result<Self, CallError> {
        if let Some(path) = url.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(CallError::BadUrl(url.to_owned()));
            }
            return Ok(Self::Unix { path: path.into() });
        }
        let authority = url
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or_else(|| CallError::BadUrl(url.to_owned()))?;
        Ok(Self::Tcp {
            authority: authority.to_owned(),
        })
    }
}

impl Platform {
    /// Parse `HATCHERY_URL` and set up the client for it.
    pub fn parse(url: &str) -> Result<Self, CallError> {
        let address = Address::parse(url)?;
        let builder = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            // No idle connections kept: each call connects afresh (see the module comment).
            .pool_max_idle_per_host(0)
            // The agent talks only to its control plane; proxy variables in its environment
            // are not meant for that.
            .no_proxy();
        let (builder, base_url) = match &address {
            Address::Tcp { authority } => (builder, format!("http://{authority}")),
            Address::Unix { path } => (
                builder.unix_socket(path.as_path()),
                format!("http://{UNIX_SOCKET_HOST}"),
            ),
        };
        let client = builder.build().map_err(CallError::Client)?;
        Ok(Self {
            address,
            base_url,
            client,
        })
    }

    /// POST `body` to `path` with `token`; the status and the JSON answer (`Null` if the
    /// answer is not JSON).
    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Result<(u16, Value), CallError> {
        let response = self
            .client
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .map_err(|error| self.call_error(error))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.call_error(error))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// What went wrong, by the kind of failure reqwest reports.
    fn call_error(&self, error: reqwest::Error) -> CallError {
        // A timeout first: one while connecting is a timeout, not an unreachable peer.
        if error.is_timeout() {
            CallError::Timeout(CALL_TIMEOUT)
        } else if error.is_connect() {
            let at = match &self.address {
                Address::Tcp { authority } => authority.clone(),
                Address::Unix { path } => path.display().to_string(),
            };
            CallError::Connect { at, source: error }
        } else if error.is_builder() {
            CallError::Request(error)
        } else {
            CallError::Http(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_tcp_address_or_a_socket() {
        assert_eq!(
            Address::parse("http://127.0.0.1:8080/").unwrap(),
            Address::Tcp {
                authority: "127.0.0.1:8080".into()
            }
        );
        assert_eq!(
            Address::parse("unix:/run/hatchery/hatchery.sock").unwrap(),
            Address::Unix {
                path: "/run/hatchery/hatchery.sock".into()
            }
        );
        for bad in [
            "https://x",
            "unix:",
            "http://",
            "http://host/path",
            "ftp://x",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn an_absent_control_plane_is_unreachable_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("absent.sock");
        let platform = Platform::parse(&format!("unix:{}", socket.display())).unwrap();
        let error = platform.post("/x", "t", &Value::Null).await.unwrap_err();
        assert!(matches!(error, CallError::Connect { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!(
                "cannot reach the control plane at {}: No such file or directory (os error 2)",
                socket.display()
            )
        );
    }
}
