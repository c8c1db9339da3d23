//! The agent's A2A endpoint (`POST /`): JSON-RPC 2.0 `message/send` (one JSON answer) and
//! `message/stream` (Server-Sent Events: the task is working, the answer word by word, the
//! answer), with a conversation per caller and `contextId`.
//!
//! The control plane is the only one who reaches the agent (through the backend's socket);
//! it names the caller in `X-Hatchery-Caller` (a workspace id, or `operator`), so one
//! caller cannot continue another's conversation by naming its `contextId`. Until the LLM
//! gateway exists the answer only says what the agent heard and what it runs on.
//!
//! Every answer is HTTP 200 with a JSON-RPC body: a refusal is a JSON-RPC error.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response as HttpResponse};
use futures_util::StreamExt as _;
use hatchery_api::a2a::{
    Artifact, METHOD_SEND, METHOD_STREAM, Message, MessageParams, Part, Reply, Request, Response,
    codes,
};
use serde_json::{Map, Value, json};

/// The header the control plane names the caller in: a workspace id, or `operator`.
pub const CALLER_HEADER: &str = "x-hatchery-caller";
/// The most conversations kept; a new one beyond it drops the one unused the longest.
pub const MAX_CONVERSATIONS: usize = 256;
/// The most turns a conversation remembers (older ones are forgotten; the count goes on).
pub const MAX_TURNS: usize = 100;
/// The most bytes of text a conversation remembers, its turns together: with
/// [`MAX_CONVERSATIONS`], what bounds the memory they take whatever callers send.
const MAX_HISTORY_BYTES: usize = 64 * 1024;
/// The longest `contextId` (and caller) kept as a conversation's key.
const MAX_KEY_BYTES: usize = 256;
/// Between the chunks of a streamed answer.
const CHUNK_INTERVAL: Duration = Duration::from_millis(20);

/// One exchange of a conversation, as remembered (each text cut to fit the history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// What the caller said.
    pub said: String,
    /// What the agent answered.
    pub answered: String,
}

impl Turn {
    fn bytes(&self) -> usize {
        self.said.len() + self.answered.len()
    }
}

#[derive(Debug, Default)]
struct Conversation {
    /// Turns taken, remembered or not.
    turns: u64,
    /// The latest turns, oldest first.
    history: VecDeque<Turn>,
    history_bytes: usize,
    /// When it was last used, by [`Conversations::clock`].
    last_used: u64,
}

/// The conversations the agent keeps, by caller and `contextId`.
#[derive(Debug, Default)]
pub struct Conversations {
    by_key: HashMap<(String, String), Conversation>,
    /// Counts uses, to find the conversation unused the longest.
    clock: u64,
}

impl Conversations {
    /// Take a turn in `caller`'s conversation `context_id` (started if new): `answer` is
    /// given the turn's number (1 for the first) and says the answer, which is remembered
    /// and returned.
    pub fn take_turn(
        &mut self,
        caller: &str,
        context_id: &str,
        said: &str,
        answer: impl FnOnce(u64) -> String,
    ) -> String {
        self.clock += 1;
        let key = (caller.to_owned(), context_id.to_owned());
        if !self.by_key.contains_key(&key) && self.by_key.len() >= MAX_CONVERSATIONS {
            self.forget_least_recently_used();
        }
        let conversation = self.by_key.entry(key).or_default();
        conversation.last_used = self.clock;
        conversation.turns += 1;
        let answered = answer(conversation.turns);
        let turn = Turn {
            said: truncated(said, MAX_HISTORY_BYTES / 2).to_owned(),
            answered: truncated(&answered, MAX_HISTORY_BYTES / 2).to_owned(),
        };
        conversation.history_bytes += turn.bytes();
        conversation.history.push_back(turn);
        while conversation.history.len() > MAX_TURNS
            || conversation.history_bytes > MAX_HISTORY_BYTES
        {
            let Some(oldest) = conversation.history.pop_front() else {
                break;
            };
            conversation.history_bytes -= oldest.bytes();
        }
        answered
    }

