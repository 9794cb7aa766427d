//! Queue topology on RabbitMQ and the confirmed publisher.
//!
//! Every job queue is a durable quorum queue whose rejected messages are dead-lettered to a
//! durable `.dead` queue, and every message is published persistent and waits for the
//! broker's confirm: a job acknowledged to a client is on disk in the broker.

use lapin::Confirmation;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// AMQP `delivery_mode` for messages the broker must write to disk.
const PERSISTENT: u8 = 2;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(15);

/// Deliveries of one message the broker allows before it dead-letters the message itself
/// (`x-delivery-limit`): a message that kills every process that takes it must not be
/// delivered forever.
pub const DELIVERY_LIMIT: i64 = 20;

/// Attempts beyond `CDR_MAX_ATTEMPTS` a job may start, across redeliveries, before the
/// worker parks it as `delivery_limit` itself. Lower than [`DELIVERY_LIMIT`], so the job's
/// state says why; the broker's limit still stops a message that dies before its state
/// could be read.
pub const REDELIVERY_ALLOWANCE: u32 = 5;

/// The names of one deployment's exchanges and queues: one queue per registered job type
/// (see [`crate::job::registry`]), named `<namespace>.<queue>`.
#[derive(Debug, Clone)]
pub struct Topology {
    namespace: String,
    /// Exchange the broker routes rejected messages through.
    pub dead_letter_exchange: String,
}

impl Topology {
    pub fn new(namespace: &str) -> Self {
        Topology { namespace: namespace.to_string(), dead_letter_exchange: format!("{namespace}.dlx") }
    }

    /// The full name of the job queue named `name` within the deployment.
    pub fn queue(&self, name: &str) -> String {
        format!("{}.{name}", self.namespace)
    }

    /// Every job queue.
    pub fn queues(&self) -> Vec<String> {
        crate::job::registry::queues().into_iter().map(|q| self.queue(q)).collect()
    }

    /// Where a queue's jobs go when they failed for good, kept for inspection and replay.
    pub fn dead(queue: &str) -> String {
        format!("{queue}.dead")
    }

