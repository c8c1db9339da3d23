//! Following the control plane: its server-sent event stream read on a thread (so the
//! caller can wait with a deadline), resumed after a dropped connection, and the live
//! progress of workspaces moving from `provisioning` to `online` or `failed`.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, IsTerminal as _};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hatchery_api::events::{ProvisionFailed, StreamMessage};
use hatchery_api::workspaces::WorkspaceSingle;
use hatchery_core::{EventKind, WorkspaceStatus};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Deserialize as _;
use serde_json::Value;

use super::{Client, Failure};
use crate::exit;
use crate::output::{err, out};

/// One event as the stream carries it.
#[derive(Debug, Clone)]
pub(super) struct Event {
    /// Its place in the log (broadcast-only events have none).
    pub seq: Option<i64>,
    /// `WORKSPACE_ONLINE`, …
    pub kind: String,
    pub workspace_id: Option<String>,
    /// When it happened, in milliseconds since the epoch.
    pub at_ms: Option<u64>,
    pub data: Value,
}

impl Event {
    /// From an SSE frame's `id:` and `data:`. A `data:` that is not an event is kept as one
    /// with no type (`-`), no workspace, time or payload, as before the wire types.
    fn of(seq: Option<i64>, data: &str) -> Self {
        match serde_json::from_str::<StreamMessage>(data) {
            Ok(message) => Self {
                seq,
                kind: message.kind,
                workspace_id: message.workspace_id,
                at_ms: u64::try_from(message.timestamp).ok(),
                data: message.data,
            },
            Err(_) => Self {
                seq,
                kind: "-".to_owned(),
                workspace_id: None,
                at_ms: None,
                data: Value::Null,
            },
        }
    }
}

/// What waiting on the stream gave.
pub(super) enum Next {
    Event(Event),
    /// The server said this subscriber fell behind: events were missed.
    Lagged,
    /// Nothing within the time asked for.
    Quiet,
}

/// An open event stream. The connection is read on its own thread; a dropped connection
/// is reopened after the last event seen, so nothing is missed across it.
pub(super) struct Stream {
    receiver: mpsc::Receiver<Frame>,
}

enum Frame {
    Event(Event),
    Lagged,
    /// The stream was lost and is being reopened.
    Reconnecting(String),
}

/// How long to wait before reopening a lost stream, and how many tries in a row.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
const RECONNECT_TRIES: u32 = 30;

impl Stream {
    /// Open `path` (an SSE route). The first connection is made here, so a refusal (bad
    /// token, unknown workspace) is the caller's error before anything else happens.
    pub fn open(client: &Client, path: &str) -> Result<Self, Failure> {
        let response = client.open(path)?;
        let (sender, receiver) = mpsc::channel();
        let client = client.clone();
        let path = path.to_owned();
        std::thread::spawn(move || follow(&client, &path, response, &sender));
        Ok(Self { receiver })
    }

    /// The next event, or `Quiet` when none came within `timeout`. A stream that cannot be
    /// reopened is a failure (exit 2).
    pub fn next(&self, timeout: Duration) -> Result<Next, Failure> {
        loop {
            return match self.receiver.recv_timeout(timeout) {
                Ok(Frame::Event(event)) => Ok(Next::Event(event)),
                Ok(Frame::Lagged) => Ok(Next::Lagged),
                Ok(Frame::Reconnecting(why)) => {
                    err(format_args!("event stream lost ({why}); reconnecting"));
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => Ok(Next::Quiet),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    err("error: the event stream ended and could not be reopened");
                    Err(Failure {
                        code: exit::SERVER_ERROR,
                    })
                }
            };
        }
    }
}

/// Read frames until the receiver is gone; reopen the stream after the last seen event
/// when the connection drops.
fn follow(
    client: &Client,
    path: &str,
    first: reqwest::blocking::Response,
    sender: &mpsc::Sender<Frame>,
) {
    let mut response = Some(first);
    let mut last_seq: Option<i64> = None;
    let mut failures = 0;
    loop {
        let why = match response.take() {
            Some(open) => {
                failures = 0;
                match read_frames(open, sender, &mut last_seq) {
                    Ok(()) => "the server closed it".to_owned(),
                    Err(Gone) => return,
                }
            }
            None => "reconnect failed".to_owned(),
        };
        failures += 1;
        if failures > RECONNECT_TRIES || sender.send(Frame::Reconnecting(why)).is_err() {
            return;
        }
        std::thread::sleep(RECONNECT_AFTER);
        let resumed = match last_seq {
            Some(seq) => format!(
                "{path}{}after={seq}",
                if path.contains('?') { '&' } else { '?' }
            ),
            None => path.to_owned(),
        };
        // Refusals are printed by `open`; the next round counts it as a failed try.
        response = client.open(&resumed).ok();
    }
}

