//! Connections whose notifications (LISTEN) arrive on a channel, stamped on arrival.

use std::time::Instant;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// A notification and the moment the connection's driver received it.
#[derive(Debug)]
pub struct Note {
    pub channel: String,
    pub payload: String,
    pub at: Instant,
}

/// A client and the notifications of its session.
#[derive(Debug)]
pub struct Conn {
    pub client: Client,
    pub notes: mpsc::UnboundedReceiver<Note>,
}

impl Conn {
    /// Connects to `dsn`; the connection is driven on a task of the current runtime, which
    /// forwards every notification. The channel closes when the connection ends.
    pub async fn open(dsn: &str) -> anyhow::Result<Conn> {
        let (client, mut connection) = tokio_postgres::connect(dsn, NoTls)
            .await
            .with_context(|| format!("could not connect with `{dsn}`"))?;
        let (tx, notes) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            // A connection error ends the session; the client's next query reports it.
            while let Some(Ok(message)) =
                std::future::poll_fn(|cx| connection.poll_message(cx)).await
            {
                if let AsyncMessage::Notification(n) = message {
                    let _ = tx.send(Note {
                        at: Instant::now(),
                        channel: n.channel().to_owned(),
                        payload: n.payload().to_owned(),
                    });
                }
            }
        });
        Ok(Conn { client, notes })
    }

    /// `LISTEN`s on `channel`.
    pub async fn listen(&self, channel: &str) -> anyhow::Result<()> {
        let quoted = channel.replace('"', "\"\"");
        self.client
            .batch_execute(&format!("LISTEN \"{quoted}\""))
            .await
            .with_context(|| format!("could not LISTEN on {channel}"))
    }
}