    /// The turns `caller`'s conversation `context_id` remembers, oldest first.
    #[must_use]
    pub fn history(&self, caller: &str, context_id: &str) -> Vec<Turn> {
        self.by_key
            .get(&(caller.to_owned(), context_id.to_owned()))
            .map(|c| c.history.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many conversations are kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether none is.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    fn forget_least_recently_used(&mut self) {
        let oldest = self
            .by_key
            .iter()
            .min_by_key(|(_, c)| c.last_used)
            .map(|(key, _)| key.clone());
        if let Some(key) = oldest {
            self.by_key.remove(&key);
        }
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character.
fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What the A2A endpoint serves with: who the agent is, and its conversations.
#[derive(Debug)]
pub struct A2a {
    /// `this agent runs "…" on "…" via provider "…"`, the end of every answer.
    about: String,
    conversations: Mutex<Conversations>,
}

impl A2a {
    /// An endpoint for an agent of `runtime` on `model` through `provider`.
    #[must_use]
    pub fn new(runtime: &str, model: &str, provider: Option<&str>) -> Self {
        // Each named as JSON: quoted, or `null` for no provider.
        let about = format!(
            "this agent runs {} on {} via provider {}",
            json!(runtime),
            json!(model),
            json!(provider)
        );
        Self {
            about,
            conversations: Mutex::default(),
        }
    }

    /// Answer `said` from `caller` in `context_id`.
    fn answer(&self, caller: &str, context_id: &str, said: &str) -> String {
        self.conversations
            .lock()
            // A panic elsewhere leaves the map as consistent as any single turn.
            .unwrap_or_else(PoisonError::into_inner)
            .take_turn(caller, context_id, said, |turn| {
                format!(
                    "turn {turn} of this conversation; you said: {said}; {}",
                    self.about
                )
            })
    }
}

/// A call that reads: the request's id, the method, what was said.
struct Call {
    id: Value,
    streamed: bool,
    params: MessageParams,
}

/// A call refused: the JSON-RPC error to answer the request `id` with.
struct Refusal {
    id: Value,
    code: i64,
    message: String,
}

impl Refusal {
    fn new(id: Value, code: i64, message: String) -> Self {
        Self { id, code, message }
    }

    fn into_response(self) -> Response<Reply> {
        Response::failure(self.id, self.code, self.message)
    }
}

/// Read a JSON-RPC call of a message method, or why not.
fn read_call(body: &[u8]) -> Result<Call, Refusal> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Refusal::new(Value::Null, codes::PARSE_ERROR, format!("parse error: {e}")))?;
    // JSON, but no request: no method this agent could serve (and no id to answer to).
    let request: Request = serde_json::from_value(value).map_err(|e| {
        Refusal::new(
            Value::Null,
            codes::METHOD_NOT_FOUND,
            format!("not a JSON-RPC request: {e}"),
        )
    })?;
    let streamed = match request.method.as_str() {
        METHOD_SEND => false,
        METHOD_STREAM => true,
        other => {
            return Err(Refusal::new(
                request.id,
                codes::METHOD_NOT_FOUND,
                format!(
                    "method not found: {other:?} (this agent serves {METHOD_SEND} and {METHOD_STREAM})"
                ),
            ));
        }
    };
    let params: MessageParams = match serde_json::from_value(request.params) {
        Ok(params) => params,
        Err(e) => {
            return Err(Refusal::new(
                request.id,
                codes::INVALID_PARAMS,
                format!("invalid params: {e}"),
            ));
        }
    };
    if params
        .message
        .context_id
        .as_ref()
        .is_some_and(|c| c.len() > MAX_KEY_BYTES)
    {
        return Err(Refusal::new(
            request.id,
            codes::INVALID_PARAMS,
            format!("invalid params: contextId is longer than {MAX_KEY_BYTES} bytes"),
        ));
    }
    Ok(Call {
        id: request.id,
        streamed,
        params,
    })
}

/// `POST /`: a JSON-RPC call of `message/send` or `message/stream`.
pub async fn serve(
    State(a2a): State<Arc<A2a>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> HttpResponse {
    let call = match read_call(&body) {
        Ok(call) => call,
        Err(refusal) => return Json(refusal.into_response()).into_response(),
    };
    // Absent (or unreadable) is the empty caller: a conversation of its own all the same.
    let caller = headers
        .get(CALLER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map_or("", |c| truncated(c, MAX_KEY_BYTES));
    let context_id = call
        .params
        .message
        .context_id
        .clone()
        .unwrap_or_else(new_id);
    let text = a2a.answer(caller, &context_id, &call.params.message.text());
    let message = Message {
        role: "agent".to_owned(),
        message_id: Some(new_id()),
        context_id: Some(context_id.clone()),
        parts: vec![Part::text_part(text.clone())],
        extra: Map::new(),
    };
    if !call.streamed {
        return Json(Response::success(call.id, Reply::Message(message))).into_response();
    }
    let events = streamed_replies(&text, &context_id, message)
        .into_iter()
        .map(move |reply| Response::success(call.id.clone(), reply));
    let paced =
        futures_util::stream::iter(events.enumerate()).then(|(index, response)| async move {
            // The first event at once: the caller learns the agent is working.
            if index > 0 {
                tokio::time::sleep(CHUNK_INTERVAL).await;
            }
            Ok::<_, Infallible>(sse_event(&response))
        });
    Sse::new(paced).into_response()
}

/// What a stream says, in order: working, each word of `text` as an artifact chunk, and
/// `answer`.
fn streamed_replies(text: &str, context_id: &str, answer: Message) -> Vec<Reply> {
    let task_id = new_id();
    let artifact_id = new_id();
    // Each chunk keeps the space after its word: the chunks join into the text.
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    let mut replies = Vec::with_capacity(words.len() + 2);
    replies.push(Reply::StatusUpdate {
        task_id: task_id.clone(),
        context_id: context_id.to_owned(),
        status: json!({"state": "working"}),
        last: false,
    });
    for (index, word) in words.iter().enumerate() {
        replies.push(Reply::ArtifactUpdate {
            task_id: task_id.clone(),
            context_id: context_id.to_owned(),
            artifact: Artifact {
                artifact_id: artifact_id.clone(),
                parts: vec![Part::text_part(*word)],
            },
            append: index > 0,
            last_chunk: index + 1 == words.len(),
        });
    }
    replies.push(Reply::Message(answer));
    replies
}

/// One Server-Sent Event whose data is `response`.
fn sse_event(response: &Response<Reply>) -> Event {
    // The wire types serialize to JSON whatever they hold; should one not, the event says
    // so rather than the stream breaking off.
    let data = serde_json::to_string(response).unwrap_or_else(|e| {
        json!({"jsonrpc": "2.0", "id": response.id, "error": {"code": codes::INTERNAL_ERROR, "message": e.to_string()}})
            .to_string()
    });
    Event::default().data(data)
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The endpoint on a Unix socket in `dir`, as the agent serves it; a client for it.
    fn served(dir: &Path) -> reqwest::Client {
        let socket = dir.join("agent.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let router = axum::Router::new()
            .route("/", axum::routing::post(serve))
            .with_state(Arc::new(A2a::new(
                "claude-code",
                "moonshot/kimi-k2.6",
                Some("platform"),
            )));
        tokio::spawn(async move { axum::serve(listener, router).await });
        reqwest::Client::builder()
            .unix_socket(socket)
            .build()
            .unwrap()
    }

    async fn call(client: &reqwest::Client, caller: Option<&str>, body: &str) -> (u16, Value) {
        let mut request = client
            .post("http://agent/")
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(caller) = caller {
            request = request.header(CALLER_HEADER, caller);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    fn send(context_id: Option<&str>, text: &str) -> String {
        json!({"jsonrpc": "2.0", "id": "r-1", "method": "message/send", "params": {
            "message": {"role": "user", "messageId": "m-1", "contextId": context_id,
                        "parts": [{"kind": "text", "text": text}]}}})
        .to_string()
    }

    /// What the tests read of a response.
    #[derive(Debug, serde::Deserialize)]
    struct Answered {
        id: Value,
        result: Option<Reply>,
    }

    fn answer_of(body: &Value) -> Message {
        let response: Answered = serde_json::from_value(body.clone()).unwrap();
        match response.result {
            Some(Reply::Message(message)) => message,
            other => panic!("not a message: {other:?} in {body}"),
        }
    }

    #[tokio::test]
    async fn send_answers_in_the_callers_context() {
        let dir = tempfile::tempdir().unwrap();
        let client = served(dir.path());
        let (status, body) = call(&client, Some("ws-a"), &send(Some("ctx-1"), "hello")).await;
        assert_eq!(status, 200);
        assert_eq!(body["id"], "r-1");
        let answer = answer_of(&body);
        assert_eq!(answer.role, "agent");
        assert_eq!(answer.context_id.as_deref(), Some("ctx-1"));
        let message_id = answer.message_id.clone().unwrap();
        assert!(uuid::Uuid::parse_str(&message_id).is_ok(), "{message_id}");
        assert_ne!(message_id, "m-1");
        assert_eq!(
            answer.text(),
            "turn 1 of this conversation; you said: hello; this agent runs \"claude-code\" on \"moonshot/kimi-k2.6\" via provider \"platform\""
        );
        assert_eq!(body["result"]["kind"], "message");
    }

    #[tokio::test]
    async fn a_message_without_a_context_starts_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let client = served(dir.path());
        let (_, first) = call(&client, None, &send(None, "hi")).await;
        let (_, second) = call(&client, None, &send(None, "hi")).await;
        let (first, second) = (answer_of(&first), answer_of(&second));
        assert!(first.text().starts_with("turn 1 "), "{}", first.text());
        assert!(second.text().starts_with("turn 1 "), "{}", second.text());
        assert_ne!(first.context_id, second.context_id);
        assert!(uuid::Uuid::parse_str(first.context_id.as_deref().unwrap()).is_ok());
    }

    #[tokio::test]
    async fn a_second_message_on_the_same_context_is_turn_two() {
        let dir = tempfile::tempdir().unwrap();
        let client = served(dir.path());
        call(&client, Some("ws-a"), &send(Some("ctx-1"), "one")).await;
        let (_, body) = call(&client, Some("ws-a"), &send(Some("ctx-1"), "two")).await;
        let text = answer_of(&body).text();
        assert!(
            text.starts_with("turn 2 of this conversation; you said: two;"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn another_caller_on_the_same_context_id_starts_its_own_conversation() {
        let dir = tempfile::tempdir().unwrap();
        let client = served(dir.path());
        call(&client, Some("ws-a"), &send(Some("ctx-1"), "one")).await;
        let (_, other) = call(&client, Some("ws-b"), &send(Some("ctx-1"), "mine")).await;
        assert!(answer_of(&other).text().starts_with("turn 1 "), "{other}");
        // Nor is a call without the header anyone else's.
        let (_, anonymous) = call(&client, None, &send(Some("ctx-1"), "me")).await;
        assert!(
            answer_of(&anonymous).text().starts_with("turn 1 "),
            "{anonymous}"
        );
        let (_, first) = call(&client, Some("ws-a"), &send(Some("ctx-1"), "again")).await;
        assert!(answer_of(&first).text().starts_with("turn 2 "), "{first}");
    }

    #[tokio::test]
    async fn a_stream_says_working_then_the_answer_word_by_word_then_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let client = served(dir.path());
        let body = json!({"jsonrpc": "2.0", "id": 9, "method": "message/stream", "params": {
            "message": {"role": "user", "contextId": "ctx-s", "parts": [{"kind": "text", "text": "stream please"}]}}});
        let response = client
            .post("http://agent/")
            .header(CALLER_HEADER, "operator")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "{:?}",
            response.headers()
        );
        let text = response.text().await.unwrap();
        let replies: Vec<Reply> = text
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .map(|data| {
                let response: Answered = serde_json::from_str(data).unwrap();
                assert_eq!(response.id, 9, "{data}");
                response.result.unwrap()
            })
            .collect();
        assert!(replies.len() >= 4, "{text}");
        assert!(
            matches!(&replies[0], Reply::StatusUpdate { status, last: false, context_id, .. }
                if status["state"] == "working" && context_id == "ctx-s"),
            "{:?}",
            replies[0]
        );
        let chunks = &replies[1..replies.len() - 1];
        assert!(chunks.len() >= 2, "{text}");
        let mut joined = String::new();
        for (index, chunk) in chunks.iter().enumerate() {
            let Reply::ArtifactUpdate {
                append, last_chunk, ..
            } = chunk
            else {
                panic!("a chunk in the middle: {chunk:?}");
            };
            assert_eq!(*append, index > 0, "{chunk:?}");
            assert_eq!(*last_chunk, index + 1 == chunks.len(), "{chunk:?}");
            joined.push_str(&chunk.text().unwrap());
        }
        let Some(Reply::Message(answer)) = replies.last() else {
            panic!("the stream ends with the answer: {text}");
        };
        assert_eq!(joined, answer.text(), "the chunks make the answer");
        assert!(
            answer
                .text()
                .starts_with("turn 1 of this conversation; you said: stream please;"),
            "{}",
            answer.text()
        );
    }

    #[tokio::test]
    async fn refusals_are_json_rpc_errors_with_http_200() {
        let dir = tempfile::tempdir().unwrap();
        let client = served(dir.path());
        let (status, garbage) = call(&client, None, "{not json").await;
        assert_eq!(status, 200);
        assert_eq!(garbage["error"]["code"], -32700, "{garbage}");
        assert_eq!(garbage["id"], Value::Null);

        let (status, unknown) = call(
            &client,
            None,
            r#"{"jsonrpc": "2.0", "id": 3, "method": "tasks/get", "params": {}}"#,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(unknown["error"]["code"], -32601, "{unknown}");
        assert_eq!(unknown["id"], 3);

        let (_, not_a_request) = call(&client, None, "[1, 2]").await;
        assert_eq!(not_a_request["error"]["code"], -32601, "{not_a_request}");

        let (_, bad_params) = call(
            &client,
            None,
            r#"{"jsonrpc": "2.0", "id": 4, "method": "message/send", "params": {}}"#,
        )
        .await;
        assert_eq!(bad_params["error"]["code"], -32602, "{bad_params}");
        assert_eq!(bad_params["id"], 4);

        let long = "c".repeat(MAX_KEY_BYTES + 1);
        let (_, long_context) = call(&client, None, &send(Some(&long), "x")).await;
        assert_eq!(long_context["error"]["code"], -32602, "{long_context}");
    }

    #[test]
    fn conversations_beyond_the_limit_drop_the_one_unused_the_longest() {
        let mut conversations = Conversations::default();
        let echo = |turn: u64| turn.to_string();
        conversations.take_turn("a", "oldest", "x", echo);
        for index in 1..MAX_CONVERSATIONS {
            conversations.take_turn("a", &index.to_string(), "x", echo);
        }
        // Used again: no longer the oldest; "1" is.
        conversations.take_turn("a", "oldest", "x", echo);
        assert_eq!(conversations.len(), MAX_CONVERSATIONS);
        conversations.take_turn("a", "new", "x", echo);
        assert_eq!(conversations.len(), MAX_CONVERSATIONS);
        assert_eq!(conversations.history("a", "oldest").len(), 2);
        assert!(conversations.history("a", "1").is_empty(), "dropped");
        assert_eq!(conversations.take_turn("a", "1", "x", echo), "1", "anew");
    }

    #[test]
    fn a_conversation_remembers_its_last_turns_and_keeps_counting() {
        let mut conversations = Conversations::default();
        for turn in 1..=MAX_TURNS + 5 {
            let answered =
                conversations.take_turn("a", "c", &format!("said {turn}"), |n| n.to_string());
            assert_eq!(answered, turn.to_string());
        }
        let history = conversations.history("a", "c");
        assert_eq!(history.len(), MAX_TURNS);
        assert_eq!(history[0].said, "said 6");
        assert_eq!(history[MAX_TURNS - 1].answered, (MAX_TURNS + 5).to_string());

        // However long what is said, the history stays within its bytes.
        let long = "é".repeat(MAX_HISTORY_BYTES);
        conversations.take_turn("a", "c", &long, |_| "ok".into());
        conversations.take_turn("a", "c", &long, |_| "ok".into());
        let history = conversations.history("a", "c");
        let bytes: usize = history.iter().map(Turn::bytes).sum();
        assert!(bytes <= MAX_HISTORY_BYTES, "{bytes}");
        assert_eq!(history.last().unwrap().answered, "ok");
    }
}
