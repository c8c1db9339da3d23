//! `hatchery ws chat ID [MESSAGE]`: talk to a workspace's agent through the control
//! plane's A2A proxy, as the operator. One message, or (without MESSAGE) a conversation:
//! each line read is a message, and the agent's conversation (`contextId`) carries over.

use std::io::{BufRead as _, BufReader, IsTerminal as _, Write as _};

use hatchery_api::a2a::{
    JSONRPC_VERSION, METHOD_SEND, METHOD_STREAM, Message, MessageParams, Part, Reply, Request,
    Response,
};
use serde_json::{Map, Value};

use super::{Client, Failure, segment};
use crate::exit;
use crate::output::{err, out};

/// One chat: where it goes, and how answers are shown.
pub(crate) struct Chat<'a> {
    client: &'a Client,
    path: String,
    stream: bool,
    context: Option<String>,
    asked: u64,
}

impl<'a> Chat<'a> {
    pub(crate) fn new(client: &'a Client, id: &str, stream: bool, context: Option<String>) -> Self {
        Self {
            client,
            path: format!("/workspaces/{}/a2a", segment(id)),
            stream,
            context,
            asked: 0,
        }
    }

    /// Send `text` and print the answer (as it comes, with `--stream`).
    pub(crate) fn say(&mut self, text: &str) -> Result<(), Failure> {
        self.asked += 1;
        let request = Request {
            jsonrpc: JSONRPC_VERSION.to_owned(),
            id: Value::from(self.asked),
            method: if self.stream {
                METHOD_STREAM
            } else {
                METHOD_SEND
            }
            .to_owned(),
            params: serde_json::to_value(MessageParams {
                message: Message {
                    role: "user".to_owned(),
                    message_id: None,
                    context_id: self.context.clone(),
                    parts: vec![Part::text_part(text)],
                    extra: Map::new(),
                },
                extra: Map::new(),
            })
            .unwrap_or_default(),
        };
        let response = self.client.post_open(&self.path, &request)?;
        if self.stream {
            self.print_stream(response)
        } else {
            let text = response.text().map_err(|e| super::transport(&e))?;
            if self.client.json {
                out(&text);
            }
            let answer = read_response(&text)?;
            self.print_reply(&answer, false).map(|_| ())
        }
    }

    /// Each event of a `message/stream` answer, printed as it arrives.
    fn print_stream(&mut self, response: reqwest::blocking::Response) -> Result<(), Failure> {
        let mut chunks_shown = false;
        for line in BufReader::new(response).lines() {
            let line = line.map_err(|e| {
                err(format_args!("error: the answer broke off: {e}"));
                Failure {
                    code: exit::SERVER_ERROR,
                }
            })?;
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            if self.client.json {
                out(data.trim());
            }
            let event = read_response(data.trim())?;
            chunks_shown |= self.print_reply(&event, chunks_shown)?;
        }
        if chunks_shown && !self.client.json {
            out("");
        }
        Ok(())
    }

    /// Print one answer (or streamed step); whether a chunk of text was printed without
    /// its line's end. A JSON-RPC error is the agent's refusal (exit 2).
    fn print_reply(
        &mut self,
        answer: &Response<Reply>,
        chunks_shown: bool,
    ) -> Result<bool, Failure> {
        if let Some(error) = &answer.error {
            if chunks_shown {
                out("");
            }
            err(format_args!(
                "error: the agent answered with an error: {} (JSON-RPC {})",
                error.message, error.code
            ));
            return Err(Failure {
                code: exit::SERVER_ERROR,
            });
        }
        match &answer.result {
            Some(Reply::Message(message)) => {
                if let Some(context) = &message.context_id {
                    self.context = Some(context.clone());
                }
                // The final message repeats what the chunks said: shown once.
                if !chunks_shown && !self.client.json {
                    out(message.text());
                }
                Ok(false)
            }
            Some(chunk @ Reply::ArtifactUpdate { .. }) => {
                if !self.client.json {
                    let mut stdout = std::io::stdout().lock();
                    let _ = write!(stdout, "{}", chunk.text().unwrap_or_default());
                    let _ = stdout.flush();
                }
                Ok(!self.client.json || chunks_shown)
            }
            Some(Reply::StatusUpdate { .. }) | None => Ok(chunks_shown),
        }
    }
}

fn read_response(text: &str) -> Result<Response<Reply>, Failure> {
    serde_json::from_str(text).map_err(|e| {
        err(format_args!(
            "error: the agent's answer is not an A2A response: {e}"
        ));
        Failure {
            code: exit::SERVER_ERROR,
        }
    })
}

/// A conversation: every line of standard input is a message. On a terminal, a prompt
/// shows where to type; an empty line is skipped; end of input ends it.
pub(crate) fn converse(chat: &mut Chat<'_>) -> Result<(), Failure> {
    let interactive = std::io::stdin().is_terminal();
    let prompt = || {
        if interactive {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "you> ");
            let _ = stderr.flush();
        }
    };
    prompt();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Failure::user(format_args!("cannot read input: {e}")))?;
        let text = line.trim();
        if !text.is_empty() {
            let said = chat.say(text);
            // On a terminal a refused message is explained and the conversation goes on;
            // a script learns of it by the exit code.
            if !interactive {
                said?;
            }
        }
        prompt();
    }
    Ok(())
}