/// The receiver went away: stop reading.
struct Gone;

fn read_frames(
    response: reqwest::blocking::Response,
    sender: &mpsc::Sender<Frame>,
    last_seq: &mut Option<i64>,
) -> Result<(), Gone> {
    let mut lines = BufReader::new(response).lines();
    let mut id: Option<i64> = None;
    let mut kind: Option<String> = None;
    let mut data = String::new();
    while let Some(Ok(line)) = lines.next() {
        if let Some(value) = line.strip_prefix("id:") {
            id = value.trim().parse().ok();
        } else if let Some(value) = line.strip_prefix("event:") {
            kind = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.trim_start());
        } else if line.is_empty() && !data.is_empty() {
            let frame = if kind.as_deref() == Some("lagged") {
                Frame::Lagged
            } else if kind.as_deref() == Some("expired") {
                // Retention overtook the cursor (the server ends the stream): events were
                // missed, and the reconnect starts from now (the old cursor would get 410).
                *last_seq = None;
                Frame::Lagged
            } else {
                if id.is_some() {
                    *last_seq = id;
                }
                Frame::Event(Event::of(id, &data))
            };
            sender.send(frame).map_err(|_| Gone)?;
            id = None;
            kind = None;
            data.clear();
        }
    }
    Ok(())
}

/// Where a workspace stands, as far as waiting for it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Standing {
    Provisioning,
    Online,
    /// An external workspace: up to an agent started elsewhere to register.
    AwaitingAgent,
    Failed(String),
    Removed,
}

impl Standing {
    fn settled(&self) -> bool {
        !matches!(self, Self::Provisioning)
    }

    /// From a workspace's status and, when it failed, why; a status this client does not
    /// know is still provisioning.
    pub fn of(status: Option<WorkspaceStatus>, failure_reason: Option<&str>) -> Self {
        match status {
            Some(WorkspaceStatus::Online | WorkspaceStatus::Degraded) => Self::Online,
            Some(WorkspaceStatus::AwaitingAgent) => Self::AwaitingAgent,
            Some(WorkspaceStatus::Failed) => {
                Self::Failed(failure_reason.unwrap_or("no reason given").to_owned())
            }
            Some(WorkspaceStatus::Removed) => Self::Removed,
            _ => Self::Provisioning,
        }
    }

    /// From an event about the workspace; `None` when the event says nothing about it.
    fn from_event(event: &Event) -> Option<Self> {
        match event.kind.parse().ok()? {
            EventKind::WorkspaceOnline | EventKind::WorkspaceDegraded => Some(Self::Online),
            EventKind::WorkspaceAwaitingAgent => Some(Self::AwaitingAgent),
            EventKind::WorkspaceProvisionFailed => Some(Self::Failed(
                ProvisionFailed::deserialize(&event.data)
                    .map_or_else(|_| "no reason given".to_owned(), |failed| failed.error),
            )),
            EventKind::WorkspaceRemoved => Some(Self::Removed),
            _ => None,
        }
    }
}

/// Workspaces being waited for, each with a line of live progress: a spinner on a
/// terminal, one plain line per change otherwise (logs and CI), nothing with `--json`.
pub(super) struct Progress {
    started: Instant,
    bars: Option<MultiProgress>,
    quiet: bool,
    workspaces: BTreeMap<String, Watched>,
}

struct Watched {
    name: String,
    standing: Standing,
    bar: Option<ProgressBar>,
}

