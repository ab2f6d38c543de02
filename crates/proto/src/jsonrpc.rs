//! JSON-RPC 2.0 messages in both directions.
//!
//! [`Message::parse`] reads one message from bytes and never panics: bytes that are not JSON
//! give [`MessageError::Parse`] (answer -32700), JSON that is not a JSON-RPC 2.0 message gives
//! [`MessageError::Invalid`] (answer -32600, with the request's id when it had a usable one).
//! Batches (arrays) are not part of the JobCenter protocol and are refused as invalid.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::{Error, ErrorKind, Method, Notify};

/// A request id: a number or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Number(i64),
    String(String),
}

impl From<i64> for Id {
    fn from(n: i64) -> Id {
        Id::Number(n)
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Id {
        Id::String(s.to_owned())
    }
}

/// A call that expects a [`Response`].
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Id,
    pub method: String,
    /// `None` when the message had no `params`.
    pub params: Option<Value>,
}

/// A call without an id: no response is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub method: String,
    pub params: Option<Value>,
}

/// The answer to a request: a result or an error. `id` is `None` only for an error about a
/// request whose id could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub id: Option<Id>,
    pub outcome: Result<Value, ErrorObject>,
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} ({code})")]
pub struct ErrorObject {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ErrorObject {
        ErrorObject {
            code: kind.code(),
            message: message.into(),
            data: None,
        }
    }

    /// The same error with `data` attached.
    pub fn with_data(mut self, data: Value) -> ErrorObject {
        self.data = Some(data);
        self
    }

    /// What the code means, when it is one of the protocol's.
    pub fn kind(&self) -> Option<ErrorKind> {
        ErrorKind::from_code(self.code)
    }
}

/// Any message on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request(Request),
    Notification(Notification),
    Response(Response),
}

/// Why bytes are not a message, and so what to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Not JSON (answer -32700 with a null id).
    #[error("parse error: {0}")]
    Parse(String),
    /// JSON, but not a JSON-RPC 2.0 message (answer -32600).
    #[error("invalid request: {reason}")]
    Invalid { id: Option<Id>, reason: String },
}

impl MessageError {
    /// The error response to send back.
    pub fn response(&self) -> Response {
        match self {
            MessageError::Parse(msg) => Response {
                id: None,
                outcome: Err(ErrorObject::new(ErrorKind::ParseError, msg.clone())),
            },
            MessageError::Invalid { id, reason } => Response {
                id: id.clone(),
                outcome: Err(ErrorObject::new(ErrorKind::InvalidRequest, reason.clone())),
            },
        }
    }
}

fn invalid(id: Option<Id>, reason: impl Into<String>) -> MessageError {
    MessageError::Invalid {
        id,
        reason: reason.into(),
    }
}

fn read_id(v: &Value) -> Option<Id> {
    match v {
        Value::Number(n) => n.as_i64().map(Id::Number),
        Value::String(s) => Some(Id::String(s.clone())),
        _ => None,
    }
}

impl Message {
    /// Reads one message.
    pub fn parse(bytes: &[u8]) -> Result<Message, MessageError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| MessageError::Parse(e.to_string()))?;
        Message::from_value(value)
    }

    /// Reads one message from parsed JSON.
    pub fn from_value(value: Value) -> Result<Message, MessageError> {
        let mut obj = match value {
            Value::Object(obj) => obj,
            Value::Array(_) => return Err(invalid(None, "batches are not supported")),
            _ => return Err(invalid(None, "a message must be a JSON object")),
        };
        let raw_id = obj.remove("id");
        let id = raw_id.as_ref().and_then(read_id);
        match obj.get("jsonrpc") {
            Some(Value::String(v)) if v == "2.0" => {}
            _ => return Err(invalid(id, "jsonrpc must be \"2.0\"")),
        }
        if let Some(method) = obj.remove("method") {
            let Value::String(method) = method else {
                return Err(invalid(id, "method must be a string"));
            };
            let params = match obj.remove("params") {
                None => None,
                Some(p @ (Value::Object(_) | Value::Array(_))) => Some(p),
                Some(_) => return Err(invalid(id, "params must be an object or an array")),
            };
            return match raw_id {
                None => Ok(Message::Notification(Notification { method, params })),
                Some(raw) => match read_id(&raw) {
                    Some(id) => Ok(Message::Request(Request { id, method, params })),
                    None => Err(invalid(None, "id must be an integer or a string")),
                },
            };
        }
        let result = obj.remove("result");
        let error = obj.remove("error");
        let outcome = match (result, error) {
            (Some(r), None) => Ok(r),
            (None, Some(e)) => Err(serde_json::from_value::<ErrorObject>(e)
                .map_err(|e| invalid(id.clone(), format!("bad error object: {e}")))?),
            (Some(_), Some(_)) => {
                return Err(invalid(id, "a response has a result or an error, not both"))
            }
            (None, None) => return Err(invalid(id, "no method, result or error")),
        };
        match raw_id {
            Some(Value::Null) if outcome.is_err() => {
                Ok(Message::Response(Response { id: None, outcome }))
            }
            Some(_) if id.is_some() => Ok(Message::Response(Response { id, outcome })),
            _ => Err(invalid(None, "a response needs an integer or string id")),
        }
    }

    /// The message as JSON.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("jsonrpc".into(), Value::from("2.0"));
        match self {
            Message::Request(r) => {
                m.insert("method".into(), Value::from(r.method.clone()));
                if let Some(p) = &r.params {
                    m.insert("params".into(), p.clone());
                }
                m.insert("id".into(), id_value(Some(&r.id)));
            }
            Message::Notification(n) => {
                m.insert("method".into(), Value::from(n.method.clone()));
                if let Some(p) = &n.params {
                    m.insert("params".into(), p.clone());
                }
            }
            Message::Response(r) => {
                match &r.outcome {
                    Ok(v) => m.insert("result".into(), v.clone()),
                    Err(e) => m.insert("error".into(), error_value(e)),
                };
                m.insert("id".into(), id_value(r.id.as_ref()));
            }
        }
        Value::Object(m)
    }

    /// The message as JSON text.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_value().to_string().into_bytes()
    }
}