    /// Arguments of a job queue. The worker's backend re-declares its queue, and RabbitMQ
    /// refuses a declaration whose arguments differ, so both sides use this.
    pub fn arguments(&self, queue: &str) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(DELIVERY_LIMIT));
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.dead_letter_exchange.as_str().into()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(Self::dead(queue).as_str().into()),
        );
        args
    }

    pub fn queue_options() -> QueueDeclareOptions {
        QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() }
    }

    /// Options of a consumer's declaration: passive, so a queue is used with the arguments
    /// it was created with. (RabbitMQ refuses to re-declare a queue with other arguments,
    /// and queues created by an earlier version lack `x-delivery-limit`; see the README for
    /// the policy that adds it to them.)
    pub fn consumer_queue_options() -> QueueDeclareOptions {
        QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() }
    }

    /// Declares everything; safe to call from every process at every start. A job queue that
    /// exists already is left as it is (see [`Topology::consumer_queue_options`]).
    pub async fn declare(&self, connection: &Connection, channel: &Channel) -> Result<(), lapin::Error> {
        channel
            .exchange_declare(
                self.dead_letter_exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
                FieldTable::default(),
            )
            .await?;
        for queue in self.queues() {
            let queue = queue.as_str();
            let dead = Self::dead(queue);
            let mut dead_args = FieldTable::default();
            dead_args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
            channel.queue_declare(dead.as_str().into(), Self::queue_options(), dead_args).await?;
            channel
                .queue_bind(
                    dead.as_str().into(),
                    self.dead_letter_exchange.as_str().into(),
                    dead.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            // A passive declare of a missing queue closes its channel: probe on a channel of
            // its own.
            let probe = connection.create_channel().await?;
            let exists = probe
                .queue_declare(queue.into(), Self::consumer_queue_options(), FieldTable::default())
                .await
                .is_ok();
            if probe.status().connected() {
                let _ = probe.close(200, "probed".into()).await;
            }
            if !exists {
                channel.queue_declare(queue.into(), Self::queue_options(), self.arguments(queue)).await?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    #[error("message broker unreachable: {0}")]
    Unreachable(String),
    #[error("message broker did not confirm the message: {0}")]
    NotConfirmed(String),
    /// The message was sent but its confirm never came: it may or may not be queued, so it
    /// is not sent again (that could queue the job twice).
    #[error("message broker did not answer the publish in time; the message may be queued: {0}")]
    Unconfirmed(String),
}

/// A message to publish.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub queue: &'a str,
    /// Becomes the AMQP `message_id`, which the worker sees in its task metadata.
    pub message_id: &'a str,
    pub body: &'a [u8],
    pub headers: FieldTable,
}

/// Publishes persistent messages and waits for the broker's confirm. Reconnects lazily after
/// the broker goes away; publishes run concurrently on one confirm-mode channel.
#[derive(Clone)]
pub struct Publisher {
    url: String,
    topology: Topology,
    link: Arc<Mutex<Option<(Connection, Channel)>>>,
}

impl Publisher {
    pub fn new(url: &str, topology: Topology) -> Self {
        Publisher { url: url.to_string(), topology, link: Arc::new(Mutex::new(None)) }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    async fn channel(&self) -> Result<Channel, PublishError> {
        let mut link = self.link.lock().await;
        if let Some((conn, channel)) = link.as_ref()
            && conn.status().connected()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *link = None;
        let unreachable = |e: lapin::Error| PublishError::Unreachable(e.to_string());
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(&self.url, ConnectionProperties::default()),
        )
        .await
        .map_err(|_| PublishError::Unreachable("connection timed out".into()))?
        .map_err(unreachable)?;
        let channel = conn.create_channel().await.map_err(unreachable)?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(unreachable)?;
        self.topology.declare(&conn, &channel).await.map_err(unreachable)?;
        *link = Some((conn, channel.clone()));
        Ok(channel)
    }

    async fn forget(&self) {
        *self.link.lock().await = None;
    }

    /// Publishes one message and returns once the broker has confirmed it is stored.
    /// A cached connection the broker dropped (say, by restarting) is only noticed when it
    /// is used: such a failure is retried on a fresh connection.
    pub async fn publish(&self, msg: Outgoing<'_>) -> Result<(), PublishError> {
        let mut result = self.try_publish(&msg).await;
        for _ in 0..2 {
            if !matches!(result, Err(PublishError::Unreachable(_))) {
                break;
            }
            self.forget().await;
            result = self.try_publish(&msg).await;
        }
        result
    }

    async fn try_publish(&self, msg: &Outgoing<'_>) -> Result<(), PublishError> {
        let channel = self.channel().await?;
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type(ShortString::from("application/json"))
            .with_message_id(ShortString::from(msg.message_id))
            .with_headers(msg.headers.clone());
        let confirm = channel
            .basic_publish(
                ShortString::from(""),
                ShortString::from(msg.queue),
                BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
                msg.body,
                properties,
            )
            .await
            .map_err(|e| PublishError::Unreachable(e.to_string()))?;
        // From here the message has left: a failure can no longer tell whether it was queued.
        let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
            .await
            .map_err(|_| PublishError::Unconfirmed("confirm timed out".into()))?
            .map_err(|e| PublishError::Unconfirmed(e.to_string()))?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) => Err(PublishError::NotConfirmed(format!(
                "unroutable to queue {}: {}",
                msg.queue, returned.reply_text
            ))),
            Confirmation::Nack(_) => Err(PublishError::NotConfirmed("broker refused it".into())),
            Confirmation::NotRequested => {
                Err(PublishError::NotConfirmed("channel not in confirm mode".into()))
            }
        }
    }

    /// Parks a job that failed for good in its queue's dead-letter queue, with the reason in
    /// the `x-cdr-error` header and its code in `x-cdr-error-code`, for inspection and replay.
    pub async fn dead_letter(
        &self,
        queue: &str,
        message_id: &str,
        body: &[u8],
        code: crate::error_code::ErrorCode,
        reason: &str,
    ) -> Result<(), PublishError> {
        let mut headers = FieldTable::default();
        headers.insert("x-cdr-error".into(), AMQPValue::LongString(reason.into()));
        headers.insert("x-cdr-error-code".into(), AMQPValue::LongString(code.as_str().into()));
        self.publish(Outgoing { queue: &Topology::dead(queue), message_id, body, headers }).await
    }

    /// Moves the dead-lettered message of job `message_id` from `queue`'s dead-letter queue
    /// back onto `queue` (published and confirmed before the dead copy is removed). Other
    /// dead messages stay where they were. `false` when no such message is there.
    pub async fn replay_dead(&self, queue: &str, message_id: &str) -> Result<bool, PublishError> {
        use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};
        let unreachable = |e: lapin::Error| PublishError::Unreachable(e.to_string());
        let dead = Topology::dead(queue);
        let depth = self.queue_depth(&dead).await?;
        // A channel of its own: the messages it holds unacknowledged go back if it fails.
        let conn =
            Connection::connect(&self.url, ConnectionProperties::default()).await.map_err(unreachable)?;
        let channel = conn.create_channel().await.map_err(unreachable)?;
        let mut passed = Vec::new();
        let mut found = false;
        for _ in 0..depth {
            let Some(msg) = channel
                .basic_get(dead.as_str().into(), BasicGetOptions::default())
                .await
                .map_err(unreachable)?
            else {
                break;
            };
            let delivery = msg.delivery;
            let id = delivery.properties.message_id().as_ref().map(|s| s.as_str().to_string());
            if id.as_deref() == Some(message_id) {
                self.publish(Outgoing {
                    queue,
                    message_id,
                    body: &delivery.data,
                    headers: FieldTable::default(),
                })
                .await?;
                channel
                    .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
                    .await
                    .map_err(unreachable)?;
                found = true;
                break;
            }
            passed.push(delivery.delivery_tag);
        }
        for tag in passed {
            channel
                .basic_nack(tag, BasicNackOptions { requeue: true, multiple: false })
                .await
                .map_err(unreachable)?;
        }
        let _ = channel.close(200, "done".into()).await;
        let _ = conn.close(200, "done".into()).await;
        Ok(found)
    }

    /// Messages waiting in a queue (for readiness and backpressure). Like `publish`, retries
    /// once on a fresh connection when the cached one turns out to be dead.
    pub async fn queue_depth(&self, queue: &str) -> Result<u32, PublishError> {
        self.queue_stats(queue).await.map(|s| s.messages)
    }

    /// Messages waiting in a queue and the consumers taking from it (a worker process takes
    /// each of its queues with one consumer). Retries once on a fresh connection, as
    /// [`Publisher::queue_depth`] does.
    pub async fn queue_stats(&self, queue: &str) -> Result<QueueStats, PublishError> {
        match self.try_queue_stats(queue).await {
            Err(PublishError::Unreachable(_)) => {
                self.forget().await;
                self.try_queue_stats(queue).await
            }
            other => other,
        }
    }

    async fn try_queue_stats(&self, queue: &str) -> Result<QueueStats, PublishError> {
        let channel = self.channel().await?;
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() },
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(q) => Ok(QueueStats { messages: q.message_count(), consumers: q.consumer_count() }),
            Err(e) => {
                // A failed passive declare closes the channel: start afresh next time.
                self.forget().await;
                Err(PublishError::Unreachable(e.to_string()))
            }
        }
    }
}

/// What a queue holds and who takes from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    pub messages: u32,
    pub consumers: u32,
}

/// Dead-letters a message whose body is not the job its queue carries. The job id, when the
/// body still names one, is returned so its state can be marked `failed`.
pub async fn dead_letter_unreadable(
    publisher: &Publisher,
    queue: &str,
    body: &[u8],
    reason: &str,
) -> Result<Option<String>, PublishError> {
    let job_id = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("job_id").and_then(|id| id.as_str()).map(str::to_string));
    let id = job_id.as_deref().unwrap_or("unreadable");
    publisher.dead_letter(queue, id, body, crate::error_code::ErrorCode::UnreadableMessage, reason).await?;
    tracing::error!(
        queue,
        job_id = job_id.as_deref().unwrap_or("-"),
        reason,
        "unreadable message dead-lettered"
    );
    Ok(job_id)
}