/// What came of the wait.
pub(super) struct Outcome {
    pub online: usize,
    pub awaiting: usize,
    pub failed: usize,
    pub removed: usize,
    pub waiting: usize,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let bars = (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new);
        Self {
            started: Instant::now(),
            bars,
            quiet,
            workspaces: BTreeMap::new(),
        }
    }

    /// Watch one workspace, by id and name, starting from `standing`.
    pub fn follow(&mut self, id: &str, name: &str, standing: Standing) {
        let id = id.to_owned();
        let name = name.to_owned();
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {prefix:<24} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(name.clone());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        self.workspaces.insert(
            id.clone(),
            Watched {
                name,
                standing: Standing::Provisioning,
                bar,
            },
        );
        self.show(&id, Standing::Provisioning, true);
        self.show(&id, standing, false);
    }

    fn show(&mut self, id: &str, standing: Standing, first: bool) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let Some(watched) = self.workspaces.get_mut(id) else {
            return;
        };
        if !first && watched.standing == standing {
            return;
        }
        let line = match &standing {
            Standing::Provisioning => "provisioning".to_owned(),
            Standing::Online => format!("online ({elapsed:.1}s)"),
            Standing::AwaitingAgent => "awaiting its agent (external)".to_owned(),
            Standing::Failed(reason) => format!("failed: {reason}"),
            Standing::Removed => "removed".to_owned(),
        };
        match &watched.bar {
            Some(bar) if standing.settled() => {
                let mark = if matches!(standing, Standing::Online | Standing::AwaitingAgent) {
                    "✔"
                } else {
                    "✘"
                };
                bar.set_style(
                    ProgressStyle::with_template("{prefix:<26} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(format!("{mark} {}", watched.name));
                bar.finish_with_message(line);
            }
            Some(bar) => bar.set_message(line),
            None if !self.quiet => out(format_args!("{:<24} {line}", watched.name)),
            None => {}
        }
        watched.standing = standing;
    }

    fn pending(&self) -> Vec<String> {
        self.workspaces
            .iter()
            .filter(|(_, w)| !w.standing.settled())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Follow `stream` until every watched workspace is online, failed or removed, or
    /// `timeout` passes. After a lag, and at the deadline, the records are read again, so
    /// a missed event cannot leave the wait hanging.
    pub fn run(&mut self, client: &Client, stream: &Stream, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        while !self.pending().is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.refresh(client);
                break;
            }
            match stream.next(left) {
                Ok(Next::Event(event)) => {
                    if let (Some(id), Some(standing)) =
                        (&event.workspace_id, Standing::from_event(&event))
                    {
                        self.show(id, standing, false);
                    }
                }
                Ok(Next::Lagged) => self.refresh(client),
                Ok(Next::Quiet) => {}
                Err(_) => {
                    self.refresh(client);
                    break;
                }
            }
        }
        for watched in self.workspaces.values() {
            if let Some(bar) = watched.bar.as_ref().filter(|bar| !bar.is_finished()) {
                bar.abandon_with_message("still provisioning");
            }
        }
        let count = |wanted: fn(&Standing) -> bool| {
            self.workspaces
                .values()
                .filter(|w| wanted(&w.standing))
                .count()
        };
        Outcome {
            online: count(|s| *s == Standing::Online),
            awaiting: count(|s| *s == Standing::AwaitingAgent),
            failed: count(|s| matches!(s, Standing::Failed(_))),
            removed: count(|s| *s == Standing::Removed),
            waiting: count(|s| *s == Standing::Provisioning),
        }
    }

    /// Read the pending workspaces' records again.
    fn refresh(&mut self, client: &Client) {
        for id in self.pending() {
            // A record that cannot be read is as good as no answer: the wait goes on.
            if let Ok((_, answer)) =
                client.call(reqwest::Method::GET, &format!("/workspaces/{id}"), None)
                && let Ok(workspace) = WorkspaceSingle::deserialize(&answer)
            {
                let common = workspace.common;
                let standing =
                    Standing::of(Some(common.brief.status), common.failure_reason.as_deref());
                self.show(&id, standing, false);
            }
        }
    }
}

impl Outcome {
    /// One summary line, and the exit: any failure is 1, a timeout 2.
    pub fn finish(&self, quiet: bool, timeout: Duration) -> Result<(), Failure> {
        if !quiet {
            let mut parts = vec![format!("{} online", self.online)];
            for (count, what) in [
                (self.awaiting, "awaiting their agents"),
                (self.failed, "failed"),
                (self.removed, "removed"),
                (self.waiting, "still provisioning"),
            ] {
                if count > 0 {
                    parts.push(format!("{count} {what}"));
                }
            }
            out(parts.join(", "));
        }
        if self.failed > 0 || self.removed > 0 {
            return Err(Failure {
                code: exit::USER_ERROR,
            });
        }
        if self.waiting > 0 {
            err(format_args!(
                "error: not online after {}; `hatchery ws logs ID` shows what the agent said",
                humantime::format_duration(timeout)
            ));
            return Err(Failure {
                code: exit::SERVER_ERROR,
            });
        }
        Ok(())
    }
}