fn id_value(id: Option<&Id>) -> Value {
    match id {
        Some(Id::Number(n)) => Value::from(*n),
        Some(Id::String(s)) => Value::from(s.clone()),
        None => Value::Null,
    }
}

fn error_value(e: &ErrorObject) -> Value {
    let mut m = Map::new();
    m.insert("code".into(), Value::from(e.code));
    m.insert("message".into(), Value::from(e.message.clone()));
    if let Some(d) = &e.data {
        m.insert("data".into(), d.clone());
    }
    Value::Object(m)
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Message {
        Message::Request(r)
    }
}

impl From<Notification> for Message {
    fn from(n: Notification) -> Message {
        Message::Notification(n)
    }
}

impl From<Response> for Message {
    fn from(r: Response) -> Message {
        Message::Response(r)
    }
}

fn to_params<T: Serialize>(method: &str, params: &T) -> Result<Option<Value>, Error> {
    serde_json::to_value(params)
        .map(Some)
        .map_err(|source| Error::Shape {
            method: method.to_owned(),
            what: "params",
            source,
        })
}

/// Reads `params` as `T`; absent or null params read as `{}`.
fn from_params<T: DeserializeOwned>(params: Option<&Value>) -> Result<T, serde_json::Error> {
    match params {
        None | Some(Value::Null) => serde_json::from_value(Value::Object(Map::new())),
        Some(p) => T::deserialize(p),
    }
}

impl Request {
    /// A call of method `M`.
    pub fn new<M: Method>(id: impl Into<Id>, params: &M::Params) -> Result<Request, Error> {
        Ok(Request {
            id: id.into(),
            method: M::NAME.to_owned(),
            params: to_params(M::NAME, params)?,
        })
    }

    /// The parameters as method `M`'s, or the -32602 error to answer with.
    pub fn params<M: Method>(&self) -> Result<M::Params, ErrorObject> {
        from_params(self.params.as_ref()).map_err(|e| {
            ErrorObject::new(ErrorKind::InvalidParams, format!("{}: {e}", self.method))
        })
    }
}

impl Notification {
    /// A notification `N`.
    pub fn new<N: Notify>(params: &N::Params) -> Result<Notification, Error> {
        Ok(Notification {
            method: N::NAME.to_owned(),
            params: to_params(N::NAME, params)?,
        })
    }

    /// The parameters as notification `N`'s.
    pub fn params<N: Notify>(&self) -> Result<N::Params, Error> {
        from_params(self.params.as_ref()).map_err(|source| Error::Shape {
            method: self.method.clone(),
            what: "params",
            source,
        })
    }
}

impl Response {
    /// A successful answer to request `id` of method `M`.
    pub fn result<M: Method>(id: Id, result: &M::Result) -> Result<Response, Error> {
        let value = serde_json::to_value(result).map_err(|source| Error::Shape {
            method: M::NAME.to_owned(),
            what: "result",
            source,
        })?;
        Ok(Response {
            id: Some(id),
            outcome: Ok(value),
        })
    }

    /// An error answer to request `id`.
    pub fn error(id: Option<Id>, error: ErrorObject) -> Response {
        Response {
            id,
            outcome: Err(error),
        }
    }

