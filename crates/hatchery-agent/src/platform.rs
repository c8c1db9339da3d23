//! A small HTTP client for the control plane, over TCP (`http://host:port`) or over a Unix
//! socket (`unix:/path/to/hatchery.sock`): sandboxed agents have no network, only the socket
//! bound into their sandbox. One connection per call: an agent calls a few times a minute.

use std::path::PathBuf;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// The longest a call may take.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where the control plane is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Platform {
    /// `http://host:port`.
    Tcp {
        /// `host:port`.
        authority: String,
    },
    /// `unix:/path`.
    Unix {
        /// The socket.
        path: PathBuf,
    },
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The address is neither `http://…` nor `unix:…`.
    #[error("HATCHERY_URL must be http://HOST:PORT or unix:/PATH, not {0:?}")]
    BadUrl(String),
    /// No connection.
    #[error("cannot reach the control plane at {at}: {source}")]
    Connect {
        /// Where.
        at: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("control plane call failed: {0}")]
    Http(#[from] hyper::Error),
    /// No answer in time.
    #[error("the control plane did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// A request could not be built.
    #[error("cannot build the request: {0}")]
    Request(#[from] hyper::http::Error),
}

impl Platform {
    /// Parse `HATCHERY_URL`.
    pub fn parse(url: &str) -> Result<Self, CallError> {
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

    /// POST `body` to `path` with `token`; the status and the JSON answer (`Null` if the
    /// answer is not JSON).
    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Result<(u16, Value), CallError> {
        tokio::time::timeout(CALL_TIMEOUT, self.post_once(path, token, body))
            .await
            .map_err(|_| CallError::Timeout(CALL_TIMEOUT))?
    }

    async fn post_once(
        &self,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Result<(u16, Value), CallError> {
        let host = match self {
            Self::Tcp { authority } => authority.as_str(),
            Self::Unix { .. } => "hatchery",
        };
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, host)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))?;
        let response = match self {
            Self::Tcp { authority } => {
                let stream = tokio::net::TcpStream::connect(authority.as_str())
                    .await
                    .map_err(|source| CallError::Connect {
                        at: authority.clone(),
                        source,
                    })?;
                send(TokioIo::new(stream), request).await?
            }
            Self::Unix { path } => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|source| CallError::Connect {
                        at: path.display().to_string(),
                        source,
                    })?;
                send(TokioIo::new(stream), request).await?
            }
        };
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

async fn send<S>(
    io: S,
    request: Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, CallError>
where
    S: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    // The connection task ends with the exchange.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender.send_request(request).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_tcp_address_or_a_socket() {
        assert_eq!(
            Platform::parse("http://127.0.0.1:8080/").unwrap(),
            Platform::Tcp {
                authority: "127.0.0.1:8080".into()
            }
        );
        assert_eq!(
            Platform::parse("unix:/run/hatchery/hatchery.sock").unwrap(),
            Platform::Unix {
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
}