    /// The result as method `M`'s; a remote error becomes [`Error::Remote`].
    pub fn into_result<M: Method>(self) -> Result<M::Result, Error> {
        match self.outcome {
            Ok(v) => serde_json::from_value(v).map_err(|source| Error::Shape {
                method: M::NAME.to_owned(),
                what: "result",
                source,
            }),
            Err(error) => Err(Error::Remote {
                method: M::NAME.to_owned(),
                error,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::methods::{CreateJob, CreateJobParams, CreateJobResult, TaskReady};
    use serde_json::json;

    #[test]
    fn requests_notifications_and_responses_parse() {
        let m = Message::parse(br#"{"jsonrpc":"2.0","method":"ping","id":7}"#).unwrap();
        assert_eq!(
            m,
            Message::Request(Request {
                id: Id::Number(7),
                method: "ping".into(),
                params: None
            })
        );
        let m = Message::parse(br#"{"jsonrpc":"2.0","method":"x","params":{"a":1}}"#).unwrap();
        assert!(matches!(m, Message::Notification(n) if n.params == Some(json!({"a":1}))));
        let m = Message::parse(br#"{"jsonrpc":"2.0","result":[1,null],"id":"a"}"#).unwrap();
        assert!(matches!(m, Message::Response(r) if r.id == Some(Id::from("a"))));
        let m =
            Message::parse(br#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"x"},"id":null}"#)
                .unwrap();
        assert!(
            matches!(m, Message::Response(r) if r.id.is_none() && r.outcome.as_ref().is_err_and(|e| e.kind() == Some(ErrorKind::ParseError)))
        );
    }

    #[test]
    fn bad_messages_say_what_to_answer() {
        assert!(matches!(
            Message::parse(b"{not json"),
            Err(MessageError::Parse(_))
        ));
        let e = Message::parse(br#"{"jsonrpc":"1.0","method":"x","id":3}"#).unwrap_err();
        assert_eq!(
            e.response().id,
            Some(Id::Number(3)),
            "the id is kept when readable"
        );
        for bad in [
            &br#"[1,2]"#[..],
            br#"42"#,
            br#"{"jsonrpc":"2.0","method":5,"id":1}"#,
            br#"{"jsonrpc":"2.0","method":"x","params":3,"id":1}"#,
            br#"{"jsonrpc":"2.0","method":"x","id":1.5}"#,
            br#"{"jsonrpc":"2.0","method":"x","id":{}}"#,
            br#"{"jsonrpc":"2.0","id":1}"#,
            br#"{"jsonrpc":"2.0","result":1,"error":{"code":1,"message":""},"id":1}"#,
        ] {
            let e = Message::parse(bad).unwrap_err();
            assert!(matches!(e, MessageError::Invalid { .. }), "{e:?}");
            assert_eq!(
                e.response().outcome.unwrap_err().kind(),
                Some(ErrorKind::InvalidRequest)
            );
        }
    }

    #[test]
    fn messages_round_trip() {
        let req = Request::new::<CreateJob>(
            1,
            &CreateJobParams {
                wfname: "calltest".into(),
                inargs: json!({"input": 1}),
                vtag: None,
                timeout: None,
                clenv: None,
                key: None,
                priority: None,
            },
        )
        .unwrap();
        let bytes = Message::from(req.clone()).to_bytes();
        let back = Message::parse(&bytes).unwrap();
        assert_eq!(back, Message::Request(req.clone()));
        let Message::Request(back) = back else {
            unreachable!()
        };
        assert_eq!(back.params::<CreateJob>().unwrap().wfname, "calltest");

        let resp =
            Response::result::<CreateJob>(Id::Number(1), &CreateJobResult(Some(5), None)).unwrap();
        let v = Message::from(resp.clone()).to_value();
        assert_eq!(v, json!({"jsonrpc":"2.0","result":[5,null],"id":1}));
        let Message::Response(r) = Message::from_value(v).unwrap() else {
            unreachable!()
        };
        assert_eq!(
            r.into_result::<CreateJob>().unwrap(),
            CreateJobResult(Some(5), None)
        );

        let n = Notification::new::<TaskReady>(&crate::methods::TaskReadyParams {
            actionname: "add".into(),
            job_id: crate::methods::JobRef::Id(3),
        })
        .unwrap();
        assert_eq!(
            Message::from(n).to_value(),
            json!({"jsonrpc":"2.0","method":"task_ready","params":{"actionname":"add","job_id":3}})
        );
    }

    #[test]
    fn missing_params_read_as_empty_object_and_wrong_params_are_32602() {
        let r = Request {
            id: Id::Number(1),
            method: "ping".into(),
            params: None,
        };
        r.params::<crate::methods::Ping>().unwrap();
        let r = Request {
            id: Id::Number(1),
            method: "create_job".into(),
            params: Some(json!({"inargs": {}})),
        };
        assert_eq!(
            r.params::<CreateJob>().unwrap_err().kind(),
            Some(ErrorKind::InvalidParams)
        );
    }
}
